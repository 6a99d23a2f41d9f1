package event

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// quote must give exactly json.Marshal's bytes, escapes included.
func TestQuoteMatchesMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "0", "-", "_", " ", "~", "\x7f", "\"", "\\", "<", ">", "&", "\x00", "\x1f", "\n",
		"é", "\u2028", "\u2029", "\xff", "\xc3", "😀"}
	for range 100000 {
		s := ""
		for range r.IntN(12) {
			s += alphabet[r.IntN(len(alphabet))]
		}
		want, _ := json.Marshal(s)
		if got := quote(s); !bytes.Equal(got, want) {
			t.Fatalf("quote(%q) = %s, json.Marshal gives %s", s, got, want)
		}
	}
}

func FuzzQuote(f *testing.F) {
	f.Add("bob")
	f.Add("<a&b>\u2028")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := quote(s); !bytes.Equal(got, want) {
			t.Fatalf("quote(%q) = %s, json.Marshal gives %s", s, got, want)
		}
	})
}
