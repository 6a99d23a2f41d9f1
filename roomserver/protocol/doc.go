// Package protocol encodes and decodes Phoenix Channels frames, the wire format of the
// official phoenix JavaScript client (see docs/phoenix-wire.md).
//
// Two serializers exist, chosen per socket by the vsn query parameter (ParseVersion):
// V2 frames are JSON arrays [join_ref, ref, topic, event, payload]; V1 frames are objects
// {"topic", "event", "payload", "ref", "join_ref"}, and server-to-client V1 frames leave
// join_ref out. Refs are strings or null, and Ref keeps the two apart.
//
// Encode returns an Encoded: a small per-frame head, the payload bytes as given (never
// copied) and a closing byte. A broadcast is encoded once per flush and version, and the same
// Encoded, prepared once (Prepare: framed, and compressed at most once, by the WebSocket
// library), is queued to every member; writers send those bytes as they are.
//
// Concurrency: the package has no state. Frame and Encoded are values; an Encoded's byte
// slices are never written after Encode returns, so one Encoded may be shared by any number
// of goroutines, which must only read it.
package protocol
