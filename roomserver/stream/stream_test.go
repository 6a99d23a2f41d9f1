package stream

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/xrooms/xrooms/roomserver/event"
)

func ev(name, user string) event.Event {
	return event.New(name, user, map[string]json.RawMessage{"x": json.RawMessage(`1`)})
}

func TestPublishReachesEverySubscriberInOrder(t *testing.T) {
	h := NewHub()
	a, b := h.Subscribe(4), h.Subscribe(4)
	h.Publish(ev("one", "bob"))
	h.Publish(ev("two", "bob"))
	for _, s := range []*Subscription{a, b} {
		for _, want := range []string{"one", "two"} {
			m := <-s.C()
			if m.Event.Name != want {
				t.Fatalf("got %s, want %s", m.Event.Name, want)
			}
			if got := string(m.Payload); got != `{"user_id":"bob","x":1}` {
				t.Fatalf("payload %s", got)
			}
		}
	}
	m := Message{Event: ev("door_opened", ""), Payload: json.RawMessage(`{"x":1}`)}
	if got := string(m.JSON()); got != `{"event":"door_opened","payload":{"x":1}}` {
		t.Fatalf("JSON %s", got)
	}
}

func TestSlowSubscriberIsDroppedOthersKeepReceiving(t *testing.T) {
	h := NewHub()
	slow, fast := h.Subscribe(1), h.Subscribe(8)
	if d := h.Publish(ev("one", "")); d != 0 {
		t.Fatalf("dropped %d", d)
	}
	if d := h.Publish(ev("two", "")); d != 1 {
		t.Fatalf("dropped %d, want the slow one", d)
	}
	if m, ok := <-slow.C(); !ok || m.Event.Name != "one" {
		t.Fatal("the slow subscriber lost what it had buffered")
	}
	if _, ok := <-slow.C(); ok {
		t.Fatal("slow subscriber still open")
	}
	if !errors.Is(slow.Err(), ErrSlow) {
		t.Fatalf("Err %v", slow.Err())
	}
	if len(fast.C()) != 2 || h.Len() != 1 {
		t.Fatalf("fast subscriber has %d messages, hub %d subscribers", len(fast.C()), h.Len())
	}
}

func TestCloseAndUnsubscribe(t *testing.T) {
	h := NewHub()
	a := h.Subscribe(1)
	a.Close()
	a.Close()
	if _, ok := <-a.C(); ok || a.Err() != nil {
		t.Fatal("unsubscribed channel not closed cleanly")
	}
	b := h.Subscribe(1)
	h.Close()
	if _, ok := <-b.C(); ok || !errors.Is(b.Err(), ErrClosed) {
		t.Fatal("hub close did not end the subscription")
	}
	c := h.Subscribe(1)
	if _, ok := <-c.C(); ok || !errors.Is(c.Err(), ErrClosed) {
		t.Fatal("subscribing to a closed hub must end at once")
	}
	h.Publish(ev("after", "")) // must not panic
}
