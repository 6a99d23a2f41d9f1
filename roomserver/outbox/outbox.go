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

	mu         sync.Mutex
	ring       []item // circular; len(ring) is the capacity
	head, n    int
	bytes      int
	closed     bool // no more Sends; Run returns once the queue is empty
	overflowed bool
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
	q.signal()
	return true
}

// Hold queues frames as Send does, without waking the writer: they go out with the next
// frame sent, or on Wake. A room holds the replies to a member's pushes until its next flush,
// so that a busy member costs one write per flush rather than one per push.
func (q *Queue) Hold(frames ...protocol.Encoded) bool {
	return q.add(frames)
}

// Wake has the writer send whatever is queued.
func (q *Queue) Wake() { q.signal() }

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
// closed and empty (nil), overflows (ErrOverflow), write fails (its error) or ctx ends. write
// must not keep the slice or its frames after returning.
func (q *Queue) Run(ctx context.Context, write func(batch []protocol.Encoded) error) error {
	batch := make([]protocol.Encoded, 0, MaxBatch)
	for {
		var done, overflowed bool
		batch, done, overflowed = q.take(batch[:0])
		if overflowed {
			return ErrOverflow
		}
		if len(batch) > 0 {
			err := write(batch)
			clear(batch) // drop references to frames already written
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

// take moves up to MaxBatch frames from the queue into batch, more to finish a group of
// frames sent together.
func (q *Queue) take(batch []protocol.Encoded) (_ []protocol.Encoded, done, overflowed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.overflowed {
		return batch, true, true
	}
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
	return batch, q.closed && q.n == 0, false
}
