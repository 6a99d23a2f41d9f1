package controllers

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

func TestRoomAuth(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	c := e.client
	ctx := context.Background()
	// The manager's own RBAC: reading the Secret needs the generated get on secrets.
	r := e.managerReconciler(t, ns)
	const value = "a join-token secret of more than 32 bytes"
	withAuth := func(name, key string) func(*xroomsv1alpha1.Room) {
		return func(r *xroomsv1alpha1.Room) {
			r.Spec.Auth = &xroomsv1alpha1.RoomAuth{SecretRef: xroomsv1alpha1.SecretKeyRef{Name: name, Key: key}}
		}
	}
	room := newRoom(t, c, ns, "vault", withAuth("vault-auth", "secret"))

	wantBlocked := func(t *testing.T, reason, message string) {
		t.Helper()
		res := reconcile(t, r, room)
		if res.RequeueAfter == 0 || res.RequeueAfter > secretRetry {
			t.Errorf("requeue after %v, want a look again within %v: Secrets are not watched", res.RequeueAfter, secretRetry)
		}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "vault-room"}, &corev1.Pod{}); !apierrors.IsNotFound(err) {
			t.Fatal("a pod was created without its auth Secret")
		}
		got := getRoom(t, c, room)
		ready, authn := condition(t, got, xroomsv1alpha1.ConditionReady), condition(t, got, xroomsv1alpha1.ConditionAuthenticated)
		if got.Status.Phase != xroomsv1alpha1.RoomFailed || ready.Reason != reason || !strings.Contains(ready.Message, message) {
			t.Errorf("phase %s, Ready %+v; want Failed, %s saying %q", got.Status.Phase, ready, reason, message)
		}
		if authn.Status != metav1.ConditionFalse || authn.Reason != reason {
			t.Errorf("Authenticated %+v, want False/%s", authn, reason)
		}
		if b, _ := json.Marshal(got.Status); strings.Contains(string(b), value) || strings.Contains(string(b), "short") {
			t.Errorf("the status shows the secret: %s", b)
		}
	}

	t.Run("a missing Secret is reported, not left to a stuck pod", func(t *testing.T) {
		wantBlocked(t, ReasonAuthSecretMissing, "Secret vault-auth named by spec.auth.secretRef does not exist")
		waitForEvent(t, c, room, corev1.EventTypeWarning, string(xroomsv1alpha1.RoomFailed), "Secret vault-auth named by spec.auth.secretRef does not exist")
	})
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vault-auth", Namespace: ns}, Data: map[string][]byte{"other": []byte(value)}}
	if err := c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	t.Run("a missing key is reported", func(t *testing.T) {
		wantBlocked(t, ReasonAuthSecretMissing, `has no key "secret"`)
	})
	t.Run("a short secret is reported", func(t *testing.T) {
		secret.Data["secret"] = []byte("short")
		if err := c.Update(ctx, secret); err != nil {
			t.Fatal(err)
		}
		wantBlocked(t, ReasonAuthSecretInvalid, "at least 32 bytes")
	})
	t.Run("the pod gets the secret by reference", func(t *testing.T) {
		secret.Data["secret"] = []byte(value)
		if err := c.Update(ctx, secret); err != nil {
			t.Fatal(err)
		}
		reconcile(t, r, room)
		pod := get[corev1.Pod](t, c, ns, "vault-room")
		env := envVar(pod, envAuthSecret)
		if env == nil || env.Value != "" || env.ValueFrom == nil || env.ValueFrom.SecretKeyRef == nil ||
			env.ValueFrom.SecretKeyRef.Name != "vault-auth" || env.ValueFrom.SecretKeyRef.Key != "secret" {
			t.Fatalf("env %s = %+v, want a secretKeyRef to vault-auth/secret", envAuthSecret, env)
		}
		if b, _ := json.Marshal(pod); strings.Contains(string(b), value) {
			t.Fatal("the secret's value is in the pod")
		}
		setPodStatus(t, c, ns, "vault-room", podRunningAndReady)
		reconcile(t, r, room)
		got := getRoom(t, c, room)
		authn := condition(t, got, xroomsv1alpha1.ConditionAuthenticated)
		if got.Status.Phase != xroomsv1alpha1.RoomRunning || authn.Status != metav1.ConditionTrue || authn.Reason != ReasonTokenRequired ||
			!strings.Contains(authn.Message, `key "secret" of Secret vault-auth`) {
			t.Errorf("phase %s, Authenticated %+v; want Running and True/TokenRequired", got.Status.Phase, authn)
		}
	})
	t.Run("another key replaces the pod", func(t *testing.T) {
		old := get[corev1.Pod](t, c, ns, "vault-room")
		secret.Data["next"] = []byte(value + " rotated")
		if err := c.Update(ctx, secret); err != nil {
			t.Fatal(err)
		}
		updateRoom(t, c, room, withAuth("vault-auth", "next"))
		reconcile(t, r, room)
		pod := get[corev1.Pod](t, c, ns, "vault-room")
		if pod.UID == old.UID || envVar(pod, envAuthSecret).ValueFrom.SecretKeyRef.Key != "next" {
			t.Fatal("the pod was not replaced for a new secretRef")
		}
		setPodStatus(t, c, ns, "vault-room", podRunningAndReady)
		reconcile(t, r, room)
	})
	t.Run("removing auth opens the room and says so", func(t *testing.T) {
		old := get[corev1.Pod](t, c, ns, "vault-room")
		updateRoom(t, c, room, func(r *xroomsv1alpha1.Room) { r.Spec.Auth = nil })
		reconcile(t, r, room)
		pod := get[corev1.Pod](t, c, ns, "vault-room")
		if pod.UID == old.UID || envVar(pod, envAuthSecret) != nil {
			t.Fatal("the pod was not replaced without the secret")
		}
		authn := condition(t, getRoom(t, c, room), xroomsv1alpha1.ConditionAuthenticated)
		if authn.Status != metav1.ConditionFalse || authn.Reason != ReasonOpenRoom || !strings.Contains(authn.Message, "anyone") {
			t.Errorf("Authenticated %+v, want False/OpenRoom", authn)
		}
	})
}

func envVar(pod *corev1.Pod, name string) *corev1.EnvVar {
	for i, e := range pod.Spec.Containers[0].Env {
		if e.Name == name {
			return &pod.Spec.Containers[0].Env[i]
		}
	}
	return nil
}
