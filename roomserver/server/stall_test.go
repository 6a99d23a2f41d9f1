package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// dialStalled connects a member whose client stops reading after the join, with a small
// TCP receive buffer so the stall reaches the server soon: a real network stall, not a
// socket closed.
func (ts *testServer) dialStalled(t *testing.T, user string) *websocket.Conn {
	t.Helper()
	d := &net.Dialer{}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(4 << 10)
		}
		return c, err
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+ts.addr+"/socket/websocket?vsn=2.0.0&user_id="+user, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	if err := conn.Write(ctx, websocket.MessageText, []byte(`["1","1","room:lobby","phx_join",{}]`)); err != nil {
		t.Fatal(err)
	}
	return conn // and never read
}

// A member whose network stalls is disconnected once its bounded queue fills, with
// ordinary traffic; no socket ever holds more than its limit queued; the others go on.
func TestStalledMemberIsDisconnectedMemoryStaysBounded(t *testing.T) {
	const queue = 64 << 10
	ts := startServer(t, Config{SyncInterval: 10 * time.Millisecond, SendQueueBytes: queue})
	ts.dialStalled(t, "stalled")
	// Small kernel buffers on the server's side too (loopback's grow to megabytes), so the
	// stall reaches the queue within seconds.
	for found := false; !found; {
		ts.mu.Lock()
		for s := range ts.sockets {
			if s.userParam == "stalled" {
				s.cork.Conn.(*net.TCPConn).SetWriteBuffer(8 << 10)
				found = true
			}
		}
		ts.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	fast := ts.dial(t, "vsn=2.0.0&user_id=fast", nil)
	fast.send(`["1","1","room:lobby","phx_join",{}]`)
	fast.until("room:lobby", "entities_state")
	var diffs atomic.Int64
	go func() {
		for {
			_, b, err := fast.conn.Read(context.Background())
			if err != nil {
				return
			}
			if strings.Contains(string(b[:min(len(b), 64)]), "entities_diff") {
				diffs.Add(1)
			}
		}
	}()
	var peak atomic.Int64
	stopSampling := make(chan struct{})
	var sampling sync.WaitGroup
	sampling.Go(func() {
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(time.Millisecond):
			}
			ts.mu.Lock()
			for s := range ts.sockets {
				if n := int64(s.out.Len()); n > peak.Load() {
					peak.Store(n)
				}
			}
			ts.mu.Unlock()
		}
	})
	pad := strings.Repeat("p", 2<<10) // a 2 KiB avatar pose, say: a diff per flush
	deadline := time.Now().Add(20 * time.Second)
	for i := 2; ; i++ {
		fast.send(fmt.Sprintf(`["1","%d","room:lobby","i_moved",{"position":[%d,0,0],"pad":"%s"}]`, i, i, pad))
		if st, _ := ts.Room().Stats(context.Background()); st.Members == 1 && i > 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stalled member was never disconnected")
		}
		time.Sleep(20 * time.Millisecond) // within the event rate limit
	}
	close(stopSampling)
	sampling.Wait()
	if p := peak.Load(); p > queue+8<<10 {
		t.Fatalf("a socket held %d bytes queued; the limit is %d", p, queue)
	}
	before := diffs.Load()
	fast.send(`["1","0","room:lobby","i_moved",{"position":[0,0,0]}]`)
	for diffs.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("the other member gets no more diffs")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// blackhole is a TCP proxy that can stop forwarding in both directions without closing
// either side: what a client whose network vanished looks like to the server.
type blackhole struct {
	ln      net.Listener
	dropped atomic.Bool
}

func newBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	b := &blackhole{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); s.Close() })
			go b.pipe(s, c)
			go b.pipe(c, s)
		}
	}()
	return b
}

func (b *blackhole) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if b.dropped.Load() {
			continue // swallowed: the other side never hears of it, nor of any close
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// A half-open socket (the client's network went away without a FIN) is reaped by the idle
// timeout, and its member leaves the room.
func TestHalfOpenSocketIsReaped(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: 20 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	bh := newBlackhole(t, ts.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+bh.ln.Addr().String()+"/socket/websocket?vsn=2.0.0&user_id=ghost", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	c := &client{t: t, conn: conn, v: 2}
	c.send(`["1","1","room:lobby","phx_join",{}]`)
	c.until("room:lobby", "entities_state")
	bh.dropped.Store(true)
	start := time.Now()
	for {
		if st, _ := ts.Room().Stats(context.Background()); st.Members == 0 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the half-open socket's member is still in the room")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("reaped after %v, before the idle timeout", d)
	}
}
