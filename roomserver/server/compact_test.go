package server

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/xrooms/xrooms/roomserver/compact"
	"github.com/xrooms/xrooms/roomserver/entity"
)

// binaryFrame is a server-to-client Phoenix V2 binary frame, split as the phoenix client's
// serializer splits it.
type binaryFrame struct {
	kind                  byte
	joinRef, topic, event string
	payload               []byte
}

func parseBinary(t *testing.T, b []byte) binaryFrame {
	t.Helper()
	var f binaryFrame
	take := func(n int) string {
		if n > len(b) {
			t.Fatalf("binary frame too short")
		}
		s := string(b[:n])
		b = b[n:]
		return s
	}
	f.kind = b[0]
	switch f.kind {
	case 0: // push: join_ref, topic, event
		sizes := []byte(take(4))[1:]
		f.joinRef, f.topic, f.event = take(int(sizes[0])), take(int(sizes[1])), take(int(sizes[2]))
	case 2: // broadcast: topic, event
		sizes := []byte(take(3))[1:]
		f.topic, f.event = take(int(sizes[0])), take(int(sizes[1]))
	default:
		t.Fatalf("binary frame of kind %d", f.kind)
	}
	f.payload = b
	return f
}

// nextBinary reads frames until a binary one, skipping text frames.
func (c *client) nextBinary() binaryFrame {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		typ, b, err := c.conn.Read(ctx)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if typ == websocket.MessageBinary {
			return parseBinary(c.t, b)
		}
	}
}

// A member that joins with {"encoding": "compact"} gets entities_state and entities_diff as
// binary frames whose payloads decode to what a JSON member of the same room gets.
func TestCompactMembersGetBinaryFramesOfTheSameDiffs(t *testing.T) {
	ts := startServer(t, Config{SyncInterval: 10 * time.Millisecond,
		InitialEntities: entity.State{"door": {"open": json.RawMessage(`false`), "label": json.RawMessage(`"front \u00e9"`)}}})
	js := ts.dial(t, "vsn=2.0.0&user_id=js", nil)
	js.send(`["1","1","room:lobby","phx_join",{}]`)
	js.until("room:lobby", "entities_state")
	js.until("room:lobby", "entities_diff") // js's own entity is flushed: part of the state
	bin := ts.dial(t, "vsn=2.0.0&user_id=bin", nil)
	bin.send(`["7","7","room:lobby","phx_join",{"encoding":"compact","avatar":"cat"}]`)
	reply := bin.until("room:lobby", "phx_reply")
	if !strings.Contains(string(reply.Payload), `"status":"ok"`) {
		t.Fatalf("compact join refused: %s", reply.Payload)
	}
	st := bin.nextBinary()
	if st.kind != 0 || st.joinRef != "7" || st.topic != "room:lobby" || st.event != "entities_state" {
		t.Fatalf("state frame %+v", st)
	}
	state, err := compact.Decode(st.payload)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"door": map[string]any{"open": false, "label": "front é"}, "js": map[string]any{}}; !reflect.DeepEqual(state, want) {
		t.Fatalf("compact state %v, want %v", state, want)
	}

	js.send(`["1","2","room:lobby","i_moved",{"position":[1.5,-2.25,3e-7],"rotation":[0,0.7071,0,0.7071]}]`)
	for {
		var jd map[string]any
		if err := json.Unmarshal(js.until("room:lobby", "entities_diff").Payload, &jd); err != nil {
			t.Fatal(err)
		}
		f := bin.nextBinary()
		if f.kind != 2 || f.topic != "room:lobby" || f.event != "entities_diff" {
			t.Fatalf("diff frame %+v", f)
		}
		bd, err := compact.Decode(f.payload)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(bd, jd) {
			t.Fatalf("compact diff %v, JSON diff %v", bd, jd)
		}
		if strings.Contains(fmtAny(jd), "0.7071") {
			break // the move arrived, the same in both
		}
	}
}

func fmtAny(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestCompactEncodingNeedsV2AndAKnownName(t *testing.T) {
	ts := startServer(t, Config{})
	v1 := ts.dial(t, "vsn=1.0.0&user_id=old", nil)
	v1.push("1", "1", "room:lobby", "phx_join", `{"encoding":"compact"}`)
	if r := v1.until("room:lobby", "phx_reply"); !strings.Contains(string(r.Payload), "vsn=2.0.0") {
		t.Fatalf("V1 compact join: %s", r.Payload)
	}
	v2 := ts.dial(t, "vsn=2.0.0&user_id=new", nil)
	for payload, want := range map[string]string{
		`{"encoding":"msgpack"}`: `encoding must be`,
		`{"encoding":7}`:         `encoding must be a string`,
	} {
		v2.send(`["1","1","room:lobby","phx_join",` + payload + `]`)
		if r := v2.until("room:lobby", "phx_reply"); !strings.Contains(string(r.Payload), want) || !strings.Contains(string(r.Payload), `"error"`) {
			t.Fatalf("join %s: %s, want an error with %q", payload, r.Payload, want)
		}
	}
	if st, _ := ts.Room().Stats(context.Background()); st.Members != 0 {
		t.Fatalf("%d members after refused joins", st.Members)
	}
}
