package batch

import (
	"encoding/json"
	"maps"

	"github.com/xrooms/xrooms/roomserver/entity"
)

// kind is the net change to one entity since the last flush.
type kind uint8

const (
	// clean: no change since the last flush.
	clean kind = iota
	// created: the entity now has exactly slot.comps, whether or not it existed before.
	created
	// updated: the entity existed before and still does, with slot.comps merged in.
	updated
	// deleted: the entity existed before and is gone.
	deleted
)

// slot is one entity's flushed components and pending change. Every entity that exists in
// the flushed state or was created since has a slot, so that Add finds all it needs with one
// map lookup of the id, and Flush walks a slice of the changed slots rather than a map.
type slot struct {
	id string
	// fields are the entity's flushed components when flushed is true. A slice rather than a
	// map: merging an update into it, once per moved entity per flush, is then a short scan
	// rather than a map assignment per component, which is most of a flush's cost.
	fields  []field
	flushed bool
	// stale says that Batcher.state[id] lags fields, by updates State has yet to copy.
	stale bool
	kind  kind
	// comps is the pending components of a created or updated entity.
	comps entity.Components
}

// field is one flushed component.
type field struct {
	name  string
	value json.RawMessage
}

// merge sets each of c's components in fs, adding those it lacks, and returns fs. An entity
// has a few components, found faster by a scan than through a map; past smallEntity a map
// index keeps a large one (a payload of thousands of fields) from costing their square.
func merge(fs []field, c entity.Components) []field {
	switch {
	case len(fs) == 0: // c's names are distinct
		for name, v := range c {
			fs = append(fs, field{name, v})
		}
	case len(fs)+len(c) > smallEntity:
		at := make(map[string]int, len(fs)+len(c))
		for i, f := range fs {
			at[f.name] = i
		}
		for name, v := range c {
			if i, ok := at[name]; ok {
				fs[i].value = v
			} else {
				at[name] = len(fs)
				fs = append(fs, field{name, v})
			}
		}
	case len(fs) <= 2*len(c) && lookupAll(fs, c):
		// An update of the components the entity has (a move): found by lookups, with no
		// iteration of c, whose start (a random number) costs more than the lookups.
	default:
	next:
		for name, v := range c {
			for i := range fs {
				if fs[i].name == name {
					fs[i].value = v
					continue next
				}
			}
			fs = append(fs, field{name, v})
		}
	}
	return fs
}

const smallEntity = 16

// lookupAll sets each field c has and reports whether that was all of c: when it is not, c
// has names fs lacks, and merge goes on to add them (setting the found ones again).
func lookupAll(fs []field, c entity.Components) bool {
	found := 0
	for i := range fs {
		if v, ok := c[fs[i].name]; ok {
			fs[i].value = v
			found++
		}
	}
	return found == len(c)
}

// Batcher coalesces mutations per entity between flushes. It is not safe for concurrent use:
// one goroutine (the room loop) owns it.
type Batcher struct {
	// state is the flushed state as State returns it. Creates and deletes reach it at Flush,
	// updates only when State is called: most flushes have no one joining to need it.
	state entity.State
	// stale lists the slots whose entity in state lags their fields (a slot may be listed
	// again after being recycled; its stale flag says whether it still needs copying).
	stale []*slot
	// slots holds the slot of every entity that is flushed or created since the last flush.
	slots map[string]*slot
	// dirty lists the slots changed since the last flush, each once, for Flush to walk. It may
	// also hold slots already dropped from slots (an entity born and gone within the
	// interval, whose kind is clean again); Flush recycles those.
	dirty []*slot
	// pending is the number of entities with changes: the slots in dirty that are not clean.
	pending int
	// free holds slots of deleted entities for reuse.
	free []*slot
	// live is the number of entities with pending changes applied, kept as mutations come
	// so that a limit on entities costs nothing per event.
	live int
	// diff is what Flush returns, its maps reused from one flush to the next.
	diff entity.Diff
}

// New returns a Batcher whose flushed state is initial; the Batcher takes initial over and
// the caller must not use it afterwards. A nil initial is an empty room.
func New(initial entity.State) *Batcher {
	if initial == nil {
		initial = entity.State{}
	}
	b := &Batcher{
		state: initial,
		slots: make(map[string]*slot, len(initial)),
		live:  len(initial),
		diff:  entity.NewDiff(),
	}
	// One allocation for the room's slots and one for their fields.
	all := make([]slot, 0, len(initial))
	n := 0
	for _, c := range initial {
		n += len(c)
	}
	fields := make([]field, 0, n)
	for id, c := range initial {
		if c == nil { // State copies updates into it in place
			initial[id] = entity.Components{}
		}
		fs := merge(fields[len(fields):], c) // appends in place: fields has the room
		fs = fs[:len(fs):len(fs)]            // so that a new component moves fs, not the next
		fields = fields[:len(fields)+len(fs)]
		all = append(all, slot{id: id, fields: fs, flushed: true})
		b.slots[id] = &all[len(all)-1]
	}
	return b
}

// Add records m. It takes over m.Components: the Batcher may keep the map and change it
// (later updates are merged into it), so the caller must not use it afterwards. Rules hand out
// a fresh map per mutation, so their output can be added as it is. Mutations that change
// nothing (an update or delete of a missing entity, an empty update, an invalid op) are
// dropped.
func (b *Batcher) Add(m entity.Mutation) {
	s := b.slots[m.ID]
	switch m.Op {
	case entity.Create:
		comps := m.Components
		if comps == nil {
			comps = entity.Components{}
		}
		if s == nil {
			s = b.newSlot(m.ID)
			b.slots[m.ID] = s
		}
		if s.kind == deleted || s.kind == clean && !s.flushed {
			b.live++
		}
		b.touch(s)
		s.kind, s.comps = created, comps // a create replaces whatever was pending
	case entity.Update:
		if s == nil || len(m.Components) == 0 {
			return
		}
		switch s.kind {
		case clean: // a clean slot is of a flushed entity
			b.touch(s)
			s.kind, s.comps = updated, m.Components
		case created, updated:
			maps.Copy(s.comps, m.Components)
		} // an update of a deleted entity does nothing
	case entity.Delete:
		if s == nil || s.kind == deleted {
			return
		}
		b.live--
		if s.kind == created && !s.flushed {
			// Born and gone within the interval: clients never need to hear of it. The slot
			// stays in dirty, clean and detached, for Flush to recycle.
			delete(b.slots, m.ID)
			s.kind, s.comps = clean, nil
			b.pending--
			return
		}
		b.touch(s)
		s.kind, s.comps = deleted, nil
	}
}

// touch lists s as changed, unless it already is.
func (b *Batcher) touch(s *slot) {
	if s.kind == clean {
		b.dirty = append(b.dirty, s)
		b.pending++
	}
}

// Lookup returns the entity's current components, flushed state plus pending changes, and
// whether it exists. The map is a new copy the caller may change (component values are
// shared raw JSON and must not be changed). Its signature matches rules.Lookup.
func (b *Batcher) Lookup(id string) (entity.Components, bool) {
	s := b.slots[id]
	if s == nil {
		return nil, false
	}
	switch s.kind {
	case clean:
		return s.fieldsMap(0), true
	case created:
		return maps.Clone(s.comps), true
	case updated:
		c := s.fieldsMap(len(s.comps))
		maps.Copy(c, s.comps)
		return c, true
	}
	return nil, false
}

// Exists reports whether the entity exists with the pending changes applied, without the
// copy Lookup makes.
func (b *Batcher) Exists(id string) bool {
	s := b.slots[id]
	return s != nil && s.kind != deleted
}

// Flush returns the net change since the last flush as a Diff and advances the flushed state
// by it. With nothing pending the diff is Empty (its maps are never nil). No entity is in
// more than one of the diff's maps.
//
// The diff is valid until the next Flush: its three maps are the Batcher's, cleared and
// filled again by every Flush, so that a steady room flushes without allocating. The caller
// must be done with it (encoded, stored) before it calls Flush again, and copy whatever it
// keeps longer or hands to another goroutine. Nothing else the Batcher does (Add, Lookup,
// State) changes it. The caller must not change the diff's maps or the component maps in
// them, which may be shared with the mutations added.
func (b *Batcher) Flush() entity.Diff {
	d := b.diff
	clear(d.Creates)
	clear(d.Updates)
	clear(d.Deletes)
	for i, s := range b.dirty {
		b.dirty[i] = nil
		switch s.kind {
		case created:
			d.Creates[s.id] = s.comps
			clear(s.fields)
			s.fields = merge(s.fields[:0], s.comps)
			s.flushed = true
			// The state gets its own copy, as State copies updates into it in place later,
			// and the diff handed out must not change.
			b.state[s.id] = maps.Clone(s.comps)
			s.stale = false
		case updated:
			d.Updates[s.id] = s.comps
			s.fields = merge(s.fields, s.comps)
			if !s.stale {
				s.stale = true
				b.stale = append(b.stale, s)
			}
		case deleted:
			d.Deletes[s.id] = noComponents
			delete(b.state, s.id)
			delete(b.slots, s.id)
			b.release(s)
			continue
		case clean: // born and gone, already out of slots
			b.release(s)
			continue
		}
		s.kind, s.comps = clean, nil
	}
	b.dirty = b.dirty[:0]
	b.pending = 0
	return d
}

// noComponents is every deleted entity's value in a diff (an empty object on the wire, as
// the original design sends); one shared map, as the diff's maps must not be changed.
var noComponents = entity.Components{}

// State returns the room's entities as of the last flush: what a client that joins now must
// receive as entities_state, since the next Flush is a diff against it. It is the Batcher's
// own state, not a copy: the caller must only read it, and only until the next Flush (use
// Clone to keep it or to hand it to another goroutine). Flush leaves the updates out of it
// (see Batcher.state), so a call costs a copy of the components of each entity updated since
// the last call.
func (b *Batcher) State() entity.State {
	for i, s := range b.stale {
		if s.stale {
			s.stale = false
			c := b.state[s.id]
			for _, f := range s.fields {
				c[f.name] = f.value
			}
		}
		b.stale[i] = nil
	}
	b.stale = b.stale[:0]
	return b.state
}

// Len returns the number of entities as of the last flush.
func (b *Batcher) Len() int {
	return len(b.state)
}

// Current returns the number of entities with the pending changes applied: what Len will
// be after the next Flush.
func (b *Batcher) Current() int {
	return b.live
}

// Pending returns the number of entities with changes not yet flushed.
func (b *Batcher) Pending() int {
	return b.pending
}

// newSlot returns a clean slot for an entity not in the flushed state.
func (b *Batcher) newSlot(id string) *slot {
	if n := len(b.free); n > 0 {
		s := b.free[n-1]
		b.free = b.free[:n-1]
		s.id = id
		return s
	}
	return &slot{id: id}
}

// release keeps s for reuse, dropping its maps, which now belong to a diff or are garbage,
// and keeping its fields' room.
func (b *Batcher) release(s *slot) {
	clear(s.fields)
	*s = slot{fields: s.fields[:0]}
	b.free = append(b.free, s)
}

// fieldsMap returns the flushed components as a new map with room for extra more.
func (s *slot) fieldsMap(extra int) entity.Components {
	c := make(entity.Components, len(s.fields)+extra)
	for _, f := range s.fields {
		c[f.name] = f.value
	}
	return c
}
