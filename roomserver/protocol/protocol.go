package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Event names and the topic of the Phoenix protocol itself.
const (
	EventJoin      = "phx_join"
	EventLeave     = "phx_leave"
	EventReply     = "phx_reply"
	EventClose     = "phx_close"
	EventError     = "phx_error"
	EventHeartbeat = "heartbeat"

	// TopicPhoenix carries heartbeats; it needs no join.
	TopicPhoenix = "phoenix"

	// ReservedPrefix starts every event name the protocol owns; clients' own events never do.
	ReservedPrefix = "phx_"
)

// Reply statuses.
const (
	StatusOK    = "ok"
	StatusError = "error"
)

// Version is a serializer version.
type Version uint8

const (
	// V1 frames are JSON objects: the serializer of old clients, and of a socket with no vsn.
	V1 Version = 1
	// V2 frames are JSON arrays: the official client's default.
	V2 Version = 2
)

// Versions lists every Version, for code that keeps something per version.
var Versions = [...]Version{V1, V2}

func (v Version) String() string {
	switch v {
	case V1:
		return "1.0.0"
	case V2:
		return "2.0.0"
	}
	return fmt.Sprintf("invalid(%d)", uint8(v))
}

// ParseVersion reads the socket's vsn query parameter: "2.x" selects V2; "1.x" or none
// selects V1, as Phoenix does. Any other value is an error (Phoenix refuses the socket).
func ParseVersion(vsn string) (Version, error) {
	major, _, _ := strings.Cut(vsn, ".")
	switch {
	case vsn == "", major == "1":
		return V1, nil
	case major == "2":
		return V2, nil
	}
	return 0, fmt.Errorf("unsupported protocol version vsn=%q: use 1.x or 2.x", vsn)
}

// Ref is a frame's ref or join_ref: a string, or null. The zero Ref is null.
type Ref struct {
	s     string
	valid bool
}

// StringRef returns the Ref holding s.
func StringRef(s string) Ref { return Ref{s: s, valid: true} }

// Null reports whether r is null.
func (r Ref) Null() bool { return !r.valid }

// String returns the ref's string, or "null"; it is meant for logs.
func (r Ref) String() string {
	if !r.valid {
		return "null"
	}
	return r.s
}

// Frame is one Phoenix message. Payload is always a JSON object.
type Frame struct {
	JoinRef Ref
	Ref     Ref
	Topic   string
	Event   string
	Payload json.RawMessage
}

// Reply returns the phx_reply answering req: same topic, ref and join_ref.
func Reply(req Frame, status string, response json.RawMessage) Frame {
	if len(response) == 0 {
		if status == StatusOK { // the reply to nearly every push: one shared payload
			return Frame{JoinRef: req.JoinRef, Ref: req.Ref, Topic: req.Topic, Event: EventReply, Payload: okEmpty}
		}
		response = emptyObject
	}
	p := make([]byte, 0, len(`{"status":"","response":}`)+len(status)+len(response))
	p = append(p, `{"status":`...)
	p = appendString(p, status)
	p = append(p, `,"response":`...)
	p = append(p, response...)
	p = append(p, '}')
	return Frame{JoinRef: req.JoinRef, Ref: req.Ref, Topic: req.Topic, Event: EventReply, Payload: p}
}

// ReplyOK returns the ok reply to req; a nil response is {}.
func ReplyOK(req Frame, response json.RawMessage) Frame {
	return Reply(req, StatusOK, response)
}

// ReplyError returns the error reply to req with response {"reason": reason}.
func ReplyError(req Frame, reason string) Frame {
	r := appendString([]byte(`{"reason":`), reason)
	r = append(r, '}')
	return Reply(req, StatusError, r)
}

// Push returns a server push to one member of a channel: it carries the channel's join_ref
// and a null ref.
func Push(joinRef Ref, topic, event string, payload json.RawMessage) Frame {
	return Frame{JoinRef: joinRef, Topic: topic, Event: event, Payload: payload}
}

// Broadcast returns a message for every member of a topic: both refs are null, so the same
// bytes suit every member whatever its join_ref.
func Broadcast(topic, event string, payload json.RawMessage) Frame {
	return Frame{Topic: topic, Event: event, Payload: payload}
}

// Close returns the phx_close that ends the channel joined with joinRef.
func Close(joinRef Ref, topic string) Frame {
	return Frame{JoinRef: joinRef, Ref: joinRef, Topic: topic, Event: EventClose, Payload: emptyObject}
}

// ChannelError returns the phx_error telling the client that the channel joined with joinRef
// failed on the server; the client rejoins it after a second with a new join_ref.
func ChannelError(joinRef Ref, topic string) Frame {
	return Frame{JoinRef: joinRef, Ref: joinRef, Topic: topic, Event: EventError, Payload: emptyObject}
}

var emptyObject = json.RawMessage(`{}`)

// okEmpty is the payload of an ok reply with no response. Encoded payloads are never
// changed, so one serves every reply.
var okEmpty = json.RawMessage(`{"status":"ok","response":{}}`)

// Decode parses one text frame in version v. The frame keeps none of data, which the caller
// may reuse.
func Decode(v Version, data []byte) (Frame, error) {
	f, err := decode(v, data)
	if err != nil {
		return Frame{}, fmt.Errorf("failed to decode frame: %w", err)
	}
	return f, nil
}

func decode(v Version, data []byte) (Frame, error) {
	if v == V2 {
		if f, ok := decodeV2Fast(data); ok {
			return f, check(f)
		}
	}
	return decodeGeneral(v, data)
}

// decodeGeneral is the reference decoder; decodeV2Fast must agree with it.
func decodeGeneral(v Version, data []byte) (Frame, error) {
	var f Frame
	switch v {
	case V2:
		var parts []json.RawMessage
		if err := json.Unmarshal(data, &parts); err != nil {
			return f, err
		}
		if len(parts) != 5 {
			return f, fmt.Errorf("want an array of 5 elements [join_ref, ref, topic, event, payload], got %d", len(parts))
		}
		var err error
		if f.JoinRef, err = decodeRef("join_ref", parts[0]); err != nil {
			return f, err
		}
		if f.Ref, err = decodeRef("ref", parts[1]); err != nil {
			return f, err
		}
		if err := json.Unmarshal(parts[2], &f.Topic); err != nil {
			return f, errors.New("topic must be a string")
		}
		if err := json.Unmarshal(parts[3], &f.Event); err != nil {
			return f, errors.New("event must be a string")
		}
		f.Payload = parts[4]
	case V1:
		var m struct {
			Topic   *string         `json:"topic"`
			Event   *string         `json:"event"`
			Payload json.RawMessage `json:"payload"`
			Ref     json.RawMessage `json:"ref"`
			JoinRef json.RawMessage `json:"join_ref"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return f, err
		}
		if m.Topic == nil || m.Event == nil {
			return f, errors.New(`want an object with "topic", "event", "payload" and "ref"`)
		}
		var err error
		if f.JoinRef, err = decodeRef("join_ref", m.JoinRef); err != nil {
			return f, err
		}
		if f.Ref, err = decodeRef("ref", m.Ref); err != nil {
			return f, err
		}
		f.Topic, f.Event, f.Payload = *m.Topic, *m.Event, m.Payload
	default:
		return f, fmt.Errorf("unknown version %d", v)
	}
	return f, check(f)
}

// check refuses decoded frames Phoenix does not send.
func check(f Frame) error {
	if f.Topic == "" {
		return errors.New("topic must not be empty")
	}
	if f.Event == "" {
		return errors.New("event must not be empty")
	}
	if !isObject(f.Payload) {
		return errors.New("payload must be a JSON object")
	}
	return nil
}

// decodeRef reads a ref that is a string or null; missing counts as null.
func decodeRef(name string, raw json.RawMessage) (Ref, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return Ref{}, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return Ref{}, fmt.Errorf("%s must be a string or null, got %s", name, raw)
	}
	return StringRef(s), nil
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '{'
}

// Encoded is a frame ready to be written: Head, then Body (the payload), then Tail (text
// frames only). Body is the payload slice given to Encode, not a copy, so a large shared
// payload costs nothing per member. None of the parts may be changed.
type Encoded struct {
	Head []byte
	Body []byte
	Tail byte
	// Binary frames go in WebSocket binary messages and have no Tail (see EncodeBinary).
	Binary bool
	// Prepared, when set (see Prepare), is the frame as the WebSocket library writes it.
	Prepared *websocket.PreparedMessage
}

// Encode encodes f for version v. The payload is not copied; a nil or empty payload is {}.
// Server-to-client V1 frames leave join_ref out.
func Encode(v Version, f Frame) Encoded {
	body := []byte(f.Payload)
	if len(body) == 0 {
		body = emptyObject
	}
	switch v {
	case V1:
		h := make([]byte, 0, 40+len(f.Topic)+len(f.Event)+len(f.Ref.s))
		h = append(h, `{"topic":`...)
		h = appendString(h, f.Topic)
		h = append(h, `,"event":`...)
		h = appendString(h, f.Event)
		h = append(h, `,"ref":`...)
		h = appendRef(h, f.Ref)
		h = append(h, `,"payload":`...)
		return Encoded{Head: h, Body: body, Tail: '}'}
	default:
		h := make([]byte, 0, 24+len(f.Topic)+len(f.Event)+len(f.JoinRef.s)+len(f.Ref.s))
		h = append(h, '[')
		h = appendRef(h, f.JoinRef)
		h = append(h, ',')
		h = appendRef(h, f.Ref)
		h = append(h, ',')
		h = appendString(h, f.Topic)
		h = append(h, ',')
		h = appendString(h, f.Event)
		h = append(h, ',')
		return Encoded{Head: h, Body: body, Tail: ']'}
	}
}

// Len returns the encoded frame's size in bytes.
func (e Encoded) Len() int {
	if e.Binary {
		return len(e.Head) + len(e.Body)
	}
	return len(e.Head) + len(e.Body) + 1
}

// AppendTo appends the whole frame to dst.
func (e Encoded) AppendTo(dst []byte) []byte {
	dst = append(dst, e.Head...)
	dst = append(dst, e.Body...)
	if e.Binary {
		return dst
	}
	return append(dst, e.Tail)
}

// Kinds of binary frames, the first byte of one.
const (
	binaryPush      = 0
	binaryBroadcast = 2
)

// EncodeBinary encodes a server-to-client frame whose payload is bytes as a Phoenix V2
// binary frame, which the official client hands to handlers as an ArrayBuffer: a push
// (kind 0: join_ref, topic, event, payload) when f has a join_ref, else a broadcast (kind
// 2: topic, event, payload). The serializer has no ref for either, and a byte for each
// string's length: a longer string is an error. The payload is not copied. V1 has no
// binary frames.
func EncodeBinary(f Frame) (Encoded, error) {
	for _, s := range []string{f.JoinRef.s, f.Topic, f.Event} {
		if len(s) > 255 {
			return Encoded{}, fmt.Errorf("binary frame: %q is longer than 255 bytes", s)
		}
	}
	var h []byte
	if f.JoinRef.Null() {
		h = make([]byte, 0, 3+len(f.Topic)+len(f.Event))
		h = append(h, binaryBroadcast, byte(len(f.Topic)), byte(len(f.Event)))
	} else {
		h = make([]byte, 0, 4+len(f.JoinRef.s)+len(f.Topic)+len(f.Event))
		h = append(h, binaryPush, byte(len(f.JoinRef.s)), byte(len(f.Topic)), byte(len(f.Event)))
		h = append(h, f.JoinRef.s...)
	}
	h = append(h, f.Topic...)
	h = append(h, f.Event...)
	return Encoded{Head: h, Body: f.Payload, Binary: true}, nil
}

// Prepare returns e ready to be written to many sockets: the WebSocket library frames it
// once, and compresses it at most once (for the sockets that negotiated permessage-deflate),
// and every socket writes those bytes as they are. It pays for a frame queued to many
// sockets, a flush's entities_diff.
func (e Encoded) Prepare() Encoded {
	// NewPreparedMessage fails only for a message type it does not know.
	typ := websocket.TextMessage
	if e.Binary {
		typ = websocket.BinaryMessage
	}
	e.Prepared, _ = websocket.NewPreparedMessage(typ, e.Bytes())
	return e
}

// Bytes returns the whole frame in a new slice.
func (e Encoded) Bytes() []byte {
	return e.AppendTo(make([]byte, 0, e.Len()))
}

func appendRef(dst []byte, r Ref) []byte {
	if !r.valid {
		return append(dst, "null"...)
	}
	return appendString(dst, r.s)
}

// appendString appends s as a JSON string. Refs, topics and event names are almost always
// plain ASCII, which is copied as it is; anything else goes through encoding/json.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
