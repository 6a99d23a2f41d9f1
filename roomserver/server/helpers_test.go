package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/xrooms/xrooms/roomserver/protocol"
)

// testServer is a Server serving on a loopback port.
type testServer struct {
	*Server
	addr string
	stop func() error // cancels Serve and waits for it
}

// tWriter logs through t until the test ends; goroutines that outlive a test must not call
// t.Logf.
type tWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Logf("%s", strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	if cfg.Room == "" {
		cfg.Room = "lobby"
	}
	if cfg.Logger == nil {
		w := &tWriter{t: t}
		t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
		cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	ts := &testServer{Server: s, addr: ln.Addr().String(), stop: func() error {
		once.Do(func() {
			cancel()
			serveErr = <-served
		})
		return serveErr
	}}
	t.Cleanup(func() {
		if err := ts.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	for !s.ready.Load() {
		time.Sleep(time.Millisecond)
	}
	return ts
}

func (ts *testServer) url(path string) string { return "http://" + ts.addr + path }

// client is a WebSocket client speaking raw Phoenix frames.
type client struct {
	t    *testing.T
	conn *websocket.Conn
	v    protocol.Version
}

// dial connects with the given query (e.g. "vsn=2.0.0&user_id=bob").
func (ts *testServer) dial(t *testing.T, query string, opts *websocket.DialOptions) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+ts.addr+"/socket/websocket?"+query, opts)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(-1)
	t.Cleanup(func() { conn.CloseNow() })
	v, _ := protocol.ParseVersion(queryValue(query, "vsn"))
	return &client{t: t, conn: conn, v: v}
}

func queryValue(query, key string) string {
	for kv := range strings.SplitSeq(query, "&") {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

// send writes one raw text frame.
func (c *client) send(frame string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		c.t.Fatal(err)
	}
}

// push sends a frame in the client's version; refs are strings or "" for null.
func (c *client) push(joinRef, ref, topic, event, payload string) {
	c.t.Helper()
	q := func(s string) string {
		if s == "" {
			return "null"
		}
		b, _ := json.Marshal(s)
		return string(b)
	}
	if c.v == protocol.V2 {
		c.send(fmt.Sprintf(`[%s,%s,%s,%s,%s]`, q(joinRef), q(ref), q(topic), q(event), payload))
		return
	}
	c.send(fmt.Sprintf(`{"topic":%s,"event":%s,"payload":%s,"ref":%s,"join_ref":%s}`, q(topic), q(event), payload, q(ref), q(joinRef)))
}

// raw reads the next frame's text.
func (c *client) raw() string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := c.conn.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		c.t.Fatalf("got a %v frame", typ)
	}
	return string(b)
}

// want reads the next frame and compares its exact text.
func (c *client) want(frame string) {
	c.t.Helper()
	if got := c.raw(); got != frame {
		c.t.Fatalf("got  %s\nwant %s", got, frame)
	}
}

// next reads and decodes the next frame.
func (c *client) next() protocol.Frame {
	c.t.Helper()
	s := c.raw()
	f, err := protocol.Decode(c.v, []byte(s))
	if err != nil {
		c.t.Fatalf("server sent %s: %v", s, err)
	}
	return f
}

// until reads frames until one has the event (and topic, if given), skipping others.
func (c *client) until(topic, event string) protocol.Frame {
	c.t.Helper()
	for {
		f := c.next()
		if f.Event == event && (topic == "" || f.Topic == topic) {
			return f
		}
	}
}

// closeStatus reads until the connection ends and returns its close status.
func (c *client) closeStatus() websocket.StatusCode {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := c.conn.Read(ctx); err != nil {
			if ctx.Err() != nil {
				c.t.Fatal("connection still open")
			}
			return websocket.CloseStatus(err)
		}
	}
}

func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
