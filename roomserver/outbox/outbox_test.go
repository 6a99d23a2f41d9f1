package outbox

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/xrooms/xrooms/roomserver/protocol"
)

func frame(s string) protocol.Encoded {
	return protocol.Encoded{Head: []byte("["), Body: []byte(s), Tail: ']'}
}

func TestRunWritesInOrderInBatches(t *testing.T) {
	q := New(1<<20, nil)
	for i := range 40 {
		if !q.Send(frame(fmt.Sprint(i))) {
			t.Fatal("send refused")
		}
	}
	q.Close()
	var got []string
	var sizes []int
	err := q.Run(context.Background(), func(b []protocol.Encoded) error {
		sizes = append(sizes, len(b))
		for _, e := range b {
			got = append(got, string(e.Body))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range got {
		if s != fmt.Sprint(i) {
			t.Fatalf("frame %d is %s", i, s)
		}
	}
	if len(got) != 40 || sizes[0] != MaxBatch {
		t.Fatalf("wrote %d frames in batches %v", len(got), sizes)
	}
	if q.Send(frame("late")) {
		t.Fatal("a closed queue took a frame")
	}
}

func TestFramesSentTogetherAreWrittenTogether(t *testing.T) {
	q := New(1<<20, nil)
	for range MaxBatch - 1 {
		q.Send(frame("x"))
	}
	q.Send(frame("reply"), frame("close"), frame("state"))
	q.Send(frame("next"))
	q.Close()
	var sizes []int
	q.Run(context.Background(), func(b []protocol.Encoded) error {
		sizes = append(sizes, len(b))
		return nil
	})
	if len(sizes) != 2 || sizes[0] != MaxBatch+2 || sizes[1] != 1 {
		t.Fatalf("batches %v: the group of three must not be split", sizes)
	}
}

func TestOverflowDropsTheQueueAndCallsBack(t *testing.T) {
	called := make(chan struct{})
	q := New(10, func() { close(called) })
	if !q.Send(frame("0123456")) { // 9 bytes
		t.Fatal("first frame refused")
	}
	if q.Send(frame("01")) { // 9 + 4 > 10
		t.Fatal("overflowing frame accepted")
	}
	select {
	case <-called:
	case <-time.After(5 * time.Second):
		t.Fatal("overflow callback not called")
	}
	if q.Len() != 0 {
		t.Fatalf("queue still holds %d bytes", q.Len())
	}
	if q.Send(frame("")) {
		t.Fatal("overflowed queue took a frame")
	}
	err := q.Run(context.Background(), func([]protocol.Encoded) error {
		t.Fatal("wrote after overflow")
		return nil
	})
	if !errors.Is(err, ErrOverflow) {
		t.Fatalf("Run returned %v", err)
	}
}

func TestOversizeFrameFitsAnEmptyQueue(t *testing.T) {
	q := New(4, nil)
	if !q.Send(frame("a large entities_state")) {
		t.Fatal("a frame larger than the limit must pass when the queue is empty")
	}
}

func TestRunStopsOnWriteErrorAndContext(t *testing.T) {
	q := New(100, nil)
	q.Send(frame("x"))
	boom := errors.New("boom")
	if err := q.Run(context.Background(), func([]protocol.Encoded) error { return boom }); err != boom {
		t.Fatalf("got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New(100, nil).Run(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// Senders on many goroutines and one writer: every frame arrives once, each sender's in order.
func TestConcurrentSendersOneWriter(t *testing.T) {
	q := New(1<<30, nil)
	const senders, each = 8, 500
	seen := make(map[string]int)
	done := make(chan error)
	go func() {
		done <- q.Run(context.Background(), func(b []protocol.Encoded) error {
			for _, e := range b {
				var s, i int
				fmt.Sscanf(string(e.Body), "%d/%d", &s, &i)
				if prev, ok := seen[fmt.Sprint(s)]; ok && prev != i-1 {
					return fmt.Errorf("sender %d: %d after %d", s, i, prev)
				}
				seen[fmt.Sprint(s)] = i
			}
			return nil
		})
	}()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				q.Send(frame(fmt.Sprintf("%d/%d", s, i)))
			}
		})
	}
	wg.Wait()
	q.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for s := range senders {
		if seen[fmt.Sprint(s)] != each-1 {
			t.Fatalf("sender %d: last frame %d", s, seen[fmt.Sprint(s)])
		}
	}
}

func BenchmarkSend(b *testing.B) {
	q := New(1<<30, nil)
	e := frame("payload")
	batch := make([]protocol.Encoded, 0, MaxBatch)
	b.ReportAllocs()
	for b.Loop() {
		q.Send(e)
		q.mu.Lock()
		batch = q.takeLocked(batch[:0])
		q.mu.Unlock()
	}
}

func TestHeldFramesWaitForTheNextSendOrWake(t *testing.T) {
	q := New(1<<20, nil)
	batches := make(chan []string, 8)
	go q.Run(context.Background(), func(b []protocol.Encoded) error {
		var got []string
		for _, e := range b {
			got = append(got, string(e.Body))
		}
		batches <- got
		return nil
	})
	q.Send(frame("state"))
	<-batches // the writer is now waiting
	q.Hold(frame("reply1"))
	q.Hold(frame("reply2"))
	select {
	case b := <-batches:
		t.Fatalf("held frames written before a send or wake: %v", b)
	case <-time.After(50 * time.Millisecond):
	}
	q.Send(frame("diff"))
	if b := <-batches; fmt.Sprint(b) != "[reply1 reply2 diff]" {
		t.Fatalf("wrote %v, want the held frames then the sent one, in one batch", b)
	}
	q.Hold(frame("reply3"))
	q.Wake()
	if b := <-batches; fmt.Sprint(b) != "[reply3]" {
		t.Fatalf("woken, wrote %v", b)
	}
	q.Close()
}

// wire stands in for a socket that sometimes takes only part of a batch at once: tryWrite
// keeps the rest, which the blocking write sends first, as the server's corked connection
// does.
type wire struct {
	mu      sync.Mutex
	sent    []string
	pending []string
	take    func(n int) int // how many of n frames the socket takes at once
	tries   int
	writes  int
}

func (w *wire) try(b []protocol.Encoded) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tries++
	k := w.take(len(b))
	for i, e := range b {
		if i < k {
			w.sent = append(w.sent, string(e.Body))
		} else {
			w.pending = append(w.pending, string(e.Body))
		}
	}
	return k == len(b), nil
}

func (w *wire) write(b []protocol.Encoded) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	w.sent = append(w.sent, w.pending...)
	w.pending = nil
	for _, e := range b {
		w.sent = append(w.sent, string(e.Body))
	}
	return nil
}

func (w *wire) result() (sent []string, tries, writes int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.sent...), w.tries, w.writes
}

// With Direct, a socket that takes everything at once costs the writer goroutine nothing:
// held frames and the frame sent go out together, in the sender's goroutine.
func TestDirectWritesInTheSendersGoroutine(t *testing.T) {
	w := &wire{take: func(n int) int { return n }}
	q := New(1<<20, nil)
	q.Direct(w.try)
	done := make(chan error)
	go func() { done <- q.Run(context.Background(), w.write) }()
	q.Hold(frame("reply1"))
	q.Hold(frame("reply2"))
	if sent, tries, _ := w.result(); len(sent) != 0 || tries != 0 {
		t.Fatalf("held frames written before a send: %v", sent)
	}
	q.Send(frame("diff"))
	sent, tries, writes := w.result()
	if fmt.Sprint(sent) != "[reply1 reply2 diff]" || tries != 1 || writes != 0 {
		t.Fatalf("sent %v in %d tries and %d writer writes, want [reply1 reply2 diff] in 1 try and 0 writes", sent, tries, writes)
	}
	q.Hold(frame("reply3"))
	q.Wake()
	if sent, _, _ := w.result(); fmt.Sprint(sent) != "[reply1 reply2 diff reply3]" {
		t.Fatalf("woken, sent %v", sent)
	}
	q.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, _, writes := w.result(); writes != 0 {
		t.Fatalf("the writer wrote %d times with nothing left for it", writes)
	}
}

// What the socket does not take at once goes first on the writer's next write, before
// anything sent since; the writer is woken for it even when nothing else is queued.
func TestDirectLeavesTheRestToTheWriterInOrder(t *testing.T) {
	w := &wire{take: func(n int) int { return n / 2 }}
	q := New(1<<20, nil)
	q.Direct(w.try)
	done := make(chan error)
	go func() { done <- q.Run(context.Background(), w.write) }()
	q.Send(frame("a"), frame("b"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		sent, _, writes := w.result()
		if fmt.Sprint(sent) == "[a b]" && writes == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sent %v in %d writer writes, want [a b], b by the writer", sent, writes)
		}
		time.Sleep(time.Millisecond)
	}
	q.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Concurrent senders, a socket taking a random part of each batch: every frame arrives
// once, each sender's in its order.
func TestDirectKeepsEachSendersOrder(t *testing.T) {
	w := &wire{take: func(n int) int { return rand.IntN(n + 1) }}
	q := New(1<<30, nil)
	q.Direct(w.try)
	done := make(chan error)
	go func() { done <- q.Run(context.Background(), w.write) }()
	const senders, each = 4, 2000
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if i%3 == 0 {
					q.Hold(frame(fmt.Sprint(s, " ", i)))
					continue
				}
				q.Send(frame(fmt.Sprint(s, " ", i)))
			}
			q.Wake()
		}()
	}
	wg.Wait()
	q.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sent, _, _ := w.result()
	if len(sent) != senders*each {
		t.Fatalf("%d frames arrived, want %d", len(sent), senders*each)
	}
	last := map[int]int{}
	for s := range senders {
		last[s] = -1
	}
	for _, f := range sent {
		var s, i int
		fmt.Sscan(f, &s, &i)
		if i != last[s]+1 {
			t.Fatalf("sender %d: frame %d after %d", s, i, last[s])
		}
		last[s] = i
	}
}

// A socket that fails under try ends the writer with that error.
func TestDirectErrorEndsRun(t *testing.T) {
	broken := errors.New("connection reset")
	q := New(1<<20, nil)
	q.Direct(func([]protocol.Encoded) (bool, error) { return false, broken })
	done := make(chan error)
	go func() {
		done <- q.Run(context.Background(), func([]protocol.Encoded) error {
			t.Error("the writer wrote after try failed")
			return nil
		})
	}()
	q.Send(frame("x"))
	select {
	case err := <-done:
		if !errors.Is(err, broken) {
			t.Fatalf("Run returned %v, want %v", err, broken)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not end after try failed")
	}
}
