#!/usr/bin/env bash
# Builds the helm CLI that the chart tests run into $1 (default bin/helm), from the Go module
# proxy, at the version pinned by this folder's go.mod. Cheap once built: it rebuilds only when
# the binary is missing or reports another version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../bin/helm}
mkdir -p "$(dirname "$out")"
cd "$here"
version=$(go list -m -f '{{.Version}}' helm.sh/helm/v3)
if [ -x "$out" ] && [ "$("$out" version --template '{{.Version}}' 2>/dev/null)" = "$version" ]; then
  echo "$out"
  exit 0
fi
# As helm's own Makefile does: the version, and the Kubernetes version that `helm template`
# and `helm lint` assume (from the client-go helm is built with), instead of the stale default.
k8s=$(go list -m -f '{{.Version}}' k8s.io/client-go) # v0.37.0 is Kubernetes 1.37
minor=$(echo "$k8s" | cut -d. -f2)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
echo "helm: building $version into $out (a few minutes, once)" >&2
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out.tmp" helm.sh/helm/v3/cmd/helm
mv "$out.tmp" "$out"
echo "$out"
