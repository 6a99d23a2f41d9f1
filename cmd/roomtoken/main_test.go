package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xrooms/xrooms/roomserver/auth"
)

const secret = "the room's secret, 32 bytes or more\n"

func TestMintedTokenPassesTheServersVerifier(t *testing.T) {
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, args := range [][]string{
		{"--secret-file", file},
		{"--secret", secret},
		nil, // from XROOMS_AUTH_SECRET
	} {
		var out bytes.Buffer
		args = append(args, "--namespace", "games", "--room", "lobby", "--user", "alice", "--ttl", "10m")
		getenv := func(k string) string {
			if k == envSecret {
				return secret
			}
			return ""
		}
		if err := run(args, getenv, &out, &bytes.Buffer{}, now); err != nil {
			t.Fatal(err)
		}
		tok := strings.TrimSpace(out.String())
		v, err := auth.NewVerifier([]byte(secret), "games", "lobby", func() time.Time { return now.Add(9 * time.Minute) })
		if err != nil {
			t.Fatal(err)
		}
		if id, err := v.Verify(tok); err != nil || id.User != "alice" || id.Service {
			t.Fatalf("%q: Verify = %+v, %v; want alice, no service", args, id, err)
		}
		late, _ := auth.NewVerifier([]byte(secret), "games", "lobby", func() time.Time { return now.Add(11 * time.Minute) })
		if _, err := late.Verify(tok); !errors.Is(err, auth.ErrExpired) {
			t.Fatalf("after its ttl: %v, want expired", err)
		}
		hall, _ := auth.NewVerifier([]byte(secret), "games", "hall", nil)
		if _, err := hall.Verify(tok); !errors.Is(err, auth.ErrOtherRoom) {
			t.Fatalf("another room: %v, want refused", err)
		}
	}
}

func TestServiceToken(t *testing.T) {
	var out bytes.Buffer
	args := []string{"--secret", secret, "--room", "lobby", "--user", "matchmaker", "--service"}
	if err := run(args, func(string) string { return "" }, &out, &bytes.Buffer{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	v, _ := auth.NewVerifier([]byte(secret), "default", "lobby", nil)
	if id, err := v.Verify(strings.TrimSpace(out.String())); err != nil || id.User != "matchmaker" || !id.Service {
		t.Fatalf("Verify = %+v, %v; want the matchmaker service", id, err)
	}
}

func TestBadArgumentsAreRefused(t *testing.T) {
	none := func(string) string { return "" }
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--room", "lobby", "--user", "alice"}, "give the room's secret"},
		{[]string{"--secret", secret, "--user", "alice"}, "--room is required"},
		{[]string{"--secret", secret, "--room", "lobby"}, "user id must be"},
		{[]string{"--secret", "short", "--room", "lobby", "--user", "alice"}, "at least 32 bytes"},
		{[]string{"--secret", secret, "--room", "lobby", "--user", "alice", "--ttl", "-1h"}, "lifetime must be positive"},
		{[]string{"--secret", secret, "--secret-file", "f", "--room", "lobby", "--user", "alice"}, "not both"},
	} {
		var out bytes.Buffer
		err := run(tt.args, none, &out, &bytes.Buffer{}, time.Now())
		if err == nil || !strings.Contains(err.Error(), tt.want) || out.Len() != 0 {
			t.Errorf("%q: %v, printed %q; want an error saying %s and nothing printed", tt.args, err, out.String(), tt.want)
		}
	}
}
