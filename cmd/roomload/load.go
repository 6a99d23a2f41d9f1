package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

	"github.com/coder/websocket"
)

type config struct {
	URL      string
	Room     string
	Clients  int
	Rate     float64
	Duration time.Duration
	Measure  int
	PID      int
}

// result is the one JSON line roomload prints.
type result struct {
	Clients          int     `json:"clients"`
	DurationS        float64 `json:"duration_s"`
	SentPerS         float64 `json:"sent_per_s"`
	ReceivedMsgsPerS float64 `json:"received_msgs_per_s"`
	DiffsPerS        float64 `json:"diffs_per_s"`
	ReceivedMBPerS   float64 `json:"received_mb_per_s"`
	LatencySamples   int     `json:"latency_samples"`
	P50Ms            float64 `json:"p50_ms"`
	P99Ms            float64 `json:"p99_ms"`
	MaxMs            float64 `json:"max_ms"`
	Errors           int64   `json:"errors"`
	FirstError       string  `json:"first_error,omitempty"`
	ServerCPUPct     float64 `json:"server_cpu_pct,omitempty"`
	ServerRSSMB      float64 `json:"server_rss_mb,omitempty"`
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
		clients[i] = &client{id: fmt.Sprintf("load-%05d", i), url: cu.String(), topic: "room:" + cfg.Room, measure: i < cfg.Measure, c: &c}
		wg.Add(1)
		sem <- struct{}{}
		go func(cl *client) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := cl.connect(ctx); err != nil {
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
		res.ServerCPUPct, res.ServerRSSMB, err = cpu.stop()
		if err != nil {
			return result{}, err
		}
	}
	// Give the last diffs one moment to land, then close everyone.
	time.Sleep(200 * time.Millisecond)
	var lat []time.Duration
	for _, cl := range clients {
		if cl.conn != nil {
			cl.conn.Close(websocket.StatusNormalClosure, "")
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

func ms(d time.Duration) float64 { return round(float64(d) / float64(time.Millisecond)) }
func round(f float64) float64    { return math.Round(f*100) / 100 }

// client is one load client: a socket joined to the room.
type client struct {
	id, url, topic string
	measure        bool
	c              *counters
	conn           *websocket.Conn

	mu        sync.Mutex
	sentAt    []time.Time // sentAt[seq]
	answered  int         // every seq below this has a latency sample
	latencies []time.Duration
}

func (cl *client) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	conn, err := dialRetrying(ctx, cl.url)
	if err != nil {
		return err
	}
	conn.SetReadLimit(64 << 20)
	join := fmt.Sprintf(`["1","1",%q,"phx_join",{}]`, cl.topic)
	if err := conn.Write(ctx, websocket.MessageText, []byte(join)); err != nil {
		conn.CloseNow()
		return fmt.Errorf("failed to send join: %w", err)
	}
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			conn.CloseNow()
			return fmt.Errorf("failed to read join reply: %w", err)
		}
		if bytes.Contains(msg, []byte(`"phx_reply"`)) {
			if !bytes.Contains(msg, []byte(`"status":"ok"`)) {
				conn.CloseNow()
				return fmt.Errorf("join refused: %s", msg)
			}
			cl.conn = conn
			return nil
		}
	}
}

// dialRetrying dials, and on HTTP 429 (the server's limit on connection attempts per
// address: every client here shares one) waits as the server asks and tries again, as the
// phoenix client does, until ctx ends.
func dialRetrying(ctx context.Context, u string) (*websocket.Conn, error) {
	for {
		conn, resp, err := websocket.Dial(ctx, u, nil)
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
	for seq := 0; ; seq++ {
		buf = buf[:0]
		buf = fmt.Appendf(buf, `["1","%d",%q,"i_moved",{"position":[%d.25,1.5,-2.75],"rotation":[0,0.7071,0,0.7071],"seq":%d}]`, seq+2, cl.topic, seq%100, seq)
		if cl.measure {
			cl.mu.Lock()
			cl.sentAt = append(cl.sentAt, time.Now())
			cl.mu.Unlock()
		}
		if err := cl.conn.Write(ctx, websocket.MessageText, buf); err != nil {
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

func (cl *client) read(ctx context.Context) {
	key := []byte(strconv.Quote(cl.id) + ":")
	// One buffer per client, reused for every message: Conn.Read would allocate each one,
	// and at hundreds of clients the generator, not the server, would run out of CPU.
	var buf bytes.Buffer
	for {
		_, r, err := cl.conn.Reader(ctx)
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			if ctx.Err() == nil && websocket.CloseStatus(err) != websocket.StatusNormalClosure && !errors.Is(err, net.ErrClosed) {
				cl.c.fail(fmt.Errorf("failed to read: %w", err))
			}
			return
		}
		msg := buf.Bytes()
		now := time.Now()
		cl.c.received.Add(1)
		cl.c.bytes.Add(int64(len(msg)))
		if !bytes.Contains(msg[:min(len(msg), 64)], []byte(`"entities_diff"`)) {
			if bytes.Contains(msg, []byte(`"status":"error"`)) {
				cl.c.fail(fmt.Errorf("error reply: %s", msg))
			}
			continue
		}
		cl.c.diffs.Add(1)
		if !cl.measure {
			continue
		}
		i := bytes.Index(msg, key)
		if i < 0 {
			continue
		}
		var v struct {
			Seq *int `json:"seq"`
		}
		if err := json.NewDecoder(bytes.NewReader(msg[i+len(key):])).Decode(&v); err != nil || v.Seq == nil {
			continue
		}
		cl.mu.Lock()
		for ; cl.answered <= *v.Seq && cl.answered < len(cl.sentAt); cl.answered++ {
			cl.latencies = append(cl.latencies, now.Sub(cl.sentAt[cl.answered]))
		}
		cl.mu.Unlock()
	}
}
