package server

import (
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
)

// writeBuffers lends sockets a write buffer only while they write a frame the WebSocket
// library frames itself (replies, entities_state): an idle socket holds none, and prepared
// diffs need none.
var writeBuffers = &sync.Pool{}

// newUpgrader returns the WebSocket handshake for cfg: the phoenix subprotocol,
// permessage-deflate (no context takeover, so one compressed diff serves every socket)
// unless disabled, and the origin check.
func newUpgrader(cfg Config) *websocket.Upgrader {
	return &websocket.Upgrader{
		ReadBufferSize:    4096,
		WriteBufferSize:   32 << 10, // a frame up to this size is one write
		WriteBufferPool:   writeBuffers,
		Subprotocols:      []string{"phoenix"},
		EnableCompression: !cfg.DisableCompression,
		CheckOrigin: func(r *http.Request) bool {
			return originAllowed(r, cfg.OriginPatterns)
		},
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			http.Error(w, reason.Error(), status)
		},
	}
}

// originAllowed admits a browser's socket: any origin when patterns is empty (identity does
// not come from cookies), else a request with no Origin (not a browser), the server's own
// host, or an origin matching one of patterns (path.Match, case-insensitive), matched
// against the origin's host, or against scheme://host for a pattern with a scheme.
func originAllowed(r *http.Request, patterns []string) bool {
	origin := r.Header.Get("Origin")
	if len(patterns) == 0 || origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(r.Host, u.Host) {
		return true
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}
