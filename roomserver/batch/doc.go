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
// The package is pure: no goroutines, no clock, no I/O. A Batcher belongs to one goroutine,
// the room loop, and is not safe for concurrent use.
package batch
