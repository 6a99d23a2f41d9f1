package server

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/kube"
)

// The sample door-and-keys Room, driven through a running server by two members over real
// WebSockets: its rules are switched on live (as the room server does when the Room
// changes), both members stay connected, and every diff is exactly what the rules say.
func TestSampleVaultRulesAppliedLive(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "xrooms_v1alpha1_room_vault.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var sample xroomsv1alpha1.Room
	if err := yaml.UnmarshalStrict(b, &sample); err != nil {
		t.Fatal(err)
	}
	initial := entity.State{}
	for id, ext := range sample.Spec.InitialEntities {
		var c entity.Components
		if err := json.Unmarshal(ext.Raw, &c); err != nil {
			t.Fatal(err)
		}
		initial[id] = c
	}
	table, err := kube.CompileRules(&sample)
	if err != nil {
		t.Fatalf("the sample's rules do not compile: %v", err)
	}

	ts := startServer(t, Config{Room: "vault", Namespace: "games", SyncInterval: 20 * time.Millisecond, InitialEntities: initial})
	const topic = "room:vault"
	alice := ts.dial(t, "vsn=2.0.0&user_id=alice", nil)
	bob := ts.dial(t, "vsn=2.0.0&user_id=bob", nil)
	alice.push("1", "1", topic, "phx_join", `{}`)
	alice.until(topic, "entities_state")
	bob.push("1", "1", topic, "phx_join", `{}`)
	bob.until(topic, "entities_state")
	for _, c := range []*client{alice, bob} {
		c.until(topic, "entities_diff") // bob's arrival
	}

	ref := 1
	// push sends event from c and returns the reply's status and reason.
	push := func(c *client, event, payload string) (string, string) {
		t.Helper()
		ref++
		refS := strconv.Itoa(ref)
		c.push("1", refS, topic, event, payload)
		for {
			f := c.until(topic, "phx_reply")
			if f.Ref.String() != refS {
				continue
			}
			var reply struct {
				Status   string `json:"status"`
				Response struct {
					Reason string `json:"reason"`
				} `json:"response"`
			}
			if err := json.Unmarshal(f.Payload, &reply); err != nil {
				t.Fatal(err)
			}
			return reply.Status, reply.Response.Reason
		}
	}
	wantOK := func(c *client, event, payload string) {
		t.Helper()
		if status, reason := push(c, event, payload); status != "ok" {
			t.Fatalf("%s %s: %s %s", event, payload, status, reason)
		}
	}
	// wantDiff reads the next diff on both members and compares its updates.
	wantDiff := func(updates string) {
		t.Helper()
		var want map[string]entity.Components
		if err := json.Unmarshal([]byte(updates), &want); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*client{alice, bob} {
			var d entity.Diff
			if err := json.Unmarshal(c.until(topic, "entities_diff").Payload, &d); err != nil {
				t.Fatal(err)
			}
			if len(d.Creates) != 0 || len(d.Deletes) != 0 || !sameJSON(t, d.Updates, want) {
				t.Fatalf("diff %+v, want updates %s", d, updates)
			}
		}
	}

	// Before: the built-in rules know no key_picked_up, so it changes nothing.
	wantOK(alice, "key_picked_up", `{"key_id":"key-gold"}`)

	if err := ts.Room().SetRules(context.Background(), table); err != nil {
		t.Fatal(err)
	}

	wantOK(bob, "door_opened", `{"door_id":"vault-door"}`) // locked, and bob holds nothing
	wantOK(bob, "key_picked_up", `{"key_id":"floor"}`)     // not a key
	wantOK(alice, "key_picked_up", `{"key_id":"key-gold"}`)
	wantDiff(`{"key-gold":{"parent":"alice"},"alice":{"holding":"key-gold"}}`)

	wantOK(bob, "key_picked_up", `{"key_id":"key-rusty"}`)
	wantDiff(`{"key-rusty":{"parent":"bob"},"bob":{"holding":"key-rusty"}}`)
	wantOK(bob, "door_opened", `{"door_id":"vault-door"}`) // the wrong key
	wantOK(alice, "door_opened", `{"door_id":"vault-door"}`)
	wantDiff(`{"vault-door":{"open":true,"locked":false,"opened_by":"alice"}}`)

	wantOK(alice, "key_dropped", `{}`)
	wantDiff(`{"key-gold":{"parent":null,"position":[0,0,0]},"alice":{"holding":null}}`)

	// The built-in user_picked_up is disabled in this room.
	wantOK(alice, "user_picked_up", `{"target_id":"key-gold","hand":"left"}`)

	// A door that does not exist, and an event the rule cannot evaluate: error replies.
	if status, reason := push(bob, "door_opened", `{"door_id":"nope"}`); status != "error" || reason != `door_opened: entity "nope" does not exist` {
		t.Fatalf("door_opened nope: %s %q", status, reason)
	}
	if status, reason := push(bob, "door_opened", `{}`); status != "error" || !strings.Contains(reason, "door_opened: rule when: no such key: door_id") {
		t.Fatalf("door_opened without door_id: %s %q", status, reason)
	}
	// The built-ins the room did not override still work, and the members are still there.
	wantOK(bob, "i_moved", `{"position":[1,0,1]}`)
	wantDiff(`{"bob":{"position":[1,0,1]}}`)
	if st, err := ts.Room().Stats(context.Background()); err != nil || st.Members != 2 {
		t.Fatalf("stats %+v, %v: want both members still in", st, err)
	}
	_, body := httpDo(t, "GET", ts.url("/metrics"), "")
	if want := `xrooms_room_rule_errors_total{namespace="games",room="vault"} 2`; !strings.Contains(body, want) {
		t.Errorf("metrics lack %s", want)
	}
}

// sameJSON compares two values as JSON, so number formatting and key order do not matter.
func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	norm := func(v any) string {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var x any
		if err := json.Unmarshal(raw, &x); err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(x)
		return string(out)
	}
	return norm(a) == norm(b)
}
