package entity

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

var (
	encodeKeys = []string{"a", "b", "user-1", "user-10", "user-2", "", `q"uote`, `back\slash`, "<tag>", "a&b",
		"é", "ü", "\u2028", "\u2029", "\x00", "\x1f", "\n", "\x7f", "\xff", "\xc3(", "😀", "Z", "position"}
	encodeValues = []string{`null`, `1`, `-2.5e-3`, `true`, `"s"`, `"<&>"`, `"\u003c"`, `"\u2028"`, "\"\u2028\"",
		`[1,2,3]`, `[ 1, 2 ]`, "{\n\"a\": 1\n}", `{"x":"y"}`, `""`, `"é"`, `[0,0.7071,0,0.7071]`, ""}
)

func randomKey(r *rand.Rand) string {
	s := ""
	for range 1 + r.IntN(3) {
		s += encodeKeys[r.IntN(len(encodeKeys))]
	}
	return s
}

func randomEntities(r *rand.Rand) map[string]Components {
	if r.IntN(10) == 0 {
		return nil
	}
	m := map[string]Components{}
	for range r.IntN(12) {
		var c Components
		if r.IntN(10) != 0 {
			c = Components{}
			for range r.IntN(4) {
				v := encodeValues[r.IntN(len(encodeValues))]
				if v == "" {
					c[randomKey(r)] = nil
				} else {
					c[randomKey(r)] = json.RawMessage(v)
				}
			}
		}
		m[randomKey(r)] = c
	}
	return m
}

// The hand-written encoder must give exactly json.Marshal's bytes.
func TestAppendJSONMatchesMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for range 20000 {
		d := Diff{Creates: randomEntities(r), Updates: randomEntities(r), Deletes: randomEntities(r)}
		want, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("diff %v:\n got %s\nwant %s", d, got, want)
		}
		s := State(d.Updates)
		want, err = json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("state %v:\n got %s\nwant %s", s, got, want)
		}
	}
}

func benchDiff() Diff {
	d := NewDiff()
	for i := range 500 {
		d.Updates["user-"+string(rune('a'+i%26))+string(rune('a'+i/26))] = Components{
			"position": json.RawMessage(`[1.2345,-3.5,0.25]`), "rotation": json.RawMessage(`[0,0.7071,0,0.7071]`)}
	}
	return d
}

func BenchmarkEncodeDiff500(b *testing.B) {
	d := benchDiff()
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d.AppendJSON(nil)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
