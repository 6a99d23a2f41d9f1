package localpods

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// Selector picks the pods this runner runs: the room pods the xrooms controller creates.
var Selector = labels.SelectorFromSet(labels.Set{"app.kubernetes.io/name": "xrooms-room"})

// Runner runs room pods as local processes. Set it up with SetupWithManager.
type Runner struct {
	Client client.Client
	// Config is the API server the pods' processes report to (as their own ServiceAccount).
	Config *rest.Config
	// Binary is the roomserver executable.
	Binary string
	// Dir holds per-pod data, volumes and logs.
	Dir string
	// Logger receives the runner's log lines; nil discards them.
	Logger *slog.Logger

	mu    sync.Mutex
	procs map[types.UID]*proc
	// ips gives each pod name its own loopback address, kept when the pod is replaced: it
	// stands in for the room's Service, so clients reconnect to the same URL.
	ips map[types.NamespacedName]string
}

type proc struct {
	cmd     *exec.Cmd
	ip      string
	done    chan struct{} // closed when the process has exited
	err     error         // the exit error, set before done closes
	stopped bool          // the runner asked it to stop
	dirs    []string      // per-pod dirs to remove after exit
}

// SetupWithManager registers the runner as a controller of room Pods.
func (r *Runner) SetupWithManager(mgr ctrl.Manager) error {
	r.procs = map[types.UID]*proc{}
	r.ips = map[types.NamespacedName]string{}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	isRoomPod := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return Selector.Matches(labels.Set(o.GetLabels()))
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("localpods").
		For(&corev1.Pod{}, builder.WithPredicates(isRoomPod)).
		Complete(r)
}

// Stop terminates every process the runner started and waits for them.
func (r *Runner) Stop() {
	r.mu.Lock()
	procs := make([]*proc, 0, len(r.procs))
	for _, p := range r.procs {
		procs = append(procs, p)
	}
	r.mu.Unlock()
	for _, p := range procs {
		r.terminate(p)
	}
}

// Reconcile starts a process for a new pod, reports its status, and stops it when the pod is
// deleted.
func (r *Runner) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pod corev1.Pod
	err := r.Client.Get(ctx, req.NamespacedName, &pod)
	if apierrors.IsNotFound(err) {
		r.stopGone(req.NamespacedName, "")
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	// A pod replaced under the same name has a new UID: the old process must go.
	r.stopGone(req.NamespacedName, pod.UID)
	if pod.DeletionTimestamp != nil {
		r.stopUID(pod.UID)
		return ctrl.Result{}, nil
	}
	if pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		return ctrl.Result{}, nil
	}

	r.mu.Lock()
	p := r.procs[pod.UID]
	r.mu.Unlock()
	if p == nil {
		p, err = r.start(ctx, &pod)
		if err != nil {
			r.Logger.Error("failed to start pod process", "pod", req.NamespacedName, "err", err)
			return ctrl.Result{}, r.setFailed(ctx, &pod, "StartError", err.Error())
		}
		go r.watch(req.NamespacedName, pod.UID, p)
	}

	select {
	case <-p.done:
		return ctrl.Result{}, nil // watch reports the exit
	default:
	}
	if !ready(&pod, p.ip) {
		if !r.probe(&pod, p.ip) {
			return ctrl.Result{RequeueAfter: 50 * time.Millisecond}, nil
		}
		return ctrl.Result{}, r.setRunning(ctx, &pod, p.ip)
	}
	return ctrl.Result{}, nil
}

// ready reports whether the pod's status already says Running and Ready on ip.
func ready(pod *corev1.Pod, ip string) bool {
	if pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP != ip {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (r *Runner) stopGone(key types.NamespacedName, keep types.UID) {
	r.mu.Lock()
	var gone []types.UID
	for uid, p := range r.procs {
		if uid != keep && hasEnv(p.cmd.Env, podKeyEnv, key.String()) {
			gone = append(gone, uid)
		}
	}
	r.mu.Unlock()
	for _, uid := range gone {
		r.stopUID(uid)
	}
}

func (r *Runner) stopUID(uid types.UID) {
	r.mu.Lock()
	p := r.procs[uid]
	r.mu.Unlock()
	if p != nil {
		r.terminate(p)
	}
}

// terminate sends SIGTERM, as a kubelet does, and SIGKILL after the grace period.
func (r *Runner) terminate(p *proc) {
	r.mu.Lock()
	p.stopped = true
	r.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// podKeyEnv marks a process with the pod it runs, so a replaced pod's process can be found.
const podKeyEnv = "XROOMS_LOCALPOD"

func hasEnv(env []string, k, v string) bool {
	for _, e := range env {
		if e == k+"="+v {
			return true
		}
	}
	return false
}

func (r *Runner) start(ctx context.Context, pod *corev1.Pod) (*proc, error) {
	if len(pod.Spec.Containers) == 0 {
		return nil, errors.New("pod has no container")
	}
	c := pod.Spec.Containers[0]
	ip := r.ipFor(types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name})
	p := &proc{ip: ip, done: make(chan struct{})}
	fail := func(err error) (*proc, error) {
		for _, d := range p.dirs {
			os.RemoveAll(d)
		}
		return nil, err
	}
	podDir := filepath.Join(r.Dir, "pods", string(pod.UID))
	if err := os.MkdirAll(podDir, 0o755); err != nil {
		return fail(err)
	}
	p.dirs = append(p.dirs, podDir)

	// Volumes: mount path -> local dir.
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		dir, err := r.volumeDir(ctx, pod, vm.Name, podDir)
		if err != nil {
			return fail(fmt.Errorf("volume %s: %w", vm.Name, err))
		}
		mounts[vm.MountPath] = dir
	}
	local := func(v string) string {
		for mp, dir := range mounts {
			if v == mp || strings.HasPrefix(v, mp+"/") {
				return dir + strings.TrimPrefix(v, mp)
			}
		}
		return v
	}

	env := []string{"PATH=" + os.Getenv("PATH"), podKeyEnv + "=" + pod.Namespace + "/" + pod.Name}
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			// As the kubelet does; dropping it would start a room that requires tokens open.
			secret, err := r.secretValue(ctx, pod.Namespace, e.ValueFrom.SecretKeyRef)
			if err != nil {
				return fail(fmt.Errorf("env %s: %w", e.Name, err))
			}
			env = append(env, e.Name+"="+secret)
			continue
		}
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				v = pod.Name
			case "metadata.namespace":
				v = pod.Namespace
			case "status.podIP":
				v = ip
			}
		}
		env = append(env, e.Name+"="+local(v))
	}
	// Each process listens on its own loopback address, at the container's port.
	port := containerPort(&c)
	env = append(env, "XROOMS_LISTEN="+net.JoinHostPort(ip, strconv.Itoa(int(port))))
	if kc, err := r.kubeconfig(ctx, pod, podDir); err != nil {
		return fail(fmt.Errorf("service account token: %w", err))
	} else if kc != "" {
		env = append(env, "KUBECONFIG="+kc)
	}

	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = local(a)
	}
	if err := os.MkdirAll(filepath.Join(r.Dir, "logs"), 0o755); err != nil {
		return fail(err)
	}
	logf, err := os.Create(filepath.Join(r.Dir, "logs", pod.Namespace+"_"+pod.Name+"_"+string(pod.UID)+".log"))
	if err != nil {
		return fail(err)
	}
	cmd := exec.Command(r.Binary, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fail(err)
	}
	p.cmd = cmd
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	r.mu.Lock()
	r.procs[pod.UID] = p
	r.mu.Unlock()
	r.Logger.Info("started pod process", "pod", pod.Namespace+"/"+pod.Name, "ip", ip, "pid", cmd.Process.Pid)
	return p, nil
}

// secretValue reads the Secret key an env var refers to.
func (r *Runner) secretValue(ctx context.Context, namespace string, ref *corev1.SecretKeySelector) (string, error) {
	var secret corev1.Secret
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, &secret); err != nil {
		return "", fmt.Errorf("secret %s: %w", ref.Name, err)
	}
	v, ok := secret.Data[ref.Key]
	if !ok {
		return "", fmt.Errorf("secret %s has no key %q", ref.Name, ref.Key)
	}
	return string(v), nil
}

func containerPort(c *corev1.Container) int32 {
	if len(c.Ports) > 0 {
		return c.Ports[0].ContainerPort
	}
	return 4000
}

// volumeDir makes the local directory standing in for one of the pod's volumes.
func (r *Runner) volumeDir(ctx context.Context, pod *corev1.Pod, name, podDir string) (string, error) {
	for _, v := range pod.Spec.Volumes {
		if v.Name != name {
			continue
		}
		switch {
		case v.PersistentVolumeClaim != nil:
			// Keyed by claim, so the data outlives the pod as a PVC's does.
			dir := filepath.Join(r.Dir, "pvc", pod.Namespace, v.PersistentVolumeClaim.ClaimName)
			return dir, os.MkdirAll(dir, 0o755)
		case v.ConfigMap != nil:
			var cm corev1.ConfigMap
			if err := r.Client.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: v.ConfigMap.Name}, &cm); err != nil {
				if apierrors.IsNotFound(err) && v.ConfigMap.Optional != nil && *v.ConfigMap.Optional {
					cm = corev1.ConfigMap{}
				} else {
					return "", err
				}
			}
			dir := filepath.Join(podDir, "configmap", name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return "", err
			}
			for k, data := range cm.Data {
				if err := os.WriteFile(filepath.Join(dir, k), []byte(data), 0o644); err != nil {
					return "", err
				}
			}
			return dir, nil
		default: // emptyDir and anything else: scratch space for this pod only
			dir := filepath.Join(podDir, "volumes", name)
			return dir, os.MkdirAll(dir, 0o755)
		}
	}
	return "", fmt.Errorf("no volume named %q", name)
}

// kubeconfig writes a kubeconfig that authenticates as the pod's ServiceAccount with a token
// bound to the pod, as the kubelet's projected token would. It returns "" when the pod does not
// automount a token.
func (r *Runner) kubeconfig(ctx context.Context, pod *corev1.Pod, podDir string) (string, error) {
	if r.Config == nil || (pod.Spec.AutomountServiceAccountToken != nil && !*pod.Spec.AutomountServiceAccountToken) {
		return "", nil
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	cs, err := kubernetes.NewForConfig(r.Config)
	if err != nil {
		return "", err
	}
	expiry := int64(24 * 3600)
	tr, err := cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: &expiry,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: r.Config.Host, CertificateAuthorityData: r.Config.CAData}
	kc.AuthInfos["pod"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["pod"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "pod", Namespace: pod.Namespace}
	kc.CurrentContext = "pod"
	path := filepath.Join(podDir, "kubeconfig")
	return path, clientcmd.WriteToFile(*kc, path)
}

// probe runs the container's readiness probe (HTTP GET) against the process.
func (r *Runner) probe(pod *corev1.Pod, ip string) bool {
	c := pod.Spec.Containers[0]
	path := "/readyz"
	if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil {
		path = c.ReadinessProbe.HTTPGet.Path
	}
	cl := http.Client{Timeout: time.Second}
	resp, err := cl.Get("http://" + net.JoinHostPort(ip, strconv.Itoa(int(containerPort(&c)))) + path)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// watch reports the process's exit on the pod, unless the runner stopped it.
func (r *Runner) watch(key types.NamespacedName, uid types.UID, p *proc) {
	<-p.done
	r.mu.Lock()
	delete(r.procs, uid)
	stopped := p.stopped
	r.mu.Unlock()
	for _, d := range p.dirs {
		os.RemoveAll(d)
	}
	if stopped {
		return
	}
	r.Logger.Info("pod process exited", "pod", key, "err", p.err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var pod corev1.Pod
	if err := r.Client.Get(ctx, key, &pod); err != nil || pod.UID != uid {
		return
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		code = ee.ExitCode()
	}
	if err := r.setFailed(ctx, &pod, "Error", fmt.Sprintf("roomserver exited: %v (exit code %d)", p.err, code)); err != nil {
		r.Logger.Error("failed to report pod exit", "pod", key, "err", err)
	}
}

func (r *Runner) setRunning(ctx context.Context, pod *corev1.Pod, ip string) error {
	now := metav1.Now()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = ip
	pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	pod.Status.HostIP = "127.0.0.1"
	pod.Status.StartTime = &now
	pod.Status.Conditions = nil
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	c := pod.Spec.Containers[0]
	started := true
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: c.Name, Image: c.Image, Ready: true, Started: &started,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
	}}
	return r.Client.Status().Update(ctx, pod)
}

func (r *Runner) setFailed(ctx context.Context, pod *corev1.Pod, reason, msg string) error {
	pod.Status.Phase = corev1.PodFailed
	pod.Status.Reason = reason
	pod.Status.Message = msg
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady || pod.Status.Conditions[i].Type == corev1.ContainersReady {
			pod.Status.Conditions[i].Status = corev1.ConditionFalse
		}
	}
	for i := range pod.Status.ContainerStatuses {
		pod.Status.ContainerStatuses[i].Ready = false
		pod.Status.ContainerStatuses[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, Message: msg, ExitCode: 1}}
	}
	return r.Client.Status().Update(ctx, pod)
}

// ipFor returns the pod name's loopback address: 127.0.1.1 upwards, in order of first use.
func (r *Runner) ipFor(key types.NamespacedName) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ip, ok := r.ips[key]; ok {
		return ip
	}
	n := len(r.ips)
	ip := fmt.Sprintf("127.%d.%d.%d", 1+n/(254*254), n/254%254, 1+n%254)
	r.ips[key] = ip
	return ip
}

// URL returns the ws:// endpoint of a pod's room server as the runner runs it (its address
// and the container port), for clients outside the cluster network.
func (r *Runner) URL(pod *corev1.Pod) string {
	return "ws://" + net.JoinHostPort(r.ipFor(types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}), strconv.Itoa(int(containerPort(&pod.Spec.Containers[0])))) + "/socket"
}

// Running returns how many room processes are running.
func (r *Runner) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.procs)
}
