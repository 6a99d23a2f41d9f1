package rules_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/event"
	"github.com/xrooms/xrooms/roomserver/rules"
)

// The built-in rules in declared form must do exactly what the compiled built-ins do: the
// same mutations (component values equal as JSON) and the same events refused, over every
// scenario in testdata and a set of malformed events.
func TestBuiltinDeclsMatchBuiltin(t *testing.T) {
	declared, err := rules.Compile(rules.BuiltinDecls())
	if err != nil {
		t.Fatal(err)
	}
	// Compile starts from Builtin; disable-and-redeclare proves each declared rule is used.
	builtin := rules.Builtin()
	if got, want := declared.Names(), builtin.Names(); !reflect.DeepEqual(got, want) {
		t.Fatalf("declared builtins handle %v, builtins %v", got, want)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	extra := []string{
		`{"event":"user_picked_up","payload":{"user_id":"alice","target_id":"ghost","hand":"left"}}`,
		`{"event":"user_picked_up","payload":{"user_id":"alice","target_id":"alice"}}`,
		`{"event":"user_picked_up","payload":{"user_id":"alice","target_id":"alice","hand":""}}`,
		`{"event":"user_picked_up","payload":{"user_id":"alice","target_id":"alice","hand":3}}`,
		`{"event":"user_picked_up","payload":{"user_id":"alice","target_id":7,"hand":"left"}}`,
		`{"event":"user_released","payload":{"user_id":"alice"}}`,
		`{"event":"user_released","payload":{"user_id":"alice","target_id":""}}`,
		`{"event":"user_moved","payload":{"position":[1,2,3]}}`,
		`{"event":"user_moved","payload":{"user_id":"alice","position":[1, 2.5, -3],"pose":{"a":{"b":null}},"on":true}}`,
		`{"event":"user_joined","payload":{"user_id":"zed"}}`,
		`{"event":"user_left","payload":{"user_id":""}}`,
		`{"event":"door_opened","payload":{"user_id":"alice"}}`,
	}
	compare := func(t *testing.T, where, line string, look rules.Lookup) []entity.Mutation {
		t.Helper()
		var ev event.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		want, wantErr := builtin.Apply(ev, look)
		got, gotErr := declared.Apply(ev, look)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("%s: %s: builtin error %v, declared error %v", where, line, wantErr, gotErr)
		}
		if wantErr != nil {
			if got != nil {
				t.Fatalf("%s: %s: declared error came with mutations %v", where, line, got)
			}
			return nil
		}
		if !sameMutations(t, got, want) {
			t.Fatalf("%s: %s: declared %s, builtin %s", where, line, encode(t, got), encode(t, want))
		}
		return want
	}
	n := 0
	for _, file := range files {
		r := newRunner()
		for _, b := range parseScenario(t, file) {
			switch b.command {
			case "events":
				for _, line := range b.input {
					for _, m := range compare(t, file, line, r.b.Lookup) {
						r.model.Apply(m)
						r.b.Add(m)
					}
					n++
				}
			default:
				r.run(t, file, &b)
			}
		}
	}
	state := entity.State{"alice": {"position": json.RawMessage(`[0,0,0]`)}}
	look := func(id string) (entity.Components, bool) { c, ok := state[id]; return c, ok }
	for _, line := range extra {
		compare(t, "extra", line, look)
		n++
	}
	if n < 20 {
		t.Fatalf("compared only %d events", n)
	}
}

func sameMutations(t *testing.T, a, b []entity.Mutation) bool {
	t.Helper()
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Op != b[i].Op || a[i].ID != b[i].ID || len(a[i].Components) != len(b[i].Components) {
			return false
		}
		for k, v := range a[i].Components {
			w, ok := b[i].Components[k]
			if !ok || !jsonEqual(t, v, w) {
				return false
			}
		}
	}
	return true
}

func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		decls []rules.Decl
		want  []string
	}{
		{"syntax", []rules.Decl{{Event: "door_opened", When: "payload.door_id ==", Mutations: nil}},
			[]string{"rules[0] (door_opened): when:", "Syntax error"}},
		{"undeclared", []rules.Decl{{Event: "e", Mutations: []rules.MutationDecl{{Op: "update", Target: "door_id"}}}},
			[]string{"rules[0] (e): mutations[0].target:", "undeclared reference to 'door_id'"}},
		{"target type", []rules.Decl{{Event: "e", Mutations: []rules.MutationDecl{{Op: "update", Target: "1 + 2"}}}},
			[]string{"mutations[0].target: 1 + 2 has type int, want string"}},
		{"when type", []rules.Decl{{Event: "e", When: "user_id", Mutations: nil}},
			[]string{"when: user_id has type string, want bool"}},
		{"componentsFrom type", []rules.Decl{{Event: "e", Mutations: []rules.MutationDecl{{Op: "update", Target: "user_id", ComponentsFrom: "[1]"}}}},
			[]string{"mutations[0].componentsFrom: [1] has type list(int), want map(string, dyn)"}},
		{"component", []rules.Decl{{Event: "e", Mutations: []rules.MutationDecl{{Op: "update", Target: "user_id", Components: map[string]string{"open": "tru"}}}}},
			[]string{"mutations[0].components.open:", "undeclared reference to 'tru'"}},
		{"no such function", []rules.Decl{{Event: "e", Mutations: []rules.MutationDecl{{Op: "update", Target: "user_id", Components: map[string]string{"x": "entities(user_id)"}}}}},
			[]string{"mutations[0].components.x:", "undeclared reference to 'entities'"}},
		{"op", []rules.Decl{{Event: "e", Mutations: []rules.MutationDecl{{Op: "upsert", Target: "user_id"}}}},
			[]string{`mutations[0].op: "upsert" is not create, update or delete`}},
		{"empty target", []rules.Decl{{Event: "e", Mutations: []rules.MutationDecl{{Op: "delete"}}}},
			[]string{"mutations[0].target: must not be empty"}},
		{"delete with components", []rules.Decl{{Event: "e", Mutations: []rules.MutationDecl{{Op: "delete", Target: "user_id", Components: map[string]string{"a": "1"}}}}},
			[]string{"mutations[0]: a delete takes no components"}},
		{"cost", []rules.Decl{{Event: "e", When: "payload.all(a, payload.all(b, payload.all(c, a + b + c != '')))"}},
			[]string{"rules[0] (e): when:", "more than the limit of 1000000"}},
		{"empty event", []rules.Decl{{}}, []string{"rules[0]: event must not be empty"}},
		{"duplicate", []rules.Decl{{Event: "e"}, {Event: "e", Disabled: true}},
			[]string{`rules[1] (e): event "e" already has a rule, rules[0]`}},
		{"disabled with mutations", []rules.Decl{{Event: "user_moved", Disabled: true, When: "true"}},
			[]string{"rules[0] (user_moved): a disabled rule takes no when and no mutations"}},
		{"every error", []rules.Decl{{Event: "a", When: "1"}, {Event: "b"}, {Event: "c", When: "x"}},
			[]string{"rules[0] (a): when: 1 has type int", "rules[2] (c): when:", "undeclared reference to 'x'"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl, err := rules.Compile(tc.decls)
			if err == nil {
				t.Fatalf("compiled; want an error containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if len(tbl.Names()) != 0 {
				t.Errorf("an error came with a table of %v", tbl.Names())
			}
		})
	}
}

// doorAndKeys are the rules of config/samples' door-and-keys room (kept in step by
// TestSampleRoomRules in roomserver/kube).
func doorAndKeys() []rules.Decl {
	return []rules.Decl{
		{Event: "key_picked_up", When: "entity(payload.key_id).?kind.orValue('') == 'key'",
			Mutations: []rules.MutationDecl{
				{Op: "update", Target: "payload.key_id", Components: map[string]string{"parent": "user_id"}},
				{Op: "update", Target: "user_id", Components: map[string]string{"holding": "payload.key_id"}},
			}},
		{Event: "door_opened",
			When: "!entity(payload.door_id).?locked.orValue(false) || entity(user_id).?holding.orValue('') == entity(payload.door_id).?key.orValue('')",
			Mutations: []rules.MutationDecl{
				{Op: "update", Target: "payload.door_id", MustExist: true,
					Components: map[string]string{"open": "true", "locked": "false", "opened_by": "user_id"}},
			}},
		{Event: "user_moved", Disabled: true},
	}
}

func TestDoorAndKeys(t *testing.T) {
	tbl, err := rules.Compile(doorAndKeys())
	if err != nil {
		t.Fatal(err)
	}
	state := entity.State{}
	if err := json.Unmarshal([]byte(`{
		"door1": {"kind": "door", "locked": true, "key": "key-gold", "open": false},
		"key-gold": {"kind": "key", "position": [1, 0, 1]},
		"rock": {"kind": "rock"},
		"alice": {}, "bob": {}
	}`), &state); err != nil {
		t.Fatal(err)
	}
	look := func(id string) (entity.Components, bool) { c, ok := state[id]; return c, ok }
	steps := []struct {
		ev   string
		want string // JSON of the mutations, or "error: ..." (a substring)
	}{
		// Locked, and bob holds nothing: the rule's condition is false, nothing changes.
		{`{"event":"door_opened","payload":{"user_id":"bob","door_id":"door1"}}`, `no change`},
		// A rock is not a key.
		{`{"event":"key_picked_up","payload":{"user_id":"bob","key_id":"rock"}}`, `no change`},
		{`{"event":"key_picked_up","payload":{"user_id":"alice","key_id":"key-gold"}}`,
			`update key-gold {"parent":"alice"}; update alice {"holding":"key-gold"}`},
		{`{"event":"door_opened","payload":{"user_id":"bob","door_id":"door1"}}`, `no change`},
		{`{"event":"door_opened","payload":{"user_id":"alice","door_id":"door1"}}`,
			`update door1 {"locked":false,"open":true,"opened_by":"alice"}`},
		// Unlocked now: anyone opens it.
		{`{"event":"door_opened","payload":{"user_id":"bob","door_id":"door1"}}`,
			`update door1 {"locked":false,"open":true,"opened_by":"bob"}`},
		{`{"event":"door_opened","payload":{"user_id":"bob","door_id":"door9"}}`, `error: door_opened: entity "door9" does not exist`},
		{`{"event":"door_opened","payload":{"user_id":"bob"}}`, `error: door_opened: rule when: no such key: door_id`},
		{`{"event":"user_moved","payload":{"user_id":"bob","position":[1,1,1]}}`, `no rule`},
		// The other built-ins still apply.
		{`{"event":"user_left","payload":{"user_id":"bob"}}`, `delete bob`},
	}
	for i, s := range steps {
		var ev event.Event
		if err := json.Unmarshal([]byte(s.ev), &ev); err != nil {
			t.Fatal(err)
		}
		muts, err := tbl.Apply(ev, look)
		if err != nil {
			if muts != nil {
				t.Errorf("step %d: error %v came with mutations", i, err)
			}
			if !strings.HasPrefix(s.want, "error: ") || !strings.Contains(err.Error(), strings.TrimPrefix(s.want, "error: ")) {
				t.Fatalf("step %d: %s: error %v, want %s", i, s.ev, err, s.want)
			}
			if strings.Contains(s.want, "rule when") {
				var ee *rules.EvalError
				if !errors.As(err, &ee) {
					t.Errorf("step %d: error %v is not an EvalError", i, err)
				}
			}
			continue
		}
		if got := describeMutations(t, muts); got != s.want {
			t.Fatalf("step %d: %s: got %s, want %s", i, s.ev, got, s.want)
		}
		for _, m := range muts {
			state.Apply(m)
		}
	}
}

// A failing expression refuses the one event with an EvalError, whatever it fails on.
func TestEvalErrors(t *testing.T) {
	tbl, err := rules.Compile([]rules.Decl{
		{Event: "e", Mutations: []rules.MutationDecl{{Op: "update", Target: "payload.id",
			Components: map[string]string{"n": "payload.n / 0", "s": "payload.s"}}}},
		{Event: "t", Mutations: []rules.MutationDecl{{Op: "create", Target: "payload.id"}}},
		{Event: "m", Mutations: []rules.MutationDecl{{Op: "create", Target: "user_id", ComponentsFrom: "payload.m"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ev, want string }{
		{`{"event":"e","payload":{"id":"x","n":1}}`, "e: rule mutations[0].components.n:"},
		{`{"event":"t","payload":{"id":""}}`, `t: rule mutations[0].target: got "", want a non-empty string`},
		{`{"event":"t","payload":{"id":3}}`, "t: rule mutations[0].target: got double, want a non-empty string"},
		{`{"event":"m","payload":{"user_id":"u","m":[1]}}`, "m: rule mutations[0].componentsFrom"},
	} {
		var ev event.Event
		if err := json.Unmarshal([]byte(tc.ev), &ev); err != nil {
			t.Fatal(err)
		}
		muts, err := tbl.Apply(ev, nil)
		var ee *rules.EvalError
		if !errors.As(err, &ee) || muts != nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, %v; want an EvalError containing %q", tc.ev, muts, err, tc.want)
		}
	}
}

// describeMutations writes muts as "op id {components}; ...", "no change" for none and
// "no rule" for nil.
func describeMutations(t *testing.T, muts []entity.Mutation) string {
	t.Helper()
	if muts == nil {
		return "no rule"
	}
	if len(muts) == 0 {
		return "no change"
	}
	var parts []string
	for _, m := range muts {
		p := m.Op.String() + " " + m.ID
		if m.Op != entity.Delete {
			p += " " + encode(t, m.Components)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

// Component expressions yield JSON as encoding/json writes it; values JSON cannot hold are
// an EvalError.
func TestComponentValuesAsJSON(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{"null", "null"},
		{"true", "true"},
		{"-3", "-3"},
		{"7u", "7"},
		{"1.0", "1"},
		{"1.5", "1.5"},
		{"1e21", "1e+21"},
		{"1e-7", "1e-7"},
		{"-2.5e-10", "-2.5e-10"},
		{"payload.pos", "[1,2.5,-3]"},
		{"'a\"<b>'", `"a\"\u003cb\u003e"`},
		{"{'z': [1, {'b': null, 'a': 'x'}], 'a': {}}", `{"a":{},"z":[1,{"a":"x","b":null}]}`},
		{"payload.without('user_id')", `{"pos":[1,2.5,-3]}`},
		{"payload.without(['user_id', 'pos', 'other'])", `{}`},
		{"string(b'hi')", `"hi"`},
		{"b'hi'", "error: bytes is not a JSON value: convert it with string()"},
		{"timestamp('2026-01-01T00:00:00Z')", "error: google.protobuf.Timestamp is not a JSON value"},
		{"0.0 / 0.0", "error: NaN is not a JSON number"},
		{"{1: 'x'}", "error: map key int is not a string"},
	} {
		tbl, err := rules.Compile([]rules.Decl{{Event: "e", Mutations: []rules.MutationDecl{
			{Op: "update", Target: "'x'", Components: map[string]string{"v": tc.expr}}}}})
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		muts, err := tbl.Apply(event.New("e", "u", map[string]json.RawMessage{"pos": json.RawMessage(`[1, 2.5, -3]`)}), nil)
		got := ""
		if err != nil {
			got = "error: " + err.Error()
		} else {
			got = string(muts[0].Components["v"])
		}
		if want, isErr := strings.CutPrefix(tc.want, "error: "); isErr && (err == nil || !strings.Contains(got, want)) || !isErr && got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.expr, got, tc.want)
		}
	}
}

// The compile-time estimate assumes events of up to 64 KiB; a larger one (a backend may post
// up to 1 MiB) meets the run-time limit instead, which refuses that event only.
func TestRuntimeCostLimit(t *testing.T) {
	tbl, err := rules.Compile([]rules.Decl{{Event: "e", When: "payload.filter(k, k != 'user_id').size() > 0",
		Mutations: []rules.MutationDecl{{Op: "update", Target: "'x'", ComponentsFrom: "payload.without('user_id')"}}}})
	if err != nil {
		t.Fatal(err)
	}
	payload := func(n int) map[string]json.RawMessage {
		p := make(map[string]json.RawMessage, n)
		for i := range n {
			p["k"+strconv.Itoa(i)] = json.RawMessage(`0`)
		}
		return p
	}
	if muts, err := tbl.Apply(event.New("e", "u", payload(1000)), nil); err != nil || len(muts[0].Components) != 1000 {
		t.Fatalf("1000 fields: %v", err)
	}
	muts, err := tbl.Apply(event.New("e", "u", payload(400_000)), nil)
	var ee *rules.EvalError
	if !errors.As(err, &ee) || ee.Where != "when" || muts != nil || !strings.Contains(err.Error(), "cost limit") {
		t.Fatalf("400,000 fields: got %d mutations, %v; want the cost limit", len(muts), err)
	}
}
