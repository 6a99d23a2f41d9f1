package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are one room server's collectors. Every metric carries the room and namespace as
// constant labels.
type Metrics struct {
	Members         prometheus.Gauge
	Entities        prometheus.Gauge
	EventsIn        *prometheus.CounterVec // by source: socket, http, server
	RuleErrors      prometheus.Counter
	DiffsOut        prometheus.Counter
	EntitiesPerDiff prometheus.Histogram
	FlushDuration   prometheus.Histogram
	SlowDisconnects prometheus.Counter
	StoreErrors     prometheus.Counter
	SyncInterval    prometheus.Gauge
	MaxClients      prometheus.Gauge
	StreamDropped   prometheus.Counter
	Refusals        *prometheus.CounterVec // by reason: a limit's (rate_limited, ...)
}

// Event sources for EventsIn.
const (
	SourceSocket = "socket" // a member's push
	SourceHTTP   = "http"   // POST /rooms/<room>/events, or Go code in the process
	SourceServer = "server" // user_joined and user_left, made by the server
)

// New creates the collectors and registers them on reg, unless reg is nil.
func New(reg prometheus.Registerer, room, namespace string) *Metrics {
	labels := prometheus.Labels{"room": room, "namespace": namespace}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "xrooms", Subsystem: "room", Name: name, Help: help, ConstLabels: labels}
	}
	m := &Metrics{
		Members:  prometheus.NewGauge(prometheus.GaugeOpts(opts("members", "Channel memberships of the room (a user with two tabs counts twice)."))),
		Entities: prometheus.NewGauge(prometheus.GaugeOpts(opts("entities", "Entities in the room as of the last flush."))),
		EventsIn: prometheus.NewCounterVec(prometheus.CounterOpts(opts("events_total", "Room events received, by source.")), []string{"source"}),
		RuleErrors: prometheus.NewCounter(prometheus.CounterOpts(opts("rule_errors_total",
			"Room events refused by a rule (bad input); they changed nothing."))),
		DiffsOut: prometheus.NewCounter(prometheus.CounterOpts(opts("diffs_total", "entities_diff broadcasts sent (one per non-empty flush)."))),
		EntitiesPerDiff: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "xrooms", Subsystem: "room", Name: "diff_entities", ConstLabels: labels,
			Help:    "Entities changed per entities_diff.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8), // 1 .. 16384
		}),
		FlushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "xrooms", Subsystem: "room", Name: "flush_duration_seconds", ConstLabels: labels,
			Help:    "Time to flush one batch: diff, store commit, encoding and enqueueing to every member.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 8), // 100µs .. 1.6s
		}),
		SlowDisconnects: prometheus.NewCounter(prometheus.CounterOpts(opts("slow_member_disconnects_total",
			"Sockets disconnected because their send queue overflowed."))),
		StoreErrors:  prometheus.NewCounter(prometheus.CounterOpts(opts("store_errors_total", "Failed store commits."))),
		SyncInterval: prometheus.NewGauge(prometheus.GaugeOpts(opts("sync_interval_seconds", "Current sync (flush) interval."))),
		MaxClients:   prometheus.NewGauge(prometheus.GaugeOpts(opts("max_clients", "Current member limit (0: unlimited)."))),
		StreamDropped: prometheus.NewCounter(prometheus.CounterOpts(opts("stream_slow_subscribers_total",
			"Room stream subscribers dropped for falling behind."))),
		Refusals: prometheus.NewCounterVec(prometheus.CounterOpts(opts("limit_refusals_total",
			"Pushes, joins and connections refused for going over a limit, by reason; each changed nothing.")), []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.Members, m.Entities, m.EventsIn, m.RuleErrors, m.DiffsOut, m.EntitiesPerDiff,
			m.FlushDuration, m.SlowDisconnects, m.StoreErrors, m.SyncInterval, m.MaxClients, m.StreamDropped, m.Refusals)
	}
	return m
}
