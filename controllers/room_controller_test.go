package controllers

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

// sceneEntities is a small scene: a floor, a box and a spawn point.
var sceneEntities = map[string]runtime.RawExtension{
	"floor": {Raw: []byte(`{"shape":"plane","position":[0,0,0],"scale":[20,1,20],"color":"#7a7a7a"}`)},
	"box-1": {Raw: []byte(`{"shape":"box","position":[1,0.5,-2],"color":"#e63946"}`)},
	"spawn": {Raw: []byte(`{"spawn":true,"position":[0,0,4],"rotation":[0,180,0]}`)},
}

func TestRoomCreatesItsObjects(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	r, clk := e.reconciler()
	c := e.client
	room := newRoom(t, c, ns, "lobby", func(r *xroomsv1alpha1.Room) { r.Spec.InitialEntities = sceneEntities })

	start := time.Now()
	res := reconcile(t, r, room)
	t.Logf("one reconcile of a new Room (ServiceAccount, Role, RoleBinding, ConfigMap, Pod, Service, status) took %s", time.Since(start))
	if res.RequeueAfter != 0 {
		t.Errorf("a healthy new room asked for a requeue after %s", res.RequeueAfter)
	}

	room = getRoom(t, c, room)
	t.Run("the pod runs the room server with the room's identity", func(t *testing.T) {
		pod := get[corev1.Pod](t, c, ns, "lobby-room")
		assertControlledByRoom(t, pod, room)
		want := podForRoom(room, testImage)
		if pod.Spec.Containers[0].Image != testImage || pod.Spec.ServiceAccountName != "lobby-room" {
			t.Errorf("pod runs %s as %s, want %s as lobby-room", pod.Spec.Containers[0].Image, pod.Spec.ServiceAccountName, testImage)
		}
		if pod.Annotations[AnnotationPodSpecHash] != want.Annotations[AnnotationPodSpecHash] {
			t.Errorf("pod-spec-hash %q, want %q", pod.Annotations[AnnotationPodSpecHash], want.Annotations[AnnotationPodSpecHash])
		}
		env := envOf(pod.Spec.Containers[0])
		if env["XROOMS_ROOM"] != "lobby" || env["XROOMS_NAMESPACE"] != ns || env["XROOMS_SYNC_INTERVAL"] != "200ms" || env["XROOMS_LISTEN"] != ":4000" {
			t.Errorf("env %v does not carry the room's identity and defaults", env)
		}
		sc := pod.Spec.Containers[0].SecurityContext
		if !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) {
			t.Errorf("security context %+v did not survive the API server", sc)
		}
	})
	t.Run("the Service selects the pod's labels", func(t *testing.T) {
		svc := get[corev1.Service](t, c, ns, "lobby-room")
		pod := get[corev1.Pod](t, c, ns, "lobby-room")
		assertControlledByRoom(t, svc, room)
		if svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Spec.Ports[0].Port != 4000 || svc.Spec.ClusterIP == "" {
			t.Errorf("Service %+v, want ClusterIP on 4000 with an allocated IP", svc.Spec)
		}
		for k, v := range svc.Spec.Selector {
			if pod.Labels[k] != v {
				t.Errorf("the Service selects %s=%s, the pod has %q", k, v, pod.Labels[k])
			}
		}
	})
	t.Run("the room's identity may read its Room and write its status", func(t *testing.T) {
		sa := get[corev1.ServiceAccount](t, c, ns, "lobby-room")
		role := get[rbacv1.Role](t, c, ns, "lobby-room")
		binding := get[rbacv1.RoleBinding](t, c, ns, "lobby-room")
		for _, obj := range []metav1.Object{sa, role, binding} {
			assertControlledByRoom(t, obj, room)
		}
		if role.Rules[0].ResourceNames[0] != "lobby" || binding.Subjects[0].Name != "lobby-room" {
			t.Errorf("role %+v and binding %+v do not scope the room", role.Rules, binding.Subjects)
		}
	})
	t.Run("the ConfigMap carries the initial entities", func(t *testing.T) {
		cm := get[corev1.ConfigMap](t, c, ns, "lobby-entities")
		assertControlledByRoom(t, cm, room)
		var got map[string]map[string]any
		if err := json.Unmarshal([]byte(cm.Data["initial-entities.json"]), &got); err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got["floor"]["shape"] != "plane" || got["spawn"]["spawn"] != true {
			t.Errorf("initial entities %v, want the floor, the box and the spawn point", got)
		}
	})
	t.Run("the status says the room is starting and where to connect", func(t *testing.T) {
		if room.Status.Phase != xroomsv1alpha1.RoomStarting {
			t.Errorf("phase %s, want Starting", room.Status.Phase)
		}
		if want := "ws://lobby-room." + ns + ".svc:4000/socket"; room.Status.Endpoint != want {
			t.Errorf("endpoint %q, want %q", room.Status.Endpoint, want)
		}
		if room.Status.PodName != "lobby-room" || room.Status.ServiceName != "lobby-room" || room.Status.ObservedGeneration != room.Generation {
			t.Errorf("status %+v does not name the pod, the Service and the generation", room.Status)
		}
		if c := condition(t, room, xroomsv1alpha1.ConditionReady); c.Status != metav1.ConditionFalse || c.Reason != ReasonPodNotReady || c.ObservedGeneration != room.Generation {
			t.Errorf("Ready %+v, want False/PodNotReady at generation %d", c, room.Generation)
		}
		if c := condition(t, room, xroomsv1alpha1.ConditionServiceReady); c.Status != metav1.ConditionTrue {
			t.Errorf("ServiceReady %+v, want True", c)
		}
	})

	t.Run("a ready pod makes the room Running and Ready", func(t *testing.T) {
		setPodStatus(t, c, ns, "lobby-room", podRunningAndReady)
		clk.SetTime(testClockStart.Add(time.Minute))
		reconcile(t, r, room)
		room := getRoom(t, c, room)
		if room.Status.Phase != xroomsv1alpha1.RoomRunning {
			t.Errorf("phase %s, want Running", room.Status.Phase)
		}
		ready := condition(t, room, xroomsv1alpha1.ConditionReady)
		if ready.Status != metav1.ConditionTrue || ready.Reason != ReasonRoomReady || !ready.LastTransitionTime.Time.Equal(testClockStart.Add(time.Minute)) {
			t.Errorf("Ready %+v, want True/RoomReady since the clock's minute", ready)
		}
		if svc := condition(t, room, xroomsv1alpha1.ConditionServiceReady); !svc.LastTransitionTime.Time.Equal(testClockStart) {
			t.Errorf("ServiceReady moved to %v without changing status", svc.LastTransitionTime)
		}
	})
	t.Run("events tell the story", func(t *testing.T) {
		waitForEvent(t, c, room, corev1.EventTypeNormal, EventCreated, "Created Pod lobby-room")
		waitForEvent(t, c, room, corev1.EventTypeNormal, EventCreated, "Created Service lobby-room")
		waitForEvent(t, c, room, corev1.EventTypeNormal, string(xroomsv1alpha1.RoomRunning), "clients can connect at ws://lobby-room.")
	})
}

// runningRoom creates a Room and reconciles it until its pod is ready.
func runningRoom(t *testing.T, e *testEnv, r *RoomReconciler, ns, name string, mutate ...func(*xroomsv1alpha1.Room)) *xroomsv1alpha1.Room {
	t.Helper()
	room := newRoom(t, e.client, ns, name, mutate...)
	reconcile(t, r, room)
	setPodStatus(t, e.client, ns, name+"-room", podRunningAndReady)
	reconcile(t, r, room)
	room = getRoom(t, e.client, room)
	if room.Status.Phase != xroomsv1alpha1.RoomRunning {
		t.Fatalf("Room %s is %s, want Running: %+v", name, room.Status.Phase, room.Status.Conditions)
	}
	return room
}

func TestIdleReconcileMakesNoWrites(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	r, _ := e.reconciler()
	room := runningRoom(t, e, r, ns, "idle", func(r *xroomsv1alpha1.Room) {
		r.Spec.InitialEntities = sceneEntities
		r.Spec.Persistence.Type = xroomsv1alpha1.PersistenceVolume
		r.Spec.Service.Type = corev1.ServiceTypeNodePort
		r.Spec.Service.Annotations = map[string]string{"example.com/lb": "internal"}
		r.Spec.Labels = map[string]string{"team": "xr"}
	})

	counted, writes := countingClient(e.client)
	recorder := &countingRecorder{EventRecorder: e.recorder}
	r.Client, r.APIReader, r.Recorder = counted, counted, recorder
	for range 3 {
		if res := reconcile(t, r, room); res.RequeueAfter != 0 {
			t.Errorf("an idle room asked for a requeue after %s", res.RequeueAfter)
		}
	}
	t.Logf("API writes in three idle reconciles: %d", len(writes.Writes()))
	if w := writes.Writes(); len(w) != 0 {
		t.Errorf("idle reconciles wrote to the API server: %v", w)
	}
	if n := recorder.Notes(); len(n) != 0 {
		t.Errorf("idle reconciles emitted events: %v", n)
	}

	t.Run("the write counter sees writes", func(t *testing.T) {
		// Without this the assertion above could pass on a counter that counts nothing.
		setPodStatus(t, e.client, ns, "idle-room", podNotReady)
		reconcile(t, r, room)
		if w := writes.Writes(); len(w) != 1 || !strings.HasPrefix(w[0], "status apply") {
			t.Errorf("a pod that stopped being ready gave writes %v, want one status apply", w)
		}
	})
}

func TestDeletedObjectsAreRecreated(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	r, _ := e.reconciler()
	c := e.client
	room := runningRoom(t, e, r, ns, "heal")
	ctx := context.Background()

	t.Run("a deleted pod is recreated", func(t *testing.T) {
		old := get[corev1.Pod](t, c, ns, "heal-room")
		if err := c.Delete(ctx, old); err != nil {
			t.Fatal(err)
		}
		reconcile(t, r, room)
		pod := get[corev1.Pod](t, c, ns, "heal-room")
		if pod.UID == old.UID {
			t.Fatal("the pod was not recreated")
		}
		assertControlledByRoom(t, pod, room)
		if got := getRoom(t, c, room); got.Status.Phase != xroomsv1alpha1.RoomStarting {
			t.Errorf("phase %s with a new unready pod, want Starting", got.Status.Phase)
		}
	})
	t.Run("a deleted Service is recreated", func(t *testing.T) {
		old := get[corev1.Service](t, c, ns, "heal-room")
		if err := c.Delete(ctx, old); err != nil {
			t.Fatal(err)
		}
		reconcile(t, r, room)
		if svc := get[corev1.Service](t, c, ns, "heal-room"); svc.UID == old.UID {
			t.Fatal("the Service was not recreated")
		}
	})
	t.Run("deleted RBAC and ConfigMap are recreated", func(t *testing.T) {
		for _, obj := range []client.Object{
			get[corev1.ServiceAccount](t, c, ns, "heal-room"),
			get[rbacv1.Role](t, c, ns, "heal-room"),
			get[rbacv1.RoleBinding](t, c, ns, "heal-room"),
			get[corev1.ConfigMap](t, c, ns, "heal-entities"),
		} {
			if err := c.Delete(ctx, obj); err != nil {
				t.Fatal(err)
			}
		}
		reconcile(t, r, room)
		get[corev1.ServiceAccount](t, c, ns, "heal-room")
		get[rbacv1.Role](t, c, ns, "heal-room")
		get[rbacv1.RoleBinding](t, c, ns, "heal-room")
		get[corev1.ConfigMap](t, c, ns, "heal-entities")
	})
	t.Run("a Service edited by hand returns to the spec and keeps its identity", func(t *testing.T) {
		svc := get[corev1.Service](t, c, ns, "heal-room")
		svc.Spec.Ports[0].Port = 9999
		svc.Spec.Selector = map[string]string{"app": "elsewhere"}
		if err := c.Update(ctx, svc); err != nil {
			t.Fatal(err)
		}
		reconcile(t, r, room)
		got := get[corev1.Service](t, c, ns, "heal-room")
		if got.UID != svc.UID || got.Spec.Ports[0].Port != 4000 || got.Spec.Selector[LabelRoom] != "heal" || got.Spec.Selector["app"] != "" {
			t.Errorf("Service %+v was not restored in place", got.Spec)
		}
	})
	t.Run("a Role edited by hand returns to the spec", func(t *testing.T) {
		role := get[rbacv1.Role](t, c, ns, "heal-room")
		role.Rules[0].ResourceNames = []string{"heal", "someone-else"}
		if err := c.Update(ctx, role); err != nil {
			t.Fatal(err)
		}
		reconcile(t, r, room)
		if got := get[rbacv1.Role](t, c, ns, "heal-room"); !slices.Equal(got.Rules[0].ResourceNames, []string{"heal"}) {
			t.Errorf("role resourceNames %v, want [heal]", got.Rules[0].ResourceNames)
		}
	})
	t.Run("pod labels removed by hand are put back without replacing the pod", func(t *testing.T) {
		pod := get[corev1.Pod](t, c, ns, "heal-room")
		// Without its labels the pod leaves the Service and the operator's cache.
		pod.Labels = map[string]string{"edited": "by-hand"}
		if err := c.Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
		reconcile(t, r, room)
		got := get[corev1.Pod](t, c, ns, "heal-room")
		if got.UID != pod.UID || got.Labels[LabelRoom] != "heal" || got.Labels[LabelManagedBy] != "xrooms-operator" || got.Labels["edited"] != "by-hand" {
			t.Errorf("pod %s labels %v, want the room's labels back on the same pod (and others' kept)", got.UID, got.Labels)
		}
	})
	t.Run("a pod image edited by hand gets the pod replaced", func(t *testing.T) {
		pod := get[corev1.Pod](t, c, ns, "heal-room")
		pod.Spec.Containers[0].Image = "example.com/not-the-room:1"
		if err := c.Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
		reconcile(t, r, room)
		got := get[corev1.Pod](t, c, ns, "heal-room")
		if got.UID == pod.UID || got.Spec.Containers[0].Image != testImage {
			t.Errorf("pod %s runs %s, want a new pod running %s", got.UID, got.Spec.Containers[0].Image, testImage)
		}
		waitForEvent(t, c, room, corev1.EventTypeNormal, EventReplaced, "image was changed to example.com/not-the-room:1")
	})
}

func TestSpecChanges(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	r, _ := e.reconciler()
	c := e.client
	room := runningRoom(t, e, r, ns, "change")

	t.Run("syncInterval and maxClients keep the pod", func(t *testing.T) {
		old := get[corev1.Pod](t, c, ns, "change-room")
		updateRoom(t, c, room, func(r *xroomsv1alpha1.Room) {
			r.Spec.SyncInterval = metav1.Duration{Duration: 50 * time.Millisecond}
			r.Spec.MaxClients = ptr.To[int32](16)
		})
		counted, writes := countingClient(e.client)
		r := *r
		r.Client, r.APIReader = counted, counted
		reconcile(t, &r, room)
		if pod := get[corev1.Pod](t, c, ns, "change-room"); pod.UID != old.UID || pod.DeletionTimestamp != nil {
			t.Fatalf("the pod was replaced or deleted for a syncInterval change")
		}
		if w := writes.Writes(); len(w) != 1 || !strings.HasPrefix(w[0], "status apply") {
			t.Errorf("writes %v, want only the status apply of the new observedGeneration", w)
		}
		got := getRoom(t, c, room)
		if got.Status.ObservedGeneration != got.Generation || got.Status.Phase != xroomsv1alpha1.RoomRunning {
			t.Errorf("status %+v, want Running at generation %d", got.Status, got.Generation)
		}
	})
	t.Run("initialEntities update the ConfigMap and keep the pod", func(t *testing.T) {
		old := get[corev1.Pod](t, c, ns, "change-room")
		updateRoom(t, c, room, func(r *xroomsv1alpha1.Room) { r.Spec.InitialEntities = sceneEntities })
		reconcile(t, r, room)
		if pod := get[corev1.Pod](t, c, ns, "change-room"); pod.UID != old.UID {
			t.Fatal("the pod was replaced for an initialEntities change")
		}
		if cm := get[corev1.ConfigMap](t, c, ns, "change-entities"); !strings.Contains(cm.Data["initial-entities.json"], `"spawn"`) {
			t.Errorf("ConfigMap holds %s, want the scene", cm.Data["initial-entities.json"])
		}
	})
	t.Run("a new image replaces the pod", func(t *testing.T) {
		old := get[corev1.Pod](t, c, ns, "change-room")
		updateRoom(t, c, room, func(r *xroomsv1alpha1.Room) { r.Spec.Image = "example.com/xrooms/roomserver:v2" })
		reconcile(t, r, room)
		pod := get[corev1.Pod](t, c, ns, "change-room")
		if pod.UID == old.UID || pod.Spec.Containers[0].Image != "example.com/xrooms/roomserver:v2" {
			t.Fatalf("pod %s runs %s, want a new pod with the new image", pod.UID, pod.Spec.Containers[0].Image)
		}
		got := getRoom(t, c, room)
		if cond := condition(t, got, xroomsv1alpha1.ConditionPodReady); cond.Reason != ReasonPodReplaced || !strings.Contains(cond.Message, "pod spec changed") {
			t.Errorf("PodReady %+v, want PodReplaced saying the spec changed", cond)
		}
		waitForEvent(t, c, room, corev1.EventTypeNormal, EventReplaced, "Replacing Pod change-room: the Room's pod spec changed")
		setPodStatus(t, c, ns, "change-room", podRunningAndReady)
		reconcile(t, r, room)
		if cond := condition(t, getRoom(t, c, room), xroomsv1alpha1.ConditionPodReady); cond.Status != metav1.ConditionTrue {
			t.Errorf("PodReady %+v after the new pod is ready, want True", cond)
		}
	})
	t.Run("a Service type change updates the Service in place", func(t *testing.T) {
		old := get[corev1.Service](t, c, ns, "change-room")
		updateRoom(t, c, room, func(r *xroomsv1alpha1.Room) { r.Spec.Service.Type = corev1.ServiceTypeNodePort })
		reconcile(t, r, room)
		svc := get[corev1.Service](t, c, ns, "change-room")
		if svc.UID != old.UID || svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Spec.Ports[0].NodePort == 0 {
			t.Fatalf("Service %+v, want the same Service as NodePort with a node port", svc.Spec)
		}
		updateRoom(t, c, room, func(r *xroomsv1alpha1.Room) { r.Spec.Service.Type = corev1.ServiceTypeClusterIP })
		reconcile(t, r, room)
		if svc := get[corev1.Service](t, c, ns, "change-room"); svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Spec.Ports[0].NodePort != 0 {
			t.Errorf("Service %+v, want ClusterIP without a node port", svc.Spec)
		}
	})
	t.Run("a LoadBalancer's address becomes the endpoint", func(t *testing.T) {
		updateRoom(t, c, room, func(r *xroomsv1alpha1.Room) { r.Spec.Service.Type = corev1.ServiceTypeLoadBalancer })
		reconcile(t, r, room)
		svc := get[corev1.Service](t, c, ns, "change-room")
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}
		if err := c.Status().Update(context.Background(), svc); err != nil {
			t.Fatal(err)
		}
		reconcile(t, r, room)
		if got := getRoom(t, c, room); got.Status.Endpoint != "ws://203.0.113.7:4000/socket" {
			t.Errorf("endpoint %q, want ws://203.0.113.7:4000/socket", got.Status.Endpoint)
		}
	})
}

func TestPersistentVolume(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	r, _ := e.reconciler()
	c := e.client

	t.Run("a Volume room gets its claim and mounts it", func(t *testing.T) {
		room := newRoom(t, c, ns, "saved", func(r *xroomsv1alpha1.Room) {
			r.Spec.Persistence = xroomsv1alpha1.RoomPersistence{Type: xroomsv1alpha1.PersistenceVolume, Size: ptr.To(resource.MustParse("2Gi")), StorageClassName: ptr.To("fast")}
		})
		reconcile(t, r, room)
		room = getRoom(t, c, room)
		pvc := get[corev1.PersistentVolumeClaim](t, c, ns, "saved-data")
		assertControlledByRoom(t, pvc, room)
		if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.String() != "2Gi" || ptr.Deref(pvc.Spec.StorageClassName, "") != "fast" {
			t.Errorf("claim requests %s of %v, want 2Gi of fast", got.String(), pvc.Spec.StorageClassName)
		}
		pod := get[corev1.Pod](t, c, ns, "saved-room")
		if claim := pod.Spec.Volumes[0].PersistentVolumeClaim; claim == nil || claim.ClaimName != "saved-data" {
			t.Errorf("pod volume %+v, want claim saved-data", pod.Spec.Volumes[0])
		}
		waitForEvent(t, c, room, corev1.EventTypeNormal, EventCreated, "Created PersistentVolumeClaim saved-data")
	})
	t.Run("a deleted claim is recreated", func(t *testing.T) {
		room := getRoom(t, c, &xroomsv1alpha1.Room{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "saved"}})
		old := get[corev1.PersistentVolumeClaim](t, c, ns, "saved-data")
		// envtest runs no controller that removes the protection finalizer.
		old.Finalizers = nil
		if err := c.Update(context.Background(), old); err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(context.Background(), old); err != nil {
			t.Fatal(err)
		}
		reconcile(t, r, room)
		if pvc := get[corev1.PersistentVolumeClaim](t, c, ns, "saved-data"); pvc.UID == old.UID {
			t.Error("the claim was not recreated")
		}
	})
	t.Run("an Ephemeral room moving to Volume gets a claim and a new pod", func(t *testing.T) {
		room := runningRoom(t, e, r, ns, "grows")
		old := get[corev1.Pod](t, c, ns, "grows-room")
		updateRoom(t, c, room, func(r *xroomsv1alpha1.Room) { r.Spec.Persistence.Type = xroomsv1alpha1.PersistenceVolume })
		reconcile(t, r, room)
		get[corev1.PersistentVolumeClaim](t, c, ns, "grows-data")
		pod := get[corev1.Pod](t, c, ns, "grows-room")
		if pod.UID == old.UID || pod.Spec.Volumes[0].PersistentVolumeClaim == nil {
			t.Errorf("pod %s volumes %+v, want a new pod on the claim", pod.UID, pod.Spec.Volumes)
		}
	})
}

func TestFailedPodIsReplaced(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	r, _ := e.reconciler()
	c := e.client
	room := runningRoom(t, e, r, ns, "evicted")
	old := setPodStatus(t, c, ns, "evicted-room", func(s *corev1.PodStatus) {
		s.Phase = corev1.PodFailed
		s.Reason = "Evicted"
		s.Message = "The node was low on resource: memory."
		s.Conditions = nil
	})

	reconcile(t, r, room)
	pod := get[corev1.Pod](t, c, ns, "evicted-room")
	if pod.UID == old.UID || pod.Status.Phase == corev1.PodFailed {
		t.Fatalf("the failed pod was not replaced")
	}
	if !strings.HasPrefix(pod.Annotations[AnnotationReplaces], "PodFailed: ") {
		t.Errorf("new pod annotation %s = %q, want why it replaces the old one", AnnotationReplaces, pod.Annotations[AnnotationReplaces])
	}
	got := getRoom(t, c, room)
	for _, typ := range []string{xroomsv1alpha1.ConditionPodReady, xroomsv1alpha1.ConditionReady} {
		cond := condition(t, got, typ)
		if cond.Status != metav1.ConditionFalse || cond.Reason != ReasonPodFailed || !strings.Contains(cond.Message, "Evicted: The node was low on resource: memory.") {
			t.Errorf("%s %+v, want False/PodFailed naming the eviction", typ, cond)
		}
	}
	if got.Status.Phase != xroomsv1alpha1.RoomStarting {
		t.Errorf("phase %s, want Starting while the replacement starts", got.Status.Phase)
	}
	waitForEvent(t, c, room, corev1.EventTypeWarning, EventPodFailed, "Pod evicted-room failed (Evicted: The node was low on resource: memory.); replacing it")

	t.Run("the condition keeps saying why until the new pod is ready", func(t *testing.T) {
		reconcile(t, r, room)
		if cond := condition(t, getRoom(t, c, room), xroomsv1alpha1.ConditionPodReady); cond.Reason != ReasonPodFailed {
			t.Errorf("PodReady %+v on the next pass, want PodFailed", cond)
		}
		setPodStatus(t, c, ns, "evicted-room", podRunningAndReady)
		reconcile(t, r, room)
		if got := getRoom(t, c, room); got.Status.Phase != xroomsv1alpha1.RoomRunning {
			t.Errorf("phase %s, want Running", got.Status.Phase)
		}
	})
}

func TestConflictsAndRejections(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	r, _ := e.reconciler()
	c := e.client
	ctx := context.Background()

	t.Run("a foreign pod with the room pod's name is left alone and reported", func(t *testing.T) {
		foreign := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "taken-room", Namespace: ns, Labels: map[string]string{"owner": "someone"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
		}
		if err := c.Create(ctx, foreign); err != nil {
			t.Fatal(err)
		}
		room := newRoom(t, c, ns, "taken")
		res := reconcile(t, r, room)
		if res.RequeueAfter == 0 {
			t.Error("a name conflict asked for no retry; nothing else would notice the foreign pod going")
		}
		pod := get[corev1.Pod](t, c, ns, "taken-room")
		if pod.UID != foreign.UID || len(pod.OwnerReferences) != 0 || pod.Spec.Containers[0].Image != "example.com/app:1" {
			t.Errorf("the foreign pod was changed: %+v", pod.ObjectMeta)
		}
		got := getRoom(t, c, room)
		if cond := condition(t, got, xroomsv1alpha1.ConditionReady); got.Status.Phase != xroomsv1alpha1.RoomFailed || cond.Reason != ReasonPodNameConflict {
			t.Errorf("phase %s Ready %+v, want Failed/PodNameConflict", got.Status.Phase, cond)
		}
		waitForEvent(t, c, room, corev1.EventTypeWarning, string(xroomsv1alpha1.RoomFailed), "Pod taken-room already exists and is not controlled by Room taken")

		if err := c.Delete(ctx, foreign); err != nil {
			t.Fatal(err)
		}
		reconcile(t, r, room)
		if pod := get[corev1.Pod](t, c, ns, "taken-room"); !metav1.IsControlledBy(pod, room) {
			t.Error("the room did not get its pod once the name was free")
		}
		if got := getRoom(t, c, room); got.Status.Phase != xroomsv1alpha1.RoomStarting {
			t.Errorf("phase %s once the name was free, want Starting", got.Status.Phase)
		}
	})
	t.Run("a foreign ServiceAccount keeps the pod from being made", func(t *testing.T) {
		if err := c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "borrowed-room", Namespace: ns}}); err != nil {
			t.Fatal(err)
		}
		room := newRoom(t, c, ns, "borrowed")
		reconcile(t, r, room)
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "borrowed-room"}, &corev1.Pod{}); !apierrors.IsNotFound(err) {
			t.Errorf("a pod was made to run as a foreign ServiceAccount (get: %v)", err)
		}
		got := getRoom(t, c, room)
		if cond := condition(t, got, xroomsv1alpha1.ConditionReady); got.Status.Phase != xroomsv1alpha1.RoomFailed || cond.Reason != ReasonNameConflict || !strings.Contains(cond.Message, "ServiceAccount borrowed-room") {
			t.Errorf("phase %s Ready %+v, want Failed/NameConflict naming the ServiceAccount", got.Status.Phase, cond)
		}
	})
	t.Run("a foreign Service with the room's name is reported", func(t *testing.T) {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "shadowed-room", Namespace: ns},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		}
		if err := c.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
		room := newRoom(t, c, ns, "shadowed")
		reconcile(t, r, room)
		got := getRoom(t, c, room)
		if cond := condition(t, got, xroomsv1alpha1.ConditionServiceReady); got.Status.Phase != xroomsv1alpha1.RoomFailed || cond.Reason != ReasonServiceNameConflict {
			t.Errorf("phase %s ServiceReady %+v, want Failed/ServiceNameConflict", got.Status.Phase, cond)
		}
		if got.Status.Endpoint != "" {
			t.Errorf("endpoint %q points at a foreign Service", got.Status.Endpoint)
		}
	})
	t.Run("a pod the API server rejects fails the room without retrying until the Room changes", func(t *testing.T) {
		room := newRoom(t, c, ns, "greedy", func(r *xroomsv1alpha1.Room) {
			// Requests above limits: valid for the Room's schema, invalid for a pod.
			r.Spec.Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
			}
		})
		res, err := r.Reconcile(ctx, reconcileRequest(room))
		if err != nil || res.RequeueAfter != 0 {
			t.Errorf("reconcile returned %v, %v; want no error and no requeue", res, err)
		}
		got := getRoom(t, c, room)
		cond := condition(t, got, xroomsv1alpha1.ConditionReady)
		if got.Status.Phase != xroomsv1alpha1.RoomFailed || cond.Reason != ReasonPodRejected || !strings.Contains(cond.Message, "must be less than or equal to cpu limit") {
			t.Errorf("phase %s Ready %+v, want Failed/PodRejected with the API server's reason", got.Status.Phase, cond)
		}
		waitForEvent(t, c, room, corev1.EventTypeWarning, string(xroomsv1alpha1.RoomFailed), "creating Pod greedy-room was rejected")

		updateRoom(t, c, room, func(r *xroomsv1alpha1.Room) { r.Spec.Resources = corev1.ResourceRequirements{} })
		reconcile(t, r, room)
		if got := getRoom(t, c, room); got.Status.Phase != xroomsv1alpha1.RoomStarting {
			t.Errorf("phase %s after the fix, want Starting", got.Status.Phase)
		}
	})
}

func TestDeletion(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	r, _ := e.reconciler()
	c := e.client
	ctx := context.Background()
	room := runningRoom(t, e, r, ns, "doomed", func(r *xroomsv1alpha1.Room) {
		r.Spec.Persistence.Type = xroomsv1alpha1.PersistenceVolume
	})

	// envtest runs no garbage collector: what deletes a Room's objects in a cluster is their
	// controller reference, so that is what is checked.
	owned := []client.Object{
		get[corev1.Pod](t, c, ns, "doomed-room"),
		get[corev1.Service](t, c, ns, "doomed-room"),
		get[corev1.ServiceAccount](t, c, ns, "doomed-room"),
		get[rbacv1.Role](t, c, ns, "doomed-room"),
		get[rbacv1.RoleBinding](t, c, ns, "doomed-room"),
		get[corev1.ConfigMap](t, c, ns, "doomed-entities"),
		get[corev1.PersistentVolumeClaim](t, c, ns, "doomed-data"),
	}
	for _, obj := range owned {
		assertControlledByRoom(t, obj, room)
		if ref := obj.GetOwnerReferences()[0]; ref.UID != room.UID {
			t.Errorf("%T %s refers to UID %s, want %s", obj, obj.GetName(), ref.UID, room.UID)
		}
	}

	// Foreground deletion keeps the Room, with a deletionTimestamp, until its objects are gone.
	if err := c.Delete(ctx, room, client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, owned[0]); err != nil {
		t.Fatal(err)
	}
	reconcile(t, r, room)
	got := getRoom(t, c, room)
	if got.Status.Phase != xroomsv1alpha1.RoomTerminating || condition(t, got, xroomsv1alpha1.ConditionReady).Reason != ReasonTerminating {
		t.Errorf("phase %s, want Terminating", got.Status.Phase)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(owned[0]), &corev1.Pod{}); !apierrors.IsNotFound(err) {
		t.Errorf("a Room being deleted got a new pod (get: %v)", err)
	}
}

func reconcileRequest(room *xroomsv1alpha1.Room) ctrl.Request {
	return ctrl.Request{NamespacedName: client.ObjectKeyFromObject(room)}
}

// TestReplacementWaitsForTheOldPod covers what a cluster does and envtest does not: a running
// pod terminates gracefully, so its successor (same name) can only be made once it is gone. A
// finalizer stands in for the grace period.
func TestReplacementWaitsForTheOldPod(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	r, _ := e.reconciler()
	c := e.client
	ctx := context.Background()
	room := runningRoom(t, e, r, ns, "slow")

	old := get[corev1.Pod](t, c, ns, "slow-room")
	old.Finalizers = []string{"example.com/hold"}
	if err := c.Update(ctx, old); err != nil {
		t.Fatal(err)
	}
	updateRoom(t, c, room, func(r *xroomsv1alpha1.Room) { r.Spec.Image = "example.com/xrooms/roomserver:v2" })
	reconcile(t, r, room)

	pod := get[corev1.Pod](t, c, ns, "slow-room")
	if pod.UID != old.UID || pod.DeletionTimestamp == nil {
		t.Fatalf("the old pod %s should be terminating (deletionTimestamp %v)", pod.UID, pod.DeletionTimestamp)
	}
	got := getRoom(t, c, room)
	cond := condition(t, got, xroomsv1alpha1.ConditionPodReady)
	if got.Status.Phase != xroomsv1alpha1.RoomStarting || cond.Reason != ReasonPodReplaced || !strings.Contains(cond.Message, "waiting for the old pod slow-room to terminate") {
		t.Errorf("phase %s PodReady %+v, want Starting/PodReplaced waiting for the old pod", got.Status.Phase, cond)
	}
	reconcile(t, r, room)
	if pod := get[corev1.Pod](t, c, ns, "slow-room"); pod.UID != old.UID {
		t.Fatal("a pass while the old pod terminates did something to it")
	}

	pod.Finalizers = nil
	if err := c.Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old pod to go", func() (bool, error) {
		err := c.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		return apierrors.IsNotFound(err), err
	})
	reconcile(t, r, room)
	if pod := get[corev1.Pod](t, c, ns, "slow-room"); pod.UID == old.UID || pod.Spec.Containers[0].Image != "example.com/xrooms/roomserver:v2" {
		t.Errorf("pod %s runs %s, want the successor with the new image", pod.UID, pod.Spec.Containers[0].Image)
	}
}
