package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

// Labels and annotations the controller puts on a Room's objects.
const (
	// LabelRoom names the Room an object belongs to.
	LabelRoom = "xrooms.dev/room"
	// LabelName and LabelInstance are the recommended app labels; the Service selects on them
	// together with LabelRoom.
	LabelName     = "app.kubernetes.io/name"
	LabelInstance = "app.kubernetes.io/instance"
	// LabelManagedBy marks every object this controller creates. The manager's cache holds only
	// objects with it, so it never caches every Pod or ConfigMap of the cluster.
	LabelManagedBy = "app.kubernetes.io/managed-by"

	// AnnotationPodSpecHash is the hash of the Room fields the pod was built from (see
	// podSpecHash). A pod whose hash differs from the Room's is replaced.
	AnnotationPodSpecHash = "xrooms.dev/pod-spec-hash"
	// AnnotationReplaces records on a new pod why its predecessor was replaced, so the
	// PodReady condition can say why until the new pod is ready.
	AnnotationReplaces = "xrooms.dev/replaces"

	appName   = "xrooms-room"
	managedBy = "xrooms-operator"
)

// Names, paths and environment of the room-server container. The room server reads the
// XROOMS_* variables.
const (
	containerName = "roomserver"
	portName      = "ws"
	dataDir       = "/data"

	entitiesDir  = "/etc/xrooms"
	entitiesKey  = "initial-entities.json"
	entitiesPath = entitiesDir + "/" + entitiesKey

	envRoom            = "XROOMS_ROOM"
	envNamespace       = "XROOMS_NAMESPACE"
	envSyncInterval    = "XROOMS_SYNC_INTERVAL"
	envListen          = "XROOMS_LISTEN"
	envDataDir         = "XROOMS_DATA_DIR"
	envMaxClients      = "XROOMS_MAX_CLIENTS"
	envInitialEntities = "XROOMS_INITIAL_ENTITIES"
	// envAuthSecret carries the join-token secret itself, from the Secret spec.auth names.
	envAuthSecret = "XROOMS_AUTH_SECRET"

	// roomServerUID is the non-root user of the distroless "nonroot" image.
	roomServerUID = int64(65532)
)

// defaultVolumeSize is the PersistentVolumeClaim size when persistence.size is unset.
var defaultVolumeSize = resource.MustParse("1Gi")

// podName, serviceName, serviceAccountName (also the Role and RoleBinding), entitiesName and
// claimName are the deterministic names of a Room's objects.
func podName(room *xroomsv1alpha1.Room) string            { return room.Name + "-room" }
func serviceName(room *xroomsv1alpha1.Room) string        { return room.Name + "-room" }
func serviceAccountName(room *xroomsv1alpha1.Room) string { return room.Name + "-room" }
func entitiesName(room *xroomsv1alpha1.Room) string       { return room.Name + "-entities" }
func claimName(room *xroomsv1alpha1.Room) string          { return room.Name + "-data" }

// selectorLabels link a pod to its Room; the Service selects on them.
func selectorLabels(room *xroomsv1alpha1.Room) map[string]string {
	return map[string]string{
		LabelName:     appName,
		LabelInstance: room.Name,
		LabelRoom:     room.Name,
	}
}

// childLabels go on every object the controller creates for a Room.
func childLabels(room *xroomsv1alpha1.Room) map[string]string {
	l := selectorLabels(room)
	l[LabelManagedBy] = managedBy
	return l
}

// childMeta is the ObjectMeta of a Room's object: its name, the Room's namespace, the child
// labels and the Room as controller, so deleting the Room deletes the object.
func childMeta(room *xroomsv1alpha1.Room, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       room.Namespace,
		Labels:          childLabels(room),
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(room, xroomsv1alpha1.GroupVersion.WithKind("Room"))},
	}
}

// roomImage is the room-server image: the Room's own or the operator's default.
func roomImage(room *xroomsv1alpha1.Room, defaultImage string) string {
	if room.Spec.Image != "" {
		return room.Spec.Image
	}
	return defaultImage
}

// roomPort is the port the room server listens on and the Service exposes.
func roomPort(room *xroomsv1alpha1.Room) int32 {
	if room.Spec.Service.Port != 0 {
		return room.Spec.Service.Port
	}
	return 4000
}

// podSpecHash hashes the Room fields that need a new pod when they change. syncInterval and
// maxClients are left out on purpose: the room server applies them live, so changing them
// keeps the pod (and its connected clients). initialEntities are left out too: they only seed
// an empty store and reach the pod through a ConfigMap.
func podSpecHash(room *xroomsv1alpha1.Room, defaultImage string) string {
	spec := &room.Spec
	inputs := struct {
		Image            string                         `json:"image"`
		ImagePullSecrets []corev1.LocalObjectReference  `json:"imagePullSecrets"`
		Resources        corev1.ResourceRequirements    `json:"resources"`
		Persistence      xroomsv1alpha1.PersistenceType `json:"persistence"`
		NodeSelector     map[string]string              `json:"nodeSelector"`
		Tolerations      []corev1.Toleration            `json:"tolerations"`
		Affinity         *corev1.Affinity               `json:"affinity"`
		Labels           map[string]string              `json:"labels"`
		Annotations      map[string]string              `json:"annotations"`
		Port             int32                          `json:"port"`
		// The room server reads its secret at start. omitempty keeps the hash of open rooms
		// what it was before auth existed, so upgrading the operator rolls no pod.
		Auth *xroomsv1alpha1.RoomAuth `json:"auth,omitempty"`
	}{
		Image:            roomImage(room, defaultImage),
		ImagePullSecrets: spec.ImagePullSecrets,
		Resources:        spec.Resources,
		Persistence:      persistenceType(room),
		NodeSelector:     spec.NodeSelector,
		Tolerations:      spec.Tolerations,
		Affinity:         spec.Affinity,
		Labels:           spec.Labels,
		Annotations:      spec.Annotations,
		Port:             roomPort(room),
		Auth:             spec.Auth,
	}
	// Marshalling these types cannot fail, and maps marshal with sorted keys, so equal inputs
	// always hash the same.
	b, _ := json.Marshal(inputs)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func persistenceType(room *xroomsv1alpha1.Room) xroomsv1alpha1.PersistenceType {
	if room.Spec.Persistence.Type == "" {
		return xroomsv1alpha1.PersistenceEphemeral
	}
	return room.Spec.Persistence.Type
}

// podForRoom builds the room-server pod of a Room.
func podForRoom(room *xroomsv1alpha1.Room, defaultImage string) *corev1.Pod {
	spec := &room.Spec
	port := roomPort(room)

	meta := childMeta(room, podName(room))
	for k, v := range spec.Labels {
		if _, reserved := meta.Labels[k]; !reserved {
			meta.Labels[k] = v
		}
	}
	meta.Annotations = map[string]string{}
	for k, v := range spec.Annotations {
		meta.Annotations[k] = v
	}
	meta.Annotations[AnnotationPodSpecHash] = podSpecHash(room, defaultImage)

	env := []corev1.EnvVar{
		{Name: envRoom, Value: room.Name},
		{Name: envNamespace, Value: room.Namespace},
		{Name: envSyncInterval, Value: syncInterval(room).Duration.String()},
		{Name: envListen, Value: fmt.Sprintf(":%d", port)},
		{Name: envDataDir, Value: dataDir},
		{Name: envInitialEntities, Value: entitiesPath},
	}
	if spec.MaxClients != nil {
		env = append(env, corev1.EnvVar{Name: envMaxClients, Value: strconv.Itoa(int(*spec.MaxClients))})
	}
	if a := spec.Auth; a != nil {
		// A reference, resolved by the kubelet: the secret never shows in the Pod spec.
		env = append(env, corev1.EnvVar{Name: envAuthSecret, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: a.SecretRef.Name}, Key: a.SecretRef.Key},
		}})
	}

	data := corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
	if persistenceType(room) == xroomsv1alpha1.PersistenceVolume {
		data = corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claimName(room)}}
	}

	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{
				HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString(portName)},
			},
			PeriodSeconds:    period,
			TimeoutSeconds:   1,
			FailureThreshold: failures,
		}
	}

	return &corev1.Pod{
		ObjectMeta: meta,
		Spec: corev1.PodSpec{
			ServiceAccountName:            serviceAccountName(room),
			AutomountServiceAccountToken:  ptr.To(true), // the room server reports its status to the Room
			EnableServiceLinks:            ptr.To(false),
			RestartPolicy:                 corev1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: ptr.To(int64(30)),
			ImagePullSecrets:              spec.ImagePullSecrets,
			NodeSelector:                  spec.NodeSelector,
			Tolerations:                   spec.Tolerations,
			Affinity:                      spec.Affinity,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To(roomServerUID),
				RunAsGroup:     ptr.To(roomServerUID),
				FSGroup:        ptr.To(roomServerUID), // lets the non-root server write a fresh volume
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:  containerName,
				Image: roomImage(room, defaultImage),
				Ports: []corev1.ContainerPort{{Name: portName, ContainerPort: port, Protocol: corev1.ProtocolTCP}},
				Env:   env,
				VolumeMounts: []corev1.VolumeMount{
					{Name: "data", MountPath: dataDir},
					{Name: "initial-entities", MountPath: entitiesDir, ReadOnly: true},
				},
				Resources:      spec.Resources,
				ReadinessProbe: probe("/readyz", 2, 3),
				LivenessProbe:  probe("/healthz", 10, 6),
				SecurityContext: &corev1.SecurityContext{
					RunAsNonRoot:             ptr.To(true),
					AllowPrivilegeEscalation: ptr.To(false),
					ReadOnlyRootFilesystem:   ptr.To(true),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				},
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			}},
			Volumes: []corev1.Volume{
				{Name: "data", VolumeSource: data},
				{Name: "initial-entities", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: entitiesName(room)},
					Items:                []corev1.KeyToPath{{Key: entitiesKey, Path: entitiesKey}},
				}}},
			},
		},
	}
}

// syncInterval is the Room's sync interval, or the API default when a Room was built without
// the API server's defaulting (as in unit tests).
func syncInterval(room *xroomsv1alpha1.Room) metav1.Duration {
	if room.Spec.SyncInterval.Duration == 0 {
		return metav1.Duration{Duration: defaultSyncInterval}
	}
	return room.Spec.SyncInterval
}

// serviceForRoom builds the Service clients connect through.
func serviceForRoom(room *xroomsv1alpha1.Room) *corev1.Service {
	meta := childMeta(room, serviceName(room))
	if len(room.Spec.Service.Annotations) > 0 {
		meta.Annotations = map[string]string{}
		for k, v := range room.Spec.Service.Annotations {
			meta.Annotations[k] = v
		}
	}
	typ := room.Spec.Service.Type
	if typ == "" {
		typ = corev1.ServiceTypeClusterIP
	}
	return &corev1.Service{
		ObjectMeta: meta,
		Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: selectorLabels(room),
			Ports: []corev1.ServicePort{{
				Name:        portName,
				Port:        roomPort(room),
				TargetPort:  intstr.FromString(portName),
				Protocol:    corev1.ProtocolTCP,
				AppProtocol: ptr.To("kubernetes.io/ws"),
			}},
		},
	}
}

// pvcForRoom builds the claim for persistence type Volume.
func pvcForRoom(room *xroomsv1alpha1.Room) *corev1.PersistentVolumeClaim {
	size := defaultVolumeSize
	if room.Spec.Persistence.Size != nil {
		size = *room.Spec.Persistence.Size
	}
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: childMeta(room, claimName(room)),
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: room.Spec.Persistence.StorageClassName,
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: size},
			},
		},
	}
}

// entitiesConfigMapForRoom builds the ConfigMap that carries initialEntities to the pod, as one
// JSON object of entity id to components ({} when there are none).
func entitiesConfigMapForRoom(room *xroomsv1alpha1.Room) (*corev1.ConfigMap, error) {
	entities := make(map[string]json.RawMessage, len(room.Spec.InitialEntities))
	for id, components := range room.Spec.InitialEntities {
		if len(components.Raw) == 0 {
			entities[id] = json.RawMessage("{}")
			continue
		}
		entities[id] = components.Raw
	}
	b, err := json.Marshal(entities)
	if err != nil {
		return nil, fmt.Errorf("failed to encode initialEntities: %w", err)
	}
	return &corev1.ConfigMap{
		ObjectMeta: childMeta(room, entitiesName(room)),
		Data:       map[string]string{entitiesKey: string(b)},
	}, nil
}

// serviceAccountForRoom builds the identity the room server runs as.
func serviceAccountForRoom(room *xroomsv1alpha1.Room) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: childMeta(room, serviceAccountName(room))}
}

// roleForRoom lets the room server read only its own Room and write only its own Room's
// status. list and watch with resourceNames are allowed for requests with the field selector
// metadata.name=<room>.
func roleForRoom(room *xroomsv1alpha1.Room) *rbacv1.Role {
	group := xroomsv1alpha1.GroupVersion.Group
	return &rbacv1.Role{
		ObjectMeta: childMeta(room, serviceAccountName(room)),
		Rules: []rbacv1.PolicyRule{
			{
				APIGroups:     []string{group},
				Resources:     []string{"rooms"},
				ResourceNames: []string{room.Name},
				Verbs:         []string{"get", "list", "watch"},
			},
			{
				APIGroups:     []string{group},
				Resources:     []string{"rooms/status"},
				ResourceNames: []string{room.Name},
				Verbs:         []string{"get", "patch", "update"},
			},
		},
	}
}

// roleBindingForRoom grants roleForRoom to the room's ServiceAccount.
func roleBindingForRoom(room *xroomsv1alpha1.Room) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: childMeta(room, serviceAccountName(room)),
		RoleRef: rbacv1.RoleRef{
			APIGroup: rbacv1.GroupName,
			Kind:     "Role",
			Name:     serviceAccountName(room),
		},
		Subjects: []rbacv1.Subject{{
			Kind:      rbacv1.ServiceAccountKind,
			Name:      serviceAccountName(room),
			Namespace: room.Namespace,
		}},
	}
}
