package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/xrooms/xrooms/roomserver/event"
)

// reasonUnauthorized is the join refusal of a member whose join payload names another user
// than its token, as Phoenix apps refuse joins.
const reasonUnauthorized = "unauthorized"

var (
	errUserMismatch = errors.New("the user_id param differs from the join token's subject")
	errNotService   = errors.New(`posting events takes a token with role "service"`)
)

// authenticate checks the join token of a socket about to be upgraded, when the room requires
// one, and returns the user the token names. A refused socket gets 403 before the upgrade,
// as Phoenix refuses one; the phoenix client retries with backoff. Neither the log nor the
// answer carries the token.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, userParam string) (user string, ok bool) {
	if s.verifier == nil {
		return "", true
	}
	id, err := s.verifier.Verify(authToken(r))
	if err == nil && userParam != "" && userParam != id.User {
		err = errUserMismatch
	}
	if err != nil {
		s.log.Info("socket refused", "remote", r.RemoteAddr, "reason", err.Error())
		http.Error(w, "unauthorized: "+err.Error(), http.StatusForbidden)
		return "", false
	}
	return id.User, true
}

// requireToken guards an HTTP endpoint of a room that requires tokens. The token comes as
// "Authorization: Bearer <token>", or as the token query param, since a browser's EventSource
// cannot set headers. Reading the room's stream or entities takes any valid token of the room;
// posting events, which carry no user stamp, takes a service token (role "service").
func (s *Server) requireToken(service bool, h http.HandlerFunc) http.HandlerFunc {
	if s.verifier == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			token = r.URL.Query().Get("token")
		}
		id, err := s.verifier.Verify(strings.TrimSpace(token))
		code := http.StatusUnauthorized
		if err == nil && service && !id.Service {
			err, code = errNotService, http.StatusForbidden
		}
		if err != nil {
			s.log.Info("request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "reason", err.Error())
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="xrooms"`)
			}
			writeError(w, code, "unauthorized: "+err.Error())
			return
		}
		h(w, r)
	}
}

// sameUser reports whether a join payload's user_id is the token's user.
func sameUser(raw json.RawMessage, user string) bool {
	var id string
	return json.Unmarshal(raw, &id) == nil && id == user
}

// tokenUserInPayload refuses a join whose payload names another user than the socket's token.
func (sock *socket) tokenUserInPayload(payload map[string]json.RawMessage) error {
	if raw, ok := payload[event.UserIDKey]; ok && !sameUser(raw, sock.userParam) {
		sock.log.Info("join refused", "reason", "the join payload's user_id differs from the join token's subject", "user_id", sock.userParam)
		return errors.New(reasonUnauthorized)
	}
	return nil
}
