package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/xrooms/xrooms/roomserver/event"
	"github.com/xrooms/xrooms/roomserver/limit"
	"github.com/xrooms/xrooms/roomserver/room"
	"github.com/xrooms/xrooms/roomserver/stream"
)

const (
	maxEventBody = 1 << 20
	// sseKeepAlive is often enough for proxies with a 30 or 60 s idle timeout.
	sseKeepAlive = 15 * time.Second
)

// checkRoom answers 404 when the path names a room this server does not host.
func (s *Server) checkRoom(w http.ResponseWriter, r *http.Request) bool {
	if name := r.PathValue("room"); name != s.room.Name() {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown room %q: this server hosts %q", name, s.room.Name()))
		return false
	}
	return true
}

// handleStream sends room events as Server-Sent Events, each a message whose data is
// {"event": name, "payload": {...}}. A client that falls behind is dropped; EventSource
// reconnects by itself.
func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	if !s.checkRoom(w, r) {
		return
	}
	sub := s.room.Subscribe(s.cfg.StreamBuffer)
	defer sub.Close()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	send := func(b []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send([]byte("retry: 1000\n\n")) {
		return
	}
	keepAlive := time.NewTicker(sseKeepAlive)
	defer keepAlive.Stop()
	var buf []byte
	for {
		select {
		case m, ok := <-sub.C():
			if !ok {
				if errors.Is(sub.Err(), stream.ErrSlow) {
					s.log.Warn("dropped a slow stream client", "remote", r.RemoteAddr)
				}
				return
			}
			buf = append(append(append(buf[:0], "data: "...), m.JSON()...), "\n\n"...)
			if !send(buf) {
				return
			}
		case <-keepAlive.C:
			if !send([]byte(": keep-alive\n\n")) {
				return
			}
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		}
	}
}

// handleEvents injects one room event from a backend service. The event is not stamped
// with a user: services are trusted to name who acted.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	if !s.checkRoom(w, r) {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEventBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body must be at most %d bytes", maxEventBody))
		return
	}
	ev, err := decodeEvent(body)
	if err == nil {
		err = limit.CheckPayload(s.payloadLimits(), nil, ev.Payload) // as for a member's push
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch err := s.room.Event(r.Context(), ev); {
	case errors.Is(err, room.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted"})
	}
}

// decodeEvent parses {"event": name, "payload": {...}}; payload may be left out.
func decodeEvent(body []byte) (event.Event, error) {
	var in struct {
		Event   *string         `json:"event"`
		Payload json.RawMessage `json:"payload"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return event.Event{}, fmt.Errorf(`body must be a JSON object {"event": string, "payload": object}: %v`, err)
	}
	if dec.More() {
		return event.Event{}, errors.New("body must hold one JSON object")
	}
	if in.Event == nil {
		return event.Event{}, errors.New(`"event" is required`)
	}
	var payload map[string]json.RawMessage
	if len(in.Payload) > 0 && string(in.Payload) != "null" {
		if err := json.Unmarshal(in.Payload, &payload); err != nil || payload == nil {
			return event.Event{}, errors.New(`"payload" must be a JSON object`)
		}
	}
	if err := room.CheckName(*in.Event); err != nil {
		return event.Event{}, err
	}
	return event.New(*in.Event, "", payload), nil
}

// handleEntities returns the entities as of the last flush, as joiners get them.
func (s *Server) handleEntities(w http.ResponseWriter, r *http.Request) {
	if !s.checkRoom(w, r) {
		return
	}
	b, err := s.room.StateJSON(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
