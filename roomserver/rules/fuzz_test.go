package rules

import (
	"encoding/json"
	"testing"

	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/event"
)

// fuzzTables are the built-in rules and one that uses every kind of Value.
func fuzzTables(t testing.TB) []Table {
	custom := Builtin()
	err := custom.Set("thing_painted", Rule{Mutations: []Spec{
		{Op: entity.Update, Target: "target_id", MustExist: true, Set: map[string]Value{
			"color": {Field: "color"}, "by": {Format: "{user_id}/{brush}"}, "wet": {JSON: json.RawMessage(`true`)}, "dry": Null,
		}},
		{Op: entity.Create, Target: "stroke_id", CopyPayload: true, Omit: []string{event.UserIDKey, "stroke_id"}},
		{Op: entity.Delete, Target: "erase_id"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return []Table{Builtin(), custom}
}

// FuzzApply feeds any event name and payload to the rules: Apply never panics; on error it
// returns no mutations; every mutation has a valid op, a non-empty id, and components that
// are valid JSON. The seed corpus is in testdata/fuzz/FuzzApply.
func FuzzApply(f *testing.F) {
	tables := fuzzTables(f)
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		var fields map[string]json.RawMessage
		if json.Unmarshal(payload, &fields) != nil {
			return // the server refuses a payload that is not a JSON object before any rule
		}
		for _, tbl := range tables {
			muts, err := tbl.Apply(event.Event{Name: name, Payload: fields}, shieldRoom)
			if err != nil {
				if muts != nil {
					t.Fatalf("%s %s: error %v came with mutations %v", name, payload, err, muts)
				}
				continue
			}
			for _, m := range muts {
				if m.Op != entity.Create && m.Op != entity.Update && m.Op != entity.Delete || m.ID == "" {
					t.Fatalf("%s %s: mutation %+v", name, payload, m)
				}
				for k, v := range m.Components {
					if !json.Valid(v) {
						t.Fatalf("%s %s: component %q of %s is not JSON: %s", name, payload, k, m.ID, v)
					}
				}
			}
		}
	})
}
