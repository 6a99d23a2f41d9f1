package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/xrooms/xrooms/roomserver/server"
)

func TestLimitFlags(t *testing.T) {
	var out bytes.Buffer
	parse([]string{"--help"}, env(nil), &out)
	for _, want := range []string{"XROOMS_MAX_FRAME_BYTES", "XROOMS_MAX_PAYLOAD_BYTES", "XROOMS_MAX_COMPONENT_BYTES",
		"XROOMS_MAX_PAYLOAD_DEPTH", "XROOMS_MAX_EVENTS_PER_SECOND", "XROOMS_MAX_TOPICS", "XROOMS_MAX_ENTITIES",
		"XROOMS_MAX_CONNECTS_PER_SECOND", "XROOMS_SEND_QUEUE_BYTES", "XROOMS_IDLE_TIMEOUT", "1009", "rate_limited", "room_entity_limit", "429"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %s", want)
		}
	}

	o, err := parse([]string{"--room", "a", "--max-topics", "0", "--max-events-per-second", "5", "--idle-timeout", "90s"},
		env(map[string]string{"XROOMS_MAX_ENTITIES": "7", "XROOMS_MAX_EVENTS_PER_SECOND": "9"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var cfg server.Config
	o.limits.apply(&cfg)
	if cfg.MaxEntities != 7 || cfg.MaxEventsPerSecond != 5 || cfg.MaxTopics != -1 ||
		cfg.ReadLimit != server.DefaultReadLimit || cfg.MaxConnectsPerSecond != server.DefaultMaxConnectsPerSecond ||
		cfg.IdleTimeout != 90*time.Second || cfg.SendQueueBytes != server.DefaultSendQueueBytes {
		t.Fatalf("config %+v", cfg)
	}

	for args, want := range map[string]string{
		"--max-payload-depth=-1": "--max-payload-depth -1 must not be negative",
		"--send-queue-bytes=100": "--send-queue-bytes 100 must be at least 1024",
		"--idle-timeout=10ms":    "--idle-timeout 10ms must be at least 1s",
	} {
		if _, err := parse([]string{"--room", "a", args}, env(nil), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %s", args, err, want)
		}
	}
}
