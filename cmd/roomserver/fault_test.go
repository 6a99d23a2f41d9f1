package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/store"
)

// The fault tests run the real binary, built once per test run.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func roomserverBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "roomserver-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "roomserver")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a running room server.
type proc struct {
	cmd    *exec.Cmd
	url    string        // ws://host:port/socket/websocket
	http   string        // http://host:port
	exited chan struct{} // closed once the process has exited, with its status in err
	err    error
}

var listenURL = regexp.MustCompile(`url=(ws://\S+)`)

// startRoomserver runs the binary on a free port with args and waits until it listens.
func startRoomserver(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(roomserverBinary(t), append([]string{"--room", "lobby", "--listen", "127.0.0.1:0"}, args...)...)
	for _, kv := range os.Environ() { // standalone: no cluster to report to
		if !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "KUBERNETES_") && !strings.HasPrefix(kv, "XROOMS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listenURL.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	select {
	case p.url = <-found:
	case <-p.exited:
		t.Fatalf("roomserver exited: %v", p.err)
	case <-time.After(30 * time.Second):
		t.Fatal("roomserver did not start listening")
	}
	p.http = "http://" + strings.TrimSuffix(strings.TrimPrefix(p.url, "ws://"), "/socket/websocket")
	return p
}

// mover is a client that pushes its own moves with increasing seq and records which came
// back: acknowledged (an ok reply) and flushed (seen in an entities_diff).
type mover struct {
	user    string
	conn    *websocket.Conn
	sent    atomic.Int64
	acked   atomic.Int64
	flushed atomic.Int64
	closed  chan websocket.StatusCode
}

func startMover(t *testing.T, p *proc, user string, every time.Duration, stop <-chan struct{}) *mover {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, p.url+"?vsn=2.0.0&user_id="+user, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(-1)
	t.Cleanup(func() { conn.CloseNow() })
	m := &mover{user: user, conn: conn, closed: make(chan websocket.StatusCode, 1)}
	if err := conn.Write(ctx, websocket.MessageText, []byte(`["1","1","room:lobby","phx_join",{}]`)); err != nil {
		t.Fatal(err)
	}
	go m.read()
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for seq := int64(1); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			// The ref is the seq, so an ok reply names the move it acknowledges.
			msg := fmt.Sprintf(`["1","%d","room:lobby","i_moved",{"position":[%d,0,0],"seq":%d}]`, seq+1, seq, seq)
			if conn.Write(context.Background(), websocket.MessageText, []byte(msg)) != nil {
				return
			}
			m.sent.Store(seq)
		}
	}()
	return m
}

func (m *mover) read() {
	for {
		_, b, err := m.conn.Read(context.Background())
		if err != nil {
			m.closed <- websocket.CloseStatus(err)
			return
		}
		var f []json.RawMessage
		if json.Unmarshal(b, &f) != nil || len(f) != 5 {
			continue
		}
		switch string(f[3]) {
		case `"phx_reply"`:
			var ref string
			json.Unmarshal(f[1], &ref)
			if n, err := strconv.ParseInt(ref, 10, 64); err == nil && n > 1 && strings.Contains(string(f[4]), `"status":"ok"`) {
				setMax(&m.acked, n-1)
			}
		case `"entities_diff"`:
			var d entity.Diff
			json.Unmarshal(f[4], &d)
			for _, c := range []entity.Components{d.Creates[m.user], d.Updates[m.user]} {
				if s, err := strconv.ParseInt(string(c["seq"]), 10, 64); err == nil {
					setMax(&m.flushed, s)
				}
			}
		}
	}
}

func setMax(v *atomic.Int64, n int64) {
	for {
		old := v.Load()
		if n <= old || v.CompareAndSwap(old, n) {
			return
		}
	}
}

func seqOf(t *testing.T, c entity.Components) int64 {
	t.Helper()
	s, err := strconv.ParseInt(string(c["seq"]), 10, 64)
	if err != nil {
		t.Fatalf("components %v have no seq", c)
	}
	return s
}

const faultSync = 50 * time.Millisecond

// waitFlushed waits until every mover has seen some of its moves flushed.
func waitFlushed(t *testing.T, movers []*mover) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, m := range movers {
		for m.flushed.Load() < 10 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no moves flushed (sent %d)", m.user, m.sent.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestKill9UnderLoadLosesAtMostTheLastInterval kills the server with SIGKILL while clients
// push, restarts it on the same data dir, and checks that every change flushed before the
// kill (every move a client saw come back in a diff) is in the restored room.
func TestKill9UnderLoadLosesAtMostTheLastInterval(t *testing.T) {
	dir := t.TempDir()
	p := startRoomserver(t, "--data-dir", dir, "--sync-interval", faultSync.String())
	stop := make(chan struct{})
	var movers []*mover
	for i := range 4 {
		movers = append(movers, startMover(t, p, fmt.Sprintf("w%d", i), 20*time.Millisecond, stop))
	}
	waitFlushed(t, movers)
	time.Sleep(500 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	close(stop)
	flushed := map[string]int64{}
	for _, m := range movers {
		<-m.closed // nothing read after the kill counts
		flushed[m.user] = m.flushed.Load()
	}

	p = startRoomserver(t, "--data-dir", dir, "--sync-interval", faultSync.String())
	var st entity.State
	code, body := get(t, p.http+"/rooms/lobby/entities")
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("entities: %d %s", code, body)
	}
	for _, m := range movers {
		c, ok := st[m.user]
		if !ok {
			t.Fatalf("%s is gone from the restored room %s", m.user, body)
		}
		got := seqOf(t, c)
		if got < flushed[m.user] || got > m.sent.Load() {
			t.Errorf("%s restored at seq %d; %d was flushed before the kill, %d sent", m.user, got, flushed[m.user], m.sent.Load())
		}
		t.Logf("%s: sent %d, acknowledged %d, seen flushed %d, restored %d", m.user, m.sent.Load(), m.acked.Load(), flushed[m.user], got)
	}
}

// TestSIGTERMUnderLoadLosesNothing stops the server with SIGTERM while clients push: every
// push acknowledged before the signal is in the store the server leaves, and a user who
// comes back to the restarted server resumes from it.
func TestSIGTERMUnderLoadLosesNothing(t *testing.T) {
	dir := t.TempDir()
	p := startRoomserver(t, "--data-dir", dir, "--sync-interval", faultSync.String())
	stop := make(chan struct{})
	var movers []*mover
	for i := range 4 {
		movers = append(movers, startMover(t, p, fmt.Sprintf("w%d", i), 20*time.Millisecond, stop))
	}
	waitFlushed(t, movers)
	time.Sleep(500 * time.Millisecond)
	acked := map[string]int64{}
	for _, m := range movers {
		acked[m.user] = m.acked.Load()
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, m := range movers {
		if code := <-m.closed; code != websocket.StatusGoingAway {
			t.Errorf("%s: close status %v, want 1001", m.user, code)
		}
	}
	close(stop)
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("roomserver exited with %v after SIGTERM", p.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("roomserver did not exit after SIGTERM")
	}

	db, err := store.OpenBolt(filepath.Join(dir, "room.db"))
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]int64{}
	for _, m := range movers {
		c, ok, err := db.User(m.user)
		if err != nil || !ok {
			t.Fatalf("%s: no stored components (%v)", m.user, err)
		}
		last[m.user] = seqOf(t, c)
		if last[m.user] < acked[m.user] {
			t.Errorf("%s stored at seq %d, but seq %d was acknowledged before SIGTERM", m.user, last[m.user], acked[m.user])
		}
		t.Logf("%s: acknowledged before the signal %d, acknowledged in all %d, stored %d", m.user, acked[m.user], m.acked.Load(), last[m.user])
	}
	db.Close()

	// The restarted server gives a returning user what was stored.
	p = startRoomserver(t, "--data-dir", dir, "--sync-interval", faultSync.String())
	back := startMover(t, p, "w0", time.Hour, make(chan struct{}))
	deadline := time.Now().Add(10 * time.Second)
	for back.flushed.Load() != last["w0"] {
		if time.Now().After(deadline) {
			t.Fatalf("w0 came back at seq %d, stored %d", back.flushed.Load(), last["w0"])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
