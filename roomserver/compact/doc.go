// Package compact is an opt-in binary encoding of the entities_diff and entities_state message
// bodies (see package entity). It is lossless with respect to what a browser gets from
// JSON.parse of the JSON encoding (entity.Diff.AppendJSON, entity.State.AppendJSON): the same
// entities, component names, strings (including lone surrogates from \uD800-style escapes), the
// same Numbers bit for bit (including -0), nulls where JSON has null, and object keys in the
// same order with the same duplicate-key behaviour. The decoder for browsers is
// clients/js/xrooms-compact.mjs.
//
// # Format, version 1
//
// All multi-byte fixed-width numbers are little endian.
//
//	uvarint   unsigned LEB128 (7 bits per byte, low group first, high bit = more follows).
//	svarint   a signed integer of magnitude m <= 2^53 as uvarint(m<<1 | sign); sign 1 is
//	          negative, so (m=0, sign=1) is -0.
//	string    uvarint h, then if h&1 == 0: h>>1 bytes of UTF-8; if h&1 == 1: h>>1 UTF-16 code
//	          units of 2 bytes each (used only for strings holding lone surrogates).
//	keyref    uvarint r. r == 0 ends an object (only inside values). Otherwise r-1 indexes the
//	          frame's name table; if r-1 equals the table's current length, a string follows
//	          and is appended to the table (a name is spelled once, at its first use, and
//	          referenced by index afterwards). The table starts empty in each frame and is
//	          shared by component names and the keys of objects inside values.
//
// A frame is:
//
//	byte 0    version, 1
//	byte 1    kind: 'D' (0x44) entities_diff, 'S' (0x53) entities_state
//	diff      section creates, section updates, section deletes
//	state     one section
//
//	section   uvarint n: 0 means the map is null (a nil Go map, JSON null); otherwise n-1
//	          entities follow, in ascending byte order of their ids (as the JSON encoder
//	          sorts them), each:
//	            uvarint p       the id starts with the first p UTF-16 code units of the
//	                            previous id of this section (the empty string for the first)
//	            string          the rest of the id
//	            uvarint c       0: the entity's components are null; otherwise c-1
//	                            components follow in ascending byte order of their names:
//	                            keyref name, value
//
// Deletes have no special form: in a diff they are {"id": {}} in JSON, i.e. each deleted
// entity is written with c = 1 (no components), exactly as whatever the map holds.
//
// A value is one tag byte and its payload:
//
//	0x00           null (also for an empty raw value, which the JSON encoder writes as null)
//	0x01, 0x02     false, true
//	0x03 svarint   integer m (|m| <= 2^53)
//	0x04 f32       a float32 whose float64 value is the number
//	0x05 f64       a float64
//	0x06 string    string
//	0x07           array: values follow, up to the end tag 0x0B
//	0x08           object: (keyref key, value)* then keyref 0; keys in source order,
//	               duplicates kept (so assigning them in order gives JSON.parse's object)
//	0x09           numeric array: uvarint count, byte K (0..22), count svarints m_i; the
//	               elements are m_i / 10^K (K = 0: m_i)
//	0x0A           float32 array: uvarint count, count f32s
//	0x0B           end of array
//	0x41..0x56     decimal: K = tag-0x40 (1..22), svarint m; the number is m / 10^K
//	0x80..0xFF     the integer tag-0x80 (0..127)
//
// Decimals are exact: m <= 2^53 and 10^K <= 10^22 are both exact float64s, and IEEE division
// is correctly rounded, so m / 10^K is the float64 nearest to the decimal number written in
// the JSON text, which is what strconv.ParseFloat and JSON.parse give (Clinger's fast path).
// The encoder takes m and K from the digits of the JSON number; numbers that do not fit are
// parsed with strconv.ParseFloat (out of range is ±Inf, as JavaScript gives) and written as an
// integer when integral and |x| <= 2^53, else as f32 when float64(float32(x)) == x, else f64.
//
// Strings inside raw values are decoded from their JSON escapes. Raw values are expected to be
// valid UTF-8 (a JSON text frame cannot carry anything else); invalid bytes are passed through
// in UTF-8 strings, and become U+FFFD per byte in UTF-16 strings. Ids and component names with
// invalid UTF-8 get U+FFFD per invalid byte, as the JSON encoder writes them.
package compact
