package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// frame is a server frame: unmasked, with the shortest length encoding, or the 64-bit one.
func frame(fin, rsv1 bool, op byte, payload []byte, long bool) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	if rsv1 {
		b0 |= 0x40
	}
	out := []byte{b0}
	switch n := len(payload); {
	case long:
		out = append(out, 127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	case n < 126:
		out = append(out, byte(n))
	default:
		out = append(out, 126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	}
	return append(out, payload...)
}

func TestSkimmerReadsMessagesWithoutTheirPayloads(t *testing.T) {
	diff := `[null,null,"room:lobby","entities_diff",{"updates":{` + strings.Repeat(`"u":{},`, 40) + `}}]`
	var wire []byte
	// A 16-bit length whose low byte has the top bit set (the mask bit's place in byte 1).
	wire = append(wire, frame(true, false, 1, []byte(diff+strings.Repeat(" ", 384-len(diff))), false)...)
	// A compressed message in three frames with a ping between them.
	wire = append(wire, frame(false, true, 1, make([]byte, 5000), false)...)
	wire = append(wire, frame(false, false, 9, []byte("ping"), false)...)
	wire = append(wire, frame(false, false, 0, make([]byte, 70000), true)...)
	wire = append(wire, frame(true, false, 0, make([]byte, 10), false)...)
	wire = append(wire, frame(true, false, 2, []byte{2, 10, 13, 'x'}, false)...)
	wire = append(wire, frame(true, false, 8, []byte{0x03, 0xe8}, false)...)

	s := newSkimmer(bytes.NewReader(wire))
	op, compressed, head, err := s.next()
	if err != nil || op != 1 || compressed || len(head) != headBytes || !isDiff(int(op), head) {
		t.Fatalf("first: op %d compressed %v head %q err %v", op, compressed, head, err)
	}
	op, compressed, head, err = s.next()
	if err != nil || op != 1 || !compressed || len(head) != 0 {
		t.Fatalf("fragmented: op %d compressed %v head %q err %v", op, compressed, head, err)
	}
	op, compressed, head, err = s.next()
	if err != nil || op != 2 || compressed || !isDiff(int(op), head) {
		t.Fatalf("binary: op %d compressed %v head %q err %v", op, compressed, head, err)
	}
	var ce closedError
	if _, _, _, err = s.next(); !errors.As(err, &ce) || ce.code != 1000 {
		t.Fatalf("close: %v", err)
	}
	masked := []byte{0x81, 0x80 | 4, 1, 2, 3, 4, 'a', 'b', 'c', 'd'}
	if _, _, _, err := newSkimmer(bytes.NewReader(masked)).next(); err == nil {
		t.Fatal("a masked server frame was read")
	}
}
