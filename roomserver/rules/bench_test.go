package rules_test

import (
	"encoding/json"
	"testing"

	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/event"
	"github.com/xrooms/xrooms/roomserver/rules"
)

// benchEvents are the events both benchmarks run, through the same rule in each form.
var benchEvents = map[string]string{
	// As the room makes it of a client's i_moved push: the pose's fields and the user's id.
	"user_moved":     `{"event":"user_moved","payload":{"user_id":"alice","position":[1.5,1.6,-2],"rotation":[0,0.7,0,0.7]}}`,
	"user_picked_up": `{"event":"user_picked_up","payload":{"user_id":"alice","target_id":"key-gold","hand":"left"}}`,
	"door_opened":    `{"event":"door_opened","payload":{"user_id":"alice","door_id":"door1"}}`,
}

var benchState = entity.State{
	"alice":    {"holding": json.RawMessage(`"key-gold"`)},
	"key-gold": {"kind": json.RawMessage(`"key"`), "parent": json.RawMessage(`"alice"`)},
	"door1":    {"kind": json.RawMessage(`"door"`), "locked": json.RawMessage(`true`), "key": json.RawMessage(`"key-gold"`)},
}

func benchRule(b *testing.B, tbl rules.Table, name string) {
	var ev event.Event
	if err := json.Unmarshal([]byte(benchEvents[name]), &ev); err != nil {
		b.Fatal(err)
	}
	look := func(id string) (entity.Components, bool) { c, ok := benchState[id]; return c, ok }
	b.ReportAllocs()
	for b.Loop() {
		muts, err := tbl.Apply(ev, look)
		if err != nil || len(muts) == 0 {
			b.Fatal(muts, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkBuiltinRule runs events through the compiled Go built-in rules.
func BenchmarkBuiltinRule(b *testing.B) {
	tbl := rules.Builtin()
	for _, name := range []string{"user_moved", "user_picked_up"} {
		b.Run(name, func(b *testing.B) { benchRule(b, tbl, name) })
	}
}

// BenchmarkCELRule runs the same events through the same rules declared in CEL
// (rules.BuiltinDecls), and the sample door rule, which reads two entities.
func BenchmarkCELRule(b *testing.B) {
	tbl, err := rules.Compile(append(rules.BuiltinDecls(), doorAndKeys()[:2]...))
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"user_moved", "user_picked_up", "door_opened"} {
		b.Run(name, func(b *testing.B) { benchRule(b, tbl, name) })
	}
}
