package room

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xrooms/xrooms/roomserver/batch"
	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/metrics"
	"github.com/xrooms/xrooms/roomserver/protocol"
	"github.com/xrooms/xrooms/roomserver/rules"
	"github.com/xrooms/xrooms/roomserver/store"
	"github.com/xrooms/xrooms/roomserver/stream"
)

// Names of the events and pushes the room itself deals in.
const (
	EventUserJoined = "user_joined"
	EventUserLeft   = "user_left"
	EventUserMoved  = "user_moved"

	EventState = "entities_state"
	EventDiff  = "entities_diff"

	// ReasonFull is the join error reply when the room has MaxClients members.
	ReasonFull = "room_full"
)

var (
	// ErrFull refuses a join when the room has MaxClients members.
	ErrFull = errors.New(ReasonFull)
	// ErrClosed is returned once the room has stopped.
	ErrClosed = errors.New("room is shut down")
)

// Sender is where the room queues one member's frames; outbox.Queue is a socket's. Send
// must not block, must take all the frames or none, and must deliver frames sent together
// in one write (a join reply and its entities_state reach the client together). It must not
// keep the slice, which the room reuses. False means nothing was taken: the socket is gone
// or being dropped, and the room forgets the member.
type Sender interface {
	Send(frames ...protocol.Encoded) bool
	// Hold queues frames as Send does, without having them written yet: they go out with
	// the next frames sent, or on Wake.
	Hold(frames ...protocol.Encoded) bool
	// Wake has held frames written. The room's wakers call it, concurrently with the
	// room's Send and Hold.
	Wake()
}

// holdRepliesUpTo is the longest sync interval for which the replies to pushes wait for the
// next flush: the reply then travels with the diff that carries the push's effect, in one
// write, instead of costing a write and a writer wake-up per push. With longer intervals a
// reply would keep the client waiting (phoenix's push timeout is 10 s), so it goes at once.
const holdRepliesUpTo = 250 * time.Millisecond

// Config describes a room.
type Config struct {
	// Name is the room id; members join topic "room:<Name>".
	Name string
	// Store keeps the entities across restarts. Required.
	Store store.Store
	// State is the room's entities as loaded from Store (store.Seed returns them); the room
	// takes it over. Nil loads them with Store.Load.
	State entity.State
	// Rules turn room events into mutations. The zero Table has no rules; use rules.Builtin().
	Rules rules.Table
	// SyncInterval is the flush period. Defaults to 200ms.
	SyncInterval time.Duration
	// MaxClients limits memberships; 0 is unlimited.
	MaxClients int
	// MaxEntities limits the room's entities: an event whose mutations would create more is
	// refused with room_entity_limit and changes nothing; 0 is unlimited. Entities already
	// there (a store loaded from before the limit) stay.
	MaxEntities int
	// Metrics, if nil, are created unregistered.
	Metrics *metrics.Metrics
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Where events come from, to count them.
const (
	fromSocket = iota
	fromHTTP
	fromServer
)

// Room is one running room. Create it with New and run it with Run.
type Room struct {
	name, topic string
	calls       chan func()
	done        chan struct{} // closed when Run has returned
	started     atomic.Bool
	hub         *stream.Hub
	log         *slog.Logger
	m           *metrics.Metrics
	eventsIn    [3]prometheus.Counter // by source, resolved once: no label lookup per event

	// Owned by the loop.
	store      store.Store
	rules      rules.Table
	batch      *batch.Batcher
	lookup     rules.Lookup
	interval   time.Duration
	ticker     *time.Ticker
	maxClients int
	maxEntity  int
	members    [numFormats][]*Member // by format, so each flush encodes once per format
	count      int
	users      map[string]int // memberships per user
	// departed holds the last components of users who left since the last flush: the store
	// keeps them so a user who comes back (a page refresh) resumes where they were.
	departed    map[string]entity.Components
	stateBody   []byte    // entities_state payload; nil when the last flush changed the state
	stateBin    []byte    // the same in the compact encoding
	storeBehind bool      // a commit failed: the store misses changes the room has
	lastFlush   time.Time // when the last non-empty diff went out
	dead        []*Member
	held        []*Member        // members with held frames, to wake at the end of the tick
	wakers      []chan []*Member // see wakeHeld; loop-owned
	// one is the argument of a one-frame Send or Hold, reused: a fresh variadic slice
	// escapes through the interface, an allocation per push and per member.
	one [1]protocol.Encoded
}

// Member is one socket's membership of the room topic.
type Member struct {
	user    string
	conn    Sender
	version protocol.Version
	joinRef protocol.Ref
	format  format
	index   int  // in room.members[format]; -1 once gone. Loop-owned.
	held    bool // frames are held for it and no frame has been sent since. Loop-owned.
}

// UserID returns the user the member acts as.
func (m *Member) UserID() string { return m.user }

// JoinRef returns the join_ref of the join that made the member.
func (m *Member) JoinRef() protocol.Ref { return m.joinRef }

// New returns a room ready to Run.
func New(cfg Config) (*Room, error) {
	if cfg.Name == "" {
		return nil, errors.New("room: name must not be empty")
	}
	if cfg.Store == nil {
		return nil, errors.New("room: a store is required")
	}
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = 200 * time.Millisecond
	}
	if cfg.SyncInterval < 0 {
		return nil, fmt.Errorf("room: sync interval %v must be positive", cfg.SyncInterval)
	}
	if cfg.MaxClients < 0 {
		return nil, fmt.Errorf("room: max clients %d must not be negative", cfg.MaxClients)
	}
	if cfg.MaxEntities < 0 {
		return nil, fmt.Errorf("room: max entities %d must not be negative", cfg.MaxEntities)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(nil, cfg.Name, "")
	}
	state := cfg.State
	if state == nil {
		var err error
		if state, err = cfg.Store.Load(); err != nil {
			return nil, fmt.Errorf("room %s: failed to load entities: %w", cfg.Name, err)
		}
	}
	r := &Room{
		name:       cfg.Name,
		topic:      "room:" + cfg.Name,
		calls:      make(chan func(), 256),
		done:       make(chan struct{}),
		hub:        stream.NewHub(),
		log:        cfg.Logger,
		m:          cfg.Metrics,
		store:      cfg.Store,
		rules:      cfg.Rules,
		batch:      batch.New(state),
		interval:   cfg.SyncInterval,
		maxClients: cfg.MaxClients,
		maxEntity:  cfg.MaxEntities,
		users:      map[string]int{},
		departed:   map[string]entity.Components{},
	}
	r.lookup = r.batch.Lookup
	r.eventsIn[fromSocket] = r.m.EventsIn.WithLabelValues(metrics.SourceSocket)
	r.eventsIn[fromHTTP] = r.m.EventsIn.WithLabelValues(metrics.SourceHTTP)
	r.eventsIn[fromServer] = r.m.EventsIn.WithLabelValues(metrics.SourceServer)
	r.m.Entities.Set(float64(r.batch.Len()))
	r.m.SyncInterval.Set(r.interval.Seconds())
	r.m.MaxClients.Set(float64(r.maxClients))
	return r, nil
}

// Name returns the room id.
func (r *Room) Name() string { return r.name }

// Topic returns the members' topic, "room:<name>".
func (r *Room) Topic() string { return r.topic }

// Done is closed once Run has returned.
func (r *Room) Done() <-chan struct{} { return r.done }

// Subscribe returns a subscription to the room's event stream (see package stream).
func (r *Room) Subscribe(buffer int) *stream.Subscription { return r.hub.Subscribe(buffer) }

// Run is the room's loop. It returns when ctx ends, after a graceful stop: the pending batch
// is flushed to the members and the store, then every member leaves (user_left; the store
// records each user's components for their return, to this server or the next) and the
// event stream closes. Sockets are closed by their owner afterwards, so the members still
// receive that last diff. Run may be called once.
func (r *Room) Run(ctx context.Context) error {
	if r.started.Swap(true) {
		return errors.New("room: Run called twice")
	}
	defer close(r.done)
	defer r.startWakers()()
	r.ticker = time.NewTicker(r.interval)
	defer r.ticker.Stop()
	r.log.Info("room running", "sync_interval", r.interval, "max_clients", r.maxClients, "entities", r.batch.Len())
	for {
		select {
		case f := <-r.calls:
			f()
		case <-r.ticker.C:
			r.tick()
		case <-ctx.Done():
			r.stop()
			return nil
		}
	}
}

// stop ends the room: calls already queued run, members leave, the last batch is flushed.
func (r *Room) stop() {
drain:
	for {
		select {
		case f := <-r.calls:
			f()
		default:
			break drain
		}
	}
	r.tick() // the members get the pending batch, and held replies
	for f := range r.members {
		for len(r.members[f]) > 0 {
			r.remove(r.members[f][len(r.members[f])-1])
		}
	}
	r.flush() // with no one left, the departures go to the store only
	r.hub.Close()
	r.log.Info("room stopped", "entities", r.batch.Len())
}

// do queues f to run on the loop.
func (r *Room) do(ctx context.Context, f func()) error {
	select {
	case <-r.done:
		return ErrClosed
	default:
	}
	select {
	case r.calls <- f:
		return nil
	case <-r.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// call runs f on the loop and waits for it.
func (r *Room) call(ctx context.Context, f func()) error {
	ran := make(chan struct{})
	if err := r.do(ctx, func() { f(); close(ran) }); err != nil {
		return err
	}
	select {
	case <-ran:
		return nil
	case <-r.done:
		// The loop closes done after running f, if it ran f at all.
		select {
		case <-ran:
			return nil
		default:
			return ErrClosed
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SetSyncInterval changes the flush period from the next tick on.
func (r *Room) SetSyncInterval(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("sync interval %v must be positive", d)
	}
	return r.call(ctx, func() {
		r.interval = d
		if r.ticker != nil {
			r.ticker.Reset(d)
		}
		r.m.SyncInterval.Set(d.Seconds())
		r.log.Info("sync interval changed", "sync_interval", d)
	})
}

// SetRules replaces the room's rules from the next event on. Members stay; events already
// applied keep their mutations.
func (r *Room) SetRules(ctx context.Context, t rules.Table) error {
	return r.call(ctx, func() {
		r.rules = t
		r.log.Info("rules changed", "events", t.Names())
	})
}

// SetMaxClients changes the member limit (0: unlimited). Lowering it below the current
// member count refuses new joins and keeps everyone already in.
func (r *Room) SetMaxClients(ctx context.Context, n int) error {
	if n < 0 {
		return fmt.Errorf("max clients %d must not be negative", n)
	}
	return r.call(ctx, func() {
		r.maxClients = n
		r.m.MaxClients.Set(float64(n))
		r.log.Info("max clients changed", "max_clients", n)
	})
}

// Snapshot returns a copy of the room's entities as of the last flush.
func (r *Room) Snapshot(ctx context.Context) (entity.State, error) {
	var s entity.State
	err := r.call(ctx, func() { s = r.batch.State().Clone() })
	return s, err
}

// StateJSON returns the entities_state payload: the entities as of the last flush, as JSON.
// The bytes are shared and must not be changed.
func (r *Room) StateJSON(ctx context.Context) ([]byte, error) {
	var b []byte
	err := r.call(ctx, func() { b = r.state() })
	return b, err
}

// Stats is a summary of the room, for status reports.
type Stats struct {
	Members      int           `json:"members"`
	Users        int           `json:"users"`
	Entities     int           `json:"entities"`
	Pending      int           `json:"pending"`
	Subscribers  int           `json:"subscribers"`
	SyncInterval time.Duration `json:"sync_interval"`
	MaxClients   int           `json:"max_clients"`
	// LastFlush is when the last non-empty entities_diff went out (zero: none yet).
	LastFlush time.Time `json:"last_flush,omitzero"`
}

// Stats returns the room's current numbers.
func (r *Room) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := r.call(ctx, func() {
		s = Stats{
			Members: r.count, Users: len(r.users), Entities: r.batch.Len(), Pending: r.batch.Pending(),
			Subscribers: r.hub.Len(), SyncInterval: r.interval, MaxClients: r.maxClients,
			LastFlush: r.lastFlush,
		}
	})
	return s, err
}
