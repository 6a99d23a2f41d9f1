// Package install tests what platform teams install and build: the Helm chart
// (charts/xrooms), the kustomize install (config/default) and the container image's build
// (Dockerfile). The chart and the kustomization are installed into a real API server (envtest)
// so that manifests it refuses fail here; the Dockerfile's build steps are run as written.
// The package has no code of its own.
package install
