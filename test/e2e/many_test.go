package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
	"github.com/xrooms/xrooms/internal/devcluster"
)

// TestManyRooms creates many Rooms at once, waits for all to run (each a real roomserver
// process reporting its status), then counts the API server's write requests over an idle
// minute. XROOMS_E2E_ROOMS and XROOMS_E2E_IDLE change the defaults (200 rooms, 60s).
func TestManyRooms(t *testing.T) {
	n := envInt(t, "XROOMS_E2E_ROOMS", 200)
	idle := time.Duration(envInt(t, "XROOMS_E2E_IDLE", 60)) * time.Second
	c := startCluster(t)
	ctx := context.Background()

	start := time.Now()
	for i := range n {
		room := &xroomsv1alpha1.Room{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("room-%03d", i), Namespace: "default"}}
		if err := c.Client.Create(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Minute, fmt.Sprintf("%d rooms Running", n), func() string {
		var list xroomsv1alpha1.RoomList
		if err := c.Client.List(ctx, &list); err != nil {
			return err.Error()
		}
		running := 0
		for _, r := range list.Items {
			// Running, and the room server itself has reported in.
			if r.Status.Phase == xroomsv1alpha1.RoomRunning && r.Status.SyncInterval != "" {
				running++
			}
		}
		if running != n {
			return fmt.Sprintf("%d of %d running", running, n)
		}
		return ""
	})
	t.Logf("%d rooms Running (room servers reporting) in %s", n, time.Since(start).Round(100*time.Millisecond))

	// Let the last first reports land, then count writes over the idle window.
	time.Sleep(5 * time.Second)
	before := writes(t, c)
	if got := before["POST rooms/"]; got < float64(n) {
		t.Fatalf("the API server counted %g Room creations, want at least %d: the write count is blind", got, n)
	}
	time.Sleep(idle)
	after := writes(t, c)
	var total float64
	var which []string
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			total += d
			which = append(which, fmt.Sprintf("%s=%g", k, d))
		}
	}
	perMinute := total / idle.Minutes()
	t.Logf("idle API writes: %g in %s (%.1f per minute) %v", total, idle, perMinute, which)
	if total != 0 {
		t.Errorf("an idle system wrote to the API server: %v", which)
	}
}

// writes reads the API server's count of write requests by resource, leaving out leases
// (the API server's own identity lease renewals, and leader election's).
func writes(t *testing.T, c *devcluster.Cluster) map[string]float64 {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "apiserver_request_total{") {
			continue
		}
		labels := l[strings.IndexByte(l, '{')+1 : strings.LastIndexByte(l, '}')]
		verb, resource, sub := label(labels, "verb"), label(labels, "resource"), label(labels, "subresource")
		switch verb {
		case "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION":
		default:
			continue
		}
		if resource == "leases" {
			continue
		}
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err != nil {
			t.Fatal(err)
		}
		out[verb+" "+resource+"/"+sub] += v
	}
	return out
}

func label(labels, name string) string {
	for _, kv := range strings.Split(labels, ",") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}
