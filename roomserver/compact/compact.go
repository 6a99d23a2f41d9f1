package compact

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/xrooms/xrooms/roomserver/entity"
)

// Version is the format version written in byte 0 of every frame.
const Version = 1

// Frame kinds, byte 1 of a frame.
const (
	KindDiff  = 'D'
	KindState = 'S'
)

// Value tags.
const (
	tagNull    = 0x00
	tagFalse   = 0x01
	tagTrue    = 0x02
	tagInt     = 0x03
	tagF32     = 0x04
	tagF64     = 0x05
	tagString  = 0x06
	tagArray   = 0x07
	tagObject  = 0x08
	tagNumArr  = 0x09
	tagF32Arr  = 0x0A
	tagEnd     = 0x0B
	tagDecimal = 0x40 // + K, K in 1..maxScale
	tagSmall   = 0x80 // + n, n in 0..127
)

const (
	maxSafe  = 1 << 53
	maxScale = 22
)

// pow10 holds the powers of ten that are exact float64s; pow10u those that keep a nonzero
// magnitude <= 2^53.
var (
	pow10 = [maxScale + 1]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
		1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}
	pow10u = [16]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}
)

// ErrInvalidJSON is wrapped by the errors for component values that are not valid JSON.
var ErrInvalidJSON = errors.New("compact: invalid JSON value")

// AppendDiff appends the compact encoding of d to dst. It fails only when a component value is
// not valid JSON; dst is then returned as it was given.
func AppendDiff(dst []byte, d entity.Diff) ([]byte, error) {
	e := getEncoder(dst)
	defer putEncoder(e)
	e.buf = append(e.buf, Version, KindDiff)
	for _, m := range [3]map[string]entity.Components{d.Creates, d.Updates, d.Deletes} {
		if err := e.section(m); err != nil {
			return dst, err
		}
	}
	return e.buf, nil
}

// AppendState appends the compact encoding of s to dst. It fails only when a component value
// is not valid JSON; dst is then returned as it was given.
func AppendState(dst []byte, s entity.State) ([]byte, error) {
	e := getEncoder(dst)
	defer putEncoder(e)
	e.buf = append(e.buf, Version, KindState)
	if err := e.section(s); err != nil {
		return dst, err
	}
	return e.buf, nil
}

// encoder is the reusable state of one encoding.
type encoder struct {
	buf   []byte
	ids   []string
	names []string
	nums  []number
	key   []byte   // a string body being built
	tmp   []byte   // unescaped string bytes
	u16   []uint16 // a string as UTF-16
	// The name table: entry i is arena[ends[i-1]:ends[i]], the string body (header included).
	arena []byte
	ends  []int
	index map[string]int // built when the table gets long
	depth int
}

// maxDepth is encoding/json's nesting limit: deeper values are not valid JSON to the server.
const maxDepth = 10000

const linearTable = 16

var pool = sync.Pool{New: func() any { return new(encoder) }}

func getEncoder(dst []byte) *encoder {
	e := pool.Get().(*encoder)
	e.buf = dst
	return e
}

func putEncoder(e *encoder) {
	e.buf = nil
	clear(e.ids)
	clear(e.names)
	e.ids, e.names = e.ids[:0], e.names[:0]
	e.nums = e.nums[:0]
	e.depth = 0
	e.arena, e.ends = e.arena[:0], e.ends[:0]
	if len(e.index) > 1024 {
		e.index = nil
	} else {
		clear(e.index)
	}
	if cap(e.buf) > 1<<16 || cap(e.tmp) > 1<<16 || cap(e.arena) > 1<<16 {
		*e = encoder{}
	}
	pool.Put(e)
}

// appendSortedKeys appends m's keys to dst in order: entities and components are written
// in the order the JSON encoder writes them, so the output is deterministic.
func appendSortedKeys[V any](dst []string, m map[string]V) []string {
	for k := range m {
		dst = append(dst, k)
	}
	slices.Sort(dst)
	return dst
}

func (e *encoder) section(m map[string]entity.Components) error {
	if m == nil {
		e.buf = append(e.buf, 0)
		return nil
	}
	e.buf = binary.AppendUvarint(e.buf, uint64(len(m))+1)
	ids := appendSortedKeys(e.ids[:0], m)
	e.ids = ids
	prev := ""
	for _, id := range ids {
		fid := validUTF8(id)
		p, units := commonPrefix(prev, fid)
		e.buf = binary.AppendUvarint(e.buf, uint64(units))
		e.buf = appendBody(e.buf, fid[p:])
		prev = fid
		if err := e.components(m[id]); err != nil {
			return fmt.Errorf("entity %q: %w", id, err)
		}
	}
	clear(ids)
	return nil
}

func (e *encoder) components(c entity.Components) error {
	if c == nil {
		e.buf = append(e.buf, 0)
		return nil
	}
	e.buf = binary.AppendUvarint(e.buf, uint64(len(c))+1)
	names := appendSortedKeys(e.names[:0], c)
	e.names = names
	for _, name := range names {
		e.key = appendBody(e.key[:0], validUTF8(name))
		e.ref(e.key)
		if err := e.raw(c[name]); err != nil {
			return fmt.Errorf("component %q: %w", name, err)
		}
	}
	clear(names)
	return nil
}

// ref writes a keyref for the string body b, adding it to the name table on first use.
func (e *encoder) ref(b []byte) {
	n := len(e.ends)
	if n <= linearTable {
		start := 0
		for i, end := range e.ends {
			if string(e.arena[start:end]) == string(b) {
				e.buf = binary.AppendUvarint(e.buf, uint64(i)+1)
				return
			}
			start = end
		}
	} else {
		if e.index == nil {
			e.index = make(map[string]int)
		}
		if len(e.index) == 0 {
			start := 0
			for i, end := range e.ends {
				e.index[string(e.arena[start:end])] = i
				start = end
			}
		}
		if i, ok := e.index[string(b)]; ok {
			e.buf = binary.AppendUvarint(e.buf, uint64(i)+1)
			return
		}
		e.index[string(b)] = n
	}
	e.buf = binary.AppendUvarint(e.buf, uint64(n)+1)
	e.buf = append(e.buf, b...)
	e.arena = append(e.arena, b...)
	e.ends = append(e.ends, len(e.arena))
}

// appendBody appends s (valid UTF-8) as a string.
func appendBody(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s))<<1)
	return append(dst, s...)
}

// validUTF8 returns s with each invalid byte replaced by U+FFFD, as encoding/json writes it.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s)+8)
	for _, r := range s {
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}

// commonPrefix returns the length in bytes and in UTF-16 code units of the longest common
// prefix of a and b that ends on a rune boundary of b.
func commonPrefix(a, b string) (bytes, units int) {
	n := min(len(a), len(b))
	p := 0
	for p < n && a[p] == b[p] {
		p++
	}
	for p > 0 && p < len(b) && !utf8.RuneStart(b[p]) {
		p--
	}
	for i := 0; i < p; i++ {
		c := b[i]
		if c&0xC0 != 0x80 {
			units++
			if c >= 0xF0 {
				units++
			}
		}
	}
	return p, units
}

func errAt(i int, what string) error {
	return fmt.Errorf("%w: %s at offset %d", ErrInvalidJSON, what, i)
}

// raw writes one component value.
func (e *encoder) raw(v []byte) error {
	if len(v) == 0 {
		e.buf = append(e.buf, tagNull)
		return nil
	}
	i, err := e.value(v, skipWS(v, 0))
	if err != nil {
		return err
	}
	if i = skipWS(v, i); i != len(v) {
		return errAt(i, "data after value")
	}
	return nil
}

func skipWS(s []byte, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func literal(s []byte, i int, lit string) bool {
	return len(s)-i >= len(lit) && string(s[i:i+len(lit)]) == lit
}

// value writes the JSON value starting at s[i] and returns the offset after it.
func (e *encoder) value(s []byte, i int) (int, error) {
	if i >= len(s) {
		return i, errAt(i, "unexpected end")
	}
	switch c := s[i]; c {
	case 'n':
		if literal(s, i, "null") {
			e.buf = append(e.buf, tagNull)
			return i + 4, nil
		}
	case 'f':
		if literal(s, i, "false") {
			e.buf = append(e.buf, tagFalse)
			return i + 5, nil
		}
	case 't':
		if literal(s, i, "true") {
			e.buf = append(e.buf, tagTrue)
			return i + 4, nil
		}
	case '"':
		e.buf = append(e.buf, tagString)
		var err error
		e.buf, i, err = e.appendString(e.buf, s, i)
		return i, err
	case '[', '{':
		if e.depth++; e.depth > maxDepth {
			return i, errAt(i, "exceeded max depth")
		}
		var err error
		if c == '[' {
			i, err = e.array(s, i)
		} else {
			i, err = e.object(s, i)
		}
		e.depth--
		return i, err
	default:
		if c == '-' || c >= '0' && c <= '9' {
			n, j, err := parseNumber(s, i)
			if err != nil {
				return j, err
			}
			e.buf = n.append(e.buf)
			return j, nil
		}
	}
	return i, errAt(i, "unexpected byte")
}

func (e *encoder) object(s []byte, i int) (int, error) {
	e.buf = append(e.buf, tagObject)
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == '}' {
		e.buf = append(e.buf, 0)
		return i + 1, nil
	}
	for {
		if i >= len(s) || s[i] != '"' {
			return i, errAt(i, "expected object key")
		}
		var err error
		e.key, i, err = e.appendString(e.key[:0], s, i)
		if err != nil {
			return i, err
		}
		e.ref(e.key)
		if i = skipWS(s, i); i >= len(s) || s[i] != ':' {
			return i, errAt(i, "expected ':'")
		}
		if i, err = e.value(s, skipWS(s, i+1)); err != nil {
			return i, err
		}
		var done bool
		if i, done, err = separator(s, i, '}'); err != nil || done {
			if done {
				e.buf = append(e.buf, 0)
			}
			return i, err
		}
	}
}

// separator reads what follows an object member or array element: a ',' (more follow, and
// next is where) or close (done, and next is past it).
func separator(s []byte, i int, close byte) (next int, done bool, err error) {
	i = skipWS(s, i)
	switch {
	case i < len(s) && s[i] == ',':
		return skipWS(s, i+1), false, nil
	case i < len(s) && s[i] == close:
		return i + 1, true, nil
	}
	return i, false, errAt(i, "expected ',' or '"+string(close)+"'")
}

func (e *encoder) array(s []byte, start int) (int, error) {
	i := skipWS(s, start+1)
	if i < len(s) && s[i] == ']' {
		e.buf = append(e.buf, tagArray, tagEnd)
		return i + 1, nil
	}
	// Numeric arrays (positions, rotations, ...) get a packed form: read the numbers first.
	base := len(e.nums)
	for i < len(s) && (s[i] == '-' || s[i] >= '0' && s[i] <= '9') {
		n, j, err := parseNumber(s, i)
		if err != nil {
			return j, err
		}
		e.nums = append(e.nums, n)
		next, done, err := separator(s, j, ']')
		if err != nil {
			break // not a plain list of numbers: the general path below says what is wrong
		}
		if done {
			e.packed(e.nums[base:])
			e.nums = e.nums[:base]
			return next, nil
		}
		i = next
	}
	e.nums = e.nums[:base]
	// Anything else: element by element, from the start.
	e.buf = append(e.buf, tagArray)
	i = skipWS(s, start+1)
	for {
		var err error
		if i, err = e.value(s, i); err != nil {
			return i, err
		}
		var done bool
		if i, done, err = separator(s, i, ']'); err != nil || done {
			if done {
				e.buf = append(e.buf, tagEnd)
			}
			return i, err
		}
	}
}

// packed writes a non-empty array of numbers.
func (e *encoder) packed(ns []number) {
	scale := 0
	decimal := true
	for _, n := range ns {
		if n.kind != numInt && n.kind != numDecimal {
			decimal = false
			break
		}
		scale = max(scale, n.scale)
	}
	if decimal {
		for _, n := range ns {
			if d := scale - n.scale; n.mag != 0 && (d >= len(pow10u) || n.mag > maxSafe/pow10u[d]) {
				decimal = false
				break
			}
		}
	}
	if decimal {
		e.buf = append(e.buf, tagNumArr)
		e.buf = binary.AppendUvarint(e.buf, uint64(len(ns)))
		e.buf = append(e.buf, byte(scale))
		for _, n := range ns {
			m := n.mag
			if m != 0 {
				m *= pow10u[scale-n.scale]
			}
			e.buf = appendSigned(e.buf, m, n.neg)
		}
		return
	}
	f32 := true
	for _, n := range ns {
		if f := n.float(); float64(float32(f)) != f {
			f32 = false
			break
		}
	}
	if f32 {
		e.buf = append(e.buf, tagF32Arr)
		e.buf = binary.AppendUvarint(e.buf, uint64(len(ns)))
		for _, n := range ns {
			e.buf = binary.LittleEndian.AppendUint32(e.buf, math.Float32bits(float32(n.float())))
		}
		return
	}
	e.buf = append(e.buf, tagArray)
	for _, n := range ns {
		e.buf = n.append(e.buf)
	}
	e.buf = append(e.buf, tagEnd)
}

func appendSigned(dst []byte, mag uint64, neg bool) []byte {
	v := mag << 1
	if neg {
		v |= 1
	}
	return binary.AppendUvarint(dst, v)
}

const (
	numInt     = iota // neg, mag: the integer ±mag, mag <= 2^53 (-0 when mag is 0 and neg)
	numDecimal        // neg, mag, scale: ±mag / 10^scale, mag <= 2^53, scale in 1..22
	numFloat          // f
)

type number struct {
	kind  uint8
	neg   bool
	scale int
	mag   uint64
	f     float64
}

// float returns the number's float64 value: the one strconv.ParseFloat gives for its text.
func (n number) float() float64 {
	var f float64
	switch n.kind {
	case numInt:
		f = float64(n.mag)
	case numDecimal:
		f = float64(n.mag) / pow10[n.scale]
	default:
		return n.f
	}
	if n.neg {
		f = -f
	}
	return f
}

func (n number) append(dst []byte) []byte {
	switch n.kind {
	case numInt:
		if !n.neg && n.mag < 128 {
			return append(dst, tagSmall|byte(n.mag))
		}
		return appendSigned(append(dst, tagInt), n.mag, n.neg)
	case numDecimal:
		return appendSigned(append(dst, tagDecimal+byte(n.scale)), n.mag, n.neg)
	}
	if f32 := float32(n.f); float64(f32) == n.f {
		return binary.LittleEndian.AppendUint32(append(dst, tagF32), math.Float32bits(f32))
	}
	return binary.LittleEndian.AppendUint64(append(dst, tagF64), math.Float64bits(n.f))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parseNumber reads the JSON number at s[i]. Numbers whose decimal digits make an integer or a
// decimal that the format carries exactly are taken from their digits; others are parsed with
// strconv.ParseFloat.
func parseNumber(s []byte, i int) (number, int, error) {
	var n number
	start := i
	if s[i] == '-' {
		n.neg = true
		i++
	}
	var (
		m     uint64
		zeros int // zero digits not yet multiplied into m
		big   bool
		frac  int
	)
	digits := func(i int, isFrac bool) int {
		for ; i < len(s) && isDigit(s[i]); i++ {
			if isFrac {
				frac++
			}
			d := uint64(s[i] - '0')
			if d == 0 {
				zeros++
				continue
			}
			if big {
				continue
			}
			for ; zeros > 0; zeros-- {
				if m > maxSafe/10 {
					big = true
					break
				}
				m *= 10
			}
			if !big && m > (maxSafe-d)/10 {
				big = true
			}
			if !big {
				m = m*10 + d
			}
			zeros = 0
		}
		return i
	}
	switch {
	case i < len(s) && s[i] == '0':
		zeros++
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = digits(i, false)
	default:
		return n, i, errAt(i, "bad number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return n, i, errAt(i, "bad number fraction")
		}
		i = digits(i, true)
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			return n, i, errAt(i, "bad number exponent")
		}
		for ; i < len(s) && isDigit(s[i]); i++ {
			if exp < 1e6 {
				exp = exp*10 + int(s[i]-'0')
			}
		}
		if eneg {
			exp = -exp
		}
	}
	if m == 0 && !big {
		n.kind = numInt // ±0 whatever the exponent
		return n, i, nil
	}
	if !big {
		// The value is m * 10^-k.
		k := frac - zeros - exp
		if k <= 0 {
			for ; k < 0 && m <= maxSafe/10; k++ {
				m *= 10
			}
			if k == 0 {
				n.kind, n.mag = numInt, m
				return n, i, nil
			}
		} else if k <= maxScale {
			n.kind, n.mag, n.scale = numDecimal, m, k
			return n, i, nil
		}
	}
	// The digits do not fit: parse as JavaScript does (both round to nearest; out of range
	// is ±Inf, with an error from strconv that does not matter here).
	f, err := strconv.ParseFloat(unsafe.String(&s[start], i-start), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return n, i, errAt(start, "bad number")
	}
	if a := math.Abs(f); a <= maxSafe && a == math.Trunc(a) {
		n.kind, n.mag, n.neg = numInt, uint64(a), math.Signbit(f)
		return n, i, nil
	}
	n.kind, n.f = numFloat, f
	return n, i, nil
}

// appendString decodes the JSON string at s[i] and appends it as a string body.
func (e *encoder) appendString(dst []byte, s []byte, i int) ([]byte, int, error) {
	j := i + 1
	for j < len(s) {
		c := s[j]
		if c == '"' {
			dst = binary.AppendUvarint(dst, uint64(j-i-1)<<1)
			return append(dst, s[i+1:j]...), j + 1, nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		j++
	}
	// Escapes: decode into e.tmp, noting lone surrogates, which UTF-8 cannot hold.
	b := append(e.tmp[:0], s[i+1:j]...)
	lone := false
	for {
		if j >= len(s) {
			return dst, j, errAt(j, "unterminated string")
		}
		c := s[j]
		switch {
		case c == '"':
			e.tmp = b
			if lone {
				return e.appendUTF16(dst, s[i+1:j]), j + 1, nil
			}
			dst = binary.AppendUvarint(dst, uint64(len(b))<<1)
			return append(dst, b...), j + 1, nil
		case c < 0x20:
			return dst, j, errAt(j, "control character in string")
		case c != '\\':
			b = append(b, c)
			j++
			continue
		}
		if j+1 >= len(s) {
			return dst, j, errAt(j, "unterminated string")
		}
		if c, ok := unescape(s[j+1]); ok {
			b = append(b, c)
			j += 2
			continue
		}
		if s[j+1] != 'u' {
			return dst, j, errAt(j, "bad escape")
		}
		r, ok := hex4(s, j+2)
		if !ok {
			return dst, j, errAt(j, "bad \\u escape")
		}
		j += 6
		if !utf16.IsSurrogate(r) {
			b = utf8.AppendRune(b, r)
			continue
		}
		if r < 0xDC00 && j+1 < len(s) && s[j] == '\\' && s[j+1] == 'u' {
			if r2, ok := hex4(s, j+2); ok && r2 >= 0xDC00 && r2 <= 0xDFFF {
				b = utf8.AppendRune(b, utf16.DecodeRune(r, r2))
				j += 6
				continue
			}
		}
		lone = true
	}
}

func hex4(s []byte, i int) (rune, bool) {
	if len(s)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// unescape returns the byte a one-character JSON escape (after the backslash) stands for.
func unescape(c byte) (byte, bool) {
	switch c {
	case '"', '\\', '/':
		return c, true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	}
	return 0, false
}

// appendUTF16 appends the JSON string contents q (already validated) as a UTF-16 string body,
// keeping lone surrogates.
func (e *encoder) appendUTF16(dst []byte, q []byte) []byte {
	u := e.u16[:0]
	for j := 0; j < len(q); {
		c := q[j]
		if c != '\\' {
			r, size := utf8.DecodeRune(q[j:])
			u = utf16.AppendRune(u, r) // invalid bytes are U+FFFD, each
			j += size
			continue
		}
		if c, ok := unescape(q[j+1]); ok {
			u = append(u, uint16(c))
			j += 2
			continue
		}
		r, _ := hex4(q, j+2) // validated: the only other escape is \uXXXX
		u = append(u, uint16(r))
		j += 6
	}
	e.u16 = u
	dst = binary.AppendUvarint(dst, uint64(len(u))<<1|1)
	for _, c := range u {
		dst = binary.LittleEndian.AppendUint16(dst, c)
	}
	return dst
}
