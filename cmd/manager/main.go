// Command manager is the xrooms operator: it runs the Room controller, which gives every Room
// one room-server Pod and one Service and reports the room's state in its status.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/xrooms/xrooms/controllers"
)

// image is the image this binary was built into, set by the Dockerfile with
// -ldflags "-X main.image=<repository:tag>". When set, it is the default --room-server-image,
// so rooms run the same build as the operator; the chart and config/manager still pass the
// flag, because an image can be retagged after it is built.
var image string

func main() {
	if err := run(); err != nil {
		ctrl.Log.WithName("setup").Error(err, "manager failed")
		os.Exit(1)
	}
}

func run() error {
	var (
		metricsAddr     string
		probeAddr       string
		leaderElect     bool
		leaderElectNS   string
		roomServerImage string
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; \"0\" turns it off.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader, so only one of several manager replicas reconciles at a time.")
	flag.StringVar(&leaderElectNS, "leader-election-namespace", "", "Namespace of the leader election Lease; defaults to the manager's own namespace in a cluster (set it when running outside one).")
	flag.StringVar(&roomServerImage, "room-server-image", defaultRoomServerImage(), "Room-server image of Rooms that do not set spec.image.")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	scheme, err := controllers.NewScheme()
	if err != nil {
		return err
	}

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("failed to find a kubeconfig or in-cluster config: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         controllers.CacheOptions(),
		Metrics:                       metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:        probeAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              "manager.xrooms.dev",
		LeaderElectionNamespace:       leaderElectNS,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("failed to create the manager: %w", err)
	}

	if err := controllers.Setup(mgr, roomServerImage); err != nil {
		return fmt.Errorf("failed to set up the Room controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add the health check: %w", err)
	}
	// Ready once the caches have synced, so a new leader does not act on an empty view.
	if err := mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("caches not synced")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("failed to add the readiness check: %w", err)
	}

	log.Info("starting manager", "roomServerImage", roomServerImage, "leaderElect", leaderElect)
	return mgr.Start(ctrl.SetupSignalHandler())
}

// defaultRoomServerImage is the image the binary was built into, else the project's default.
func defaultRoomServerImage() string {
	if image != "" {
		return image
	}
	return controllers.DefaultRoomServerImage
}
