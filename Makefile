# xrooms Makefile: kubebuilder's targets, plus envtest binaries built from source.

IMG ?= ghcr.io/xrooms/xrooms:dev
K8S_VERSION ?= 1.37.2
CONTROLLER_TOOLS_VERSION ?= v0.23.0

LOCALBIN ?= $(shell pwd)/bin
ENVTEST_ASSETS ?= $(LOCALBIN)/k8s/$(K8S_VERSION)
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
# helm, at the version pinned by hack/helm/go.mod.
HELM ?= $(LOCALBIN)/helm
CHART ?= charts/xrooms
GO_TEST_FLAGS ?= -count=1 -timeout 20m

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRD, RBAC and webhook manifests.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases
	@# The chart ships the same CRDs and manager rules; test/install checks they are the same bytes.
	rm -f $(CHART)/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/crds/
	cp config/rbac/role.yaml $(CHART)/files/manager-role.yaml

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: verify-generated
verify-generated: manifests generate ## Fail when the committed CRD, RBAC or deepcopy code is not what controller-gen makes.
	git diff --exit-code -- config/crd config/rbac/role.yaml api charts/xrooms/crds charts/xrooms/files

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: test
test: envtest node-deps bench-deps helm ## Run all tests: unit, envtest (real kube-apiserver + etcd), phoenix JS client, Colyseus peer benchmark, Helm chart.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" HELM="$(HELM)" go test $(GO_TEST_FLAGS) ./...

.PHONY: soak
soak: ## Soak the real room server: 500 members at 20 Hz for 60 s (CLIENTS, RATE, DURATION); prints RSS, goroutines, errors. Not part of make test.
	hack/soak.sh

BENCH_CLIENTS ?= 100,300,500
BENCH_DURATION ?= 10s
.PHONY: bench
bench: bench-deps ## Same load against xrooms and Colyseus 0.18 (bench/colyseus), servers on CPU 0, load on CPU 1 (BENCH_CLIENTS, BENCH_DURATION).
	CGO_ENABLED=0 go build -trimpath -o $(LOCALBIN)/roomserver ./cmd/roomserver
	go build -trimpath -o $(LOCALBIN)/roomload ./cmd/roomload
	$(LOCALBIN)/roomload compare --clients $(BENCH_CLIENTS) --duration $(BENCH_DURATION) --rate 20 --server-bin $(LOCALBIN)/roomserver --peer-dir bench/colyseus

.PHONY: bench-go
bench-go: ## Go benchmarks of the hot paths (decode, rules, batch, encode, compress, fan-out), with allocations.
	go test -run XXX -bench . -benchmem ./roomserver/protocol ./roomserver/jsonsyntax ./roomserver/room ./roomserver/rules ./roomserver/batch ./roomserver/entity ./roomserver/compact ./roomserver/server ./roomserver/outbox

##@ Build

.PHONY: build
build: ## Build the manager and room-server binaries into bin/.
	CGO_ENABLED=0 go build -trimpath -o $(LOCALBIN)/manager ./cmd/manager
	CGO_ENABLED=0 go build -trimpath -o $(LOCALBIN)/roomserver ./cmd/roomserver

.PHONY: run
run: manifests generate ## Run the operator against the cluster in your kubeconfig.
	go run ./cmd/manager

.PHONY: dev
dev: envtest ## Run the whole system locally: control plane, operator, room pods as processes, the sample Room.
	CGO_ENABLED=0 go build -trimpath -o $(LOCALBIN)/roomserver ./cmd/roomserver
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go run ./cmd/xrooms-dev --roomserver $(LOCALBIN)/roomserver --dir $(LOCALBIN)/dev

.PHONY: run-room
run-room: ## Run one room server on localhost:4000 with an embedded store (no Kubernetes).
	go run ./cmd/roomserver --room lobby

.PHONY: docker-build
docker-build: ## Build the image $(IMG): manager and room server; rooms default to the same image.
	docker build --build-arg IMAGE=$(IMG) -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the container image.
	docker push $(IMG)

##@ Deployment

.PHONY: install
install: manifests ## Install the CRDs into the cluster in your kubeconfig.
	kubectl apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests ## Uninstall the CRDs.
	kubectl delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy the operator (namespace xrooms-system) running image $(IMG), for both the manager and rooms without spec.image.
	kubectl kustomize config/default | sed 's|ghcr.io/xrooms/xrooms:dev|$(IMG)|g' | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: ## Undeploy the operator.
	kubectl delete --ignore-not-found -k config/default

.PHONY: helm-lint
helm-lint: helm ## Lint the Helm chart.
	$(HELM) lint --strict $(CHART)

##@ Dependencies

.PHONY: node-deps
node-deps: test/phoenix/node_modules ## Install the pinned phoenix and ws npm packages for the client tests.
test/phoenix/node_modules: test/phoenix/package-lock.json
	npm ci --prefix test/phoenix --no-audit --no-fund
	@touch $@

.PHONY: bench-deps
bench-deps: bench/colyseus/node_modules ## Install the pinned Colyseus 0.18 server and SDK for make bench.
bench/colyseus/node_modules: bench/colyseus/package-lock.json
	npm ci --prefix bench/colyseus --no-audit --no-fund
	@touch $@

.PHONY: envtest
envtest: ## Build kube-apiserver and etcd for envtest into bin/ when missing (cheap once built).
	@K8S_VERSION=$(K8S_VERSION) hack/envtest/build.sh $(ENVTEST_ASSETS) >/dev/null

.PHONY: helm
helm: ## Build the pinned helm CLI into bin/ when missing (cheap once built).
	@hack/helm/build.sh $(HELM) >/dev/null

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/.
$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)
