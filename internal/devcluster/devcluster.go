// Package devcluster runs the whole xrooms system on one machine: a real control plane
// (envtest's kube-apiserver and etcd), the Room CRD, the operator, and the local pod runner
// that runs each room pod as a roomserver process. `make dev` and the end-to-end tests use it.
package devcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
	"github.com/xrooms/xrooms/controllers"
	"github.com/xrooms/xrooms/internal/envtestbin"
	"github.com/xrooms/xrooms/internal/localpods"
)

// Options configure a Cluster.
type Options struct {
	// RepoRoot is the repository checkout; CRDs are read from config/crd/bases below it.
	RepoRoot string
	// Assets is the folder with kube-apiserver and etcd (default: envtestbin.Dir(RepoRoot)).
	Assets string
	// RoomServer is the roomserver binary the pod runner starts for each room pod.
	RoomServer string
	// Dir holds the kubeconfig, pod data and logs.
	Dir string
	// RoomServerImage is the image the operator writes into room pods; the pod runner
	// ignores it and runs RoomServer.
	RoomServerImage string
	// Logger receives the pod runner's log lines; nil discards them.
	Logger *slog.Logger
}

// Cluster is a running control plane with the operator and the pod runner.
type Cluster struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client is an uncached administrator client.
	Client client.Client
	// Kubeconfig is the path of an administrator kubeconfig, for kubectl.
	Kubeconfig string
	// Runner runs the room pods.
	Runner *localpods.Runner

	env    *envtest.Environment
	cancel context.CancelFunc
	done   chan error
}

// Start brings the cluster up. Stop it with Stop.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	if o.Assets == "" {
		if o.Assets, err = envtestbin.Dir(o.RepoRoot); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(o.RepoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: o.Assets,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("failed to start the control plane: %w", err)
	}
	cl := &Cluster{Config: cfg, env: env, done: make(chan error, 2)}
	c = cl
	defer func() {
		if err != nil {
			_ = cl.Stop()
		}
	}()

	admin, err := env.AddUser(envtest.User{Name: "xrooms-dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to make an admin user: %w", err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		return nil, err
	}
	c.Kubeconfig = filepath.Join(o.Dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kc, 0o600); err != nil {
		return nil, err
	}

	scheme, err := controllers.NewScheme()
	if err != nil {
		return nil, err
	}
	if c.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}

	noServe := ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		// Controller names are unique per process; tests start more than one cluster.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
	opOpts := noServe
	opOpts.Cache = controllers.CacheOptions()
	opMgr, err := ctrl.NewManager(cfg, opOpts)
	if err != nil {
		return nil, err
	}
	if err := controllers.Setup(opMgr, o.RoomServerImage); err != nil {
		return nil, fmt.Errorf("failed to set up the operator: %w", err)
	}
	// The pod runner is a separate manager, as a kubelet is a separate process: its own cache,
	// its own view of pods.
	runMgr, err := ctrl.NewManager(cfg, noServe)
	if err != nil {
		return nil, err
	}
	c.Runner = &localpods.Runner{Client: runMgr.GetClient(), Config: cfg, Binary: o.RoomServer, Dir: o.Dir, Logger: o.Logger}
	if err := c.Runner.SetupWithManager(runMgr); err != nil {
		return nil, err
	}
	// envtest runs no garbage collector; this one stands in for it, so deleting a Room stops
	// its pod's process as it would on a cluster.
	if err := (&collector{Client: runMgr.GetClient()}).SetupWithManager(runMgr); err != nil {
		return nil, err
	}

	mctx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	for _, m := range []ctrl.Manager{opMgr, runMgr} {
		go func() { c.done <- m.Start(mctx) }()
	}
	return c, nil
}

// Stop stops the room processes, the operator and the control plane.
func (c *Cluster) Stop() error {
	var errs []error
	if c.cancel != nil {
		c.cancel()
		for range 2 {
			if err := <-c.done; err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, err)
			}
		}
	}
	if c.Runner != nil {
		c.Runner.Stop()
	}
	if err := c.env.Stop(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RoomURL returns the ws:// URL of a Room's room server as run here: the local stand-in for
// status.endpoint, whose cluster DNS name does not resolve outside a cluster.
func (c *Cluster) RoomURL(ctx context.Context, room *xroomsv1alpha1.Room) (string, error) {
	if room.Status.PodName == "" {
		return "", fmt.Errorf("room %s has no pod yet", room.Name)
	}
	var pod corev1.Pod
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: room.Namespace, Name: room.Status.PodName}, &pod); err != nil {
		return "", err
	}
	return c.Runner.URL(&pod), nil
}
