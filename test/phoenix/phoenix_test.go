// Package phoenix runs the official phoenix JS client tests (node --test) against the real
// roomserver binary, which this test builds.
package phoenix

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestPhoenixClient(t *testing.T) {
	if _, err := os.Stat("node_modules/phoenix"); err != nil {
		t.Fatalf("phoenix npm packages are missing: run `npm ci --prefix test/phoenix` (make test does): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "roomserver")
	build := exec.Command("go", "build", "-o", bin, "github.com/xrooms/xrooms/cmd/roomserver")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build roomserver: %v\n%s", err, out)
	}
	node := exec.Command("node", "--test", "--test-reporter=spec", "--test-concurrency=1")
	node.Env = append(os.Environ(), "XROOMS_ROOMSERVER="+bin)
	out, err := node.CombinedOutput()
	t.Logf("node --test:\n%s", out)
	if err != nil {
		t.Fatalf("phoenix client tests failed: %v", err)
	}
}
