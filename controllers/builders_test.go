package controllers

import (
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

// testRoom is a Room as the API server returns it after defaulting.
func testRoom(mutate ...func(*xroomsv1alpha1.Room)) *xroomsv1alpha1.Room {
	room := &xroomsv1alpha1.Room{
		ObjectMeta: metav1.ObjectMeta{Name: "lobby", Namespace: "games", UID: "room-uid", Generation: 1},
		Spec: xroomsv1alpha1.RoomSpec{
			SyncInterval: metav1.Duration{Duration: 200 * time.Millisecond},
			Service:      xroomsv1alpha1.RoomService{Type: corev1.ServiceTypeClusterIP, Port: 4000},
			Persistence:  xroomsv1alpha1.RoomPersistence{Type: xroomsv1alpha1.PersistenceEphemeral},
		},
	}
	for _, m := range mutate {
		m(room)
	}
	return room
}

func envOf(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

func assertControlledByRoom(t *testing.T, obj metav1.Object, room *xroomsv1alpha1.Room) {
	t.Helper()
	if !metav1.IsControlledBy(obj, room) {
		t.Fatalf("%s is not controlled by Room %s: owners %+v", obj.GetName(), room.Name, obj.GetOwnerReferences())
	}
	ref := obj.GetOwnerReferences()[0]
	if ref.APIVersion != "xrooms.dev/v1alpha1" || ref.Kind != "Room" || ref.Name != room.Name || !ptr.Deref(ref.BlockOwnerDeletion, false) {
		t.Fatalf("%s has owner reference %+v, want a blocking controller reference to xrooms.dev/v1alpha1 Room %s", obj.GetName(), ref, room.Name)
	}
}

func TestPodForRoom(t *testing.T) {
	t.Run("a default room runs the default image with the room's identity, probes and a restricted security context", func(t *testing.T) {
		room := testRoom()
		pod := podForRoom(room, testImage)

		if pod.Name != "lobby-room" || pod.Namespace != "games" {
			t.Fatalf("pod is %s/%s, want games/lobby-room", pod.Namespace, pod.Name)
		}
		assertControlledByRoom(t, pod, room)
		for k, v := range map[string]string{LabelName: "xrooms-room", LabelInstance: "lobby", LabelRoom: "lobby", LabelManagedBy: "xrooms-operator"} {
			if pod.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, pod.Labels[k], v)
			}
		}
		if pod.Annotations[AnnotationPodSpecHash] != podSpecHash(room, testImage) {
			t.Errorf("pod-spec-hash annotation = %q, want %q", pod.Annotations[AnnotationPodSpecHash], podSpecHash(room, testImage))
		}
		spec := pod.Spec
		if spec.ServiceAccountName != "lobby-room" || !ptr.Deref(spec.AutomountServiceAccountToken, false) {
			t.Errorf("service account %q automount %v, want lobby-room with a token", spec.ServiceAccountName, spec.AutomountServiceAccountToken)
		}
		if ptr.Deref(spec.TerminationGracePeriodSeconds, 0) != 30 || spec.RestartPolicy != corev1.RestartPolicyAlways {
			t.Errorf("grace period %v restart policy %q, want 30s and Always", spec.TerminationGracePeriodSeconds, spec.RestartPolicy)
		}
		psc := spec.SecurityContext
		if !ptr.Deref(psc.RunAsNonRoot, false) || ptr.Deref(psc.RunAsUser, 0) != 65532 || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("pod security context %+v is not restricted", psc)
		}
		if len(spec.Containers) != 1 {
			t.Fatalf("pod has %d containers, want 1", len(spec.Containers))
		}
		c := spec.Containers[0]
		if c.Name != "roomserver" || c.Image != testImage {
			t.Errorf("container %s runs %s, want roomserver running %s", c.Name, c.Image, testImage)
		}
		csc := c.SecurityContext
		if !ptr.Deref(csc.RunAsNonRoot, false) || ptr.Deref(csc.AllowPrivilegeEscalation, true) || !ptr.Deref(csc.ReadOnlyRootFilesystem, false) ||
			len(csc.Capabilities.Drop) != 1 || csc.Capabilities.Drop[0] != "ALL" || csc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("container security context %+v is not restricted", csc)
		}
		wantEnv := map[string]string{
			"XROOMS_ROOM":             "lobby",
			"XROOMS_NAMESPACE":        "games",
			"XROOMS_SYNC_INTERVAL":    "200ms",
			"XROOMS_LISTEN":           ":4000",
			"XROOMS_DATA_DIR":         "/data",
			"XROOMS_INITIAL_ENTITIES": "/etc/xrooms/initial-entities.json",
		}
		env := envOf(c)
		for k, v := range wantEnv {
			if env[k] != v {
				t.Errorf("env %s = %q, want %q", k, env[k], v)
			}
		}
		if _, ok := env["XROOMS_MAX_CLIENTS"]; ok {
			t.Errorf("XROOMS_MAX_CLIENTS is set without spec.maxClients")
		}
		if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 4000 || c.Ports[0].Name != "ws" {
			t.Errorf("ports %+v, want ws 4000", c.Ports)
		}
		if p := c.ReadinessProbe; p == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port != intstr.FromString("ws") {
			t.Errorf("readiness probe %+v, want GET /readyz on ws", p)
		}
		if p := c.LivenessProbe; p == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port != intstr.FromString("ws") {
			t.Errorf("liveness probe %+v, want GET /healthz on ws", p)
		}
		volumes := map[string]corev1.VolumeSource{}
		for _, v := range spec.Volumes {
			volumes[v.Name] = v.VolumeSource
		}
		if volumes["data"].EmptyDir == nil {
			t.Errorf("data volume %+v, want an emptyDir", volumes["data"])
		}
		if cm := volumes["initial-entities"].ConfigMap; cm == nil || cm.Name != "lobby-entities" {
			t.Errorf("initial-entities volume %+v, want ConfigMap lobby-entities", volumes["initial-entities"])
		}
		mounts := map[string]string{}
		for _, m := range c.VolumeMounts {
			mounts[m.Name] = m.MountPath
		}
		if mounts["data"] != "/data" || mounts["initial-entities"] != "/etc/xrooms" {
			t.Errorf("mounts %v, want data at /data and initial-entities at /etc/xrooms", mounts)
		}
	})

	cases := []struct {
		name  string
		room  *xroomsv1alpha1.Room
		check func(t *testing.T, pod *corev1.Pod)
	}{
		{
			name: "spec.image overrides the default image",
			room: testRoom(func(r *xroomsv1alpha1.Room) { r.Spec.Image = "example.com/custom:1" }),
			check: func(t *testing.T, pod *corev1.Pod) {
				if got := pod.Spec.Containers[0].Image; got != "example.com/custom:1" {
					t.Errorf("image %s, want example.com/custom:1", got)
				}
			},
		},
		{
			name: "persistence Volume mounts the room's claim",
			room: testRoom(func(r *xroomsv1alpha1.Room) { r.Spec.Persistence.Type = xroomsv1alpha1.PersistenceVolume }),
			check: func(t *testing.T, pod *corev1.Pod) {
				claim := pod.Spec.Volumes[0].PersistentVolumeClaim
				if pod.Spec.Volumes[0].Name != "data" || claim == nil || claim.ClaimName != "lobby-data" {
					t.Errorf("data volume %+v, want claim lobby-data", pod.Spec.Volumes[0])
				}
			},
		},
		{
			name: "syncInterval, maxClients and port reach the environment",
			room: testRoom(func(r *xroomsv1alpha1.Room) {
				r.Spec.SyncInterval = metav1.Duration{Duration: 50 * time.Millisecond}
				r.Spec.MaxClients = ptr.To[int32](64)
				r.Spec.Service.Port = 5000
			}),
			check: func(t *testing.T, pod *corev1.Pod) {
				env := envOf(pod.Spec.Containers[0])
				if env["XROOMS_SYNC_INTERVAL"] != "50ms" || env["XROOMS_MAX_CLIENTS"] != "64" || env["XROOMS_LISTEN"] != ":5000" {
					t.Errorf("env %v, want sync 50ms, max clients 64, listen :5000", env)
				}
				if pod.Spec.Containers[0].Ports[0].ContainerPort != 5000 {
					t.Errorf("container port %d, want 5000", pod.Spec.Containers[0].Ports[0].ContainerPort)
				}
			},
		},
		{
			name: "pod overrides reach the pod, and extra labels never replace the controller's",
			room: testRoom(func(r *xroomsv1alpha1.Room) {
				r.Spec.Labels = map[string]string{"team": "xr", LabelRoom: "other"}
				r.Spec.Annotations = map[string]string{"example.com/note": "hi"}
				r.Spec.NodeSelector = map[string]string{"pool": "rooms"}
				r.Spec.Tolerations = []corev1.Toleration{{Key: "rooms", Operator: corev1.TolerationOpExists}}
				r.Spec.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}}
				r.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "registry"}}
			}),
			check: func(t *testing.T, pod *corev1.Pod) {
				if pod.Labels["team"] != "xr" || pod.Labels[LabelRoom] != "lobby" {
					t.Errorf("labels %v, want team=xr and xrooms.dev/room=lobby", pod.Labels)
				}
				if pod.Annotations["example.com/note"] != "hi" {
					t.Errorf("annotations %v, want example.com/note=hi", pod.Annotations)
				}
				if pod.Spec.NodeSelector["pool"] != "rooms" || len(pod.Spec.Tolerations) != 1 || pod.Spec.ImagePullSecrets[0].Name != "registry" {
					t.Errorf("scheduling overrides missing: %+v", pod.Spec)
				}
				if got := pod.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]; got.String() != "256Mi" {
					t.Errorf("memory limit %s, want 256Mi", got.String())
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, podForRoom(tc.room, testImage)) })
	}
}

func TestPodSpecHash(t *testing.T) {
	base := podSpecHash(testRoom(), testImage)
	if again := podSpecHash(testRoom(), testImage); again != base {
		t.Fatalf("the hash of the same room changed: %s then %s", base, again)
	}
	cases := []struct {
		name     string
		mutate   func(*xroomsv1alpha1.Room)
		image    string
		replaces bool
	}{
		{name: "syncInterval keeps the pod", mutate: func(r *xroomsv1alpha1.Room) { r.Spec.SyncInterval.Duration = time.Second }},
		{name: "maxClients keeps the pod", mutate: func(r *xroomsv1alpha1.Room) { r.Spec.MaxClients = ptr.To[int32](3) }},
		{name: "initialEntities keep the pod", mutate: func(r *xroomsv1alpha1.Room) {
			r.Spec.InitialEntities = map[string]runtime.RawExtension{"box": {Raw: []byte(`{"position":[0,0,0]}`)}}
		}},
		{name: "the Service type keeps the pod", mutate: func(r *xroomsv1alpha1.Room) { r.Spec.Service.Type = corev1.ServiceTypeLoadBalancer }},
		{name: "Service annotations keep the pod", mutate: func(r *xroomsv1alpha1.Room) { r.Spec.Service.Annotations = map[string]string{"a": "b"} }},
		{name: "image replaces the pod", mutate: func(r *xroomsv1alpha1.Room) { r.Spec.Image = "example.com/other:2" }, replaces: true},
		{name: "a new default image replaces pods that use it", image: "example.com/xrooms/roomserver:next", replaces: true},
		{name: "resources replace the pod", mutate: func(r *xroomsv1alpha1.Room) {
			r.Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
		}, replaces: true},
		{name: "persistence replaces the pod", mutate: func(r *xroomsv1alpha1.Room) { r.Spec.Persistence.Type = xroomsv1alpha1.PersistenceVolume }, replaces: true},
		{name: "nodeSelector replaces the pod", mutate: func(r *xroomsv1alpha1.Room) { r.Spec.NodeSelector = map[string]string{"a": "b"} }, replaces: true},
		{name: "tolerations replace the pod", mutate: func(r *xroomsv1alpha1.Room) {
			r.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}}
		}, replaces: true},
		{name: "affinity replaces the pod", mutate: func(r *xroomsv1alpha1.Room) {
			r.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{}}
		}, replaces: true},
		{name: "pod labels replace the pod", mutate: func(r *xroomsv1alpha1.Room) { r.Spec.Labels = map[string]string{"a": "b"} }, replaces: true},
		{name: "pod annotations replace the pod", mutate: func(r *xroomsv1alpha1.Room) { r.Spec.Annotations = map[string]string{"a": "b"} }, replaces: true},
		{name: "the port replaces the pod", mutate: func(r *xroomsv1alpha1.Room) { r.Spec.Service.Port = 4001 }, replaces: true},
	}
	t.Run("the volume's size and class keep the pod (they only shape a new claim)", func(t *testing.T) {
		volume := func(r *xroomsv1alpha1.Room) { r.Spec.Persistence.Type = xroomsv1alpha1.PersistenceVolume }
		sized := testRoom(volume, func(r *xroomsv1alpha1.Room) {
			r.Spec.Persistence.Size = ptr.To(resource.MustParse("5Gi"))
			r.Spec.Persistence.StorageClassName = ptr.To("fast")
		})
		if a, b := podSpecHash(testRoom(volume), testImage), podSpecHash(sized, testImage); a != b {
			t.Errorf("hash changed from %s to %s", a, b)
		}
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			room := testRoom()
			if tc.mutate != nil {
				tc.mutate(room)
			}
			image := testImage
			if tc.image != "" {
				image = tc.image
			}
			if got := podSpecHash(room, image); (got != base) != tc.replaces {
				t.Errorf("hash %s vs base %s: replaces = %v, want %v", got, base, got != base, tc.replaces)
			}
		})
	}
}

func TestServiceForRoom(t *testing.T) {
	cases := []struct {
		name     string
		room     *xroomsv1alpha1.Room
		wantType corev1.ServiceType
		wantPort int32
	}{
		{name: "a default room gets a ClusterIP Service on 4000", room: testRoom(), wantType: corev1.ServiceTypeClusterIP, wantPort: 4000},
		{name: "a room built without API defaults still gets ClusterIP on 4000", room: testRoom(func(r *xroomsv1alpha1.Room) { r.Spec.Service = xroomsv1alpha1.RoomService{} }), wantType: corev1.ServiceTypeClusterIP, wantPort: 4000},
		{name: "a LoadBalancer room on port 443", room: testRoom(func(r *xroomsv1alpha1.Room) {
			r.Spec.Service = xroomsv1alpha1.RoomService{Type: corev1.ServiceTypeLoadBalancer, Port: 443, Annotations: map[string]string{"lb": "internal"}}
		}), wantType: corev1.ServiceTypeLoadBalancer, wantPort: 443},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := serviceForRoom(tc.room)
			assertControlledByRoom(t, svc, tc.room)
			if svc.Name != "lobby-room" || svc.Spec.Type != tc.wantType {
				t.Errorf("Service %s of type %s, want lobby-room of type %s", svc.Name, svc.Spec.Type, tc.wantType)
			}
			p := svc.Spec.Ports[0]
			if p.Port != tc.wantPort || p.TargetPort != intstr.FromString("ws") || ptr.Deref(p.AppProtocol, "") != "kubernetes.io/ws" {
				t.Errorf("port %+v, want %d targeting ws with appProtocol kubernetes.io/ws", p, tc.wantPort)
			}
			want := map[string]string{LabelName: "xrooms-room", LabelInstance: "lobby", LabelRoom: "lobby"}
			if len(svc.Spec.Selector) != len(want) {
				t.Errorf("selector %v, want %v", svc.Spec.Selector, want)
			}
			for k, v := range want {
				if svc.Spec.Selector[k] != v {
					t.Errorf("selector %v, want %v", svc.Spec.Selector, want)
				}
			}
			for k, v := range tc.room.Spec.Service.Annotations {
				if svc.Annotations[k] != v {
					t.Errorf("annotations %v, want %v", svc.Annotations, tc.room.Spec.Service.Annotations)
				}
			}
		})
	}
}

func TestPVCForRoom(t *testing.T) {
	t.Run("the claim defaults to 1Gi of the default class", func(t *testing.T) {
		room := testRoom(func(r *xroomsv1alpha1.Room) { r.Spec.Persistence.Type = xroomsv1alpha1.PersistenceVolume })
		pvc := pvcForRoom(room)
		assertControlledByRoom(t, pvc, room)
		if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; pvc.Name != "lobby-data" || got.String() != "1Gi" || pvc.Spec.StorageClassName != nil {
			t.Errorf("claim %s requests %s of class %v, want lobby-data, 1Gi, default class", pvc.Name, got.String(), pvc.Spec.StorageClassName)
		}
		if len(pvc.Spec.AccessModes) != 1 || pvc.Spec.AccessModes[0] != corev1.ReadWriteOnce {
			t.Errorf("access modes %v, want ReadWriteOnce", pvc.Spec.AccessModes)
		}
	})
	t.Run("size and storageClassName are the Room's", func(t *testing.T) {
		room := testRoom(func(r *xroomsv1alpha1.Room) {
			r.Spec.Persistence = xroomsv1alpha1.RoomPersistence{Type: xroomsv1alpha1.PersistenceVolume, Size: ptr.To(resource.MustParse("5Gi")), StorageClassName: ptr.To("fast")}
		})
		pvc := pvcForRoom(room)
		if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.String() != "5Gi" || ptr.Deref(pvc.Spec.StorageClassName, "") != "fast" {
			t.Errorf("claim requests %s of class %v, want 5Gi of fast", got.String(), pvc.Spec.StorageClassName)
		}
	})
}

func TestEntitiesConfigMapForRoom(t *testing.T) {
	cases := []struct {
		name     string
		entities map[string]runtime.RawExtension
		want     string
	}{
		{name: "no initial entities is an empty object", want: `{}`},
		{name: "entities are one object of id to components", entities: map[string]runtime.RawExtension{
			"floor": {Raw: []byte(`{"shape": "plane", "position": [0, 0, 0]}`)},
			"box-1": {Raw: []byte(`{"color":"#f00"}`)},
		}, want: `{"box-1":{"color":"#f00"},"floor":{"shape":"plane","position":[0,0,0]}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			room := testRoom(func(r *xroomsv1alpha1.Room) { r.Spec.InitialEntities = tc.entities })
			cm, err := entitiesConfigMapForRoom(room)
			if err != nil {
				t.Fatal(err)
			}
			assertControlledByRoom(t, cm, room)
			if cm.Name != "lobby-entities" || cm.Data["initial-entities.json"] != tc.want {
				t.Errorf("ConfigMap %s holds %q, want lobby-entities holding %q", cm.Name, cm.Data["initial-entities.json"], tc.want)
			}
			var decoded map[string]map[string]any
			if err := json.Unmarshal([]byte(cm.Data["initial-entities.json"]), &decoded); err != nil {
				t.Errorf("the file is not a JSON object of objects: %v", err)
			}
		})
	}
}

func TestRoomRBAC(t *testing.T) {
	room := testRoom()
	role := roleForRoom(room)
	assertControlledByRoom(t, role, room)
	if len(role.Rules) != 2 {
		t.Fatalf("role has %d rules, want 2", len(role.Rules))
	}
	for _, rule := range role.Rules {
		if len(rule.ResourceNames) != 1 || rule.ResourceNames[0] != "lobby" || rule.APIGroups[0] != "xrooms.dev" {
			t.Errorf("rule %+v is not limited to Room lobby", rule)
		}
	}
	if r := role.Rules[1]; r.Resources[0] != "rooms/status" {
		t.Errorf("second rule is on %v, want rooms/status", r.Resources)
	}
	binding := roleBindingForRoom(room)
	assertControlledByRoom(t, binding, room)
	if binding.RoleRef.Name != "lobby-room" || binding.RoleRef.Kind != "Role" || binding.Subjects[0].Name != "lobby-room" || binding.Subjects[0].Namespace != "games" {
		t.Errorf("binding %+v does not bind Role lobby-room to ServiceAccount games/lobby-room", binding)
	}
	sa := serviceAccountForRoom(room)
	assertControlledByRoom(t, sa, room)
	if sa.Name != "lobby-room" {
		t.Errorf("ServiceAccount %s, want lobby-room", sa.Name)
	}
}

func TestSyncService(t *testing.T) {
	room := testRoom()
	live := serviceForRoom(room)
	live.Spec.ClusterIP = "10.0.0.7"
	live.Spec.SessionAffinity = corev1.ServiceAffinityNone

	t.Run("a Service that matches stays as it is", func(t *testing.T) {
		got := live.DeepCopy()
		syncService(got, serviceForRoom(room))
		if got.Spec.ClusterIP != "10.0.0.7" || got.Spec.Ports[0].Port != 4000 || len(got.Spec.Ports) != 1 {
			t.Errorf("service changed: %+v", got.Spec)
		}
	})
	t.Run("a new type and port are set and the allocated node port is kept", func(t *testing.T) {
		got := live.DeepCopy()
		got.Spec.Type = corev1.ServiceTypeNodePort
		got.Spec.Ports[0].NodePort = 30123
		desired := serviceForRoom(testRoom(func(r *xroomsv1alpha1.Room) {
			r.Spec.Service.Type = corev1.ServiceTypeLoadBalancer
			r.Spec.Service.Port = 4443
		}))
		syncService(got, desired)
		if got.Spec.Type != corev1.ServiceTypeLoadBalancer || got.Spec.Ports[0].Port != 4443 || got.Spec.Ports[0].NodePort != 30123 || got.Spec.ClusterIP != "10.0.0.7" {
			t.Errorf("service %+v, want LoadBalancer on 4443 keeping node port 30123 and the cluster IP", got.Spec)
		}
	})
	t.Run("a selector edited by hand is put back", func(t *testing.T) {
		got := live.DeepCopy()
		got.Spec.Selector = map[string]string{"app": "other"}
		syncService(got, serviceForRoom(room))
		if got.Spec.Selector[LabelRoom] != "lobby" || got.Spec.Selector["app"] != "" {
			t.Errorf("selector %v, want the room's", got.Spec.Selector)
		}
	})
}
