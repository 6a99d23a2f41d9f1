package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/xrooms/xrooms/roomserver/event"
	"github.com/xrooms/xrooms/roomserver/room"
	"github.com/xrooms/xrooms/roomserver/rules"
	"github.com/xrooms/xrooms/roomserver/store"
)

// Rules from the Room that do not compile are logged and the room keeps its last good ones.
func TestApplyRulesKeepsTheLastGoodRules(t *testing.T) {
	mem := store.NewMemory()
	r, err := room.New(room.Config{Name: "vault", Store: mem, Rules: rules.Builtin(), SyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-r.Done() }()
	go r.Run(ctx)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	open := func(door string) error {
		return r.Event(ctx, event.New("door_opened", "alice", map[string]json.RawMessage{"door_id": json.RawMessage(door)}))
	}
	good := []rules.Decl{{Event: "door_opened", Mutations: []rules.MutationDecl{
		{Op: "update", Target: "payload.door_id", MustExist: true, Components: map[string]string{"open": "true"}}}}}
	if err := applyRules(ctx, r, good, log); err != nil {
		t.Fatal(err)
	}
	if err := open(`"nope"`); err == nil || err.Error() != `door_opened: entity "nope" does not exist` {
		t.Fatalf("with the door rule: %v", err)
	}
	bad := []rules.Decl{{Event: "door_opened", When: "payload.door_id =="}}
	if err := applyRules(ctx, r, bad, log); err != nil {
		t.Fatalf("a bad rule is the Room's problem, not a reason to retry: %v", err)
	}
	if !strings.Contains(logs.String(), "keeping the last good rules") || !strings.Contains(logs.String(), "rules[0] (door_opened): when:") {
		t.Errorf("log %q does not report the bad rule", logs.String())
	}
	if err := open(`"nope"`); err == nil || err.Error() != `door_opened: entity "nope" does not exist` {
		t.Fatalf("after a bad rule, the door rule should still apply: %v", err)
	}
}
