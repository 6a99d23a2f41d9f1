package protocol

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// The literal frames below are the examples of docs/phoenix-wire.md.

func TestDecodeV2(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Frame
	}{
		{"join", `["3","3","room:lobby","phx_join",{"user_id":"bob"}]`,
			Frame{StringRef("3"), StringRef("3"), "room:lobby", "phx_join", json.RawMessage(`{"user_id":"bob"}`)}},
		{"push to a topic never joined", `[null,"9","nope:1","i_moved",{}]`,
			Frame{Ref{}, StringRef("9"), "nope:1", "i_moved", json.RawMessage(`{}`)}},
		{"client push", `["3","4","room:lobby","i_moved",{"position":[0,1,0]}]`,
			Frame{StringRef("3"), StringRef("4"), "room:lobby", "i_moved", json.RawMessage(`{"position":[0,1,0]}`)}},
		{"heartbeat", `[null,"5","phoenix","heartbeat",{}]`,
			Frame{Ref{}, StringRef("5"), "phoenix", "heartbeat", json.RawMessage(`{}`)}},
		{"leave", `["3","9","room:lobby","phx_leave",{}]`,
			Frame{StringRef("3"), StringRef("9"), "room:lobby", "phx_leave", json.RawMessage(`{}`)}},
		{"empty string ref is not null", `["","",  "t","e" , { }]`,
			Frame{StringRef(""), StringRef(""), "t", "e", json.RawMessage(`{ }`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(V2, []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			assertFrame(t, got, tt.want)
		})
	}
}

func TestDecodeV1(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Frame
	}{
		{"join with join_ref", `{"topic":"room:lobby","event":"phx_join","payload":{"user_id":"bob"},"ref":"3","join_ref":"3"}`,
			Frame{StringRef("3"), StringRef("3"), "room:lobby", "phx_join", json.RawMessage(`{"user_id":"bob"}`)}},
		{"old client without join_ref", `{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"5"}`,
			Frame{Ref{}, StringRef("5"), "phoenix", "heartbeat", json.RawMessage(`{}`)}},
		{"null ref", `{"topic":"room:lobby","event":"i_moved","payload":{"a":1},"ref":null}`,
			Frame{Ref{}, Ref{}, "room:lobby", "i_moved", json.RawMessage(`{"a":1}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(V1, []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			assertFrame(t, got, tt.want)
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		v    Version
		in   string
		want string
	}{
		{"not JSON", V2, `[`, "failed to decode frame: "},
		{"object for V2", V2, `{"topic":"t"}`, "failed to decode frame: "},
		{"four elements", V2, `[null,"1","t","e"]`, "array of 5 elements"},
		{"six elements", V2, `[null,"1","t","e",{},1]`, "array of 5 elements"},
		{"numeric ref", V2, `[null,1,"t","e",{}]`, "ref must be a string or null"},
		{"numeric join_ref", V2, `[1,"1","t","e",{}]`, "join_ref must be a string or null"},
		{"payload array", V2, `[null,"1","t","e",[1]]`, "payload must be a JSON object"},
		{"payload string", V2, `[null,"1","t","e","x"]`, "payload must be a JSON object"},
		{"payload null", V2, `[null,"1","t","e",null]`, "payload must be a JSON object"},
		{"topic number", V2, `[null,"1",1,"e",{}]`, "topic must be a string"},
		{"empty topic", V2, `[null,"1","","e",{}]`, "topic must not be empty"},
		{"empty event", V2, `[null,"1","t","",{}]`, "event must not be empty"},
		{"array for V1", V1, `[null,"1","t","e",{}]`, "failed to decode frame: "},
		{"V1 without topic", V1, `{"event":"e","payload":{},"ref":"1"}`, `want an object with "topic"`},
		{"V1 without payload", V1, `{"topic":"t","event":"e","ref":"1"}`, "payload must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.v, []byte(tt.in))
			if err == nil {
				t.Fatalf("no error for %s", tt.in)
			}
			if !strings.HasPrefix(err.Error(), "failed to decode frame: ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestEncodeV2(t *testing.T) {
	join, _ := Decode(V2, []byte(`["3","3","room:lobby","phx_join",{"user_id":"bob"}]`))
	push, _ := Decode(V2, []byte(`["3","4","room:lobby","i_moved",{"position":[0,1,0]}]`))
	stray, _ := Decode(V2, []byte(`[null,"9","nope:1","i_moved",{}]`))
	beat, _ := Decode(V2, []byte(`[null,"5","phoenix","heartbeat",{}]`))
	tests := []struct {
		name string
		f    Frame
		want string
	}{
		{"join accepted", ReplyOK(join, nil), `["3","3","room:lobby","phx_reply",{"status":"ok","response":{}}]`},
		{"join refused", ReplyError(join, "unauthorized"), `["3","3","room:lobby","phx_reply",{"status":"error","response":{"reason":"unauthorized"}}]`},
		{"unmatched topic", ReplyError(stray, "unmatched topic"), `[null,"9","nope:1","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`},
		{"reply to a push", ReplyOK(push, json.RawMessage(`{}`)), `["3","4","room:lobby","phx_reply",{"status":"ok","response":{}}]`},
		{"push to one member", Push(StringRef("3"), "room:lobby", "entities_state", json.RawMessage(`{"a":{}}`)), `["3",null,"room:lobby","entities_state",{"a":{}}]`},
		{"broadcast", Broadcast("room:lobby", "entities_diff", json.RawMessage(`{"creates":{}}`)), `[null,null,"room:lobby","entities_diff",{"creates":{}}]`},
		{"heartbeat reply", ReplyOK(beat, nil), `[null,"5","phoenix","phx_reply",{"status":"ok","response":{}}]`},
		{"close", Close(StringRef("3"), "room:lobby"), `["3","3","room:lobby","phx_close",{}]`},
		{"channel error", ChannelError(StringRef("3"), "room:lobby"), `["3","3","room:lobby","phx_error",{}]`},
		{"escaped reason", ReplyError(stray, `unknown room "x"`), `[null,"9","nope:1","phx_reply",{"status":"error","response":{"reason":"unknown room \"x\""}}]`},
		{"nil payload is {}", Broadcast("t", "e", nil), `[null,null,"t","e",{}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Encode(V2, tt.f)
			if got := string(e.Bytes()); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			if e.Len() != len(tt.want) {
				t.Fatalf("Len %d, want %d", e.Len(), len(tt.want))
			}
			// What we send must read back as the same frame.
			back, err := Decode(V2, e.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			assertFrame(t, back, Frame{tt.f.JoinRef, tt.f.Ref, tt.f.Topic, tt.f.Event, e.Body})
		})
	}
}

func TestEncodeV1LeavesJoinRefOut(t *testing.T) {
	join, _ := Decode(V1, []byte(`{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"3","join_ref":"3"}`))
	tests := []struct {
		name string
		f    Frame
		want string
	}{
		{"reply", ReplyOK(join, json.RawMessage(`{"user_id":"bob"}`)), `{"topic":"room:lobby","event":"phx_reply","ref":"3","payload":{"status":"ok","response":{"user_id":"bob"}}}`},
		{"push", Push(StringRef("3"), "room:lobby", "entities_state", json.RawMessage(`{}`)), `{"topic":"room:lobby","event":"entities_state","ref":null,"payload":{}}`},
		{"broadcast", Broadcast("room:lobby", "entities_diff", json.RawMessage(`{"deletes":{}}`)), `{"topic":"room:lobby","event":"entities_diff","ref":null,"payload":{"deletes":{}}}`},
		{"close", Close(StringRef("3"), "room:lobby"), `{"topic":"room:lobby","event":"phx_close","ref":"3","payload":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(Encode(V1, tt.f).Bytes()); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestEncodeSharesThePayload(t *testing.T) {
	payload := json.RawMessage(`{"creates":{"a":{}}}`)
	e := Encode(V2, Broadcast("room:lobby", "entities_diff", payload))
	if &e.Body[0] != &payload[0] {
		t.Fatal("Encode copied the payload; broadcasts must share it")
	}
}

func TestEncodeEscapesStrings(t *testing.T) {
	f := Broadcast("room:\"q\"\n<é>", "ev\\", nil)
	b := Encode(V2, f).Bytes()
	back, err := Decode(V2, b)
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if back.Topic != f.Topic || back.Event != f.Event {
		t.Fatalf("round trip of %s gave %q %q", b, back.Topic, back.Event)
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		vsn  string
		want Version
		err  bool
	}{
		{"", V1, false},
		{"1.0.0", V1, false},
		{"2.0.0", V2, false},
		{"2.1", V2, false},
		{"3.0.0", 0, true},
		{"x", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseVersion(tt.vsn)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v, error %v", tt.vsn, got, err, tt.want, tt.err)
		}
	}
}

func assertFrame(t *testing.T, got, want Frame) {
	t.Helper()
	if got.JoinRef != want.JoinRef || got.Ref != want.Ref || got.Topic != want.Topic || got.Event != want.Event || string(got.Payload) != string(want.Payload) {
		t.Fatalf("got  {%v %v %q %q %s}\nwant {%v %v %q %q %s}",
			got.JoinRef, got.Ref, got.Topic, got.Event, got.Payload,
			want.JoinRef, want.Ref, want.Topic, want.Event, want.Payload)
	}
}

// Binary frames are laid out as the phoenix client's serializer decodes them.
func TestEncodeBinary(t *testing.T) {
	push, err := EncodeBinary(Push(StringRef("12"), "room:lobby", "entities_state", []byte{1, 2, 3}))
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{0, 2, 10, 14}, "12room:lobbyentities_state\x01\x02\x03"...)
	if !push.Binary || !bytes.Equal(push.Bytes(), want) || push.Len() != len(want) {
		t.Fatalf("push % x, want % x", push.Bytes(), want)
	}
	bc, err := EncodeBinary(Broadcast("room:lobby", "entities_diff", []byte{9}))
	if err != nil {
		t.Fatal(err)
	}
	want = append([]byte{2, 10, 13}, "room:lobbyentities_diff\x09"...)
	if !bytes.Equal(bc.Bytes(), want) || bc.Len() != len(want) {
		t.Fatalf("broadcast % x, want % x", bc.Bytes(), want)
	}
	if _, err := EncodeBinary(Broadcast("room:"+strings.Repeat("x", 251), "e", nil)); err == nil {
		t.Fatal("a topic over 255 bytes encoded")
	}
}

// A decoded frame keeps none of its input, which sockets reuse for the next frame.
func TestDecodedFrameOutlivesItsInput(t *testing.T) {
	for _, tc := range []struct {
		v     Version
		frame string
	}{
		{V2, `["1","2","room:lobby","i_moved",{"position":[1,2,3]}]`},      // fast path
		{V2, `["1","2","room:lobby","i_m\u006fved",{"position":[1,2,3]}]`}, // general path
		{V1, `{"topic":"room:lobby","event":"i_moved","payload":{"position":[1,2,3]},"ref":"2"}`},
	} {
		data := []byte(tc.frame)
		f, err := Decode(tc.v, data)
		if err != nil {
			t.Fatal(err)
		}
		for i := range data {
			data[i] = 'x'
		}
		if f.Topic != "room:lobby" || f.Event != "i_moved" || string(f.Payload) != `{"position":[1,2,3]}` || f.Ref != StringRef("2") {
			t.Fatalf("%s: after the input changed: %+v %s", tc.frame, f, f.Payload)
		}
	}
}
