package install

import (
	"context"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestKustomizeInstall applies `kubectl kustomize config/default`, as `make deploy` does, to
// the API server and checks the operator it installs can run.
func TestKustomizeInstall(t *testing.T) {
	rendered := renderKustomize(t)
	c := startCluster(t)
	ctx := context.Background()
	// Server-side apply with kubectl's strict field validation: unknown fields are refused.
	c.kubectl(t, rendered, "apply", "--server-side", "--field-manager=kustomize-test", "-f", "-")
	c.kubectl(t, nil, "wait", "--for=condition=Established", "--timeout=30s", "crd/rooms.xrooms.dev")

	dep := as[appsv1.Deployment](t, parseManifest(t, rendered).find("Deployment", "xrooms-controller-manager"))
	if err := c.client.Get(ctx, client.ObjectKeyFromObject(dep), dep); err != nil {
		t.Fatal(err)
	}
	manager := dep.Spec.Template.Spec.Containers[0]
	t.Run("rooms default to the operator image", func(t *testing.T) {
		// `make deploy IMG=...` replaces this one image name everywhere in the output.
		if want := "--room-server-image=" + manager.Image; !slices.Contains(manager.Args, want) {
			t.Errorf("manager args %q lack %s: rooms would not run the operator's image", manager.Args, want)
		}
	})
	t.Run("the manager runs a binary of the image", func(t *testing.T) {
		checkRunsImageBinary(t, manager)
	})
	t.Run("the manager pod passes restricted Pod Security", func(t *testing.T) {
		ns := &corev1.Namespace{}
		if err := c.client.Get(ctx, client.ObjectKey{Name: dep.Namespace}, ns); err != nil {
			t.Fatal(err)
		}
		if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Errorf("namespace %s labels %v: the operator's namespace should enforce restricted Pod Security", ns.Name, ns.Labels)
		}
		c.managerPodIsAdmitted(t, dep)
	})
	t.Run("the operator's ServiceAccount may run a room", func(t *testing.T) {
		c.operatorRunsARoom(t, dep.Namespace, dep.Spec.Template.Spec.ServiceAccountName)
	})
}
