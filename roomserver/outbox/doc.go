// Package outbox is one socket's send queue: bounded in bytes, filled by anyone without ever
// blocking, drained by the socket's single writer goroutine several frames per pass.
//
// A member that cannot keep up must never slow the room or grow the server's memory: when a
// Send would take the queue over its limit, the queue drops what it holds, refuses all later
// sends and calls its overflow function in a new goroutine, which disconnects the socket.
// The client reconnects, rejoins and gets a fresh entities_state.
//
// With Direct, a Send or Wake that finds no write under way writes in its own goroutine,
// without blocking, and the writer goroutine only takes what the socket would not take at
// once: a flush to a thousand members then wakes no goroutines.
//
// Concurrency: Send, Hold, Wake, Close and Len are safe for concurrent use. Run must be
// called by exactly one goroutine, the socket's writer.
package outbox
