package kube

import (
	"context"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
	"github.com/xrooms/xrooms/internal/envtestbin"
	"github.com/xrooms/xrooms/roomserver/rules"
)

// startAPIServer runs envtest's kube-apiserver and etcd with the Room CRD and returns a client.
func startAPIServer(t *testing.T) client.WithWatch {
	t.Helper()
	ctrllog.SetLogger(logr.Discard())
	assets, err := envtestbin.Dir(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
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
	c := startAPIServer(t)
	ctx := context.Background()

	t.Run("the reporter writes the server's fields, throttled, and nothing while nothing changes", func(t *testing.T) {
		createRoom(t, c, "reported")
		var applies atomic.Int32
		counting := interceptor.NewClient(c, interceptor.Funcs{
			SubResourceApply: func(ctx context.Context, cl client.Client, sub string, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
				applies.Add(1)
				return cl.SubResource(sub).Apply(ctx, obj, opts...)
			},
		})
		var mu sync.Mutex
		stats := Stats{Clients: 2, Entities: 5, SyncInterval: 100 * time.Millisecond, LastSync: time.Now()}
		busy := true
		rep := &Reporter{Client: counting, Namespace: "default", Name: "reported", Interval: 200 * time.Millisecond, Open: true,
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
		got := make(chan LiveConfig, 8)
		w := &Watcher{Client: c, Namespace: "default", Name: "watched", Apply: func(_ context.Context, lc LiveConfig) error {
			got <- lc
			return nil
		}}
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		go w.Run(wctx)
		expect := func(want LiveConfig) {
			t.Helper()
			select {
			case lc := <-got:
				if !reflect.DeepEqual(lc, want) {
					t.Fatalf("applied %+v, want %+v", lc, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("nothing applied, want %+v", want)
			}
		}
		expect(LiveConfig{SyncInterval: 200 * time.Millisecond}) // the API server's default

		max := int32(7)
		patch := client.MergeFrom(room.DeepCopy())
		room.Spec.SyncInterval = metav1.Duration{Duration: 40 * time.Millisecond}
		room.Spec.MaxClients = &max
		if err := c.Patch(ctx, room, patch); err != nil {
			t.Fatal(err)
		}
		expect(LiveConfig{SyncInterval: 40 * time.Millisecond, MaxClients: 7})

		// A change to something else is not handed on.
		patch = client.MergeFrom(room.DeepCopy())
		room.Labels = map[string]string{"team": "blue"}
		if err := c.Patch(ctx, room, patch); err != nil {
			t.Fatal(err)
		}
		select {
		case lc := <-got:
			t.Fatalf("applied %+v on a change of labels", lc)
		case <-time.After(500 * time.Millisecond):
		}

		// Rules are live config too, handed on as declared.
		patch = client.MergeFrom(room.DeepCopy())
		room.Spec.Rules = []xroomsv1alpha1.RoomRule{{Event: "door_opened", Mutations: []xroomsv1alpha1.RoomRuleMutation{
			{Op: "update", Target: "payload.door_id", Components: map[string]string{"open": "true"}}}}}
		if err := c.Patch(ctx, room, patch); err != nil {
			t.Fatal(err)
		}
		expect(LiveConfig{SyncInterval: 40 * time.Millisecond, MaxClients: 7, Rules: []rules.Decl{{Event: "door_opened",
			Mutations: []rules.MutationDecl{{Op: "update", Target: "payload.door_id", Components: map[string]string{"open": "true"}}}}}})
	})
}

func findCondition(conds []metav1.Condition, t string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}
