package entity

import (
	"encoding/json"
	"testing"
)

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func TestApplyDiffOrder(t *testing.T) {
	s := State{"a": {"x": raw("1")}, "b": {"x": raw("1")}}
	// b is both updated and deleted: deletes come last, so it is gone.
	s.ApplyDiff(Diff{
		Creates: map[string]Components{"c": {"y": raw("2")}},
		Updates: map[string]Components{"a": {"z": raw("3")}, "b": {"x": raw("9")}, "missing": {"x": raw("1")}},
		Deletes: map[string]Components{"b": {}},
	})
	want := State{"a": {"x": raw("1"), "z": raw("3")}, "c": {"y": raw("2")}}
	if !s.Equal(want) {
		t.Fatalf("got %v, want %v", s, want)
	}
}

func TestCreateReplacesAndUpdateOfMissingIsIgnored(t *testing.T) {
	s := State{"a": {"x": raw("1"), "y": raw("2")}}
	s.Apply(Mutation{Op: Create, ID: "a", Components: Components{"z": raw("3")}})
	s.Apply(Mutation{Op: Update, ID: "ghost", Components: Components{"z": raw("3")}})
	want := State{"a": {"z": raw("3")}}
	if !s.Equal(want) {
		t.Fatalf("got %v, want %v", s, want)
	}
}

func TestEmptyDiffEncodesAsObjects(t *testing.T) {
	b, err := json.Marshal(NewDiff())
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != `{"creates":{},"updates":{},"deletes":{}}` {
		t.Fatalf("got %s", got)
	}
}
