package server

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xrooms/xrooms/roomserver/protocol"
)

// corkConn holds back what the WebSocket library writes while corked and sends it in one
// TCP write on uncork. The WebSocket library flushes every message to the network; the
// writer goroutine corks around each batch so a batch of frames costs one syscall, and frames
// queued together (a join reply and its entities_state) travel in one segment.
//
// Held bytes are copied, as the library reuses its buffers, except the next write after
// keepNext, which is kept by reference: a prepared frame shared by every member, whose bytes
// never change, goes out by writev with no copy per member.
//
// tryUncork sends without blocking, from whichever goroutine has frames to send: what the
// socket cannot take at once stays held, in order, until uncork sends it.
type corkConn struct {
	net.Conn
	raw      syscall.RawConn // Conn's descriptor, for tryUncork; nil when it has none
	mu       sync.Mutex
	corked   bool
	keep     bool
	buf      []byte      // copies of held writes
	from     int         // buf[from:] is not yet in segs
	segs     net.Buffers // held writes in order, for writev; a partial tryUncork's rest first
	segsBack [4][]byte   // segs' usual room
}

func newCorkConn(conn net.Conn) *corkConn {
	c := &corkConn{Conn: conn}
	if sc, ok := conn.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	return c
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked && len(c.segs) == 0 {
		return c.Conn.Write(p)
	}
	if !c.corked { // after the rest of a partial tryUncork, which uncork sends first
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	if c.keep {
		c.keep = false
		c.cut()
		c.segs = append(c.segs, p)
		return len(p), nil
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// SetWriteDeadline passes the WebSocket library's per-frame deadline on, except while
// corked: nothing reaches the network then, and uncork sets the batch's own deadline (a
// deadline costs a timer update, and a batch has a frame per reply).
func (c *corkConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	corked := c.corked
	c.mu.Unlock()
	if corked {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// cut ends the segment of copied bytes; the lock must be held. Earlier segments stay valid
// when buf grows: they keep the old array.
func (c *corkConn) cut() {
	if len(c.buf) > c.from {
		c.segs = append(c.segs, c.buf[c.from:])
		c.from = len(c.buf)
	}
}

func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	if len(c.segs) == 0 {
		c.segs = c.segsBack[:0]
	}
	c.mu.Unlock()
}

// appendFrame holds e as one unmasked, uncompressed WebSocket data frame, framed here rather
// than by the library: one copy, straight into the batch. Only while corked.
func (c *corkConn) appendFrame(e protocol.Encoded) {
	c.mu.Lock()
	defer c.mu.Unlock()
	op := byte(websocket.TextMessage)
	if e.Binary {
		op = websocket.BinaryMessage
	}
	c.buf = appendFrameHeader(c.buf, op, e.Len())
	c.buf = e.AppendTo(c.buf)
}

// appendFrameHeader appends the header of a final, unmasked frame of n payload bytes
// (RFC 6455 section 5.2).
func appendFrameHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xffff:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

// keepNext has the next held write kept by reference: its bytes must not change until
// uncork returns.
func (c *corkConn) keepNext() {
	c.mu.Lock()
	c.keep = true
	c.mu.Unlock()
}

// uncork writes what was held back, within timeout.
func (c *corkConn) uncork(timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked, c.keep = false, false
	c.cut()
	var err error
	if len(c.segs) > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(timeout))
		_, err = c.segs.WriteTo(c.Conn) // one writev
		c.Conn.SetWriteDeadline(time.Time{})
	}
	c.reset()
	return err
}

// tryUncork writes what was held back as far as the socket takes it without waiting, and
// reports whether that was all; the rest stays held, and goes first on uncork.
func (c *corkConn) tryUncork() (all bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked, c.keep = false, false
	c.cut()
	if len(c.segs) == 0 {
		c.reset()
		return true, nil
	}
	if c.raw == nil {
		return false, nil
	}
	var n int
	var werr error
	if err := c.raw.Write(func(fd uintptr) bool {
		n, werr = writev(fd, c.segs)
		return true // never wait: uncork, on the writer goroutine, does
	}); err != nil {
		return false, err
	}
	if werr != nil {
		if errors.Is(werr, syscall.EAGAIN) || errors.Is(werr, syscall.EINTR) {
			return false, nil
		}
		return false, werr
	}
	for n > 0 { // drop what was written
		if n < len(c.segs[0]) {
			c.segs[0] = c.segs[0][n:]
			break
		}
		n -= len(c.segs[0])
		c.segs[0] = nil
		c.segs = c.segs[1:]
	}
	if len(c.segs) > 0 {
		return false, nil
	}
	c.reset()
	return true, nil
}

// reset forgets the written batch; the lock must be held.
func (c *corkConn) reset() {
	clear(c.segsBack[:])
	c.segs = nil
	c.buf, c.from = c.buf[:0], 0
	if cap(c.buf) > 1<<20 {
		c.buf = nil // one large batch must not pin its buffer for the socket's life
	}
}

// corkingWriter hands the WebSocket library a corkConn when it hijacks the connection.
type corkingWriter struct {
	http.ResponseWriter
	conn *corkConn
}

func (w *corkingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil { // nothing is expected there; keep the order anyway
		conn.Close()
		return nil, nil, err
	}
	w.conn = newCorkConn(conn)
	brw.Writer.Reset(w.conn)
	return w.conn, brw, nil
}
