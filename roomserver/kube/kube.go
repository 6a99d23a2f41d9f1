package kube

import (
	"errors"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

// FieldManager names the room server's server-side-apply field manager on its Room.
const FieldManager = "xrooms-roomserver"

// ErrStandalone says there is no Kubernetes API to talk to: the server runs on its own.
var ErrStandalone = errors.New("no Kubernetes API configured (no in-cluster service account, no KUBECONFIG)")

// Config finds the API server: the KUBECONFIG file when set (the local pod runner uses it),
// else the pod's in-cluster service account.
func Config() (*rest.Config, error) {
	if path := os.Getenv("KUBECONFIG"); path != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("failed to load KUBECONFIG %s: %w", path, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if errors.Is(err, rest.ErrNotInCluster) {
		return nil, ErrStandalone
	}
	if err != nil {
		return nil, fmt.Errorf("failed to load in-cluster config: %w", err)
	}
	return cfg, nil
}

// NewClient returns a client that knows Room, with watch support.
func NewClient(cfg *rest.Config) (client.WithWatch, error) {
	scheme := runtime.NewScheme()
	if err := xroomsv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("failed to make a Kubernetes client: %w", err)
	}
	return c, nil
}
