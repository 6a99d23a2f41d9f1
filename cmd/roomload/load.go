package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xrooms/xrooms/roomserver/compact"
)

type config struct {
	URL      string
	Room     string
	Clients  int
	Rate     float64
	Duration time.Duration
	Measure  int
	PID      int
	// NoCompression stops clients offering permessage-deflate, which browsers and the ws
	// library offer by default.
	NoCompression bool
	// Encoding is the join's encoding: "" or "json", or "compact" (binary diffs, package
	// compact).
	Encoding string
}

// result is the one JSON line roomload prints.
type result struct {
	Clients          int     `json:"clients"`
	DurationS        float64 `json:"duration_s"`
	SentPerS         float64 `json:"sent_per_s"`
	ReceivedMsgsPerS float64 `json:"received_msgs_per_s"`
	DiffsPerS        float64 `json:"diffs_per_s"`
	ReceivedMBPerS   float64 `json:"received_mb_per_s"` // on the wire: compressed when negotiated
	LatencySamples   int     `json:"latency_samples"`
	P50Ms            float64 `json:"p50_ms"`
	P99Ms            float64 `json:"p99_ms"`
	MaxMs            float64 `json:"max_ms"`
	Errors           int64   `json:"errors"`
	FirstError       string  `json:"first_error,omitempty"`
	ServerCPUPct     float64 `json:"server_cpu_pct,omitempty"`
	ServerSysPct     float64 `json:"server_sys_pct,omitempty"` // of ServerCPUPct, in the kernel
	ServerRSSMB      float64 `json:"server_rss_mb,omitempty"`
}

func (r *result) setUsage(u usage) {
	r.ServerCPUPct, r.ServerSysPct, r.ServerRSSMB = u.cpuPct, u.sysPct, u.rssMB
}

type counters struct {
	sent, received, diffs, bytes, errors atomic.Int64
	firstErr                             sync.Once
	firstErrMsg                          atomic.Value
}

func (c *counters) fail(err error) {
	c.errors.Add(1)
	c.firstErr.Do(func() { c.firstErrMsg.Store(err.Error()) })
}

func run(ctx context.Context, cfg config) (result, error) {
	if cfg.Clients < 1 || cfg.Rate <= 0 || cfg.Duration <= 0 {
		return result{}, errors.New("clients, rate and duration must be positive")
	}
	if cfg.Measure <= 0 || cfg.Measure > cfg.Clients {
		cfg.Measure = cfg.Clients
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return result{}, fmt.Errorf("failed to parse --url: %w", err)
	}
	u.Path += "/websocket"

	var c counters
	dialer := newDialer(cfg.NoCompression, &c)
	clients := make([]*client, cfg.Clients)
	// Connect and join everyone first, a few at a time, so the measured window is steady state.
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range clients {
		q := u.Query()
		q.Set("vsn", "2.0.0")
		q.Set("user_id", fmt.Sprintf("load-%05d", i))
		cu := *u
		cu.RawQuery = q.Encode()
		clients[i] = &client{id: fmt.Sprintf("load-%05d", i), url: cu.String(), topic: "room:" + cfg.Room, encoding: cfg.Encoding, measure: measures(i, cfg.Clients, cfg.Measure), c: &c}
		wg.Add(1)
		sem <- struct{}{}
		go func(cl *client) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := cl.connect(ctx, dialer); err != nil {
				c.fail(err)
			}
		}(clients[i])
	}
	wg.Wait()
	if ctx.Err() != nil {
		return result{}, ctx.Err()
	}

	for _, cl := range clients {
		if cl.conn != nil {
			go cl.read(ctx)
		}
	}
	var cpu *cpuSampler
	if cfg.PID > 0 {
		cpu, err = newCPUSampler(cfg.PID)
		if err != nil {
			return result{}, err
		}
	}
	c.sent.Store(0)
	c.received.Store(0)
	c.diffs.Store(0)
	c.bytes.Store(0)
	start := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	for i, cl := range clients {
		if cl.conn == nil {
			continue
		}
		wg.Add(1)
		// Spread the clients' first pushes over one interval, as real clients are.
		offset := interval * time.Duration(i) / time.Duration(len(clients))
		go func() {
			defer wg.Done()
			cl.push(runCtx, offset, interval)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	res := result{
		Clients:          cfg.Clients,
		DurationS:        round(elapsed),
		SentPerS:         round(float64(c.sent.Load()) / elapsed),
		ReceivedMsgsPerS: round(float64(c.received.Load()) / elapsed),
		DiffsPerS:        round(float64(c.diffs.Load()) / elapsed),
		ReceivedMBPerS:   round(float64(c.bytes.Load()) / elapsed / 1e6),
	}
	if cpu != nil {
		u, err := cpu.stop()
		if err != nil {
			return result{}, err
		}
		res.setUsage(u)
	}
	// Give the last diffs one moment to land, then close everyone.
	time.Sleep(200 * time.Millisecond)
	var lat []time.Duration
	for _, cl := range clients {
		if cl.conn != nil {
			cl.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			cl.conn.Close()
		}
		cl.mu.Lock()
		lat = append(lat, cl.latencies...)
		cl.mu.Unlock()
	}
	slices.Sort(lat)
	res.LatencySamples = len(lat)
	if len(lat) > 0 {
		res.P50Ms = ms(lat[len(lat)/2])
		res.P99Ms = ms(lat[min(len(lat)-1, len(lat)*99/100)])
		res.MaxMs = ms(lat[len(lat)-1])
	}
	res.Errors = c.errors.Load()
	if s, ok := c.firstErrMsg.Load().(string); ok {
		res.FirstError = s
	}
	return res, nil
}

// measures says whether client i of n is one of the m that measure latency: they are spread
// evenly over the join order, as servers fan a diff out in join order, and the first joiners
// alone would see the shortest waits.
func measures(i, n, m int) bool {
	return i*m/n != (i+1)*m/n
}

func ms(d time.Duration) float64 { return round(float64(d) / float64(time.Millisecond)) }
func round(f float64) float64    { return math.Round(f*100) / 100 }

// client is one load client: a socket joined to the room.
type client struct {
	id, url, topic string
	encoding       string
	measure        bool
	skim           *skimmer // reads for a client that does not measure
	c              *counters
	conn           *websocket.Conn

	mu        sync.Mutex
	sentAt    []time.Time // sentAt[seq]
	answered  int         // every seq below this has a latency sample
	latencies []time.Duration
}

func (cl *client) connect(ctx context.Context, dialer *websocket.Dialer) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	conn, err := dialRetrying(ctx, dialer, cl.url)
	if err != nil {
		return err
	}
	// Pushes go uncompressed, as the ws library sends messages under 1 KiB.
	conn.EnableWriteCompression(false)
	conn.SetReadLimit(64 << 20)
	if d, ok := ctx.Deadline(); ok {
		conn.SetReadDeadline(d)
		defer conn.SetReadDeadline(time.Time{})
	}
	join := fmt.Sprintf(`["1","1",%q,"phx_join",{}]`, cl.topic)
	if cl.encoding != "" {
		join = fmt.Sprintf(`["1","1",%q,"phx_join",{"encoding":%q}]`, cl.topic, cl.encoding)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte(join)); err != nil {
		conn.Close()
		return fmt.Errorf("failed to send join: %w", err)
	}
	if !cl.measure {
		// Nothing has been read past the handshake (the server speaks only when joined), so
		// the skimmer may take the connection's reading over from here.
		cl.skim = newSkimmer(conn.NetConn())
	}
	for {
		msg, err := cl.readJoinFrame(conn)
		if err != nil {
			conn.Close()
			return fmt.Errorf("failed to read join reply: %w", err)
		}
		if bytes.Contains(msg, []byte(`"phx_reply"`)) {
			if !bytes.Contains(msg, []byte(`"status":"ok"`)) {
				conn.Close()
				return fmt.Errorf("join refused: %s", msg)
			}
			cl.conn = conn
			return nil
		}
	}
}

// readJoinFrame reads a frame while joining: the whole message for a measuring client, the
// start of an uncompressed one (replies are) for a skimming one.
func (cl *client) readJoinFrame(conn *websocket.Conn) ([]byte, error) {
	if cl.skim == nil {
		_, msg, err := conn.ReadMessage()
		return msg, err
	}
	_, _, head, err := cl.skim.next()
	return head, err
}

// newDialer returns the clients' dialer: it offers permessage-deflate unless told not to,
// and counts the bytes that arrive on the wire.
func newDialer(noCompression bool, c *counters) *websocket.Dialer {
	var d net.Dialer
	return &websocket.Dialer{
		EnableCompression: !noCompression,
		HandshakeTimeout:  30 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: conn, n: &c.bytes}, nil
		},
	}
}

// countingConn counts the bytes read from the network.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// dialRetrying dials, and on HTTP 429 (the server's limit on connection attempts per
// address: every client here shares one) waits as the server asks and tries again, as the
// phoenix client does, until ctx ends.
func dialRetrying(ctx context.Context, dialer *websocket.Dialer, u string) (*websocket.Conn, error) {
	for {
		conn, resp, err := dialer.DialContext(ctx, u, nil)
		if err == nil {
			return conn, nil
		}
		if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			return nil, fmt.Errorf("failed to dial: %w", err)
		}
		wait := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		wait += time.Duration(rand.Int64N(int64(wait))) // jitter, so retries spread out
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("failed to dial: %w (last: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

func (cl *client) push(ctx context.Context, offset, interval time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(offset):
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	buf := make([]byte, 0, 256)
	var w walker
	w.seed(cl.id)
	for seq := 0; ; seq++ {
		buf = buf[:0]
		buf = fmt.Appendf(buf, `["1","%d",%q,"i_moved",{`, seq+2, cl.topic)
		buf = w.step(buf)
		buf = fmt.Appendf(buf, `,"seq":%d}]`, seq)
		if cl.measure {
			cl.mu.Lock()
			cl.sentAt = append(cl.sentAt, time.Now())
			cl.mu.Unlock()
		}
		if err := cl.conn.WriteMessage(websocket.TextMessage, buf); err != nil {
			if ctx.Err() == nil {
				cl.c.fail(fmt.Errorf("failed to push: %w", err))
			}
			return
		}
		cl.c.sent.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// diffMarker is how a JSON diff frame starts, as the room server encodes it for V2.
var diffMarker = []byte(`"entities_diff"`)

// isDiff tells a diff from other frames by the frame's start: a binary broadcast (the
// compact encoding's diffs; its entities_state is a binary push), or a JSON entities_diff.
func isDiff(typ int, head []byte) bool {
	if typ == websocket.BinaryMessage {
		return len(head) > 0 && head[0] == 2
	}
	return bytes.Contains(head, diffMarker)
}

// skimRead counts what a client that does not measure receives, without inflating it.
func (cl *client) skimRead(ctx context.Context) {
	for {
		op, compressed, head, err := cl.skim.next()
		if err != nil {
			var ce closedError
			if ctx.Err() == nil && !(errors.As(err, &ce) && ce.code == websocket.CloseNormalClosure) && !errors.Is(err, net.ErrClosed) {
				cl.c.fail(fmt.Errorf("failed to read: %w", err))
			}
			return
		}
		cl.c.received.Add(1)
		switch {
		case compressed:
			// The server compresses only frames of 1 KiB or more; under this load only
			// diffs are that large (replies are tens of bytes).
			cl.c.diffs.Add(1)
		case isDiff(int(op), head):
			cl.c.diffs.Add(1)
		case op == websocket.TextMessage && bytes.Contains(head, []byte(`"status":"error"`)):
			cl.c.fail(fmt.Errorf("error reply: %s", head))
		}
	}
}

func (cl *client) read(ctx context.Context) {
	if cl.skim != nil {
		cl.skimRead(ctx)
		return
	}
	key := []byte(strconv.Quote(cl.id) + ":")
	// One buffer per client, reused for every message: allocating each one would leave the
	// generator, not the server, out of CPU at hundreds of clients.
	var buf bytes.Buffer
	head := make([]byte, 64)
	for {
		typ, r, err := cl.conn.NextReader()
		var n int
		if err == nil {
			// A frame's start tells a diff from the rest. Clients that do not measure stop
			// there: the rest is skipped without being inflated.
			n, err = io.ReadFull(r, head)
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				err = nil
			}
		}
		diff := err == nil && isDiff(typ, head[:n])
		if err == nil && (cl.measure || !diff) {
			buf.Reset()
			buf.Write(head[:n])
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			if ctx.Err() == nil && !websocket.IsCloseError(err, websocket.CloseNormalClosure) && !errors.Is(err, net.ErrClosed) {
				cl.c.fail(fmt.Errorf("failed to read: %w", err))
			}
			return
		}
		now := time.Now()
		cl.c.received.Add(1)
		if !diff {
			if typ == websocket.TextMessage && bytes.Contains(buf.Bytes(), []byte(`"status":"error"`)) {
				cl.c.fail(fmt.Errorf("error reply: %s", buf.Bytes()))
			}
			continue
		}
		cl.c.diffs.Add(1)
		if !cl.measure {
			continue
		}
		var seq int
		var ok bool
		if typ == websocket.BinaryMessage {
			seq, ok = compactSeq(buf.Bytes(), cl.id)
		} else {
			seq, ok = jsonSeq(buf.Bytes(), key)
		}
		if !ok {
			continue
		}
		cl.mu.Lock()
		for ; cl.answered <= seq && cl.answered < len(cl.sentAt); cl.answered++ {
			cl.latencies = append(cl.latencies, now.Sub(cl.sentAt[cl.answered]))
		}
		cl.mu.Unlock()
	}
}

// jsonSeq finds the seq of the entity whose quoted id and colon are key in a JSON diff.
func jsonSeq(msg, key []byte) (int, bool) {
	i := bytes.Index(msg, key)
	if i < 0 {
		return 0, false
	}
	var v struct {
		Seq *int `json:"seq"`
	}
	if err := json.NewDecoder(bytes.NewReader(msg[i+len(key):])).Decode(&v); err != nil || v.Seq == nil {
		return 0, false
	}
	return *v.Seq, true
}

// compactSeq finds id's seq in a compact diff's binary broadcast frame.
func compactSeq(frame []byte, id string) (int, bool) {
	if len(frame) < 3 || len(frame) < 3+int(frame[1])+int(frame[2]) {
		return 0, false
	}
	d, err := compact.Decode(frame[3+int(frame[1])+int(frame[2]):])
	if err != nil {
		return 0, false
	}
	m, _ := d.(map[string]any)
	for _, section := range []string{"creates", "updates"} {
		entities, _ := m[section].(map[string]any)
		comps, _ := entities[id].(map[string]any)
		if seq, ok := comps["seq"].(float64); ok {
			return int(seq), true
		}
	}
	return 0, false
}

// walker moves a client the way a person in a room moves: a random walk on the floor and a
// turning head, sent at millimetre and 1e-4 precision, as an app that rounds its poses would
// send them. Values that change every push keep compression honest: constant positions
// would deflate to almost nothing.
type walker struct {
	r          *rand.Rand
	x, y, z    float64
	yaw, pitch float64
}

func (w *walker) seed(id string) {
	var h uint64
	for _, c := range id {
		h = h*31 + uint64(c)
	}
	w.r = rand.New(rand.NewPCG(h, 7))
	w.x, w.y, w.z = w.r.Float64()*20-10, 1.6+w.r.Float64()*0.2, w.r.Float64()*20-10
	w.yaw = w.r.Float64() * 2 * math.Pi
}

// step moves on and appends "position":[x,y,z],"rotation":[qx,qy,qz,qw].
func (w *walker) step(dst []byte) []byte {
	w.x = max(-10, min(10, w.x+w.r.Float64()*0.1-0.05))
	w.z = max(-10, min(10, w.z+w.r.Float64()*0.1-0.05))
	w.y = max(1.4, min(1.9, w.y+w.r.Float64()*0.02-0.01))
	w.yaw += w.r.Float64()*0.2 - 0.1
	w.pitch = max(-0.5, min(0.5, w.pitch+w.r.Float64()*0.1-0.05))
	// The quaternion of yaw about y, then pitch about x.
	sy, cy := math.Sincos(w.yaw / 2)
	sp, cp := math.Sincos(w.pitch / 2)
	dst = append(dst, `"position":`...)
	dst = appendFloats(dst, 1e3, w.x, w.y, w.z)
	dst = append(dst, `,"rotation":`...)
	return appendFloats(dst, 1e4, cy*sp, sy*cp, -sy*sp, cy*cp)
}

// appendFloats appends a JSON array of vs rounded to 1/scale, written as JavaScript's
// JSON.stringify writes them (shortest form).
func appendFloats(dst []byte, scale float64, vs ...float64) []byte {
	dst = append(dst, '[')
	for i, v := range vs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendFloat(dst, math.Round(v*scale)/scale+0, 'f', -1, 64)
	}
	return append(dst, ']')
}
