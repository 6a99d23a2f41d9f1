# One image, two static binaries: /manager (the operator; its Deployment sets command
# ["/manager"]) and /roomserver (the entrypoint, so room pods need no command).
#   make docker-build IMG=registry.example.com/xrooms:v1
# test/install/dockerfile_test.go runs this file's build steps and checks its final stage.

# The Go toolchain: the version in go.mod's go line.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
# The name this image is pushed as: the manager's default --room-server-image, so rooms run the
# same build as the operator even where no --room-server-image flag is given.
ARG IMAGE=ghcr.io/xrooms/xrooms:dev
WORKDIR /src
# Modules first: this layer stays cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY roomserver/ roomserver/
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X main.image=${IMAGE}" -o out/manager ./cmd/manager
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w" -o out/roomserver ./cmd/roomserver

# No shell, no package manager: CA certificates, tzdata and a nonroot user (65532).
FROM gcr.io/distroless/static:nonroot
COPY --from=build /src/out/manager /src/out/roomserver /
# Numeric, so the kubelet can verify runAsNonRoot.
USER 65532:65532
EXPOSE 4000
ENTRYPOINT ["/roomserver"]
