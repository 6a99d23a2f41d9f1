package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xrooms/xrooms/roomserver/auth"
	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/limit"
	"github.com/xrooms/xrooms/roomserver/metrics"
	"github.com/xrooms/xrooms/roomserver/room"
	"github.com/xrooms/xrooms/roomserver/rules"
	"github.com/xrooms/xrooms/roomserver/store"
)

// Config describes a room server. Zero values take the documented defaults.
type Config struct {
	// Room is the room this server hosts. Required.
	Room string
	// Namespace is the room's Kubernetes namespace, for logs and metrics. Default "default".
	Namespace string
	// SyncInterval is the flush period. Default 200ms.
	SyncInterval time.Duration
	// MaxClients limits room memberships; 0 is unlimited.
	MaxClients int
	// Store keeps the entities. Nil is a new in-memory store. A store passed in is the
	// caller's to close, after Serve returns.
	Store store.Store
	// InitialEntities seed an empty store; a store with entities keeps them.
	InitialEntities entity.State
	// Rules turn room events into mutations. Nil is rules.Builtin().
	Rules *rules.Table
	// Logger defaults to discarding.
	Logger *slog.Logger

	// SendQueueBytes bounds each socket's send queue; a socket over it is disconnected.
	// Default 1 MiB.
	SendQueueBytes int
	// StreamBuffer is how many room events a stream subscriber (room_stream topic, SSE) may
	// fall behind before it is dropped. Default 256.
	StreamBuffer int
	// ReadLimit bounds one incoming WebSocket message; a larger one closes the socket with
	// 1009 (message too big). Default 64 KiB.
	ReadLimit int64

	// Limits on what clients send (see package limit). For each, zero takes the default and a
	// negative value means no limit.
	//
	// MaxPayloadBytes bounds a push's or join's payload; MaxComponentBytes each of its
	// top-level fields (a component's value); MaxPayloadDepth the nesting of objects and
	// arrays in it (the payload itself is depth 1). A payload over any of them gets an error
	// reply naming the limit and changes nothing. Defaults 32 KiB, 16 KiB and 16.
	MaxPayloadBytes, MaxComponentBytes, MaxPayloadDepth int
	// MaxEventsPerSecond bounds each socket's frames (heartbeats aside): a token bucket
	// holding two seconds' worth. A frame over it gets the error reply rate_limited; a socket
	// still over it after limit.AbuseAfter is closed with 1008. Default 60.
	MaxEventsPerSecond float64
	// MaxTopics bounds the topics one socket holds; a join of one more is refused with
	// too_many_topics. Default 8.
	MaxTopics int
	// MaxEntities bounds the room's entities: an event that would create more is refused
	// with room_entity_limit and changes nothing. Default 10000.
	MaxEntities int
	// MaxConnectsPerSecond bounds connection attempts per source address (a token bucket
	// holding two seconds' worth, for at most 10000 addresses); one over it is refused with
	// HTTP 429 before the upgrade. The address is the TCP peer's: behind a proxy, limit
	// there. Default 20.
	MaxConnectsPerSecond float64
	// IdleTimeout closes a socket that sent nothing (not even a heartbeat) for this long.
	// Default 60s, as Phoenix; the client's heartbeat is every 30s.
	IdleTimeout time.Duration
	// WriteTimeout bounds one write pass to a socket or SSE client. Default 10s.
	WriteTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown. Default 10s: well inside Kubernetes'
	// default 30s termination grace period.
	ShutdownTimeout time.Duration
	// OriginPatterns, if set, limits the browser origins allowed to open sockets: host
	// patterns ("*.example.com") or, with a scheme, origin patterns ("https://app.example.com"),
	// matched with path.Match; the server's own host is always allowed. Empty allows every
	// origin: identity does not come from cookies, so cross-site sockets gain nothing a page
	// could not do itself.
	OriginPatterns []string
	// DisableCompression turns permessage-deflate off. When on (the default) and a client
	// offers it, as browsers and the ws library do, diffs are compressed once per flush for
	// all such clients, and other frames of 1 KiB or more per socket.
	DisableCompression bool
	// AuthSecret, when set, makes the room admit only sockets with a join token signed with
	// it (see package auth): the member acts as the token's subject. Nil leaves the room open:
	// anyone who reaches it may join, as any user id. At least auth.MinSecretLen bytes.
	AuthSecret []byte
}

// Server is one room server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	room    *room.Room
	reg     *prometheus.Registry
	metrics *metrics.Metrics
	handler http.Handler
	ready   atomic.Bool
	served  atomic.Bool
	closing chan struct{} // closed when shutdown starts: SSE streams end

	upgrader *websocket.Upgrader
	verifier *auth.Verifier // checks join tokens; nil for an open room
	connects *limit.Connections

	mu       sync.Mutex
	sockets  map[*socket]struct{}
	shutting bool
	handlers sync.WaitGroup // socket handlers, so Serve returns after them
}

// New loads the room from the store (seeding an empty store with InitialEntities) and
// returns a server ready to Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Room == "" {
		return nil, errors.New("server: room name is required")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Store == nil {
		cfg.Store = store.NewMemory()
	}
	if cfg.Rules == nil {
		t := rules.Builtin()
		cfg.Rules = &t
	}
	setDefault(&cfg.SendQueueBytes, DefaultSendQueueBytes)
	setDefault(&cfg.StreamBuffer, 256)
	setDefault(&cfg.ReadLimit, DefaultReadLimit)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDefault(&cfg.WriteTimeout, 10*time.Second)
	setDefault(&cfg.ShutdownTimeout, 10*time.Second)
	setDefault(&cfg.MaxPayloadBytes, DefaultMaxPayloadBytes)
	setDefault(&cfg.MaxComponentBytes, DefaultMaxComponentBytes)
	setDefault(&cfg.MaxPayloadDepth, DefaultMaxPayloadDepth)
	setDefault(&cfg.MaxEventsPerSecond, DefaultMaxEventsPerSecond)
	setDefault(&cfg.MaxTopics, DefaultMaxTopics)
	setDefault(&cfg.MaxEntities, DefaultMaxEntities)
	setDefault(&cfg.MaxConnectsPerSecond, DefaultMaxConnectsPerSecond)

	var verifier *auth.Verifier
	if cfg.AuthSecret != nil {
		var err error
		if verifier, err = auth.NewVerifier(cfg.AuthSecret, cfg.Namespace, cfg.Room, nil); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	log := cfg.Logger.With("room", cfg.Room, "namespace", cfg.Namespace)
	state, err := store.Seed(cfg.Store, cfg.InitialEntities)
	if err != nil {
		return nil, fmt.Errorf("server: room %s: %w", cfg.Room, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg, cfg.Room, cfg.Namespace)
	r, err := room.New(room.Config{
		Name: cfg.Room, Store: cfg.Store, State: state, Rules: *cfg.Rules,
		SyncInterval: cfg.SyncInterval, MaxClients: cfg.MaxClients, MaxEntities: max(0, cfg.MaxEntities),
		Metrics: m, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s := &Server{
		cfg: cfg, log: log, room: r, reg: reg, metrics: m, verifier: verifier, upgrader: newUpgrader(cfg),
		closing: make(chan struct{}),
		sockets: map[*socket]struct{}{},
	}
	s.connects = limit.NewConnections(cfg.MaxConnectsPerSecond, maxTrackedAddrs)
	s.handler = s.routes()
	return s, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Room returns the hosted room: Subscribe to its stream, SetSyncInterval, SetMaxClients,
// Stats.
func (s *Server) Room() *room.Room { return s.room }

// Handler returns the server's routes. The room runs only while Serve runs; use Serve, or
// mount Handler elsewhere while Serve runs on another listener.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /socket/websocket", s.handleSocket)
	mux.HandleFunc("GET /rooms/{room}/stream", s.requireToken(false, s.handleStream))
	mux.HandleFunc("POST /rooms/{room}/events", s.requireToken(true, s.handleEvents))
	mux.HandleFunc("GET /rooms/{room}/entities", s.requireToken(false, s.handleEntities))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	return mux
}

// Serve runs the room and serves HTTP on ln until ctx ends, then shuts down gracefully
// (see the package doc) within Config.ShutdownTimeout. It returns nil after a graceful
// shutdown, or the listener's error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.served.Swap(true) {
		return errors.New("server: Serve called twice")
	}
	roomCtx, stopRoom := context.WithCancel(context.Background())
	defer stopRoom()
	go s.room.Run(roomCtx)

	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	s.ready.Store(true)
	s.log.Info("room server listening", "url", socketURL(ln.Addr()), "topic", s.room.Topic(), "sync_interval", s.cfg.SyncInterval,
		"max_clients", s.cfg.MaxClients)

	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("server: %w", err)
	}
	s.shutdown(hs, stopRoom)
	return err
}

// shutdown stops accepting, stops the room (its last flush reaches the members' queues and
// the store), then lets every socket drain its queue and closes it with 1001.
func (s *Server) shutdown(hs *http.Server, stopRoom context.CancelFunc) {
	start := time.Now()
	s.ready.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()

	s.mu.Lock()
	s.shutting = true
	socks := make([]*socket, 0, len(s.sockets))
	for sock := range s.sockets {
		socks = append(socks, sock)
	}
	s.mu.Unlock()
	close(s.closing)
	httpDone := make(chan error, 1)
	go func() { httpDone <- hs.Shutdown(ctx) }() // closes the listener, waits for HTTP handlers

	stopRoom()
	select {
	case <-s.room.Done():
	case <-ctx.Done():
		s.log.Error("room did not stop in time")
	}

	// Closing waits for each socket's writer and the close handshake; do many at once, but
	// not thousands of goroutines in one burst.
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, sock := range socks {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			sock.closeGoingAway(ctx)
		})
	}
	wg.Wait()
	if err := <-httpDone; err != nil {
		hs.Close()
	}
	handlersDone := make(chan struct{})
	go func() { s.handlers.Wait(); close(handlersDone) }()
	select {
	case <-handlersDone:
	case <-ctx.Done():
	}
	s.log.Info("room server stopped", "sockets", len(socks), "took", time.Since(start))
}

// track registers a socket and its handler, unless the server is shutting down (under the
// lock, so no handler is added once shutdown waits for them).
func (s *Server) track(sock *socket) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting {
		return false
	}
	s.sockets[sock] = struct{}{}
	s.handlers.Add(1)
	return true
}

func (s *Server) untrack(sock *socket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sockets, sock)
	s.handlers.Done()
}

// socketURL is the URL clients connect to, for the start-up log line.
func socketURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "ws://" + a.String() + "/socket/websocket"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "ws://" + net.JoinHostPort(host, port) + "/socket/websocket"
}
