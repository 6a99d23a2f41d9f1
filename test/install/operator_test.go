package install

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
	"github.com/xrooms/xrooms/controllers"
)

// restricted labels a namespace that enforces the restricted Pod Security Standard.
var restricted = map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}

// clientAs returns a client that acts as user, through impersonation, so RBAC decides.
func (c *cluster) clientAs(t *testing.T, user string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(c.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	as, err := client.New(cfg, client.Options{Scheme: c.scheme})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// managerPodIsAdmitted creates, as a server-side dry run, a pod from the installed manager
// Deployment's template in the Deployment's namespace, which enforces the restricted Pod Security
// Standard: envtest runs no Deployment controller, so this is how the pod meets admission.
func (c *cluster) managerPodIsAdmitted(t *testing.T, dep *appsv1.Deployment) {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: dep.Name + "-", Namespace: dep.Namespace, Labels: dep.Spec.Template.Labels},
		Spec:       *dep.Spec.Template.Spec.DeepCopy(),
	}
	if err := c.client.Create(ctx, pod, client.DryRunAll); err != nil {
		t.Errorf("the manager pod is refused in namespace %s (restricted Pod Security): %v", dep.Namespace, err)
	}
	// The same pod without its security settings is refused: admission is in force.
	pod.Spec.SecurityContext, pod.Spec.Containers[0].SecurityContext = nil, nil
	if err := c.client.Create(ctx, pod, client.DryRunAll); !apierrors.IsForbidden(err) {
		t.Errorf("a manager pod without securityContext got %v, want Forbidden: namespace %s does not enforce restricted Pod Security", err, dep.Namespace)
	}
}

// operatorRunsARoom runs the real Room reconciler as the installed operator's ServiceAccount:
// the installed RBAC must let it create a room's ServiceAccount, Role, RoleBinding, ConfigMap,
// Service and Pod. The Role grants get/list/watch on the Room and get/patch/update on its
// status; RBAC lets the operator grant that only because it holds those permissions itself.
func (c *cluster) operatorRunsARoom(t *testing.T, saNamespace, saName string) {
	t.Helper()
	ctx := context.Background()
	ns := c.namespace(t, "rooms", restricted)
	user := "system:serviceaccount:" + saNamespace + ":" + saName
	asOperator := c.clientAs(t, user)
	// RBAC bindings take effect asynchronously.
	waitFor(t, user+"'s RBAC to take effect", func() (bool, error) {
		err := asOperator.List(ctx, &xroomsv1alpha1.RoomList{}, client.InNamespace(ns))
		return err == nil, err
	})

	room := &xroomsv1alpha1.Room{ObjectMeta: metav1.ObjectMeta{Name: "lobby", Namespace: ns}}
	if err := c.client.Create(ctx, room); err != nil {
		t.Fatal(err)
	}
	r := &controllers.RoomReconciler{
		Client:          asOperator,
		APIReader:       asOperator,
		Recorder:        events.NewFakeRecorder(100),
		Clock:           clock.RealClock{},
		RoomServerImage: "example.com/xrooms:test",
	}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(room)}); err != nil {
		t.Fatalf("reconcile as %s: %v", user, err)
	}
	// The reconciler reports a refusal in the Room's status rather than as an error, so look
	// for what it made.
	for _, obj := range []client.Object{&corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}, &corev1.Service{}, &corev1.Pod{}} {
		if err := c.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "lobby-room"}, obj); err != nil {
			got := &xroomsv1alpha1.Room{}
			_ = c.client.Get(ctx, client.ObjectKeyFromObject(room), got)
			t.Fatalf("reconciling as %s made no %T lobby-room: %v\nRoom status: %+v", user, obj, err, got.Status)
		}
	}
	role := &rbacv1.Role{}
	if err := c.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "lobby-room"}, role); err != nil {
		t.Fatal(err)
	}
	var granted []string
	for _, rule := range role.Rules {
		granted = append(granted, strings.Join(rule.Resources, ",")+":"+strings.Join(rule.Verbs, ","))
	}
	if !strings.Contains(strings.Join(granted, " "), "rooms/status:get,patch,update") {
		t.Errorf("room Role grants %v, want rooms/status get,patch,update: the escalation check proves little", granted)
	}

	// Someone allowed to create Roles but not holding what the room's Role grants is refused
	// (RBAC escalation prevention), so the operator's success above rests on its own rules.
	t.Run("creating the room's Role needs the permissions it grants", func(t *testing.T) {
		roleMaker := "xrooms-test-role-maker-" + ns
		maker := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "role-maker", Namespace: ns},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"roles"}, Verbs: []string{"create", "get"}}},
		}
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "role-maker", Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: maker.Name},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: roleMaker}},
		}
		for _, obj := range []client.Object{maker, binding} {
			if err := c.client.Create(ctx, obj); err != nil {
				t.Fatal(err)
			}
		}
		asMaker := c.clientAs(t, roleMaker)
		waitFor(t, "the role maker's RBAC to take effect", func() (bool, error) {
			err := asMaker.Get(ctx, client.ObjectKeyFromObject(role), &rbacv1.Role{})
			return err == nil, err
		})
		copyOf := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "copy", Namespace: ns}, Rules: role.Rules}
		if err := asMaker.Create(ctx, copyOf); !apierrors.IsForbidden(err) {
			t.Errorf("creating the room's Role without holding its permissions: %v, want Forbidden", err)
		}
	})
}
