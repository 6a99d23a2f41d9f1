package server

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/store"
)

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// A long interval: only the tests that want diffs get them, so frame sequences are exact.
const never = time.Hour

func TestJoinV2(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: 20 * time.Millisecond,
		InitialEntities: entity.State{"door": {"open": raw("false")}}})
	c := ts.dial(t, "user_id=bob&vsn=2.0.0", nil)
	c.send(`["3","3","room:lobby","phx_join",{"position":[0,0,0]}]`)
	c.want(`["3","3","room:lobby","phx_reply",{"status":"ok","response":{"user_id":"bob"}}]`)
	c.want(`["3",null,"room:lobby","entities_state",{"door":{"open":false}}]`)
	c.want(`[null,null,"room:lobby","entities_diff",{"creates":{"bob":{"position":[0,0,0]}},"updates":{},"deletes":{}}]`)
	c.send(`["3","4","room:lobby","i_moved",{"position":[0,1,0]}]`)
	c.want(`["3","4","room:lobby","phx_reply",{"status":"ok","response":{}}]`)
	c.want(`[null,null,"room:lobby","entities_diff",{"creates":{},"updates":{"bob":{"position":[0,1,0]}},"deletes":{}}]`)
}

func TestJoinV1AndAssignedUserID(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: never})
	c := ts.dial(t, "", nil) // no vsn: V1
	c.send(`{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}`)
	f := c.next()
	var reply struct {
		Status   string `json:"status"`
		Response struct {
			UserID string `json:"user_id"`
		} `json:"response"`
	}
	json.Unmarshal(f.Payload, &reply)
	if f.Event != "phx_reply" || reply.Status != "ok" || !strings.HasPrefix(reply.Response.UserID, "u-") {
		t.Fatalf("join reply %s %s: want ok with an assigned user_id", f.Event, f.Payload)
	}
	c.want(`{"topic":"room:lobby","event":"entities_state","ref":null,"payload":{}}`)
	c.send(`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"2"}`)
	c.want(`{"topic":"phoenix","event":"phx_reply","ref":"2","payload":{"status":"ok","response":{}}}`)
	if st, _ := ts.Room().Stats(context.Background()); st.Users != 1 || st.Members != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestJoinPayloadUserID(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: never})
	c := ts.dial(t, "vsn=2.0.0", nil)
	c.send(`["1","1","room:lobby","phx_join",{"user_id":"carol","color":"red"}]`)
	c.want(`["1","1","room:lobby","phx_reply",{"status":"ok","response":{"user_id":"carol"}}]`)
	d := ts.dial(t, "vsn=2.0.0", nil)
	d.send(`["1","1","room:lobby","phx_join",{"user_id":42}]`)
	d.want(`["1","1","room:lobby","phx_reply",{"status":"error","response":{"reason":"user_id must be a string of 1 to 256 bytes"}}]`)
}

func TestDiffFanOutBetweenV1AndV2Members(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: 20 * time.Millisecond})
	a := ts.dial(t, "vsn=2.0.0&user_id=alice", nil)
	b := ts.dial(t, "vsn=1.0.0&user_id=bob", nil)
	a.push("1", "1", "room:lobby", "phx_join", `{}`)
	a.until("room:lobby", "entities_state")
	b.push("7", "7", "room:lobby", "phx_join", `{}`)
	b.until("room:lobby", "entities_state")
	a.push("1", "2", "room:lobby", "i_moved", `{"position":[5,5,5]}`)
	for _, c := range []*client{a, b} {
		for {
			f := c.until("room:lobby", "entities_diff")
			var d entity.Diff
			json.Unmarshal(f.Payload, &d)
			if string(d.Updates["alice"]["position"]) == "[5,5,5]" || string(d.Creates["alice"]["position"]) == "[5,5,5]" {
				break
			}
		}
	}
}

func TestHeartbeatAndUnmatchedTopics(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: never})
	c := ts.dial(t, "vsn=2.0.0", nil)
	c.send(`[null,"5","phoenix","heartbeat",{}]`)
	c.want(`[null,"5","phoenix","phx_reply",{"status":"ok","response":{}}]`)
	c.send(`[null,"9","nope:1","i_moved",{}]`)
	c.want(`[null,"9","nope:1","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
	c.send(`["10","10","nope:1","phx_join",{}]`)
	c.want(`["10","10","nope:1","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
	c.send(`["3","11","room:lobby","i_moved",{}]`) // never joined
	c.want(`["3","11","room:lobby","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
	c.send(`["3","12","room:lobby","phx_leave",{}]`)
	c.want(`["3","12","room:lobby","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
}

func TestJoiningAnotherRoomIsRefused(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: never})
	c := ts.dial(t, "vsn=2.0.0", nil)
	c.send(`["1","1","room:other","phx_join",{}]`)
	c.want(`["1","1","room:other","phx_reply",{"status":"error","response":{"reason":"unknown room \"other\": this server hosts \"lobby\""}}]`)
	c.send(`["2","2","room_stream:other","phx_join",{}]`)
	c.want(`["2","2","room_stream:other","phx_reply",{"status":"error","response":{"reason":"unknown room \"other\": this server hosts \"lobby\""}}]`)
}

func TestSecondJoinReplacesTheFirst(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: never})
	c := ts.dial(t, "vsn=2.0.0&user_id=bob", nil)
	c.send(`["1","1","room:lobby","phx_join",{}]`)
	c.want(`["1","1","room:lobby","phx_reply",{"status":"ok","response":{"user_id":"bob"}}]`)
	c.want(`["1",null,"room:lobby","entities_state",{}]`)
	c.send(`["3","3","room:lobby","phx_join",{}]`)
	c.want(`["3","3","room:lobby","phx_reply",{"status":"ok","response":{"user_id":"bob"}}]`)
	c.want(`["1","1","room:lobby","phx_close",{}]`)
	c.want(`["3",null,"room:lobby","entities_state",{}]`)
	// A push with the old join_ref is ignored, as Phoenix does; the heartbeat reply comes next.
	c.send(`["1","4","room:lobby","i_moved",{}]`)
	c.send(`[null,"5","phoenix","heartbeat",{}]`)
	c.want(`[null,"5","phoenix","phx_reply",{"status":"ok","response":{}}]`)
	c.send(`["3","6","room:lobby","i_moved",{}]`)
	c.want(`["3","6","room:lobby","phx_reply",{"status":"ok","response":{}}]`)
	if st, _ := ts.Room().Stats(context.Background()); st.Members != 1 {
		t.Fatalf("members %d", st.Members)
	}
}

func TestLeave(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: 20 * time.Millisecond})
	a := ts.dial(t, "vsn=2.0.0&user_id=alice", nil)
	b := ts.dial(t, "vsn=2.0.0&user_id=bob", nil)
	a.push("3", "3", "room:lobby", "phx_join", `{}`)
	a.until("room:lobby", "entities_state")
	b.push("1", "1", "room:lobby", "phx_join", `{}`)
	b.until("room:lobby", "entities_state")
	// Both exist for everyone before alice leaves.
	a.until("room:lobby", "entities_diff")
	b.until("room:lobby", "entities_diff")
	a.send(`["3","9","room:lobby","phx_leave",{}]`)
	a.want(`["3","9","room:lobby","phx_reply",{"status":"ok","response":{}}]`)
	a.want(`["3","3","room:lobby","phx_close",{}]`)
	for {
		var d entity.Diff
		json.Unmarshal(b.until("room:lobby", "entities_diff").Payload, &d)
		if _, ok := d.Deletes["alice"]; ok {
			break
		}
	}
	a.send(`["3","10","room:lobby","i_moved",{}]`)
	a.want(`["3","10","room:lobby","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
}

func TestRoomFull(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: never, MaxClients: 1})
	a := ts.dial(t, "vsn=2.0.0&user_id=alice", nil)
	a.send(`["1","1","room:lobby","phx_join",{}]`)
	a.until("room:lobby", "entities_state")
	b := ts.dial(t, "vsn=2.0.0&user_id=bob", nil)
	b.send(`["1","1","room:lobby","phx_join",{}]`)
	b.want(`["1","1","room:lobby","phx_reply",{"status":"error","response":{"reason":"room_full"}}]`)
	// Raising the limit live lets the client's retry in.
	if err := ts.Room().SetMaxClients(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	b.send(`["2","2","room:lobby","phx_join",{}]`)
	b.want(`["2","2","room:lobby","phx_reply",{"status":"ok","response":{"user_id":"bob"}}]`)
}

func TestRoomStreamTopic(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: never})
	w := ts.dial(t, "vsn=2.0.0", nil)
	w.send(`["1","1","room_stream:lobby","phx_join",{}]`)
	w.want(`["1","1","room_stream:lobby","phx_reply",{"status":"ok","response":{}}]`)
	a := ts.dial(t, "vsn=2.0.0&user_id=alice", nil)
	a.send(`["1","1","room:lobby","phx_join",{"position":[1,2,3]}]`)
	a.until("room:lobby", "entities_state")
	a.send(`["1","2","room:lobby","event",{"event_name":"door_knocked","payload":{"door":"front","user_id":"mallory"}}]`)
	w.want(`[null,null,"room_stream:lobby","user_joined",{"position":[1,2,3],"user_id":"alice"}]`)
	w.want(`[null,null,"room_stream:lobby","door_knocked",{"door":"front","user_id":"alice"}]`)
	w.send(`["1","3","room_stream:lobby","door_knocked",{}]`)
	w.want(`["1","3","room_stream:lobby","phx_reply",{"status":"error","response":{"reason":"room_stream:lobby is read-only"}}]`)
	w.send(`["1","4","room_stream:lobby","phx_leave",{}]`)
	w.want(`["1","4","room_stream:lobby","phx_reply",{"status":"ok","response":{}}]`)
	w.want(`["1","1","room_stream:lobby","phx_close",{}]`)
	a.send(`["1","5","room:lobby","i_moved",{}]`)
	a.until("room:lobby", "phx_reply")
	w.send(`[null,"6","phoenix","heartbeat",{}]`)
	w.want(`[null,"6","phoenix","phx_reply",{"status":"ok","response":{}}]`) // nothing after the leave
}

func TestServerSentEventsAndPostedEvents(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.url("/rooms/lobby/stream"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	lines := bufio.NewScanner(resp.Body)
	nextData := func() string {
		for lines.Scan() {
			if d, ok := strings.CutPrefix(lines.Text(), "data: "); ok {
				return d
			}
		}
		t.Fatalf("stream ended: %v", lines.Err())
		return ""
	}
	for {
		if st, _ := ts.Room().Stats(ctx); st.Subscribers > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}

	code, body := httpDo(t, "POST", ts.url("/rooms/lobby/events"), `{"event":"user_joined","payload":{"user_id":"npc1","position":[0,0,0]}}`)
	if code != http.StatusAccepted || body != "{\"status\":\"accepted\"}\n" {
		t.Fatalf("POST: %d %s", code, body)
	}
	if got := nextData(); got != `{"event":"user_joined","payload":{"position":[0,0,0],"user_id":"npc1"}}` {
		t.Fatalf("SSE data %s", got)
	}
	code, _ = httpDo(t, "POST", ts.url("/rooms/lobby/events"), `{"event":"lights_dimmed"}`)
	if code != http.StatusAccepted {
		t.Fatalf("POST without payload: %d", code)
	}
	if got := nextData(); got != `{"event":"lights_dimmed","payload":{}}` {
		t.Fatalf("SSE data %s", got)
	}
	// The posted user_joined created an entity.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := httpDo(t, "GET", ts.url("/rooms/lobby/entities"), "")
		if body == `{"npc1":{"position":[0,0,0]}}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("entities %s", body)
		}
		time.Sleep(10 * time.Millisecond)
	}

	bad := []struct{ path, body, want string }{
		{"/rooms/lobby/events", `not json`, "body must be a JSON object"},
		{"/rooms/lobby/events", `{"payload":{}}`, `\"event\" is required`},
		{"/rooms/lobby/events", `{"event":"x","payload":[1]}`, `\"payload\" must be a JSON object`},
		{"/rooms/lobby/events", `{"event":"x","extra":1}`, `unknown field \"extra\"`},
		{"/rooms/lobby/events", `{"event":"x"}{"event":"y"}`, "one JSON object"},
		{"/rooms/lobby/events", `{"event":"phx_join"}`, "belong to the Phoenix protocol"},
		{"/rooms/lobby/events", `{"event":"user_moved","payload":{"position":[1]}}`, `user_moved: payload field \"user_id\" must be a non-empty string`},
		{"/rooms/lobby/events", `{"event":"x","payload":{"a":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}}`, "payload_too_deep: over max-payload-depth=16"},
	}
	for _, b := range bad {
		code, body := httpDo(t, "POST", ts.url(b.path), b.body)
		if code != http.StatusBadRequest || !strings.Contains(body, b.want) || !strings.HasPrefix(body, `{"error":`) {
			t.Errorf("POST %s: %d %s, want 400 saying %s", b.body, code, body, b.want)
		}
	}
	code, body = httpDo(t, "POST", ts.url("/rooms/other/events"), `{"event":"x"}`)
	if code != http.StatusNotFound || !strings.Contains(body, `unknown room \"other\": this server hosts \"lobby\"`) {
		t.Errorf("wrong room: %d %s", code, body)
	}
}

func TestHealthReadinessMetrics(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: never, Namespace: "games"})
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := httpDo(t, "GET", ts.url(p), ""); code != 200 {
			t.Fatalf("%s: %d", p, code)
		}
	}
	c := ts.dial(t, "vsn=2.0.0&user_id=bob", nil)
	c.send(`["1","1","room:lobby","phx_join",{}]`)
	c.until("room:lobby", "entities_state")
	_, body := httpDo(t, "GET", ts.url("/metrics"), "")
	for _, want := range []string{
		`xrooms_room_members{namespace="games",room="lobby"} 1`,
		`xrooms_room_events_total{namespace="games",room="lobby",source="server"} 1`,
		`xrooms_room_diffs_total{`, `xrooms_room_diff_entities_bucket{`, `xrooms_room_flush_duration_seconds_bucket{`,
		`xrooms_room_slow_member_disconnects_total{`, `xrooms_room_sync_interval_seconds{namespace="games",room="lobby"} 3600`,
		"go_goroutines", "process_",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestVersionAndSubprotocolNegotiation(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: never})
	code, _ := httpDo(t, "GET", ts.url("/socket/websocket?vsn=3.0.0"), "")
	if code != http.StatusForbidden {
		t.Fatalf("vsn 3: %d, want 403", code)
	}
	// The phoenix client's authToken: "phoenix, base64url.bearer.phx.<base64, no padding>".
	tok := base64.RawStdEncoding.EncodeToString([]byte("secret?token"))
	c := ts.dial(t, "vsn=2.0.0", &websocket.DialOptions{Subprotocols: []string{"phoenix", "base64url.bearer.phx." + tok}})
	if c.conn.Subprotocol() != "phoenix" {
		t.Fatalf("subprotocol %q, want phoenix", c.conn.Subprotocol())
	}
	c.send(`[null,"1","phoenix","heartbeat",{}]`)
	c.next()
	// auth_test.go checks that the token is read from it.
}

func TestBadFramesCloseTheSocket(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: never})
	c := ts.dial(t, "vsn=2.0.0", nil)
	c.send(`["1","1","room:lobby","phx_join",[]]`)
	if got := c.closeStatus(); got != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("close status %v", got)
	}
	c = ts.dial(t, "vsn=2.0.0", nil)
	c.conn.Write(context.Background(), websocket.MessageBinary, []byte{0, 1, 2})
	if got := c.closeStatus(); got != websocket.StatusUnsupportedData {
		t.Fatalf("close status %v", got)
	}
}

func TestIdleSocketIsClosed(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: never, IdleTimeout: 200 * time.Millisecond})
	c := ts.dial(t, "vsn=2.0.0&user_id=idle", nil)
	c.send(`["1","1","room:lobby","phx_join",{}]`)
	c.until("room:lobby", "entities_state")
	start := time.Now()
	c.closeStatus()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("closed after %v", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if st, _ := ts.Room().Stats(context.Background()); st.Members == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle member is still in the room")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestShutdownFlushesThenClosesWith1001(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: never})
	a := ts.dial(t, "vsn=2.0.0&user_id=alice", nil)
	b := ts.dial(t, "vsn=1.0.0&user_id=bob", nil)
	a.send(`["1","1","room:lobby","phx_join",{}]`)
	a.until("room:lobby", "entities_state")
	b.push("1", "1", "room:lobby", "phx_join", `{}`)
	b.until("room:lobby", "entities_state")
	a.send(`["1","2","room:lobby","i_moved",{"position":[7,7,7]}]`)
	a.until("room:lobby", "phx_reply")
	sse, err := http.Get(ts.url("/rooms/lobby/stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer sse.Body.Close()
	stopped := make(chan error)
	go func() { stopped <- ts.stop() }()
	// The pending batch reaches both members before the close. (The clients read while the
	// server stops: the close handshake waits for their answer.)
	for _, c := range []*client{a, b} {
		var d entity.Diff
		json.Unmarshal(c.until("room:lobby", "entities_diff").Payload, &d)
		if string(d.Creates["alice"]["position"]) != "[7,7,7]" {
			t.Fatalf("last diff %+v", d)
		}
		if got := c.closeStatus(); got != websocket.StatusGoingAway {
			t.Fatalf("close status %v, want 1001", got)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(sse.Body); err != nil { // the event stream ended cleanly
		t.Fatal(err)
	}
	if _, err := http.Get(ts.url("/readyz")); err == nil {
		t.Fatal("still accepting connections after shutdown")
	}
}

func TestRestartOnTheSameDataDirRestoresTheRoom(t *testing.T) {
	path := filepath.Join(t.TempDir(), "room.db")
	open := func() *store.Bolt {
		st, err := store.OpenBolt(path)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	ts := startServer(t, Config{SyncInterval: never, Store: st,
		InitialEntities: entity.State{"shield": {"position": raw("[0,0,0]")}}})
	a := ts.dial(t, "vsn=2.0.0&user_id=alice", nil)
	a.send(`["1","1","room:lobby","phx_join",{"avatar":"cat"}]`)
	a.until("room:lobby", "entities_state")
	a.send(`["1","2","room:lobby","i_moved",{"position":[3,3,3]}]`)
	a.send(`["1","3","room:lobby","event",{"event_name":"user_picked_up","payload":{"target_id":"shield","hand":"left"}}]`)
	a.until("room:lobby", "phx_reply")
	if f := a.until("room:lobby", "phx_reply"); !strings.Contains(string(f.Payload), `"ok"`) {
		t.Fatalf("pick up refused: %s", f.Payload)
	}
	go func() { // reading answers the close handshake
		for {
			if _, _, err := a.conn.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st = open()
	defer st.Close()
	ts = startServer(t, Config{SyncInterval: 20 * time.Millisecond, Store: st,
		InitialEntities: entity.State{"ignored": {}}}) // the store is not empty: no seeding
	b := ts.dial(t, "vsn=2.0.0&user_id=bob", nil)
	b.send(`["1","1","room:lobby","phx_join",{}]`)
	b.until("room:lobby", "phx_reply")
	if f := b.next(); string(f.Payload) != `{"shield":{"parent":"alice:left","position":[0,0,0]}}` {
		t.Fatalf("restored state %s", f.Payload)
	}
	// alice comes back with nothing: she resumes as she was.
	a = ts.dial(t, "vsn=2.0.0&user_id=alice", nil)
	a.send(`["1","1","room:lobby","phx_join",{}]`)
	for {
		var d entity.Diff
		json.Unmarshal(b.until("room:lobby", "entities_diff").Payload, &d)
		if c, ok := d.Creates["alice"]; ok {
			if !c.Equal(entity.Components{"avatar": raw(`"cat"`), "position": raw("[3,3,3]")}) {
				t.Fatalf("alice resumed as %v", c)
			}
			break
		}
	}
}

func TestSlowClientIsDisconnectedOthersKeepReceiving(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: 10 * time.Millisecond, SendQueueBytes: 1 << 20, ReadLimit: 1 << 20,
		MaxPayloadBytes: -1, MaxComponentBytes: -1, MaxEventsPerSecond: -1})
	slow := ts.dial(t, "vsn=2.0.0&user_id=slow", nil)
	slow.send(`["1","1","room:lobby","phx_join",{}]`) // and never reads again
	fast := ts.dial(t, "vsn=2.0.0&user_id=fast", nil)
	fast.send(`["1","1","room:lobby","phx_join",{}]`)
	var diffs atomic.Int64
	go func() { // the fast client reads everything
		for {
			_, b, err := fast.conn.Read(context.Background())
			if err != nil {
				return
			}
			if strings.Contains(string(b[:min(len(b), 64)]), "entities_diff") {
				diffs.Add(1)
			}
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for st, _ := ts.Room().Stats(context.Background()); st.Members < 2; st, _ = ts.Room().Stats(context.Background()) {
		if time.Now().After(deadline) {
			t.Fatal("the clients never joined")
		}
		time.Sleep(time.Millisecond)
	}
	big := strings.Repeat("x", 500<<10)
	for i := 2; ; i++ {
		fast.send(`["1","` + strconv.Itoa(i) + `","room:lobby","i_moved",{"blob":"` + big + strconv.Itoa(i) + `"}]`)
		if st, _ := ts.Room().Stats(context.Background()); st.Members == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow client was never disconnected")
		}
		time.Sleep(20 * time.Millisecond) // ~25 MB/s: the fast client keeps up on a busy machine
	}
	_, body := httpDo(t, "GET", ts.url("/metrics"), "")
	if !strings.Contains(body, `xrooms_room_slow_member_disconnects_total{namespace="default",room="lobby"} 1`) {
		t.Fatal("slow disconnect not counted")
	}
	before := diffs.Load()
	fast.send(`["1","0","room:lobby","i_moved",{"blob":"after"}]`)
	for diffs.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("the fast client gets no more diffs")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
