package batch

import (
	"maps"

	"github.com/xrooms/xrooms/roomserver/entity"
)

// kind is the net change to one entity since the last flush.
type kind uint8

const (
	// created: the entity now has exactly record.comps, whether or not it existed before.
	created kind = iota + 1
	// updated: the entity existed before and still does, with record.comps merged in.
	updated
	// deleted: the entity existed before and is gone.
	deleted
)

// record is one entity's pending change. An entity whose changes cancel out (created and
// deleted within the interval) has no record.
type record struct {
	kind kind
	// existed says whether the entity was in the flushed state; it decides whether a delete
	// after a create must still reach clients.
	existed bool
	comps   entity.Components
}

// Batcher coalesces mutations per entity between flushes. It is not safe for concurrent use:
// one goroutine (the room loop) owns it.
type Batcher struct {
	flushed entity.State
	pending map[string]*record
	// free holds records from earlier intervals for reuse, so a steady stream of moves
	// allocates no records.
	free []*record
	// live is the number of entities with pending changes applied, kept as mutations come
	// so that a limit on entities costs nothing per event.
	live int
}

// New returns a Batcher whose flushed state is initial; the Batcher takes initial over and
// the caller must not use it afterwards. A nil initial is an empty room.
func New(initial entity.State) *Batcher {
	if initial == nil {
		initial = entity.State{}
	}
	return &Batcher{flushed: initial, pending: map[string]*record{}, live: len(initial)}
}

// Add records m. It takes over m.Components: the Batcher may keep the map and change it
// (later updates are merged into it), so the caller must not use it afterwards. Rules hand out
// a fresh map per mutation, so their output can be added as it is. Mutations that change
// nothing (an update or delete of a missing entity, an empty update, an invalid op) are
// dropped.
func (b *Batcher) Add(m entity.Mutation) {
	rec := b.pending[m.ID]
	switch m.Op {
	case entity.Create:
		comps := m.Components
		if comps == nil {
			comps = entity.Components{}
		}
		if rec == nil {
			_, existed := b.flushed[m.ID]
			if !existed {
				b.live++
			}
			b.put(m.ID, created, existed, comps)
			return
		}
		if rec.kind == deleted {
			b.live++
		}
		rec.kind, rec.comps = created, comps // a create replaces whatever was pending
	case entity.Update:
		if len(m.Components) == 0 {
			return
		}
		if rec == nil {
			if _, ok := b.flushed[m.ID]; ok {
				b.put(m.ID, updated, true, m.Components)
			}
			return
		}
		if rec.kind != deleted { // an update of a deleted entity does nothing
			maps.Copy(rec.comps, m.Components)
		}
	case entity.Delete:
		if rec == nil {
			if _, ok := b.flushed[m.ID]; ok {
				b.live--
				b.put(m.ID, deleted, true, nil)
			}
			return
		}
		if rec.kind != deleted {
			b.live--
		}
		if rec.kind == created && !rec.existed {
			// Born and gone within the interval: clients never need to hear of it.
			delete(b.pending, m.ID)
			b.release(rec)
			return
		}
		rec.kind, rec.comps = deleted, nil
	}
}

// Lookup returns the entity's current components, flushed state plus pending changes, and
// whether it exists. The map is a new copy the caller may change (component values are
// shared raw JSON and must not be changed). Its signature matches rules.Lookup.
func (b *Batcher) Lookup(id string) (entity.Components, bool) {
	rec := b.pending[id]
	if rec == nil {
		c, ok := b.flushed[id]
		if !ok {
			return nil, false
		}
		return maps.Clone(c), true
	}
	switch rec.kind {
	case created:
		return maps.Clone(rec.comps), true
	case updated:
		base := b.flushed[id]
		c := make(entity.Components, len(base)+len(rec.comps))
		maps.Copy(c, base)
		maps.Copy(c, rec.comps)
		return c, true
	}
	return nil, false
}

// Exists reports whether the entity exists with the pending changes applied, without the
// copy Lookup makes.
func (b *Batcher) Exists(id string) bool {
	if rec := b.pending[id]; rec != nil {
		return rec.kind != deleted
	}
	_, ok := b.flushed[id]
	return ok
}

// Flush returns the net change since the last flush as a Diff and advances the flushed state
// by it. With nothing pending the diff is Empty (its maps are never nil). No entity is in
// more than one of the diff's maps. The Batcher keeps no reference to the diff's maps, so the
// caller may hand the diff to another goroutine (to encode or store it); it must not change
// the component maps, which may be shared with the mutations added.
func (b *Batcher) Flush() entity.Diff {
	var nc, nu, nd int
	for _, rec := range b.pending {
		switch rec.kind {
		case created:
			nc++
		case updated:
			nu++
		case deleted:
			nd++
		}
	}
	d := entity.Diff{
		Creates: make(map[string]entity.Components, nc),
		Updates: make(map[string]entity.Components, nu),
		Deletes: make(map[string]entity.Components, nd),
	}
	for id, rec := range b.pending {
		switch rec.kind {
		case created:
			d.Creates[id] = rec.comps
			// The flushed state gets its own copy: updates are merged into it in place
			// later, and the diff already handed out must not change.
			b.flushed[id] = maps.Clone(rec.comps)
		case updated:
			d.Updates[id] = rec.comps
			maps.Copy(b.flushed[id], rec.comps)
		case deleted:
			d.Deletes[id] = entity.Components{}
			delete(b.flushed, id)
		}
		b.release(rec)
	}
	clear(b.pending)
	return d
}

// State returns the room's entities as of the last flush: what a client that joins now must
// receive as entities_state, since the next Flush is a diff against it. It is the Batcher's
// own state, not a copy: the caller must only read it, and only until the next Flush (use
// Clone to keep it or to hand it to another goroutine).
func (b *Batcher) State() entity.State {
	return b.flushed
}

// Len returns the number of entities as of the last flush.
func (b *Batcher) Len() int {
	return len(b.flushed)
}

// Current returns the number of entities with the pending changes applied: what Len will
// be after the next Flush.
func (b *Batcher) Current() int {
	return b.live
}

// Pending returns the number of entities with changes not yet flushed.
func (b *Batcher) Pending() int {
	return len(b.pending)
}

func (b *Batcher) put(id string, k kind, existed bool, comps entity.Components) {
	var rec *record
	if n := len(b.free); n > 0 {
		rec = b.free[n-1]
		b.free = b.free[:n-1]
	} else {
		rec = new(record)
	}
	*rec = record{kind: k, existed: existed, comps: comps}
	b.pending[id] = rec
}

// release returns rec for reuse, dropping its map, which now belongs to a diff or is garbage.
func (b *Batcher) release(rec *record) {
	*rec = record{}
	b.free = append(b.free, rec)
}
