package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

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
	// closing is set once a close frame is sent: the reader then only waits for the
	// client's close, until closeBy.
	closing atomic.Bool
	closeBy atomic.Int64 // unix nanoseconds
	// readDeadline is when the reader last extended its idle deadline.
	readDeadline time.Time
	v            protocol.Version
	log          *slog.Logger
	ctx          context.Context // ends with the socket

	events *limit.Events // the reader's event rate limit

	userParam string // socket param user_id, or the join token's subject
	// authenticated: userParam comes from a verified join token, and joins may not name
	// another user.
	authenticated bool
	assigned      string // user id the server made up for this socket, once needed

	writerDone chan struct{}
	wbuf       []byte // the writing goroutine's buffer (see outbox.Direct)
	rbuf       []byte // reader goroutine's buffer

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
	conn, err := s.upgrader.Upgrade(cw, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		return // Upgrade has answered
	}
	conn.SetReadLimit(s.cfg.ReadLimit)
	conn.EnableWriteCompression(false) // small frames are sent as they are; see writeFrame
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
	sock.out.Direct(sock.tryWrite)
	if !s.track(sock) {
		sock.sendClose(websocket.CloseGoingAway, "server shutting down")
		sock.awaitClose()
		conn.NetConn().Close()
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
	conn.NetConn().Close()
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
		sock.extendReadDeadline()
		typ, r, err := sock.conn.NextReader()
		if errors.Is(err, websocket.ErrReadLimit) {
			sock.drain() // the library has sent 1009
			return err
		}
		if err != nil {
			return err
		}
		if sock.closing.Load() {
			continue // a close frame is out: only the client's close matters now
		}
		if typ != websocket.TextMessage {
			sock.sendClose(websocket.CloseUnsupportedData, "binary frames are not supported")
			return sock.awaitClose()
		}
		data, err := sock.readMessage(r)
		if err != nil {
			return err
		}
		f, err := protocol.Decode(sock.v, data)
		if err != nil {
			sock.sendClose(websocket.CloseInvalidFramePayloadData, "invalid Phoenix frame")
			sock.awaitClose()
			return err
		}
		if ok, err := sock.allowFrame(f); !ok {
			if err != nil {
				sock.awaitClose()
				return err
			}
			continue
		}
		sock.handle(f)
	}
}

// readMessage reads a message into the socket's buffer, which the next call reuses: the
// decoded frame keeps none of it.
func (sock *socket) readMessage(r io.Reader) ([]byte, error) {
	buf := sock.rbuf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if cap(buf) <= 64<<10 {
		sock.rbuf = buf // one huge message must not pin its buffer for the socket's life
	}
	return buf, nil
}

// extendReadDeadline moves the idle deadline on, at most every sixteenth of the idle
// timeout: a deadline costs a timer update, and a busy client sends many frames a second.
func (sock *socket) extendReadDeadline() {
	now := time.Now()
	idle := sock.srv.cfg.IdleTimeout
	if now.Sub(sock.readDeadline) < idle/16 {
		return
	}
	sock.readDeadline = now
	sock.conn.SetReadDeadline(now.Add(idle))
	if sock.closing.Load() { // sendClose ran meanwhile: keep its shorter deadline
		sock.conn.SetReadDeadline(time.Unix(0, sock.closeBy.Load()))
	}
}

// closeGrace is how long a socket that sent a close frame waits for the client's.
const closeGrace = 2 * time.Second

// sendClose starts the closing handshake: it sends a close frame and gives the reader
// closeGrace to see the client's answer. Closing the TCP connection at once could reset it
// before the client has read why it was closed. Safe to call from any goroutine.
func (sock *socket) sendClose(code int, reason string) {
	if sock.closing.Swap(true) {
		return
	}
	by := time.Now().Add(closeGrace)
	sock.closeBy.Store(by.UnixNano())
	sock.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(sock.srv.cfg.WriteTimeout))
	sock.conn.SetReadDeadline(by)
}

// drain, on the reader, once the WebSocket library has sent a close frame and will read no
// more (a message over the read limit), discards what the client still sends until it closes
// or closeGrace passes: closing at once, with its message unread, would reset the connection
// and the client could lose the close frame telling it why.
func (sock *socket) drain() {
	sock.closing.Store(true)
	nc := sock.conn.NetConn()
	nc.SetReadDeadline(time.Now().Add(closeGrace))
	io.Copy(io.Discard, nc)
}

// awaitClose, on the reader, discards frames until the client answers the close (or
// closeGrace passes), and returns why the socket ended.
func (sock *socket) awaitClose() error {
	for {
		if _, _, err := sock.conn.NextReader(); err != nil {
			return err
		}
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
	enc, err := joinEncoding(payload, sock.v)
	if err != nil {
		sock.reply(protocol.ReplyError(f, err.Error()))
		return
	}
	delete(payload, encodingKey)
	old := sock.channel(f.Topic)
	var replaces *room.Member
	if old != nil {
		replaces = old.member
	}
	m, err := sock.srv.room.Join(sock.ctx, room.JoinRequest{
		Conn: sock.out, Version: sock.v, Frame: f, UserID: user,
		Components: entity.Components(payload), Replaces: replaces, Encoding: enc,
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

// encodingKey is the join payload's field choosing how the member gets entities_state and
// entities_diff (see room.Encoding); it is not a component.
const encodingKey = "encoding"

// joinEncoding returns the encoding a join payload asks for.
func joinEncoding(payload map[string]json.RawMessage, v protocol.Version) (room.Encoding, error) {
	raw, ok := payload[encodingKey]
	if !ok {
		return room.EncodingJSON, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("encoding must be a string, not %s", raw)
	}
	return room.ParseEncoding(s, v)
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
		sock.conn.NetConn().Close() // the reader then ends too
	}
}

// write, on the writer goroutine, sends one batch of frames, after what a tryWrite left, in
// one network write under one deadline.
func (sock *socket) write(batch []protocol.Encoded) error {
	sock.cork.cork()
	err := sock.writeFrames(batch)
	if uerr := sock.cork.uncork(sock.srv.cfg.WriteTimeout); err == nil {
		err = uerr
	}
	return err
}

// tryWrite sends one batch in the sender's goroutine (see outbox.Direct) as far as the
// socket takes it without waiting; the writer goroutine sends the rest.
func (sock *socket) tryWrite(batch []protocol.Encoded) (bool, error) {
	sock.cork.cork()
	if err := sock.writeFrames(batch); err != nil {
		sock.cork.tryUncork()
		return false, err
	}
	return sock.cork.tryUncork()
}

// compressMin is the smallest frame worth compressing, for a socket that negotiated
// permessage-deflate: below it, deflate's setup costs more than the bytes it saves (the ws
// library's default threshold too).
const compressMin = 1024

// writeFrames holds a batch in the corked connection: a prepared frame as the WebSocket
// library prepared it for every socket (compressed once, for all that negotiated
// compression), small frames framed here as they are, large ones compressed by the library.
func (sock *socket) writeFrames(batch []protocol.Encoded) error {
	for _, e := range batch {
		switch {
		case e.Prepared != nil:
			sock.cork.keepNext() // shared and never changed: no copy
		case e.Len() < compressMin:
			sock.cork.appendFrame(e)
			continue
		}
		if err := sock.writeLibrary(e); err != nil {
			return err
		}
	}
	return nil
}

// writeLibrary has the WebSocket library frame e, compressed if the socket negotiated it.
func (sock *socket) writeLibrary(e protocol.Encoded) error {
	if e.Len() >= compressMin {
		sock.conn.EnableWriteCompression(true)
		defer sock.conn.EnableWriteCompression(false)
	}
	if e.Prepared != nil {
		return sock.conn.WritePreparedMessage(e.Prepared)
	}
	typ := websocket.TextMessage
	if e.Binary {
		typ = websocket.BinaryMessage
	}
	sock.wbuf = e.AppendTo(sock.wbuf[:0])
	err := sock.conn.WriteMessage(typ, sock.wbuf)
	if cap(sock.wbuf) > 1<<20 {
		sock.wbuf = nil // one huge entities_state must not pin a megabyte per socket
	}
	return err
}

// overflowed runs, in its own goroutine, when the socket's queue overflows.
func (sock *socket) overflowed() {
	sock.srv.metrics.SlowDisconnects.Inc()
	sock.log.Warn("disconnecting a slow client: its send queue overflowed", "limit_bytes", sock.srv.cfg.SendQueueBytes)
	sock.sendClose(websocket.CloseTryAgainLater, "too slow: send queue overflow")
}

// closeGoingAway ends the socket at shutdown: the writer sends what is queued (the room's
// last diff), then the socket closes with 1001, which makes clients reconnect.
func (sock *socket) closeGoingAway(ctx context.Context) {
	sock.out.Close()
	select {
	case <-sock.writerDone:
	case <-ctx.Done():
		sock.conn.NetConn().Close()
		return
	}
	// The reader ends when the client answers, or closeGrace later; past ctx, stop waiting.
	sock.sendClose(websocket.CloseGoingAway, "server shutting down")
	select {
	case <-sock.ctx.Done():
	case <-ctx.Done():
		sock.conn.NetConn().Close()
	}
}
