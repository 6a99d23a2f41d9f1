// Package controllers holds the Room reconciler: it runs one room-server Pod and one Service
// per Room, with the ServiceAccount, Role, RoleBinding, ConfigMap and PersistentVolumeClaim they
// need, and reports the room's phase, conditions and endpoint in its status.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
	"github.com/xrooms/xrooms/roomserver/auth"
)

// FieldManager is the server-side apply field manager of the controller's status writes. The
// room server writes its own status fields under another manager, so neither clobbers the other.
const FieldManager = "xrooms-controller"

// DefaultRoomServerImage is the room-server image of Rooms that do not set spec.image, unless
// the manager is started with another.
const DefaultRoomServerImage = "ghcr.io/xrooms/xrooms:dev"

// defaultSyncInterval mirrors the API default of spec.syncInterval.
const defaultSyncInterval = 200 * time.Millisecond

// Retry delays for problems no watch event announces the end of.
const (
	// conflictRetry: a foreign object holding one of the Room's names may be deleted at any
	// time, and the cache only sees the Room's own objects.
	conflictRetry = 30 * time.Second
	// forbiddenRetry: a quota or policy that forbade an object may be lifted.
	forbiddenRetry = time.Minute
	// secretRetry: the operator does not watch Secrets, so it looks again for a missing one.
	secretRetry = 10 * time.Second
)

// RoomReconciler makes a Room's objects match its spec and reports their state in its status.
type RoomReconciler struct {
	// Client reads from the manager's cache, which holds only the controller's own objects
	// (see CacheOptions), and writes to the API server.
	client.Client
	// APIReader reads from the API server. It finds objects the cache does not hold: a foreign
	// object with one of the Room's names, or an own object someone stripped of its labels.
	APIReader client.Reader
	// Recorder emits the Room's events.
	Recorder events.EventRecorder
	// Clock stamps condition transitions.
	Clock clock.PassiveClock
	// RoomServerImage is the image of Rooms that do not set spec.image.
	RoomServerImage string
}

// roomSync carries one pass over one Room through the reconcile steps.
type roomSync struct {
	// room is the Room as read at the start of the pass. It is never modified: it may be the
	// cache's copy.
	room *xroomsv1alpha1.Room
	log  logr.Logger
	obs  observation
	// requeueAfter asks for another pass after a delay when no watch event will come.
	requeueAfter time.Duration
}

func (s *roomSync) retryAfter(d time.Duration) {
	if s.requeueAfter == 0 || d < s.requeueAfter {
		s.requeueAfter = d
	}
}

// +kubebuilder:rbac:groups=xrooms.dev,resources=rooms,verbs=get;list;watch
// +kubebuilder:rbac:groups=xrooms.dev,resources=rooms/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=xrooms.dev,resources=rooms/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;delete;patch
// +kubebuilder:rbac:groups="",resources=services;configmaps;persistentvolumeclaims;serviceaccounts,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// Reconcile brings one Room's objects in line with its spec, in steps, then writes its status
// if it changed. Each step opens with a guard and returns at once when it does not apply.
// An error means a transient failure: the pass is retried with backoff and the status is left
// as it was. Problems that need a change to the Room or the cluster are reported in the
// status instead, and not retried in a loop.
func (r *RoomReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	room := &xroomsv1alpha1.Room{}
	if err := r.Get(ctx, req.NamespacedName, room); err != nil {
		// A deleted Room's objects go with it through their owner references.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	s := &roomSync{room: room, log: loggerForRoom(ctx, room)}
	s.obs.podHash = podSpecHash(room, r.RoomServerImage)

	steps := []func(context.Context, *roomSync) error{
		r.reconcileDeletion,
		r.reconcileServiceAccount,
		r.reconcileRole,
		r.reconcileRoleBinding,
		r.reconcileEntities,
		r.reconcilePVC,
		r.reconcileAuthSecret,
		r.reconcilePod,
		r.reconcileService,
		r.updateStatus,
	}
	for _, step := range steps {
		if err := step(ctx, s); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{RequeueAfter: s.requeueAfter}, nil
}

// loggerForRoom returns the pass's logger with the Room's key on every line.
func loggerForRoom(ctx context.Context, room *xroomsv1alpha1.Room) logr.Logger {
	return log.FromContext(ctx).WithValues("room", client.ObjectKeyFromObject(room).String())
}

// reconcileDeletion notes a Room being deleted: its objects are deleted by the garbage
// collector through their owner references, so the later steps only stand aside.
func (r *RoomReconciler) reconcileDeletion(_ context.Context, s *roomSync) error {
	if s.room.DeletionTimestamp.IsZero() {
		return nil
	}
	s.obs.deleting = true
	return nil
}

// skipPrerequisite is the guard of the steps that make objects the pod needs.
func (s *roomSync) skipPrerequisite() bool { return s.obs.deleting || s.obs.blocked != nil }

func (r *RoomReconciler) reconcileServiceAccount(ctx context.Context, s *roomSync) error {
	if s.skipPrerequisite() {
		return nil
	}
	_, iss, err := ensureChild(ctx, r, s, serviceAccountForRoom(s.room), nil)
	s.obs.blocked = iss
	return err
}

func (r *RoomReconciler) reconcileRole(ctx context.Context, s *roomSync) error {
	if s.skipPrerequisite() {
		return nil
	}
	_, iss, err := ensureChild(ctx, r, s, roleForRoom(s.room), func(live, desired *rbacv1.Role) {
		if !equality.Semantic.DeepEqual(live.Rules, desired.Rules) {
			live.Rules = desired.Rules
		}
	})
	s.obs.blocked = iss
	return err
}

func (r *RoomReconciler) reconcileRoleBinding(ctx context.Context, s *roomSync) error {
	if s.skipPrerequisite() {
		return nil
	}
	desired := roleBindingForRoom(s.room)
	live, iss, err := ensureChild(ctx, r, s, desired, func(live, desired *rbacv1.RoleBinding) {
		if !equality.Semantic.DeepEqual(live.Subjects, desired.Subjects) {
			live.Subjects = desired.Subjects
		}
	})
	s.obs.blocked = iss
	if err != nil || live == nil || live.RoleRef == desired.RoleRef {
		return err
	}
	// roleRef cannot be changed: delete the binding and let the next pass make it again.
	s.log.Info("deleting RoleBinding with a foreign roleRef", "roleBinding", live.Name)
	if err := r.Delete(ctx, live, client.Preconditions{UID: &live.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("failed to delete RoleBinding %s of Room %s: %w", live.Name, s.room.Name, err)
	}
	s.retryAfter(time.Second)
	return nil
}

// reconcileEntities keeps the ConfigMap that carries initialEntities to the pod. Its content
// changes reach a running pod's mounted file without replacing the pod.
func (r *RoomReconciler) reconcileEntities(ctx context.Context, s *roomSync) error {
	if s.skipPrerequisite() {
		return nil
	}
	cm, err := entitiesConfigMapForRoom(s.room)
	if err != nil {
		s.obs.blocked = &issue{reason: ReasonRejected, message: err.Error(), needsChange: true}
		return nil
	}
	_, iss, err := ensureChild(ctx, r, s, cm, func(live, desired *corev1.ConfigMap) {
		if !equality.Semantic.DeepEqual(live.Data, desired.Data) {
			live.Data = desired.Data
		}
	})
	s.obs.blocked = iss
	return err
}

// reconcilePVC makes the claim of persistence type Volume. A claim stays when the Room moves
// back to Ephemeral (its data is never deleted behind the user's back) and goes with the Room.
func (r *RoomReconciler) reconcilePVC(ctx context.Context, s *roomSync) error {
	if s.skipPrerequisite() || persistenceType(s.room) != xroomsv1alpha1.PersistenceVolume {
		return nil
	}
	_, iss, err := ensureChild(ctx, r, s, pvcForRoom(s.room), nil)
	s.obs.blocked = iss
	return err
}

// reconcileAuthSecret checks that the Secret key spec.auth names exists and holds a usable
// secret before the pod is made: without it the pod would sit in CreateContainerConfigError
// with nothing on the Room saying why. The Secret is read straight from the API server (only
// get is granted), so the operator never caches or watches Secrets; a missing one is looked
// for again after secretRetry.
func (r *RoomReconciler) reconcileAuthSecret(ctx context.Context, s *roomSync) error {
	a := s.room.Spec.Auth
	if s.skipPrerequisite() || a == nil {
		return nil
	}
	ref := a.SecretRef
	secret := &corev1.Secret{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: s.room.Namespace, Name: ref.Name}, secret)
	var iss *issue
	switch {
	case apierrors.IsNotFound(err):
		iss = &issue{reason: ReasonAuthSecretMissing, message: fmt.Sprintf("Secret %s named by spec.auth.secretRef does not exist; create it", ref.Name)}
	case apierrors.IsForbidden(err):
		iss = &issue{reason: ReasonAuthSecretUnreadable, message: fmt.Sprintf("the operator may not read Secret %s named by spec.auth.secretRef: %v", ref.Name, err)}
	case err != nil:
		return fmt.Errorf("failed to get Secret %s of Room %s: %w", ref.Name, s.room.Name, err)
	default:
		if value, ok := secret.Data[ref.Key]; !ok {
			iss = &issue{reason: ReasonAuthSecretMissing, message: fmt.Sprintf("Secret %s named by spec.auth.secretRef has no key %q", ref.Name, ref.Key)}
		} else if err := auth.CheckSecret(value); err != nil {
			iss = &issue{reason: ReasonAuthSecretInvalid, message: fmt.Sprintf("key %q of Secret %s: %v", ref.Key, ref.Name, err)}
		}
	}
	if iss != nil {
		iss.needsChange = true
		s.obs.blocked, s.obs.authIssue = iss, iss
		s.retryAfter(secretRetry)
	}
	return nil
}

// reconcilePod makes sure the Room has exactly one pod that matches its spec. It creates a
// missing pod, replaces an ended one or one whose pod-spec hash or image no longer matches,
// and puts back labels and annotations edited away by hand. It never touches a pod the Room
// does not control.
func (r *RoomReconciler) reconcilePod(ctx context.Context, s *roomSync) error {
	if s.obs.deleting || s.obs.blocked != nil {
		return nil
	}
	desired := podForRoom(s.room, r.RoomServerImage)
	pod, iss, err := r.ownPod(ctx, s, desired.Name)
	if err != nil || iss != nil {
		s.obs.podIssue = iss
		return err
	}
	if pod == nil {
		return r.createPod(ctx, s, desired, nil, "")
	}
	s.obs.pod = pod
	if pod.DeletionTimestamp != nil {
		// The pod's deletion event brings the next pass, which makes its successor.
		return nil
	}

	var reason, why string
	switch {
	case podHasEnded(pod):
		reason, why = ReasonPodFailed, "pod "+pod.Name+" "+podFailure(pod)
		r.Recorder.Eventf(s.room, pod, corev1.EventTypeWarning, EventPodFailed, "Replace", "Pod %s %s; replacing it", pod.Name, podFailure(pod))
	case pod.Annotations[AnnotationPodSpecHash] != s.obs.podHash:
		reason, why = ReasonPodReplaced, "the Room's pod spec changed"
	case containerImage(pod) != containerImage(desired):
		reason, why = ReasonPodReplaced, fmt.Sprintf("the pod's image was changed to %s", containerImage(pod))
	}
	if reason != "" {
		return r.replacePod(ctx, s, pod, desired, reason, why)
	}
	return r.restorePodMeta(ctx, s, pod, desired)
}

// ownPod finds the Room's pod: nil when there is none, an issue when the name is taken by a
// pod the Room does not control.
func (r *RoomReconciler) ownPod(ctx context.Context, s *roomSync, name string) (*corev1.Pod, *issue, error) {
	pod := &corev1.Pod{}
	err := r.Get(ctx, types.NamespacedName{Namespace: s.room.Namespace, Name: name}, pod)
	if apierrors.IsNotFound(err) {
		// The cache holds only labelled pods; a pod without the labels may still hold the name.
		err = r.APIReader.Get(ctx, types.NamespacedName{Namespace: s.room.Namespace, Name: name}, pod)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("failed to get Pod %s of Room %s: %w", name, s.room.Name, err)
	case !metav1.IsControlledBy(pod, s.room):
		s.retryAfter(conflictRetry)
		return nil, &issue{
			reason:      ReasonPodNameConflict,
			message:     fmt.Sprintf("Pod %s already exists and is not controlled by Room %s; delete or rename it", name, s.room.Name),
			needsChange: true,
		}, nil
	}
	return pod, nil, nil
}

// createPod creates the Room's pod. When it replaces old, deleted just before, replaces is
// "<Reason>: <why>", kept on the new pod so its condition can say why until it is ready.
func (r *RoomReconciler) createPod(ctx context.Context, s *roomSync, desired, old *corev1.Pod, replaces string) error {
	if old != nil {
		desired.Annotations[AnnotationReplaces] = replaces
	}
	err := r.Create(ctx, desired)
	switch {
	case err == nil:
		s.obs.pod = desired
		s.log.Info("created pod", "pod", desired.Name, "image", containerImage(desired), "podSpecHash", s.obs.podHash)
		if old == nil {
			r.Recorder.Eventf(s.room, desired, corev1.EventTypeNormal, EventCreated, "Create", "Created Pod %s", desired.Name)
		}
		return nil
	case apierrors.IsAlreadyExists(err) && old != nil:
		// The old pod terminates gracefully; its deletion event brings the pass that creates
		// the successor. Until then it is reported as terminating.
		s.obs.pod = old.DeepCopy()
		s.obs.pod.DeletionTimestamp = &metav1.Time{Time: r.Clock.Now()}
		return nil
	case apierrors.IsAlreadyExists(err):
		// The cache is behind: look again shortly.
		s.retryAfter(time.Second)
		return nil
	}
	if iss := rejection(s, err, ReasonPodRejected, "Pod", desired.Name); iss != nil {
		s.obs.pod, s.obs.podIssue = nil, iss
		return nil
	}
	return fmt.Errorf("failed to create Pod %s of Room %s: %w", desired.Name, s.room.Name, err)
}

// replacePod deletes the pod and creates its successor, in the same pass when the old pod goes
// at once (an ended or unscheduled pod does).
func (r *RoomReconciler) replacePod(ctx context.Context, s *roomSync, pod, desired *corev1.Pod, reason, why string) error {
	s.log.Info("replacing pod", "pod", pod.Name, "reason", reason, "why", why)
	if err := r.Delete(ctx, pod, client.Preconditions{UID: &pod.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("failed to delete Pod %s of Room %s: %w", pod.Name, s.room.Name, err)
	}
	if reason != ReasonPodFailed {
		r.Recorder.Eventf(s.room, pod, corev1.EventTypeNormal, EventReplaced, "Replace", "Replacing Pod %s: %s", pod.Name, why)
	}
	s.obs.pod = nil
	return r.createPod(ctx, s, desired, pod, reason+": "+why)
}

// restorePodMeta puts back the labels and annotations the controller set on the pod, when
// someone edited them; an unlabelled pod would drop out of its Service.
func (r *RoomReconciler) restorePodMeta(ctx context.Context, s *roomSync, pod, desired *corev1.Pod) error {
	patched := pod.DeepCopy()
	if !restoreMeta(patched, desired) {
		return nil
	}
	if err := r.Patch(ctx, patched, client.MergeFrom(pod)); err != nil {
		return fmt.Errorf("failed to restore labels of Pod %s of Room %s: %w", pod.Name, s.room.Name, err)
	}
	s.log.Info("restored pod labels and annotations", "pod", pod.Name)
	s.obs.pod = patched
	return nil
}

// reconcileService keeps the Service that selects the Room's pod.
func (r *RoomReconciler) reconcileService(ctx context.Context, s *roomSync) error {
	if s.obs.deleting {
		return nil
	}
	svc, iss, err := ensureChild(ctx, r, s, serviceForRoom(s.room), syncService)
	if iss != nil {
		if iss.reason == ReasonNameConflict {
			iss.reason = ReasonServiceNameConflict
		} else {
			iss.reason = ReasonServiceRejected
		}
	}
	s.obs.service, s.obs.serviceIssue = svc, iss
	return err
}

// syncService sets the fields of the Service the Room decides, keeping what the API server
// allocated (cluster IP, node ports).
func syncService(live, desired *corev1.Service) {
	if live.Spec.Type != desired.Spec.Type {
		live.Spec.Type = desired.Spec.Type
	}
	if !equality.Semantic.DeepEqual(live.Spec.Selector, desired.Spec.Selector) {
		live.Spec.Selector = desired.Spec.Selector
	}
	want := desired.Spec.Ports[0]
	if len(live.Spec.Ports) == 1 {
		// The API server drops a node port that the new type does not use.
		want.NodePort = live.Spec.Ports[0].NodePort
	}
	if len(live.Spec.Ports) != 1 || !equality.Semantic.DeepEqual(live.Spec.Ports[0], want) {
		live.Spec.Ports = []corev1.ServicePort{want}
	}
}

// updateStatus writes the controller's part of the status when it differs from what the Room
// shows, with server-side apply under FieldManager, and emits an event when the phase changes.
func (r *RoomReconciler) updateStatus(ctx context.Context, s *roomSync) error {
	now := metav1.NewTime(r.Clock.Now()).Rfc3339Copy()
	desired := roomStatusFor(s.room, s.obs, now)
	if controllerStatusEqual(&s.room.Status, &desired) {
		return nil
	}
	// The cache may not have seen this controller's last status write yet (a pass triggered by
	// a child's event often runs first). Compare with the API server's copy before writing, so
	// a stale cache causes neither a second write nor a second event.
	fresh := &xroomsv1alpha1.Room{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(s.room), fresh); err != nil {
		return client.IgnoreNotFound(err)
	}
	if fresh.UID != s.room.UID {
		return nil
	}
	current := s.room.DeepCopy()
	current.Status = fresh.Status
	desired = roomStatusFor(current, s.obs, now)
	if controllerStatusEqual(&current.Status, &desired) {
		return nil
	}
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&desired)
	if err != nil {
		return fmt.Errorf("failed to encode status of Room %s: %w", s.room.Name, err)
	}
	apply := &unstructured.Unstructured{Object: map[string]any{"status": content}}
	apply.SetGroupVersionKind(xroomsv1alpha1.GroupVersion.WithKind("Room"))
	apply.SetNamespace(s.room.Namespace)
	apply.SetName(s.room.Name)
	if err := r.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(apply), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("failed to update status of Room %s to %s: %w", s.room.Name, desired.Phase, err)
	}

	ready := desired.Conditions[0]
	s.log.Info("status updated", "phase", desired.Phase, "reason", ready.Reason, "message", ready.Message)
	was := current.Status.Phase
	wasReady := findCondition(current.Status.Conditions, xroomsv1alpha1.ConditionReady)
	if desired.Phase != was || (desired.Phase == xroomsv1alpha1.RoomFailed && (wasReady.Reason != ready.Reason || wasReady.Message != ready.Message)) {
		typ := corev1.EventTypeNormal
		if desired.Phase == xroomsv1alpha1.RoomFailed {
			typ = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(s.room, nil, typ, string(desired.Phase), "UpdateStatus", "%s", ready.Message)
	}
	r.recordInvalidRules(s.room, current.Status.Conditions, desired.Conditions)
	return nil
}

func findCondition(conds []metav1.Condition, t string) metav1.Condition {
	for _, c := range conds {
		if c.Type == t {
			return c
		}
	}
	return metav1.Condition{}
}

func containerImage(pod *corev1.Pod) string {
	for _, c := range pod.Spec.Containers {
		if c.Name == containerName {
			return c.Image
		}
	}
	return ""
}

// rejection turns an API error that no retry can fix into an issue: Invalid (the Room asks for
// something the API server refuses) or Forbidden (policy or quota; retried after a while in
// case it is lifted). Other errors return nil, to be retried.
func rejection(s *roomSync, err error, reason, kind, name string) *issue {
	switch {
	case apierrors.IsInvalid(err):
	case apierrors.IsForbidden(err):
		s.retryAfter(forbiddenRetry)
	default:
		return nil
	}
	s.log.Info("object rejected by the API server", "kind", kind, "name", name, "error", err.Error())
	return &issue{reason: reason, message: fmt.Sprintf("creating %s %s was rejected: %v", kind, name, err), needsChange: true}
}

// object is a pointer to a Kubernetes object type, so ensureChild can make an empty one.
type object[T any] interface {
	*T
	client.Object
}

// ensureChild makes sure the Room's object named like desired exists and is controlled by the
// Room. It creates it when missing, and otherwise restores the labels and annotations the
// controller set and, through sync, the fields the Room decides; it writes only when something
// differs. It returns the live object, or an issue (and no object) when the name is taken by an
// object the Room does not control or the API server rejects the object.
func ensureChild[T any, PT object[T]](ctx context.Context, r *RoomReconciler, s *roomSync, desired PT, sync func(live, desired PT)) (PT, *issue, error) {
	kind := kindOf(desired)
	key := client.ObjectKeyFromObject(desired)
	live := PT(new(T))
	err := r.Get(ctx, key, live)
	if apierrors.IsNotFound(err) {
		err = r.Create(ctx, desired)
		if err == nil {
			s.log.Info("created object", "kind", kind, "name", key.Name)
			switch any(desired).(type) {
			case *corev1.Service, *corev1.PersistentVolumeClaim: // what users look for; RBAC and the ConfigMap go in the log only
				r.Recorder.Eventf(s.room, desired, corev1.EventTypeNormal, EventCreated, "Create", "Created %s %s", kind, key.Name)
			}
			return desired, nil, nil
		}
		if apierrors.IsAlreadyExists(err) {
			// Not in the cache: foreign, or stripped of the labels the cache selects on.
			err = r.APIReader.Get(ctx, key, live)
		} else if iss := rejection(s, err, ReasonRejected, kind, key.Name); iss != nil {
			return nil, iss, nil
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("failed to get or create %s %s of Room %s: %w", kind, key.Name, s.room.Name, err)
	}
	if !metav1.IsControlledBy(live, s.room) {
		s.retryAfter(conflictRetry)
		return nil, &issue{
			reason:      ReasonNameConflict,
			message:     fmt.Sprintf("%s %s already exists and is not controlled by Room %s; delete or rename it", kind, key.Name, s.room.Name),
			needsChange: true,
		}, nil
	}
	patched := live.DeepCopyObject().(PT)
	restoreMeta(patched, desired)
	if sync != nil {
		sync(patched, desired)
	}
	if equality.Semantic.DeepEqual(live, patched) {
		return live, nil, nil
	}
	if err := r.Patch(ctx, patched, client.MergeFrom(live)); err != nil {
		if iss := rejection(s, err, ReasonRejected, kind, key.Name); iss != nil {
			return nil, iss, nil
		}
		return nil, nil, fmt.Errorf("failed to update %s %s of Room %s: %w", kind, key.Name, s.room.Name, err)
	}
	s.log.Info("updated object to match the Room", "kind", kind, "name", key.Name)
	return patched, nil, nil
}

// restoreMeta sets on live every label and annotation of desired that it lacks or has with
// another value, and the Room's controller reference if it is missing. It reports whether it
// changed anything. Labels and annotations added by others stay.
func restoreMeta(live, desired client.Object) bool {
	changed := false
	l := live.GetLabels()
	for k, v := range desired.GetLabels() {
		if cur, ok := l[k]; !ok || cur != v {
			if l == nil {
				l = map[string]string{}
			}
			l[k] = v
			changed = true
		}
	}
	live.SetLabels(l)
	a := live.GetAnnotations()
	for k, v := range desired.GetAnnotations() {
		if cur, ok := a[k]; !ok || cur != v {
			if a == nil {
				a = map[string]string{}
			}
			a[k] = v
			changed = true
		}
	}
	live.SetAnnotations(a)
	return changed
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *corev1.Pod:
		return "Pod"
	case *corev1.Service:
		return "Service"
	case *corev1.ServiceAccount:
		return "ServiceAccount"
	case *corev1.ConfigMap:
		return "ConfigMap"
	case *corev1.PersistentVolumeClaim:
		return "PersistentVolumeClaim"
	case *rbacv1.Role:
		return "Role"
	case *rbacv1.RoleBinding:
		return "RoleBinding"
	}
	return fmt.Sprintf("%T", obj)
}

// CacheOptions limits the manager's cache of the kinds the controller owns to the objects it
// created (labelled app.kubernetes.io/managed-by=xrooms-operator), so the operator does not
// hold every Pod, Service and ConfigMap of the cluster in memory.
func CacheOptions() cache.Options {
	own := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{LabelManagedBy: managedBy})}
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}:                   own,
		&corev1.Service{}:               own,
		&corev1.ServiceAccount{}:        own,
		&corev1.ConfigMap{}:             own,
		&corev1.PersistentVolumeClaim{}: own,
		&rbacv1.Role{}:                  own,
		&rbacv1.RoleBinding{}:           own,
	}}
}

// roomChanged passes the Room events the controller acts on: a spec change (a new generation)
// and the start of deletion. Status writes, the room server's frequent reports among them,
// change nothing the controller decides and are left out.
var roomChanged = predicate.Or[client.Object](
	predicate.GenerationChangedPredicate{},
	predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
	}},
)

// SetupWithManager registers the controller: a change to a Room, or to any object it controls,
// reconciles that Room.
func (r *RoomReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.RoomServerImage == "" {
		r.RoomServerImage = DefaultRoomServerImage
	}
	if r.Recorder == nil {
		return errors.New("RoomReconciler needs a Recorder")
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&xroomsv1alpha1.Room{}, builder.WithPredicates(roomChanged)).
		Owns(&corev1.Pod{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.PersistentVolumeClaim{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Named("room").
		Complete(r)
}
