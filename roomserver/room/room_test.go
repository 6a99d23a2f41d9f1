package room

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/event"
	"github.com/xrooms/xrooms/roomserver/outbox"
	"github.com/xrooms/xrooms/roomserver/protocol"
	"github.com/xrooms/xrooms/roomserver/rules"
	"github.com/xrooms/xrooms/roomserver/store"
	"github.com/xrooms/xrooms/roomserver/stream"
)

// sink is a member's socket that keeps every frame it is sent. Held frames count as sent
// once the room wakes the sink or sends it more, as the socket's writer works.
type sink struct {
	v      protocol.Version
	mu     sync.Mutex
	frames []protocol.Encoded
	held   []protocol.Encoded
}

func (s *sink) Send(frames ...protocol.Encoded) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(append(s.frames, s.held...), frames...)
	s.held = nil
	return true
}

func (s *sink) Hold(frames ...protocol.Encoded) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = append(s.held, frames...)
	return true
}

func (s *sink) Wake() { s.Send() }

// take returns the frames sent since the last take, decoded.
func (s *sink) take(t *testing.T) []protocol.Frame {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []protocol.Frame
	for _, e := range s.frames {
		f, err := protocol.Decode(s.v, e.Bytes())
		if err != nil {
			t.Fatalf("room sent an undecodable frame %s: %v", e.Bytes(), err)
		}
		out = append(out, f)
	}
	s.frames = nil
	return out
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// startRoom runs a room with a memory store and a sync interval long enough that only
// flushNow flushes, unless the config says otherwise.
func startRoom(t *testing.T, cfg Config) (*Room, *store.Memory) {
	t.Helper()
	mem := store.NewMemory()
	if cfg.Store == nil {
		cfg.Store = mem
	}
	if cfg.Name == "" {
		cfg.Name = "lobby"
	}
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = time.Hour
	}
	if _, ok := cfg.Rules.Rule(EventUserJoined); !ok {
		cfg.Rules = rules.Builtin()
	}
	cfg.Logger = testLogger(t)
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go r.Run(ctx)
	t.Cleanup(func() {
		cancel()
		<-r.Done()
	})
	return r, mem
}

// flushNow ticks the room (a flush, and what is held woken), and waits for the wakers to
// have woken every member, so that the sinks have it all when it returns.
func flushNow(t *testing.T, r *Room) {
	t.Helper()
	var woken sync.WaitGroup
	if err := r.call(context.Background(), func() {
		r.tick()
		// The wakers take their shares in order: once each has woken this member, it has
		// woken every member before it.
		for _, ch := range r.wakers {
			woken.Add(1)
			ch <- []*Member{{conn: wakeFunc(woken.Done)}}
		}
	}); err != nil {
		t.Fatal(err)
	}
	woken.Wait()
}

// wakeFunc is a member's socket that only tells when it is woken.
type wakeFunc func()

func (wakeFunc) Send(...protocol.Encoded) bool { return true }
func (wakeFunc) Hold(...protocol.Encoded) bool { return true }
func (f wakeFunc) Wake()                       { f() }

var joinN atomic.Int64

// join joins user on conn with a fresh join_ref and returns the member.
func join(t *testing.T, r *Room, conn *sink, user string, comps entity.Components, replaces *Member) *Member {
	t.Helper()
	ref := protocol.StringRef(fmt.Sprint(joinN.Add(1)))
	m, err := r.Join(context.Background(), JoinRequest{
		Conn: conn, Version: conn.v, UserID: user, Components: comps, Replaces: replaces,
		Frame: protocol.Frame{JoinRef: ref, Ref: ref, Topic: r.Topic(), Event: protocol.EventJoin, Payload: raw(`{}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func pushFrame(m *Member, ref, name, payload string) protocol.Frame {
	return protocol.Frame{JoinRef: m.JoinRef(), Ref: protocol.StringRef(ref), Topic: "room:lobby", Event: name, Payload: raw(payload)}
}

func push(t *testing.T, r *Room, m *Member, ref, name, payload string) {
	t.Helper()
	f := pushFrame(m, ref, name, payload)
	ev, err := FromPush(m.UserID(), f.Event, f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Push(context.Background(), m, f, ev); err != nil {
		t.Fatal(err)
	}
	flushed(t, r)
}

// flushed waits until the loop has run every call queued before it.
func flushed(t *testing.T, r *Room) {
	t.Helper()
	if err := r.call(context.Background(), func() {}); err != nil {
		t.Fatal(err)
	}
}

func diffOf(t *testing.T, f protocol.Frame) entity.Diff {
	t.Helper()
	if f.Event != EventDiff {
		t.Fatalf("got %s, want %s", f.Event, EventDiff)
	}
	var d entity.Diff
	if err := json.Unmarshal(f.Payload, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func stateOf(t *testing.T, f protocol.Frame) entity.State {
	t.Helper()
	if f.Event != EventState {
		t.Fatalf("got %s, want %s", f.Event, EventState)
	}
	var s entity.State
	if err := json.Unmarshal(f.Payload, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func wantEvents(t *testing.T, frames []protocol.Frame, events ...string) {
	t.Helper()
	var got []string
	for _, f := range frames {
		got = append(got, f.Event)
	}
	if strings.Join(got, " ") != strings.Join(events, " ") {
		t.Fatalf("frames %v, want %v", got, events)
	}
}

func TestJoinGetsReplyThenFlushedStateThenDiffs(t *testing.T) {
	r, _ := startRoom(t, Config{State: entity.State{"door": {"open": raw("false")}}})
	bob := &sink{v: protocol.V2}
	m := join(t, r, bob, "bob", entity.Components{"position": raw("[1,2,3]")}, nil)

	frames := bob.take(t)
	wantEvents(t, frames, protocol.EventReply, EventState)
	reply := frames[0]
	if reply.Ref != m.JoinRef() || reply.JoinRef != m.JoinRef() || reply.Topic != "room:lobby" {
		t.Fatalf("reply refs %v %v topic %s", reply.JoinRef, reply.Ref, reply.Topic)
	}
	if got := string(reply.Payload); got != `{"status":"ok","response":{"user_id":"bob"}}` {
		t.Fatalf("reply %s", got)
	}
	st := frames[1]
	if st.JoinRef != m.JoinRef() || !st.Ref.Null() {
		t.Fatalf("entities_state refs %v %v: want the join_ref and a null ref", st.JoinRef, st.Ref)
	}
	// The state as of the last flush: bob's own arrival comes in the next diff.
	if got := stateOf(t, st); !got.Equal(entity.State{"door": {"open": raw("false")}}) {
		t.Fatalf("state %v", got)
	}
	flushNow(t, r)
	frames = bob.take(t)
	wantEvents(t, frames, EventDiff)
	if !frames[0].JoinRef.Null() || !frames[0].Ref.Null() {
		t.Fatal("a diff is a broadcast: both refs null")
	}
	d := diffOf(t, frames[0])
	if !d.Creates["bob"].Equal(entity.Components{"position": raw("[1,2,3]")}) || len(d.Updates)+len(d.Deletes) != 0 {
		t.Fatalf("diff %+v", d)
	}
	flushNow(t, r)
	if frames := bob.take(t); len(frames) != 0 {
		t.Fatalf("a flush with nothing pending sent %v", frames)
	}
}

// Pushes from two members become one diff per tick, which every member gets, whatever its
// protocol version, with one encoding shared by the members of a version; a joiner's state
// plus the diffs it receives equals the room's state.
func TestPushesBecomeOneDiffAtTheTick(t *testing.T) {
	r, mem := startRoom(t, Config{})
	alice, carol, bob := &sink{v: protocol.V2}, &sink{v: protocol.V2}, &sink{v: protocol.V1}
	ma := join(t, r, alice, "alice", entity.Components{"position": raw("[0,0,0]")}, nil)
	join(t, r, carol, "carol", nil, nil)
	flushNow(t, r)
	mb := join(t, r, bob, "bob", nil, nil)
	views := map[*sink]entity.State{}
	for _, s := range []*sink{alice, carol, bob} {
		views[s] = entity.State{}
		for _, f := range s.take(t) {
			if f.Event == EventState {
				views[s] = stateOf(t, f)
			} else if f.Event == EventDiff {
				views[s].ApplyDiff(diffOf(t, f))
			}
		}
	}

	push(t, r, ma, "10", PushMoved, `{"position":[1,0,0]}`)
	push(t, r, ma, "11", PushMoved, `{"position":[2,0,0]}`)
	push(t, r, mb, "12", PushMoved, `{"position":[9,9,9],"user_id":"alice"}`) // cannot act as alice
	wantEvents(t, alice.take(t), protocol.EventReply, protocol.EventReply)
	replies := bob.take(t)
	wantEvents(t, replies, protocol.EventReply)
	if replies[0].Ref != protocol.StringRef("12") || string(replies[0].Payload) != `{"status":"ok","response":{}}` {
		t.Fatalf("reply %v %s", replies[0].Ref, replies[0].Payload)
	}

	flushNow(t, r)
	alice.mu.Lock()
	carol.mu.Lock()
	if &alice.frames[0].Body[0] != &carol.frames[0].Body[0] || &alice.frames[0].Head[0] != &carol.frames[0].Head[0] {
		t.Error("members of one version must share one encoded diff")
	}
	alice.mu.Unlock()
	carol.mu.Unlock()
	for _, s := range []*sink{alice, carol, bob} {
		frames := s.take(t)
		wantEvents(t, frames, EventDiff)
		d := diffOf(t, frames[0])
		if got := string(d.Updates["alice"]["position"]); got != "[2,0,0]" {
			t.Fatalf("alice's position %s: the last move wins", got)
		}
		if got := string(d.Creates["bob"]["position"]); got != "[9,9,9]" {
			t.Fatalf("bob's diff entry %v", d.Creates["bob"])
		}
		views[s].ApplyDiff(d)
	}

	snap, err := r.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := mem.Load()
	for _, v := range views {
		if !v.Equal(snap) {
			t.Fatalf("a member's view %v differs from the room %v", v, snap)
		}
	}
	if !stored.Equal(snap) {
		t.Fatalf("store %v differs from the room %v", stored, snap)
	}
}

func TestPushRepliesTravelWithTheNextTick(t *testing.T) {
	r, _ := startRoom(t, Config{SyncInterval: holdRepliesUpTo})
	// The test ticks the room itself: the ticker must not run between its steps.
	if err := r.call(context.Background(), func() { r.ticker.Stop() }); err != nil {
		t.Fatal(err)
	}
	alice := &sink{v: protocol.V2}
	a := join(t, r, alice, "alice", nil, nil)
	flushNow(t, r)
	alice.take(t)

	push(t, r, a, "5", "i_moved", `{"position":[1,2,3]}`) // returns once the loop ran it
	wantEvents(t, alice.take(t))
	flushNow(t, r)
	frames := alice.take(t)
	wantEvents(t, frames, protocol.EventReply, EventDiff)
	if frames[0].Ref != protocol.StringRef("5") {
		t.Fatalf("reply to ref %v, want 5", frames[0].Ref)
	}

	// A push with no effect still gets its reply at the tick, with no diff.
	push(t, r, a, "6", "looked_around", `{}`)
	wantEvents(t, alice.take(t))
	flushNow(t, r)
	wantEvents(t, alice.take(t), protocol.EventReply)

	// An error reply is not held.
	push(t, r, a, "7", PushEvent, `{"event_name":"user_picked_up","payload":{"target_id":"ghost","hand":"left"}}`)
	wantEvents(t, alice.take(t), protocol.EventReply)
}

func TestLeaveRepliesClosesAndDeletes(t *testing.T) {
	r, mem := startRoom(t, Config{})
	alice, bob := &sink{v: protocol.V2}, &sink{v: protocol.V2}
	ma := join(t, r, alice, "alice", entity.Components{"position": raw("[1,1,1]")}, nil)
	join(t, r, bob, "bob", nil, nil)
	flushNow(t, r)
	alice.take(t)
	bob.take(t)

	leave := pushFrame(ma, "20", protocol.EventLeave, `{}`)
	if err := r.Leave(context.Background(), ma, &leave); err != nil {
		t.Fatal(err)
	}
	flushNow(t, r)
	frames := alice.take(t)
	wantEvents(t, frames, protocol.EventReply, protocol.EventClose)
	if frames[0].Ref != protocol.StringRef("20") || frames[1].JoinRef != ma.JoinRef() || frames[1].Ref != ma.JoinRef() {
		t.Fatalf("leave reply ref %v, close refs %v %v", frames[0].Ref, frames[1].JoinRef, frames[1].Ref)
	}
	frames = bob.take(t)
	wantEvents(t, frames, EventDiff)
	if d := diffOf(t, frames[0]); len(d.Deletes) != 1 || d.Deletes["alice"] == nil {
		t.Fatalf("diff %+v, want alice deleted", d)
	}
	// The store remembers where she was, for her return.
	if c, ok, _ := mem.User("alice"); !ok || string(c["position"]) != "[1,1,1]" {
		t.Fatalf("departed alice: %v %v", c, ok)
	}
	// Leaving again, or pushing after leaving, does nothing.
	if err := r.Leave(context.Background(), ma, nil); err != nil {
		t.Fatal(err)
	}
	push(t, r, ma, "21", PushMoved, `{"position":[5,5,5]}`)
	flushNow(t, r)
	if f := append(alice.take(t), bob.take(t)...); len(f) != 0 {
		t.Fatalf("stale member produced %v", f)
	}
}

func TestRejoinWithinAnIntervalKeepsTheEntity(t *testing.T) {
	r, _ := startRoom(t, Config{})
	alice, bob := &sink{v: protocol.V2}, &sink{v: protocol.V2}
	join(t, r, bob, "bob", nil, nil)
	ma := join(t, r, alice, "alice", entity.Components{"position": raw("[0,0,0]"), "color": raw(`"red"`)}, nil)
	flushNow(t, r)
	push(t, r, ma, "1", PushMoved, `{"position":[3,3,3]}`)
	if err := r.Leave(context.Background(), ma, nil); err != nil {
		t.Fatal(err)
	}
	// A page refresh: back before the tick, with a new position and nothing else.
	join(t, r, &sink{v: protocol.V2}, "alice", entity.Components{"position": raw("[4,4,4]")}, nil)
	bob.take(t)
	flushNow(t, r)
	frames := bob.take(t)
	wantEvents(t, frames, EventDiff)
	d := diffOf(t, frames[0])
	if _, gone := d.Deletes["alice"]; gone {
		t.Fatalf("alice deleted: %+v", d)
	}
	snap, _ := r.Snapshot(context.Background())
	want := entity.Components{"position": raw("[4,4,4]"), "color": raw(`"red"`)}
	if !snap["alice"].Equal(want) {
		t.Fatalf("alice is %v, want %v (her last components under the join's)", snap["alice"], want)
	}
}

func TestReturningUserResumesFromTheStore(t *testing.T) {
	r, _ := startRoom(t, Config{})
	sub := r.Subscribe(16)
	ma := join(t, r, &sink{v: protocol.V2}, "alice", entity.Components{"position": raw("[1,1,1]"), "avatar": raw(`"cat"`)}, nil)
	flushNow(t, r)
	r.Leave(context.Background(), ma, nil)
	flushNow(t, r)
	if snap, _ := r.Snapshot(context.Background()); len(snap) != 0 {
		t.Fatalf("room not empty: %v", snap)
	}
	join(t, r, &sink{v: protocol.V2}, "alice", entity.Components{"position": raw("[2,2,2]")}, nil)
	flushNow(t, r)
	snap, _ := r.Snapshot(context.Background())
	if want := (entity.Components{"position": raw("[2,2,2]"), "avatar": raw(`"cat"`)}); !snap["alice"].Equal(want) {
		t.Fatalf("alice is %v, want %v", snap["alice"], want)
	}
	var names []string
	for len(sub.C()) > 0 {
		m := <-sub.C()
		names = append(names, m.Event.Name+":"+m.Event.UserID())
		if m.Event.Name == EventUserJoined && len(names) == 3 && string(m.Event.Payload["avatar"]) != `"cat"` {
			t.Fatalf("second user_joined %s lacks the stored avatar", m.Payload)
		}
	}
	if got := strings.Join(names, " "); got != "user_joined:alice user_left:alice user_joined:alice" {
		t.Fatalf("stream %s", got)
	}
}

func TestOneUserInTwoTabsIsOneEntity(t *testing.T) {
	r, _ := startRoom(t, Config{})
	sub := r.Subscribe(16)
	watcher := &sink{v: protocol.V2}
	join(t, r, watcher, "watcher", nil, nil)
	tab1 := join(t, r, &sink{v: protocol.V2}, "alice", entity.Components{"position": raw("[1,0,0]")}, nil)
	tab2 := join(t, r, &sink{v: protocol.V1}, "alice", entity.Components{"position": raw("[2,0,0]")}, nil)
	flushNow(t, r)
	if st, _ := r.Stats(context.Background()); st.Members != 3 || st.Users != 2 {
		t.Fatalf("stats %+v", st)
	}
	r.Leave(context.Background(), tab1, nil)
	watcher.take(t)
	flushNow(t, r)
	if f := watcher.take(t); len(f) != 0 {
		t.Fatalf("closing one of two tabs changed the room: %v", f)
	}
	r.Leave(context.Background(), tab2, nil)
	flushNow(t, r)
	frames := watcher.take(t)
	wantEvents(t, frames, EventDiff)
	if d := diffOf(t, frames[0]); d.Deletes["alice"] == nil {
		t.Fatalf("alice not deleted after her last tab: %+v", d)
	}
	var names []string
	for len(sub.C()) > 0 {
		m := <-sub.C()
		names = append(names, m.Event.Name+":"+m.Event.UserID())
	}
	if got := strings.Join(names, " "); got != "user_joined:watcher user_joined:alice user_left:alice" {
		t.Fatalf("stream %s", got)
	}
}

func TestSecondJoinOnTheSameTopicReplacesTheFirst(t *testing.T) {
	r, _ := startRoom(t, Config{})
	sub := r.Subscribe(16)
	conn := &sink{v: protocol.V2}
	first := join(t, r, conn, "alice", nil, nil)
	second := join(t, r, conn, "alice", nil, first)
	frames := conn.take(t)
	wantEvents(t, frames, protocol.EventReply, EventState, protocol.EventReply, protocol.EventClose, EventState)
	if frames[2].Ref != second.JoinRef() || frames[3].JoinRef != first.JoinRef() || frames[4].JoinRef != second.JoinRef() {
		t.Fatalf("refs: reply %v, close %v, state %v", frames[2].Ref, frames[3].JoinRef, frames[4].JoinRef)
	}
	if st, _ := r.Stats(context.Background()); st.Members != 1 {
		t.Fatalf("members %d", st.Members)
	}
	push(t, r, first, "5", "door_knocked", `{}`)
	if len(conn.take(t)) != 0 {
		t.Fatal("the replaced membership still acts")
	}
	if len(sub.C()) != 1 {
		t.Fatalf("replacing a tab of the same user emitted %d events, want only the first user_joined", len(sub.C()))
	}
}

func TestRuleErrorRepliesAndChangesNothing(t *testing.T) {
	r, _ := startRoom(t, Config{})
	conn := &sink{v: protocol.V2}
	m := join(t, r, conn, "alice", nil, nil)
	flushNow(t, r)
	conn.take(t)
	sub := r.Subscribe(16)

	push(t, r, m, "7", PushEvent, `{"event_name":"user_picked_up","payload":{"target_id":"ghost","hand":"left"}}`)
	push(t, r, m, "8", "door_knocked", `{"door":"front"}`) // no rule: fine, and on the stream
	flushNow(t, r)
	frames := conn.take(t)
	wantEvents(t, frames, protocol.EventReply, protocol.EventReply)
	var reply struct {
		Status   string `json:"status"`
		Response struct {
			Reason string `json:"reason"`
		} `json:"response"`
	}
	json.Unmarshal(frames[0].Payload, &reply)
	if reply.Status != "error" || !strings.Contains(reply.Response.Reason, `"ghost" does not exist`) || frames[0].Ref != protocol.StringRef("7") {
		t.Fatalf("reply %s", frames[0].Payload)
	}
	if !strings.Contains(string(frames[1].Payload), `"ok"`) {
		t.Fatalf("event without a rule refused: %s", frames[1].Payload)
	}
	m1 := <-sub.C()
	if m1.Event.Name != "door_knocked" || m1.Event.UserID() != "alice" || len(sub.C()) != 0 {
		t.Fatalf("stream got %s %s; the refused event must not be published", m1.Event.Name, m1.Payload)
	}
}

func TestSlowMemberIsDisconnectedOthersKeepReceiving(t *testing.T) {
	r, _ := startRoom(t, Config{})
	sub := r.Subscribe(64)
	overflowed := make(chan struct{})
	slow := outbox.New(600, func() { close(overflowed) }) // nobody drains it
	fast := &sink{v: protocol.V2}
	ref := protocol.StringRef("1")
	if _, err := r.Join(context.Background(), JoinRequest{Conn: slow, Version: protocol.V2, UserID: "slowpoke",
		Frame: protocol.Frame{JoinRef: ref, Ref: ref, Topic: "room:lobby", Event: protocol.EventJoin}}); err != nil {
		t.Fatal(err)
	}
	mf := join(t, r, fast, "fast", nil, nil)
	for i := range 20 {
		push(t, r, mf, fmt.Sprint(i), PushMoved, fmt.Sprintf(`{"position":[%d,0,0],"pad":"%s"}`, i, strings.Repeat("x", 40)))
		flushNow(t, r)
	}
	select {
	case <-overflowed:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow member was not disconnected")
	}
	diffs := 0
	for _, f := range fast.take(t) {
		if f.Event == EventDiff {
			diffs++
		}
	}
	if diffs != 20 {
		t.Fatalf("the fast member got %d of 20 diffs", diffs)
	}
	if st, _ := r.Stats(context.Background()); st.Members != 1 || st.Users != 1 {
		t.Fatalf("the slow member is still in the room: %+v", st)
	}
	left := false
	for len(sub.C()) > 0 {
		if m := <-sub.C(); m.Event.Name == EventUserLeft && m.Event.UserID() == "slowpoke" {
			left = true
		}
	}
	if !left {
		t.Fatal("no user_left for the dropped member")
	}
}

func TestMaxClients(t *testing.T) {
	r, _ := startRoom(t, Config{MaxClients: 1})
	conn := &sink{v: protocol.V2}
	first := join(t, r, conn, "alice", nil, nil)
	other := &sink{v: protocol.V2}
	ref := protocol.StringRef("9")
	_, err := r.Join(context.Background(), JoinRequest{Conn: other, Version: protocol.V2, UserID: "bob",
		Frame: protocol.Frame{JoinRef: ref, Ref: ref, Topic: "room:lobby", Event: protocol.EventJoin}})
	if !errors.Is(err, ErrFull) {
		t.Fatalf("got %v, want ErrFull", err)
	}
	frames := other.take(t)
	wantEvents(t, frames, protocol.EventReply)
	if got := string(frames[0].Payload); got != `{"status":"error","response":{"reason":"room_full"}}` {
		t.Fatalf("reply %s", got)
	}
	// A full room still lets a member replace its own membership.
	join(t, r, conn, "alice", nil, first)
	// Raised live, the limit lets bob in.
	if err := r.SetMaxClients(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	join(t, r, other, "bob", nil, nil)
}

func TestSetSyncIntervalAppliesLive(t *testing.T) {
	r, _ := startRoom(t, Config{SyncInterval: time.Hour})
	conn := &sink{v: protocol.V2}
	join(t, r, conn, "alice", nil, nil)
	conn.take(t)
	if err := r.SetSyncInterval(context.Background(), 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, f := range conn.take(t) {
			if f.Event == EventDiff {
				if st, _ := r.Stats(context.Background()); st.SyncInterval != 20*time.Millisecond {
					t.Fatalf("stats %+v", st)
				}
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no diff after shortening the interval from an hour")
}

func TestStopFlushesAndEveryoneLeaves(t *testing.T) {
	mem := store.NewMemory()
	r, err := New(Config{Name: "lobby", Store: mem, Rules: rules.Builtin(), SyncInterval: time.Hour, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	alice, bob := &sink{v: protocol.V2}, &sink{v: protocol.V2}
	ma := join(t, r, alice, "alice", nil, nil)
	join(t, r, bob, "bob", nil, nil)
	flushNow(t, r)
	push(t, r, ma, "3", PushMoved, `{"position":[7,7,7]}`)
	if err := r.Event(context.Background(), event.New("door_opened", "", nil)); err != nil {
		t.Fatal(err)
	}
	bob.take(t)
	sub := r.Subscribe(8)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	frames := bob.take(t)
	wantEvents(t, frames, EventDiff)
	if d := diffOf(t, frames[0]); string(d.Updates["alice"]["position"]) != "[7,7,7]" || len(d.Deletes) != 0 {
		t.Fatalf("last diff %+v: want the pending move, and no departures sent to members", d)
	}
	if c, ok, _ := mem.User("alice"); !ok || string(c["position"]) != "[7,7,7]" {
		t.Fatalf("alice's last move was not stored: %v", c)
	}
	if st, _ := mem.Load(); len(st) != 0 {
		t.Fatalf("users are still in the store after everyone left: %v", st)
	}
	for range sub.C() {
	}
	if !errors.Is(sub.Err(), stream.ErrClosed) {
		t.Fatalf("stream ended with %v", sub.Err())
	}
	if _, err := r.Join(context.Background(), JoinRequest{Conn: bob, UserID: "x"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("join after stop: %v", err)
	}
}

func TestEventFromBackend(t *testing.T) {
	r, _ := startRoom(t, Config{})
	sub := r.Subscribe(8)
	ctx := context.Background()
	if err := r.Event(ctx, event.New("user_moved", "", map[string]json.RawMessage{"position": raw("[1]")})); err == nil {
		t.Fatal("a rule needing user_id accepted an event without one")
	}
	if err := r.Event(ctx, event.New("phx_join", "", nil)); err == nil {
		t.Fatal("a protocol event name was accepted")
	}
	if err := r.Event(ctx, event.New("lights_dimmed", "", map[string]json.RawMessage{"level": raw("3")})); err != nil {
		t.Fatal(err)
	}
	if m := <-sub.C(); m.Event.Name != "lights_dimmed" || string(m.Payload) != `{"level":3}` {
		t.Fatalf("stream got %s %s", m.Event.Name, m.Payload)
	}
}

// failingStore fails its first commits, as a full disk would.
type failingStore struct {
	*store.Memory
	fail atomic.Int32
}

func (f *failingStore) Commit(c store.Change) error {
	if f.fail.Add(-1) >= 0 {
		return errors.New("disk full")
	}
	return f.Memory.Commit(c)
}

func TestStoreFailureIsCaughtUp(t *testing.T) {
	fs := &failingStore{Memory: store.NewMemory()}
	fs.Memory.Commit(store.Change{Diff: entity.Diff{Creates: map[string]entity.Components{"old": {}}}})
	r, _ := startRoom(t, Config{Store: fs})
	conn := &sink{v: protocol.V2}
	m := join(t, r, conn, "alice", nil, nil)
	r.Event(context.Background(), event.New("user_left", "", map[string]json.RawMessage{"user_id": raw(`"old"`)}))
	fs.fail.Store(2)
	flushNow(t, r)
	push(t, r, m, "1", PushMoved, `{"position":[1,1,1]}`)
	flushNow(t, r)
	if diffs := conn.take(t); len(diffs) != 5 { // reply, state, push reply, two diffs despite the store
		t.Fatalf("member got %d frames", len(diffs))
	}
	flushNow(t, r) // nothing pending, but the store is behind
	stored, _ := fs.Memory.Load()
	snap, _ := r.Snapshot(context.Background())
	if !stored.Equal(snap) {
		t.Fatalf("store %v, room %v", stored, snap)
	}
}

func TestFromPush(t *testing.T) {
	tests := []struct {
		name, payload string
		want          string // event name and payload, or the error
	}{
		{"i_moved", `{"position":[1,2,3]}`, `user_moved {"position":[1,2,3],"user_id":"bob"}`},
		{"i_moved", `{"user_id":"eve"}`, `user_moved {"user_id":"bob"}`},
		{"event", `{"event_name":"user_picked_up","payload":{"target_id":"cup"}}`, `user_picked_up {"target_id":"cup","user_id":"bob"}`},
		{"event", `{"event_name":"ping"}`, `ping {"user_id":"bob"}`},
		{"event", `{"payload":{}}`, `error: event: payload must be`},
		{"event", `{"event_name":"x","payload":[1]}`, `error: event "x": payload must be a JSON object`},
		{"event", `{"event_name":"phx_leave"}`, `error: event "phx_leave": names starting with "phx_"`},
		{"door_opened", `{"id":"door1"}`, `door_opened {"id":"door1","user_id":"bob"}`},
		{"user_left", `{}`, `error: event "user_left" is emitted by the server`},
		{"user_joined", `{}`, `error: event "user_joined" is emitted by the server`},
		{"phx_custom", `{}`, `error: event "phx_custom": names starting`},
	}
	for _, tt := range tests {
		ev, err := FromPush("bob", tt.name, raw(tt.payload))
		var got string
		if err != nil {
			got = "error: " + err.Error()
		} else {
			p, _ := json.Marshal(ev.Payload)
			got = ev.Name + " " + string(p)
		}
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("FromPush(%s, %s) = %s, want %s", tt.name, tt.payload, got, tt.want)
		}
	}
}
