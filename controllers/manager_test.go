package controllers

import (
	"context"
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

// TestManagerHealsRooms runs the controller in a manager, with the label-filtered cache the
// operator uses, and checks that watches bring it back to each Room whose objects change.
func TestManagerHealsRooms(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	c := e.client

	cacheOpts := CacheOptions()
	cacheOpts.DefaultNamespaces = map[string]cache.Config{ns: {}}
	mgr, err := ctrl.NewManager(e.cfg, ctrl.Options{
		Scheme:                 e.scheme,
		Cache:                  cacheOpts,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &RoomReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("xrooms-controller"), RoomServerImage: testImage}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager stopped with %v", err)
		}
	})

	room := newRoom(t, c, ns, "managed")
	podKey := types.NamespacedName{Namespace: ns, Name: "managed-room"}
	podUID := func() (types.UID, error) {
		pod := &corev1.Pod{}
		if err := c.Get(ctx, podKey, pod); err != nil {
			return "", err
		}
		if pod.DeletionTimestamp != nil {
			return "", errors.New("pod is terminating")
		}
		return pod.UID, nil
	}
	phase := func(want xroomsv1alpha1.RoomPhase) func() (bool, error) {
		return func() (bool, error) {
			got := &xroomsv1alpha1.Room{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(room), got); err != nil {
				return false, err
			}
			return got.Status.Phase == want, fmt.Errorf("phase %s", got.Status.Phase)
		}
	}

	waitFor(t, "the room's pod", func() (bool, error) { _, err := podUID(); return err == nil, err })
	waitFor(t, "the room to be Starting", phase(xroomsv1alpha1.RoomStarting))

	t.Run("a ready pod makes the room Running", func(t *testing.T) {
		setPodStatus(t, c, ns, "managed-room", podRunningAndReady)
		waitFor(t, "the room to be Running", phase(xroomsv1alpha1.RoomRunning))
	})
	t.Run("a deleted pod comes back", func(t *testing.T) {
		first, err := podUID()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(ctx, get[corev1.Pod](t, c, ns, "managed-room")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a new pod", func() (bool, error) {
			uid, err := podUID()
			return err == nil && uid != first, err
		})
		waitFor(t, "the room to be Starting again", phase(xroomsv1alpha1.RoomStarting))
	})
	t.Run("a deleted Service comes back", func(t *testing.T) {
		svc := get[corev1.Service](t, c, ns, "managed-room")
		if err := c.Delete(ctx, svc); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a new Service", func() (bool, error) {
			got := &corev1.Service{}
			err := c.Get(ctx, client.ObjectKeyFromObject(svc), got)
			return err == nil && got.UID != svc.UID, err
		})
	})
	t.Run("a pod stripped of its labels, and so out of the cache, gets them back", func(t *testing.T) {
		pod := get[corev1.Pod](t, c, ns, "managed-room")
		pod.Labels = nil
		if err := c.Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
		// Nothing the controller watches announces this pod any more; a Room change does.
		updateRoom(t, c, room, func(r *xroomsv1alpha1.Room) { r.Spec.MaxClients = ptr.To[int32](8) })
		waitFor(t, "the pod's labels", func() (bool, error) {
			got := &corev1.Pod{}
			if err := c.Get(ctx, podKey, got); err != nil {
				return false, err
			}
			return got.UID == pod.UID && got.Labels[LabelRoom] == "managed", fmt.Errorf("labels %v", got.Labels)
		})
	})
	t.Run("a Room being deleted in the foreground shows Terminating", func(t *testing.T) {
		// Foreground deletion keeps the Room until the garbage collector (not run by envtest)
		// has deleted its objects.
		if err := c.Delete(ctx, room, client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the room to be Terminating", phase(xroomsv1alpha1.RoomTerminating))
	})
}
