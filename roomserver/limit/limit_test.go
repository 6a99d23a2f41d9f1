package limit

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestDepth(t *testing.T) {
	for in, want := range map[string]int{
		`1`: 0, `"[{"`: 0, `{}`: 1, `[1,2]`: 1, `{"a":[1,{"b":[]}]}`: 4, `[[[]],[]]`: 3,
		`"\"[["`: 0, `{"a":"}}}}","b":[[1]]}`: 3,
	} {
		if got := Depth([]byte(in)); got != want {
			t.Errorf("Depth(%s) = %d, want %d", in, got, want)
		}
	}
}

func TestCheckPayload(t *testing.T) {
	l := Payload{MaxBytes: 100, MaxComponentBytes: 20, MaxDepth: 3}
	fields := func(s string) (json.RawMessage, map[string]json.RawMessage) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		return json.RawMessage(s), m
	}
	tests := []struct {
		in   string
		want string // reason, or "" for ok
	}{
		{`{"position":[0,1,0],"hand":{"x":[1]}}`, ""},
		{`{"a":[[[1]]]}`, ReasonPayloadTooDeep},
		{`{"a":"` + strings.Repeat("x", 30) + `"}`, ReasonComponentTooLarge},
		{`{"a":1,"b":"` + strings.Repeat("x", 15) + `","c":"` + strings.Repeat("y", 15) + `","d":"` + strings.Repeat("z", 15) + `","e":"` + strings.Repeat("w", 15) + `","f":"` + strings.Repeat("v", 15) + `"}`, ReasonPayloadTooLarge},
	}
	for _, tt := range tests {
		raw, m := fields(tt.in)
		err := CheckPayload(l, raw, m)
		var le *Error
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.in, err)
		case tt.want != "" && (!errors.As(err, &le) || le.Reason != tt.want):
			t.Errorf("%s: got %v, want %s", tt.in, err, tt.want)
		}
	}
	if err := CheckPayload(Payload{}, []byte(`{"a":[[[[[[1]]]]]]}`), map[string]json.RawMessage{"a": json.RawMessage(`[[[[[[1]]]]]]`)}); err != nil {
		t.Errorf("zero limits refused: %v", err)
	}
	e := &Error{ReasonEntityLimit, "max-entities", 10}
	if got := string(e.Response()); got != `{"reason":"room_entity_limit","limit":"max-entities","max":10}` {
		t.Errorf("response %s", got)
	}
}

func TestEventsRefusesThenDisconnectsSustainedAbuse(t *testing.T) {
	e := NewEvents(10) // burst 20
	now := time.Unix(0, 0)
	for i := range 20 {
		if err, _ := e.Allow(now); err != nil {
			t.Fatalf("event %d of the burst refused: %v", i, err)
		}
	}
	err, abusive := e.Allow(now)
	var le *Error
	if !errors.As(err, &le) || le.Reason != ReasonRateLimited || le.Max != 10 || abusive {
		t.Fatalf("over the burst: %v, abusive %v", err, abusive)
	}
	// A client that slows down is forgiven: after a quiet second its run of refusals is over.
	now = now.Add(time.Second)
	if err, _ := e.Allow(now); err != nil {
		t.Fatal(err)
	}
	if !e.overSince.IsZero() {
		t.Fatal("the run of refusals did not end")
	}
	// One that pushes at twice the rate is disconnected after AbuseAfter.
	for i := 0; ; i++ {
		now = now.Add(50 * time.Millisecond)
		_, abusive := e.Allow(now)
		if abusive {
			if d := time.Duration(i) * 50 * time.Millisecond; d < AbuseAfter || d > AbuseAfter+2*time.Second {
				t.Fatalf("disconnected after %v", d)
			}
			break
		}
		if i > 1000 {
			t.Fatal("never disconnected")
		}
	}
	if err, _ := NewEvents(0).Allow(now); err != nil {
		t.Fatal("no limit refused")
	}
}

func TestConnectionsPerAddressAndBounded(t *testing.T) {
	c := NewConnections(5, 3) // burst 10
	now := time.Unix(0, 0)
	a := netip.MustParseAddr("10.0.0.1")
	for i := range 10 {
		if !c.Allow(a, now) {
			t.Fatalf("attempt %d refused", i)
		}
	}
	if c.Allow(a, now) {
		t.Fatal("11th attempt in one instant allowed")
	}
	if !c.Allow(netip.MustParseAddr("10.0.0.2"), now) {
		t.Fatal("another address refused")
	}
	if !c.Allow(netip.MustParseAddr("::ffff:10.0.0.3"), now) || c.Allow(a, now) {
		t.Fatal("addresses are not kept apart")
	}
	if !c.Allow(a, now.Add(time.Second)) {
		t.Fatal("not refilled after a second")
	}
	for i := range 100 {
		c.Allow(netip.AddrFrom4([4]byte{192, 168, 0, byte(i)}), now)
		if c.Len() > 3 {
			t.Fatalf("%d addresses kept, limit 3", c.Len())
		}
	}
	var none *Connections
	if !none.Allow(a, now) || NewConnections(0, 10) != nil {
		t.Fatal("no limit refused")
	}
}
