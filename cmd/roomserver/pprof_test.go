package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestProfilerServesUntilTheServerStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := servePprof(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "goroutine profile") {
		t.Fatalf("%d %.200s", resp.StatusCode, b)
	}
	cancel()
	for range 100 {
		if _, err := http.Get("http://" + addr.String() + "/debug/pprof/"); err != nil {
			return // closed
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the profiler still serves after the server stopped")
}
