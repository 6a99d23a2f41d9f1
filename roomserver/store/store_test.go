package store

import (
	"encoding/json"
	"errors"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xrooms/xrooms/roomserver/entity"
)

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// impl opens a store for the contract; reopen closes s and opens it again where the
// implementation can (Bolt), or returns s itself (Memory keeps nothing past the instance).
type impl struct {
	name   string
	open   func(t *testing.T) Store
	reopen func(t *testing.T, s Store) Store
}

func impls() []impl {
	return []impl{
		{
			name:   "memory",
			open:   func(t *testing.T) Store { return NewMemory() },
			reopen: func(t *testing.T, s Store) Store { return s },
		},
		{
			name: "bolt",
			open: func(t *testing.T) Store {
				s, err := OpenBolt(filepath.Join(t.TempDir(), "room.db"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			},
			reopen: func(t *testing.T, s Store) Store {
				path := s.(*Bolt).path
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s2, err := OpenBolt(path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s2.Close() })
				return s2
			},
		},
	}
}

func mustLoad(t *testing.T, s Store) entity.State {
	t.Helper()
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func mustCommit(t *testing.T, s Store, c Change) {
	t.Helper()
	if err := s.Commit(c); err != nil {
		t.Fatal(err)
	}
}

func wantState(t *testing.T, s Store, want entity.State) {
	t.Helper()
	if got := mustLoad(t, s); !got.Equal(want) {
		t.Fatalf("Load() = %s, want %s", show(got), show(want))
	}
}

func creates(s entity.State) Change {
	d := entity.NewDiff()
	d.Creates = s
	return Change{Diff: d}
}

func TestContract(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			t.Run("a new store is empty", func(t *testing.T) {
				s := im.open(t)
				st := mustLoad(t, s)
				if st == nil || len(st) != 0 {
					t.Fatalf("Load() = %#v, want an empty non-nil State", st)
				}
				if c, ok, err := s.User("bob"); c != nil || ok || err != nil {
					t.Fatalf("User() = %v, %v, %v", c, ok, err)
				}
			})

			t.Run("commit and load round trip", func(t *testing.T) {
				s := im.open(t)
				want := entity.State{
					"bob":    {"position": raw("[1,2,3]"), "rotation": raw("[0,0,0,1]")},
					"shield": {"parent": raw("null"), "label": raw(`"a \"shield\" ✓"`)},
					"empty":  {},
				}
				mustCommit(t, s, creates(want.Clone()))
				wantState(t, s, want)
				wantState(t, im.reopen(t, s), want)
			})

			t.Run("a diff is applied as clients apply it, in one piece", func(t *testing.T) {
				s := im.open(t)
				start := entity.State{"a": {"p": raw("1"), "r": raw("2")}, "b": {"p": raw("1")}, "d": {"p": raw("4")}}
				mustCommit(t, s, creates(start.Clone()))
				d := entity.NewDiff()
				d.Creates["c"] = entity.Components{"p": raw("3")}
				d.Creates["d"] = entity.Components{"x": raw("5")} // replaces d
				d.Creates["gone"] = entity.Components{"p": raw("0")}
				d.Updates["a"] = entity.Components{"p": raw("10"), "n": raw("null")}
				d.Updates["c"] = entity.Components{"r": raw("30")} // merges into this diff's create
				d.Updates["ghost"] = entity.Components{"p": raw("1")}
				d.Deletes["b"] = entity.Components{}
				d.Deletes["gone"] = entity.Components{} // deletes come last
				d.Deletes["never"] = entity.Components{}
				want := start.Clone()
				want.ApplyDiff(d)
				mustCommit(t, s, Change{Diff: d})
				wantState(t, s, want)
				wantState(t, im.reopen(t, s), want)
			})

			t.Run("a bad change changes nothing", func(t *testing.T) {
				s := im.open(t)
				start := entity.State{"a": {"p": raw("1")}}
				mustCommit(t, s, creates(start.Clone()))
				for name, c := range map[string]Change{
					"invalid JSON": {Diff: entity.Diff{
						Creates: map[string]entity.Components{"b": {"p": raw("2")}},
						Updates: map[string]entity.Components{"a": {"p": raw("{nope")}},
					}},
					"empty id": {Diff: entity.Diff{
						Creates: map[string]entity.Components{"b": {"p": raw("2")}, "": {"p": raw("2")}},
						Deletes: map[string]entity.Components{"a": {}},
					}},
					"bad departed user": {
						Diff:     entity.Diff{Deletes: map[string]entity.Components{"a": {}}},
						Departed: map[string]entity.Components{"a": {"p": raw("")}},
					},
					"id too long": {Diff: entity.Diff{Creates: map[string]entity.Components{strings.Repeat("x", maxIDLen+1): {}}}},
				} {
					if err := s.Commit(c); err == nil || !strings.HasPrefix(err.Error(), "failed to commit") {
						t.Errorf("%s: Commit error %v, want a failed to commit error", name, err)
					}
					wantState(t, s, start)
					if _, ok, _ := s.User("a"); ok {
						t.Errorf("%s: departed user recorded", name)
					}
				}
				wantState(t, im.reopen(t, s), start)
			})

			t.Run("committing a change twice gives what committing it once does", func(t *testing.T) {
				s := im.open(t)
				mustCommit(t, s, creates(entity.State{"a": {"p": raw("1")}, "b": {}}))
				d := entity.NewDiff()
				d.Creates["c"] = entity.Components{"p": raw("3")}
				d.Updates["c"] = entity.Components{"r": raw("4")}
				d.Updates["a"] = entity.Components{"p": raw("2")}
				d.Deletes["b"] = entity.Components{}
				mustCommit(t, s, Change{Diff: d})
				once := mustLoad(t, s)
				mustCommit(t, s, Change{Diff: d})
				wantState(t, s, once)
			})

			t.Run("departed users are kept, newest record wins", func(t *testing.T) {
				s := im.open(t)
				bob := entity.Components{"position": raw("[1,2,3]")}
				mustCommit(t, s, creates(entity.State{"bob": maps.Clone(bob)}))
				d := entity.NewDiff()
				d.Deletes["bob"] = entity.Components{}
				mustCommit(t, s, Change{Diff: d, Departed: map[string]entity.Components{"bob": maps.Clone(bob)}})
				wantState(t, s, entity.State{})
				if c, ok, err := s.User("bob"); err != nil || !ok || !c.Equal(bob) {
					t.Fatalf("User(bob) = %s, %v, %v; want %s", show(c), ok, err, show(bob))
				}
				later := entity.Components{"position": raw("[4,5,6]"), "color": raw(`"red"`)}
				mustCommit(t, s, Change{Departed: map[string]entity.Components{"bob": maps.Clone(later), "amy": nil}})
				s = im.reopen(t, s)
				if c, ok, err := s.User("bob"); err != nil || !ok || !c.Equal(later) {
					t.Fatalf("User(bob) after reopen = %s, %v, %v; want %s", show(c), ok, err, show(later))
				}
				if c, ok, err := s.User("amy"); err != nil || !ok || c == nil || len(c) != 0 {
					t.Fatalf("User(amy) = %#v, %v, %v; want an empty set", c, ok, err)
				}
				if _, ok, err := s.User("carol"); ok || err != nil {
					t.Fatalf("User(carol) = %v, %v", ok, err)
				}
			})

			t.Run("the store keeps no caller's maps and hands out its own", func(t *testing.T) {
				s := im.open(t)
				in := entity.State{"a": {"p": raw("1")}}
				c := creates(in)
				dep := entity.Components{"p": raw("1")}
				c.Departed = map[string]entity.Components{"u": dep}
				mustCommit(t, s, c)
				in["a"]["p"] = raw("99")
				in["z"] = entity.Components{}
				dep["p"] = raw("99")
				wantState(t, s, entity.State{"a": {"p": raw("1")}})
				out := mustLoad(t, s)
				out["a"]["p"] = raw("98")
				delete(out, "a")
				u, _, _ := s.User("u")
				u["p"] = raw("98")
				wantState(t, s, entity.State{"a": {"p": raw("1")}})
				if u, _, _ := s.User("u"); string(u["p"]) != "1" {
					t.Fatalf("User(u) changed to %s", show(u))
				}
			})

			t.Run("seed fills only an empty store", func(t *testing.T) {
				s := im.open(t)
				initial := entity.State{"door": {"open": raw("false")}}
				got, err := Seed(s, initial.Clone())
				if err != nil || !got.Equal(initial) {
					t.Fatalf("Seed(empty store) = %s, %v", show(got), err)
				}
				wantState(t, s, initial)

				s = im.reopen(t, s)
				d := entity.NewDiff()
				d.Updates["door"] = entity.Components{"open": raw("true")}
				mustCommit(t, s, Change{Diff: d})
				opened := entity.State{"door": {"open": raw("true")}}
				got, err = Seed(s, entity.State{"door": {"open": raw("false")}, "lamp": {}})
				if err != nil || !got.Equal(opened) {
					t.Fatalf("Seed(used store) = %s, %v; want what it holds, %s", show(got), err, show(opened))
				}
				wantState(t, s, opened)

				empty := im.open(t)
				got, err = Seed(empty, nil)
				if err != nil || got == nil || len(got) != 0 {
					t.Fatalf("Seed(empty store, nothing) = %#v, %v", got, err)
				}
			})

			t.Run("a room that deleted every entity is not seeded again", func(t *testing.T) {
				s := im.open(t)
				initial := entity.State{"door": {"open": raw("false")}}
				if _, err := Seed(s, initial.Clone()); err != nil {
					t.Fatal(err)
				}
				d := entity.NewDiff()
				d.Deletes["door"] = entity.Components{}
				mustCommit(t, s, Change{Diff: d})
				s = im.reopen(t, s)
				if fresh, err := s.Fresh(); err != nil || fresh {
					t.Fatalf("Fresh() after commits = %v, %v", fresh, err)
				}
				got, err := Seed(s, initial.Clone())
				if err != nil || len(got) != 0 {
					t.Fatalf("Seed(emptied store) = %s, %v; want nothing", show(got), err)
				}
				wantState(t, s, entity.State{})
			})

			t.Run("a closed store says so", func(t *testing.T) {
				s := im.open(t)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Load(); !errors.Is(err, ErrClosed) {
					t.Errorf("Load after Close: %v", err)
				}
				if err := s.Commit(creates(entity.State{"a": {}})); !errors.Is(err, ErrClosed) {
					t.Errorf("Commit after Close: %v", err)
				}
				if _, _, err := s.User("a"); !errors.Is(err, ErrClosed) {
					t.Errorf("User after Close: %v", err)
				}
				if _, err := Seed(s, entity.State{"a": {}}); !errors.Is(err, ErrClosed) {
					t.Errorf("Seed after Close: %v", err)
				}
			})
		})
	}
}
