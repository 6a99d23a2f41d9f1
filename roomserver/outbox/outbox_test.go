package outbox

import (
	"context"
	"errors"
	"fmt"
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
		batch, _, _ = q.take(batch[:0])
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
