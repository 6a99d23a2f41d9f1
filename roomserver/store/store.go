package store

import (
	"errors"
	"fmt"

	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/jsonsyntax"
)

// ErrClosed is returned (wrapped) by every method of a closed store.
var ErrClosed = errors.New("store is closed")

// maxIDLen bounds entity and user ids; it is bbolt's key size limit, enforced for every
// store so that Memory rejects what Bolt would.
const maxIDLen = 32768

// Store keeps a room's entities and the last components of departed users.
//
// Ordering: changes take effect in the order Commit is called, and Load and User see every
// Commit that has returned. Each Change is relative to the state the previous ones left, so a
// room commits from one goroutine, in flush order.
//
// Atomicity: a Commit is all or nothing. When it fails nothing of the Change was applied, and
// committing the same Change again is safe (a diff applied twice gives the state applied once
// does), so the caller retries it before committing later ones.
//
// Durability: for Bolt, a Commit that returned nil is on disk and survives a crash of the
// process or machine. Memory keeps nothing past the process.
//
// Maps passed in are not kept, and maps returned are the caller's.
type Store interface {
	// Load returns every entity. An empty store gives an empty, non-nil State.
	Load() (entity.State, error)
	// Commit applies one flush: c.Diff as entity.State.ApplyDiff does (creates, then updates
	// merged into existing entities, then deletes), then records c.Departed. A Change with an
	// empty id or a component value that is not valid JSON is rejected as a whole. An empty
	// Change is a no-op.
	Commit(c Change) error
	// User returns the last components recorded for a user who left, and whether there are
	// any.
	User(id string) (entity.Components, bool, error)
	// Fresh reports whether nothing was ever committed: a new store, as opposed to one whose
	// room deleted every entity.
	Fresh() (bool, error)
	// Close releases the store; for Bolt, it frees the file for another process.
	Close() error
}

// Change is what one flush stores.
type Change struct {
	// Diff is the flush's entities_diff.
	Diff entity.Diff
	// Departed holds, by user id, the last components of users who left in this flush, to
	// be returned by User; a newer record replaces an older one.
	Departed map[string]entity.Components
}

// Empty reports whether c changes nothing.
func (c Change) Empty() bool {
	return c.Diff.Empty() && len(c.Departed) == 0
}

// check rejects a Change no store can apply; both stores call it before changing anything,
// which is what makes a Commit all or nothing.
func (c Change) check() error {
	for _, part := range []struct {
		what string
		m    map[string]entity.Components
	}{{"create", c.Diff.Creates}, {"update", c.Diff.Updates}, {"delete", c.Diff.Deletes}, {"departed user", c.Departed}} {
		for id, comps := range part.m {
			if id == "" || len(id) > maxIDLen {
				return fmt.Errorf("%s: id must be 1 to %d bytes, got %d", part.what, maxIDLen, len(id))
			}
			if part.what == "delete" {
				continue // a delete's components are not stored
			}
			for name, v := range comps {
				if !jsonsyntax.Valid(v) { // json.Valid, faster: every flush checks every component
					return fmt.Errorf("%s %q: component %q is not valid JSON", part.what, id, name)
				}
			}
		}
	}
	return nil
}

// Seed returns the room's entities: what s holds, or, when s is fresh (never committed to)
// and initial is not empty, initial, after committing it as creates. Initial entities (from
// the Room spec) only ever seed a new store, so a restarted room keeps the state it had, even
// when its users deleted every entity. When seeded, the returned State is initial itself.
func Seed(s Store, initial entity.State) (entity.State, error) {
	st, err := s.Load()
	if err != nil {
		return nil, fmt.Errorf("failed to seed store: %w", err)
	}
	fresh, err := s.Fresh()
	if err != nil {
		return nil, fmt.Errorf("failed to seed store: %w", err)
	}
	if !fresh || len(initial) == 0 {
		return st, nil
	}
	d := entity.NewDiff()
	d.Creates = initial
	if err := s.Commit(Change{Diff: d}); err != nil {
		return nil, fmt.Errorf("failed to seed store: %w", err)
	}
	return initial, nil
}
