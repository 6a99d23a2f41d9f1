package controllers

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

// TestRoomPodPassesRestrictedPodSecurity creates a Room in a namespace that enforces the
// restricted Pod Security Standard: the API server refuses any pod that is not restricted.
func TestRoomPodPassesRestrictedPodSecurity(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "xrooms-restricted-",
		Labels:       map[string]string{"pod-security.kubernetes.io/enforce": "restricted"},
	}}
	if err := e.client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Run("a pod that is not restricted is refused there", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: ns.Name},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
		}
		if err := e.client.Create(ctx, pod); !apierrors.IsForbidden(err) {
			t.Fatalf("creating an unrestricted pod returned %v, want Forbidden: Pod Security admission is not enforcing", err)
		}
	})
	r, _ := e.reconciler()
	for _, p := range []xroomsv1alpha1.PersistenceType{xroomsv1alpha1.PersistenceEphemeral, xroomsv1alpha1.PersistenceVolume} {
		t.Run("the room pod is admitted with persistence "+string(p), func(t *testing.T) {
			room := newRoom(t, e.client, ns.Name, "restricted-"+strings.ToLower(string(p)), func(r *xroomsv1alpha1.Room) { r.Spec.Persistence.Type = p })
			reconcile(t, r, room)
			got := getRoom(t, e.client, room)
			if got.Status.Phase != xroomsv1alpha1.RoomStarting {
				t.Errorf("phase %s (%+v), want Starting", got.Status.Phase, got.Status.Conditions)
			}
		})
	}
}

// TestManifests applies what users apply: the sample Room and the operator's kustomization.
func TestManifests(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)

	t.Run("the sample Room is accepted and seeds a small scene", func(t *testing.T) {
		kubectl(t, e, "apply", "--server-side", "-n", ns, "-k", filepath.Join("..", "config", "samples"))
		r, _ := e.reconciler()
		room := getRoom(t, e.client, &xroomsv1alpha1.Room{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lobby"}})
		reconcile(t, r, room)
		var scene map[string]map[string]any
		cm := get[corev1.ConfigMap](t, e.client, ns, "lobby-entities")
		if err := json.Unmarshal([]byte(cm.Data["initial-entities.json"]), &scene); err != nil {
			t.Fatal(err)
		}
		boxes := 0
		for _, components := range scene {
			if components["shape"] == "box" {
				boxes++
			}
		}
		if scene["floor"] == nil || scene["spawn"]["spawn"] != true || boxes != 3 {
			t.Errorf("sample scene %v, want a floor, three boxes and a spawn point", scene)
		}
		if env := envOf(get[corev1.Pod](t, e.client, ns, "lobby-room").Spec.Containers[0]); env["XROOMS_SYNC_INTERVAL"] != "100ms" || env["XROOMS_MAX_CLIENTS"] != "32" {
			t.Errorf("sample pod env %v, want the sample's syncInterval and maxClients", env)
		}
	})
	t.Run("config/default renders and the API server accepts it", func(t *testing.T) {
		render := exec.Command(kubectlPath(t, e), "kustomize", filepath.Join("..", "config", "default"))
		out, err := render.Output()
		if err != nil {
			t.Fatalf("kubectl kustomize config/default: %v", err)
		}
		path := filepath.Join(t.TempDir(), "operator.yaml")
		if err := os.WriteFile(path, out, 0o600); err != nil {
			t.Fatal(err)
		}
		kubectl(t, e, "apply", "--server-side", "--force-conflicts", "-f", path)
		dep := get[appsv1.Deployment](t, e.client, "xrooms-system", "xrooms-controller-manager")
		if dep.Spec.Template.Spec.ServiceAccountName != "xrooms-controller-manager" || dep.Spec.Template.Spec.Containers[0].Image != "ghcr.io/xrooms/xrooms:dev" {
			t.Errorf("manager Deployment %+v does not run the operator image as its ServiceAccount", dep.Spec.Template.Spec)
		}
	})
}
