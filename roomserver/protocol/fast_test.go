package protocol

import (
	"bytes"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"testing"
)

// checkFastV2 checks that whenever decodeV2Fast reads data, the general decoder reads the
// same frame and accepts or refuses it alike.
func checkFastV2(t *testing.T, data []byte) {
	t.Helper()
	fast, ok := decodeV2Fast(data)
	gen, genErr := decodeGeneral(V2, data)
	if !ok {
		return
	}
	if fastErr := check(fast); (fastErr == nil) != (genErr == nil) {
		t.Fatalf("%q: fast path error %v, general path error %v", data, fastErr, genErr)
	}
	if genErr != nil && !json.Valid(data) {
		t.Fatalf("%q: fast path read invalid JSON", data)
	}
	if fast.JoinRef != gen.JoinRef || fast.Ref != gen.Ref || fast.Topic != gen.Topic || fast.Event != gen.Event ||
		!bytes.Equal(fast.Payload, gen.Payload) {
		t.Fatalf("%q: fast path gave {%v %v %q %q %s}, general path {%v %v %q %q %s}", data,
			fast.JoinRef, fast.Ref, fast.Topic, fast.Event, fast.Payload,
			gen.JoinRef, gen.Ref, gen.Topic, gen.Event, gen.Payload)
	}
}

// checkSplit checks SplitObject against json.Unmarshal into a map of raw values.
func checkSplit(t *testing.T, raw []byte) {
	t.Helper()
	got, ok := SplitObject(raw)
	if !ok {
		return
	}
	var want map[string]json.RawMessage
	if err := json.Unmarshal(raw, &want); err != nil || want == nil {
		t.Fatalf("%q: SplitObject read it, json.Unmarshal: %v (map nil: %v)", raw, err, want == nil)
	}
	if !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
		t.Fatalf("%q: SplitObject gave %q, json.Unmarshal %q", raw, got, want)
	}
}

var hostilePieces = []string{
	`null`, `"1"`, `"a\"b"`, `"\u0041"`, `"é"`, `"<&>"`, `""`, `"room:lobby"`, `"i_moved"`, `"event"`,
	`1`, `-0.5e3`, `true`, `false`, `[]`, `{}`, `[1,[2,{"a":"]"}]]`, `{"a":{"b":"}"}}`, ` `, "\t", "\n",
	`"\\"`, `"\ud800"`, "\"\xff\"", `{"position":[1,2,3],"rotation":[0,0,0,1],"seq":7}`,
	`{"a":1,"a":2}`, `{"user_id":"x"}`, `{"event_name":"e","payload":{"k":null}}`, `{"\u0061":1}`,
	`{"é":1}`, `{ "a" : [ 1 , 2 ] , "b" : "c" }`, `,`, `[`, `]`, `{`, `}`, `:`,
}

func randomPiece(r *rand.Rand) string {
	return hostilePieces[r.IntN(len(hostilePieces))]
}

// randomFrame returns a V2 frame, often well formed, often damaged.
func randomFrame(r *rand.Rand) []byte {
	n := 5
	if r.IntN(8) == 0 {
		n = r.IntN(7)
	}
	b := []byte{}
	if r.IntN(4) == 0 {
		b = append(b, randomPiece(r)...)
	}
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		if r.IntN(3) == 0 {
			b = append(b, ' ')
		}
		switch {
		case r.IntN(3) == 0:
			b = append(b, randomPiece(r)...)
		case i < 2:
			b = append(b, []string{`null`, `"1"`, `"a\"b"`, `"é"`, `""`, `"<&>"`}[r.IntN(6)]...)
		case i < 4:
			b = append(b, []string{`"room:lobby"`, `"i_moved"`, `"\u0041"`, `"é"`, `""`, `"phoenix"`}[r.IntN(6)]...)
		default:
			b = append(b, randomObject(r)...)
		}
		if r.IntN(3) == 0 {
			b = append(b, '\n')
		}
	}
	b = append(b, ']')
	if r.IntN(6) == 0 {
		b = append(b, randomPiece(r)...)
	}
	if r.IntN(6) == 0 && len(b) > 0 { // cut or flip a byte
		i := r.IntN(len(b))
		if r.IntN(2) == 0 {
			b = b[:i]
		} else {
			b[i] = byte(r.IntN(256))
		}
	}
	return b
}

func randomObject(r *rand.Rand) []byte {
	b := []byte{'{'}
	for i := range r.IntN(5) {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, []string{`"a"`, `"b"`, `"a\"b"`, `"\u0061"`, `"é"`, `"user_id"`, `"A"`}[r.IntN(7)]...)
		b = append(b, " :"[r.IntN(2):]...)
		b = append(b, randomPiece(r)...)
	}
	b = append(b, '}')
	if r.IntN(8) == 0 {
		b[r.IntN(len(b))] = byte(r.IntN(256))
	}
	return b
}

func TestDecodeV2FastMatchesGeneral(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	read := 0
	for range 200000 {
		data := randomFrame(r)
		if _, ok := decodeV2Fast(data); ok {
			read++
		}
		checkFastV2(t, data)
	}
	if read < 1000 {
		t.Fatalf("the fast path read only %d frames: the test is not testing it", read)
	}
}

func TestSplitObjectMatchesUnmarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	read := 0
	for range 200000 {
		raw := randomObject(r)
		if _, ok := SplitObject(raw); ok {
			read++
		}
		checkSplit(t, raw)
	}
	if read < 1000 {
		t.Fatalf("SplitObject read only %d objects: the test is not testing it", read)
	}
}

func FuzzDecodeV2Fast(f *testing.F) {
	for _, p := range hostilePieces {
		f.Add([]byte(`[null,"1","room:lobby","i_moved",` + p + `]`))
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastV2(t, data)
		checkSplit(t, data)
	})
}

func BenchmarkDecodeV2(b *testing.B) {
	data := []byte(`["3","17","room:lobby","i_moved",{"position":[1.2345,-3.5,0.25],"rotation":[0,0.7071,0,0.7071],"seq":123456}]`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Decode(V2, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("general", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeGeneral(V2, data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestPrepare(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for range 1000 {
		f := Frame{Topic: "room:lobby", Event: "entities_diff", Payload: randomObject(r)}
		for _, v := range Versions {
			e := Encode(v, f)
			p := e.Prepare()
			if p.Prepared == nil {
				t.Fatal("Prepare gave no prepared message")
			}
			if !bytes.Equal(p.Bytes(), e.Bytes()) || p.Len() != e.Len() {
				t.Fatalf("prepared frame %q, want %q", p.Bytes(), e.Bytes())
			}
		}
	}
}
