// Package stream is a room's event stream: every room event is published here, and anyone
// interested (room_stream socket members, Server-Sent Events clients, Go code in the process)
// subscribes.
//
// Publish never blocks. Each subscription has a bounded buffer; a subscriber whose buffer is
// full when an event arrives is dropped: its channel is closed and Err says ErrSlow. The
// publisher, the room loop, is never slowed by a reader. Delivery is in publish order and at
// most once; a dropped subscriber that wants the stream back subscribes again and has missed
// whatever was published meanwhile.
//
// Concurrency: all methods are safe for concurrent use. Messages are shared between all
// subscribers and must only be read.
package stream
