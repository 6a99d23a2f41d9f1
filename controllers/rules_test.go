package controllers

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

var doorRule = xroomsv1alpha1.RoomRule{
	Event: "door_opened",
	When:  "!entity(payload.door_id).?locked.orValue(false)",
	Mutations: []xroomsv1alpha1.RoomRuleMutation{{
		Op: "update", Target: "payload.door_id", MustExist: true,
		Components: map[string]string{"open": "true", "opened_by": "user_id"},
	}},
}

// RulesValid follows spec.rules: True for valid rules (and for none), False with the
// compiler's error for a rule that does not compile, and the pod is never replaced for it.
func TestRulesValidCondition(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	r, _ := e.reconciler()
	c := e.client

	plain := runningRoom(t, e, r, ns, "plain")
	if got := condition(t, getRoom(t, c, plain), xroomsv1alpha1.ConditionRulesValid); got.Status != metav1.ConditionTrue ||
		got.Reason != ReasonRulesCompiled || got.Message != "no spec.rules: the built-in rules apply" {
		t.Errorf("RulesValid %+v for a room without rules", got)
	}

	room := runningRoom(t, e, r, ns, "doors", func(r *xroomsv1alpha1.Room) {
		r.Spec.Rules = []xroomsv1alpha1.RoomRule{doorRule, {Event: "user_moved", Disabled: true}}
	})
	want := func(status metav1.ConditionStatus, reason string, message ...string) {
		t.Helper()
		got := getRoom(t, c, room)
		cond := condition(t, got, xroomsv1alpha1.ConditionRulesValid)
		if cond.Status != status || cond.Reason != reason || cond.ObservedGeneration != got.Generation {
			t.Fatalf("RulesValid %+v, want %s %s at generation %d", cond, status, reason, got.Generation)
		}
		for _, m := range message {
			if !strings.Contains(cond.Message, m) {
				t.Errorf("RulesValid message %q does not say %q", cond.Message, m)
			}
		}
		if got.Status.Phase != xroomsv1alpha1.RoomRunning {
			t.Errorf("phase %s: rules must not stop the room", got.Status.Phase)
		}
	}
	want(metav1.ConditionTrue, ReasonRulesCompiled, "2 rules compiled over the built-in rules")
	pod := get[corev1.Pod](t, c, ns, "doors-room")

	for _, tc := range []struct {
		name    string
		mutate  func(*xroomsv1alpha1.RoomRule)
		message []string
	}{
		{"a syntax error", func(r *xroomsv1alpha1.RoomRule) { r.When = "payload.door_id ==" },
			[]string{"the room keeps its last good rules: rules[0] (door_opened): when:", "Syntax error"}},
		{"a type error", func(r *xroomsv1alpha1.RoomRule) { r.Mutations[0].Target = "payload.size() + 1" },
			[]string{"rules[0] (door_opened): mutations[0].target: payload.size() + 1 has type int, want string"}},
		{"an undeclared name", func(r *xroomsv1alpha1.RoomRule) { r.Mutations[0].Components["open"] = "door.open" },
			[]string{"rules[0] (door_opened): mutations[0].components.open:", "undeclared reference to 'door'"}},
		{"a cost over the limit", func(r *xroomsv1alpha1.RoomRule) {
			r.When = "payload.all(a, payload.all(b, payload.all(c, a + b + c != '')))"
		}, []string{"rules[0] (door_opened): when:", "more than the limit of 1000000"}},
	} {
		t.Run(tc.name+" sets RulesValid False", func(t *testing.T) {
			updateRoom(t, c, room, func(r *xroomsv1alpha1.Room) {
				bad := *doorRule.DeepCopy()
				tc.mutate(&bad)
				r.Spec.Rules = []xroomsv1alpha1.RoomRule{bad}
			})
			reconcile(t, r, room)
			want(metav1.ConditionFalse, ReasonInvalidRules, tc.message...)
			waitForEvent(t, c, room, corev1.EventTypeWarning, ReasonInvalidRules, tc.message[len(tc.message)-1])
			// Fixed again: True.
			updateRoom(t, c, room, func(r *xroomsv1alpha1.Room) { r.Spec.Rules = []xroomsv1alpha1.RoomRule{doorRule} })
			reconcile(t, r, room)
			want(metav1.ConditionTrue, ReasonRulesCompiled, "1 rules compiled")
		})
	}
	if got := get[corev1.Pod](t, c, ns, "doors-room"); got.UID != pod.UID || got.DeletionTimestamp != nil {
		t.Error("the pod was replaced for a change of rules")
	}
}

// The sample vault Room's rules are valid, as the controller judges them.
func TestSampleVaultRoomRulesAreValid(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	b, err := os.ReadFile(filepath.Join("..", "config", "samples", "xrooms_v1alpha1_room_vault.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	u := roomFromYAML(t, ns, string(b))
	if err := e.client.Create(context.Background(), u); err != nil {
		t.Fatalf("the sample is rejected: %v", err)
	}
	r, _ := e.reconciler()
	room := &xroomsv1alpha1.Room{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vault"}}
	reconcile(t, r, room)
	if cond := condition(t, getRoom(t, e.client, room), xroomsv1alpha1.ConditionRulesValid); cond.Status != metav1.ConditionTrue {
		t.Fatalf("RulesValid %+v", cond)
	}
}

// The API server checks the shape of rules itself; expressions are the controller's.
func TestInvalidRuleShapesAreRejected(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	for _, tc := range []struct{ name, rules, want string }{
		{"an unknown op", `[{event: e, mutations: [{op: upsert, target: user_id}]}]`, `Unsupported value: "upsert": supported values: "create", "update", "delete"`},
		{"a delete with components", `[{event: e, mutations: [{op: delete, target: user_id, components: {a: "1"}}]}]`, "a delete takes no components"},
		{"a disabled rule with mutations", `[{event: user_moved, disabled: true, mutations: [{op: delete, target: user_id}]}]`, "a disabled rule takes no when and no mutations"},
		{"two rules for one event", `[{event: e}, {event: e, disabled: true}]`, `Duplicate value: {"event":"e"}`},
		{"no target", `[{event: e, mutations: [{op: update}]}]`, "target: Required value"},
		{"an empty event", `[{event: ""}]`, "spec.rules[0].event in body should be at least 1 chars long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.client.Create(context.Background(), roomFromYAML(t, ns, "metadata: {name: a}\nspec:\n  rules: "+tc.rules))
			if !apierrors.IsInvalid(err) {
				t.Fatalf("create returned %v, want an Invalid error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err.Error(), tc.want)
			}
		})
	}
}
