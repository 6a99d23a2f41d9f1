package install

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/xrooms/xrooms/controllers"
	"github.com/xrooms/xrooms/internal/envtestbin"
)

// root is the repository, seen from this package.
const root = "../.."

// chartDir is the Helm chart under test.
var chartDir = filepath.Join(root, "charts", "xrooms")

// cluster is one envtest control plane (a real kube-apiserver and etcd) shared by this
// package's tests; it starts on first use, so the tests that only render run without it.
type cluster struct {
	env        *envtest.Environment
	cfg        *rest.Config
	scheme     *runtime.Scheme
	client     client.Client
	kubeconfig string // an administrator's, for kubectl and helm
}

var (
	clusterOnce sync.Once
	shared      *cluster
	clusterErr  error
	// tmp holds the kubeconfig and helm's config, cache and data (out of the user's home).
	tmp string
)

func TestMain(m *testing.M) {
	var err error
	if tmp, err = os.MkdirTemp("", "xrooms-install-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if shared != nil {
		if err := shared.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "failed to stop envtest:", err)
		}
	}
	_ = os.RemoveAll(tmp)
	os.Exit(code)
}

// startCluster returns the shared control plane, starting it if needed.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	clusterOnce.Do(func() { shared, clusterErr = newCluster() })
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return shared
}

func newCluster() (*cluster, error) {
	assets, err := envtestbin.Dir(root)
	if err != nil {
		return nil, err
	}
	scheme, err := controllers.NewScheme()
	if err != nil {
		return nil, err
	}
	// No CRDs up front: the installs under test bring the Room CRD.
	env := &envtest.Environment{BinaryAssetsDirectory: assets, Scheme: scheme}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("failed to start envtest from %s: %w", assets, err)
	}
	c := &cluster{env: env, cfg: cfg, scheme: scheme}
	if err := c.connect(); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return c, nil
}

// connect makes the cluster's client and an administrator's kubeconfig file.
func (c *cluster) connect() error {
	var err error
	if c.client, err = client.New(c.cfg, client.Options{Scheme: c.scheme}); err != nil {
		return err
	}
	admin, err := c.env.AddUser(envtest.User{Name: "install-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return err
	}
	c.kubeconfig = filepath.Join(tmp, "kubeconfig")
	return os.WriteFile(c.kubeconfig, kubeconfig, 0o600)
}

// namespace creates a namespace with the given labels. envtest runs no namespace controller,
// so namespaces are never removed: every test makes its own.
func (c *cluster) namespace(t *testing.T, prefix string, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels}}
	if err := c.client.Create(context.Background(), ns); err != nil {
		t.Fatalf("failed to create a namespace: %v", err)
	}
	return ns.Name
}

// kubectl runs kubectl against the envtest API server as an administrator.
func (c *cluster) kubectl(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	out, err := run(stdin, kubectlPath(t), append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// kubectlPath finds kubectl: next to the envtest binaries (`make envtest` links it there) or
// on PATH.
func kubectlPath(t *testing.T) string {
	t.Helper()
	for _, dir := range []string{os.Getenv("KUBEBUILDER_ASSETS"), filepath.Join(root, "bin", "k8s", envtestbin.K8sVersion)} {
		if bin := filepath.Join(dir, "kubectl"); dir != "" && fileExists(bin) {
			return bin
		}
	}
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl is needed: it is not next to the envtest binaries nor on PATH")
	}
	return bin
}

// helmPath is the helm CLI `make helm` builds at the version hack/helm/go.mod pins.
func helmPath(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("HELM")
	if bin == "" {
		bin = filepath.Join(root, "bin", "helm")
	}
	if !fileExists(bin) {
		t.Fatalf("helm not found at %s: run `make helm` (builds the pinned helm from the Go module proxy into bin/) or `make test`, or set HELM", bin)
	}
	return bin
}

// helm runs helm with its own config, cache and data; the error carries helm's output.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmPath(t), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(tmp, "helm", "config"),
		"HELM_CACHE_HOME="+filepath.Join(tmp, "helm", "cache"),
		"HELM_DATA_HOME="+filepath.Join(tmp, "helm", "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// mustHelm runs helm and fails the test on an error.
func mustHelm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := helm(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// run runs a command; the error carries its stderr.
func run(stdin []byte, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w\n%s", err, stderr.String())
	}
	return stdout.String(), nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// renderKustomize is `kubectl kustomize config/default`.
func renderKustomize(t *testing.T) []byte {
	t.Helper()
	out, err := run(nil, kubectlPath(t), "kustomize", filepath.Join(root, "config", "default"))
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v", err)
	}
	return []byte(out)
}

// manifest is a rendered multi-document YAML stream, decoded.
type manifest []*unstructured.Unstructured

// parseManifest decodes every non-empty document of a YAML stream.
func parseManifest(t *testing.T, b []byte) manifest {
	t.Helper()
	var objs manifest
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("reading YAML: %v", err)
		}
		obj := map[string]any{}
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatalf("decoding YAML document: %v\n%s", err, doc)
		}
		if len(obj) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: obj})
		}
	}
}

// find returns the object of that kind and name, or nil.
func (m manifest) find(kind, name string) *unstructured.Unstructured {
	for _, o := range m {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// ofKind returns the objects of that kind.
func (m manifest) ofKind(kind string) manifest {
	var out manifest
	for _, o := range m {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// as converts a decoded object into its typed form, failing on fields the type lacks.
func as[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	if u == nil {
		t.Fatalf("no %T in the manifest", *new(T))
	}
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

// crdKind is the kind of CustomResourceDefinitions.
var crdKind = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

// get reads an object of any kind from the API server; only its error matters.
func (c *cluster) get(t *testing.T, gvk schema.GroupVersionKind, namespace, name string) error {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return c.client.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, u)
}

// waitFor polls cond until it holds, for up to 20 seconds.
func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last error: %v)", what, lastErr)
}
