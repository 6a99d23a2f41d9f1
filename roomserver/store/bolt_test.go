package store

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/xrooms/xrooms/roomserver/entity"
)

func TestBoltFileLockedByAnotherOpener(t *testing.T) {
	path := filepath.Join(t.TempDir(), "room.db")
	first, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks conflict between open files even within one process, so a second open
	// here meets the lock a second room server would.
	second, err := OpenBolt(path)
	if err == nil {
		second.Close()
		t.Fatal("a second open of a file in use succeeded")
	}
	if !errors.Is(err, berrors.ErrTimeout) || !strings.Contains(err.Error(), "locked by another process") ||
		!strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not say the file is locked", err)
	}
	// The first opener is unharmed, and the file is free once it closes.
	mustCommit(t, first, creates(entity.State{"a": {}}))
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := OpenBolt(path)
	if err != nil {
		t.Fatalf("open after the first closed: %v", err)
	}
	defer again.Close()
	wantState(t, again, entity.State{"a": {}})
}

func TestBoltRejectsFilesThatAreNotSound(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]func(path string){
		"text": func(path string) {
			os.WriteFile(path, []byte("this is not a database\n"), 0o600)
		},
		"garbage the size of a database": func(path string) {
			os.WriteFile(path, []byte(strings.Repeat("\xab", 64<<10)), 0o600)
		},
		"damaged data pages": func(path string) {
			// A sound file with entities, whose pages after the two meta pages are then
			// overwritten: the meta pages' checksums still pass, so only a full check
			// finds it.
			s, err := OpenBolt(path)
			if err != nil {
				t.Fatal(err)
			}
			st := entity.State{}
			for i := range 200 {
				st["entity-"+strconv.Itoa(i)] = entity.Components{"position": raw("[1,2,3]")}
			}
			mustCommit(t, s, creates(st))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			page := os.Getpagesize()
			for i := 2 * page; i < len(b); i++ {
				b[i] = 0xab
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".db")
			damage(path)
			s, err := OpenBolt(path)
			if err == nil {
				s.Close()
				t.Fatal("opened a damaged file")
			}
			if !strings.HasPrefix(err.Error(), "failed to open store "+path+": ") || !strings.Contains(err.Error(), "corrupted") {
				t.Fatalf("error %q does not say the file is damaged", err)
			}
			t.Logf("error: %v", err)
			// A failed open leaves the file unlocked: a retry fails the same way.
			if _, err2 := OpenBolt(path); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("second open: %v", err2)
			}
		})
	}
}

func TestBoltOpenInMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "room.db")
	if _, err := OpenBolt(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error %v, want a not-exist error", err)
	}
}

func TestBoltEmptyCommitLeavesFileAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "room.db")
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, s, Change{Diff: entity.NewDiff()})
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Fatal("an empty Commit wrote to the file")
	}
}

// TestBoltDamageAnywhere overwrites each page of a store in turn. Every open must then fail
// with an error, or load the state as of one of the commits (bbolt falls back to the older
// meta page when the newer one is damaged, and an unused page holds nothing); never panic.
func TestBoltDamageAnywhere(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "room.db")
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	st := entity.State{}
	for i := range 300 {
		st["entity-"+strconv.Itoa(i)] = entity.Components{"position": raw("[1,2,3]"), "rotation": raw("[0,0,0,1]")}
	}
	history := []entity.State{{}}
	commit := func(c Change) {
		mustCommit(t, s, c)
		history = append(history, mustLoad(t, s))
	}
	commit(creates(st))
	commit(Change{Departed: map[string]entity.Components{"bob": {"position": raw("[1,2,3]")}}})
	d := entity.NewDiff()
	d.Updates["entity-7"] = entity.Components{"position": raw("[7,7,7]")}
	d.Deletes["entity-8"] = entity.Components{}
	commit(Change{Diff: d})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	var failed, loaded int
	for p := 0; p*page < len(good); p++ {
		b := append([]byte(nil), good...)
		for i := p * page; i < (p+1)*page && i < len(b); i++ {
			b[i] = 0xab
		}
		damaged := filepath.Join(dir, "page-"+strconv.Itoa(p)+".db")
		if err := os.WriteFile(damaged, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenBolt(damaged)
		if err != nil {
			if !strings.Contains(err.Error(), "corrupted") {
				t.Errorf("page %d damaged: error %q does not say so", p, err)
			}
			failed++
			continue
		}
		got, err := s.Load()
		s.Close()
		if err != nil {
			t.Fatalf("page %d damaged: opened, then Load failed: %v", p, err)
		}
		if !slices.ContainsFunc(history, got.Equal) {
			t.Fatalf("page %d damaged: loaded a state no commit left (%d entities)", p, len(got))
		}
		loaded++
	}
	t.Logf("%d pages: %d damaged opens failed, %d loaded a committed state", failed+loaded, failed, loaded)
	if failed == 0 {
		t.Fatal("no damaged page was noticed")
	}
}
