package room

import (
	"context"
	"errors"
	"testing"

	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/event"
	"github.com/xrooms/xrooms/roomserver/limit"
	"github.com/xrooms/xrooms/roomserver/protocol"
	"github.com/xrooms/xrooms/roomserver/rules"
)

// Creates beyond MaxEntities are refused with room_entity_limit and change nothing, from a
// push, a join and a backend event alike; a delete makes room again.
func TestMaxEntities(t *testing.T) {
	tbl := rules.Builtin()
	if err := tbl.Set("spawned", rules.Rule{Mutations: []rules.Spec{
		{Op: entity.Create, Target: "id", CopyPayload: true, Omit: []string{event.UserIDKey, "id"}},
	}}); err != nil {
		t.Fatal(err)
	}
	r, _ := startRoom(t, Config{MaxEntities: 3, Rules: tbl, State: entity.State{"door": {}}})
	alice := &sink{v: protocol.V2}
	ma := join(t, r, alice, "alice", nil, nil)
	push(t, r, ma, "2", "spawned", `{"id":"box1","color":"red"}`)
	flushNow(t, r)
	alice.take(t)
	before, _ := r.Snapshot(context.Background())

	const refusal = `{"status":"error","response":{"reason":"room_entity_limit","limit":"max-entities","max":3}}`
	push(t, r, ma, "3", "spawned", `{"id":"box2"}`)
	push(t, r, ma, "4", "spawned", `{"id":"box1","color":"blue"}`) // replaces box1: no growth
	frames := alice.take(t)
	wantEvents(t, frames, protocol.EventReply, protocol.EventReply)
	if got := string(frames[0].Payload); got != refusal {
		t.Fatalf("reply %s, want %s", got, refusal)
	}
	if got := string(frames[1].Payload); got != `{"status":"ok","response":{}}` {
		t.Fatalf("a create over an existing entity refused: %s", got)
	}

	bob := &sink{v: protocol.V2}
	ref := protocol.StringRef("9")
	_, err := r.Join(context.Background(), JoinRequest{Conn: bob, Version: protocol.V2, UserID: "bob",
		Frame: protocol.Frame{JoinRef: ref, Ref: ref, Topic: "room:lobby", Event: protocol.EventJoin}})
	var le *limit.Error
	if !errors.As(err, &le) || le.Reason != limit.ReasonEntityLimit {
		t.Fatalf("join: %v, want room_entity_limit", err)
	}
	frames = bob.take(t)
	wantEvents(t, frames, protocol.EventReply)
	if got := string(frames[0].Payload); got != refusal {
		t.Fatalf("join reply %s", got)
	}
	if err := r.Event(context.Background(), event.New("user_joined", "npc", nil)); !errors.As(err, &le) {
		t.Fatalf("backend event: %v, want room_entity_limit", err)
	}
	flushNow(t, r)
	after, _ := r.Snapshot(context.Background())
	if len(after) != 3 || !after["box1"].Equal(entity.Components{"color": raw(`"blue"`)}) {
		t.Fatalf("state %v", after)
	}
	delete(before, "box1")
	delete(after, "box1")
	if !after.Equal(before) {
		t.Fatalf("a refused create changed the room: %v, was %v", after, before)
	}
	if st, _ := r.Stats(context.Background()); st.Members != 1 || st.Users != 1 {
		t.Fatalf("the refused joiner is a member: %+v", st)
	}

	// Alice leaving deletes her entity: bob's join now fits.
	if err := r.Leave(context.Background(), ma, nil); err != nil {
		t.Fatal(err)
	}
	join(t, r, bob, "bob", nil, nil)
}
