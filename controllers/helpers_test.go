package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

// newRoom creates a Room in ns; the API server defaults the spec.
func newRoom(t *testing.T, c client.Client, ns, name string, mutate ...func(*xroomsv1alpha1.Room)) *xroomsv1alpha1.Room {
	t.Helper()
	room := &xroomsv1alpha1.Room{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	for _, m := range mutate {
		m(room)
	}
	if err := c.Create(context.Background(), room); err != nil {
		t.Fatalf("failed to create Room %s: %v", name, err)
	}
	return room
}

// reconcile runs one pass over the Room and fails the test on an error.
func reconcile(t *testing.T, r *RoomReconciler, room *xroomsv1alpha1.Room) ctrl.Result {
	t.Helper()
	res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(room)})
	if err != nil {
		t.Fatalf("reconcile of Room %s failed: %v", room.Name, err)
	}
	return res
}

// getRoom reads the Room again.
func getRoom(t *testing.T, c client.Client, room *xroomsv1alpha1.Room) *xroomsv1alpha1.Room {
	t.Helper()
	got := &xroomsv1alpha1.Room{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(room), got); err != nil {
		t.Fatalf("failed to get Room %s: %v", room.Name, err)
	}
	return got
}

// updateRoom changes the Room's spec, retrying on conflicts.
func updateRoom(t *testing.T, c client.Client, room *xroomsv1alpha1.Room, mutate func(*xroomsv1alpha1.Room)) {
	t.Helper()
	for range 5 {
		got := getRoom(t, c, room)
		mutate(got)
		err := c.Update(context.Background(), got)
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "the object has been modified") {
			t.Fatalf("failed to update Room %s: %v", room.Name, err)
		}
	}
	t.Fatalf("failed to update Room %s: conflicts", room.Name)
}

// get reads an object of the Room by name.
func get[T any, PT interface {
	*T
	client.Object
}](t *testing.T, c client.Client, ns, name string) PT {
	t.Helper()
	obj := PT(new(T))
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatalf("failed to get %T %s/%s: %v", obj, ns, name, err)
	}
	return obj
}

// setPodStatus stands in for the kubelet, which envtest does not run.
func setPodStatus(t *testing.T, c client.Client, ns, name string, mutate func(*corev1.PodStatus)) *corev1.Pod {
	t.Helper()
	pod := get[corev1.Pod](t, c, ns, name)
	mutate(&pod.Status)
	if err := c.Status().Update(context.Background(), pod); err != nil {
		t.Fatalf("failed to set status of Pod %s: %v", name, err)
	}
	return pod
}

func podRunningAndReady(s *corev1.PodStatus) {
	now := metav1.Now()
	s.Phase = corev1.PodRunning
	s.PodIP = "10.1.2.3"
	s.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
}

func podNotReady(s *corev1.PodStatus) {
	s.Phase = corev1.PodRunning
	for i := range s.Conditions {
		if s.Conditions[i].Type == corev1.PodReady {
			s.Conditions[i].Status = corev1.ConditionFalse
		}
	}
}

// condition returns the Room's condition of type t, failing the test when it is missing.
func condition(t *testing.T, room *xroomsv1alpha1.Room, typ string) metav1.Condition {
	t.Helper()
	c := meta.FindStatusCondition(room.Status.Conditions, typ)
	if c == nil {
		t.Fatalf("Room %s has no %s condition: %+v", room.Name, typ, room.Status.Conditions)
	}
	return *c
}

// waitFor polls cond until it holds, for events and anything else that arrives asynchronously.
func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last error: %v)", what, lastErr)
}

// waitForEvent waits for an event about the Room with the given type and reason whose note
// contains text, and returns it.
func waitForEvent(t *testing.T, c client.Client, room *xroomsv1alpha1.Room, typ, reason, text string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	waitFor(t, fmt.Sprintf("a %s event %s about Room %s saying %q", typ, reason, room.Name, text), func() (bool, error) {
		list := &eventsv1.EventList{}
		if err := c.List(context.Background(), list, client.InNamespace(room.Namespace)); err != nil {
			return false, err
		}
		var seen []string
		for _, e := range list.Items {
			if e.Regarding.Kind == "Room" && e.Regarding.Name == room.Name && e.Type == typ && e.Reason == reason && strings.Contains(e.Note, text) {
				found = e
				return true, nil
			}
			seen = append(seen, e.Reason+": "+e.Note)
		}
		return false, fmt.Errorf("events so far: %q", seen)
	})
	return found
}

// writeCounter wraps a client and counts the writes made through it.
type writeCounter struct {
	mu     sync.Mutex
	writes []string
}

func (w *writeCounter) record(verb string, obj any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	name := ""
	if o, ok := obj.(client.Object); ok {
		name = o.GetName()
	}
	w.writes = append(w.writes, fmt.Sprintf("%s %T %s", verb, obj, name))
}

func (w *writeCounter) Writes() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.writes...)
}

// countingClient returns c wrapped so that every create, update, patch, delete and apply, of
// objects or their status, is counted before it goes through.
func countingClient(c client.WithWatch) (client.WithWatch, *writeCounter) {
	w := &writeCounter{}
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			w.record("create", obj)
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			w.record("update", obj)
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			w.record("patch", obj)
			return c.Patch(ctx, obj, patch, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			w.record("delete", obj)
			return c.Delete(ctx, obj, opts...)
		},
		DeleteAllOf: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteAllOfOption) error {
			w.record("deleteAllOf", obj)
			return c.DeleteAllOf(ctx, obj, opts...)
		},
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			w.record("apply", obj)
			return c.Apply(ctx, obj, opts...)
		},
		SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj, subObj client.Object, opts ...client.SubResourceCreateOption) error {
			w.record(sub+" create", obj)
			return c.SubResource(sub).Create(ctx, obj, subObj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			w.record(sub+" update", obj)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			w.record(sub+" patch", obj)
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
		SubResourceApply: func(ctx context.Context, c client.Client, sub string, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
			w.record(sub+" apply", obj)
			return c.SubResource(sub).Apply(ctx, obj, opts...)
		},
	}), w
}

// countingRecorder counts the events emitted through it.
type countingRecorder struct {
	events.EventRecorder
	mu    sync.Mutex
	notes []string
}

func (r *countingRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.mu.Lock()
	r.notes = append(r.notes, reason+": "+fmt.Sprintf(note, args...))
	r.mu.Unlock()
	r.EventRecorder.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

func (r *countingRecorder) Notes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.notes...)
}
