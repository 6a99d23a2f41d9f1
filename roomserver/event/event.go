// Package event defines room events: what happens in a room, told as a story
// ({"event": "user_grabbed", "payload": {"user_id": "bob", "object_id": "shield"}}).
// Room events know nothing of entities; rules turn them into entity mutations.
package event

import (
	"encoding/json"
	"fmt"
)

// UserIDKey is the payload key that names the acting user. The server stamps it on every
// event a member sends, so a client can never act as another user.
const UserIDKey = "user_id"

// Event is one room event as published on the room's stream.
type Event struct {
	Name    string                     `json:"event"`
	Payload map[string]json.RawMessage `json:"payload"`
}

// New returns an event with the acting user stamped on its payload (when user is not empty).
// The payload map is taken over, not copied.
func New(name, user string, payload map[string]json.RawMessage) Event {
	if payload == nil {
		payload = map[string]json.RawMessage{}
	}
	if user != "" {
		payload[UserIDKey] = quote(user)
	}
	return Event{Name: name, Payload: payload}
}

// quote returns s as json.Marshal encodes it, without reflection for the plain ASCII ids
// that are the rule.
func quote(s string) json.RawMessage {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return b
		}
	}
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// UserID returns the acting user's id, or "" when the event has none.
func (e Event) UserID() string {
	s, _ := e.String(UserIDKey)
	return s
}

// String returns the payload field key as a string; ok is false when it is missing or not a
// JSON string.
func (e Event) String(key string) (string, bool) {
	v, ok := e.Payload[key]
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// RequireString is String with an error that names the event and the field.
func (e Event) RequireString(key string) (string, error) {
	s, ok := e.String(key)
	if !ok || s == "" {
		return "", fmt.Errorf("event %q: payload field %q must be a non-empty string", e.Name, key)
	}
	return s, nil
}
