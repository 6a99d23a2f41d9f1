package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/xrooms/xrooms/roomserver/server"
)

// limits are the flags of the server's limits on what clients send. On a flag, 0 is no
// limit; server.Config takes a negative value for that.
type limits struct {
	frameBytes, payloadBytes, componentBytes, depth, topics, entities int
	eventsPerSecond, connectsPerSecond                                float64
	sendQueueBytes                                                    int
	idleTimeout                                                       time.Duration
}

func (l *limits) register(fs *flag.FlagSet) {
	fs.IntVar(&l.frameBytes, "max-frame-bytes", server.DefaultReadLimit,
		"largest WebSocket message a client may send; a larger one closes the socket with 1009 (0: no limit)")
	fs.IntVar(&l.payloadBytes, "max-payload-bytes", server.DefaultMaxPayloadBytes,
		"largest push or join payload; a larger one gets the error reply payload_too_large (0: no limit)")
	fs.IntVar(&l.componentBytes, "max-component-bytes", server.DefaultMaxComponentBytes,
		"largest value of one payload field (a component); a larger one gets component_too_large (0: no limit)")
	fs.IntVar(&l.depth, "max-payload-depth", server.DefaultMaxPayloadDepth,
		"deepest nesting of objects and arrays in a payload (the payload is depth 1); deeper gets payload_too_deep (0: no limit)")
	fs.Float64Var(&l.eventsPerSecond, "max-events-per-second", server.DefaultMaxEventsPerSecond,
		"frames per second per socket, heartbeats aside, with bursts of twice that; more get rate_limited, "+
			"and a socket over it for 5s is closed with 1008 (0: no limit)")
	fs.IntVar(&l.topics, "max-topics", server.DefaultMaxTopics,
		"topics one socket may hold; a join of one more gets too_many_topics (0: no limit)")
	fs.IntVar(&l.entities, "max-entities", server.DefaultMaxEntities,
		"most entities in the room; an event creating more gets room_entity_limit and changes nothing (0: no limit)")
	fs.Float64Var(&l.connectsPerSecond, "max-connects-per-second", server.DefaultMaxConnectsPerSecond,
		"connection attempts per second per client address, with bursts of twice that; more get HTTP 429 (0: no limit)")
	fs.IntVar(&l.sendQueueBytes, "send-queue-bytes", server.DefaultSendQueueBytes,
		"bytes queued to one socket at most; a member that falls further behind is disconnected (1013) and rejoins fresh (at least 1024)")
	fs.DurationVar(&l.idleTimeout, "idle-timeout", server.DefaultIdleTimeout,
		"a socket that sends nothing, not even a heartbeat (every 30s), for this long is closed: half-open sockets go (at least 1s)")
}

// check refuses negative limits.
func (l *limits) check() error {
	if l.sendQueueBytes < 1024 {
		return fmt.Errorf("--send-queue-bytes %d must be at least 1024", l.sendQueueBytes)
	}
	if l.idleTimeout < time.Second {
		return fmt.Errorf("--idle-timeout %v must be at least 1s", l.idleTimeout)
	}
	for name, v := range map[string]float64{
		"max-frame-bytes": float64(l.frameBytes), "max-payload-bytes": float64(l.payloadBytes),
		"max-component-bytes": float64(l.componentBytes), "max-payload-depth": float64(l.depth),
		"max-events-per-second": l.eventsPerSecond, "max-topics": float64(l.topics), "max-entities": float64(l.entities),
		"max-connects-per-second": l.connectsPerSecond,
	} {
		if v < 0 {
			return fmt.Errorf("--%s %v must not be negative (0 is no limit)", name, v)
		}
	}
	return nil
}

// apply sets the limits on cfg.
func (l *limits) apply(cfg *server.Config) {
	off := func(v int) int {
		if v == 0 {
			return -1
		}
		return v
	}
	offF := func(v float64) float64 {
		if v == 0 {
			return -1
		}
		return v
	}
	cfg.ReadLimit = int64(off(l.frameBytes))
	cfg.MaxPayloadBytes, cfg.MaxComponentBytes, cfg.MaxPayloadDepth = off(l.payloadBytes), off(l.componentBytes), off(l.depth)
	cfg.MaxTopics, cfg.MaxEntities = off(l.topics), off(l.entities)
	cfg.MaxEventsPerSecond, cfg.MaxConnectsPerSecond = offF(l.eventsPerSecond), offF(l.connectsPerSecond)
	cfg.SendQueueBytes, cfg.IdleTimeout = l.sendQueueBytes, l.idleTimeout
}
