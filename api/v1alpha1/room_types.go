package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Condition types of a Room. Each is rebuilt from what the controller observes on every pass.
const (
	// ConditionReady is True when the room accepts clients: its pod is ready and its Service
	// exists. When False, its reason and message name the first thing in the way.
	ConditionReady = "Ready"
	// ConditionPodReady is True when the room-server pod is running and passes its readiness
	// probe.
	ConditionPodReady = "PodReady"
	// ConditionServiceReady is True when the Service that clients connect through exists.
	ConditionServiceReady = "ServiceReady"
	// ConditionAuthenticated is True when the room admits only clients with a join token
	// signed with the secret spec.auth names; False (reason OpenRoom) for an open room, which
	// anyone who reaches it may join as any user.
	ConditionAuthenticated = "Authenticated"
)

// RoomPhase is a one-word summary of where a Room is in its life.
// +kubebuilder:validation:Enum=Pending;Starting;Running;Failed;Terminating
type RoomPhase string

const (
	// RoomPending means the room has no pod yet.
	RoomPending RoomPhase = "Pending"
	// RoomStarting means the room's pod exists but is not ready yet.
	RoomStarting RoomPhase = "Starting"
	// RoomRunning means the room's pod is ready and clients can connect.
	RoomRunning RoomPhase = "Running"
	// RoomFailed means the controller cannot run the room until someone changes something;
	// the Ready condition says what.
	RoomFailed RoomPhase = "Failed"
	// RoomTerminating means the Room is being deleted.
	RoomTerminating RoomPhase = "Terminating"
)

// PersistenceType says where a room's entities store lives.
// +kubebuilder:validation:Enum=Ephemeral;Volume
type PersistenceType string

const (
	// PersistenceEphemeral keeps the store in an emptyDir: it survives container restarts but
	// not the pod.
	PersistenceEphemeral PersistenceType = "Ephemeral"
	// PersistenceVolume keeps the store on a PersistentVolumeClaim the controller creates and
	// owns, so it survives pod replacement.
	PersistenceVolume PersistenceType = "Volume"
)

// RoomSpec is the desired state of a Room.
type RoomSpec struct {
	// syncInterval is how often the room server flushes batched entity changes to its members
	// as one entities_diff, as a duration such as "200ms". It must be between 10ms and 10s.
	// Changing it does not replace the room's pod.
	// +kubebuilder:default="200ms"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="syncInterval must be a duration with a unit, such as 200ms or 1.5s"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') || (duration(self) >= duration('10ms') && duration(self) <= duration('10s'))",message="syncInterval must be between 10ms and 10s"
	// +optional
	SyncInterval metav1.Duration `json:"syncInterval,omitzero"`

	// maxClients is the most clients the room accepts at once; further joins are refused.
	// Unset means no limit. Changing it does not replace the room's pod.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxClients *int32 `json:"maxClients,omitempty"`

	// auth makes the room admit only clients with a signed join token: an HS256 JWT whose sub
	// is the user id, whose aud is "xrooms:<namespace>/<name>" and which has an exp. Unset, the
	// room is open: anyone who reaches it may join as any user id (for development).
	// Changing it replaces the room's pod.
	// +optional
	Auth *RoomAuth `json:"auth,omitempty"`

	// service is how clients reach the room: the Service the controller creates for it.
	// +kubebuilder:default={}
	// +optional
	Service RoomService `json:"service,omitempty"`

	// persistence says where the room's entities store lives: Ephemeral (an emptyDir, the
	// default) or Volume (a PersistentVolumeClaim named <room>-data that the controller creates
	// and owns).
	// +kubebuilder:default={}
	// +optional
	Persistence RoomPersistence `json:"persistence,omitempty"`

	// initialEntities is the room's starting content: a map of entity id to that entity's
	// components (each a JSON object, for example {"position": [0, 0, 0], "color": "#fff"}).
	// The room server loads it only when its store is empty, so editing it never overwrites
	// live state, and changing it does not replace the room's pod.
	// +optional
	InitialEntities map[string]runtime.RawExtension `json:"initialEntities,omitempty"`

	// rules say what room events do to entities, in CEL: each names an event, an optional
	// condition and the mutations it makes. They are applied over the built-in rules (a rule
	// for a built-in event replaces it; disabled removes it). The controller compiles them
	// and reports the result in the RulesValid condition; the room server applies valid rules
	// live, without replacing the pod, and keeps its last good rules when they do not compile.
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=event
	// +optional
	Rules []RoomRule `json:"rules,omitempty"`

	// image is the room-server container image. Unset means the operator's default
	// (its --room-server-image flag).
	// +kubebuilder:validation:MinLength=1
	// +optional
	Image string `json:"image,omitempty"`

	// imagePullSecrets are Secrets in the Room's namespace used to pull image.
	// +listType=atomic
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// resources are the room-server container's compute resource requests and limits.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// nodeSelector constrains the room's pod to nodes with these labels.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations let the room's pod schedule onto nodes with matching taints.
	// +listType=atomic
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// affinity holds the room pod's scheduling constraints.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// labels are extra labels for the room's pod. The labels the controller uses to link the
	// pod to its Room (app.kubernetes.io/name, app.kubernetes.io/instance,
	// app.kubernetes.io/managed-by, xrooms.dev/room) are reserved.
	// +kubebuilder:validation:XValidation:rule="!('app.kubernetes.io/name' in self) && !('app.kubernetes.io/instance' in self) && !('app.kubernetes.io/managed-by' in self) && !('xrooms.dev/room' in self)",message="labels must not set app.kubernetes.io/name, app.kubernetes.io/instance, app.kubernetes.io/managed-by or xrooms.dev/room: the controller sets them to link the pod to its Room"
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// annotations are extra annotations for the room's pod. xrooms.dev/pod-spec-hash and
	// xrooms.dev/replaces are reserved.
	// +kubebuilder:validation:XValidation:rule="!('xrooms.dev/pod-spec-hash' in self) && !('xrooms.dev/replaces' in self)",message="annotations must not set xrooms.dev/pod-spec-hash or xrooms.dev/replaces: the controller sets them"
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RoomAuth says how a room checks its clients' join tokens.
type RoomAuth struct {
	// secretRef names the key of a Secret, in the Room's namespace, whose value is the HMAC
	// secret join tokens are signed with: at least 32 bytes, used byte for byte. The room
	// server gets it from the Secret through an environment variable; the value never shows
	// in the Pod spec. The room server reads it when it starts: to rotate it, point secretRef
	// at a new Secret or key, which replaces the pod.
	// +required
	SecretRef SecretKeyRef `json:"secretRef"`
}

// SecretKeyRef names one key of a Secret in the Room's namespace.
type SecretKeyRef struct {
	// name is the Secret's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// key is the key within the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +required
	Key string `json:"key"`
}

// RoomService is how clients reach a room.
type RoomService struct {
	// type is the Service type: ClusterIP (reachable inside the cluster, the default),
	// NodePort or LoadBalancer.
	// +kubebuilder:default=ClusterIP
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +optional
	Type corev1.ServiceType `json:"type,omitempty"`

	// port is the port clients connect to, on both the Service and the room-server
	// container. Defaults to 4000.
	// +kubebuilder:default=4000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// annotations are added to the Service, for example to configure a cloud load balancer.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RoomPersistence says where a room's entities store lives.
// +kubebuilder:validation:XValidation:rule="self.type == 'Volume' || (!has(self.size) && !has(self.storageClassName))",message="size and storageClassName apply only to persistence type Volume"
type RoomPersistence struct {
	// type is Ephemeral (an emptyDir: the store survives container restarts but not the pod;
	// the default) or Volume (a PersistentVolumeClaim named <room>-data, owned by the Room:
	// the store survives pod replacement and is deleted with the Room).
	// +kubebuilder:default=Ephemeral
	// +optional
	Type PersistenceType `json:"type,omitempty"`

	// size is the storage the PersistentVolumeClaim requests, for type Volume. Defaults to 1Gi.
	// Only used when the claim is created.
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// storageClassName is the StorageClass of the PersistentVolumeClaim, for type Volume.
	// Unset means the cluster's default class. Only used when the claim is created.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// RoomStatus is the observed state of a Room. The controller writes phase, conditions,
// observedGeneration, podName, serviceName and endpoint; the room server writes clients,
// entities, syncInterval and lastSyncTime. Each writes only its own fields (server-side apply,
// one field manager each), so neither overwrites the other.
type RoomStatus struct {
	// phase is a one-word summary: Pending (no pod yet), Starting (pod not ready), Running
	// (pod ready), Failed (needs a change to go on; see the Ready condition) or Terminating.
	// +optional
	Phase RoomPhase `json:"phase,omitempty"`

	// conditions are the latest observations of the room: Ready, PodReady, ServiceReady,
	// Authenticated and RulesValid.
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// observedGeneration is the Room generation the controller last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// podName is the name of the room-server pod.
	// +optional
	PodName string `json:"podName,omitempty"`

	// serviceName is the name of the Service clients connect through.
	// +optional
	ServiceName string `json:"serviceName,omitempty"`

	// endpoint is the WebSocket URL clients connect to, such as
	// ws://lobby-room.games.svc:4000/socket (or the load balancer's address once it has one).
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// clients is the number of connected clients, reported by the room server.
	// +optional
	Clients *int32 `json:"clients,omitempty"`

	// entities is the number of entities in the room, reported by the room server.
	// +optional
	Entities *int32 `json:"entities,omitempty"`

	// syncInterval is the sync interval the room server is using, reported by it.
	// +optional
	SyncInterval string `json:"syncInterval,omitempty"`

	// lastSyncTime is when the room server last reported, reported by it.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
}

// Room is a shared real-time room: one room-server Pod and one Service, which browsers join
// over WebSocket (Phoenix Channels) to share a scene's entities.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=xr,categories=xrooms
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Clients",type=integer,JSONPath=`.status.clients`
// +kubebuilder:printcolumn:name="Entities",type=integer,JSONPath=`.status.entities`
// +kubebuilder:printcolumn:name="Sync",type=string,JSONPath=`.status.syncInterval`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="Access",type=string,JSONPath=`.status.conditions[?(@.type=="Authenticated")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 58 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="a Room name must be at most 58 lower-case letters, digits and '-', starting with a letter and ending with a letter or digit, because its Service is named <name>-room"
type Room struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the room.
	// +kubebuilder:default={}
	// +optional
	Spec RoomSpec `json:"spec,omitempty"`

	// status is the observed state of the room.
	// +optional
	Status RoomStatus `json:"status,omitempty"`
}

// RoomList is a list of Rooms.
//
// +kubebuilder:object:root=true
type RoomList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Room `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Room{}, &RoomList{})
}
