// Package server is the room server's network half: one room (package room) behind HTTP.
//
//	GET  /socket/websocket      Phoenix Channels (V1 and V2 frames): topics room:<room>
//	                            (members), room_stream:<room> (read-only room events) and
//	                            phoenix (heartbeats)
//	GET  /rooms/<room>/stream   room events as Server-Sent Events
//	POST /rooms/<room>/events   inject a room event {"event": name, "payload": {...}}
//	GET  /rooms/<room>/entities the entities as of the last flush (entities_state)
//	GET  /healthz, /readyz, /metrics
//
// With Config.AuthSecret the room requires join tokens (package auth): a socket without a
// valid one gets 403 before the upgrade, the member acts as the token's subject, and the
// /rooms endpoints need a token too (posting events, a service token).
//
// Each socket has a reader goroutine (the HTTP handler: decodes frames, keeps the socket's
// channels, talks to the room) and a writer goroutine (drains the socket's outbox). The room
// never waits for a socket: it queues shared encoded frames into the outbox, and a socket
// whose outbox overflows is disconnected. Whoever has the outbox written (the room's
// wakers, the reader for its replies) writes it itself when the socket takes it all without
// waiting, as it nearly always does; the writer goroutine only sends what a socket would not
// take at once, under the write timeout (outbox.Direct).
//
// Limits (Config.Max*, package limit) are checked where they cost least and never on the
// room's loop, except the entity limit, which needs the room's state: connection attempts
// per address before the upgrade (429), frame size by the WebSocket reader (1009), event
// rate and payload size and depth on the socket's reader goroutine (an error reply naming
// the limit; 1008 for sustained abuse), topics per socket at join.
//
// Serve runs the room and the HTTP server until its context ends, then shuts down
// gracefully: stop accepting, flush the pending batch to members and store, let each
// socket's writer send what it has queued, and close every socket with 1001 (going away), so
// clients reconnect to the next server.
//
// Concurrency: a Server's methods are safe for concurrent use; Serve may be called once.
package server
