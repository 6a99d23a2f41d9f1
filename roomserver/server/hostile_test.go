package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/event"
	"github.com/xrooms/xrooms/roomserver/rules"
	"github.com/xrooms/xrooms/roomserver/store"
)

// goodMember is a well-behaved member that pushes its own moves, each with a higher seq, and
// records the highest seq of its own that came back in a diff.
type goodMember struct {
	c      *client
	sent   atomic.Int64
	seen   atomic.Int64
	stop   chan struct{}
	done   sync.WaitGroup
	failed atomic.Value // first error, as a string
}

func startGoodMember(t *testing.T, ts *testServer, every time.Duration) *goodMember {
	g := &goodMember{c: ts.dial(t, "vsn=2.0.0&user_id=good", nil), stop: make(chan struct{})}
	g.c.send(`["1","1","room:lobby","phx_join",{"seq":0}]`)
	g.c.until("room:lobby", "entities_state")
	g.done.Add(2)
	go func() { // reader
		defer g.done.Done()
		for {
			_, b, err := g.c.conn.Read(context.Background())
			if err != nil {
				select {
				case <-g.stop:
				default:
					g.failed.CompareAndSwap(nil, "read: "+err.Error())
				}
				return
			}
			var f []json.RawMessage
			if json.Unmarshal(b, &f) != nil || len(f) != 5 {
				g.failed.CompareAndSwap(nil, "bad frame "+string(b))
				continue
			}
			switch string(f[3]) {
			case `"phx_reply"`:
				if !strings.Contains(string(f[4]), `"status":"ok"`) {
					g.failed.CompareAndSwap(nil, "refused: "+string(b))
				}
			case `"entities_diff"`:
				var d entity.Diff
				json.Unmarshal(f[4], &d)
				for _, c := range []entity.Components{d.Creates["good"], d.Updates["good"]} {
					if s, err := strconv.ParseInt(string(c["seq"]), 10, 64); err == nil && s > g.seen.Load() {
						g.seen.Store(s)
					}
				}
			}
		}
	}()
	go func() { // pusher
		defer g.done.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for seq := int64(1); ; seq++ {
			select {
			case <-g.stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := g.c.conn.Write(ctx, websocket.MessageText,
				fmt.Appendf(nil, `["1","%d","room:lobby","i_moved",{"position":[%d,0,0],"seq":%d}]`, seq+1, seq, seq))
			cancel()
			if err != nil {
				g.failed.CompareAndSwap(nil, "write: "+err.Error())
				return
			}
			g.sent.Store(seq)
		}
	}()
	return g
}

// progressing fails the test unless a move pushed from now on comes back in a diff.
func (g *goodMember) progressing(t *testing.T, after string) {
	t.Helper()
	target := g.sent.Load() + 1
	deadline := time.Now().Add(5 * time.Second)
	for g.seen.Load() < target {
		if f := g.failed.Load(); f != nil {
			t.Fatalf("after %s, the good member failed: %s", after, f)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, the good member's moves stopped coming back (sent %d, seen %d)", after, g.sent.Load(), g.seen.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (g *goodMember) close() {
	close(g.stop)
	g.c.conn.CloseNow()
	g.done.Wait()
}

// replyTo reads frames until the reply with ref and returns its payload.
func (c *client) replyTo(ref string) string {
	c.t.Helper()
	for {
		f := c.next()
		if f.Event == "phx_reply" && f.Ref.String() == ref {
			return string(f.Payload)
		}
	}
}

// TestHostileClients sends every kind of bad input over real sockets while a well-behaved
// member keeps moving. Each gets its documented answer; the good member's moves keep coming
// back in diffs throughout; afterwards the store holds exactly the good changes.
func TestHostileClients(t *testing.T) {
	path := filepath.Join(t.TempDir(), "room.db")
	st, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tbl := rules.Builtin()
	if err := tbl.Set("spawned", rules.Rule{Mutations: []rules.Spec{
		{Op: entity.Create, Target: "id", CopyPayload: true, Omit: []string{event.UserIDKey, "id"}},
	}}); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{
		SyncInterval: 20 * time.Millisecond, Store: st, Rules: &tbl,
		InitialEntities:    entity.State{"door": {"open": raw("false")}},
		MaxEventsPerSecond: 20, MaxConnectsPerSecond: -1, MaxEntities: 50,
	})
	good := startGoodMember(t, ts, 100*time.Millisecond)
	good.progressing(t, "start")

	nested := func(depth int) string {
		return `{"deep":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
	}
	reply := func(reason string) string {
		return `{"status":"error","response":{"reason":` + strconv.Quote(reason) + `}}`
	}
	limitReply := func(reason, limit string, max int) string {
		return fmt.Sprintf(`{"status":"error","response":{"reason":%q,"limit":%q,"max":%d}}`, reason, limit, max)
	}
	cases := []struct {
		name   string
		join   bool   // join room:lobby first
		anon   bool   // connect without a user_id param
		frame  string // sent as a text frame, with ref "9" when a reply is expected
		binary bool   // send frame as a binary frame
		close  websocket.StatusCode
		reply  string // the exact reply payload, when no close
	}{
		{name: "not JSON", frame: `hello`, close: websocket.StatusInvalidFramePayloadData},
		{name: "truncated JSON", frame: `["1","9","room:lobby","phx_join",{`, close: websocket.StatusInvalidFramePayloadData},
		{name: "four elements", frame: `["1","9","room:lobby","phx_join"]`, close: websocket.StatusInvalidFramePayloadData},
		{name: "six elements", frame: `["1","9","room:lobby","phx_join",{},{}]`, close: websocket.StatusInvalidFramePayloadData},
		{name: "V1 object to a V2 socket", frame: `{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"9"}`, close: websocket.StatusInvalidFramePayloadData},
		{name: "array payload", frame: `["1","9","room:lobby","phx_join",[1,2]]`, close: websocket.StatusInvalidFramePayloadData},
		{name: "string payload", join: true, frame: `["1","9","room:lobby","i_moved","up"]`, close: websocket.StatusInvalidFramePayloadData},
		{name: "numeric ref", frame: `["1",9,"room:lobby","phx_join",{}]`, close: websocket.StatusInvalidFramePayloadData},
		{name: "object join_ref", frame: `[{"a":1},"9","room:lobby","phx_join",{}]`, close: websocket.StatusInvalidFramePayloadData},
		{name: "numeric topic", frame: `["1","9",7,"phx_join",{}]`, close: websocket.StatusInvalidFramePayloadData},
		{name: "binary garbage", frame: "\x00\xff\x13\x37garbage", binary: true, close: websocket.StatusUnsupportedData},
		{name: "frame over the read limit", join: true,
			frame: `["1","9","room:lobby","i_moved",{"blob":"` + strings.Repeat("x", DefaultReadLimit) + `"}]`, close: websocket.StatusMessageTooBig},
		{name: "push before join", frame: `["1","9","room:lobby","i_moved",{"position":[9,9,9]}]`, reply: reply("unmatched topic")},
		{name: "unknown control event", join: true, frame: `["1","9","room:lobby","phx_explode",{}]`,
			reply: reply(`event "phx_explode": names starting with "phx_" belong to the Phoenix protocol`)},
		{name: "unknown event on the phoenix topic", frame: `[null,"9","phoenix","reboot",{}]`, reply: reply("unmatched topic")},
		{name: "faked arrival", join: true, frame: `["1","9","room:lobby","user_joined",{"user_id":"good"}]`,
			reply: reply(`event "user_joined" is emitted by the server when a user joins or leaves`)},
		{name: "event wrapper without a name", join: true, frame: `["1","9","room:lobby","event",{"payload":{}}]`,
			reply: reply(`event: payload must be {"event_name": string, "payload": object}`)},
		{name: "event wrapper with an array payload", join: true, frame: `["1","9","room:lobby","event",{"event_name":"x","payload":[1]}]`,
			reply: reply(`event "x": payload must be a JSON object`)},
		{name: "numeric target_id", join: true, frame: `["1","9","room:lobby","user_picked_up",{"target_id":7,"hand":"left"}]`,
			reply: reply(`user_picked_up: payload field "target_id" must be a non-empty string`)},
		{name: "picking up what is not there", join: true, frame: `["1","9","room:lobby","user_picked_up",{"target_id":"ghost","hand":"left"}]`,
			reply: reply(`user_picked_up: entity "ghost" does not exist`)},
		{name: "numeric user_id in a join", anon: true, frame: `["9","9","room:lobby","phx_join",{"user_id":7}]`,
			reply: reply("user_id must be a string of 1 to 256 bytes")},
		{name: "payload over max-payload-bytes", join: true,
			frame: `["1","9","room:lobby","i_moved",{"a":"` + strings.Repeat("x", 15<<10) + `","b":"` + strings.Repeat("y", 15<<10) + `","c":"` + strings.Repeat("z", 3<<10) + `"}]`,
			reply: limitReply("payload_too_large", "max-payload-bytes", DefaultMaxPayloadBytes)},
		{name: "component over max-component-bytes", join: true,
			frame: `["1","9","room:lobby","i_moved",{"blob":"` + strings.Repeat("x", 17<<10) + `"}]`,
			reply: limitReply("component_too_large", "max-component-bytes", DefaultMaxComponentBytes)},
		{name: "nesting over max-payload-depth", join: true, frame: `["1","9","room:lobby","i_moved",` + nested(17) + `]`,
			reply: limitReply("payload_too_deep", "max-payload-depth", DefaultMaxPayloadDepth)},
		{name: "very deep nesting", join: true, frame: `["1","9","room:lobby","i_moved",` + nested(5000) + `]`,
			reply: limitReply("payload_too_deep", "max-payload-depth", DefaultMaxPayloadDepth)},
		{name: "deep nesting in a join", frame: `["9","9","room:lobby","phx_join",` + nested(20) + `]`,
			reply: limitReply("payload_too_deep", "max-payload-depth", DefaultMaxPayloadDepth)},
		{name: "deep nesting in a wrapped event", join: true,
			frame: `["1","9","room:lobby","event",{"event_name":"x","payload":` + nested(17) + `}]`,
			reply: limitReply("payload_too_deep", "max-payload-depth", DefaultMaxPayloadDepth)},
		{name: "another room", frame: `["9","9","room:hall","phx_join",{}]`,
			reply: reply(`unknown room "hall": this server hosts "lobby"`)},
	}
	before, err := ts.Room().Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			query := "vsn=2.0.0&user_id=h" + strconv.Itoa(i)
			if tc.anon {
				query = "vsn=2.0.0"
			}
			c := ts.dial(t, query, nil)
			if tc.join {
				c.send(`["1","1","room:lobby","phx_join",{}]`)
				if f := c.until("room:lobby", "phx_reply"); !strings.Contains(string(f.Payload), `"ok"`) {
					t.Fatalf("join refused: %s", f.Payload)
				}
				c.until("room:lobby", "entities_state")
			}
			typ := websocket.MessageText
			if tc.binary {
				typ = websocket.MessageBinary
			}
			if err := c.conn.Write(context.Background(), typ, []byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			if tc.close != 0 {
				if got := c.closeStatus(); got != tc.close {
					t.Fatalf("close status %v, want %v", got, tc.close)
				}
			} else if got := c.replyTo("9"); got != tc.reply {
				t.Fatalf("reply %s\nwant  %s", got, tc.reply)
			}
			good.progressing(t, tc.name)
		})
	}

	t.Run("flood", func(t *testing.T) {
		c := ts.dial(t, "vsn=2.0.0&user_id=flooder", nil)
		c.send(`["1","1","room:lobby","phx_join",{}]`)
		c.until("room:lobby", "entities_state")
		var limited atomic.Int64
		closed := make(chan websocket.StatusCode, 1)
		go func() {
			for {
				_, b, err := c.conn.Read(context.Background())
				if err != nil {
					closed <- websocket.CloseStatus(err)
					return
				}
				if strings.Contains(string(b), `"reason":"rate_limited","limit":"max-events-per-second","max":20`) {
					limited.Add(1)
				}
			}
		}()
		start := time.Now()
		var code websocket.StatusCode
	flood:
		for i := 0; ; i++ {
			select {
			case code = <-closed:
				break flood
			default:
			}
			if time.Since(start) > 15*time.Second {
				t.Fatal("the flooder was never disconnected")
			}
			c.conn.Write(context.Background(), websocket.MessageText,
				fmt.Appendf(nil, `["1","%d","room:lobby","i_moved",{"position":[%d,6,6],"flood":true}]`, i+2, i))
			time.Sleep(time.Millisecond)
		}
		if code != websocket.StatusPolicyViolation {
			t.Fatalf("flooder closed with %v, want 1008", code)
		}
		if d := time.Since(start); d < 5*time.Second {
			t.Fatalf("flooder closed after %v, before 5s over the limit", d)
		}
		if limited.Load() == 0 {
			t.Fatal("no rate_limited reply")
		}
		good.progressing(t, "the flood")
	})
	t.Run("spawning over max-entities", func(t *testing.T) {
		c := ts.dial(t, "vsn=2.0.0&user_id=spawner", nil)
		c.send(`["1","1","room:lobby","phx_join",{}]`)
		c.until("room:lobby", "entities_state")
		last := ""
		for i := 0; ; i++ { // a backend fills the room
			code, body := httpDo(t, "POST", ts.url("/rooms/lobby/events"), fmt.Sprintf(`{"event":"spawned","payload":{"id":"box%d"}}`, i))
			if code == http.StatusAccepted {
				last = fmt.Sprintf("box%d", i)
				continue
			}
			if code != http.StatusBadRequest || !strings.Contains(body, "room_entity_limit: over max-entities=50") || i > 50 {
				t.Fatalf("spawning box%d: %d %s", i, code, body)
			}
			break
		}
		for { // as of a flush that has them all
			if before, err = ts.Room().Snapshot(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, ok := before[last]; ok {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.send(`["1","9","room:lobby","spawned",{"id":"one-too-many"}]`)
		if got, want := c.replyTo("9"), limitReply("room_entity_limit", "max-entities", 50); got != want {
			t.Fatalf("reply %s\nwant  %s", got, want)
		}
		late := ts.dial(t, "vsn=2.0.0&user_id=latecomer", nil)
		late.send(`["1","1","room:lobby","phx_join",{}]`)
		if got, want := late.replyTo("1"), limitReply("room_entity_limit", "max-entities", 50); got != want {
			t.Fatalf("join reply %s\nwant  %s", got, want)
		}
		good.progressing(t, "the entity limit")
	})
	if f := good.failed.Load(); f != nil {
		t.Fatalf("the good member failed: %s", f)
	}

	// Nothing the hostile clients sent changed anything: the entities are those from before,
	// bar the good member's moves and the joiners' own (empty) entities, which went with them.
	good.progressing(t, "all cases")
	lastSeen := good.seen.Load()
	after, err := ts.Room().Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for id, c := range after {
		want, ok := before[id]
		switch {
		case id == "good":
		case id == "flooder": // its moves within the rate were fine
		case strings.HasPrefix(id, "h") || id == "spawner":
			if len(c) != 0 {
				t.Errorf("hostile %s has components %v", id, c)
			}
		case !ok || !c.Equal(want):
			t.Errorf("entity %s is %v, was %v", id, c, want)
		}
	}
	good.close()
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	// The store: every good move that came back in a diff is on disk, and nothing hostile.
	stored, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !stored["door"].Equal(entity.Components{"open": raw("false")}) || stored["one-too-many"] != nil {
		t.Fatalf("stored entities %v", stored)
	}
	comps, ok, err := st.User("good")
	if err != nil || !ok {
		t.Fatalf("good's last components: %v %v", ok, err)
	}
	if s, _ := strconv.ParseInt(string(comps["seq"]), 10, 64); s < lastSeen {
		t.Fatalf("stored seq %d, but seq %d was flushed before the stop", s, lastSeen)
	}
}
