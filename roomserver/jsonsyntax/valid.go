// Package jsonsyntax checks JSON syntax, as encoding/json does, faster: the room server
// checks every push it reads and every component it stores.
package jsonsyntax

import (
	"encoding/binary"
	"math/bits"
)

// Valid reports whether data is one JSON value, accepting exactly what encoding/json.Valid
// accepts (RFC 8259 as encoding/json reads it): the value may have space, \t, \n and \r
// around it; numbers are -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; strings hold any
// byte from 0x20 up but '"' and '\', and the escapes \" \\ \/ \b \f \n \r \t and \uXXXX;
// invalid UTF-8 is accepted, as encoding/json accepts it; and objects and arrays nest at
// most 10000 deep (encoding/json's maxNestingDepth). It is json.Valid without the
// per-byte state function calls, and allocates only for nesting deeper than 256.
func Valid(data []byte) bool {
	// One bit per open container, set for an object, in an array rather than a slice of
	// bools so that typical inputs need no allocation; obj caches the innermost's bit.
	var small [4]uint64
	open := small[:]
	depth := uint(0)
	obj := false
	i := 0
	var c byte
	name := false // whether a name and ':' come before the value
	for {
		if name {
			if i, c = nextByte(data, i); c != '"' {
				return false
			}
			if i = skipValidString(data, i); i < 0 {
				return false
			}
			if i, c = nextByte(data, i); c != ':' {
				return false
			}
			i++
		}
		// A value starts at i.
		switch i, c = nextByte(data, i); c {
		case '"':
			i = skipValidString(data, i)
		case '{', '[':
			if depth == maxNestingDepth { // encoding/json refuses on the opening byte
				return false
			}
			if depth/64 == uint(len(open)) {
				open = append(open, 0)
			}
			obj = c == '{'
			if obj {
				open[depth/64] |= 1 << (depth % 64)
			} else {
				open[depth/64] &^= 1 << (depth % 64)
			}
			depth++
			if i, c = nextByte(data, i+1); c == closer(obj) {
				i++
				depth, obj = pop(open, depth)
				break // an empty container is a whole value
			}
			name = obj
			continue // the first element
		case 't':
			i = skipLiteral(data, i, "true")
		case 'f':
			i = skipLiteral(data, i, "false")
		case 'n':
			i = skipLiteral(data, i, "null")
		default:
			i = skipNumber(data, i, c)
		}
		if i < 0 {
			return false
		}
		// A value ends at i: close containers until a ',' asks for another value.
		for {
			i, c = nextByte(data, i)
			if depth == 0 {
				return i == len(data)
			}
			if c == ',' {
				i++
				break
			}
			if c != closer(obj) {
				return false
			}
			i++
			depth, obj = pop(open, depth)
		}
		name = obj
	}
}

// SkipSpace returns the index of the first byte from i on that is not JSON whitespace.
func SkipSpace(data []byte, i int) int {
	i, _ = nextByte(data, i)
	return i
}

// nextByte returns the index of the first byte from i on that is not whitespace, and that
// byte; or len(data) and 0, which callers need not tell from a 0 byte in data: both are
// invalid wherever a byte is expected.
func nextByte(data []byte, i int) (int, byte) {
	for ; i < len(data); i++ {
		if c := data[i]; c > ' ' || c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return i, c
		}
	}
	return i, 0
}

// pop closes the innermost container, returning the new depth and whether the container
// then innermost is an object.
func pop(open []uint64, depth uint) (uint, bool) {
	depth--
	if depth == 0 {
		return 0, false
	}
	d := depth - 1
	return depth, open[d/64]&(1<<(d%64)) != 0
}

// maxNestingDepth is encoding/json's limit on open objects and arrays.
const maxNestingDepth = 10000

func closer(obj bool) byte {
	if obj {
		return '}'
	}
	return ']'
}

// plainByte marks the bytes a string holds as they are: not '"', '\' or a control byte.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// skipValidString returns the index after the string literal at data[i], or -1.
func skipValidString(data []byte, i int) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for i++; ; i++ {
		// Find the next byte that is not plain, eight bytes at a time while they last: m flags
		// the bytes below 0x20 (w-0x20 borrows) and the '"' and '\\' bytes (w^q-1 borrows),
		// never one from 0x80 up (&^ w). A borrow may flag a byte above a flagged one, never
		// below, so the lowest flag is exact.
		for {
			if len(data)-i >= 8 {
				w := binary.LittleEndian.Uint64(data[i:])
				m := ((w - lo*0x20) | ((w ^ lo*'"') - lo) | ((w ^ lo*'\\') - lo)) &^ w & hi
				if m != 0 {
					i += bits.TrailingZeros64(m) / 8
					break
				}
				i += 8
				continue
			}
			if i == len(data) {
				return -1
			}
			if !plainByte[data[i]] {
				break
			}
			i++
		}
		switch data[i] {
		case '"':
			return i + 1
		case '\\':
			i++
			if i == len(data) {
				return -1
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(data)-i < 5 || !isHex(data[i+1]) || !isHex(data[i+2]) || !isHex(data[i+3]) || !isHex(data[i+4]) {
					return -1
				}
				i += 4
			default:
				return -1
			}
		default: // a control byte
			return -1
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skipLiteral returns the index after lit at data[i], or -1. What follows is the caller's
// to check, so "truex" fails there.
func skipLiteral(data []byte, i int, lit string) int {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// skipNumber returns the index after the number at data[i], whose first byte is c, or -1.
func skipNumber(data []byte, i int, c byte) int {
	if c == '-' {
		if i++; i == len(data) {
			return -1
		}
		c = data[i]
	}
	switch {
	case c == '0': // no leading zeros: "01" ends the number after the 0, and fails after
		i++
	case '1' <= c && c <= '9':
		i = skipDigits(data, i+1)
	default:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		j := skipDigits(data, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := skipDigits(data, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && '0' <= data[i] && data[i] <= '9' {
		i++
	}
	return i
}
