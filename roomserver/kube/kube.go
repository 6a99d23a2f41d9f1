package kube

import (
	"errors"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

// FieldManager names the room server's server-side-apply field manager on its Room.
const FieldManager = "xrooms-roomserver"

// resource is the Room's resource name in its API group.
const resource = "rooms"

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

// Client talks to the rooms resource of xrooms.dev/v1alpha1 and nothing else.
//
// It is a bare client-go REST client over a scheme of only our types (and metav1's), not
// controller-runtime's client: that one links client-go's scheme of every built-in API
// group, which alone costs the room server about a third of its idle memory.
type Client struct {
	rest   *rest.RESTClient
	params runtime.ParameterCodec
}

// NewClient returns a client for Room objects, with watch support.
func NewClient(cfg *rest.Config) (*Client, error) {
	scheme := runtime.NewScheme()
	// AddToScheme also registers metav1's list options, watch events and Status in our group.
	if err := xroomsv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c := rest.CopyConfig(cfg)
	gv := xroomsv1alpha1.GroupVersion
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	// Rooms are CRD objects: JSON only, and no conversion between versions on our side.
	c.ContentType = runtime.ContentTypeJSON
	c.AcceptContentTypes = runtime.ContentTypeJSON
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("failed to make a Kubernetes client: %w", err)
	}
	return &Client{rest: rc, params: runtime.NewParameterCodec(scheme)}, nil
}
