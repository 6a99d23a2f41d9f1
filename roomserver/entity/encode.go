package entity

import (
	"encoding/json"
	"slices"
)

// AppendJSON appends d as json.Marshal encodes it, byte for byte, without reflection.
func (d Diff) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"creates":`...)
	dst = appendEntities(dst, d.Creates)
	dst = append(dst, `,"updates":`...)
	dst = appendEntities(dst, d.Updates)
	dst = append(dst, `,"deletes":`...)
	dst = appendEntities(dst, d.Deletes)
	return append(dst, '}')
}

// AppendJSON appends s as json.Marshal encodes it, byte for byte, without reflection.
func (s State) AppendJSON(dst []byte) []byte {
	return appendEntities(dst, s)
}

func appendEntities(dst []byte, m map[string]Components) []byte {
	return appendObject(dst, m, appendComponents)
}

func appendComponents(dst []byte, c Components) []byte {
	return appendObject(dst, c, appendRaw)
}

// appendObject appends m as a JSON object with its keys sorted, as encoding/json orders map
// keys, each value written by value; a nil map is null.
func appendObject[V any](dst []byte, m map[string]V, value func([]byte, V) []byte) []byte {
	if m == nil {
		return append(dst, "null"...)
	}
	var small [8]string // most entities have a few components: no allocation for their names
	keys := small[:0]
	if len(m) > len(small) {
		keys = make([]string, 0, len(m))
	}
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		dst = value(dst, m[k])
	}
	return append(dst, '}')
}

// appendString appends s as a JSON string as encoding/json does; plain ASCII is copied.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendRaw appends a component value as encoding/json does: it compacts raw values and
// escapes <, >, &, U+2028 and U+2029 in them. Values were checked when they came in, and are
// almost always compact with none of those bytes; those are copied as they are.
func appendRaw(dst []byte, v json.RawMessage) []byte {
	if len(v) == 0 {
		return append(dst, "null"...)
	}
	for _, c := range v {
		switch c {
		case ' ', '\t', '\r', '\n', '<', '>', '&', 0xE2:
			b, err := json.Marshal(v)
			if err != nil { // never expected; keep the bytes rather than lose the value
				return append(dst, v...)
			}
			return append(dst, b...)
		}
	}
	return append(dst, v...)
}
