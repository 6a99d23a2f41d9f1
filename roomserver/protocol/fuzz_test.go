package protocol

import (
	"bytes"
	"testing"
)

// fuzzRoundTrip checks, for any input, that Decode never panics and that a frame it accepts
// survives Encode and Decode unchanged. V1's server-to-client frames leave join_ref out, so
// keepJoinRef is false for V1.
func fuzzRoundTrip(t *testing.T, v Version, data []byte, keepJoinRef bool) {
	f, err := Decode(v, data)
	if err != nil {
		return
	}
	enc := Encode(v, f).Bytes()
	back, err := Decode(v, enc)
	if err != nil {
		t.Fatalf("%s decoded, but its encoding %s does not: %v", data, enc, err)
	}
	want := f
	if !keepJoinRef {
		want.JoinRef = Ref{}
	}
	if back.JoinRef != want.JoinRef || back.Ref != want.Ref || back.Topic != want.Topic || back.Event != want.Event ||
		!bytes.Equal(back.Payload, want.Payload) {
		t.Fatalf("round trip of %s through %s gave {%v %v %q %q %s}, want {%v %v %q %q %s}", data, enc,
			back.JoinRef, back.Ref, back.Topic, back.Event, back.Payload,
			want.JoinRef, want.Ref, want.Topic, want.Event, want.Payload)
	}
}

// The seed corpora are in testdata/fuzz/FuzzDecodeV2 and testdata/fuzz/FuzzDecodeV1.

func FuzzDecodeV2(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, V2, data, true) })
}

func FuzzDecodeV1(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, V1, data, false) })
}
