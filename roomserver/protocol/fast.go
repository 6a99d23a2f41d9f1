package protocol

import (
	"bytes"
	"encoding/json"

	"github.com/xrooms/xrooms/roomserver/jsonsyntax"
)

// The fast paths below read the hot client frames (V2 pushes with plain ASCII refs, topic
// and event) and flat payload objects without reflection. Each first checks the whole input
// with jsonsyntax.Valid (json.Valid, faster), so it may then walk it trusting its syntax, and
// gives up (ok false) on anything it does not read exactly as encoding/json would: escapes
// or non-ASCII bytes in strings it returns. The caller then takes the general path, which
// also produces the errors.

// decodeV2Fast decodes a V2 frame; ok is false when the general decoder must decide.
func decodeV2Fast(data []byte) (f Frame, ok bool) {
	if !jsonsyntax.Valid(data) {
		return f, false
	}
	i := jsonsyntax.SkipSpace(data, 0)
	if data[i] != '[' {
		return f, false
	}
	i = jsonsyntax.SkipSpace(data, i+1)
	var part [5][]byte
	n := 0
	for data[i] != ']' {
		if n == len(part) {
			return f, false
		}
		end := skipValue(data, i)
		part[n] = data[i:end]
		n++
		i = jsonsyntax.SkipSpace(data, end)
		if data[i] == ',' {
			i = jsonsyntax.SkipSpace(data, i+1)
		}
	}
	if n != len(part) {
		return f, false
	}
	if f.JoinRef, ok = plainRef(part[0]); !ok {
		return f, false
	}
	if f.Ref, ok = plainRef(part[1]); !ok {
		return f, false
	}
	if f.Topic, ok = plainString(part[2]); !ok {
		return f, false
	}
	if f.Event, ok = plainEvent(part[3]); !ok {
		return f, false
	}
	f.Payload = bytes.Clone(part[4]) // as the general path, the frame keeps none of data
	return f, true
}

// SplitObject returns the top-level fields of a JSON object as json.Unmarshal into a
// map[string]json.RawMessage does (values are the raw bytes, sharing raw's memory); ok is
// false when raw is not a valid object, a name holds an escape or a non-ASCII byte, or a
// name repeats (decoding into a struct, encoding/json reports a type error for any of the
// repeats, which a map would hide), and json.Unmarshal must decide.
func SplitObject(raw []byte) (fields map[string]json.RawMessage, ok bool) {
	if !jsonsyntax.Valid(raw) {
		return nil, false
	}
	return SplitValidObject(raw)
}

// SplitValidObject is SplitObject for raw known to be valid JSON, such as a decoded frame's
// payload (Decode checks the whole frame), which it does not check again. Anything else may
// panic.
func SplitValidObject(raw []byte) (fields map[string]json.RawMessage, ok bool) {
	i := jsonsyntax.SkipSpace(raw, 0)
	if raw[i] != '{' {
		return nil, false
	}
	fields = make(map[string]json.RawMessage, 4)
	i = jsonsyntax.SkipSpace(raw, i+1)
	for raw[i] != '}' {
		end := skipValue(raw, i) // a name: valid JSON puts only strings here
		name, ok := plainString(raw[i:end])
		if !ok {
			return nil, false
		}
		if _, dup := fields[name]; dup {
			return nil, false
		}
		i = jsonsyntax.SkipSpace(raw, end)
		i = jsonsyntax.SkipSpace(raw, i+1) // the ':'
		end = skipValue(raw, i)
		fields[name] = raw[i:end:end]
		i = jsonsyntax.SkipSpace(raw, end)
		if raw[i] == ',' {
			i = jsonsyntax.SkipSpace(raw, i+1)
		}
	}
	return fields, true
}

// PlainString returns the string a JSON string literal holds when it has no escapes and
// only ASCII; ok is false otherwise (json.Unmarshal must decide).
func PlainString(raw []byte) (string, bool) { return plainString(raw) }

func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	s := raw[1 : len(raw)-1]
	for _, c := range s {
		if c == '\\' || c == '"' || c < 0x20 || c >= 0x80 {
			return "", false
		}
	}
	return string(s), true
}

// plainEvent is plainString for an event name, with no allocation for the names clients
// send most.
func plainEvent(raw []byte) (string, bool) {
	switch string(raw) { // no allocation: the conversion only serves the comparison
	case `"i_moved"`:
		return "i_moved", true
	case `"event"`:
		return "event", true
	case `"heartbeat"`:
		return EventHeartbeat, true
	}
	return plainString(raw)
}

func plainRef(raw []byte) (Ref, bool) {
	if string(raw) == "null" {
		return Ref{}, true
	}
	s, ok := plainString(raw)
	return StringRef(s), ok
}

// skipValue returns the end of the value starting at data[i]; data must be valid JSON.
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(data) {
			switch data[i] {
			case ',', ']', '}', ' ', '\t', '\r', '\n':
				return i
			}
			i++
		}
		return i
	}
}

// skipString returns the end of the string literal starting at data[i].
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}
