package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// skimmer reads a server's WebSocket messages off the wire without inflating them: the
// clients that do not measure latency only need to tell diffs from other frames, and
// inflating every diff for hundreds of clients would leave the generator, not the server, out
// of CPU (a browser pays that cost on its own core). It sees each message's type, whether it
// is compressed, and the first bytes of an uncompressed one, and skips the rest.
type skimmer struct {
	r    *bufio.Reader
	head []byte
}

// headBytes is how much of an uncompressed message skimmer keeps: enough for a reply's status.
const headBytes = 256

func newSkimmer(r io.Reader) *skimmer {
	return &skimmer{r: bufio.NewReaderSize(r, 16<<10), head: make([]byte, 0, headBytes)}
}

// closedError is a close frame from the server.
type closedError struct{ code int }

func (e closedError) Error() string { return fmt.Sprintf("websocket closed by the server: %d", e.code) }

// next returns the next data message's opcode (1 text, 2 binary), whether it is compressed
// (permessage-deflate), and, for an uncompressed one, up to headBytes of its start. The head
// is valid until the next call.
func (s *skimmer) next() (op byte, compressed bool, head []byte, err error) {
	s.head = s.head[:0]
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(s.r, hdr[:2]); err != nil {
			return 0, false, nil, err
		}
		fin, rsv1, opcode := hdr[0]&0x80 != 0, hdr[0]&0x40 != 0, hdr[0]&0x0f
		if hdr[1]&0x80 != 0 {
			return 0, false, nil, fmt.Errorf("masked frame from the server")
		}
		n := uint64(hdr[1] & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(s.r, hdr[:2]); err != nil {
				return 0, false, nil, err
			}
			n = uint64(binary.BigEndian.Uint16(hdr[:2]))
		case 127:
			if _, err := io.ReadFull(s.r, hdr[:8]); err != nil {
				return 0, false, nil, err
			}
			n = binary.BigEndian.Uint64(hdr[:8])
		}
		if opcode >= 8 { // control frames may come between a message's frames
			payload := make([]byte, n)
			if _, err := io.ReadFull(s.r, payload); err != nil {
				return 0, false, nil, err
			}
			if opcode == 8 {
				code := 1005
				if len(payload) >= 2 {
					code = int(binary.BigEndian.Uint16(payload))
				}
				return 0, false, nil, closedError{code}
			}
			continue
		}
		if opcode != 0 { // a message's first frame says what it is
			op, compressed = opcode, rsv1
		}
		take := uint64(0)
		if !compressed {
			take = min(n, uint64(headBytes-len(s.head)))
		}
		if _, err := io.ReadFull(s.r, s.head[len(s.head):len(s.head)+int(take)]); err != nil {
			return 0, false, nil, err
		}
		s.head = s.head[:len(s.head)+int(take)]
		if _, err := s.r.Discard(int(n - take)); err != nil {
			return 0, false, nil, err
		}
		if fin {
			return op, compressed, s.head, nil
		}
	}
}
