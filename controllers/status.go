package controllers

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

// issue is something that keeps a Room from running which the controller found itself (its
// pod's own status is read from the pod).
type issue struct {
	reason  string
	message string
	// needsChange means the controller cannot get past it alone (a name taken by a foreign
	// object, an object the API server rejects): the room is Failed until someone acts.
	needsChange bool
}

// observation is what one pass of the controller saw of a Room's objects.
type observation struct {
	deleting bool
	// pod is the Room's own pod, nil when there is none.
	pod *corev1.Pod
	// podHash is the pod-spec hash the Room asks for.
	podHash string
	// service is the Room's own Service, nil when there is none.
	service *corev1.Service
	// blocked is a problem with an object the pod needs; the pod step was skipped.
	blocked      *issue
	podIssue     *issue
	serviceIssue *issue
	// authIssue is a problem with the Secret spec.auth names (also in blocked).
	authIssue *issue
}

// controllerConditionTypes are the conditions this controller owns, in the order it writes them.
var controllerConditionTypes = []string{
	xroomsv1alpha1.ConditionReady,
	xroomsv1alpha1.ConditionPodReady,
	xroomsv1alpha1.ConditionServiceReady,
	xroomsv1alpha1.ConditionAuthenticated,
	xroomsv1alpha1.ConditionRulesValid,
}

// roomStatusFor computes the part of a Room's status the controller owns from what it
// observed: phase, conditions, observedGeneration, podName, serviceName, endpoint. The fields
// the room server reports are left empty. A condition keeps its lastTransitionTime from the
// Room's current status unless its status changes, in which case it becomes now.
func roomStatusFor(room *xroomsv1alpha1.Room, obs observation, now metav1.Time) xroomsv1alpha1.RoomStatus {
	podCond := podReadyCondition(obs)
	svcCond := serviceReadyCondition(room, obs)
	ready := metav1.Condition{
		Type:    xroomsv1alpha1.ConditionReady,
		Status:  metav1.ConditionTrue,
		Reason:  ReasonRoomReady,
		Message: "clients can connect at " + endpointFor(room, obs.service),
	}
	switch {
	case obs.deleting:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, ReasonTerminating, "the Room is being deleted"
	case podCond.Status != metav1.ConditionTrue:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, podCond.Reason, podCond.Message
	case svcCond.Status != metav1.ConditionTrue:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, svcCond.Reason, svcCond.Message
	}

	status := xroomsv1alpha1.RoomStatus{
		Phase:              roomPhase(obs),
		ObservedGeneration: room.Generation,
	}
	// Start from the current conditions so meta.SetStatusCondition keeps lastTransitionTime
	// for a condition whose status did not change, then keep only the controller's own.
	current := make([]metav1.Condition, 0, len(room.Status.Conditions))
	for _, c := range room.Status.Conditions {
		current = append(current, *c.DeepCopy())
	}
	for _, c := range []metav1.Condition{ready, podCond, svcCond, authenticatedCondition(room, obs), rulesValidCondition(room)} {
		c.ObservedGeneration = room.Generation
		c.LastTransitionTime = now
		meta.SetStatusCondition(&current, c)
	}
	for _, t := range controllerConditionTypes {
		status.Conditions = append(status.Conditions, *meta.FindStatusCondition(current, t))
	}

	if obs.deleting {
		// Nothing was looked up: keep naming what the Room had.
		status.PodName, status.ServiceName, status.Endpoint = room.Status.PodName, room.Status.ServiceName, room.Status.Endpoint
		return status
	}
	if obs.pod != nil {
		status.PodName = obs.pod.Name
	}
	if obs.service != nil {
		status.ServiceName = obs.service.Name
		status.Endpoint = endpointFor(room, obs.service)
	}
	return status
}

// roomPhase summarises an observation in one word.
func roomPhase(obs observation) xroomsv1alpha1.RoomPhase {
	switch {
	case obs.deleting:
		return xroomsv1alpha1.RoomTerminating
	case needsChange(obs.blocked) || needsChange(obs.podIssue) || needsChange(obs.serviceIssue):
		return xroomsv1alpha1.RoomFailed
	case obs.pod == nil:
		return xroomsv1alpha1.RoomPending
	case podIsReady(obs.pod):
		return xroomsv1alpha1.RoomRunning
	default:
		return xroomsv1alpha1.RoomStarting
	}
}

func needsChange(i *issue) bool { return i != nil && i.needsChange }

func podReadyCondition(obs observation) metav1.Condition {
	c := metav1.Condition{Type: xroomsv1alpha1.ConditionPodReady, Status: metav1.ConditionFalse}
	pod := obs.pod
	switch {
	case obs.deleting:
		c.Reason, c.Message = ReasonTerminating, "the Room is being deleted"
	case obs.blocked != nil:
		c.Reason, c.Message = obs.blocked.reason, obs.blocked.message
	case obs.podIssue != nil:
		c.Reason, c.Message = obs.podIssue.reason, obs.podIssue.message
	case pod == nil:
		c.Reason, c.Message = ReasonPodNotCreated, "the room-server pod has not been created yet"
	case pod.DeletionTimestamp != nil && podHasEnded(pod):
		c.Reason, c.Message = ReasonPodFailed, fmt.Sprintf("pod %s %s; waiting for it to be deleted to replace it", pod.Name, podFailure(pod))
	case pod.DeletionTimestamp != nil && pod.Annotations[AnnotationPodSpecHash] != obs.podHash:
		c.Reason, c.Message = ReasonPodReplaced, fmt.Sprintf("the Room's pod spec changed; waiting for the old pod %s to terminate to replace it", pod.Name)
	case pod.DeletionTimestamp != nil:
		c.Reason, c.Message = ReasonPodTerminating, fmt.Sprintf("pod %s is terminating; a new pod will replace it", pod.Name)
	case podIsReady(pod):
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, ReasonPodReady, fmt.Sprintf("pod %s is ready", pod.Name)
	default:
		c.Reason, c.Message = ReasonPodNotReady, podWaiting(pod)
		// A pod made to replace another says why until it is ready.
		if reason, why, ok := strings.Cut(pod.Annotations[AnnotationReplaces], ": "); ok {
			c.Reason, c.Message = reason, fmt.Sprintf("replaced the previous pod (%s); %s", why, c.Message)
		}
	}
	return c
}

func serviceReadyCondition(room *xroomsv1alpha1.Room, obs observation) metav1.Condition {
	c := metav1.Condition{Type: xroomsv1alpha1.ConditionServiceReady, Status: metav1.ConditionFalse}
	svc := obs.service
	switch {
	case obs.deleting:
		c.Reason, c.Message = ReasonTerminating, "the Room is being deleted"
	case obs.serviceIssue != nil:
		c.Reason, c.Message = obs.serviceIssue.reason, obs.serviceIssue.message
	case svc == nil:
		c.Reason, c.Message = ReasonServiceNotCreated, "the Service has not been created yet"
	default:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonServiceReady
		c.Message = fmt.Sprintf("Service %s (%s) exposes port %d", svc.Name, svc.Spec.Type, roomPort(room))
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && len(svc.Status.LoadBalancer.Ingress) == 0 {
			c.Message += "; the load balancer has no address yet, so the endpoint is the in-cluster one"
		}
	}
	return c
}

// authenticatedCondition says who may join: holders of a signed join token, or anyone.
func authenticatedCondition(room *xroomsv1alpha1.Room, obs observation) metav1.Condition {
	c := metav1.Condition{Type: xroomsv1alpha1.ConditionAuthenticated, Status: metav1.ConditionFalse}
	a := room.Spec.Auth
	switch {
	case a == nil:
		c.Reason, c.Message = ReasonOpenRoom, "the room is open: anyone who reaches it may join, as any user id; set spec.auth to require signed join tokens"
	case obs.authIssue != nil:
		c.Reason, c.Message = obs.authIssue.reason, obs.authIssue.message
	default:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonTokenRequired
		c.Message = fmt.Sprintf("clients need a join token signed with key %q of Secret %s", a.SecretRef.Key, a.SecretRef.Name)
	}
	return c
}

// podIsReady reports whether the pod runs and passes its readiness probe.
func podIsReady(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podHasEnded reports whether the pod will never run again. With restartPolicy Always that
// means it was evicted, hit a deadline or lost its node.
func podHasEnded(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded
}

// podFailure says why an ended pod ended, for conditions and events.
func podFailure(pod *corev1.Pod) string {
	verb := "failed"
	if pod.Status.Phase == corev1.PodSucceeded {
		verb = "exited"
	}
	switch {
	case pod.Status.Reason != "" && pod.Status.Message != "":
		return fmt.Sprintf("%s (%s: %s)", verb, pod.Status.Reason, strings.TrimSpace(pod.Status.Message))
	case pod.Status.Reason != "":
		return fmt.Sprintf("%s (%s)", verb, pod.Status.Reason)
	case pod.Status.Message != "":
		return fmt.Sprintf("%s (%s)", verb, strings.TrimSpace(pod.Status.Message))
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			return fmt.Sprintf("%s (container %s terminated: %s, exit code %d)", verb, cs.Name, t.Reason, t.ExitCode)
		}
	}
	return verb
}

// podWaiting says what a pod that is not ready is waiting for, from what the kubelet and the
// scheduler report. It leaves out counters and timers so an unchanged situation reads the
// same on every pass and does not cause a status write.
func podWaiting(pod *corev1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason != "" {
			return fmt.Sprintf("pod %s is not scheduled: %s", pod.Name, c.Reason)
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			msg := fmt.Sprintf("container %s of pod %s is waiting: %s", cs.Name, pod.Name, w.Reason)
			if t := cs.LastTerminationState.Terminated; t != nil {
				msg += fmt.Sprintf(" (last exit: %s, code %d)", t.Reason, t.ExitCode)
			}
			return msg
		}
	}
	return fmt.Sprintf("waiting for pod %s to pass its readiness probe", pod.Name)
}

// endpointFor is the WebSocket URL clients use: the load balancer's address once it has one,
// otherwise the Service's in-cluster DNS name. Empty without a Service.
func endpointFor(room *xroomsv1alpha1.Room, svc *corev1.Service) string {
	if svc == nil {
		return ""
	}
	port := roomPort(room)
	host := fmt.Sprintf("%s.%s.svc", svc.Name, svc.Namespace)
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.Hostname != "" {
				host = ing.Hostname
				break
			}
			if ing.IP != "" {
				host = ing.IP
				break
			}
		}
	}
	return "ws://" + net.JoinHostPort(host, strconv.Itoa(int(port))) + "/socket"
}

// controllerStatusEqual reports whether the controller-owned part of two statuses is the same,
// so an unchanged Room gets no status write.
func controllerStatusEqual(current, desired *xroomsv1alpha1.RoomStatus) bool {
	if current.Phase != desired.Phase ||
		current.ObservedGeneration != desired.ObservedGeneration ||
		current.PodName != desired.PodName ||
		current.ServiceName != desired.ServiceName ||
		current.Endpoint != desired.Endpoint {
		return false
	}
	for _, t := range controllerConditionTypes {
		have, want := meta.FindStatusCondition(current.Conditions, t), meta.FindStatusCondition(desired.Conditions, t)
		if (have == nil) != (want == nil) || (have != nil && !equality.Semantic.DeepEqual(*have, *want)) {
			return false
		}
	}
	return true
}
