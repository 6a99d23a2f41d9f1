#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver, etcd) from the Go module proxy into
# $1 (default bin/k8s/<version>), because setup-envtest's download bucket is unreachable here.
# Versions are pinned by this folder's go.mod; see ../../shared docs "envtest-from-source".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=${K8S_VERSION:-1.37.2}
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
out=${1:-$here/../../bin/k8s/$K8S_VERSION}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$here"
ldflags="-s -w
 -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor
 -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
export CGO_ENABLED=0
if [ ! -x "$out/etcd" ]; then
  echo "envtest: building etcd into $out (about a minute, once)" >&2
  go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$out/etcd.tmp" "$out/etcd"
fi
if [ ! -x "$out/kube-apiserver" ]; then
  echo "envtest: building kube-apiserver v$K8S_VERSION into $out (about 7 minutes, once)" >&2
  go build -trimpath -ldflags "$ldflags" -o "$out/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$out/kube-apiserver.tmp" "$out/kube-apiserver"
fi
if [ ! -e "$out/kubectl" ]; then
  kc=$(command -v kubectl || true)
  if [ -n "$kc" ]; then ln -sf "$kc" "$out/kubectl"; fi
fi
echo "$out"
