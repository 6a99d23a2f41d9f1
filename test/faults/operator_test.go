// Package faults tests the operator through faults of its environment: losing its leader,
// losing its API server mid-reconcile. Each runs real managers against envtest's real
// kube-apiserver and etcd.
package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
	"github.com/xrooms/xrooms/controllers"
	"github.com/xrooms/xrooms/internal/envtestbin"
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// startEnv starts a control plane whose API server can be stopped and started again: its
// certificates live in a folder of the test's, so a restarted server keeps them.
func startEnv(t *testing.T) (*envtest.Environment, *rest.Config, client.Client) {
	t.Helper()
	assets, err := envtestbin.Dir(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	env.ControlPlane.GetAPIServer().CertDir = t.TempDir()
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme, err := controllers.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return env, cfg, c
}

// startManager runs one operator replica until ctx ends.
func startManager(t *testing.T, ctx context.Context, cfg *rest.Config, leaderElect bool) ctrl.Manager {
	t.Helper()
	scheme, err := controllers.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   controllers.CacheOptions(),
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		Controller:              config.Controller{SkipNameValidation: ptr.To(true)},
		LeaderElection:          leaderElect,
		LeaderElectionID:        "manager.xrooms.dev",
		LeaderElectionNamespace: "default",
		// Short terms so a lost leader is replaced within seconds. The lease is not released
		// on stop: a replica that dies does not get to release it either.
		LeaseDuration: ptr.To(2 * time.Second),
		RenewDeadline: ptr.To(1500 * time.Millisecond),
		RetryPeriod:   ptr.To(200 * time.Millisecond),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := controllers.Setup(mgr, ""); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	t.Cleanup(func() { <-done })
	return mgr
}

func createRoom(t *testing.T, c client.Client, name string) {
	t.Helper()
	room := &xroomsv1alpha1.Room{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	if err := c.Create(context.Background(), room); err != nil {
		t.Fatal(err)
	}
}

// roomPods counts the pods that belong to a room, however they are named.
func roomPods(c client.Client, room string) (int, error) {
	var pods corev1.PodList
	if err := c.List(context.Background(), &pods, client.InNamespace("default"), client.MatchingLabels{"app.kubernetes.io/instance": room}); err != nil {
		return 0, err
	}
	return len(pods.Items), nil
}

func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	end := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func elected(t *testing.T, mgr ctrl.Manager, within time.Duration) bool {
	t.Helper()
	select {
	case <-mgr.Elected():
		return true
	case <-time.After(within):
		return false
	}
}

// TestLeaderFailover runs two replicas with leader election, kills the leader, and checks the
// other takes over and reconciles.
func TestLeaderFailover(t *testing.T) {
	_, cfg, c := startEnv(t)
	ctxA, killA := context.WithCancel(context.Background())
	defer killA()
	a := startManager(t, ctxA, cfg, true)
	if !elected(t, a, 10*time.Second) {
		t.Fatal("the first replica was not elected")
	}
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	b := startManager(t, ctxB, cfg, true)
	if elected(t, b, 3*time.Second) {
		t.Fatal("two leaders at once")
	}

	createRoom(t, c, "before")
	eventually(t, 15*time.Second, "the leader reconciles", func() error {
		if n, err := roomPods(c, "before"); err != nil || n != 1 {
			return fmt.Errorf("%d pods, %v", n, err)
		}
		return nil
	})

	killA()
	start := time.Now()
	if !elected(t, b, 15*time.Second) {
		t.Fatal("the second replica did not take over")
	}
	t.Logf("the standby replica took over %s after the leader died", time.Since(start).Round(10*time.Millisecond))

	createRoom(t, c, "after")
	if err := c.DeleteAllOf(context.Background(), &corev1.Pod{}, client.InNamespace("default"), client.MatchingLabels{"app.kubernetes.io/instance": "before"}); err != nil {
		t.Fatal(err)
	}
	for _, room := range []string{"before", "after"} {
		eventually(t, 15*time.Second, "the new leader reconciles "+room, func() error {
			if n, err := roomPods(c, room); err != nil || n != 1 {
				return fmt.Errorf("%d pods, %v", n, err)
			}
			return nil
		})
	}
}

// TestAPIServerRestart stops the API server while the operator is creating rooms' objects,
// starts it again, and checks the operator converges: every room gets exactly its objects.
func TestAPIServerRestart(t *testing.T) {
	env, cfg, c := startEnv(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	startManager(t, ctx, cfg, false)

	const n = 20
	for i := range n {
		createRoom(t, c, fmt.Sprintf("room-%02d", i))
	}
	// Mid-reconcile: the operator is still creating objects for these rooms. The API server
	// is killed (it does not drain its watches for a SIGTERM within a minute), then started
	// again on the same port, certificates and etcd.
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	t.Logf("killing the API server with %d of %d room pods created", len(pods.Items), n)
	api := env.ControlPlane.GetAPIServer()
	pid := apiServerPID(t, api.CertDir)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := api.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if err := api.Start(); err != nil {
		t.Fatal(err)
	}

	for i := range n {
		room := fmt.Sprintf("room-%02d", i)
		eventually(t, 60*time.Second, room+" converges", func() error {
			if np, err := roomPods(c, room); err != nil || np != 1 {
				return fmt.Errorf("%d pods, %v", np, err)
			}
			var svcs corev1.ServiceList
			if err := c.List(context.Background(), &svcs, client.InNamespace("default"), client.MatchingLabels{"app.kubernetes.io/instance": room}); err != nil || len(svcs.Items) != 1 {
				return fmt.Errorf("%d services, %v", len(svcs.Items), err)
			}
			var r xroomsv1alpha1.Room
			if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: room}, &r); err != nil {
				return err
			}
			if r.Status.Phase != xroomsv1alpha1.RoomStarting || r.Status.PodName == "" {
				return fmt.Errorf("phase %q, pod %q", r.Status.Phase, r.Status.PodName)
			}
			return nil
		})
	}
}

// apiServerPID finds the kube-apiserver process that serves with certificates in certDir.
func apiServerPID(t *testing.T, certDir string) int {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmd := string(b)
		if strings.Contains(cmd, "kube-apiserver") && strings.Contains(cmd, certDir) {
			pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			if err == nil {
				return pid
			}
		}
	}
	t.Fatalf("no kube-apiserver process with certificates in %s", certDir)
	return 0
}
