package outbox

import (
	"context"
	"errors"
	"sync"

	"github.com/xrooms/xrooms/roomserver/protocol"
)

// ErrOverflow is returned by Run when the queue was dropped for exceeding its limit.
var ErrOverflow = errors.New("send queue overflow: the client is too slow")

// MaxBatch is how many frames Run hands to one write call, unless frames sent together
// need a few more.
const MaxBatch = 16

// item is a queued frame; more says the next frame was sent with it and goes in the same
// write pass.
type item struct {
	e    protocol.Encoded
	more bool
}

// Queue is a byte-bounded FIFO of encoded frames.
type Queue struct {
	maxBytes   int
	onOverflow func()
	// wake has room for one signal: a Send that finds it full knows the writer will look
	// at the queue anyway.
	wake chan struct{}

	// try, when set (Direct), writes a batch without blocking, in the sender's goroutine.
	try func(batch []protocol.Encoded) (all bool, err error)

	mu         sync.Mutex
	ring       []item // circular; len(ring) is the capacity
	head, n    int
	bytes      int
	closed     bool // no more Sends; Run returns once the queue is empty
	overflowed bool
	busy       bool               // a write is under way, by Run or by try
	rest       bool               // try left part of a batch unwritten: Run's next write sends it
	err        error              // try failed: Run returns it
	direct     []protocol.Encoded // try's batch, reused; owned by whoever set busy
}

// New returns a queue holding at most maxBytes of frames (frames larger than that are still
// accepted into an empty queue, so a large entities_state can always be sent).
// onOverflow, which may be nil, runs in its own goroutine when the queue overflows.
func New(maxBytes int, onOverflow func()) *Queue {
	return &Queue{
		maxBytes:   maxBytes,
		onOverflow: onOverflow,
		wake:       make(chan struct{}, 1),
		ring:       make([]item, 16),
	}
}

// Send queues frames without blocking, all or none: frames sent together are written in
// one pass (a join reply and its entities_state reach the client together). It reports
// false when the queue is closed or has just overflowed: nothing is sent and the socket is
// on its way out.
func (q *Queue) Send(frames ...protocol.Encoded) bool {
	if !q.add(frames) {
		return false
	}
	q.deliver()
	return true
}

// Direct has Send and Wake write in the caller's goroutine when no write is under way,
// with try, instead of waking the writer: a room flushing to many members then costs no
// goroutine switch per member. try must not block: it reports whether it wrote the whole
// batch, and keeps the rest itself, for the writer's next write (Run then calls write with
// an empty batch if nothing else is queued). An error from try ends Run with it. Set before
// the queue is used.
func (q *Queue) Direct(try func(batch []protocol.Encoded) (all bool, err error)) {
	q.try = try
}

// deliver has what is queued written: here with try when nothing is being written, else
// by the writer.
func (q *Queue) deliver() {
	q.mu.Lock()
	if q.n == 0 { // a write under way, or done, took it all
		q.mu.Unlock()
		return
	}
	if q.try == nil || q.busy || q.rest || q.err != nil {
		q.mu.Unlock()
		q.signal()
		return
	}
	q.busy = true
	batch := q.takeLocked(q.direct[:0])
	q.mu.Unlock()

	all, err := q.try(batch)
	clear(batch)

	q.mu.Lock()
	q.direct = batch[:0]
	q.busy = false
	if err != nil {
		q.err = err
	}
	q.rest = q.rest || !all
	// The writer may have looked while this write was under way, and waits again.
	wake := q.n > 0 || q.rest || q.err != nil || q.closed
	q.mu.Unlock()
	if wake {
		q.signal()
	}
}

// Hold queues frames as Send does, without waking the writer: they go out with the next
// frame sent, or on Wake. A room holds the replies to a member's pushes until its next flush,
// so that a busy member costs one write per flush rather than one per push.
func (q *Queue) Hold(frames ...protocol.Encoded) bool {
	return q.add(frames)
}

// Wake has whatever is queued sent.
func (q *Queue) Wake() { q.deliver() }

// add queues frames, all or none; false when the queue is closed or has just overflowed.
func (q *Queue) add(frames []protocol.Encoded) bool {
	size := 0
	for _, e := range frames {
		size += e.Len()
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	if q.n > 0 && q.bytes+size > q.maxBytes {
		q.overflowed, q.closed = true, true
		clear(q.ring) // let the frames be collected now, not when the socket goes
		q.head, q.n, q.bytes = 0, 0, 0
		q.mu.Unlock()
		q.signal()
		if q.onOverflow != nil {
			go q.onOverflow()
		}
		return false
	}
	for i, e := range frames {
		if q.n == len(q.ring) {
			q.grow()
		}
		q.ring[(q.head+q.n)%len(q.ring)] = item{e: e, more: i < len(frames)-1}
		q.n++
	}
	q.bytes += size
	q.mu.Unlock()
	return true
}

// grow doubles the ring; the lock must be held. The ring never shrinks: its size is bounded
// by the byte limit over the smallest frame, and a socket's life is short next to a server's.
func (q *Queue) grow() {
	ring := make([]item, 2*len(q.ring))
	for i := 0; i < q.n; i++ {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Close stops the queue taking frames; Run writes what is queued and then returns nil. Used
// for a graceful end, where the last diff must still reach the client.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// Len returns the queued bytes.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// Run hands queued frames to write, up to MaxBatch per call, in order, until the queue is
// closed and empty (nil), overflows (ErrOverflow), write or Direct's try fails (its error) or
// ctx ends. write must not keep the slice or its frames after returning; with Direct, it may
// get an empty batch, when only the rest of a partial try is to be sent.
func (q *Queue) Run(ctx context.Context, write func(batch []protocol.Encoded) error) error {
	batch := make([]protocol.Encoded, 0, MaxBatch)
	for {
		var work, done bool
		var err error
		batch, work, done, err = q.take(batch[:0])
		if err != nil {
			return err
		}
		if work {
			err := write(batch)
			clear(batch) // drop references to frames already written
			q.mu.Lock()
			q.busy = false
			q.mu.Unlock()
			if err != nil {
				return err
			}
			continue
		}
		if done {
			return nil
		}
		if ctx.Done() == nil { // a socket's writer: a plain receive is cheaper than a select
			<-q.wake
			continue
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// take gives Run its next write: frames, or the rest of a partial try (work); done when the
// queue is closed and all is written.
func (q *Queue) take(batch []protocol.Encoded) (_ []protocol.Encoded, work, done bool, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.overflowed:
		return batch, false, true, ErrOverflow
	case q.err != nil:
		return batch, false, true, q.err
	case q.busy: // try is writing; it signals when it is done
		return batch, false, false, nil
	}
	batch = q.takeLocked(batch)
	if len(batch) == 0 && !q.rest {
		return batch, false, q.closed, nil
	}
	q.busy, q.rest = true, false
	return batch, true, false, nil
}

// takeLocked moves up to MaxBatch frames from the queue into batch, more to finish a group
// of frames sent together; the lock must be held.
func (q *Queue) takeLocked(batch []protocol.Encoded) []protocol.Encoded {
	more := false
	for q.n > 0 && (len(batch) < MaxBatch || more) {
		it := q.ring[q.head]
		q.ring[q.head] = item{}
		q.head = (q.head + 1) % len(q.ring)
		q.n--
		q.bytes -= it.e.Len()
		batch = append(batch, it.e)
		more = it.more
	}
	return batch
}
