// Command roomload puts a room server under load: it opens N WebSocket clients to one room
// (Phoenix V2 frames, as the official client sends them), has each push `i_moved` at R Hz for
// a duration, and prints one JSON line of what it saw:
//
//	{"clients":100,"sent_per_s":2000,"received_msgs_per_s":...,"p50_ms":..,"p99_ms":..,"errors":0}
//
// Latency is measured from a client's own move to the first entities_diff that carries it
// (each move carries a sequence number; a diff carrying seq n answers every move up to n).
// With --pid it also samples that process's CPU and RSS from /proc while the load runs.
//
// `roomload compare` runs the same workload against xrooms and a Colyseus peer
// (bench/colyseus) and prints them side by side; see compare.go and `make bench`.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "compare" {
		if err := compareMain(os.Args[2:]); err != nil {
			if !errors.Is(err, flag.ErrHelp) {
				fmt.Fprintln(os.Stderr, "roomload compare:", err)
			}
			os.Exit(1)
		}
		return
	}
	var cfg config
	flag.StringVar(&cfg.URL, "url", "ws://127.0.0.1:4000/socket", "room server socket endpoint (as given to the phoenix client)")
	flag.StringVar(&cfg.Room, "room", "lobby", "room name (topic room:<room>)")
	flag.IntVar(&cfg.Clients, "clients", 100, "number of WebSocket clients")
	flag.Float64Var(&cfg.Rate, "rate", 20, "i_moved pushes per second per client")
	flag.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long the clients push after all have joined")
	flag.IntVar(&cfg.Measure, "measure", 50, "how many clients decode diffs to measure latency (0: all)")
	flag.StringVar(&cfg.Encoding, "encoding", "json", `how clients get diffs: "json" (text frames) or "compact" (binary frames, decoded by the measuring clients)`)
	flag.BoolVar(&cfg.NoCompression, "no-compression", false, "do not offer permessage-deflate (browsers and the ws library offer it)")
	flag.IntVar(&cfg.PID, "pid", 0, "room server process id to sample CPU and RSS from /proc (0: none)")
	cpuprofile := flag.String("cpuprofile", "", "write the generator's own CPU profile to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "roomload:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "roomload:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "roomload:", err)
		os.Exit(1)
	}
}
