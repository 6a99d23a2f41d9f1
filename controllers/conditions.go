package controllers

// Reasons of the Room's conditions. The Ready condition carries the reason of the first
// sub-condition that is not True, so every reason below can show up on Ready too.
const (
	// ReasonRoomReady: the pod is ready and the Service exists.
	ReasonRoomReady = "RoomReady"
	// ReasonTerminating: the Room is being deleted.
	ReasonTerminating = "Terminating"

	// ReasonPodReady: the room-server pod is ready.
	ReasonPodReady = "PodReady"
	// ReasonPodNotCreated: there is no pod yet.
	ReasonPodNotCreated = "PodNotCreated"
	// ReasonPodNotReady: the pod exists but does not pass its readiness probe yet.
	ReasonPodNotReady = "PodNotReady"
	// ReasonPodFailed: the pod failed and was (or is being) replaced.
	ReasonPodFailed = "PodFailed"
	// ReasonPodReplaced: the pod no longer matched the Room (a spec change, or an edit by
	// hand) and was (or is being) replaced.
	ReasonPodReplaced = "PodReplaced"
	// ReasonPodTerminating: the pod is being deleted by someone else; a new one follows.
	ReasonPodTerminating = "PodTerminating"
	// ReasonPodNameConflict: a pod with the room pod's name exists and is not the Room's.
	ReasonPodNameConflict = "PodNameConflict"
	// ReasonPodRejected: the API server rejected the pod (invalid, or forbidden by policy or
	// quota).
	ReasonPodRejected = "PodRejected"

	// ReasonServiceReady: the Service exists.
	ReasonServiceReady = "ServiceReady"
	// ReasonServiceNotCreated: there is no Service yet.
	ReasonServiceNotCreated = "ServiceNotCreated"
	// ReasonServiceNameConflict: a Service with the room Service's name exists and is not the
	// Room's.
	ReasonServiceNameConflict = "ServiceNameConflict"
	// ReasonServiceRejected: the API server rejected the Service.
	ReasonServiceRejected = "ServiceRejected"

	// ReasonNameConflict: another object the pod needs (ServiceAccount, Role, RoleBinding,
	// ConfigMap, PersistentVolumeClaim) has a name taken by an object that is not the Room's.
	ReasonNameConflict = "NameConflict"
	// ReasonRejected: the API server rejected another object the pod needs.
	ReasonRejected = "Rejected"

	// ReasonAuthSecretMissing: the Secret spec.auth names, or its key, does not exist.
	ReasonAuthSecretMissing = "AuthSecretMissing"
	// ReasonAuthSecretInvalid: the secret spec.auth names is too short to sign tokens.
	ReasonAuthSecretInvalid = "AuthSecretInvalid"
	// ReasonAuthSecretUnreadable: the operator may not read the Secret spec.auth names.
	ReasonAuthSecretUnreadable = "AuthSecretUnreadable"

	// ReasonTokenRequired (Authenticated True): clients need a signed join token.
	ReasonTokenRequired = "TokenRequired"
	// ReasonOpenRoom (Authenticated False): the room has no spec.auth; anyone may join.
	ReasonOpenRoom = "OpenRoom"
)

// Event reasons besides the room phases (a phase change emits an event whose reason is the
// new phase).
const (
	// EventCreated: the controller created one of the Room's objects.
	EventCreated = "Created"
	// EventReplaced: the pod was deleted and created again to match the Room.
	EventReplaced = "Replaced"
	// EventPodFailed: the pod failed and is replaced.
	EventPodFailed = "PodFailed"
)
