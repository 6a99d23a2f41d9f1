package server

import (
	"io"
	"net"
	"testing"
	"time"
)

// A corked batch arrives whole and in order; copied writes may reuse their buffer at once,
// a kept write is sent as it is.
func TestCorkHoldsCopiesAndKeptWritesInOrder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
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
