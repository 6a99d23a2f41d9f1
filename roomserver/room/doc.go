// Package room runs one room: its members, its entities and its event stream.
//
// A single goroutine, Run, owns everything that changes: the batcher (the room's entities
// and the mutations not yet flushed), the rules, the store, the member set and the sync
// ticker. Sockets, HTTP handlers and Go code talk to it only through Room's methods, which
// pass closures to that loop over a channel, so room state needs no locks and every event is
// applied in one order. The loop never blocks on a member: frames go to each member's Sender,
// which must not block (outbox.Queue), and the room stream never blocks either.
//
// Every sync interval the loop flushes: the batch becomes one entities_diff, which is
// committed to the store, encoded once per protocol version and queued, as the same bytes,
// to every member, behind the replies held since the last flush. Then the wakers (a
// goroutine per core) have each member's queue written, a share each, while the loop goes
// on with pushes. A joiner first gets its join reply and entities_state (the state as of
// the last flush, encoded once per flush and cached), then the diffs that follow, so its
// view stays exact.
//
// Users: a member is one socket's membership of the room topic; a user is who it acts as.
// A user with several memberships (tabs) is one entity: user_joined is emitted when the
// user's first membership arrives, user_left when the last goes.
//
// Concurrency: all methods of Room are safe for concurrent use. Member's methods read
// fields that never change and are safe too.
package room
