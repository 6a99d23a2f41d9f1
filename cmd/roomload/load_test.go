package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/xrooms/xrooms/roomserver/server"
)

// TestLoadAgainstRoomServer runs a small load against a real room server and checks that
// every figure roomload prints comes from traffic it really saw.
func TestLoadAgainstRoomServer(t *testing.T) {
	url := startServer(t, server.Config{Room: "lobby", SyncInterval: 50 * time.Millisecond})
	res, err := run(context.Background(), config{
		URL: url, Room: "lobby",
		Clients: 20, Rate: 20, Duration: time.Second, Measure: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Errors != 0 {
		t.Fatalf("errors: %d (first: %s)", res.Errors, res.FirstError)
	}
	if res.SentPerS < 200 {
		t.Errorf("sent %.0f/s, want about 400/s (20 clients at 20 Hz)", res.SentPerS)
	}
	// Every client gets every diff: about 20 diffs/s each at a 50ms sync interval.
	if res.DiffsPerS < 100 {
		t.Errorf("received %.0f diffs/s, want about 400/s", res.DiffsPerS)
	}
	if res.LatencySamples < 20 || res.P50Ms <= 0 || res.P99Ms < res.P50Ms {
		t.Errorf("latency: %d samples, p50 %.1fms, p99 %.1fms", res.LatencySamples, res.P50Ms, res.P99Ms)
	}
}

// Compact clients get binary diffs; the measuring ones decode them to find their moves.
func TestLoadWithCompactEncoding(t *testing.T) {
	url := startServer(t, server.Config{Room: "lobby", SyncInterval: 50 * time.Millisecond})
	res, err := run(context.Background(), config{
		URL: url, Room: "lobby", Encoding: "compact",
		Clients: 10, Rate: 20, Duration: time.Second, Measure: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Errors != 0 || res.DiffsPerS < 100 || res.LatencySamples < 20 || res.P99Ms <= 0 {
		t.Fatalf("compact load: %+v", res)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	if _, err := run(context.Background(), config{URL: "ws://127.0.0.1:1/socket", Clients: 0, Rate: 1, Duration: time.Second}); err == nil {
		t.Fatal("want an error for zero clients")
	}
}

// Refused with 429 for connecting too fast from one address, clients retry as the server
// asks, and all get in.
func TestClientsRetryWhenConnectionsAreRateLimited(t *testing.T) {
	url := startServer(t, server.Config{Room: "lobby", SyncInterval: 50 * time.Millisecond, MaxConnectsPerSecond: 5})
	res, err := run(context.Background(), config{
		URL: url, Room: "lobby",
		Clients: 16, Rate: 5, Duration: 500 * time.Millisecond, Measure: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 {
		t.Fatalf("errors: %d (first: %s)", res.Errors, res.FirstError)
	}
	if res.SentPerS == 0 {
		t.Fatal("no client pushed")
	}
}

// startServer serves a real room server on loopback until the test ends and returns its
// socket URL.
func startServer(t *testing.T, cfg server.Config) string {
	t.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-served
	})
	return "ws://" + ln.Addr().String() + "/socket"
}
