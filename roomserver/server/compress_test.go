package server

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// countingClient dials through connections that count the bytes they read off the wire.
func countingClient(n *atomic.Int64) *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: c, n: n}, nil
		},
	}}
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// A client that offers permessage-deflate gets the same diffs as one that does not, in far
// fewer bytes; the server answers the offer only when compression is on.
func TestDiffsAreCompressedForClientsThatOfferDeflate(t *testing.T) {
	for _, disabled := range []bool{false, true} {
		t.Run(map[bool]string{false: "on", true: "disabled"}[disabled], func(t *testing.T) {
			ts := startServer(t, Config{SyncInterval: 10 * time.Millisecond, DisableCompression: disabled})
			var plainN, deflateN atomic.Int64
			plain := ts.dial(t, "vsn=2.0.0&user_id=plain", &websocket.DialOptions{HTTPClient: countingClient(&plainN)})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, resp, err := websocket.Dial(ctx, "ws://"+ts.addr+"/socket/websocket?vsn=2.0.0&user_id=deflate", &websocket.DialOptions{
				HTTPClient: countingClient(&deflateN), CompressionMode: websocket.CompressionNoContextTakeover,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.CloseNow() })
			conn.SetReadLimit(-1)
			deflate := &client{t: t, conn: conn, v: plain.v}
			negotiated := strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
			if negotiated == disabled {
				t.Fatalf("Sec-WebSocket-Extensions %q with compression disabled=%v", resp.Header.Get("Sec-WebSocket-Extensions"), disabled)
			}
			for _, c := range []*client{plain, deflate} {
				c.send(`["1","1","room:lobby","phx_join",{}]`)
				c.until("room:lobby", "entities_state")
			}
			plainN.Store(0)
			deflateN.Store(0)
			// A large, compressible component: the diff carrying it is worth compressing.
			note := strings.Repeat("the quick brown fox jumps over the lazy dog ", 200)
			plain.send(`["1","2","room:lobby","i_moved",{"note":"` + note + `"}]`)
			for _, c := range []*client{plain, deflate} {
				for {
					d := c.until("room:lobby", "entities_diff")
					if strings.Contains(string(d.Payload), note) {
						break
					}
				}
			}
			p, d := plainN.Load(), deflateN.Load()
			t.Logf("plain client read %d bytes, deflate client %d", p, d)
			if !disabled && d*4 > p {
				t.Fatalf("the deflate client read %d bytes, the plain one %d: want a quarter or less", d, p)
			}
			if disabled && d < p*9/10 {
				t.Fatalf("compression disabled, yet the deflate client read %d bytes to the plain one's %d", d, p)
			}
		})
	}
}
