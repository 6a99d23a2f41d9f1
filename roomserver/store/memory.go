package store

import (
	"fmt"
	"maps"
	"sync"

	"github.com/xrooms/xrooms/roomserver/entity"
)

// Memory is a Store in memory, for tests. It is safe for concurrent use and keeps nothing
// past the process.
type Memory struct {
	mu     sync.Mutex
	state  entity.State
	users  map[string]entity.Components
	closed bool
	// committed is set by the first non-empty Commit (see Store.Fresh).
	committed bool
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{state: entity.State{}, users: map[string]entity.Components{}}
}

// Load returns a copy of every entity.
func (m *Memory) Load() (entity.State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("failed to load entities: %w", ErrClosed)
	}
	return m.state.Clone(), nil
}

// Commit applies c, or nothing of it on error.
func (m *Memory) Commit(c Change) error {
	if c.Empty() {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("failed to commit: %w", ErrClosed)
	}
	if err := c.check(); err != nil {
		return fmt.Errorf("failed to commit: %w", err)
	}
	m.committed = true
	m.state.ApplyDiff(c.Diff) // creates are copied in; updates merge into maps m owns
	for id, comps := range c.Departed {
		m.users[id] = cloneComponents(comps)
	}
	return nil
}

// User returns a copy of the last components recorded for a departed user.
func (m *Memory) User(id string) (entity.Components, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, false, fmt.Errorf("failed to read user %q: %w", id, ErrClosed)
	}
	c, ok := m.users[id]
	if !ok {
		return nil, false, nil
	}
	return maps.Clone(c), true, nil
}

// Fresh reports whether nothing was ever committed.
func (m *Memory) Fresh() (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, fmt.Errorf("failed to read store: %w", ErrClosed)
	}
	return !m.committed, nil
}

// Close makes every later call fail with ErrClosed.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// cloneComponents copies c, making nil an empty set as entity.State.Apply does for creates.
func cloneComponents(c entity.Components) entity.Components {
	if c == nil {
		return entity.Components{}
	}
	return maps.Clone(c)
}
