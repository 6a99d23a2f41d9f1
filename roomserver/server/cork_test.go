package server

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/xrooms/xrooms/roomserver/protocol"
)

// A corked batch arrives whole and in order; copied writes may reuse their buffer at once,
// a kept write is sent as it is.
func TestCorkHoldsCopiesAndKeptWritesInOrder(t *testing.T) {
	client, server := tcpPair(t)
	c := &corkConn{Conn: server}
	defer c.Close()

	c.cork()
	reused := []byte("reply1;")
	c.Write(reused)
	copy(reused, "XXXXXXX") // the library reuses its buffer once Write returns
	c.Write([]byte("reply2;"))
	c.keepNext()
	c.Write([]byte("shared-diff;"))
	c.Write([]byte("after;"))
	client.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _ := client.Read(make([]byte, 1)); n != 0 {
		t.Fatal("corked bytes reached the network before uncork")
	}
	if err := c.uncork(time.Second); err != nil {
		t.Fatal(err)
	}
	want := "reply1;reply2;shared-diff;after;"
	got := make([]byte, len(want))
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil || string(got) != want {
		t.Fatalf("got %q (%v), want %q", got, err, want)
	}
	// Uncorked, writes go straight through.
	c.Write([]byte("direct"))
	got = make([]byte, 6)
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "direct" {
		t.Fatalf("got %q (%v)", got, err)
	}
}

// Frame headers as RFC 6455 has them, for each length encoding.
func TestAppendFrameHeader(t *testing.T) {
	for _, tc := range []struct {
		op   byte
		n    int
		want []byte
	}{
		{1, 0, []byte{0x81, 0}},
		{1, 125, []byte{0x81, 125}},
		{2, 126, []byte{0x82, 126, 0, 126}},
		{1, 0xffff, []byte{0x81, 126, 0xff, 0xff}},
		{2, 0x10000, []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		if got := appendFrameHeader(nil, tc.op, tc.n); !bytes.Equal(got, tc.want) {
			t.Errorf("op %d, %d bytes: header %x, want %x", tc.op, tc.n, got, tc.want)
		}
	}
}

// appendFrame holds whole frames, in order with the library's writes around them.
func TestAppendFrameHoldsWholeFrames(t *testing.T) {
	client, server := tcpPair(t)
	c := &corkConn{Conn: server}
	defer c.Close()

	body := bytes.Repeat([]byte("x"), 300)
	c.cork()
	c.Write([]byte("lib;"))
	c.appendFrame(protocol.Encoded{Head: []byte("["), Body: []byte(`"r"`), Tail: ']'})
	c.appendFrame(protocol.Encoded{Head: []byte{2}, Body: body, Binary: true})
	if err := c.uncork(time.Second); err != nil {
		t.Fatal(err)
	}
	want := append([]byte("lib;"), 0x81, 5, '[', '"', 'r', '"', ']', 0x82, 126, 1, 45, 2)
	want = append(want, body...)
	got := make([]byte, len(want))
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %x (%v), want %x", got, err, want)
	}
}

// tryUncork never waits: what the socket does not take stays held, and uncork sends it
// first, before writes made meanwhile by other goroutines (a close frame, say).
func TestTryUncorkKeepsTheRestInOrder(t *testing.T) {
	client, server := tcpPair(t)
	server.(*net.TCPConn).SetWriteBuffer(64 << 10)
	client.(*net.TCPConn).SetReadBuffer(64 << 10)
	c := newCorkConn(server)
	defer c.Close()

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB: more than the socket takes
	c.cork()
	c.Write([]byte("head;"))
	c.keepNext()
	c.Write(big)
	start := time.Now()
	all, err := c.tryUncork()
	if err != nil || all {
		t.Fatalf("tryUncork = %v, %v; want a partial write", all, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("tryUncork waited %v for a socket that was not read", d)
	}
	c.Write([]byte("close;")) // held behind the rest, not written through
	c.cork()
	c.appendFrame(protocol.Encoded{Head: []byte("["), Body: []byte(`"x"`), Tail: ']'})

	want := append(append([]byte("head;"), big...), "close;"...)
	want = append(want, 0x81, 5, '[', '"', 'x', '"', ']')
	got := make(chan []byte)
	go func() {
		b := make([]byte, len(want))
		client.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _ := io.ReadFull(client, b)
		got <- b[:n]
	}()
	if err := c.uncork(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the client read %d bytes, not the %d written in order", len(b), len(want))
	}
}

// tcpPair returns both ends of a loopback TCP connection, closed when the test ends.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}
