package stream

import (
	"encoding/json"
	"errors"
	"sync"

	"github.com/xrooms/xrooms/roomserver/event"
)

var (
	// ErrSlow ends a subscription that fell a full buffer behind.
	ErrSlow = errors.New("stream subscriber too slow: events were dropped")
	// ErrClosed ends every subscription when the stream closes (the room stopped).
	ErrClosed = errors.New("stream closed")
)

// Message is one published room event.
type Message struct {
	Event event.Event
	// Payload is Event.Payload as JSON, encoded once for all subscribers.
	Payload json.RawMessage
}

// JSON returns the message as {"event": name, "payload": payload}, the shape backend services
// post events in.
func (m Message) JSON() []byte {
	name, _ := json.Marshal(m.Event.Name) // a string always marshals
	b := make([]byte, 0, len(`{"event":,"payload":}`)+len(name)+len(m.Payload))
	b = append(b, `{"event":`...)
	b = append(b, name...)
	b = append(b, `,"payload":`...)
	b = append(b, m.Payload...)
	return append(b, '}')
}

// Hub fans published events out to its subscriptions.
type Hub struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// NewHub returns an open hub with no subscribers.
func NewHub() *Hub {
	return &Hub{subs: map[*Subscription]struct{}{}}
}

// Subscription is one subscriber's view of the stream.
type Subscription struct {
	hub *Hub
	c   chan Message
	err error // set, under hub.mu, before c is closed
}

// Subscribe returns a subscription buffering at most buffer messages (at least 1). On a
// closed hub the subscription is already ended with ErrClosed.
func (h *Hub) Subscribe(buffer int) *Subscription {
	s := &Subscription{hub: h, c: make(chan Message, max(buffer, 1))}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.end(ErrClosed)
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

// Len returns the number of subscriptions.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Publish delivers ev to every subscription without blocking and reports how many
// subscribers were dropped for being slow. ev and its payload must not be changed afterwards.
func (h *Hub) Publish(ev event.Event) (dropped int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) == 0 {
		return 0 // no one listens: skip encoding
	}
	payload, err := json.Marshal(ev.Payload)
	if err != nil { // raw values were checked when they came in; never expected
		payload = []byte(`{}`)
	}
	m := Message{Event: ev, Payload: payload}
	for s := range h.subs {
		select {
		case s.c <- m:
		default:
			delete(h.subs, s)
			s.end(ErrSlow)
			dropped++
		}
	}
	return dropped
}

// Close ends every subscription with ErrClosed; later subscriptions start ended.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		s.end(ErrClosed)
	}
}

// end closes the channel; hub.mu must be held outside.
func (s *Subscription) end(err error) {
	s.err = err
	close(s.c)
}

// C returns the channel of messages. It is closed when the subscription ends; Err then says
// why.
func (s *Subscription) C() <-chan Message { return s.c }

// Err returns why the subscription ended: ErrSlow, ErrClosed, or nil when it was closed by
// its owner or has not ended.
func (s *Subscription) Err() error {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return s.err
}

// Close unsubscribes; C is closed. Calling it more than once, or after the hub dropped the
// subscription, is harmless.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if _, ok := s.hub.subs[s]; ok {
		delete(s.hub.subs, s)
		s.end(nil)
	}
}
