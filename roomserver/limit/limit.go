package limit

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Reasons: the "reason" of the error reply to a refused push or join.
const (
	ReasonPayloadTooLarge   = "payload_too_large"
	ReasonComponentTooLarge = "component_too_large"
	ReasonPayloadTooDeep    = "payload_too_deep"
	ReasonRateLimited       = "rate_limited"
	ReasonTooManyTopics     = "too_many_topics"
	ReasonEntityLimit       = "room_entity_limit"
)

// Error is a refusal for going over a limit. Its reply response is
// {"reason": Reason, "limit": Limit, "max": Max}: a client can tell which limit it hit and
// what the limit is, and Limit is the name of the server flag that sets it.
type Error struct {
	Reason string
	Limit  string // the flag, without dashes: "max-payload-bytes"
	Max    int64
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: over %s=%d", e.Reason, e.Limit, e.Max)
}

// Response returns the error reply's response object.
func (e *Error) Response() json.RawMessage {
	b, _ := json.Marshal(struct {
		Reason string `json:"reason"`
		Limit  string `json:"limit"`
		Max    int64  `json:"max"`
	}{e.Reason, e.Limit, e.Max}) // strings and numbers always marshal
	return b
}

// Payload bounds one event's payload. A field of zero or less is not checked.
type Payload struct {
	// MaxBytes bounds the payload as sent.
	MaxBytes int
	// MaxComponentBytes bounds each top-level field of the event's payload: the value that
	// becomes a component.
	MaxComponentBytes int
	// MaxDepth bounds the nesting of objects and arrays; the payload object itself is depth 1.
	MaxDepth int
}

// CheckPayload checks an event's payload: raw as it came (for its size) and its top-level
// fields (for component size and depth). It returns an *Error, or nil.
func CheckPayload(l Payload, raw []byte, fields map[string]json.RawMessage) error {
	if l.MaxBytes > 0 && len(raw) > l.MaxBytes {
		return &Error{ReasonPayloadTooLarge, "max-payload-bytes", int64(l.MaxBytes)}
	}
	for _, v := range fields {
		if l.MaxComponentBytes > 0 && len(v) > l.MaxComponentBytes {
			return &Error{ReasonComponentTooLarge, "max-component-bytes", int64(l.MaxComponentBytes)}
		}
		if l.MaxDepth > 0 && 1+Depth(v) > l.MaxDepth {
			return &Error{ReasonPayloadTooDeep, "max-payload-depth", int64(l.MaxDepth)}
		}
	}
	return nil
}

// Depth returns the deepest nesting of objects and arrays in a JSON value: 0 for a scalar,
// 1 for {} or [1]. It scans bytes without decoding, so it costs little on values already
// known to be valid JSON; on invalid JSON its answer is meaningless but it does not fail.
func Depth(v []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range v {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// AbuseAfter is how long a member may keep being refused for its event rate before it is
// disconnected: a client that bursts and then slows down stays; one that keeps pushing over
// the limit goes.
const AbuseAfter = 5 * time.Second

// Events is a member socket's event rate limit: a token bucket of rate per second holding
// two seconds' worth. The zero rate is no limit.
type Events struct {
	lim *rate.Limiter
	// overSince is when the current run of refusals began; zero while the member behaves.
	overSince time.Time
}

// NewEvents returns the limit for perSecond events (0 or less: unlimited).
func NewEvents(perSecond float64) *Events {
	if perSecond <= 0 {
		return &Events{}
	}
	return &Events{lim: rate.NewLimiter(rate.Limit(perSecond), max(1, int(2*perSecond)))}
}

// Allow takes one event at now. It returns nil, an *Error to answer the event with, or with
// abusive set, the error and the news that the member has been over the limit for
// AbuseAfter and must be disconnected.
func (e *Events) Allow(now time.Time) (err error, abusive bool) {
	if e.lim == nil {
		return nil, false
	}
	// Back under the limit with half the bucket refilled: the run of refusals is over.
	if !e.overSince.IsZero() && e.lim.TokensAt(now) >= float64(e.lim.Burst())/2 {
		e.overSince = time.Time{}
	}
	if e.lim.AllowN(now, 1) {
		return nil, false
	}
	if e.overSince.IsZero() {
		e.overSince = now
	}
	err = &Error{ReasonRateLimited, "max-events-per-second", int64(e.lim.Limit())}
	return err, now.Sub(e.overSince) >= AbuseAfter
}

// Connections limits connection attempts per source address: a token bucket per address,
// of rate per second holding two seconds' worth. It keeps at most maxAddrs buckets: when
// full, it forgets addresses whose bucket has refilled (they have been quiet), and if none
// has, every address, so memory stays bounded under a flood from many addresses.
type Connections struct {
	perSecond rate.Limit
	burst     int
	maxAddrs  int

	mu    sync.Mutex
	addrs map[netip.Addr]*rate.Limiter
}

// NewConnections returns a limit of perSecond attempts per address (0 or less: nil, which
// allows everything).
func NewConnections(perSecond float64, maxAddrs int) *Connections {
	if perSecond <= 0 {
		return nil
	}
	return &Connections{
		perSecond: rate.Limit(perSecond), burst: max(1, int(2*perSecond)), maxAddrs: max(1, maxAddrs),
		addrs: map[netip.Addr]*rate.Limiter{},
	}
}

// Allow takes one attempt from addr at now. A nil Connections allows everything.
func (c *Connections) Allow(addr netip.Addr, now time.Time) bool {
	if c == nil {
		return true
	}
	addr = addr.Unmap()
	c.mu.Lock()
	defer c.mu.Unlock()
	lim := c.addrs[addr]
	if lim == nil {
		if len(c.addrs) >= c.maxAddrs {
			c.sweep(now)
		}
		lim = rate.NewLimiter(c.perSecond, c.burst)
		c.addrs[addr] = lim
	}
	return lim.AllowN(now, 1)
}

// sweep forgets quiet addresses, or all if none is quiet. The lock must be held.
func (c *Connections) sweep(now time.Time) {
	for a, lim := range c.addrs {
		if lim.TokensAt(now) >= float64(c.burst) {
			delete(c.addrs, a)
		}
	}
	if len(c.addrs) >= c.maxAddrs {
		clear(c.addrs)
	}
}

// Len returns the number of addresses tracked.
func (c *Connections) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.addrs)
}

// Max is the Limit name and value of a refused connection, for the 429 body.
func (c *Connections) Max() int64 { return int64(c.perSecond) }
