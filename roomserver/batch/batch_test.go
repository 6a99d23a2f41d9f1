package batch

import (
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/xrooms/xrooms/roomserver/entity"
)

var (
	seedFlag  = flag.Uint64("seed", 0, "seed for TestModel (0: a new random seed, logged)")
	itersFlag = flag.Int("iters", 20000, "random scenarios for TestModel")
)

const (
	createOp = entity.Create
	updateOp = entity.Update
	deleteOp = entity.Delete
)

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func mut(op entity.Op, id string, kv ...string) entity.Mutation {
	m := entity.Mutation{Op: op, ID: id}
	if len(kv) > 0 {
		m.Components = entity.Components{}
		for i := 0; i+1 < len(kv); i += 2 {
			m.Components[kv[i]] = raw(kv[i+1])
		}
	}
	return m
}

func diffOf(creates, updates map[string]entity.Components, deletes ...string) entity.Diff {
	d := entity.NewDiff()
	maps.Copy(d.Creates, creates)
	maps.Copy(d.Updates, updates)
	for _, id := range deletes {
		d.Deletes[id] = entity.Components{}
	}
	return d
}

func diffEqual(a, b entity.Diff) bool {
	eq := func(x, y map[string]entity.Components) bool {
		return maps.EqualFunc(x, y, entity.Components.Equal)
	}
	return eq(a.Creates, b.Creates) && eq(a.Updates, b.Updates) && eq(a.Deletes, b.Deletes)
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v (%v)", v, err)
	}
	return string(b)
}

// copyMutation gives the Batcher its own components map, as Add takes it over.
func copyMutation(m entity.Mutation) entity.Mutation {
	m.Components = maps.Clone(m.Components)
	return m
}

// TestCases pins the coalescing of each pair of ops, including the one the original Elixir
// batcher got wrong (leave and rejoin within one interval).
func TestCases(t *testing.T) {
	start := func() entity.State {
		return entity.State{"old": {"p": raw("1"), "r": raw("2")}}
	}
	cases := []struct {
		name  string
		start entity.State
		muts  []entity.Mutation
		want  entity.Diff
	}{
		{
			name: "create then update gives one create with merged components",
			muts: []entity.Mutation{mut(createOp, "new", "p", "1"), mut(updateOp, "new", "p", "2", "r", "3")},
			want: diffOf(map[string]entity.Components{"new": {"p": raw("2"), "r": raw("3")}}, nil),
		},
		{
			name: "update then update gives one merged update",
			muts: []entity.Mutation{mut(updateOp, "old", "p", "5"), mut(updateOp, "old", "p", "6", "x", "7")},
			want: diffOf(nil, map[string]entity.Components{"old": {"p": raw("6"), "x": raw("7")}}),
		},
		{
			name: "create then delete of a new entity gives nothing",
			muts: []entity.Mutation{mut(createOp, "new", "p", "1"), mut(deleteOp, "new")},
			want: entity.NewDiff(),
		},
		{
			name: "create over an existing entity then delete gives a delete",
			muts: []entity.Mutation{mut(createOp, "old", "p", "1"), mut(deleteOp, "old")},
			want: diffOf(nil, nil, "old"),
		},
		{
			name: "delete then create (leave and rejoin) gives a create alone",
			muts: []entity.Mutation{mut(deleteOp, "old"), mut(createOp, "old", "p", "9")},
			want: diffOf(map[string]entity.Components{"old": {"p": raw("9")}}, nil),
		},
		{
			name: "delete then create then update gives a create with merged components",
			muts: []entity.Mutation{mut(deleteOp, "old"), mut(createOp, "old", "p", "9"), mut(updateOp, "old", "x", "1")},
			want: diffOf(map[string]entity.Components{"old": {"p": raw("9"), "x": raw("1")}}, nil),
		},
		{
			name: "update then delete gives a delete",
			muts: []entity.Mutation{mut(updateOp, "old", "p", "5"), mut(deleteOp, "old")},
			want: diffOf(nil, nil, "old"),
		},
		{
			name: "update of a missing entity gives nothing",
			muts: []entity.Mutation{mut(updateOp, "ghost", "p", "1")},
			want: entity.NewDiff(),
		},
		{
			name: "delete of a missing entity gives nothing",
			muts: []entity.Mutation{mut(deleteOp, "ghost")},
			want: entity.NewDiff(),
		},
		{
			name: "update after delete gives a delete alone",
			muts: []entity.Mutation{mut(deleteOp, "old"), mut(updateOp, "old", "p", "1")},
			want: diffOf(nil, nil, "old"),
		},
		{
			name: "create over an existing entity replaces it",
			muts: []entity.Mutation{mut(createOp, "old", "x", "1")},
			want: diffOf(map[string]entity.Components{"old": {"x": raw("1")}}, nil),
		},
		{
			name: "update then create replaces the update",
			muts: []entity.Mutation{mut(updateOp, "old", "p", "5"), mut(createOp, "old", "x", "1")},
			want: diffOf(map[string]entity.Components{"old": {"x": raw("1")}}, nil),
		},
		{
			name: "create with no components gives an empty entity",
			muts: []entity.Mutation{mut(createOp, "new")},
			want: diffOf(map[string]entity.Components{"new": {}}, nil),
		},
		{
			name: "empty update gives nothing",
			muts: []entity.Mutation{{Op: updateOp, ID: "old", Components: entity.Components{}}},
			want: entity.NewDiff(),
		},
		{
			name: "null component stays with value null",
			muts: []entity.Mutation{mut(updateOp, "old", "p", "null")},
			want: diffOf(nil, map[string]entity.Components{"old": {"p": raw("null")}}),
		},
		{
			name: "invalid op gives nothing",
			muts: []entity.Mutation{{Op: 0, ID: "old"}, {Op: 9, ID: "new", Components: entity.Components{"p": raw("1")}}},
			want: entity.NewDiff(),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := start()
			model := st.Clone()
			b := New(st.Clone())
			for _, m := range tc.muts {
				model.Apply(m)
				b.Add(copyMutation(m))
			}
			pending := b.Pending()
			got := b.Flush()
			if !diffEqual(got, tc.want) {
				t.Fatalf("diff %s, want %s", show(got), show(tc.want))
			}
			if n := len(got.Creates) + len(got.Updates) + len(got.Deletes); n != pending {
				t.Errorf("Pending() = %d before Flush, diff has %d entities", pending, n)
			}
			applied := st.Clone()
			applied.ApplyDiff(got)
			if !applied.Equal(model) {
				t.Errorf("ApplyDiff gives %s, events one by one give %s", show(applied), show(model))
			}
			if !b.State().Equal(model) || b.Len() != len(model) {
				t.Errorf("State() = %s (Len %d), want %s", show(b.State()), b.Len(), show(model))
			}
			if b.Pending() != 0 || !b.Flush().Empty() {
				t.Errorf("second Flush is not empty")
			}
		})
	}
}

// Small alphabets make collisions (the same entity and component touched again) the norm.
var (
	ids    = []string{"a", "b", "c", "d"}
	names  = []string{"p", "r", "x"}
	values = []string{"1", "2", "null", `[0,1.5,-2]`, `{"k":"v"}`, `"s"`}
)

func randComponents(r *rand.Rand) entity.Components {
	switch r.IntN(8) {
	case 0:
		return nil
	case 1:
		return entity.Components{}
	}
	c := entity.Components{}
	for range 1 + r.IntN(len(names)) {
		c[names[r.IntN(len(names))]] = raw(values[r.IntN(len(values))])
	}
	return c
}

func randState(r *rand.Rand) entity.State {
	s := entity.State{}
	for _, id := range ids {
		if r.IntN(2) == 0 {
			c := randComponents(r)
			if c == nil {
				c = entity.Components{}
			}
			s[id] = c
		}
	}
	return s
}

func randMutation(r *rand.Rand) entity.Mutation {
	m := entity.Mutation{ID: ids[r.IntN(len(ids))]}
	switch n := r.IntN(20); {
	case n < 6:
		m.Op = entity.Create
	case n < 14:
		m.Op = entity.Update
	case n < 19:
		m.Op = entity.Delete
	default:
		m.Op = entity.Op(r.IntN(5)) // invalid ops (0, 4) included: they must change nothing
	}
	if m.Op != entity.Delete {
		m.Components = randComponents(r)
	}
	return m
}

// TestModel checks, over random starting states and random mutation sequences split into
// several flush intervals, that each diff applied the client's way equals the events applied
// one by one, that the flushed State and Lookup agree with that model, that no entity is in
// two parts of a diff, and that a diff handed out is not changed by the work before the next
// Flush (which reuses its maps).
func TestModel(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with: go test ./roomserver/batch -run TestModel -seed=%d)", seed, seed)
	r := rand.New(rand.NewPCG(seed, seed))
	iters := *itersFlag
	if testing.Short() {
		iters /= 10
	}
	for it := range iters {
		start := randState(r)
		model := start.Clone()
		b := New(start.Clone())
		var handed entity.Diff // the last diff given out, with a copy taken at the time
		var handedCopy string
		for interval := range 1 + r.IntN(4) {
			before := model.Clone()
			var applied []entity.Mutation
			for range r.IntN(12) {
				m := randMutation(r)
				applied = append(applied, m)
				model.Apply(m)
				b.Add(copyMutation(m))
				if b.Current() != len(model) {
					t.Fatalf("iteration %d interval %d: after %s, Current() = %d, want %d",
						it, interval, show(applied), b.Current(), len(model))
				}
				for _, id := range ids {
					got, gok := b.Lookup(id)
					want, wok := model[id]
					if b.Exists(id) != wok {
						t.Fatalf("iteration %d interval %d: after %s, Exists(%q) = %v", it, interval, show(applied), id, !wok)
					}
					if gok != wok || !got.Equal(want) {
						t.Fatalf("iteration %d interval %d: after %s, Lookup(%q) = %s, %v; want %s, %v",
							it, interval, show(applied), id, show(got), gok, show(want), wok)
					}
					if gok { // the copy is the caller's: changing it changes nothing
						got["p"] = raw(`"scribble"`)
					}
				}
			}
			if handed.Creates != nil && show(handed) != handedCopy {
				t.Fatalf("iteration %d interval %d: the last diff changed before the next Flush: was %s, now %s",
					it, interval, handedCopy, show(handed))
			}
			pending := b.Pending()
			d := b.Flush()
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("iteration %d interval %d: from %s, mutations %s gave diff %s: %s",
					it, interval, show(before), show(applied), show(d), fmt.Sprintf(format, args...))
			}
			if d.Creates == nil || d.Updates == nil || d.Deletes == nil {
				fail("a diff map is nil")
			}
			for id := range d.Creates {
				if _, ok := d.Deletes[id]; ok {
					fail("%q is both created and deleted", id)
				}
				if _, ok := d.Updates[id]; ok {
					fail("%q is both created and updated", id)
				}
			}
			for id := range d.Updates {
				if _, ok := d.Deletes[id]; ok {
					fail("%q is both updated and deleted", id)
				}
			}
			if n := len(d.Creates) + len(d.Updates) + len(d.Deletes); n != pending {
				fail("Pending() was %d, diff has %d entities", pending, n)
			}
			got := before.Clone()
			got.ApplyDiff(d)
			if !got.Equal(model) {
				fail("ApplyDiff gives %s, one by one gives %s", show(got), show(model))
			}
			if b.Len() != len(model) {
				fail("Len() = %d, want %d", b.Len(), len(model))
			}
			// Not every interval: State catches up with updates when called, which must work
			// after any number of flushes.
			if r.IntN(3) > 0 && !b.State().Equal(model) {
				fail("State() = %s, want %s", show(b.State()), show(model))
			}
			handed, handedCopy = d, show(d)
		}
		if !b.State().Equal(model) {
			t.Fatalf("iteration %d: State() = %s, want %s", it, show(b.State()), show(model))
		}
	}
}

func TestNewTakesNil(t *testing.T) {
	b := New(nil)
	b.Add(mut(createOp, "a", "p", "1"))
	if d := b.Flush(); len(d.Creates) != 1 || b.Len() != 1 {
		t.Fatalf("diff %s, Len %d", show(d), b.Len())
	}
}

func TestFlushOfNothingIsEmptyAndEncodesAsObjects(t *testing.T) {
	b := New(entity.State{"a": {"p": raw("1")}})
	b.Add(mut(updateOp, "ghost", "p", "1"))
	d := b.Flush()
	if !d.Empty() {
		t.Fatalf("diff %s is not empty", show(d))
	}
	if got := show(d); got != `{"creates":{},"updates":{},"deletes":{}}` {
		t.Fatalf("encodes as %s", got)
	}
}

func TestStateIsWhatAJoinerNeeds(t *testing.T) {
	// A joiner gets State() between flushes; the next diff must bring it to the current view.
	b := New(entity.State{"a": {"p": raw("1")}, "b": {"p": raw("1")}})
	b.Add(mut(updateOp, "a", "p", "2"))
	joiner := b.State().Clone()
	b.Add(mut(deleteOp, "b"))
	b.Add(mut(createOp, "c", "p", "3"))
	joiner.ApplyDiff(b.Flush())
	want := entity.State{"a": {"p": raw("2")}, "c": {"p": raw("3")}}
	if !joiner.Equal(want) {
		t.Fatalf("joiner has %s, want %s", show(joiner), show(want))
	}
	if names := slices.Sorted(maps.Keys(b.State())); !slices.Equal(names, []string{"a", "c"}) {
		t.Fatalf("State() holds %v", names)
	}
}

// TestLargeEntity covers entities past smallEntity components, whose merges go through an
// index rather than a scan.
func TestLargeEntity(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	comps := func(n, names int) entity.Components {
		c := entity.Components{}
		for range n {
			c[fmt.Sprint("c", r.IntN(names))] = raw(fmt.Sprint(r.IntN(1000)))
		}
		return c
	}
	start := entity.State{"big": comps(40, 60), "small": comps(3, 4)}
	model := start.Clone()
	b := New(start.Clone())
	for interval := range 5 {
		for range 6 {
			var m entity.Mutation
			switch id := []string{"big", "small", "new"}[r.IntN(3)]; r.IntN(6) {
			case 0:
				m = entity.Mutation{Op: entity.Create, ID: id, Components: comps(r.IntN(50), 60)}
			case 1:
				m = entity.Mutation{Op: entity.Delete, ID: id}
			default:
				m = entity.Mutation{Op: entity.Update, ID: id, Components: comps(1+r.IntN(30), 80)}
			}
			model.Apply(m)
			b.Add(copyMutation(m))
		}
		before := b.State().Clone()
		d := b.Flush()
		before.ApplyDiff(d)
		if !before.Equal(model) || !b.State().Equal(model) {
			t.Fatalf("interval %d: diff %s gives %s, State() is %s; want %s",
				interval, show(d), show(before), show(b.State()), show(model))
		}
		for id, want := range model {
			if got, ok := b.Lookup(id); !ok || !got.Equal(want) {
				t.Fatalf("interval %d: Lookup(%q) = %s", interval, id, show(got))
			}
		}
	}
}
