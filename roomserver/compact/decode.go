package compact

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// reader decodes the format as doc.go specifies it; malformed input panics, and Decode
// turns the panic into an error.

type reader struct {
	b     []byte
	pos   int
	names []string
}

var errShort = errors.New("unexpected end")

func (r *reader) byte() byte {
	if r.pos >= len(r.b) {
		panic(errShort)
	}
	r.pos++
	return r.b[r.pos-1]
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b[r.pos:])
	if n <= 0 {
		panic(errShort)
	}
	r.pos += n
	return v
}

func (r *reader) svarint() float64 {
	v := r.uvarint()
	f := float64(v >> 1)
	if v>>1 > maxSafe {
		panic("svarint magnitude above 2^53")
	}
	if v&1 == 1 {
		f = -f
	}
	return f
}

func (r *reader) take(n int) []byte {
	if n < 0 || r.pos+n > len(r.b) {
		panic(errShort)
	}
	r.pos += n
	return r.b[r.pos-n : r.pos]
}

func (r *reader) string() string {
	h := r.uvarint()
	n := int(h >> 1)
	if h&1 == 1 {
		b := r.take(2 * n)
		u := make([]uint16, n)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		return string(utf16.Decode(u)) // lone surrogates are U+FFFD, as encoding/json has them
	}
	b := r.take(n)
	var sb strings.Builder
	for len(b) > 0 { // invalid bytes are U+FFFD each, as encoding/json has them
		c, size := utf8.DecodeRune(b)
		sb.WriteRune(c)
		b = b[size:]
	}
	return sb.String()
}

func (r *reader) key() (string, bool) {
	i := r.uvarint()
	if i == 0 {
		return "", false
	}
	if int(i) <= len(r.names) {
		return r.names[i-1], true
	}
	if int(i) != len(r.names)+1 {
		panic("bad keyref")
	}
	s := r.string()
	r.names = append(r.names, s)
	return s, true
}

func (r *reader) value() any {
	tag := r.byte()
	switch {
	case tag >= tagSmall:
		return float64(tag - tagSmall)
	case tag > tagDecimal && tag <= tagDecimal+maxScale:
		return r.svarint() / pow10[tag-tagDecimal]
	}
	switch tag {
	case tagNull:
		return nil
	case tagFalse:
		return false
	case tagTrue:
		return true
	case tagInt:
		return r.svarint()
	case tagF32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(r.take(4))))
	case tagF64:
		return math.Float64frombits(binary.LittleEndian.Uint64(r.take(8)))
	case tagString:
		return r.string()
	case tagArray:
		a := []any{}
		for {
			if r.pos < len(r.b) && r.b[r.pos] == tagEnd {
				r.pos++
				return a
			}
			a = append(a, r.value())
		}
	case tagObject:
		o := map[string]any{}
		for k, ok := r.key(); ok; k, ok = r.key() {
			o[k] = r.value()
		}
		return o
	case tagNumArr:
		n := int(r.uvarint())
		k := r.byte()
		a := []any{}
		for range n {
			a = append(a, r.svarint()/pow10[k])
		}
		return a
	case tagF32Arr:
		n := int(r.uvarint())
		a := []any{}
		for range n {
			a = append(a, float64(math.Float32frombits(binary.LittleEndian.Uint32(r.take(4)))))
		}
		return a
	}
	panic(fmt.Sprintf("bad tag %#x", tag))
}

func (r *reader) section() any {
	n := r.uvarint()
	if n == 0 {
		return nil
	}
	out := map[string]any{}
	prev := ""
	for range n - 1 {
		p := int(r.uvarint())
		u := utf16.Encode([]rune(prev))
		id := string(utf16.Decode(u[:p])) + r.string()
		prev = id
		c := r.uvarint()
		if c == 0 {
			out[id] = nil
			continue
		}
		comps := map[string]any{}
		for range c - 1 {
			name, ok := r.key()
			if !ok {
				panic("keyref 0 for a component")
			}
			comps[name] = r.value()
		}
		out[id] = comps
	}
	return out
}

// Decode decodes a frame's payload, diff or state, into what encoding/json gives for its
// JSON encoding (map[string]any, []any, float64, string, bool, nil): a diff as
// {"creates", "updates", "deletes"}, a state as {id: {component: value}}. It is for Go
// clients and tests; browsers use clients/js/xrooms-compact.mjs.
func Decode(b []byte) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decode: %v", p)
		}
	}()
	r := &reader{b: b}
	if r.byte() != Version {
		return nil, errors.New("bad version")
	}
	switch r.byte() {
	case KindDiff:
		v = map[string]any{"creates": r.section(), "updates": r.section(), "deletes": r.section()}
	case KindState:
		v = r.section()
	default:
		return nil, errors.New("bad kind")
	}
	if r.pos != len(b) {
		return nil, errors.New("trailing bytes")
	}
	return v, nil
}
