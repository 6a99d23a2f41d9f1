package kube

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
	"github.com/xrooms/xrooms/internal/envtestbin"
	"github.com/xrooms/xrooms/roomserver/rules"
)

// apiServer is envtest's kube-apiserver and etcd with the Room CRD, shared by this package's
// tests (each starting its own would cost ~10s); TestMain stops it.
var apiServer struct {
	once sync.Once
	env  *envtest.Environment
	cfg  *rest.Config
	c    client.Client
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if apiServer.env != nil {
		_ = apiServer.env.Stop()
	}
	os.Exit(code)
}

// startAPIServer returns the shared API server's config and a controller-runtime client for
// the tests' own setup; the code under test uses this package's Client.
func startAPIServer(t *testing.T) (*rest.Config, client.Client) {
	t.Helper()
	apiServer.once.Do(func() {
		ctrllog.SetLogger(logr.Discard())
		assets, err := envtestbin.Dir(filepath.Join("..", ".."))
		if err != nil {
			apiServer.err = err
			return
		}
		apiServer.env = &envtest.Environment{
			CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
			ErrorIfCRDPathMissing: true,
			BinaryAssetsDirectory: assets,
		}
		if apiServer.cfg, apiServer.err = apiServer.env.Start(); apiServer.err != nil {
			return
		}
		scheme := runtime.NewScheme()
		if apiServer.err = xroomsv1alpha1.AddToScheme(scheme); apiServer.err != nil {
			return
		}
		apiServer.c, apiServer.err = client.New(apiServer.cfg, client.Options{Scheme: scheme})
	})
	if apiServer.err != nil {
		t.Fatal(apiServer.err)
	}
	return apiServer.cfg, apiServer.c
}

func newClient(t *testing.T, cfg *rest.Config) *Client {
	t.Helper()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// countingTransport counts the requests that match.
type countingTransport struct {
	next  http.RoundTripper
	match func(*http.Request) bool
	n     *atomic.Int32
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.match(req) {
		t.n.Add(1)
	}
	return t.next.RoundTrip(req)
}

func createRoom(t *testing.T, c client.Client, name string) *xroomsv1alpha1.Room {
	t.Helper()
	room := &xroomsv1alpha1.Room{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	if err := c.Create(context.Background(), room); err != nil {
		t.Fatal(err)
	}
	return room
}

func TestReporterAndWatcher(t *testing.T) {
	cfg, c := startAPIServer(t)
	ctx := context.Background()

	t.Run("the reporter writes the server's fields, throttled, and nothing while nothing changes", func(t *testing.T) {
		createRoom(t, c, "reported")
		var applies atomic.Int32
		counted := rest.CopyConfig(cfg)
		counted.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return countingTransport{next: rt, n: &applies, match: func(req *http.Request) bool {
				return req.Method == http.MethodPatch && strings.HasSuffix(req.URL.Path, "/rooms/reported/status") &&
					req.Header.Get("Content-Type") == string(types.ApplyPatchType) &&
					req.URL.Query().Get("fieldManager") == FieldManager && req.URL.Query().Get("force") == "true"
			}}
		}
		var mu sync.Mutex
		stats := Stats{Clients: 2, Entities: 5, SyncInterval: 100 * time.Millisecond, LastSync: time.Now()}
		busy := true
		rep := &Reporter{Client: newClient(t, counted), Namespace: "default", Name: "reported", Interval: 200 * time.Millisecond, Open: true,
			Stats: func(context.Context) (Stats, error) {
				mu.Lock()
				defer mu.Unlock()
				if busy { // a busy room: its figures change all the time
					stats.LastSync = stats.LastSync.Add(time.Second)
				}
				return stats, nil
			}}
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); rep.Run(rctx) }()

		time.Sleep(time.Second)
		busyWrites := applies.Load()
		// At most one write per interval (200ms) while busy: about 5 in a second, never one per change.
		if busyWrites < 2 || busyWrites > 7 {
			t.Errorf("%d status writes in 1s at a 200ms interval", busyWrites)
		}
		var room xroomsv1alpha1.Room
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "reported"}, &room); err != nil {
			t.Fatal(err)
		}
		if room.Status.Clients == nil || *room.Status.Clients != 2 || *room.Status.Entities != 5 || room.Status.SyncInterval != "100ms" || room.Status.LastSyncTime == nil {
			t.Errorf("status: %+v", room.Status)
		}
		if cond := findCondition(room.Status.Conditions, ConditionServerReady); cond == nil || cond.Status != metav1.ConditionTrue {
			t.Errorf("ServerReady: %+v", cond)
		}

		mu.Lock()
		busy = false
		mu.Unlock()
		time.Sleep(300 * time.Millisecond) // the last change gets written
		idleFrom := applies.Load()
		time.Sleep(time.Second)
		if n := applies.Load() - idleFrom; n != 0 {
			t.Errorf("%d status writes while nothing changed", n)
		}

		stop()
		<-done
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "reported"}, &room); err != nil {
			t.Fatal(err)
		}
		if cond := findCondition(room.Status.Conditions, ConditionServerReady); cond == nil || cond.Status != metav1.ConditionFalse || *room.Status.Clients != 0 {
			t.Errorf("after shutdown: clients %v, ServerReady %+v", room.Status.Clients, cond)
		}
		// The server's fields are its own: the field manager says so.
		owned := false
		for _, mf := range room.ManagedFields {
			if mf.Manager == FieldManager && mf.Subresource == "status" {
				owned = true
			}
		}
		if !owned {
			t.Errorf("no status fields managed by %s: %+v", FieldManager, room.ManagedFields)
		}
	})

	t.Run("the watcher applies live config at start and on every change", func(t *testing.T) {
		room := createRoom(t, c, "watched")
		w := startWatcher(t, ctx, newClient(t, cfg), "watched")
		w.expect(LiveConfig{SyncInterval: 200 * time.Millisecond}) // the API server's default

		max := int32(7)
		patch := client.MergeFrom(room.DeepCopy())
		room.Spec.SyncInterval = metav1.Duration{Duration: 40 * time.Millisecond}
		room.Spec.MaxClients = &max
		if err := c.Patch(ctx, room, patch); err != nil {
			t.Fatal(err)
		}
		w.expect(LiveConfig{SyncInterval: 40 * time.Millisecond, MaxClients: 7})

		// A change to something else is not handed on.
		patch = client.MergeFrom(room.DeepCopy())
		room.Labels = map[string]string{"team": "blue"}
		if err := c.Patch(ctx, room, patch); err != nil {
			t.Fatal(err)
		}
		w.none("on a change of labels", 500*time.Millisecond)

		// Rules are live config too, handed on as declared.
		patch = client.MergeFrom(room.DeepCopy())
		room.Spec.Rules = []xroomsv1alpha1.RoomRule{{Event: "door_opened", Mutations: []xroomsv1alpha1.RoomRuleMutation{
			{Op: "update", Target: "payload.door_id", Components: map[string]string{"open": "true"}}}}}
		if err := c.Patch(ctx, room, patch); err != nil {
			t.Fatal(err)
		}
		w.expect(LiveConfig{SyncInterval: 40 * time.Millisecond, MaxClients: 7, Rules: []rules.Decl{{Event: "door_opened",
			Mutations: []rules.MutationDecl{{Op: "update", Target: "payload.door_id", Components: map[string]string{"open": "true"}}}}}})
	})
}

func TestReporterTakesOverItsFields(t *testing.T) {
	cfg, c := startAPIServer(t)
	ctx := context.Background()
	createRoom(t, c, "contested")
	// Someone else applied status.clients first: without force, the server's apply would conflict.
	other := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": xroomsv1alpha1.GroupVersion.String(), "kind": "Room",
		"metadata": map[string]any{"name": "contested", "namespace": "default"},
		"status":   map[string]any{"clients": int64(99)},
	}}
	if err := c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(other), client.FieldOwner("someone-else")); err != nil {
		t.Fatal(err)
	}
	rep := &Reporter{Client: newClient(t, cfg), Namespace: "default", Name: "contested",
		Stats: func(context.Context) (Stats, error) { return Stats{Clients: 3, SyncInterval: time.Second}, nil }}
	if err := rep.apply(ctx, Stats{Clients: 3, SyncInterval: time.Second}, true, metav1.Now()); err != nil {
		t.Fatal(err)
	}
	var room xroomsv1alpha1.Room
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "contested"}, &room); err != nil {
		t.Fatal(err)
	}
	if room.Status.Clients == nil || *room.Status.Clients != 3 {
		t.Errorf("clients %v, want 3", room.Status.Clients)
	}
}

func TestWatcherRelistsAfterABreak(t *testing.T) {
	cfg, c := startAPIServer(t)
	ctx := context.Background()
	var lists atomic.Int32
	watches := make(chan io.Closer, 8)
	wcfg := rest.CopyConfig(cfg)
	wcfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.URL.Query().Get("fieldSelector") != "metadata.name=later" {
				t.Errorf("request without the field selector the Role needs: %s", req.URL)
			}
			resp, err := rt.RoundTrip(req)
			if err == nil && req.URL.Query().Get("watch") == "true" {
				watches <- resp.Body
			} else if err == nil {
				lists.Add(1)
			}
			return resp, err
		})
	}
	w := startWatcher(t, ctx, newClient(t, wcfg), "later")
	nextWatch := func() io.Closer {
		t.Helper()
		select {
		case b := <-watches:
			return b
		case <-time.After(10 * time.Second):
			t.Fatal("no watch")
			return nil
		}
	}

	// The Room does not exist yet: nothing to apply until it is created.
	body := nextWatch()
	room := createRoom(t, c, "later")
	w.expect(LiveConfig{SyncInterval: 200 * time.Millisecond})

	// The watch breaks: the watcher lists again, watches again, and hands on only what changed.
	_ = body.Close()
	nextWatch()
	if n := lists.Load(); n != 2 {
		t.Errorf("%d lists, want 2", n)
	}
	w.none("again after re-listing an unchanged room", 300*time.Millisecond)
	patch := client.MergeFrom(room.DeepCopy())
	room.Spec.SyncInterval = metav1.Duration{Duration: 50 * time.Millisecond}
	if err := c.Patch(ctx, room, patch); err != nil {
		t.Fatal(err)
	}
	w.expect(LiveConfig{SyncInterval: 50 * time.Millisecond})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func findCondition(conds []metav1.Condition, t string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// watched is a Watcher of one room, run until the test ends, with the live configs it applies.
type watched struct {
	t   *testing.T
	got chan LiveConfig
}

func startWatcher(t *testing.T, ctx context.Context, c *Client, name string) *watched {
	t.Helper()
	w := &watched{t: t, got: make(chan LiveConfig, 8)}
	watcher := &Watcher{Client: c, Namespace: "default", Name: name, Apply: func(_ context.Context, lc LiveConfig) error {
		w.got <- lc
		return nil
	}}
	wctx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	go watcher.Run(wctx)
	return w
}

// expect checks the next live config applied.
func (w *watched) expect(want LiveConfig) {
	w.t.Helper()
	select {
	case lc := <-w.got:
		if !reflect.DeepEqual(lc, want) {
			w.t.Fatalf("applied %+v, want %+v", lc, want)
		}
	case <-time.After(10 * time.Second):
		w.t.Fatalf("nothing applied, want %+v", want)
	}
}

// none checks that nothing is applied for d.
func (w *watched) none(why string, d time.Duration) {
	w.t.Helper()
	select {
	case lc := <-w.got:
		w.t.Fatalf("applied %+v %s", lc, why)
	case <-time.After(d):
	}
}
