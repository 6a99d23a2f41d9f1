// Package batch coalesces a room's entity mutations between two flushes into one
// entities_diff.
//
// A Batcher keeps the room's state as of the last flush and, per entity, the net change since
// then. Flush turns the pending changes into a Diff and advances the flushed state by it. The
// diff is built for the client's order (all creates, then all updates merged, then all
// deletes), so that for any starting state and any sequence of mutations
//
//	start.Clone().ApplyDiff(b.Flush())
//
// equals applying each mutation in order with entity.State.Apply. In particular an entity
// deleted and created again within one interval (a user who leaves and rejoins) comes out as a
// create alone: deletes are applied last, so a delete next to it would remove it again.
//
// Flush reuses its diff's maps: a diff is valid until the next Flush, which the room loop
// calls only after encoding and storing the previous one. Between flushes the work per event
// is one map lookup of the entity's id and, for an entity already changed in the interval, a
// merge of the components; per flush, a merge of each changed entity's components into the
// flushed state, kept as a short slice per entity (State builds the maps only when asked).
//
// The package is pure: no goroutines, no clock, no I/O. A Batcher belongs to one goroutine,
// the room loop, and is not safe for concurrent use.
package batch
