package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/xrooms/xrooms/internal/envtestbin"
)

// testImage is the default room-server image of the reconcilers under test.
const testImage = "example.com/xrooms/roomserver:test"

// testEnv is one envtest control plane (a real kube-apiserver and etcd) shared by the tests of
// this package. It starts on first use, so the pure tests run without it.
type testEnv struct {
	env      *envtest.Environment
	cfg      *rest.Config
	scheme   *runtime.Scheme
	client   client.WithWatch
	recorder events.EventRecorder
	assets   string
	cancel   context.CancelFunc
}

var (
	envOnce   sync.Once
	sharedEnv *testEnv
	envErr    error
)

func TestMain(m *testing.M) {
	logf.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr), zap.Level(zapLevel())))
	code := m.Run()
	if sharedEnv != nil {
		sharedEnv.cancel()
		if err := sharedEnv.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "failed to stop envtest:", err)
		}
	}
	os.Exit(code)
}

// zapLevel keeps the controller's logs quiet unless XROOMS_TEST_LOG is set.
func zapLevel() zapcore.Level {
	if os.Getenv("XROOMS_TEST_LOG") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

// startEnv returns the shared control plane, starting it if needed. It fails the test with
// what to do when the binaries are missing.
func startEnv(t *testing.T) *testEnv {
	t.Helper()
	envOnce.Do(func() { sharedEnv, envErr = newTestEnv() })
	if envErr != nil {
		t.Fatal(envErr)
	}
	return sharedEnv
}

// envtestAssets is the folder with kube-apiserver, etcd (and kubectl).
func envtestAssets() (string, error) { return envtestbin.Dir("..") }

func newTestEnv() (*testEnv, error) {
	assets, err := envtestAssets()
	if err != nil {
		return nil, err
	}
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("failed to start envtest from %s: %w", assets, err)
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: clientset.EventsV1()})
	if err := broadcaster.StartRecordingToSinkWithContext(ctx); err != nil {
		cancel()
		_ = env.Stop()
		return nil, err
	}
	return &testEnv{
		env:      env,
		cfg:      cfg,
		scheme:   scheme,
		client:   c,
		recorder: broadcaster.NewRecorder(scheme, "xrooms-controller"),
		assets:   assets,
		cancel:   cancel,
	}, nil
}

// testClockStart is the fake clock's start; conditions' lastTransitionTime come from it.
var testClockStart = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// reconciler returns a RoomReconciler that reads and writes the API server directly (no cache,
// so every test sees its own writes at once) with a fake clock.
func (e *testEnv) reconciler() (*RoomReconciler, *clocktesting.FakePassiveClock) {
	clk := clocktesting.NewFakePassiveClock(testClockStart)
	return &RoomReconciler{
		Client:          e.client,
		APIReader:       e.client,
		Recorder:        e.recorder,
		Clock:           clk,
		RoomServerImage: testImage,
	}, clk
}

// namespace creates a fresh namespace for one test. envtest runs no namespace controller, so
// namespaces are never cleaned up; each test gets its own instead.
func (e *testEnv) namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "xrooms-test-"}}
	if err := e.client.Create(context.Background(), ns); err != nil {
		t.Fatalf("failed to create namespace: %v", err)
	}
	return ns.Name
}
