package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xrooms/xrooms/roomserver/limit"
	"github.com/xrooms/xrooms/roomserver/protocol"
	"github.com/xrooms/xrooms/roomserver/room"
)

// The default limits of Config, for the command's flags too.
const (
	DefaultReadLimit            = 64 << 10
	DefaultMaxPayloadBytes      = 32 << 10
	DefaultMaxComponentBytes    = 16 << 10
	DefaultMaxPayloadDepth      = 16
	DefaultMaxEventsPerSecond   = 60
	DefaultMaxTopics            = 8
	DefaultMaxEntities          = 10000
	DefaultMaxConnectsPerSecond = 20
	DefaultSendQueueBytes       = 1 << 20
	DefaultIdleTimeout          = 60 * time.Second
)

// maxTrackedAddrs bounds the connection limit's memory: one small bucket per address.
const maxTrackedAddrs = 10000

// reasonConnectRate labels connections refused with 429 in the refusals metric.
const reasonConnectRate = "connection_rate_limited"

// errAbusive ends the reader of a socket closed for keeping over its event rate.
var errAbusive = errors.New("closed: over the event rate limit for too long")

// allowConnection refuses, with 429 before the upgrade, a connection attempt from an
// address over its rate. It is cheap, as a refused client retries for ever.
func (s *Server) allowConnection(w http.ResponseWriter, r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || s.connects.Allow(ap.Addr(), time.Now()) {
		return true
	}
	s.metrics.Refusals.WithLabelValues(reasonConnectRate).Inc()
	w.Header().Set("Retry-After", "1")
	http.Error(w, fmt.Sprintf("too many connection attempts from %s: over max-connects-per-second=%d", ap.Addr(), s.connects.Max()),
		http.StatusTooManyRequests)
	return false
}

// payloadLimits returns the configured limits on a payload.
func (s *Server) payloadLimits() limit.Payload {
	return limit.Payload{MaxBytes: s.cfg.MaxPayloadBytes, MaxComponentBytes: s.cfg.MaxComponentBytes, MaxDepth: s.cfg.MaxPayloadDepth}
}

// allowFrame takes a frame from the socket's event rate. A frame over it is answered with
// rate_limited and not handled; a socket that stays over it for limit.AbuseAfter is closed
// with 1008 and errAbusive returned. Heartbeats are not counted: they are cheap, and a
// client must be able to keep its socket alive while it backs off.
func (sock *socket) allowFrame(f protocol.Frame) (bool, error) {
	if f.Topic == protocol.TopicPhoenix && f.Event == protocol.EventHeartbeat {
		return true, nil
	}
	err, abusive := sock.events.Allow(time.Now())
	if err == nil {
		return true, nil
	}
	sock.srv.metrics.Refusals.WithLabelValues(limit.ReasonRateLimited).Inc()
	if abusive {
		sock.log.Warn("closing a socket over its event rate limit", "limit_per_second", sock.srv.cfg.MaxEventsPerSecond, "for", limit.AbuseAfter)
		sock.sendClose(websocket.ClosePolicyViolation, "over the event rate limit")
		return false, errAbusive
	}
	sock.reply(room.ErrorReply(f, err))
	return false, nil
}

// payloadAllowed checks a push's or join's payload against the limits, answering f with the
// limit's error when it is over.
func (sock *socket) payloadAllowed(f protocol.Frame, fields map[string]json.RawMessage) bool {
	err := limit.CheckPayload(sock.srv.payloadLimits(), f.Payload, fields)
	if err == nil {
		return true
	}
	var le *limit.Error
	if errors.As(err, &le) {
		sock.srv.metrics.Refusals.WithLabelValues(le.Reason).Inc()
	}
	sock.reply(room.ErrorReply(f, err))
	return false
}

// topicAllowed refuses a join of a new topic when the socket holds MaxTopics already;
// rejoining a held topic replaces it and is always allowed.
func (sock *socket) topicAllowed(f protocol.Frame) bool {
	max := sock.srv.cfg.MaxTopics
	if max <= 0 {
		return true
	}
	sock.mu.Lock()
	_, held := sock.channels[f.Topic]
	n := len(sock.channels)
	sock.mu.Unlock()
	if held || n < max {
		return true
	}
	sock.srv.metrics.Refusals.WithLabelValues(limit.ReasonTooManyTopics).Inc()
	sock.reply(room.ErrorReply(f, &limit.Error{Reason: limit.ReasonTooManyTopics, Limit: "max-topics", Max: int64(max)}))
	return false
}
