package controllers

import (
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
	"github.com/xrooms/xrooms/roomserver/kube"
)

// Reasons of the RulesValid condition.
const (
	// ReasonRulesCompiled (RulesValid True): spec.rules compile; the room server applies them.
	ReasonRulesCompiled = "RulesCompiled"
	// ReasonInvalidRules (RulesValid False): a rule does not compile or type-check; the room
	// keeps its last good rules.
	ReasonInvalidRules = "InvalidRules"
)

// maxRulesMessage keeps a condition message about many bad rules readable (and well under the
// API's 32 KiB limit).
const maxRulesMessage = 4096

// maxEventNote keeps the event's note under the API's 1 KiB limit; the condition has the rest.
const maxEventNote = 1000

// rulesValidCondition compiles spec.rules with the room server's own compiler, so what the
// condition says is what the room server does.
func rulesValidCondition(room *xroomsv1alpha1.Room) metav1.Condition {
	c := metav1.Condition{Type: xroomsv1alpha1.ConditionRulesValid, Status: metav1.ConditionTrue, Reason: ReasonRulesCompiled}
	if len(room.Spec.Rules) == 0 {
		c.Message = "no spec.rules: the built-in rules apply"
		return c
	}
	if err := compileRules(room); err != nil {
		msg := err.Error()
		if len(msg) > maxRulesMessage {
			msg = strings.ToValidUTF8(msg[:maxRulesMessage], "") + "..."
		}
		c.Status, c.Reason = metav1.ConditionFalse, ReasonInvalidRules
		c.Message = "the room keeps its last good rules: " + msg
		return c
	}
	c.Message = fmt.Sprintf("%d rules compiled over the built-in rules", len(room.Spec.Rules))
	return c
}

// recordInvalidRules emits a Warning event when the rules become invalid, or fail with another
// error, so `kubectl describe` and event watchers see it next to the condition.
func (r *RoomReconciler) recordInvalidRules(room *xroomsv1alpha1.Room, was, now []metav1.Condition) {
	before, after := findCondition(was, xroomsv1alpha1.ConditionRulesValid), findCondition(now, xroomsv1alpha1.ConditionRulesValid)
	if after.Status == metav1.ConditionFalse && (before.Status != metav1.ConditionFalse || before.Message != after.Message) {
		note := after.Message
		if len(note) > maxEventNote {
			note = strings.ToValidUTF8(note[:maxEventNote], "") + "..."
		}
		r.Recorder.Eventf(room, nil, corev1.EventTypeWarning, ReasonInvalidRules, "CompileRules", "%s", note)
	}
}

// compiled remembers the outcome of compiling each Room's rules by generation: a compile takes
// milliseconds, and the controller computes the status on every pass (the room server's own
// status reports trigger passes), while the spec, and so the rules, change far less often.
var compiled struct {
	sync.Mutex
	results map[types.UID]compileResult
}

type compileResult struct {
	generation int64
	err        error
}

// maxCompiled bounds the cache; when full it starts over (deleted Rooms leave entries behind).
const maxCompiled = 4096

func compileRules(room *xroomsv1alpha1.Room) error {
	if room.UID == "" { // not from the API server: nothing identifies its spec
		_, err := kube.CompileRules(room)
		return err
	}
	compiled.Lock()
	r, ok := compiled.results[room.UID]
	compiled.Unlock()
	if ok && r.generation == room.Generation {
		return r.err
	}
	_, err := kube.CompileRules(room)
	compiled.Lock()
	defer compiled.Unlock()
	if compiled.results == nil || len(compiled.results) >= maxCompiled {
		compiled.results = map[types.UID]compileResult{}
	}
	compiled.results[room.UID] = compileResult{generation: room.Generation, err: err}
	return err
}
