package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCompareAgainstColyseus runs `roomload compare` end to end at a tiny scale: the real
// xrooms room server and the real Colyseus 0.18 peer (bench/colyseus), each under the same
// load, and checks that both sides measured something.
func TestCompareAgainstColyseus(t *testing.T) {
	peerDir, err := filepath.Abs(filepath.Join("..", "..", "bench", "colyseus"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(peerDir, "node_modules", "@colyseus", "core")); err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("bench/colyseus/node_modules is missing: run `make bench-deps` (with CI set, this test fails instead)")
		}
		t.Fatalf("bench/colyseus/node_modules is missing (run make bench-deps): %v", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed: %v", err)
	}

	bin := t.TempDir()
	build := func(out, pkg string) string {
		path := filepath.Join(bin, out)
		cmd := exec.Command("go", "build", "-o", path, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
		return path
	}
	serverBin := build("roomserver", "../roomserver")
	loadBin := build("roomload", ".")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out strings.Builder
	rows, err := compare(ctx, compareConfig{
		Clients: []int{5}, Duration: 2 * time.Second, Rate: 20, Measure: 0,
		ServerBin: serverBin, LoadBin: loadBin, PeerDir: peerDir, Node: node,
		Log: io.Discard,
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(strings.TrimSpace(out.String()))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(rows) != 1 || len(lines) != 2 {
		t.Fatalf("want the idle line and one row, got %d rows:\n%s", len(rows), out.String())
	}
	var idle struct {
		XRoomsIdle struct {
			ReadyMs float64 `json:"start_to_ready_ms"`
			RSSMB   float64 `json:"rss_mb"`
		} `json:"xrooms_idle"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &idle); err != nil || idle.XRoomsIdle.ReadyMs <= 0 || idle.XRoomsIdle.RSSMB <= 0 {
		t.Fatalf("idle line %s: %v", lines[0], err)
	}
	row := rows[0]
	for _, side := range []struct {
		name string
		res  result
	}{{"xrooms", row.XRooms}, {"xrooms compact", row.XRoomsCompact}, {"colyseus", row.Peer}} {
		r := side.res
		if r.Errors != 0 {
			t.Errorf("%s: %d errors (first: %s)", side.name, r.Errors, r.FirstError)
		}
		if r.Clients != 5 || r.SentPerS < 50 {
			t.Errorf("%s: %d clients sent %.0f/s, want 5 clients sending about 100/s", side.name, r.Clients, r.SentPerS)
		}
		// 5 clients each get a diff every 50 ms: about 100/s.
		if r.DiffsPerS < 50 || r.ReceivedMBPerS <= 0 {
			t.Errorf("%s: %.0f diffs/s, %.2f MB/s received", side.name, r.DiffsPerS, r.ReceivedMBPerS)
		}
		// Every client measures: 5 clients x 20 Hz x 2 s.
		if r.LatencySamples < 100 || r.P50Ms <= 0 || r.P99Ms < r.P50Ms {
			t.Errorf("%s: latency %d samples, p50 %.1f ms, p99 %.1f ms", side.name, r.LatencySamples, r.P50Ms, r.P99Ms)
		}
		if r.ServerCPUPct <= 0 || r.ServerRSSMB <= 0 || r.ServerSysPct > r.ServerCPUPct {
			t.Errorf("%s: server CPU %.2f%% (kernel %.2f%%), RSS %.1f MB, want CPU and RSS positive", side.name, r.ServerCPUPct, r.ServerSysPct, r.ServerRSSMB)
		}
	}
	if row.CPURatio <= 0 || row.CompactRatio <= 0 {
		t.Errorf("CPU ratios %.2f and %.2f, want positive", row.CPURatio, row.CompactRatio)
	}
	var table strings.Builder
	printTable(&table, rows)
	if !strings.Contains(table.String(), "ratio json") || !strings.Contains(table.String(), "kernel% json") || strings.Count(table.String(), "\n") != 2 {
		t.Errorf("table:\n%s", table.String())
	}
}
