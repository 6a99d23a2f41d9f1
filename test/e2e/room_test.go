package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xrooms/xrooms/internal/devcluster"
)

// TestRoomLifecycle walks one room through what a user does with it, with kubectl and the
// official phoenix client: apply, join, live config, pod loss with a volume, delete.
func TestRoomLifecycle(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()

	// 1. kubectl apply the sample: the room runs, with its endpoint and its initial entities.
	kubectl(t, c, "apply", "-f", "config/samples/xrooms_v1alpha1_room.yaml")
	eventually(t, 30*time.Second, "sample room Running with 5 entities", func() string {
		r := roomRow(t, c, "lobby")
		if r["PHASE"] != "Running" || r["ENTITIES"] != "5" || r["ENDPOINT"] != "ws://lobby-room.default.svc:4000/socket" || r["SYNC"] != "100ms" {
			return fmt.Sprint(r)
		}
		return ""
	})

	// 2. Two official phoenix clients join and see each other's moves; CLIENTS shows 2.
	url, err := c.RoomURL(ctx, getRoom(t, c, "lobby"))
	if err != nil {
		t.Fatal(err)
	}
	js := startClients(t, url)
	if got := field(js.step("join"), "entities"); got != "7" { // 5 initial + alice + bob
		t.Errorf("bob sees %s entities, want 7", got)
	}
	eventually(t, 15*time.Second, "CLIENTS 2", func() string {
		if r := roomRow(t, c, "lobby"); r["CLIENTS"] != "2" {
			return fmt.Sprint(r)
		}
		return ""
	})

	// 3. Patch syncInterval: the effective interval on status changes, the diff cadence
	// follows, and no client is disconnected.
	before := js.step("cadence")
	podUID := pod(t, c, "lobby-room").UID
	kubectl(t, c, "patch", "room", "lobby", "--type=merge", "-p", `{"spec":{"syncInterval":"30ms"}}`)
	eventually(t, 15*time.Second, "SYNC 30ms", func() string {
		if r := roomRow(t, c, "lobby"); r["SYNC"] != "30ms" {
			return fmt.Sprint(r)
		}
		return ""
	})
	after := js.step("cadence")
	b, a := ms(t, field(before, "median_ms")), ms(t, field(after, "median_ms"))
	if b < 80 || b > 130 || a < 20 || a > 50 {
		t.Errorf("diff cadence %dms at 100ms, %dms at 30ms", b, a)
	}
	if field(after, "closes") != "0" {
		t.Errorf("clients were disconnected by a live config change: %s", after)
	}
	if got := pod(t, c, "lobby-room").UID; got != podUID {
		t.Errorf("the pod was replaced by a syncInterval change")
	}

	// 3b. Declare a rule on the Room. One that does not compile is reported on the Room
	// (RulesValid False, with the compiler's message) and changes nothing; a valid one takes
	// effect in the running pod, with both clients still connected.
	if got := field(js.step("nodoor"), "open"); got != "unset" {
		t.Errorf("door_opened changed box-green with no rule for it: open=%s", got)
	}
	rulesValid := func() string {
		return kubectl(t, c, "get", "room", "lobby", "-o", `jsonpath={.status.conditions[?(@.type=="RulesValid")].status} {.status.conditions[?(@.type=="RulesValid")].message}`)
	}
	kubectl(t, c, "patch", "room", "lobby", "--type=merge", "-p",
		`{"spec":{"rules":[{"event":"door_opened","mutations":[{"op":"update","target":"payload.door_id","components":{"open":"true","opened_by":"user_id +"}}]}]}}`)
	eventually(t, 15*time.Second, "RulesValid False", func() string {
		if s := rulesValid(); !strings.HasPrefix(s, "False ") || !strings.Contains(s, "rules[0] (door_opened): mutations[0].components.opened_by") {
			return s
		}
		return ""
	})
	if got := field(js.step("nodoor"), "open"); got != "unset" {
		t.Errorf("a rule that does not compile changed box-green: open=%s", got)
	}
	kubectl(t, c, "patch", "room", "lobby", "--type=merge", "-p",
		`{"spec":{"rules":[{"event":"door_opened","mutations":[{"op":"update","target":"payload.door_id","mustExist":true,"components":{"open":"true","opened_by":"user_id"}}]}]}}`)
	eventually(t, 15*time.Second, "RulesValid True", func() string {
		if s := rulesValid(); !strings.HasPrefix(s, "True ") {
			return s
		}
		return ""
	})
	door := js.step("door")
	if field(door, "opened_by") != "alice" || field(door, "closes") != "0" {
		t.Errorf("door step %q: want opened by alice, with no client disconnected", door)
	}
	if got := pod(t, c, "lobby-room").UID; got != podUID {
		t.Errorf("the pod was replaced by a change of rules")
	}

	// 4. Move the room onto a volume (this replaces the pod: the clients rejoin it), change
	// it, then delete its pod: the controller recreates it, the runner starts it, and the
	// clients rejoin and get the state back from the store.
	js.step("mark")
	kubectl(t, c, "patch", "room", "lobby", "--type=merge", "-p", `{"spec":{"persistence":{"type":"Volume","size":"1Gi"}}}`)
	waitNewPod(t, c, podUID)
	js.step("rejoined")
	kubectl(t, c, "get", "pvc", "lobby-data")
	js.step("change")
	time.Sleep(100 * time.Millisecond) // a sync interval or more: the change is flushed
	js.step("mark")
	podUID = pod(t, c, "lobby-room").UID
	kubectl(t, c, "delete", "pod", "lobby-room")
	waitNewPod(t, c, podUID)
	js.step("restored")

	// 5. kubectl delete room: the process stops, and every object the room had carried an
	// owner reference to it, for the cluster's garbage collector.
	room := getRoom(t, c, "lobby")
	for _, kind := range []string{"pod", "service", "configmap", "serviceaccount", "role", "rolebinding", "pvc"} {
		out := kubectl(t, c, "get", kind, "-l", "app.kubernetes.io/instance=lobby", "-o", "json")
		var list struct {
			Items []struct {
				Metadata struct {
					Name            string `json:"name"`
					OwnerReferences []struct {
						Kind       string `json:"kind"`
						UID        string `json:"uid"`
						Controller bool   `json:"controller"`
					} `json:"ownerReferences"`
				} `json:"metadata"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 0 {
			t.Errorf("no %s for the room", kind)
		}
		for _, it := range list.Items {
			refs := it.Metadata.OwnerReferences
			if len(refs) != 1 || refs[0].Kind != "Room" || refs[0].UID != string(room.UID) || !refs[0].Controller {
				t.Errorf("%s %s owner references: %+v", kind, it.Metadata.Name, refs)
			}
		}
	}
	js.step("mark")
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/socket")
	kubectl(t, c, "delete", "room", "lobby")
	js.step("gone")
	eventually(t, 15*time.Second, "the room's process stopped", func() string {
		if n := c.Runner.Running(); n != 0 {
			return fmt.Sprintf("%d room processes still running", n)
		}
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			return "the room server still accepts connections"
		}
		return ""
	})
}

func ms(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number of milliseconds: %q", s)
	}
	return n
}

func pod(t *testing.T, c *devcluster.Cluster, name string) *corev1.Pod {
	t.Helper()
	var p corev1.Pod
	if err := c.Client.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// waitNewPod waits for the room's pod to be replaced and its new process to be ready.
func waitNewPod(t *testing.T, c *devcluster.Cluster, old types.UID) {
	t.Helper()
	eventually(t, 30*time.Second, "a new ready pod", func() string {
		var p corev1.Pod
		if err := c.Client.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "lobby-room"}, &p); err != nil {
			return err.Error()
		}
		if p.UID == old || p.Status.Phase != corev1.PodRunning {
			return fmt.Sprintf("pod %s is %s", p.UID, p.Status.Phase)
		}
		return ""
	})
}
