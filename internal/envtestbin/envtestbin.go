// Package envtestbin finds the envtest control-plane binaries (kube-apiserver, etcd) that
// `make envtest` builds from the Go module proxy, for every test and tool that starts a
// control plane.
package envtestbin

import (
	"fmt"
	"os"
	"path/filepath"
)

// K8sVersion is the Kubernetes version hack/envtest builds.
const K8sVersion = "1.37.2"

// Dir returns the folder with kube-apiserver and etcd: KUBEBUILDER_ASSETS when set, else
// bin/k8s/<version> under repoRoot. It fails with a message that says how to build them.
func Dir(repoRoot string) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(repoRoot, "bin", "k8s", K8sVersion)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("envtest binaries not found: %s is missing. Run `make envtest` (it builds kube-apiserver and etcd from source into bin/k8s/%s) or `make test`, or set KUBEBUILDER_ASSETS", filepath.Join(dir, bin), K8sVersion)
		}
	}
	return dir, nil
}
