package controllers

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

// roomFromYAML builds a Room as a user would write it, so values the Go types cannot hold
// (a duration of "abc", a port of "x") reach the API server as written.
func roomFromYAML(t *testing.T, ns, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte("apiVersion: xrooms.dev/v1alpha1\nkind: Room\n"+doc), &u.Object); err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	u.SetNamespace(ns)
	return u
}

func TestInvalidRoomsAreRejected(t *testing.T) {
	e := startEnv(t)
	ns := e.namespace(t)
	cases := []struct {
		name string
		doc  string
		want string // a part of the API server's message
	}{
		{name: "syncInterval 0s", doc: "metadata: {name: a}\nspec: {syncInterval: 0s}", want: "syncInterval must be between 10ms and 10s"},
		{name: "syncInterval 0", doc: "metadata: {name: a}\nspec: {syncInterval: \"0\"}", want: "syncInterval must be a duration with a unit, such as 200ms or 1.5s"},
		{name: "syncInterval 1h", doc: "metadata: {name: a}\nspec: {syncInterval: 1h}", want: "syncInterval must be between 10ms and 10s"},
		{name: "syncInterval 5ms", doc: "metadata: {name: a}\nspec: {syncInterval: 5ms}", want: "syncInterval must be between 10ms and 10s"},
		{name: "syncInterval 11s", doc: "metadata: {name: a}\nspec: {syncInterval: 11s}", want: "syncInterval must be between 10ms and 10s"},
		{name: "syncInterval that is not a duration", doc: "metadata: {name: a}\nspec: {syncInterval: soon}", want: "syncInterval must be a duration with a unit, such as 200ms or 1.5s"},
		{name: "maxClients 0", doc: "metadata: {name: a}\nspec: {maxClients: 0}", want: "spec.maxClients: Invalid value: 0: spec.maxClients in body should be greater than or equal to 1"},
		{name: "a bad service type", doc: "metadata: {name: a}\nspec: {service: {type: Headless}}", want: `spec.service.type: Unsupported value: "Headless": supported values: "ClusterIP", "NodePort", "LoadBalancer"`},
		{name: "port 0", doc: "metadata: {name: a}\nspec: {service: {port: 0}}", want: "spec.service.port in body should be greater than or equal to 1"},
		{name: "port 70000", doc: "metadata: {name: a}\nspec: {service: {port: 70000}}", want: "spec.service.port in body should be less than or equal to 65535"},
		{name: "a bad persistence type", doc: "metadata: {name: a}\nspec: {persistence: {type: Disk}}", want: `Unsupported value: "Disk"`},
		{name: "a size without a volume", doc: "metadata: {name: a}\nspec: {persistence: {size: 1Gi}}", want: "size and storageClassName apply only to persistence type Volume"},
		{name: "an entity that is not an object", doc: "metadata: {name: a}\nspec: {initialEntities: {floor: [0, 0, 0]}}", want: "spec.initialEntities.floor"},
		{name: "a reserved pod label", doc: "metadata: {name: a}\nspec: {labels: {xrooms.dev/room: other}}", want: "labels must not set app.kubernetes.io/name"},
		{name: "a reserved pod annotation", doc: "metadata: {name: a}\nspec: {annotations: {xrooms.dev/pod-spec-hash: x}}", want: "annotations must not set xrooms.dev/pod-spec-hash"},
		{name: "an empty image", doc: "metadata: {name: a}\nspec: {image: \"\"}", want: "spec.image in body should be at least 1 chars long"},
		{name: "a name that cannot name a Service", doc: "metadata: {name: 1lobby}", want: "a Room name must be at most 58 lower-case letters"},
		{name: "a name too long for its Service", doc: "metadata: {name: " + strings.Repeat("a", 59) + "}", want: "a Room name must be at most 58 lower-case letters"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is rejected", func(t *testing.T) {
			err := e.client.Create(context.Background(), roomFromYAML(t, ns, tc.doc))
			if !apierrors.IsInvalid(err) {
				t.Fatalf("create returned %v, want an Invalid error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err.Error(), tc.want)
			}
			if strings.Contains(err.Error(), "evaluating rule") {
				t.Errorf("error %q shows a rule that failed to evaluate instead of a message", err.Error())
			}
		})
	}

	t.Run("the limits themselves are accepted", func(t *testing.T) {
		for i, d := range []string{"10ms", "10s", "1.5s", "250ms"} {
			u := roomFromYAML(t, ns, "metadata: {name: ok-"+string(rune('a'+i))+"}\nspec: {syncInterval: "+d+", maxClients: 1}")
			if err := e.client.Create(context.Background(), u); err != nil {
				t.Errorf("syncInterval %s was rejected: %v", d, err)
			}
		}
	})
	t.Run("an empty Room gets the documented defaults", func(t *testing.T) {
		room := newRoom(t, e.client, ns, "defaults")
		got := getRoom(t, e.client, room)
		spec := got.Spec
		if spec.SyncInterval.Duration != 200*time.Millisecond || spec.Service.Type != corev1.ServiceTypeClusterIP ||
			spec.Service.Port != 4000 || spec.Persistence.Type != xroomsv1alpha1.PersistenceEphemeral {
			t.Errorf("defaults %+v, want syncInterval 200ms, ClusterIP on 4000, Ephemeral", spec)
		}
	})
	t.Run("arbitrary component JSON survives the round trip", func(t *testing.T) {
		u := roomFromYAML(t, ns, `metadata: {name: scene}
spec:
  initialEntities:
    box: {position: [1, 0.5, -2], material: {color: "#e63946", metalness: 0.2}, tags: [a, b], visible: true, note: null}`)
		if err := e.client.Create(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		got := &xroomsv1alpha1.Room{}
		if err := e.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "scene"}, got); err != nil {
			t.Fatal(err)
		}
		var box map[string]any
		if err := json.Unmarshal(got.Spec.InitialEntities["box"].Raw, &box); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"position": []any{1.0, 0.5, -2.0},
			"material": map[string]any{"color": "#e63946", "metalness": 0.2},
			"tags":     []any{"a", "b"},
			"visible":  true,
			"note":     nil,
		}
		if !reflect.DeepEqual(box, want) {
			t.Errorf("box came back as %v, want %v", box, want)
		}
	})
}
