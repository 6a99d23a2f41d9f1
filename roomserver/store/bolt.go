package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/xrooms/xrooms/roomserver/entity"
)

var (
	// entitiesBucket maps an entity id to the JSON object of its components.
	entitiesBucket = []byte("entities")
	// usersBucket maps a departed user's id to the JSON object of their last components.
	usersBucket = []byte("users")
	// metaBucket holds committedKey once anything was committed (see Store.Fresh).
	metaBucket   = []byte("meta")
	committedKey = []byte("committed")
)

// lockTimeout bounds the wait for the file lock: a second room server on the same file (an
// old pod still shutting down, a misconfigured volume) gets an error instead of hanging.
const lockTimeout = time.Second

// Bolt is the durable Store: one bbolt file, one bbolt transaction per Commit, synced to disk
// before Commit returns. It is safe for concurrent use; only one process can have the file
// open.
type Bolt struct {
	db   *bolt.DB
	path string
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens the store in the file at path, creating it when missing (its directory must
// exist). It fails when another process has the file open (after waiting a second), and when
// the file is damaged or not a bbolt database: it reads every record once, so damage shows
// here rather than in the middle of a room's life.
func OpenBolt(path string) (*Bolt, error) {
	db, err := openDB(path)
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("failed to open store %s: the file is locked by another process (waited %s): %w", path, lockTimeout, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("failed to open store %s: the file is corrupted or not a bbolt database: %w", path, err)
	case err != nil:
		return nil, fmt.Errorf("failed to open store %s: %w", path, err)
	}
	b := &Bolt{db: db, path: path}
	err = safely(func() error {
		return db.Update(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{entitiesBucket, usersBucket, metaBucket} {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return fmt.Errorf("failed to create bucket %s: %w", name, err)
				}
			}
			return nil
		})
	})
	if err == nil {
		_, err = b.load()
	}
	if err == nil {
		err = b.checkUsers()
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("failed to open store %s: %w", path, err)
	}
	return b, nil
}

// openDB is bolt.Open turning a panic into an error: bbolt panics while opening a file with a
// damaged freelist page. The half-open DB cannot be closed, so its file is unlocked and closed
// by hand, letting a later open report the damage again rather than a lock.
func openDB(path string) (db *bolt.DB, err error) {
	var f *os.File
	defer func() {
		if r := recover(); r != nil {
			if f != nil {
				unlock(f)
				_ = f.Close()
			}
			db, err = nil, fmt.Errorf("the file is corrupted: %v", r)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{
		Timeout: lockTimeout,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			file, err := os.OpenFile(name, flag, perm)
			f = file
			return file, err
		},
	})
}

// safely runs fn, turning a panic into an error: bbolt panics when it meets a damaged page,
// and a damaged file must not crash the room. bbolt's managed transactions roll back on the
// way out, so the DB stays usable.
func safely(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the file is corrupted: %v", r)
		}
	}()
	return fn()
}

// Load returns every entity.
func (b *Bolt) Load() (entity.State, error) {
	st, err := b.load()
	if err != nil {
		return nil, fmt.Errorf("failed to load entities from %s: %w", b.path, closedErr(err))
	}
	return st, nil
}

func (b *Bolt) load() (entity.State, error) {
	st := entity.State{}
	err := safely(func() error {
		return b.db.View(func(tx *bolt.Tx) error {
			return forEach(tx, entitiesBucket, func(id string, c entity.Components) {
				st[id] = c
			})
		})
	})
	return st, err
}

// checkUsers decodes every departed user's record, to find damage at open.
func (b *Bolt) checkUsers() error {
	return safely(func() error {
		return b.db.View(func(tx *bolt.Tx) error {
			return forEach(tx, usersBucket, func(string, entity.Components) {})
		})
	})
}

// Commit applies c in one bbolt transaction and returns once it is synced to disk. An empty
// Change is a no-op that does not touch the file.
func (b *Bolt) Commit(c Change) error {
	if c.Empty() {
		return nil
	}
	if err := c.check(); err != nil {
		return fmt.Errorf("failed to commit: %w", err)
	}
	err := safely(func() error { return b.db.Update(func(tx *bolt.Tx) error { return apply(tx, c) }) })
	if err != nil {
		return fmt.Errorf("failed to commit to %s: %w", b.path, closedErr(err))
	}
	return nil
}

// apply writes c in the client's order: creates, then updates merged in, then deletes; then
// the departed users.
func apply(tx *bolt.Tx, c Change) error {
	ents, err := bucket(tx, entitiesBucket)
	if err != nil {
		return err
	}
	for id, comps := range c.Diff.Creates {
		if err := put(ents, id, comps); err != nil {
			return err
		}
	}
	for id, comps := range c.Diff.Updates {
		v := ents.Get([]byte(id))
		if v == nil {
			continue // an update of a missing entity does nothing
		}
		cur, err := decode(v)
		if err != nil {
			return fmt.Errorf("entity %q: %w", id, err)
		}
		maps.Copy(cur, comps)
		if err := put(ents, id, cur); err != nil {
			return err
		}
	}
	for id := range c.Diff.Deletes {
		if err := ents.Delete([]byte(id)); err != nil {
			return fmt.Errorf("failed to delete entity %q: %w", id, err)
		}
	}
	users, err := bucket(tx, usersBucket)
	if err != nil {
		return err
	}
	for id, comps := range c.Departed {
		if err := put(users, id, comps); err != nil {
			return err
		}
	}
	meta, err := bucket(tx, metaBucket)
	if err != nil {
		return err
	}
	return meta.Put(committedKey, []byte{1})
}

// Fresh reports whether nothing was ever committed to the file.
func (b *Bolt) Fresh() (bool, error) {
	fresh := false
	err := safely(func() error {
		return b.db.View(func(tx *bolt.Tx) error {
			meta, err := bucket(tx, metaBucket)
			if err != nil {
				return err
			}
			fresh = meta.Get(committedKey) == nil
			return nil
		})
	})
	if err != nil {
		return false, fmt.Errorf("failed to read %s: %w", b.path, closedErr(err))
	}
	return fresh, nil
}

// User returns the last components recorded for a departed user.
func (b *Bolt) User(id string) (entity.Components, bool, error) {
	var c entity.Components
	err := safely(func() error {
		return b.db.View(func(tx *bolt.Tx) error {
			users, err := bucket(tx, usersBucket)
			if err != nil {
				return err
			}
			v := users.Get([]byte(id))
			if v == nil {
				return nil
			}
			c, err = decode(v)
			return err
		})
	})
	if err != nil {
		return nil, false, fmt.Errorf("failed to read user %q from %s: %w", id, b.path, closedErr(err))
	}
	return c, c != nil, nil
}

// Close closes the file, releasing its lock.
func (b *Bolt) Close() error {
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("failed to close store %s: %w", b.path, err)
	}
	return nil
}

func bucket(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	bk := tx.Bucket(name)
	if bk == nil {
		return nil, fmt.Errorf("bucket %s is missing", name)
	}
	return bk, nil
}

// forEach decodes every record of a bucket.
func forEach(tx *bolt.Tx, name []byte, fn func(id string, c entity.Components)) error {
	bk, err := bucket(tx, name)
	if err != nil {
		return err
	}
	return bk.ForEach(func(k, v []byte) error {
		c, err := decode(v)
		if err != nil {
			return fmt.Errorf("%s %q: %w", name, k, err)
		}
		fn(string(k), c)
		return nil
	})
}

func put(bk *bolt.Bucket, id string, comps entity.Components) error {
	if comps == nil {
		comps = entity.Components{} // stored as {} so it loads as a record with no components
	}
	v, err := json.Marshal(comps)
	if err != nil {
		return fmt.Errorf("failed to encode %q: %w", id, err)
	}
	if err := bk.Put([]byte(id), v); err != nil {
		return fmt.Errorf("failed to write %q: %w", id, err)
	}
	return nil
}

// decode parses a stored components object. The values are copied out of v, which bbolt
// only lends for the transaction.
func decode(v []byte) (entity.Components, error) {
	var c entity.Components
	if err := json.Unmarshal(v, &c); err != nil {
		return nil, fmt.Errorf("failed to decode components: %w", err)
	}
	if c == nil {
		return nil, errors.New("failed to decode components: not a JSON object")
	}
	return c, nil
}

// closedErr reports a closed database as ErrClosed, the same as Memory does.
func closedErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}
