package rules

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/event"
)

func ev(name, payload string) event.Event {
	e := event.Event{Name: name}
	if payload != "" {
		if err := json.Unmarshal([]byte(payload), &e.Payload); err != nil {
			panic(err)
		}
	}
	return e
}

// room is a Lookup over a fixed state.
func room(s entity.State) Lookup {
	return func(id string) (entity.Components, bool) {
		c, ok := s[id]
		return c, ok
	}
}

var shieldRoom = room(entity.State{"shield": {"position": json.RawMessage("[0,1,0]")}})

func TestBadPayloads(t *testing.T) {
	cases := []struct {
		name string
		ev   event.Event
		want string
	}{
		{"join without user", ev("user_joined", `{"position":[0,0,0]}`),
			`user_joined: payload field "user_id" must be a non-empty string`},
		{"join with no payload at all", ev("user_joined", ""),
			`user_joined: payload field "user_id" must be a non-empty string`},
		{"join with an empty user", ev("user_joined", `{"user_id":""}`),
			`user_joined: payload field "user_id" must be a non-empty string`},
		{"leave with a numeric user", ev("user_left", `{"user_id":12}`),
			`user_left: payload field "user_id" must be a non-empty string`},
		{"move with a null user", ev("user_moved", `{"user_id":null,"position":[0,0,0]}`),
			`user_moved: payload field "user_id" must be a non-empty string`},
		{"pick up without target", ev("user_picked_up", `{"user_id":"bob","hand":"left"}`),
			`user_picked_up: payload field "target_id" must be a non-empty string`},
		{"pick up with an object target", ev("user_picked_up", `{"user_id":"bob","target_id":{"id":"shield"},"hand":"left"}`),
			`user_picked_up: payload field "target_id" must be a non-empty string`},
		{"pick up without hand", ev("user_picked_up", `{"user_id":"bob","target_id":"shield"}`),
			`user_picked_up: payload field "hand" must be a non-empty string`},
		{"pick up with an empty hand", ev("user_picked_up", `{"user_id":"bob","target_id":"shield","hand":""}`),
			`user_picked_up: payload field "hand" must be a non-empty string`},
		{"pick up without user", ev("user_picked_up", `{"target_id":"shield","hand":"left"}`),
			`user_picked_up: payload field "user_id" must be a non-empty string`},
		{"pick up of a missing thing", ev("user_picked_up", `{"user_id":"bob","target_id":"sword","hand":"left"}`),
			`user_picked_up: entity "sword" does not exist`},
		{"release without target", ev("user_released", `{"user_id":"bob"}`),
			`user_released: payload field "target_id" must be a non-empty string`},
		{"release of a missing thing", ev("user_released", `{"user_id":"bob","target_id":"sword"}`),
			`user_released: entity "sword" does not exist`},
	}
	tbl := Builtin()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			muts, err := tbl.Apply(tc.ev, shieldRoom)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if muts != nil {
				t.Fatalf("an error came with mutations %v", muts)
			}
		})
	}
}

func TestBuiltins(t *testing.T) {
	cases := []struct {
		ev   event.Event
		want entity.Mutation
	}{
		{ev("user_joined", `{"user_id":"bob","position":[1,2,3],"rotation":[0,0,0,1]}`),
			entity.Mutation{Op: entity.Create, ID: "bob", Components: entity.Components{
				"position": json.RawMessage("[1,2,3]"), "rotation": json.RawMessage("[0,0,0,1]")}}},
		{ev("user_joined", `{"user_id":"bob"}`),
			entity.Mutation{Op: entity.Create, ID: "bob", Components: entity.Components{}}},
		{ev("user_left", `{"user_id":"bob","reason":"tab closed"}`),
			entity.Mutation{Op: entity.Delete, ID: "bob"}},
		{ev("user_moved", `{"user_id":"bob","position":[1, 2, 3]}`),
			entity.Mutation{Op: entity.Update, ID: "bob", Components: entity.Components{"position": json.RawMessage("[1, 2, 3]")}}},
		{ev("user_picked_up", `{"user_id":"bob","target_id":"shield","hand":"left"}`),
			entity.Mutation{Op: entity.Update, ID: "shield", Components: entity.Components{"parent": json.RawMessage(`"bob:left"`)}}},
		{ev("user_picked_up", `{"user_id":"b\"o\\b","target_id":"shield","hand":"l\u00e9ft"}`),
			entity.Mutation{Op: entity.Update, ID: "shield", Components: entity.Components{"parent": json.RawMessage(`"b\"o\\b:léft"`)}}},
		{ev("user_released", `{"user_id":"bob","target_id":"shield"}`),
			entity.Mutation{Op: entity.Update, ID: "shield", Components: entity.Components{"parent": json.RawMessage("null")}}},
	}
	tbl := Builtin()
	for _, tc := range cases {
		t.Run(tc.ev.Name, func(t *testing.T) {
			muts, err := tbl.Apply(tc.ev, shieldRoom)
			if err != nil {
				t.Fatal(err)
			}
			if len(muts) != 1 {
				t.Fatalf("got %d mutations, want 1", len(muts))
			}
			got := muts[0]
			if got.Op != tc.want.Op || got.ID != tc.want.ID || !got.Components.Equal(tc.want.Components) ||
				(got.Op != entity.Delete && got.Components == nil) {
				t.Fatalf("got %v %q %s, want %v %q %s", got.Op, got.ID, got.Components, tc.want.Op, tc.want.ID, tc.want.Components)
			}
		})
	}
}

func TestRawValuesAreKeptAsTheyCame(t *testing.T) {
	// 1.50 and the spaces would change if the value were decoded and encoded again.
	e := ev("user_moved", `{"user_id":"bob","position":[1.50, 2e3, -0]}`)
	muts, err := Builtin().Apply(e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(muts[0].Components["position"]); got != "[1.50, 2e3, -0]" {
		t.Fatalf("position %s", got)
	}
}

func TestNoRule(t *testing.T) {
	muts, err := Builtin().Apply(ev("door_opened", `{"id":"door1"}`), nil)
	if muts != nil || err != nil {
		t.Fatalf("got %v, %v; want nil, nil", muts, err)
	}
}

func TestMutationsOwnTheirMaps(t *testing.T) {
	e := ev("user_moved", `{"user_id":"bob","position":[1,2,3]}`)
	tbl := Builtin()
	a, _ := tbl.Apply(e, nil)
	b, _ := tbl.Apply(e, nil)
	a[0].Components["position"] = json.RawMessage("[9,9,9]")
	a[0].Components["extra"] = json.RawMessage("1")
	if string(b[0].Components["position"]) != "[1,2,3]" || len(b[0].Components) != 1 {
		t.Fatalf("changing one result changed another: %s", b[0].Components)
	}
	if _, ok := e.Payload["extra"]; ok || string(e.Payload["position"]) != "[1,2,3]" {
		t.Fatalf("changing a result changed the event: %v", e.Payload)
	}
}

func TestSetOverridesAndRemoveDisables(t *testing.T) {
	tbl := Builtin()
	// A room where a door event opens a door and a move also lights a trail.
	if err := tbl.Set("door_opened", Rule{Mutations: []Spec{{
		Op: entity.Update, Target: "id", MustExist: true,
		Set: map[string]Value{"open": {JSON: json.RawMessage("true")}, "opened_by": {Field: event.UserIDKey}},
	}}}); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Set("user_moved", Rule{Mutations: []Spec{
		{Op: entity.Update, Target: event.UserIDKey, CopyPayload: true, Omit: []string{event.UserIDKey}},
		{Op: entity.Create, Target: "trail_id", Set: map[string]Value{"owner": {Format: "trail of {user_id}"}, "at": {Field: "position"}}},
	}}); err != nil {
		t.Fatal(err)
	}
	tbl.Remove("user_left")

	look := room(entity.State{"door1": {}})
	muts, err := tbl.Apply(ev("door_opened", `{"id":"door1","user_id":"bob"}`), look)
	if err != nil {
		t.Fatal(err)
	}
	want := entity.Components{"open": json.RawMessage("true"), "opened_by": json.RawMessage(`"bob"`)}
	if len(muts) != 1 || muts[0].ID != "door1" || !muts[0].Components.Equal(want) {
		t.Fatalf("door_opened gave %v", muts)
	}
	if _, err := tbl.Apply(ev("door_opened", `{"id":"door1"}`), look); err == nil ||
		err.Error() != `door_opened: payload field "user_id" is required` {
		t.Fatalf("door_opened without user: %v", err)
	}

	muts, err = tbl.Apply(ev("user_moved", `{"user_id":"bob","trail_id":"t1","position":[1,2,3]}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(muts) != 2 || muts[0].ID != "bob" || muts[1].ID != "t1" || muts[1].Op != entity.Create ||
		string(muts[1].Components["owner"]) != `"trail of bob"` || string(muts[1].Components["at"]) != "[1,2,3]" {
		t.Fatalf("user_moved gave %v", muts)
	}
	if muts, err := tbl.Apply(ev("user_left", `{"user_id":"bob"}`), nil); muts != nil || err != nil {
		t.Fatalf("removed user_left gave %v, %v", muts, err)
	}
	if _, ok := tbl.Rule("user_left"); ok {
		t.Fatal("user_left still has a rule")
	}
	if got := strings.Join(tbl.Names(), ","); got != "door_opened,user_joined,user_moved,user_picked_up,user_released" {
		t.Fatalf("Names() = %s", got)
	}
	// Each Builtin is its own table.
	if muts, _ := Builtin().Apply(ev("user_left", `{"user_id":"bob"}`), nil); len(muts) != 1 {
		t.Fatal("Remove on one table changed Builtin()")
	}
}

func TestTablesDoNotShareChanges(t *testing.T) {
	a := Builtin()
	b := a.Clone()
	b.Remove("user_left")
	if _, ok := a.Rule("user_left"); !ok {
		t.Fatal("Remove on a clone changed the original")
	}
	r, _ := a.Rule("user_picked_up")
	r.Mutations[0].Set["parent"] = Null
	r.Mutations[0].Target = "user_id"
	muts, err := a.Apply(ev("user_picked_up", `{"user_id":"bob","target_id":"shield","hand":"left"}`), shieldRoom)
	if err != nil || muts[0].ID != "shield" || string(muts[0].Components["parent"]) != `"bob:left"` {
		t.Fatalf("changing a Rule() result changed the table: %v, %v", muts, err)
	}
	var zero Table
	if muts, err := zero.Apply(ev("user_left", `{"user_id":"bob"}`), nil); muts != nil || err != nil {
		t.Fatalf("zero Table gave %v, %v", muts, err)
	}
	if err := zero.Set("user_left", Rule{Mutations: []Spec{{Op: entity.Delete, Target: "user_id"}}}); err != nil {
		t.Fatal(err)
	}
	if muts, _ := zero.Apply(ev("user_left", `{"user_id":"bob"}`), nil); len(muts) != 1 {
		t.Fatal("Set on a zero Table did not take")
	}
}

func TestSetRejectsBadRules(t *testing.T) {
	cases := []struct {
		name string
		rule Rule
		want string
	}{
		{"bad op", Rule{Mutations: []Spec{{Op: 0, Target: "id"}}}, "rule e: mutation 0: invalid op 0"},
		{"no target", Rule{Mutations: []Spec{{Op: entity.Delete}}}, "rule e: mutation 0: target field must not be empty"},
		{"delete with components", Rule{Mutations: []Spec{{Op: entity.Delete, Target: "id", CopyPayload: true}}},
			"rule e: mutation 0: a delete takes no components"},
		{"two sources", Rule{Mutations: []Spec{{Op: entity.Update, Target: "id", Set: map[string]Value{"c": {Field: "a", Format: "{b}"}}}}},
			`rule e: mutation 0: component "c": value must set at most one of Field, Format and JSON`},
		{"bad JSON", Rule{Mutations: []Spec{{Op: entity.Update, Target: "id", Set: map[string]Value{"c": {JSON: json.RawMessage("{")}}}}},
			`rule e: mutation 0: component "c": invalid JSON "{"`},
		{"open brace", Rule{Mutations: []Spec{{Op: entity.Update, Target: "id", Set: map[string]Value{"c": {Format: "{a"}}}}},
			`rule e: mutation 0: component "c": format: unmatched '{'`},
		{"nested brace", Rule{Mutations: []Spec{{Op: entity.Update, Target: "id", Set: map[string]Value{"c": {Format: "{a{b}}"}}}}},
			`rule e: mutation 0: component "c": format: unmatched '{'`},
		{"close brace", Rule{Mutations: []Spec{{Op: entity.Update, Target: "id", Set: map[string]Value{"c": {Format: "a}"}}}}},
			`rule e: mutation 0: component "c": format: unmatched '}'`},
		{"empty field", Rule{Mutations: []Spec{{Op: entity.Update, Target: "id", Set: map[string]Value{"c": {Format: "x{}"}}}}},
			`rule e: mutation 0: component "c": format: empty field name`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tbl := Builtin()
			err := tbl.Set("e", tc.rule)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if _, ok := tbl.Rule("e"); ok {
				t.Fatal("a rejected rule was added")
			}
		})
	}
	tbl := Builtin()
	if err := tbl.Set("", Rule{}); err == nil {
		t.Fatal("empty event name accepted")
	}
}

func TestFormatParts(t *testing.T) {
	tbl := Table{}
	if err := tbl.Set("e", Rule{Mutations: []Spec{{Op: entity.Create, Target: "id",
		Set: map[string]Value{"c": {Format: "<{a}>{b}{a} & done"}, "n": {}}}}}); err != nil {
		t.Fatal(err)
	}
	muts, err := tbl.Apply(ev("e", `{"id":"x","a":"1","b":"2"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := json.Unmarshal(muts[0].Components["c"], &got); err != nil || got != "<1>21 & done" {
		t.Fatalf("c = %s (%v)", muts[0].Components["c"], err)
	}
	if string(muts[0].Components["n"]) != "null" {
		t.Fatalf("zero Value gave %s, want null", muts[0].Components["n"])
	}
}

// payloadString must agree with event.String on every input; it only skips the decoder.
func TestPayloadStringMatchesEventString(t *testing.T) {
	for _, v := range []string{
		`"bob"`, `""`, `"b\"ob"`, `"b\\ob"`, `"\u00e9"`, `"é"`, "\"\xff\"", "\"a\tb\"", `"a/b"`,
		`12`, `null`, `true`, `["a"]`, `{"a":"b"}`, `"`, `"a" `, ` "a"`,
	} {
		e := event.Event{Name: "e", Payload: map[string]json.RawMessage{"k": json.RawMessage(v)}}
		gs, gok := payloadString(e, "k")
		ws, wok := e.String("k")
		if gs != ws || gok != wok {
			t.Errorf("%s: payloadString = %q, %v; event.String = %q, %v", v, gs, gok, ws, wok)
		}
	}
	e := event.Event{Name: "e"}
	if s, ok := payloadString(e, "k"); s != "" || ok {
		t.Errorf("missing field: %q, %v", s, ok)
	}
}
