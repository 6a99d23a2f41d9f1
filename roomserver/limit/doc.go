// Package limit holds the room server's limits on what clients may send: the size and shape
// of payloads (CheckPayload), the rate of a member's events (Events), the rate of connection
// attempts per source address (Connections), and the error every refusal carries (Error).
//
// Each refusal is cheap and changes nothing: a payload is checked before any rule sees it, a
// rate before the event reaches the room loop, and a connection before the WebSocket upgrade.
//
// Concurrency: Events is owned by one socket's reader goroutine; Connections is safe for
// concurrent use; CheckPayload has no state.
package limit
