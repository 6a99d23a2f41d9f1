// Command xrooms-dev runs the whole xrooms system on one machine, no cluster needed: a real
// control plane (kube-apiserver and etcd, built by `make envtest`), the Room CRD, the
// operator, and a local pod runner that runs each room pod as a roomserver process on its own
// loopback address. It applies the sample Room and prints how to use it. `make dev` runs it;
// Ctrl-C stops everything.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
	"github.com/xrooms/xrooms/internal/devcluster"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "xrooms-dev:", err)
		os.Exit(1)
	}
}

func run() error {
	repo, _ := os.Getwd()
	roomserver := flag.String("roomserver", filepath.Join(repo, "bin", "roomserver"), "roomserver binary to run for each room pod")
	dir := flag.String("dir", filepath.Join(repo, "bin", "dev"), "folder for the kubeconfig, room data and room logs")
	sample := flag.String("sample", filepath.Join(repo, "config", "samples", "xrooms_v1alpha1_room.yaml"), "Room manifest to apply at start (empty: none)")
	verbose := flag.Bool("v", false, "log the operator and the pod runner")
	flag.Parse()

	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
		ctrllog.SetLogger(zap.New())
	} else {
		ctrllog.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	}
	if _, err := os.Stat(*roomserver); err != nil {
		return fmt.Errorf("no roomserver binary at %s (make dev builds it): %w", *roomserver, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Println("starting the control plane, the operator and the pod runner...")
	c, err := devcluster.Start(ctx, devcluster.Options{RepoRoot: repo, RoomServer: *roomserver, Dir: *dir, Logger: logger})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("\nstopping rooms, operator and control plane...")
		if err := c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "xrooms-dev: stop:", err)
		}
	}()

	fmt.Printf("\nxrooms is running.\n\n  export KUBECONFIG=%s\n  kubectl get rooms\n\n", c.Kubeconfig)
	if *sample != "" {
		rooms, err := apply(ctx, c.Client, *sample)
		if err != nil {
			return err
		}
		for _, key := range rooms {
			url, err := waitRunning(ctx, c, key)
			if err != nil {
				return err
			}
			fmt.Printf("  room %s is Running; join topic \"room:%s\" at %s\n", key.Name, key.Name, url)
			fmt.Printf("    (phoenix client: new Socket(%q).channel(\"room:%s\"))\n", url, key.Name)
		}
	}
	fmt.Printf("\nRoom logs: %s\nCtrl-C stops everything.\n", filepath.Join(*dir, "logs"))
	<-ctx.Done()
	return nil
}

// apply creates or updates every object in a YAML file, as `kubectl apply --server-side`
// does, and returns the Rooms among them.
func apply(ctx context.Context, c client.Client, path string) ([]client.ObjectKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rooms []client.ObjectKey
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return rooms, nil
			}
			return nil, fmt.Errorf("failed to read %s: %w", path, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if u.GetNamespace() == "" {
			u.SetNamespace("default")
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("xrooms-dev"), client.ForceOwnership); err != nil {
			return nil, fmt.Errorf("failed to apply %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		fmt.Printf("  applied %s/%s from %s\n", u.GetKind(), u.GetName(), path)
		if u.GetKind() == "Room" {
			rooms = append(rooms, client.ObjectKeyFromObject(u))
		}
	}
}

// waitRunning waits for a Room to run and returns the local URL of its room server.
func waitRunning(ctx context.Context, c *devcluster.Cluster, key client.ObjectKey) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		var room xroomsv1alpha1.Room
		if err := c.Client.Get(ctx, key, &room); err == nil && room.Status.Phase == xroomsv1alpha1.RoomRunning {
			url, err := c.RoomURL(ctx, &room)
			if err == nil {
				return url, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("room %s did not reach Running: %w", key, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
