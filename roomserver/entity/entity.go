// Package entity holds the room's data model: entities, their components, the mutations rules
// produce and the entities_diff clients receive, with the reference semantics of applying each.
//
// Two ways of changing a State are defined here and everything else is tested against them:
//   - Apply: one mutation at a time, in event order (the meaning of a sequence of events).
//   - ApplyDiff: what a client does with an entities_diff: all creates, then all updates
//     (merge), then all deletes.
//
// A batch of mutations is correct when ApplyDiff of its diff gives the same State as Apply of
// each mutation in order.
package entity

import (
	"bytes"
	"encoding/json"
	"maps"
)

// Components are one entity's components by name; each value is kept as raw JSON because the
// server never needs to look inside it.
type Components map[string]json.RawMessage

// State is every entity of a room by entity id.
type State map[string]Components

// Op is what a mutation does to an entity.
type Op uint8

const (
	// Create makes the entity exist with exactly the given components, replacing any it had.
	Create Op = iota + 1
	// Update merges the given top-level components into an existing entity (a component set
	// to JSON null stays, with value null). An update of an entity that does not exist does
	// nothing.
	Update
	// Delete removes the entity. Deleting an entity that does not exist does nothing.
	Delete
)

func (o Op) String() string {
	switch o {
	case Create:
		return "create"
	case Update:
		return "update"
	case Delete:
		return "delete"
	}
	return "invalid"
}

// Mutation is one change to one entity, produced by a rule from a room event.
type Mutation struct {
	Op         Op
	ID         string
	Components Components
}

// Diff is the entities_diff message body. Deletes carry an empty object per entity, as the
// original design does.
type Diff struct {
	Creates map[string]Components `json:"creates"`
	Updates map[string]Components `json:"updates"`
	Deletes map[string]Components `json:"deletes"`
}

// NewDiff returns a Diff with its three maps made, so it encodes as {} rather than null.
func NewDiff() Diff {
	return Diff{Creates: map[string]Components{}, Updates: map[string]Components{}, Deletes: map[string]Components{}}
}

// Empty reports whether the diff changes nothing.
func (d Diff) Empty() bool {
	return len(d.Creates) == 0 && len(d.Updates) == 0 && len(d.Deletes) == 0
}

// Apply changes s by one mutation, in the meaning of a single event.
func (s State) Apply(m Mutation) {
	switch m.Op {
	case Create:
		s[m.ID] = maps.Clone(m.Components)
		if s[m.ID] == nil {
			s[m.ID] = Components{}
		}
	case Update:
		c, ok := s[m.ID]
		if !ok {
			return
		}
		maps.Copy(c, m.Components)
	case Delete:
		delete(s, m.ID)
	}
}

// ApplyDiff changes s as a client does: creates, then updates (merge), then deletes.
func (s State) ApplyDiff(d Diff) {
	for id, c := range d.Creates {
		s.Apply(Mutation{Op: Create, ID: id, Components: c})
	}
	for id, c := range d.Updates {
		s.Apply(Mutation{Op: Update, ID: id, Components: c})
	}
	for id := range d.Deletes {
		delete(s, id)
	}
}

// Clone returns a deep copy of s (component values are shared: raw JSON is never mutated).
func (s State) Clone() State {
	out := make(State, len(s))
	for id, c := range s {
		out[id] = maps.Clone(c)
	}
	return out
}

// Equal reports whether two states hold the same entities with byte-equal component values.
func (s State) Equal(o State) bool {
	if len(s) != len(o) {
		return false
	}
	for id, c := range s {
		oc, ok := o[id]
		if !ok || !c.Equal(oc) {
			return false
		}
	}
	return true
}

// Equal reports whether two component sets hold the same names with byte-equal values.
func (c Components) Equal(o Components) bool {
	return maps.EqualFunc(c, o, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) })
}
