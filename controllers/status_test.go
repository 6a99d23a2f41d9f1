package controllers

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

func readyPod(room *xroomsv1alpha1.Room) *corev1.Pod {
	pod := podForRoom(room, testImage)
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	return pod
}

func pendingPod(room *xroomsv1alpha1.Room) *corev1.Pod {
	pod := podForRoom(room, testImage)
	pod.Status.Phase = corev1.PodPending
	return pod
}

func TestRoomStatusFor(t *testing.T) {
	now := metav1.NewTime(testClockStart)
	room := testRoom()
	hash := podSpecHash(room, testImage)
	svc := serviceForRoom(room)

	terminating := func(p *corev1.Pod) *corev1.Pod {
		p.DeletionTimestamp = &now
		return p
	}
	crashing := pendingPod(room)
	crashing.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name:                 "roomserver",
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 2}},
	}}
	unscheduled := pendingPod(room)
	unscheduled.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable"}}
	failed := pendingPod(room)
	failed.Status.Phase, failed.Status.Reason, failed.Status.Message = corev1.PodFailed, "Evicted", "The node was low on resource: memory."
	oldSpec := readyPod(room)
	oldSpec.Annotations[AnnotationPodSpecHash] = "old"
	replacement := pendingPod(room)
	replacement.Annotations[AnnotationReplaces] = "PodFailed: pod lobby-room failed (Evicted)"

	cases := []struct {
		name        string
		obs         observation
		phase       xroomsv1alpha1.RoomPhase
		ready       metav1.ConditionStatus
		readyReason string
		podReason   string
		svcReason   string
		message     string // a part of the Ready message
		endpoint    string
	}{
		{
			name:  "a ready pod behind a Service is Running and Ready",
			obs:   observation{pod: readyPod(room), service: svc},
			phase: xroomsv1alpha1.RoomRunning, ready: metav1.ConditionTrue, readyReason: ReasonRoomReady, podReason: ReasonPodReady, svcReason: ReasonServiceReady,
			message: "ws://lobby-room.games.svc:4000/socket", endpoint: "ws://lobby-room.games.svc:4000/socket",
		},
		{
			name:  "a pod that is not ready yet is Starting",
			obs:   observation{pod: pendingPod(room), service: svc},
			phase: xroomsv1alpha1.RoomStarting, ready: metav1.ConditionFalse, readyReason: ReasonPodNotReady, podReason: ReasonPodNotReady, svcReason: ReasonServiceReady,
			message: "waiting for pod lobby-room to pass its readiness probe", endpoint: "ws://lobby-room.games.svc:4000/socket",
		},
		{
			name:  "a crash-looping container is named with its last exit, without its back-off timer",
			obs:   observation{pod: crashing, service: svc},
			phase: xroomsv1alpha1.RoomStarting, ready: metav1.ConditionFalse, readyReason: ReasonPodNotReady, podReason: ReasonPodNotReady, svcReason: ReasonServiceReady,
			message: "container roomserver of pod lobby-room is waiting: CrashLoopBackOff (last exit: Error, code 2)", endpoint: "ws://lobby-room.games.svc:4000/socket",
		},
		{
			name:  "an unschedulable pod says so",
			obs:   observation{pod: unscheduled, service: svc},
			phase: xroomsv1alpha1.RoomStarting, ready: metav1.ConditionFalse, readyReason: ReasonPodNotReady, podReason: ReasonPodNotReady, svcReason: ReasonServiceReady,
			message: "pod lobby-room is not scheduled: Unschedulable", endpoint: "ws://lobby-room.games.svc:4000/socket",
		},
		{
			name:  "a replacement pod says why its predecessor went until it is ready",
			obs:   observation{pod: replacement, service: svc},
			phase: xroomsv1alpha1.RoomStarting, ready: metav1.ConditionFalse, readyReason: ReasonPodFailed, podReason: ReasonPodFailed, svcReason: ReasonServiceReady,
			message: "replaced the previous pod (pod lobby-room failed (Evicted))", endpoint: "ws://lobby-room.games.svc:4000/socket",
		},
		{
			name:  "a failed pod waiting to be deleted is reported as failed",
			obs:   observation{pod: terminating(failed), service: svc},
			phase: xroomsv1alpha1.RoomStarting, ready: metav1.ConditionFalse, readyReason: ReasonPodFailed, podReason: ReasonPodFailed, svcReason: ReasonServiceReady,
			message: "failed (Evicted: The node was low on resource: memory.)", endpoint: "ws://lobby-room.games.svc:4000/socket",
		},
		{
			name:  "an old pod terminating after a spec change is reported as replaced",
			obs:   observation{pod: terminating(oldSpec), service: svc},
			phase: xroomsv1alpha1.RoomStarting, ready: metav1.ConditionFalse, readyReason: ReasonPodReplaced, podReason: ReasonPodReplaced, svcReason: ReasonServiceReady,
			message: "waiting for the old pod lobby-room to terminate", endpoint: "ws://lobby-room.games.svc:4000/socket",
		},
		{
			name:  "a pod deleted by someone else is terminating",
			obs:   observation{pod: terminating(readyPod(room)), service: svc},
			phase: xroomsv1alpha1.RoomStarting, ready: metav1.ConditionFalse, readyReason: ReasonPodTerminating, podReason: ReasonPodTerminating, svcReason: ReasonServiceReady,
			message: "a new pod will replace it", endpoint: "ws://lobby-room.games.svc:4000/socket",
		},
		{
			name:  "a ready pod without its Service is Running but not Ready",
			obs:   observation{pod: readyPod(room)},
			phase: xroomsv1alpha1.RoomRunning, ready: metav1.ConditionFalse, readyReason: ReasonServiceNotCreated, podReason: ReasonPodReady, svcReason: ReasonServiceNotCreated,
			message: "the Service has not been created yet",
		},
		{
			name:  "a pod name taken by a foreign pod fails the room",
			obs:   observation{podIssue: &issue{reason: ReasonPodNameConflict, message: "Pod lobby-room already exists", needsChange: true}, service: svc},
			phase: xroomsv1alpha1.RoomFailed, ready: metav1.ConditionFalse, readyReason: ReasonPodNameConflict, podReason: ReasonPodNameConflict, svcReason: ReasonServiceReady,
			message: "Pod lobby-room already exists", endpoint: "ws://lobby-room.games.svc:4000/socket",
		},
		{
			name:  "a missing prerequisite keeps the room without a pod and says why",
			obs:   observation{blocked: &issue{reason: ReasonNameConflict, message: "ServiceAccount lobby-room already exists", needsChange: true}, service: svc},
			phase: xroomsv1alpha1.RoomFailed, ready: metav1.ConditionFalse, readyReason: ReasonNameConflict, podReason: ReasonNameConflict, svcReason: ReasonServiceReady,
			message: "ServiceAccount lobby-room already exists", endpoint: "ws://lobby-room.games.svc:4000/socket",
		},
		{
			name:  "a Service name taken by a foreign Service fails the room",
			obs:   observation{pod: readyPod(room), serviceIssue: &issue{reason: ReasonServiceNameConflict, message: "Service lobby-room already exists", needsChange: true}},
			phase: xroomsv1alpha1.RoomFailed, ready: metav1.ConditionFalse, readyReason: ReasonServiceNameConflict, podReason: ReasonPodReady, svcReason: ReasonServiceNameConflict,
			message: "Service lobby-room already exists",
		},
		{
			name:  "a room being deleted is Terminating",
			obs:   observation{deleting: true},
			phase: xroomsv1alpha1.RoomTerminating, ready: metav1.ConditionFalse, readyReason: ReasonTerminating, podReason: ReasonTerminating, svcReason: ReasonTerminating,
			message: "being deleted",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.obs.podHash = hash
			st := roomStatusFor(room, tc.obs, now)
			if st.Phase != tc.phase {
				t.Errorf("phase %s, want %s", st.Phase, tc.phase)
			}
			if st.Endpoint != tc.endpoint {
				t.Errorf("endpoint %q, want %q", st.Endpoint, tc.endpoint)
			}
			if st.ObservedGeneration != room.Generation {
				t.Errorf("observedGeneration %d, want %d", st.ObservedGeneration, room.Generation)
			}
			ready := meta.FindStatusCondition(st.Conditions, xroomsv1alpha1.ConditionReady)
			pod := meta.FindStatusCondition(st.Conditions, xroomsv1alpha1.ConditionPodReady)
			svc := meta.FindStatusCondition(st.Conditions, xroomsv1alpha1.ConditionServiceReady)
			if ready == nil || pod == nil || svc == nil || len(st.Conditions) != len(controllerConditionTypes) {
				t.Fatalf("conditions %+v, want Ready, PodReady and ServiceReady", st.Conditions)
			}
			if ready.Status != tc.ready || ready.Reason != tc.readyReason || !strings.Contains(ready.Message, tc.message) {
				t.Errorf("Ready is %s/%s %q, want %s/%s containing %q", ready.Status, ready.Reason, ready.Message, tc.ready, tc.readyReason, tc.message)
			}
			if pod.Reason != tc.podReason || svc.Reason != tc.svcReason {
				t.Errorf("PodReady reason %s, ServiceReady reason %s; want %s and %s", pod.Reason, svc.Reason, tc.podReason, tc.svcReason)
			}
			for _, c := range st.Conditions {
				if c.ObservedGeneration != room.Generation || !c.LastTransitionTime.Equal(&now) {
					t.Errorf("condition %s has observedGeneration %d and lastTransitionTime %v, want %d and %v", c.Type, c.ObservedGeneration, c.LastTransitionTime, room.Generation, now)
				}
			}
		})
	}
}

func TestRoomStatusForKeepsTransitionTimes(t *testing.T) {
	room := testRoom()
	obs := observation{pod: pendingPod(room), service: serviceForRoom(room), podHash: podSpecHash(room, testImage)}
	first := metav1.NewTime(testClockStart)
	room.Status = roomStatusFor(room, obs, first)

	later := metav1.NewTime(testClockStart.Add(time.Minute))
	t.Run("an unchanged observation changes nothing, so nothing is written", func(t *testing.T) {
		again := roomStatusFor(room, obs, later)
		if !controllerStatusEqual(&room.Status, &again) {
			t.Errorf("status changed without a change:\n%+v\n%+v", room.Status, again)
		}
	})
	t.Run("a condition that changes status moves its transition time; the others keep theirs", func(t *testing.T) {
		obs := obs
		obs.pod = readyPod(room)
		next := roomStatusFor(room, obs, later)
		if controllerStatusEqual(&room.Status, &next) {
			t.Fatal("status did not change when the pod became ready")
		}
		if c := meta.FindStatusCondition(next.Conditions, xroomsv1alpha1.ConditionPodReady); !c.LastTransitionTime.Equal(&later) {
			t.Errorf("PodReady moved at %v, want %v", c.LastTransitionTime, later)
		}
		if c := meta.FindStatusCondition(next.Conditions, xroomsv1alpha1.ConditionServiceReady); !c.LastTransitionTime.Equal(&first) {
			t.Errorf("ServiceReady moved at %v, want it kept at %v", c.LastTransitionTime, first)
		}
	})
	t.Run("conditions of other writers are left out of the controller's status", func(t *testing.T) {
		room := room.DeepCopy()
		room.Status.Conditions = append(room.Status.Conditions, metav1.Condition{Type: "StoreReady", Status: metav1.ConditionTrue, Reason: "Loaded"})
		st := roomStatusFor(room, obs, later)
		if meta.FindStatusCondition(st.Conditions, "StoreReady") != nil {
			t.Errorf("the controller would write the room server's condition: %+v", st.Conditions)
		}
	})
}

func TestEndpointFor(t *testing.T) {
	room := testRoom()
	lb := serviceForRoom(testRoom(func(r *xroomsv1alpha1.Room) { r.Spec.Service.Type = corev1.ServiceTypeLoadBalancer }))
	lbIP := lb.DeepCopy()
	lbIP.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}
	lbHost := lb.DeepCopy()
	lbHost.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: "rooms.example.com"}}
	lbIPv6 := lb.DeepCopy()
	lbIPv6.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "2001:db8::7"}}
	cases := []struct {
		name string
		svc  *corev1.Service
		want string
	}{
		{name: "no Service, no endpoint", svc: nil, want: ""},
		{name: "ClusterIP uses the cluster DNS name", svc: serviceForRoom(room), want: "ws://lobby-room.games.svc:4000/socket"},
		{name: "a LoadBalancer without an address uses the cluster DNS name", svc: lb, want: "ws://lobby-room.games.svc:4000/socket"},
		{name: "a LoadBalancer IP", svc: lbIP, want: "ws://203.0.113.7:4000/socket"},
		{name: "a LoadBalancer hostname", svc: lbHost, want: "ws://rooms.example.com:4000/socket"},
		{name: "a LoadBalancer IPv6 address is bracketed", svc: lbIPv6, want: "ws://[2001:db8::7]:4000/socket"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := endpointFor(room, tc.svc); got != tc.want {
				t.Errorf("endpoint %q, want %q", got, tc.want)
			}
		})
	}
}
