//go:build tools

// Package helm pins the helm CLI the chart tests run (lint, template). Its dependency tree is
// large, so it lives in this module rather than the main go.mod; hack/helm/build.sh compiles it
// from the Go module proxy into bin/.
package helm

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
