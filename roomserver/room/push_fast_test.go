package room

import (
	"bytes"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"testing"
)

// checkFromPushFast compares the paths on a payload, as FromPush gets it: valid JSON (a
// decoded frame's payload).
func checkFromPushFast(t *testing.T, user, name string, payload []byte) bool {
	t.Helper()
	if !json.Valid(payload) {
		return false
	}
	fast, ok := fromPushFast(user, name, payload)
	gen, err := fromPushGeneral(user, name, payload)
	if !ok {
		return false
	}
	if err != nil {
		t.Fatalf("%s %q: fast path gave %v, general path error %v", name, payload, fast, err)
	}
	if fast.Name != gen.Name || !maps.EqualFunc(fast.Payload, gen.Payload, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
		t.Fatalf("%s %q: fast path gave %s %q, general path %s %q", name, payload, fast.Name, fast.Payload, gen.Name, gen.Payload)
	}
	return true
}

var pushValues = []string{
	`null`, `1`, `-2.5e1`, `true`, `"s"`, `"a\"b"`, `"é"`, `"\u003c"`, `[1,2,3]`, `[0,0.7071,0,0.7071]`,
	`{}`, `{"x":[1,{"y":"}"}]}`, `""`, `"user_left"`, `"user_moved"`, `"phx_join"`, `"grab"`,
}

var pushKeys = []string{
	`"position"`, `"rotation"`, `"seq"`, `"user_id"`, `"event_name"`, `"payload"`, `"Event_Name"`, `"PAYLOAD"`,
	`"a\"b"`, `"\u0061"`, `"é"`, `""`,
}

func randomPushObject(r *rand.Rand, depth int) []byte {
	b := []byte{'{'}
	for i := range r.IntN(5) {
		if i > 0 {
			b = append(b, ',')
		}
		if r.IntN(4) == 0 {
			b = append(b, ' ')
		}
		b = append(b, pushKeys[r.IntN(len(pushKeys))]...)
		b = append(b, ':')
		if depth > 0 && r.IntN(3) == 0 {
			b = append(b, randomPushObject(r, depth-1)...)
		} else {
			b = append(b, pushValues[r.IntN(len(pushValues))]...)
		}
	}
	b = append(b, '}')
	switch r.IntN(10) {
	case 0:
		b[r.IntN(len(b))] = byte(r.IntN(256))
	case 1:
		b = []byte(pushValues[r.IntN(len(pushValues))])
	case 2:
		b = append([]byte("\n "), b...)
	}
	return b
}

func TestFromPushFastMatchesGeneral(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	names := []string{PushMoved, PushEvent, "grab", "user_left", "phx_x", ""}
	users := []string{"bob", `a"b<&>`, "é\u2028", ""}
	read := 0
	for range 200000 {
		name := names[r.IntN(len(names))]
		if checkFromPushFast(t, users[r.IntN(len(users))], name, randomPushObject(r, 2)) {
			read++
		}
	}
	if read < 10000 {
		t.Fatalf("the fast path read only %d pushes: the test is not testing it", read)
	}
}

func FuzzFromPushFast(f *testing.F) {
	f.Add("i_moved", []byte(`{"position":[1,2,3],"rotation":[0,0,0,1],"seq":1}`))
	f.Add("event", []byte(`{"event_name":"grab","payload":{"object_id":"shield"}}`))
	f.Add("event", []byte(`{"EVENT_NAME":"x","event_name":"grab"}`))
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		checkFromPushFast(t, "bob", name, payload)
	})
}

func BenchmarkFromPush(b *testing.B) {
	payload := json.RawMessage(`{"position":[1.2345,-3.5,0.25],"rotation":[0,0.7071,0,0.7071],"seq":123456}`)
	for _, c := range []struct {
		name string
		f    func(string, string, json.RawMessage) error
	}{
		{"fast", func(u, n string, p json.RawMessage) error { _, err := FromPush(u, n, p); return err }},
		{"general", func(u, n string, p json.RawMessage) error { _, err := fromPushGeneral(u, n, p); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.f("user-17", PushMoved, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
