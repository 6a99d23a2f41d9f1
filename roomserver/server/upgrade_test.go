package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestOriginAllowed(t *testing.T) {
	patterns := []string{"*.example.com", "https://app.example.org"}
	tests := []struct {
		host, origin string
		patterns     []string
		want         bool
	}{
		{"rooms.local", "https://evil.test", nil, true}, // no patterns: any origin
		{"rooms.local", "", patterns, true},             // not a browser
		{"rooms.local:4000", "http://rooms.local:4000", patterns, true},
		{"rooms.local", "https://play.example.com", patterns, true},
		{"rooms.local", "https://PLAY.Example.com", patterns, true},
		{"rooms.local", "https://example.com", patterns, false},
		{"rooms.local", "https://app.example.org", patterns, true},
		{"rooms.local", "http://app.example.org", patterns, false}, // the scheme is part of that pattern
		{"rooms.local", "https://evil.test", patterns, false},
		{"rooms.local", "://bad", patterns, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "http://"+tt.host+"/socket/websocket", nil)
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		if got := originAllowed(r, tt.patterns); got != tt.want {
			t.Errorf("host %s origin %q patterns %v: %v, want %v", tt.host, tt.origin, tt.patterns, got, tt.want)
		}
	}
}

// A browser on an origin the room does not allow is refused before the upgrade.
func TestSocketFromAnotherOriginIsRefused(t *testing.T) {
	ts := startServer(t, Config{OriginPatterns: []string{"*.example.com"}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws://"+ts.addr+"/socket/websocket?vsn=2.0.0", &websocket.DialOptions{
		HTTPHeader: http.Header{"Origin": {"https://evil.test"}},
	})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("dial from another origin: %v, %v", resp, err)
	}
	c, _, err := websocket.Dial(ctx, "ws://"+ts.addr+"/socket/websocket?vsn=2.0.0", &websocket.DialOptions{
		HTTPHeader: http.Header{"Origin": {"https://play.example.com"}},
	})
	if err != nil {
		t.Fatalf("dial from an allowed origin: %v", err)
	}
	c.CloseNow()
}
