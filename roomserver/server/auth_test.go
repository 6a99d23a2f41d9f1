package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/xrooms/xrooms/roomserver/auth"
)

var testSecret = []byte("test secret of at least 32 bytes!")

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func mint(t *testing.T, secret []byte, namespace, room, user string, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(secret, namespace, room, user, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// subprotocols is how the phoenix client's authToken option sends a token.
func subprotocols(token string) []string {
	return []string{"phoenix", "base64url.bearer.phx." + strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(token)), "=")}
}

func startAuthServer(t *testing.T) (*testServer, *syncBuffer) {
	logs := &syncBuffer{}
	ts := startServer(t, Config{
		Namespace: "games", SyncInterval: never, AuthSecret: testSecret,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	return ts, logs
}

func TestAuthAdmitsTheTokensUser(t *testing.T) {
	ts, logs := startAuthServer(t)
	alice := mint(t, testSecret, "games", "lobby", "alice", time.Hour)
	tests := []struct {
		name  string
		query string
		opts  *websocket.DialOptions
		join  string
		reply string
	}{
		{"token param", "vsn=2.0.0&token=" + url.QueryEscape(alice), nil, `{}`,
			`["1","1","room:lobby","phx_reply",{"status":"ok","response":{"user_id":"alice"}}]`},
		{"authToken subprotocol", "vsn=2.0.0", &websocket.DialOptions{Subprotocols: subprotocols(alice)}, `{}`,
			`["1","1","room:lobby","phx_reply",{"status":"ok","response":{"user_id":"alice"}}]`},
		{"same user_id param", "vsn=2.0.0&user_id=alice&token=" + alice, nil, `{}`,
			`["1","1","room:lobby","phx_reply",{"status":"ok","response":{"user_id":"alice"}}]`},
		{"same user_id in the join payload", "vsn=2.0.0&token=" + alice, nil, `{"user_id":"alice"}`,
			`["1","1","room:lobby","phx_reply",{"status":"ok","response":{"user_id":"alice"}}]`},
		{"another user_id in the join payload", "vsn=2.0.0&token=" + alice, nil, `{"user_id":"bob"}`,
			`["1","1","room:lobby","phx_reply",{"status":"error","response":{"reason":"unauthorized"}}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.dial(t, tt.query, tt.opts)
			if tt.opts != nil && c.conn.Subprotocol() != "phoenix" {
				t.Fatalf("subprotocol %q, want phoenix", c.conn.Subprotocol())
			}
			c.send(`["1","1","room:lobby","phx_join",` + tt.join + `]`)
			c.want(tt.reply)
			c.conn.Close(websocket.StatusNormalClosure, "")
		})
	}
	if strings.Contains(logs.String(), alice) || strings.Contains(logs.String(), subprotocols(alice)[1]) {
		t.Fatalf("the token is in the log:\n%s", logs)
	}
}

func TestAuthRefusesBeforeTheUpgrade(t *testing.T) {
	ts, logs := startAuthServer(t)
	alice := mint(t, testSecret, "games", "lobby", "alice", time.Hour)
	// Expired a minute past the 30s leeway.
	expired, err := auth.Mint(testSecret, "games", "lobby", "alice", time.Hour, time.Now().Add(-time.Hour-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	sig := func(unsigned string) string {
		mac := hmac.New(sha256.New, testSecret)
		mac.Write([]byte(unsigned))
		return unsigned + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	}
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tokens := map[string]string{
		"missing":         "",
		"expired":         expired,
		"bad signature":   mint(t, []byte("some other secret of 32 bytes or more"), "games", "lobby", "alice", time.Hour),
		"alg none":        b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(`{"sub":"mallory","aud":"xrooms:games/lobby","exp":9999999999}`) + ".",
		"alg none signed": sig(b64(`{"alg":"none"}`) + "." + b64(`{"sub":"mallory","aud":"xrooms:games/lobby","exp":9999999999}`)),
		"RS256":           b64(`{"alg":"RS256"}`) + "." + b64(`{"sub":"mallory","aud":"xrooms:games/lobby","exp":9999999999}`) + "." + b64(strings.Repeat("x", 256)),
		"other room":      mint(t, testSecret, "games", "hall", "alice", time.Hour),
		"other namespace": mint(t, testSecret, "default", "lobby", "alice", time.Hour),
		"malformed":       "not-a-jwt",
		"tampered":        alice[:strings.IndexByte(alice, '.')+1] + b64(`{"sub":"mallory","aud":"xrooms:games/lobby","exp":9999999999}`) + alice[strings.LastIndexByte(alice, '.'):],
	}
	for name, tok := range tokens {
		for _, form := range []string{"param", "subprotocol"} {
			t.Run(name+" as "+form, func(t *testing.T) {
				query, opts := "vsn=2.0.0", &websocket.DialOptions{Subprotocols: []string{"phoenix"}}
				if form == "param" {
					query += "&token=" + url.QueryEscape(tok)
				} else if tok != "" {
					opts.Subprotocols = subprotocols(tok)
				}
				wantRefused(t, ts, query, opts)
			})
		}
	}
	t.Run("a user_id param other than the token's", func(t *testing.T) {
		wantRefused(t, ts, "vsn=2.0.0&user_id=bob&token="+alice, nil)
	})
	if st, _ := ts.Room().Stats(context.Background()); st.Members != 0 || st.Users != 0 {
		t.Fatalf("a refused socket joined: %+v", st)
	}
	ts.mu.Lock()
	n := len(ts.sockets)
	ts.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d sockets were upgraded", n)
	}
	log := logs.String()
	for name, tok := range tokens {
		if tok != "" && strings.Contains(log, tok) {
			t.Errorf("the %s token is in the log", name)
		}
	}
	if strings.Count(log, "socket refused") != 2*len(tokens)+1 {
		t.Errorf("want one log line per refused socket:\n%s", log)
	}
}

// wantRefused dials and expects 403 before the upgrade.
func wantRefused(t *testing.T, ts *testServer, query string, opts *websocket.DialOptions) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws://"+ts.addr+"/socket/websocket?"+query, opts)
	if err == nil {
		conn.CloseNow()
		t.Fatal("the socket was upgraded")
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("dial: %v, response %+v; want 403", err, resp)
	}
}

func TestAuthTokenIsReadFromTheSubprotocol(t *testing.T) {
	for _, tt := range []struct{ header, want string }{
		{"phoenix, base64url.bearer.phx." + base64.RawStdEncoding.EncodeToString([]byte("secret?token>")), "secret?token>"},
		{"phoenix, base64url.bearer.phx." + base64.RawURLEncoding.EncodeToString([]byte("secret?token>")), "secret?token>"},
		{"phoenix", ""},
	} {
		r, _ := http.NewRequest("GET", "/socket/websocket", nil)
		r.Header.Set("Sec-WebSocket-Protocol", tt.header)
		if got := authToken(r); got != tt.want {
			t.Errorf("authToken(%q) = %q, want %q", tt.header, got, tt.want)
		}
	}
}

func TestOpenRoomTakesTheUserIDParam(t *testing.T) {
	// Without a secret the room is open: any token is ignored and user_id is believed.
	ts := startServer(t, Config{SyncInterval: never})
	c := ts.dial(t, "vsn=2.0.0&user_id=bob&token=whatever", nil)
	c.send(`["1","1","room:lobby","phx_join",{}]`)
	c.want(`["1","1","room:lobby","phx_reply",{"status":"ok","response":{"user_id":"bob"}}]`)
}

func TestShortSecretIsRefused(t *testing.T) {
	if _, err := New(Config{Room: "lobby", AuthSecret: []byte("short")}); err == nil {
		t.Fatal("a 5-byte auth secret was accepted")
	}
}

func TestAuthGuardsTheHTTPEndpoints(t *testing.T) {
	ts, logs := startAuthServer(t)
	member := mint(t, testSecret, "games", "lobby", "alice", time.Hour)
	service, err := auth.MintService(testSecret, "games", "lobby", "matchmaker", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other := mint(t, testSecret, "games", "hall", "alice", time.Hour)
	event := `{"event":"door_opened","payload":{"door_id":"d1"}}`
	tests := []struct {
		name, method, path, bearer, body string
		code                             int
	}{
		{"entities without a token", "GET", "/rooms/lobby/entities", "", "", http.StatusUnauthorized},
		{"entities with another room's token", "GET", "/rooms/lobby/entities", other, "", http.StatusUnauthorized},
		{"entities with a member token", "GET", "/rooms/lobby/entities", member, "", http.StatusOK},
		{"entities with the token param", "GET", "/rooms/lobby/entities?token=" + url.QueryEscape(member), "", "", http.StatusOK},
		{"unknown room with a token", "GET", "/rooms/hall/entities", member, "", http.StatusNotFound},
		{"unknown room without a token", "GET", "/rooms/hall/entities", "", "", http.StatusUnauthorized},
		{"events without a token", "POST", "/rooms/lobby/events", "", event, http.StatusUnauthorized},
		{"events with a member token", "POST", "/rooms/lobby/events", member, event, http.StatusForbidden},
		{"events with a service token", "POST", "/rooms/lobby/events", service, event, http.StatusAccepted},
		{"stream without a token", "GET", "/rooms/lobby/stream", "", "", http.StatusUnauthorized},
		{"health needs no token", "GET", "/healthz", "", "", http.StatusOK},
		{"readiness needs no token", "GET", "/readyz", "", "", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, ts.url(tt.path), strings.NewReader(tt.body))
			if tt.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tt.bearer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Fatalf("%s %s: %d, want %d", tt.method, tt.path, resp.StatusCode, tt.code)
			}
			if tt.code == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge")
			}
		})
	}
	t.Run("stream with the token param", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.url("/rooms/lobby/stream?token="+url.QueryEscape(member)), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("%d %s, want an event stream", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})
	for _, tok := range []string{member, service, other} {
		if strings.Contains(logs.String(), tok) {
			t.Fatalf("a token is in the log:\n%s", logs)
		}
	}
}
