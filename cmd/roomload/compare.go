package main

// roomload compare: the same workload against the xrooms room server and a Colyseus 0.18 peer
// (bench/colyseus), one after the other for each client count, each server pinned to CPU 0
// and its load generator to CPU 1, and a table of the two side by side.
//
// The xrooms load is this binary's own run (re-executed, so it can be pinned; --pid makes it
// sample the server's CPU and RSS over the load window). The peer's load is
// bench/colyseus/load.mjs, which marks its load window on stderr; the server's CPU and RSS
// over that window come from the same cpuSampler.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

type compareConfig struct {
	Clients   []int
	Duration  time.Duration
	Rate      float64
	Measure   int    // clients that measure latency on each side (0: see measuring)
	ServerBin string // xrooms room server binary
	LoadBin   string // roomload binary for the xrooms load (default: this executable)
	PeerDir   string // bench/colyseus, with node_modules installed
	Node      string // node binary
	Log       io.Writer
}

// comparison is one client count's line of `roomload compare`.
type comparison struct {
	Clients int    `json:"clients"`
	XRooms  result `json:"xrooms"`
	// XRoomsCompact is xrooms with clients that joined with {"encoding": "compact"}.
	XRoomsCompact result  `json:"xrooms_compact"`
	Peer          result  `json:"peer"`
	CPURatio      float64 `json:"cpu_ratio"`         // xrooms CPU / peer CPU
	CompactRatio  float64 `json:"compact_cpu_ratio"` // xrooms compact CPU / peer CPU
	// Measuring is how many clients measured latency on each side.
	Measuring int `json:"measuring"`
}

func compareMain(args []string) error {
	cfg := compareConfig{Log: os.Stderr}
	fs := flag.NewFlagSet("roomload compare", flag.ContinueOnError)
	clients := fs.String("clients", "100,300,500", "comma-separated client counts")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "load window per run, after all clients have joined")
	fs.Float64Var(&cfg.Rate, "rate", 20, "moves per second per client")
	fs.IntVar(&cfg.Measure, "measure", 0, "how many clients measure latency on each side (0: 5000/N, at least 5)")
	fs.StringVar(&cfg.ServerBin, "server-bin", "bin/roomserver", "xrooms room server binary")
	fs.StringVar(&cfg.LoadBin, "load-bin", "", "roomload binary for the xrooms load (default: this executable)")
	fs.StringVar(&cfg.PeerDir, "peer-dir", "bench/colyseus", "Colyseus peer directory (npm ci done)")
	fs.StringVar(&cfg.Node, "node", "node", "node binary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, s := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("--clients %q: want positive integers separated by commas", *clients)
		}
		cfg.Clients = append(cfg.Clients, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rows, err := compare(ctx, cfg, os.Stdout)
	printTable(os.Stdout, rows)
	return err
}

// compare runs each client count against xrooms then the peer, writes one JSON line per count
// to out as it completes and returns the rows.
func compare(ctx context.Context, cfg compareConfig, out io.Writer) ([]comparison, error) {
	if cfg.LoadBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cfg.LoadBin = exe
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	var err error
	if cfg.PeerDir, err = filepath.Abs(cfg.PeerDir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(cfg.PeerDir, "node_modules", "@colyseus", "core")); err != nil {
		return nil, fmt.Errorf("the Colyseus peer is not installed in %s (run make bench-deps): %w", cfg.PeerDir, err)
	}
	idle, err := measureIdle(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("idle xrooms room server: %w", err)
	}
	fmt.Fprintf(out, "{\"xrooms_idle\":{\"start_to_ready_ms\":%.1f,\"rss_mb\":%.1f}}\n", idle.readyMs, idle.rssMB)
	var rows []comparison
	for _, n := range cfg.Clients {
		fmt.Fprintf(cfg.Log, "compare: %d clients: xrooms\n", n)
		x, err := runXRooms(ctx, cfg, n, "json")
		if err != nil {
			return rows, fmt.Errorf("xrooms at %d clients: %w", n, err)
		}
		fmt.Fprintf(cfg.Log, "compare: %d clients: xrooms compact\n", n)
		xc, err := runXRooms(ctx, cfg, n, "compact")
		if err != nil {
			return rows, fmt.Errorf("xrooms compact at %d clients: %w", n, err)
		}
		fmt.Fprintf(cfg.Log, "compare: %d clients: colyseus\n", n)
		p, err := runPeer(ctx, cfg, n)
		if err != nil {
			return rows, fmt.Errorf("colyseus at %d clients: %w", n, err)
		}
		row := comparison{Clients: n, XRooms: x, XRoomsCompact: xc, Peer: p, Measuring: measuring(cfg, n)}
		for _, side := range []struct {
			name string
			r    result
		}{{"xrooms", x}, {"xrooms compact", xc}, {"colyseus", p}} {
			// The generator pushes on schedule unless it (or its core) is overloaded, or the
			// server reads too slowly; either way the figures are not the steady state asked for.
			if want := float64(n) * cfg.Rate; side.r.SentPerS < 0.9*want || side.r.DurationS > 1.1*cfg.Duration.Seconds()+0.5 {
				fmt.Fprintf(cfg.Log, "compare: warning: %s load at %d clients sent %.0f/s of %.0f/s over %.1fs of %.1fs: the load generator or the server fell behind\n",
					side.name, n, side.r.SentPerS, want, side.r.DurationS, cfg.Duration.Seconds())
			}
		}
		if p.ServerCPUPct > 0 {
			row.CPURatio = round(x.ServerCPUPct / p.ServerCPUPct)
			row.CompactRatio = round(xc.ServerCPUPct / p.ServerCPUPct)
		}
		rows = append(rows, row)
		if err := json.NewEncoder(out).Encode(row); err != nil {
			return rows, err
		}
	}
	return rows, nil
}

// runXRooms serves the room on CPU 0 and runs this binary's load on CPU 1 with --pid, its
// clients joining with the given encoding.
func runXRooms(ctx context.Context, cfg compareConfig, n int, encoding string) (result, error) {
	addr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	srv, err := startPinned(ctx, 0, "", nil, cfg.ServerBin, "--room", "lobby", "--listen", addr,
		"--sync-interval", "50ms", "--max-connects-per-second", "0", "--log-level", "error")
	if err != nil {
		return result{}, err
	}
	defer srv.stop()
	if err := waitReady(ctx, "http://"+addr+"/readyz", srv.exited); err != nil {
		return result{}, err
	}
	measure := measuring(cfg, n)
	var stdout bytes.Buffer
	load := pinned(ctx, 1, cfg.LoadBin, "--url", "ws://"+addr+"/socket", "--room", "lobby",
		"--clients", strconv.Itoa(n), "--rate", fmt.Sprint(cfg.Rate), "--duration", cfg.Duration.String(),
		"--measure", strconv.Itoa(measure), "--encoding", encoding, "--pid", strconv.Itoa(srv.cmd.Process.Pid))
	load.Stdout, load.Stderr = &stdout, cfg.Log
	if err := load.Run(); err != nil {
		return result{}, fmt.Errorf("load: %w", err)
	}
	return decodeResult(stdout.Bytes())
}

// idleFigures are an idle room server's: how long from exec until /readyz answers 200, and
// its RSS a second later.
type idleFigures struct{ readyMs, rssMB float64 }

// measureIdle starts the xrooms room server with no clients (best of three starts, so a busy
// moment of the machine does not count) and reads its figures.
func measureIdle(ctx context.Context, cfg compareConfig) (idleFigures, error) {
	best := idleFigures{readyMs: math.Inf(1)}
	for range 3 {
		addr, err := freeAddr()
		if err != nil {
			return best, err
		}
		start := time.Now()
		srv, err := startPinned(ctx, 0, "", nil, cfg.ServerBin, "--room", "lobby", "--listen", addr, "--log-level", "error")
		if err != nil {
			return best, err
		}
		err = waitReadyEvery(ctx, "http://"+addr+"/readyz", srv.exited, time.Millisecond)
		ready := time.Since(start)
		if err == nil {
			time.Sleep(time.Second)
			var rss uint64
			if rss, err = procRSS(srv.cmd.Process.Pid); err == nil {
				best.readyMs = min(best.readyMs, float64(ready.Microseconds())/1000)
				best.rssMB = max(best.rssMB, float64(rss)/1e6) // the worst RSS: no luck in it
			}
		}
		srv.stop()
		if err != nil {
			return best, err
		}
	}
	return best, nil
}

// runPeer serves the Colyseus room on CPU 0 and runs load.mjs on CPU 1, sampling the node
// server's CPU and RSS between the "window start" and "window end" lines it prints.
func runPeer(ctx context.Context, cfg compareConfig, n int) (result, error) {
	addr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	_, port, _ := net.SplitHostPort(addr)
	readyLine := make(chan struct{})
	srv, err := startPinned(ctx, 0, cfg.PeerDir, func(line string) {
		if strings.HasPrefix(line, "ready") {
			close(readyLine)
		}
	}, cfg.Node, "server.mjs", port)
	if err != nil {
		return result{}, err
	}
	defer srv.stop()
	select {
	case <-readyLine:
	case <-srv.exited:
		return result{}, errors.New("server exited before it was ready")
	case <-time.After(30 * time.Second):
		return result{}, errors.New("server not ready after 30s")
	case <-ctx.Done():
		return result{}, ctx.Err()
	}

	var stdout bytes.Buffer
	load := pinned(ctx, 1, cfg.Node, "load.mjs", "--url", "http://"+addr, "--clients", strconv.Itoa(n),
		"--rate", fmt.Sprint(cfg.Rate), "--duration", cfg.Duration.String(), "--measure", strconv.Itoa(measuring(cfg, n)))
	load.Dir, load.Stdout = cfg.PeerDir, &stdout
	stderr, err := load.StderrPipe()
	if err != nil {
		return result{}, err
	}
	if err := load.Start(); err != nil {
		return result{}, fmt.Errorf("load: %w", err)
	}
	var (
		sampler          *cpuSampler
		used             usage
		sampleErr        error
		sawStart, sawEnd bool
	)
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		switch line := sc.Text(); line {
		case "window start":
			sawStart = true
			sampler, sampleErr = newCPUSampler(srv.cmd.Process.Pid)
		case "window end":
			if sampler != nil {
				sawEnd = true
				used, sampleErr = sampler.stop()
				sampler = nil
			}
		default:
			fmt.Fprintln(cfg.Log, line)
		}
	}
	if sampler != nil { // load died mid-window
		sampler.stop()
	}
	if err := load.Wait(); err != nil {
		return result{}, fmt.Errorf("load: %w", err)
	}
	if sampleErr != nil {
		return result{}, sampleErr
	}
	if !sawStart || !sawEnd {
		return result{}, errors.New("load did not mark its window on stderr")
	}
	res, err := decodeResult(stdout.Bytes())
	res.setUsage(used)
	return res, err
}

// measuring is how many clients measure latency at n clients, on every side. A measuring
// client reads every diff whole (a Colyseus one decodes every patch of all n players with the
// official SDK, a compact one every entity), about 20*n entities a second each; 50 of them at
// n=500 saturate the load generator's core, and a saturated generator reads late and reports
// its own lag as the server's. So by default at most 5000/n clients measure (n=500: 10,
// n=1000: 5), at least 5. Every client gets every diff, and the measuring ones are spread over
// the join order, so fewer of them do not bias the latency.
func measuring(cfg compareConfig, n int) int {
	if cfg.Measure > 0 {
		return min(cfg.Measure, n)
	}
	return min(max(5, 5000/n), n)
}

// decodeResult reads the load's result: its last line.
func decodeResult(b []byte) (result, error) {
	var res result
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return res, fmt.Errorf("failed to parse load result %q: %w", b, err)
	}
	return res, nil
}

// pinned returns a command run on the given CPU with taskset, when taskset exists and this
// machine has two CPUs or more; otherwise unpinned.
func pinned(ctx context.Context, cpu int, name string, args ...string) *exec.Cmd {
	if ts, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
		// taskset execs the command, so the process id is the command's own.
		return exec.CommandContext(ctx, ts, append([]string{"-c", strconv.Itoa(cpu), name}, args...)...)
	}
	return exec.CommandContext(ctx, name, args...)
}

type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startPinned starts a server pinned to cpu in dir; each line of its stdout goes to onLine
// (if set), its stderr to ours.
func startPinned(ctx context.Context, cpu int, dir string, onLine func(string), name string, args ...string) (*process, error) {
	cmd := pinned(ctx, cpu, name, args...)
	cmd.Dir, cmd.Stderr = dir, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var stdout io.ReadCloser
	if onLine != nil {
		var err error
		if stdout, err = cmd.StdoutPipe(); err != nil {
			return nil, err
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start %s: %w", name, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		if stdout != nil {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				onLine(sc.Text())
			}
		}
		cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stop ends the server with SIGTERM, then SIGKILL after 5 s.
func (p *process) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

func waitReady(ctx context.Context, url string, exited <-chan struct{}) error {
	return waitReadyEvery(ctx, url, exited, 50*time.Millisecond)
}

// waitReadyEvery polls url every period until it answers 200.
func waitReadyEvery(ctx context.Context, url string, exited <-chan struct{}, period time.Duration) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 30s", url)
		}
		select {
		case <-exited:
			return errors.New("server exited before it was ready")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(period):
		}
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// printTable writes the rows side by side: server CPU (one core) and its ratio to the peer's,
// the kernel's part of that CPU, p99 latency, peak RSS, bytes received per diff (everything a client received, replies
// included, over the diffs; on the wire, so deflated where negotiated), errors, and how many
// clients measured latency on each side.
func printTable(w io.Writer, rows []comparison) {
	if len(rows) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\tCPU% json\tcompact\tcolyseus\tratio json\tcompact\tkernel% json\tcompact\tcolyseus\t"+
		"p99 ms json\tcompact\tcolyseus\t"+
		"RSS MB json\tcompact\tcolyseus\tB/diff json\tcompact\tcolyseus\terrors\tmeasuring\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%.1f\t%.1f\t%.1f\t%.2f\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%d/%d/%d\t%d\t\n",
			r.Clients, r.XRooms.ServerCPUPct, r.XRoomsCompact.ServerCPUPct, r.Peer.ServerCPUPct, r.CPURatio, r.CompactRatio,
			r.XRooms.ServerSysPct, r.XRoomsCompact.ServerSysPct, r.Peer.ServerSysPct,
			r.XRooms.P99Ms, r.XRoomsCompact.P99Ms, r.Peer.P99Ms,
			r.XRooms.ServerRSSMB, r.XRoomsCompact.ServerRSSMB, r.Peer.ServerRSSMB,
			bytesPerDiff(r.XRooms), bytesPerDiff(r.XRoomsCompact), bytesPerDiff(r.Peer),
			r.XRooms.Errors, r.XRoomsCompact.Errors, r.Peer.Errors, r.Measuring)
	}
	tw.Flush()
}

// bytesPerDiff is the mean size of what a client received per diff (diffs dominate it).
func bytesPerDiff(r result) float64 {
	if r.DiffsPerS == 0 {
		return 0
	}
	return r.ReceivedMBPerS * 1e6 / r.DiffsPerS
}
