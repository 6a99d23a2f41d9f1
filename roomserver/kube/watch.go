package kube

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
	"github.com/xrooms/xrooms/roomserver/rules"
)

// LiveConfig is the part of a Room's spec a running room applies without a restart.
type LiveConfig struct {
	SyncInterval time.Duration
	// MaxClients is 0 for no limit.
	MaxClients int
	// Rules are spec.rules, not yet compiled (see CompileRules); nil for none.
	Rules []rules.Decl
}

// LiveConfigOf reads the live part of a Room's spec.
func LiveConfigOf(room *xroomsv1alpha1.Room) LiveConfig {
	c := LiveConfig{SyncInterval: room.Spec.SyncInterval.Duration}
	if room.Spec.MaxClients != nil {
		c.MaxClients = int(*room.Spec.MaxClients)
	}
	c.Rules = RulesOf(room)
	return c
}

// Watcher follows one Room and hands each new LiveConfig to Apply.
type Watcher struct {
	Client    *Client
	Namespace string
	Name      string
	// Apply is called with the Room's live config whenever it differs from the last one
	// applied (and once at start).
	Apply  func(ctx context.Context, c LiveConfig) error
	Logger *slog.Logger
}

// Run watches until ctx ends, re-listing after any break in the watch.
func (w *Watcher) Run(ctx context.Context) {
	if w.Logger == nil {
		w.Logger = slog.New(slog.DiscardHandler)
	}
	var applied *LiveConfig
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := w.watchOnce(ctx, &applied)
		if ctx.Err() != nil {
			return
		}
		w.Logger.Warn("room watch ended, watching again", "err", err, "after", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (w *Watcher) watchOnce(ctx context.Context, applied **LiveConfig) error {
	// The pod's Role names this one Room, which allows list and watch only with a field
	// selector on its name.
	sel := fields.OneTermEqualSelector("metadata.name", w.Name).String()
	var list xroomsv1alpha1.RoomList
	err := w.Client.rest.Get().Namespace(w.Namespace).Resource(resource).
		VersionedParams(&metav1.ListOptions{FieldSelector: sel}, w.Client.params).
		Do(ctx).Into(&list)
	if err != nil {
		return fmt.Errorf("failed to list room: %w", err)
	}
	for i := range list.Items {
		w.offer(ctx, &list.Items[i], applied)
	}
	// Watch from the list's version, so no change between the two is missed.
	wi, err := w.Client.rest.Get().Namespace(w.Namespace).Resource(resource).
		VersionedParams(&metav1.ListOptions{FieldSelector: sel, ResourceVersion: list.ResourceVersion, Watch: true}, w.Client.params).
		Watch(ctx)
	if err != nil {
		return fmt.Errorf("failed to watch room: %w", err)
	}
	defer wi.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return fmt.Errorf("watch closed")
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				if room, ok := ev.Object.(*xroomsv1alpha1.Room); ok {
					w.offer(ctx, room, applied)
				}
			case watch.Error:
				return fmt.Errorf("watch error: %v", ev.Object)
			}
		}
	}
}

func (w *Watcher) offer(ctx context.Context, room *xroomsv1alpha1.Room, applied **LiveConfig) {
	c := LiveConfigOf(room)
	if *applied != nil && reflect.DeepEqual(**applied, c) {
		return
	}
	if err := w.Apply(ctx, c); err != nil {
		w.Logger.Warn("failed to apply live room config", "err", err, "syncInterval", c.SyncInterval, "maxClients", c.MaxClients)
		return
	}
	w.Logger.Info("applied live room config", "syncInterval", c.SyncInterval, "maxClients", c.MaxClients, "rules", len(c.Rules))
	*applied = &c
}
