package kube

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

// ConditionServerReady is the room server's own condition on its Room: True while it serves.
const ConditionServerReady = "ServerReady"

// Stats are the live figures a room server reports on its Room.
type Stats struct {
	Clients      int
	Entities     int
	SyncInterval time.Duration
	// LastSync is when the room last flushed a diff (zero: never).
	LastSync time.Time
}

// Reporter writes a room's Stats to its Room's status.
type Reporter struct {
	Client    *Client
	Namespace string
	Name      string
	// Stats reads the room's current figures.
	Stats func(ctx context.Context) (Stats, error)
	// Interval is the least time between two status writes (default 3s). A room whose
	// figures did not change is not written at all, however long it runs.
	Interval time.Duration
	// Open says, when true, that the room admits anyone (no auth): the ServerReady
	// condition's message says so.
	Open   bool
	Logger *slog.Logger
}

// Run reports until ctx ends, then writes a last status with ServerReady False.
func (r *Reporter) Run(ctx context.Context) {
	if r.Interval <= 0 {
		r.Interval = 3 * time.Second
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	since := metav1.NewTime(time.Now().Truncate(time.Second))
	var last *Stats
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		if s, err := r.Stats(ctx); err == nil && (last == nil || s != *last) {
			if err := r.apply(ctx, s, true, since); err != nil {
				r.Logger.Warn("failed to report room status", "err", err)
			} else {
				last = &s
			}
		}
		select {
		case <-ctx.Done():
			// The room is shutting down: say so, with a context of its own.
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			s := Stats{}
			if last != nil {
				s = *last
			}
			s.Clients = 0
			if err := r.apply(dctx, s, false, metav1.Now()); err != nil {
				r.Logger.Warn("failed to report shutdown on room status", "err", err)
			}
			return
		case <-t.C:
		}
	}
}

// apply writes the server's status fields with server-side apply: only the fields listed
// here are the server's; the operator owns the rest.
func (r *Reporter) apply(ctx context.Context, s Stats, serving bool, since metav1.Time) error {
	cond := map[string]any{
		"type":               ConditionServerReady,
		"status":             string(metav1.ConditionTrue),
		"reason":             "Serving",
		"message":            "the room server is serving clients",
		"lastTransitionTime": since.UTC().Format(time.RFC3339),
	}
	if r.Open {
		cond["message"] = "the room server is serving clients; the room is open: anyone who reaches it may join"
	}
	if !serving {
		cond["status"], cond["reason"], cond["message"] = string(metav1.ConditionFalse), "ShuttingDown", "the room server is shutting down"
	}
	status := map[string]any{
		"clients":      int64(s.Clients),
		"entities":     int64(s.Entities),
		"syncInterval": s.SyncInterval.String(),
		"conditions":   []any{cond},
	}
	if !s.LastSync.IsZero() {
		status["lastSyncTime"] = s.LastSync.UTC().Format(time.RFC3339)
	}
	body, err := json.Marshal(map[string]any{
		"apiVersion": xroomsv1alpha1.GroupVersion.String(),
		"kind":       "Room",
		"metadata":   map[string]any{"name": r.Name, "namespace": r.Namespace},
		"status":     status,
	})
	if err != nil {
		return err
	}
	// An apply patch on the status subresource; force takes over any of these fields another
	// manager (a previous server, a person) set, as they are the server's to say.
	return r.Client.rest.Patch(types.ApplyPatchType).
		Namespace(r.Namespace).Resource(resource).Name(r.Name).SubResource("status").
		Param("fieldManager", FieldManager).Param("force", "true").
		Body(body).Do(ctx).Error()
}
