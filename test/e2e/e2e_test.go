// Package e2e runs the whole system the way a user does: a real API server, the operator, and
// a local pod runner that runs each room pod as a real roomserver process; kubectl and the
// official phoenix JS client drive it.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
	"github.com/xrooms/xrooms/internal/devcluster"
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

func repoRoot(t *testing.T) string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// startCluster builds the roomserver and brings up the control plane, operator and runner.
func startCluster(t *testing.T) *devcluster.Cluster {
	t.Helper()
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "roomserver")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/xrooms/xrooms/cmd/roomserver").CombinedOutput(); err != nil {
		t.Fatalf("build roomserver: %v\n%s", err, out)
	}
	c, err := devcluster.Start(context.Background(), devcluster.Options{RepoRoot: root, RoomServer: bin, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	return c
}

func kubectl(t *testing.T, c *devcluster.Cluster, args ...string) string {
	t.Helper()
	cmd := exec.Command("kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// roomRow reads one room's row of `kubectl get rooms`, by column name.
func roomRow(t *testing.T, c *devcluster.Cluster, name string) map[string]string {
	t.Helper()
	return table(kubectl(t, c, "get", "rooms", name))[0]
}

// table parses kubectl's column output, using the header's column positions so that empty
// cells stay empty.
func table(out string) []map[string]string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	header := lines[0]
	var names []string
	var starts []int
	for i := 0; i < len(header); {
		if header[i] == ' ' {
			i++
			continue
		}
		j := i
		for j < len(header) && header[j] != ' ' {
			j++
		}
		names, starts = append(names, header[i:j]), append(starts, i)
		i = j
	}
	var rows []map[string]string
	for _, l := range lines[1:] {
		row := map[string]string{}
		for k, n := range names {
			end := len(l)
			if k+1 < len(starts) {
				end = min(starts[k+1], len(l))
			}
			if starts[k] < len(l) {
				row[n] = strings.TrimSpace(l[starts[k]:end])
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// eventually retries check until it returns "" (success) or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() string) {
	t.Helper()
	end := time.Now().Add(timeout)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: %s", what, msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// clients drives test/e2e/clients.mjs: two official phoenix clients, one step per line.
type clients struct {
	t     *testing.T
	in    io.Writer
	lines chan string
}

func startClients(t *testing.T, url string) *clients {
	t.Helper()
	if _, err := os.Stat(filepath.Join(repoRoot(t), "test", "phoenix", "node_modules", "phoenix")); err != nil {
		t.Fatalf("phoenix npm packages are missing: run `npm ci --prefix test/phoenix` (make test does): %v", err)
	}
	cmd := exec.Command("node", "clients.mjs", url)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &clients{t: t, in: in, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		fmt.Fprintln(in, "quit")
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	return c
}

// step runs one step and returns its answer.
func (c *clients) step(name string) string {
	c.t.Helper()
	if _, err := fmt.Fprintln(c.in, name); err != nil {
		c.t.Fatalf("step %s: %v", name, err)
	}
	select {
	case l, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("step %s: the clients exited", name)
		}
		if strings.HasPrefix(l, "error") {
			c.t.Fatalf("step %s: %s", name, l)
		}
		c.t.Logf("clients %s: %s", name, l)
		return l
	case <-time.After(90 * time.Second):
		c.t.Fatalf("step %s: no answer", name)
	}
	return ""
}

// field reads key=value from a step's answer.
func field(answer, key string) string {
	for _, f := range strings.Fields(answer) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

func getRoom(t *testing.T, c *devcluster.Cluster, name string) *xroomsv1alpha1.Room {
	t.Helper()
	var room xroomsv1alpha1.Room
	if err := c.Client.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, &room); err != nil {
		t.Fatal(err)
	}
	return &room
}
