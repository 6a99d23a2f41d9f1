package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestEnvironmentSetsDefaultsFlagsWin(t *testing.T) {
	e := env(map[string]string{
		"XROOMS_ROOM": "lobby", "XROOMS_NAMESPACE": "games", "XROOMS_LISTEN": ":5000",
		"XROOMS_SYNC_INTERVAL": "50ms", "XROOMS_DATA_DIR": "/data", "XROOMS_MAX_CLIENTS": "10",
		"XROOMS_INITIAL_ENTITIES": `{"a":{}}`,
	})
	o, err := parse(nil, e, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.room != "lobby" || o.namespace != "games" || o.listen != ":5000" || o.syncInterval != 50*time.Millisecond ||
		o.dataDir != "/data" || o.maxClients != 10 || o.initialEntities != `{"a":{}}` {
		t.Fatalf("from the environment: %+v", o)
	}
	o, err = parse([]string{"--room", "hall", "--sync-interval", "1s", "--max-clients", "0"}, e, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.room != "hall" || o.syncInterval != time.Second || o.maxClients != 0 || o.namespace != "games" {
		t.Fatalf("flags over the environment: %+v", o)
	}
	o, err = parse([]string{"--room", "lobby"}, env(nil), &bytes.Buffer{})
	if err != nil || o.listen != ":4000" || o.syncInterval != 200*time.Millisecond || o.namespace != "default" || o.dataDir != "" {
		t.Fatalf("defaults: %+v %v", o, err)
	}
}

func TestBadSettingsAreRefused(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "--room (XROOMS_ROOM) is required"},
		{[]string{"--room", "a:b"}, nil, "must not contain"},
		{[]string{"--room", "a", "--sync-interval", "5ms"}, nil, "between 10ms and 10s"},
		{[]string{"--room", "a", "--sync-interval", "11s"}, nil, "between 10ms and 10s"},
		{[]string{"--room", "a", "--max-clients", "-1"}, nil, "must not be negative"},
		{[]string{"--room", "a"}, map[string]string{"XROOMS_SYNC_INTERVAL": "soon"}, `XROOMS_SYNC_INTERVAL="soon"`},
		{[]string{"--room", "a", "extra"}, nil, "unexpected arguments"},
		{[]string{"--room", "a", "--log-format", "xml"}, nil, "text or json"},
	}
	for _, tt := range tests {
		_, err := parse(tt.args, env(tt.env), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parse(%q, %v) = %v, want an error saying %s", tt.args, tt.env, err, tt.want)
		}
	}
}

func TestHelpDocumentsEveryFlagAndVariable(t *testing.T) {
	var out bytes.Buffer
	_, err := parse([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"--room", "XROOMS_ROOM", "XROOMS_NAMESPACE", "XROOMS_LISTEN", "XROOMS_SYNC_INTERVAL",
		"XROOMS_DATA_DIR", "XROOMS_INITIAL_ENTITIES", "XROOMS_MAX_CLIENTS", `(default "200ms")`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %s:\n%s", want, out.String())
		}
	}
}

func TestInitialEntities(t *testing.T) {
	file := filepath.Join(t.TempDir(), "scene.json")
	os.WriteFile(file, []byte(`{"floor":{"shape":"plane"},"empty":null}`), 0o644)
	for _, v := range []string{file, `{"floor":{"shape":"plane"},"empty":null}`} {
		st, err := readInitialEntities(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(st["floor"]["shape"]) != `"plane"` || st["empty"] == nil {
			t.Fatalf("%s: %v", v, st)
		}
	}
	for _, v := range []string{`{"a":[1]}`, `{"":{}}`, filepath.Join(t.TempDir(), "missing.json"), `{bad`} {
		if _, err := readInitialEntities(v); err == nil {
			t.Errorf("%s accepted", v)
		}
	}
}

func TestCompressionAndProfilerSettings(t *testing.T) {
	o, err := parse([]string{"--room", "a"}, env(nil), &bytes.Buffer{})
	if err != nil || !o.compression || o.pprofListen != "" {
		t.Fatalf("defaults: compression %v, pprof %q, %v", o.compression, o.pprofListen, err)
	}
	o, err = parse([]string{"--room", "a"}, env(map[string]string{"XROOMS_COMPRESSION": "false", "XROOMS_PPROF_LISTEN": "127.0.0.1:0"}), &bytes.Buffer{})
	if err != nil || o.compression || o.pprofListen != "127.0.0.1:0" {
		t.Fatalf("from the environment: compression %v, pprof %q, %v", o.compression, o.pprofListen, err)
	}
	if _, err := parse([]string{"--room", "a", "--compression=maybe"}, env(nil), &bytes.Buffer{}); err == nil {
		t.Fatal("--compression=maybe accepted")
	}
}
