// Package localpods is a stand-in kubelet for room pods on one machine: it watches the Pods
// the xrooms controller creates, runs the real roomserver binary for each as a local process on
// its own loopback address, keeps the Pod's status (Running, Ready, podIP) true to that process,
// and stops the process when the Pod goes. It exists because envtest runs no kubelet; `make dev`
// and the end-to-end tests use it.
//
// What a kubelet would do and this does too: container env and args, volumes (emptyDir per pod,
// a PVC's data kept per claim so it outlives the pod, ConfigMaps written out as files), a
// service-account token for the pod's own ServiceAccount (through the TokenRequest API, handed
// to the process as a kubeconfig), the readiness probe, and Failed status when the process dies.
package localpods
