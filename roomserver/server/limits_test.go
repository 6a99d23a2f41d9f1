package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestTopicsPerSocket(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: never, MaxTopics: 1})
	c := ts.dial(t, "vsn=2.0.0&user_id=bob", nil)
	c.send(`["1","1","room:lobby","phx_join",{}]`)
	c.until("room:lobby", "entities_state")
	c.send(`["2","2","room_stream:lobby","phx_join",{}]`)
	c.want(`["2","2","room_stream:lobby","phx_reply",{"status":"error","response":{"reason":"too_many_topics","limit":"max-topics","max":1}}]`)
	// Rejoining the held topic replaces it, and is allowed.
	c.send(`["3","3","room:lobby","phx_join",{}]`)
	c.want(`["3","3","room:lobby","phx_reply",{"status":"ok","response":{"user_id":"bob"}}]`)
	c.until("room:lobby", "entities_state")
	// After a leave there is room for another.
	c.send(`["3","4","room:lobby","phx_leave",{}]`)
	c.until("room:lobby", "phx_close")
	c.send(`["5","5","room_stream:lobby","phx_join",{}]`)
	c.want(`["5","5","room_stream:lobby","phx_reply",{"status":"ok","response":{}}]`)
}

// Connection attempts over the per-address rate get 429 before the upgrade; sockets already
// open are not affected.
func TestConnectionRatePerAddress(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: never, MaxConnectsPerSecond: 2}) // bursts of 4
	var open []*client
	refused := 0
	for range 8 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, resp, err := websocket.Dial(ctx, "ws://"+ts.addr+"/socket/websocket?vsn=2.0.0", nil)
		cancel()
		if err != nil {
			if resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
				t.Fatalf("dial: %v (response %v)", err, resp)
			}
			refused++
			continue
		}
		t.Cleanup(func() { conn.CloseNow() })
		open = append(open, &client{t: t, conn: conn, v: 2})
	}
	if len(open) < 4 || refused < 3 {
		t.Fatalf("%d connections accepted, %d refused; want 4 (or 5 with a refill) and the rest refused", len(open), refused)
	}
	for _, c := range open {
		c.send(`[null,"1","phoenix","heartbeat",{}]`)
		c.want(`[null,"1","phoenix","phx_reply",{"status":"ok","response":{}}]`)
	}
	_, body := httpDo(t, "GET", ts.url("/metrics"), "")
	if !strings.Contains(body, `xrooms_room_limit_refusals_total{namespace="default",reason="connection_rate_limited",room="lobby"}`) {
		t.Fatal("refused connections not counted")
	}
}
