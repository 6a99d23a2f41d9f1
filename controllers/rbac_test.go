package controllers

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

// clientAs returns a client that acts as the given user, through impersonation, so RBAC
// decides what it may do.
func (e *testEnv) clientAs(t *testing.T, user string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(e.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: e.scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// roomServerStatus is the status apply the room server will make under its own field manager.
func roomServerStatus(ns, name string, clients, entities int64, sync string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"status": map[string]any{
			"clients":      clients,
			"entities":     entities,
			"syncInterval": sync,
			"lastSyncTime": metav1.Now().UTC().Format(time.RFC3339),
		},
	}}
	u.SetGroupVersionKind(xroomsv1alpha1.GroupVersion.WithKind("Room"))
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

func TestRoomPodIdentity(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	r, _ := e.reconciler()
	lobby := runningRoom(t, e, r, ns, "lobby")
	other := runningRoom(t, e, r, ns, "other")
	asRoom := e.clientAs(t, "system:serviceaccount:"+ns+":lobby-room")
	ctx := context.Background()

	t.Run("the room server may read its own Room", func(t *testing.T) {
		if err := asRoom.Get(ctx, client.ObjectKeyFromObject(lobby), &xroomsv1alpha1.Room{}); err != nil {
			t.Errorf("get own Room: %v", err)
		}
		list := &xroomsv1alpha1.RoomList{}
		if err := asRoom.List(ctx, list, client.InNamespace(ns), client.MatchingFields{"metadata.name": "lobby"}); err != nil || len(list.Items) != 1 {
			t.Errorf("list own Room by name: %d items, %v", len(list.Items), err)
		}
	})
	t.Run("the room server may not read other Rooms", func(t *testing.T) {
		if err := asRoom.Get(ctx, client.ObjectKeyFromObject(other), &xroomsv1alpha1.Room{}); !apierrors.IsForbidden(err) {
			t.Errorf("get another Room: %v, want Forbidden", err)
		}
		if err := asRoom.List(ctx, &xroomsv1alpha1.RoomList{}, client.InNamespace(ns)); !apierrors.IsForbidden(err) {
			t.Errorf("list all Rooms: %v, want Forbidden", err)
		}
	})
	t.Run("the room server may not change its spec", func(t *testing.T) {
		patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"maxClients":1000}}`))
		if err := asRoom.Patch(ctx, lobby.DeepCopy(), patch); !apierrors.IsForbidden(err) {
			t.Errorf("patch own spec: %v, want Forbidden", err)
		}
	})
	t.Run("the room server may report only its own status", func(t *testing.T) {
		err := asRoom.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(roomServerStatus(ns, "other", 1, 1, "200ms")), client.FieldOwner("xrooms-roomserver"))
		if !apierrors.IsForbidden(err) {
			t.Errorf("apply another Room's status: %v, want Forbidden", err)
		}
		err = asRoom.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(roomServerStatus(ns, "lobby", 3, 5, "200ms")), client.FieldOwner("xrooms-roomserver"))
		if err != nil {
			t.Fatalf("apply own status: %v", err)
		}
	})
	t.Run("the controller's status writes keep what the room server reported", func(t *testing.T) {
		setPodStatus(t, e.client, ns, "lobby-room", podNotReady)
		reconcile(t, r, lobby)
		got := getRoom(t, e.client, lobby)
		if got.Status.Phase != xroomsv1alpha1.RoomStarting {
			t.Fatalf("phase %s, want Starting: the controller did not write", got.Status.Phase)
		}
		if got.Status.Clients == nil || *got.Status.Clients != 3 || got.Status.Entities == nil || *got.Status.Entities != 5 ||
			got.Status.SyncInterval != "200ms" || got.Status.LastSyncTime == nil {
			t.Errorf("room server fields lost: %+v", got.Status)
		}
		setPodStatus(t, e.client, ns, "lobby-room", podRunningAndReady)
		reconcile(t, r, lobby)
	})
	t.Run("kubectl get rooms shows phase, clients, entities, sync, endpoint and access", func(t *testing.T) {
		out := kubectl(t, e, "get", "rooms", "-n", ns)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if got := strings.Fields(lines[0]); strings.Join(got, " ") != "NAME PHASE CLIENTS ENTITIES SYNC ENDPOINT ACCESS AGE" {
			t.Fatalf("headers %q, want NAME PHASE CLIENTS ENTITIES SYNC ENDPOINT ACCESS AGE", lines[0])
		}
		var row []string
		for _, l := range lines[1:] {
			if f := strings.Fields(l); len(f) > 0 && f[0] == "lobby" {
				row = f
			}
		}
		want := []string{"lobby", "Running", "3", "5", "200ms", "ws://lobby-room." + ns + ".svc:4000/socket", ReasonOpenRoom}
		if len(row) != len(want)+1 || strings.Join(row[:len(want)], " ") != strings.Join(want, " ") {
			t.Errorf("row %q, want %q followed by an age\n%s", row, want, out)
		}
		t.Logf("kubectl get rooms:\n%s", out)
		if out := kubectl(t, e, "get", "xr", "other", "-n", ns, "-o", "jsonpath={.status.phase}"); out != "Running" {
			t.Errorf("the short name xr gave %q, want Running", out)
		}
	})
}

// kubectlPath finds kubectl: next to the envtest binaries (make envtest links it there) or on
// PATH.
func kubectlPath(t *testing.T, e *testEnv) string {
	t.Helper()
	bin := filepath.Join(e.assets, "kubectl")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is needed for this test: it is not in %s nor on PATH", e.assets)
	}
	return bin
}

// kubectl runs kubectl against the envtest API server as an administrator.
func kubectl(t *testing.T, e *testEnv, args ...string) string {
	t.Helper()
	user, err := e.env.AddUser(envtest.User{Name: "kubectl-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(kubectlPath(t, e), append([]string{"--kubeconfig", path}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

// TestManagerRBACIsEnough runs the controller as a user holding only the generated
// config/rbac/role.yaml, so a missing marker fails here rather than in a cluster.
func TestManagerRBACIsEnough(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	ctx := context.Background()
	r := e.managerReconciler(t, ns)
	room := runningRoom(t, e, r, ns, "rbac", func(r *xroomsv1alpha1.Room) {
		r.Spec.Persistence.Type = xroomsv1alpha1.PersistenceVolume
		r.Spec.InitialEntities = sceneEntities
	})

	// Replacing the pod and restoring drift need delete and patch.
	updateRoom(t, e.client, room, func(r *xroomsv1alpha1.Room) { r.Spec.Image = "example.com/xrooms/roomserver:v2" })
	reconcile(t, r, room)
	svc := get[corev1.Service](t, e.client, ns, "rbac-room")
	svc.Spec.Ports[0].Port = 1
	if err := e.client.Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	reconcile(t, r, room)
	if got := get[corev1.Pod](t, e.client, ns, "rbac-room"); got.Spec.Containers[0].Image != "example.com/xrooms/roomserver:v2" {
		t.Errorf("pod image %s, want the new image", got.Spec.Containers[0].Image)
	}
	if got := get[corev1.Service](t, e.client, ns, "rbac-room"); got.Spec.Ports[0].Port != 4000 {
		t.Errorf("Service port %d, want it restored to 4000", got.Spec.Ports[0].Port)
	}
}

// managerReconciler returns a reconciler acting as a user holding only the generated
// config/rbac/role.yaml (bound for the test namespace ns).
func (e *testEnv) managerReconciler(t *testing.T, ns string) *RoomReconciler {
	t.Helper()
	ctx := context.Background()
	b, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(b, role); err != nil {
		t.Fatal(err)
	}
	role.Name = "xrooms-test-manager-" + ns
	user := "xrooms-test-manager-" + ns
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	for _, obj := range []client.Object{role, binding} {
		if err := e.client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}

	r, _ := e.reconciler()
	asManager := e.clientAs(t, user)
	r.Client, r.APIReader = asManager, asManager
	// RBAC bindings take effect asynchronously; wait until the role is in force.
	waitFor(t, "the manager role to take effect", func() (bool, error) {
		err := asManager.List(ctx, &xroomsv1alpha1.RoomList{}, client.InNamespace(ns))
		return err == nil, err
	})
	return r
}
