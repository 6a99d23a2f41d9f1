//go:build tools

// Package envtest pins the control-plane binaries envtest needs. They cannot be
// downloaded here, so hack/envtest/build.sh compiles them from the Go module proxy.
package envtest

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
