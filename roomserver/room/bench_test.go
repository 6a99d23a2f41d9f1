package room

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/xrooms/xrooms/roomserver/event"
	"github.com/xrooms/xrooms/roomserver/outbox"
	"github.com/xrooms/xrooms/roomserver/protocol"
	"github.com/xrooms/xrooms/roomserver/rules"
	"github.com/xrooms/xrooms/roomserver/store"
)

// BenchmarkFlushFanOut measures one flush of a one-entity diff to n members: diff, store
// commit (memory), encoding, and queueing the shared bytes to every member, whose writer
// goroutines drain their queues with a writer that discards. Allocations must not grow with
// n: the per-member work is an enqueue of shared bytes.
func BenchmarkFlushFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			r, err := New(Config{Name: "lobby", Store: store.NewMemory(), Rules: rules.Builtin(),
				SyncInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer func() { cancel(); wg.Wait() }()
			discard := func([]protocol.Encoded) error { return nil }
			for i := range n {
				q := outbox.New(1<<20, func() { b.Error("a member overflowed") })
				wg.Go(func() { q.Run(ctx, discard) })
				ref := protocol.StringRef("1")
				// The loop is not running: the benchmark goroutine is the owner.
				if _, err := r.join(JoinRequest{Conn: q, Version: protocol.V2, UserID: fmt.Sprint("u", i),
					Frame: protocol.Frame{JoinRef: ref, Ref: ref, Topic: r.topic, Event: protocol.EventJoin}}); err != nil {
					b.Fatal(err)
				}
			}
			r.flush()
			pos := []json.RawMessage{json.RawMessage(`[1,0,0]`), json.RawMessage(`[2,0,0]`)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				ev := event.New(EventUserMoved, "u0", map[string]json.RawMessage{"position": pos[i%2]})
				if err := r.apply(ev, r.eventsIn[fromSocket]); err != nil {
					b.Fatal(err)
				}
				r.flush()
			}
		})
	}
}

// BenchmarkHoldReply measures the reply to a push, held for the next flush: encoding its
// head is its only allocation.
func BenchmarkHoldReply(b *testing.B) {
	r, err := New(Config{Name: "lobby", Store: store.NewMemory(), Rules: rules.Builtin(),
		SyncInterval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	q := outbox.New(1<<30, func() { b.Error("the member overflowed") })
	wg.Go(func() { q.Run(ctx, func([]protocol.Encoded) error { return nil }) })
	ref := protocol.StringRef("1")
	m, err := r.join(JoinRequest{Conn: q, Version: protocol.V2, UserID: "u0",
		Frame: protocol.Frame{JoinRef: ref, Ref: ref, Topic: r.topic, Event: protocol.EventJoin}})
	if err != nil {
		b.Fatal(err)
	}
	push := protocol.Frame{JoinRef: ref, Ref: protocol.StringRef("2"), Topic: r.topic, Event: PushMoved}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.hold(m, protocol.ReplyOK(push, nil))
		if i%16 == 15 {
			r.wakeHeld()
		}
	}
}
