package room

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/xrooms/xrooms/roomserver/event"
	"github.com/xrooms/xrooms/roomserver/protocol"
)

// Push names with a meaning of their own.
const (
	// PushMoved is the client's "I moved"; it becomes user_moved.
	PushMoved = "i_moved"
	// PushEvent carries any room event: {"event_name": name, "payload": {...}}.
	PushEvent = "event"
)

// FromPush returns the room event a member's push stands for, stamped with the member's
// user id (whatever user_id the payload claims):
//
//	i_moved P                          -> user_moved P
//	event {event_name: N, payload: P}  -> N P
//	N P (any other name)               -> N P
//
// Names starting with phx_ belong to the protocol, and user_joined and user_left are the
// server's to emit (a client must not fake its own arrival or departure): both are refused.
//
// payload must be valid JSON, as a frame's payload is once protocol.Decode returns it: the
// fast path does not check it again.
func FromPush(user, name string, payload json.RawMessage) (event.Event, error) {
	if ev, ok := fromPushFast(user, name, payload); ok {
		return ev, nil
	}
	return fromPushGeneral(user, name, payload)
}

// fromPushFast is FromPush for the common pushes, with no reflection; ok is false when
// fromPushGeneral must decide (anything unusual, and every error).
func fromPushFast(user, name string, payload json.RawMessage) (event.Event, bool) {
	switch name {
	case PushMoved:
		name = EventUserMoved
	case PushEvent:
		wrapped, ok := protocol.SplitValidObject(payload)
		if !ok {
			return event.Event{}, false
		}
		for k := range wrapped { // encoding/json also matches struct fields case-insensitively
			if (k != "event_name" && strings.EqualFold(k, "event_name")) || (k != "payload" && strings.EqualFold(k, "payload")) {
				return event.Event{}, false
			}
		}
		if name, ok = protocol.PlainString(wrapped["event_name"]); !ok {
			return event.Event{}, false
		}
		payload = wrapped["payload"]
		if len(payload) == 0 || string(payload) == "null" {
			payload = json.RawMessage(`{}`)
		}
	}
	if CheckName(name) != nil || name == EventUserJoined || name == EventUserLeft {
		return event.Event{}, false
	}
	fields, ok := protocol.SplitValidObject(payload)
	if !ok {
		return event.Event{}, false
	}
	return event.New(name, user, fields), true
}

// fromPushGeneral is the reference FromPush; fromPushFast must agree with it.
func fromPushGeneral(user, name string, payload json.RawMessage) (event.Event, error) {
	switch name {
	case PushMoved:
		name = EventUserMoved
	case PushEvent:
		var wrapped struct {
			Name    *string         `json:"event_name"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(payload, &wrapped); err != nil || wrapped.Name == nil {
			return event.Event{}, errors.New(`event: payload must be {"event_name": string, "payload": object}`)
		}
		name, payload = *wrapped.Name, wrapped.Payload
		if len(payload) == 0 || string(payload) == "null" {
			payload = json.RawMessage(`{}`)
		}
	}
	if err := CheckName(name); err != nil {
		return event.Event{}, err
	}
	if name == EventUserJoined || name == EventUserLeft {
		return event.Event{}, fmt.Errorf("event %q is emitted by the server when a user joins or leaves", name)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil || fields == nil {
		return event.Event{}, fmt.Errorf("event %q: payload must be a JSON object", name)
	}
	return event.New(name, user, fields), nil
}

// CheckName refuses event names that cannot be room events: empty ones and the protocol's.
func CheckName(name string) error {
	if name == "" {
		return errors.New("event name must not be empty")
	}
	if strings.HasPrefix(name, protocol.ReservedPrefix) {
		return fmt.Errorf("event %q: names starting with %q belong to the Phoenix protocol", name, protocol.ReservedPrefix)
	}
	return nil
}
