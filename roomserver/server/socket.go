package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/event"
	"github.com/xrooms/xrooms/roomserver/limit"
	"github.com/xrooms/xrooms/roomserver/outbox"
	"github.com/xrooms/xrooms/roomserver/protocol"
	"github.com/xrooms/xrooms/roomserver/room"
	"github.com/xrooms/xrooms/roomserver/stream"
)

const (
	// streamTopicPrefix is the read-only topic of room events.
	streamTopicPrefix = "room_stream:"
	roomTopicPrefix   = "room:"

	// authProtocolPrefix starts the Sec-WebSocket-Protocol entry carrying the phoenix
	// client's authToken.
	authProtocolPrefix = "base64url.bearer.phx."

	maxUserIDLen = 256

	reasonUnmatched = "unmatched topic"
	reasonShutdown  = "room is shutting down"
)

// socket is one WebSocket connection and the channels it has joined.
type socket struct {
	srv  *Server
	conn *websocket.Conn
	cork *corkConn // conn's network side
	out  *outbox.Queue
	v    protocol.Version
	log  *slog.Logger
	ctx  context.Context // ends with the socket

	events *limit.Events // the reader's event rate limit

	userParam string // socket param user_id, or the join token's subject
	// authenticated: userParam comes from a verified join token, and joins may not name
	// another user.
	authenticated bool
	assigned      string // user id the server made up for this socket, once needed

	writerDone chan struct{}
	wbuf       []byte // writer goroutine's buffer

	mu       sync.Mutex
	channels map[string]*channel // by topic
}

// channel is one joined topic.
type channel struct {
	joinRef protocol.Ref
	member  *room.Member         // room topic
	sub     *stream.Subscription // stream topic
	stopped atomic.Bool          // stream topic: left or replaced; stop forwarding
}

func (s *Server) handleSocket(w http.ResponseWriter, r *http.Request) {
	if !s.allowConnection(w, r) {
		return
	}
	q := r.URL.Query()
	v, err := protocol.ParseVersion(q.Get("vsn"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden) // as Phoenix refuses a socket
		return
	}
	userParam := q.Get(event.UserIDKey)
	if len(userParam) > maxUserIDLen {
		http.Error(w, fmt.Sprintf("user_id must be at most %d bytes", maxUserIDLen), http.StatusForbidden)
		return
	}
	tokenUser, ok := s.authenticate(w, r, userParam)
	if !ok {
		return
	}
	if tokenUser != "" {
		userParam = tokenUser
	}
	cw := &corkingWriter{ResponseWriter: w}
	conn, err := websocket.Accept(cw, r, &websocket.AcceptOptions{
		Subprotocols:       []string{"phoenix"},
		InsecureSkipVerify: len(s.cfg.OriginPatterns) == 0,
		OriginPatterns:     s.cfg.OriginPatterns,
	})
	if err != nil {
		s.log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		return // Accept has answered
	}
	conn.SetReadLimit(s.cfg.ReadLimit)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := &socket{
		srv: s, conn: conn, cork: cw.conn, v: v, ctx: ctx,
		log:           s.log.With("remote", r.RemoteAddr),
		userParam:     userParam,
		authenticated: tokenUser != "",
		events:        limit.NewEvents(s.cfg.MaxEventsPerSecond),
		writerDone:    make(chan struct{}),
		channels:      map[string]*channel{},
	}
	sock.out = outbox.New(s.cfg.SendQueueBytes, sock.overflowed)
	if !s.track(sock) {
		conn.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	defer s.untrack(sock)
	go sock.writer()
	sock.log.Debug("socket connected", "vsn", v)
	err = sock.read()
	sock.log.Debug("socket closed", "err", err)
	sock.leaveAll()
	sock.out.Close()
	<-sock.writerDone
	conn.CloseNow()
}

// authToken returns the token socket param, or the phoenix client's authToken, which it
// sends as a subprotocol: "phoenix, base64url.bearer.phx.<base64 of the token>".
func authToken(r *http.Request) string {
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			enc, ok := strings.CutPrefix(strings.TrimSpace(p), authProtocolPrefix)
			if !ok {
				continue
			}
			// Standard base64 with '=' stripped, despite the name; accept the URL alphabet too.
			for _, e := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
				if b, err := e.DecodeString(strings.TrimRight(enc, "=")); err == nil {
					return string(b)
				}
			}
		}
	}
	return ""
}

// read handles frames until the socket fails, idles out or is closed.
func (sock *socket) read() error {
	for {
		ctx, cancel := context.WithTimeout(sock.ctx, sock.srv.cfg.IdleTimeout)
		typ, data, err := sock.conn.Read(ctx)
		cancel()
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			sock.conn.Close(websocket.StatusUnsupportedData, "binary frames are not supported")
			return errors.New("binary frame")
		}
		f, err := protocol.Decode(sock.v, data)
		if err != nil {
			sock.conn.Close(websocket.StatusInvalidFramePayloadData, "invalid Phoenix frame")
			return err
		}
		if ok, err := sock.allowFrame(f); !ok {
			if err != nil {
				return err
			}
			continue
		}
		sock.handle(f)
	}
}

func (sock *socket) handle(f protocol.Frame) {
	if f.Topic == protocol.TopicPhoenix && f.Event == protocol.EventHeartbeat {
		sock.reply(protocol.ReplyOK(f, nil))
		return
	}
	if f.Event == protocol.EventJoin {
		sock.join(f)
		return
	}
	ch := sock.channel(f.Topic)
	if ch == nil {
		sock.reply(protocol.ReplyError(f, reasonUnmatched))
		return
	}
	if !ch.joinRef.Null() && f.JoinRef != ch.joinRef {
		// A frame for a membership this socket already replaced: Phoenix ignores it.
		return
	}
	switch {
	case f.Event == protocol.EventLeave:
		sock.leave(f, ch)
	case ch.member == nil:
		sock.reply(protocol.ReplyError(f, f.Topic+" is read-only"))
	default:
		ev, err := room.FromPush(ch.member.UserID(), f.Event, f.Payload)
		if err != nil {
			sock.reply(protocol.ReplyError(f, err.Error()))
			return
		}
		if !sock.payloadAllowed(f, ev.Payload) {
			return
		}
		if err := sock.srv.room.Push(sock.ctx, ch.member, f, ev); err != nil {
			sock.reply(protocol.ReplyError(f, reasonShutdown))
		}
	}
}

func (sock *socket) join(f protocol.Frame) {
	if !sock.topicAllowed(f) {
		return
	}
	name := sock.srv.room.Name()
	switch {
	case f.Topic == roomTopicPrefix+name:
		sock.joinRoom(f)
	case f.Topic == streamTopicPrefix+name:
		sock.joinStream(f)
	case strings.HasPrefix(f.Topic, roomTopicPrefix), strings.HasPrefix(f.Topic, streamTopicPrefix):
		_, other, _ := strings.Cut(f.Topic, ":")
		sock.reply(protocol.ReplyError(f, fmt.Sprintf("unknown room %q: this server hosts %q", other, name)))
	default:
		sock.reply(protocol.ReplyError(f, reasonUnmatched))
	}
}

func (sock *socket) joinRoom(f protocol.Frame) {
	var payload map[string]json.RawMessage
	if err := json.Unmarshal(f.Payload, &payload); err != nil {
		sock.reply(protocol.ReplyError(f, "join payload must be a JSON object"))
		return
	}
	if !sock.payloadAllowed(f, payload) {
		return
	}
	user, err := sock.userID(payload)
	if err != nil {
		sock.reply(protocol.ReplyError(f, err.Error()))
		return
	}
	delete(payload, event.UserIDKey)
	old := sock.channel(f.Topic)
	var replaces *room.Member
	if old != nil {
		replaces = old.member
	}
	m, err := sock.srv.room.Join(sock.ctx, room.JoinRequest{
		Conn: sock.out, Version: sock.v, Frame: f, UserID: user,
		Components: entity.Components(payload), Replaces: replaces,
	})
	switch {
	case err == nil:
		sock.setChannel(f.Topic, &channel{joinRef: f.JoinRef, member: m})
		sock.log.Debug("joined", "topic", f.Topic, "user_id", user, "join_ref", f.JoinRef)
	case errors.Is(err, room.ErrFull), errors.As(err, new(*limit.Error)):
		sock.setChannel(f.Topic, nil) // the room replied, and closed any replaced membership
	default:
		sock.reply(protocol.ReplyError(f, reasonShutdown))
	}
}

// userID settles who a member acts as: the join token's subject (a join payload naming
// another user is refused), else the socket param, else the join payload's user_id, else an
// id the server makes up for this socket (and returns in the join reply).
func (sock *socket) userID(payload map[string]json.RawMessage) (string, error) {
	if sock.authenticated {
		return sock.userParam, sock.tokenUserInPayload(payload)
	}
	if sock.userParam != "" {
		return sock.userParam, nil
	}
	if raw, ok := payload[event.UserIDKey]; ok {
		var id string
		if err := json.Unmarshal(raw, &id); err != nil || id == "" || len(id) > maxUserIDLen {
			return "", fmt.Errorf("user_id must be a string of 1 to %d bytes", maxUserIDLen)
		}
		return id, nil
	}
	if sock.assigned == "" {
		var b [8]byte
		rand.Read(b[:]) // never fails
		sock.assigned = "u-" + hex.EncodeToString(b[:])
	}
	return sock.assigned, nil
}

func (sock *socket) joinStream(f protocol.Frame) {
	old := sock.channel(f.Topic)
	if old != nil {
		old.stopped.Store(true)
		old.sub.Close()
	}
	ch := &channel{joinRef: f.JoinRef, sub: sock.srv.room.Subscribe(sock.srv.cfg.StreamBuffer)}
	sock.reply(protocol.ReplyOK(f, nil))
	if old != nil {
		sock.reply(protocol.Close(old.joinRef, f.Topic))
	}
	sock.setChannel(f.Topic, ch)
	go sock.forward(f.Topic, ch)
}

// forward sends the room events of a stream subscription to the socket, as broadcasts: the
// same frame would suit every subscriber. A subscriber dropped for being slow gets
// phx_error, and the client rejoins.
func (sock *socket) forward(topic string, ch *channel) {
	for m := range ch.sub.C() {
		if ch.stopped.Load() {
			continue // drain what was buffered before the leave
		}
		if !sock.out.Send(protocol.Encode(sock.v, protocol.Broadcast(topic, m.Event.Name, m.Payload))) {
			ch.sub.Close()
		}
	}
	if errors.Is(ch.sub.Err(), stream.ErrSlow) && !ch.stopped.Load() {
		sock.mu.Lock()
		if sock.channels[topic] == ch {
			delete(sock.channels, topic)
		}
		sock.mu.Unlock()
		sock.reply(protocol.ChannelError(ch.joinRef, topic))
	}
}

func (sock *socket) leave(f protocol.Frame, ch *channel) {
	sock.setChannel(f.Topic, nil)
	if ch.member != nil {
		if err := sock.srv.room.Leave(sock.ctx, ch.member, &f); err == nil {
			return // the room replies and closes, after the member's last frames
		}
	} else {
		ch.stopped.Store(true)
		ch.sub.Close()
	}
	sock.reply(protocol.ReplyOK(f, nil))
	sock.reply(protocol.Close(ch.joinRef, f.Topic))
}

// leaveAll ends every membership of a socket that is going away.
func (sock *socket) leaveAll() {
	sock.mu.Lock()
	chans := sock.channels
	sock.channels = map[string]*channel{}
	sock.mu.Unlock()
	for _, ch := range chans {
		if ch.member != nil {
			sock.srv.room.Leave(context.Background(), ch.member, nil)
		} else {
			ch.stopped.Store(true)
			ch.sub.Close()
		}
	}
}

func (sock *socket) channel(topic string) *channel {
	sock.mu.Lock()
	defer sock.mu.Unlock()
	return sock.channels[topic]
}

func (sock *socket) setChannel(topic string, ch *channel) {
	sock.mu.Lock()
	defer sock.mu.Unlock()
	if ch == nil {
		delete(sock.channels, topic)
		return
	}
	sock.channels[topic] = ch
}

func (sock *socket) reply(f protocol.Frame) {
	sock.out.Send(protocol.Encode(sock.v, f))
}

// writer drains the outbox into the connection.
func (sock *socket) writer() {
	defer close(sock.writerDone)
	err := sock.out.Run(context.Background(), sock.write)
	if err != nil && !errors.Is(err, outbox.ErrOverflow) {
		sock.log.Debug("socket write failed", "err", err)
		sock.conn.CloseNow() // the reader then ends too
	}
}

// write sends one batch of frames in one network write, under one deadline.
func (sock *socket) write(batch []protocol.Encoded) error {
	ctx, cancel := context.WithTimeout(context.Background(), sock.srv.cfg.WriteTimeout)
	defer cancel()
	sock.cork.cork()
	for _, e := range batch {
		msg, ok := e.Contiguous() // a shared, packed entities_diff: no copy
		if !ok {
			sock.wbuf = e.AppendTo(sock.wbuf[:0])
			msg = sock.wbuf
		}
		if err := sock.conn.Write(ctx, websocket.MessageText, msg); err != nil {
			sock.cork.uncork(sock.srv.cfg.WriteTimeout)
			return err
		}
	}
	if cap(sock.wbuf) > 1<<20 {
		sock.wbuf = nil // one huge entities_state must not pin a megabyte per socket
	}
	return sock.cork.uncork(sock.srv.cfg.WriteTimeout)
}

// overflowed runs, in its own goroutine, when the socket's queue overflows.
func (sock *socket) overflowed() {
	sock.srv.metrics.SlowDisconnects.Inc()
	sock.log.Warn("disconnecting a slow client: its send queue overflowed", "limit_bytes", sock.srv.cfg.SendQueueBytes)
	sock.conn.Close(websocket.StatusTryAgainLater, "too slow: send queue overflow")
}

// closeGoingAway ends the socket at shutdown: the writer sends what is queued (the room's
// last diff), then the socket closes with 1001, which makes clients reconnect.
func (sock *socket) closeGoingAway(ctx context.Context) {
	sock.out.Close()
	select {
	case <-sock.writerDone:
	case <-ctx.Done():
		sock.conn.CloseNow()
		return
	}
	// Close sends the close frame, then waits up to 5s for the client's; past the deadline
	// stop waiting for it (CloseNow would wait for Close too).
	closed := make(chan struct{})
	go func() {
		sock.conn.Close(websocket.StatusGoingAway, "server shutting down")
		close(closed)
	}()
	select {
	case <-closed:
	case <-ctx.Done():
	}
}
