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
	if m == nil {
		return append(dst, "null"...)
	}
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids) // as encoding/json orders map keys
	dst = append(dst, '{')
	for i, id := range ids {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, id)
		dst = append(dst, ':')
		dst = appendComponents(dst, m[id])
	}
	return append(dst, '}')
}

func appendComponents(dst []byte, c Components) []byte {
	if c == nil {
		return append(dst, "null"...)
	}
	var small [8]string
	names := small[:0]
	for name := range c {
		names = append(names, name)
	}
	slices.Sort(names)
	dst = append(dst, '{')
	for i, name := range names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, name)
		dst = append(dst, ':')
		dst = appendRaw(dst, c[name])
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
