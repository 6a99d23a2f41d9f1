package install

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// productionValues is a values file setting most of what the chart offers.
var productionValues = filepath.Join("testdata", "production-values.yaml")

// renderChart is `helm template` of the chart as release in namespace ns.
func renderChart(t *testing.T, release, ns string, flags ...string) manifest {
	t.Helper()
	return parseManifest(t, []byte(mustHelm(t, append([]string{"template", release, chartDir, "--namespace", ns}, flags...)...)))
}

// appVersion is the chart's appVersion, the default image tag.
func appVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &chart); err != nil || chart.AppVersion == "" {
		t.Fatalf("Chart.yaml appVersion %q: %v", chart.AppVersion, err)
	}
	return chart.AppVersion
}

// managerOf returns the chart's manager Deployment and its container.
func managerOf(t *testing.T, objs manifest) (*appsv1.Deployment, corev1.Container) {
	t.Helper()
	deps := objs.ofKind("Deployment")
	if len(deps) != 1 {
		t.Fatalf("%d Deployments rendered, want the manager's", len(deps))
	}
	dep := as[appsv1.Deployment](t, deps[0])
	return dep, dep.Spec.Template.Spec.Containers[0]
}

func TestChartLint(t *testing.T) {
	for _, flags := range [][]string{nil, {"--values", productionValues}} {
		out := mustHelm(t, append([]string{"lint", "--strict", chartDir}, flags...)...)
		if !strings.Contains(out, "0 chart(s) failed") {
			t.Errorf("helm lint %v:\n%s", flags, out)
		}
	}
}

// TestChartCopiesConfig checks the chart's CRDs and manager rules are config/'s, byte for
// byte: `make manifests` copies them after controller-gen writes them.
func TestChartCopiesConfig(t *testing.T) {
	same := func(config, chart string) {
		t.Helper()
		want, err := os.ReadFile(filepath.Join(root, config))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(chartDir, chart))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("charts/xrooms/%s differs from %s (%v): run `make manifests`", chart, config, err)
		}
	}
	names := func(dir string) []string {
		t.Helper()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	crds := names(filepath.Join(root, "config", "crd", "bases"))
	if got := names(filepath.Join(chartDir, "crds")); !slices.Equal(got, crds) {
		t.Errorf("charts/xrooms/crds holds %v, config/crd/bases %v: run `make manifests`", got, crds)
	}
	for _, crd := range crds {
		same(filepath.Join("config", "crd", "bases", crd), filepath.Join("crds", crd))
	}
	same(filepath.Join("config", "rbac", "role.yaml"), filepath.Join("files", "manager-role.yaml"))
}

// TestChartMatchesKustomize renders the chart as release "xrooms" in namespace xrooms-system:
// it must install the same objects as `kubectl kustomize config/default` (less the namespace,
// which `helm install --create-namespace` makes), with the same RBAC, and a manager pod set up
// the same way, so either way of installing gives the same operator.
func TestChartMatchesKustomize(t *testing.T) {
	chart := renderChart(t, "xrooms", "xrooms-system", "--include-crds")
	kustomize := parseManifest(t, renderKustomize(t))

	key := func(o *unstructured.Unstructured) string { return o.GetKind() + "/" + o.GetName() }
	var chartKeys, kustomizeKeys []string
	for _, o := range chart {
		chartKeys = append(chartKeys, key(o))
	}
	for _, o := range kustomize {
		if o.GetKind() != "Namespace" {
			kustomizeKeys = append(kustomizeKeys, key(o))
		}
	}
	sort.Strings(chartKeys)
	sort.Strings(kustomizeKeys)
	if !slices.Equal(chartKeys, kustomizeKeys) {
		t.Errorf("the chart renders\n  %v\nconfig/default\n  %v", chartKeys, kustomizeKeys)
	}

	t.Run("same RBAC", func(t *testing.T) {
		for _, want := range kustomize {
			got := chart.find(want.GetKind(), want.GetName())
			if got == nil {
				continue // reported above
			}
			switch want.GetKind() {
			case "ClusterRole", "Role":
				w, g := as[rbacv1.ClusterRole](t, stripKind(want)), as[rbacv1.ClusterRole](t, stripKind(got))
				if !equality.Semantic.DeepEqual(g.Rules, w.Rules) {
					t.Errorf("%s %s rules differ:\nchart:     %+v\nkustomize: %+v", want.GetKind(), want.GetName(), g.Rules, w.Rules)
				}
				if !equality.Semantic.DeepEqual(aggregation(g.Labels), aggregation(w.Labels)) {
					t.Errorf("%s %s aggregates to %v in the chart, %v in config/", want.GetKind(), want.GetName(), aggregation(g.Labels), aggregation(w.Labels))
				}
			case "ClusterRoleBinding", "RoleBinding":
				w, g := as[rbacv1.ClusterRoleBinding](t, stripKind(want)), as[rbacv1.ClusterRoleBinding](t, stripKind(got))
				if !equality.Semantic.DeepEqual(g.RoleRef, w.RoleRef) || !equality.Semantic.DeepEqual(g.Subjects, w.Subjects) {
					t.Errorf("%s %s binds %+v to %+v in the chart, %+v to %+v in config/", want.GetKind(), want.GetName(), g.RoleRef, g.Subjects, w.RoleRef, w.Subjects)
				}
			}
		}
	})
	t.Run("same manager pod", func(t *testing.T) {
		c, k := as[appsv1.Deployment](t, chart.find("Deployment", "xrooms-controller-manager")), as[appsv1.Deployment](t, kustomize.find("Deployment", "xrooms-controller-manager"))
		cs, ks := c.Spec.Template.Spec, k.Spec.Template.Spec
		cm, km := cs.Containers[0], ks.Containers[0]
		if cm.Image != km.Image {
			t.Errorf("default image %s in the chart, %s in config/", cm.Image, km.Image)
		}
		for _, arg := range km.Args {
			if !slices.Contains(cm.Args, arg) {
				t.Errorf("config/'s manager argument %s is not in the chart's %q", arg, cm.Args)
			}
		}
		for what, pair := range map[string][2]any{
			"ServiceAccount":      {cs.ServiceAccountName, ks.ServiceAccountName},
			"pod securityContext": {cs.SecurityContext, ks.SecurityContext},
			"command":             {cm.Command, km.Command},
			"ports":               {cm.Ports, km.Ports},
			"probes":              {[]any{cm.LivenessProbe, cm.ReadinessProbe}, []any{km.LivenessProbe, km.ReadinessProbe}},
			"securityContext":     {cm.SecurityContext, km.SecurityContext},
			"resources":           {cm.Resources, km.Resources},
		} {
			if !equality.Semantic.DeepEqual(pair[0], pair[1]) {
				t.Errorf("manager %s differs:\nchart:     %s\nkustomize: %s", what, jsonOf(pair[0]), jsonOf(pair[1]))
			}
		}
	})
}

// stripKind lets a Role decode as a ClusterRole and a RoleBinding as a ClusterRoleBinding:
// the fields compared are the same.
func stripKind(u *unstructured.Unstructured) *unstructured.Unstructured {
	c := u.DeepCopy()
	delete(c.Object, "kind")
	delete(c.Object, "apiVersion")
	return c
}

func aggregation(labels map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") {
			out[k] = v
		}
	}
	return out
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestChartRefusesBadValues: a mistake in the values fails helm with a message naming it,
// before anything reaches the cluster.
func TestChartRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"a misspelt key", []string{"--set", "replicas=2"}, "additional properties 'replicas' not allowed"},
		{"an unknown log level", []string{"--set", "logLevel=loud"}, "/logLevel"},
		{"a replica count that is not a number", []string{"--set-string", "replicaCount=two"}, "/replicaCount"},
		{"a malformed digest", []string{"--set", "image.digest=latest"}, "/image/digest"},
		{"replicas without leader election", []string{"--set", "replicaCount=2", "--set", "leaderElection.enabled=false"}, "replicaCount above 1 needs leaderElection.enabled"},
		{"no ServiceAccount", []string{"--set", "serviceAccount.create=false"}, "serviceAccount.name must name an existing ServiceAccount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"template", "xrooms", chartDir}, tc.flags...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template %v: %v, want an error saying %q\n%s", tc.flags, err, tc.want, out)
			}
		})
	}
}

// chartValues are the values of productionValues that land in the manager pod as they are.
type chartValues struct {
	Resources        corev1.ResourceRequirements   `json:"resources"`
	NodeSelector     map[string]string             `json:"nodeSelector"`
	Tolerations      []corev1.Toleration           `json:"tolerations"`
	Affinity         *corev1.Affinity              `json:"affinity"`
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets"`
	PodAnnotations   map[string]string             `json:"podAnnotations"`
	PodLabels        map[string]string             `json:"podLabels"`
}

// TestChartInstall renders the chart with several sets of values, checks what it renders, and
// installs each with `helm install` into the API server, which refuses invalid objects.
func TestChartInstall(t *testing.T) {
	dev := "ghcr.io/xrooms/xrooms:" + appVersion(t)
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cases := []struct {
		name, release string
		flags         []string
		// The manager's image, and the image of Rooms without spec.image.
		image, roomImage string
		check            func(t *testing.T, objs manifest)
	}{
		{
			name: "defaults", release: "xr-default",
			image: dev, roomImage: dev,
			check: func(t *testing.T, objs manifest) {
				dep, m := managerOf(t, objs)
				if *dep.Spec.Replicas != 1 || !slices.Contains(m.Args, "--leader-elect") || !slices.Contains(m.Args, "--zap-log-level=info") {
					t.Errorf("replicas %d, args %q: want 1 replica, --leader-elect, --zap-log-level=info", *dep.Spec.Replicas, m.Args)
				}
				if s := dep.Spec.Template.Spec; len(s.NodeSelector) > 0 || len(s.Tolerations) > 0 || s.Affinity != nil {
					t.Errorf("scheduling constraints by default: %v %v %v", s.NodeSelector, s.Tolerations, s.Affinity)
				}
				if len(objs.ofKind("ServiceMonitor")) != 0 {
					t.Error("a ServiceMonitor by default")
				}
			},
		},
		{
			name: "production values", release: "xr-prod", flags: []string{"--values", productionValues},
			image: "registry.example.com/platform/xrooms:v1.4.2", roomImage: "registry.example.com/platform/xrooms:v1.4.2",
			check: func(t *testing.T, objs manifest) {
				dep, m := managerOf(t, objs)
				if *dep.Spec.Replicas != 2 || !slices.Contains(m.Args, "--leader-elect") {
					t.Errorf("replicas %d, args %q: want 2 replicas electing a leader", *dep.Spec.Replicas, m.Args)
				}
				if !slices.Contains(m.Args, "--zap-log-level=debug") || !slices.Contains(m.Args, "--zap-encoder=console") || m.ImagePullPolicy != corev1.PullAlways {
					t.Errorf("args %q, pull policy %s: want the log level, extraArgs and pull policy of the values", m.Args, m.ImagePullPolicy)
				}
				b, err := os.ReadFile(productionValues)
				if err != nil {
					t.Fatal(err)
				}
				var v chartValues
				if err := yaml.Unmarshal(b, &v); err != nil {
					t.Fatal(err)
				}
				pod := dep.Spec.Template
				got := chartValues{m.Resources, pod.Spec.NodeSelector, pod.Spec.Tolerations, pod.Spec.Affinity, pod.Spec.ImagePullSecrets, map[string]string{}, map[string]string{}}
				for k := range v.PodAnnotations {
					got.PodAnnotations[k] = pod.Annotations[k]
				}
				for k := range v.PodLabels {
					got.PodLabels[k] = pod.Labels[k]
				}
				if !equality.Semantic.DeepEqual(got, v) {
					t.Errorf("manager pod\n  %s\nwant the values\n  %s", jsonOf(got), jsonOf(v))
				}
				checkServiceMonitor(t, objs)
			},
		},
		{
			name: "image pinned by digest", release: "xr-digest", flags: []string{"--set", "image.digest=" + digest},
			image: "ghcr.io/xrooms/xrooms@" + digest, roomImage: "ghcr.io/xrooms/xrooms@" + digest,
		},
		{
			name: "own room-server image, no leader election", release: "xr-rooms",
			flags: []string{"--set", "roomServerImage=registry.example.com/rooms:custom", "--set", "leaderElection.enabled=false"},
			image: dev, roomImage: "registry.example.com/rooms:custom",
			check: func(t *testing.T, objs manifest) {
				if _, m := managerOf(t, objs); slices.Contains(m.Args, "--leader-elect") {
					t.Errorf("args %q with leader election off", m.Args)
				}
			},
		},
	}

	c := startCluster(t)
	ctx := context.Background()
	namespaces := map[string]string{} // release -> namespace
	for _, tc := range cases {
		ns := c.namespace(t, tc.release, restricted)
		namespaces[tc.release] = ns
		t.Run(tc.name, func(t *testing.T) {
			rendered := mustHelm(t, append([]string{"template", tc.release, chartDir, "--namespace", ns}, tc.flags...)...)
			objs := parseManifest(t, []byte(rendered))
			if len(objs.ofKind("ServiceMonitor")) > 0 {
				installServiceMonitorCRD(t, c)
			}
			// Strict field validation: the API server refuses unknown or misplaced fields, which
			// it would otherwise drop without a word (helm install does not ask for it).
			c.kubectl(t, []byte(rendered), "apply", "--server-side", "--dry-run=server", "--validate=strict", "--field-manager=chart-test", "-f", "-")

			dep, m := managerOf(t, objs)
			if m.Image != tc.image {
				t.Errorf("manager image %s, want %s", m.Image, tc.image)
			}
			if want := "--room-server-image=" + tc.roomImage; !slices.Contains(m.Args, want) {
				t.Errorf("manager args %q, want %s", m.Args, want)
			}
			checkRunsImageBinary(t, m)
			if tc.check != nil {
				tc.check(t, objs)
			}

			notes := mustHelm(t, append([]string{"install", tc.release, chartDir, "--namespace", ns, "--kubeconfig", c.kubeconfig}, tc.flags...)...)
			if !strings.Contains(notes, "kubectl get rooms") || !strings.Contains(notes, tc.roomImage) {
				t.Errorf("helm install notes do not tell how to watch rooms and which image they run:\n%s", notes)
			}
			for _, o := range objs {
				if err := c.get(t, o.GroupVersionKind(), o.GetNamespace(), o.GetName()); err != nil {
					t.Errorf("after helm install: %s %s: %v", o.GetKind(), o.GetName(), err)
				}
			}
			installed := &appsv1.Deployment{}
			if err := c.client.Get(ctx, client.ObjectKeyFromObject(dep), installed); err != nil {
				t.Fatal(err)
			}
			c.managerPodIsAdmitted(t, installed)
		})
	}

	t.Run("the operator's ServiceAccount may run a room", func(t *testing.T) {
		c.operatorRunsARoom(t, namespaces["xr-default"], "xr-default-xrooms-controller-manager")
	})
	t.Run("upgrade, then uninstall, which keeps the Room CRD", func(t *testing.T) {
		ns := namespaces["xr-default"]
		mustHelm(t, "upgrade", "xr-default", chartDir, "--namespace", ns, "--kubeconfig", c.kubeconfig, "--reuse-values", "--set", "replicaCount=3", "--set", "image.tag=v2")
		dep := &appsv1.Deployment{}
		if err := c.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "xr-default-xrooms-controller-manager"}, dep); err != nil {
			t.Fatal(err)
		}
		if m := dep.Spec.Template.Spec.Containers[0]; *dep.Spec.Replicas != 3 || m.Image != "ghcr.io/xrooms/xrooms:v2" || !slices.Contains(m.Args, "--room-server-image=ghcr.io/xrooms/xrooms:v2") {
			t.Errorf("after upgrade: %d replicas, image %s, args %q; want 3 replicas of v2, rooms on v2", *dep.Spec.Replicas, m.Image, m.Args)
		}
		mustHelm(t, "uninstall", "xr-default", "--namespace", ns, "--kubeconfig", c.kubeconfig)
		if err := c.get(t, appsv1.SchemeGroupVersion.WithKind("Deployment"), ns, dep.Name); !apierrors.IsNotFound(err) {
			t.Errorf("after uninstall, the manager Deployment: %v, want NotFound", err)
		}
		if err := c.get(t, rbacv1.SchemeGroupVersion.WithKind("ClusterRole"), "", "xr-default-xrooms-manager-role"); !apierrors.IsNotFound(err) {
			t.Errorf("after uninstall, the manager ClusterRole: %v, want NotFound", err)
		}
		// Helm never deletes the CRDs of crds/: that would delete every Room.
		if err := c.get(t, crdKind, "", "rooms.xrooms.dev"); err != nil {
			t.Errorf("after uninstall, the Room CRD: %v", err)
		}
	})
}

// checkServiceMonitor checks the ServiceMonitor scrapes the metrics Service's port.
func checkServiceMonitor(t *testing.T, objs manifest) {
	t.Helper()
	monitors, services := objs.ofKind("ServiceMonitor"), objs.ofKind("Service")
	if len(monitors) != 1 || len(services) != 1 {
		t.Fatalf("%d ServiceMonitors, %d Services, want one of each", len(monitors), len(services))
	}
	svc := as[corev1.Service](t, services[0])
	var sm struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct {
				Port     string `json:"port"`
				Interval string `json:"interval"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	b, _ := json.Marshal(monitors[0].Object)
	if err := json.Unmarshal(b, &sm); err != nil {
		t.Fatal(err)
	}
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s, the metrics Service has %v", k, v, svc.Labels)
		}
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name || sm.Spec.Endpoints[0].Interval != "15s" {
		t.Errorf("ServiceMonitor endpoints %+v, want port %s every 15s", sm.Spec.Endpoints, svc.Spec.Ports[0].Name)
	}
	if sm.Metadata.Labels["release"] != "prometheus" {
		t.Errorf("ServiceMonitor labels %v lack the values' release=prometheus", sm.Metadata.Labels)
	}
}

// prometheusOperator is the prometheus-operator release whose ServiceMonitor CRD the test
// installs: envtest has no monitoring.coreos.com API, and the real CRD's schema checks the
// chart's ServiceMonitor, not a stand-in. The module proxy serves the repository's files.
const prometheusOperator = "github.com/prometheus-operator/prometheus-operator@v0.85.0"

// installServiceMonitorCRD installs the ServiceMonitor CRD into the cluster once.
func installServiceMonitorCRD(t *testing.T, c *cluster) {
	t.Helper()
	if c.get(t, crdKind, "", "servicemonitors.monitoring.coreos.com") == nil {
		return
	}
	cmd := exec.Command("go", "mod", "download", "-json", prometheusOperator)
	cmd.Dir = t.TempDir() // outside the module, so its go.mod and go.sum stay as they are
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s (for the ServiceMonitor CRD): %v\n%s", prometheusOperator, err, out)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download %s: %v %s", prometheusOperator, err, mod.Error)
	}
	crd := filepath.Join(mod.Dir, "example", "prometheus-operator-crd", "monitoring.coreos.com_servicemonitors.yaml")
	c.kubectl(t, nil, "apply", "--server-side", "-f", crd)
	c.kubectl(t, nil, "wait", "--for=condition=Established", "--timeout=30s", "crd/servicemonitors.monitoring.coreos.com")
}
