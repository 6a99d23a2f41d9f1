package room

import (
	"context"
	"encoding/json"
	"errors"
	"maps"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/event"
	"github.com/xrooms/xrooms/roomserver/limit"
	"github.com/xrooms/xrooms/roomserver/protocol"
	"github.com/xrooms/xrooms/roomserver/rules"
)

// JoinRequest is a phx_join for the room topic.
type JoinRequest struct {
	// Conn is where the member's frames go.
	Conn Sender
	// Version is the socket's protocol version.
	Version protocol.Version
	// Frame is the phx_join; the reply echoes its refs.
	Frame protocol.Frame
	// UserID is who the member acts as, already settled by the server. Required.
	UserID string
	// Components are the user's components from the join payload (without user_id).
	Components entity.Components
	// Replaces is this socket's current membership of the topic, if any: a second join on a
	// held topic replaces the first, which gets a phx_close.
	Replaces *Member
	// Encoding is how the member gets entities_state and entities_diff; "" is JSON.
	// EncodingCompact needs Version V2.
	Encoding Encoding
}

// Join adds a member. The loop queues, in order, the join reply (ok, with {"user_id"}, or
// error), the phx_close of a replaced membership, and entities_state; diffs follow. On a
// refused join (ErrFull, or a *limit.Error when the user's entity would break
// MaxEntities) the error reply is queued too; other errors queue nothing.
func (r *Room) Join(ctx context.Context, req JoinRequest) (*Member, error) {
	if req.Conn == nil || req.UserID == "" {
		return nil, errors.New("room: join needs a sender and a user id")
	}
	var m *Member
	var err error
	if cerr := r.call(ctx, func() { m, err = r.join(req) }); cerr != nil {
		return nil, cerr
	}
	return m, err
}

func (r *Room) join(req JoinRequest) (*Member, error) {
	old := req.Replaces
	if old != nil && old.index < 0 {
		old = nil // already gone (dropped as slow, or left)
	}
	n := r.count
	if old != nil {
		n--
	}
	if r.maxClients > 0 && n >= r.maxClients {
		if old == nil {
			sendTo(req.Conn, req.Version, protocol.ReplyError(req.Frame, ReasonFull))
			return nil, ErrFull
		}
		r.remove(old)
		sendTo(req.Conn, req.Version, protocol.ReplyError(req.Frame, ReasonFull), protocol.Close(old.joinRef, r.topic))
		return nil, ErrFull
	}
	if r.users[req.UserID] == 0 {
		// The user's entity comes first: a join whose entity the room has no room for is
		// refused, as a full room refuses it.
		if err := r.userJoined(req.UserID, req.Components); err != nil {
			refusal := []protocol.Frame{ErrorReply(req.Frame, err)}
			if old != nil {
				r.remove(old)
				refusal = append(refusal, protocol.Close(old.joinRef, r.topic))
			}
			sendTo(req.Conn, req.Version, refusal...)
			return nil, err
		}
	}
	m := &Member{user: req.UserID, conn: req.Conn, version: req.Version, joinRef: req.Frame.JoinRef,
		format: formatOf(req.Version, req.Encoding)}
	state, err := r.stateFrame(m)
	if err != nil {
		// Only a topic too long for a binary frame gets here: the server checks encodings.
		sendTo(req.Conn, req.Version, protocol.ReplyError(req.Frame, err.Error()))
		return nil, err
	}
	m.index = len(r.members[m.format])
	r.members[m.format] = append(r.members[m.format], m)
	r.count++
	r.m.Members.Set(float64(r.count))
	r.users[m.user]++
	if old != nil {
		r.remove(old) // after the add, so the same user replacing a tab never leaves
	}
	resp, _ := json.Marshal(map[string]string{event.UserIDKey: m.user}) // strings always marshal
	frames := []protocol.Encoded{protocol.Encode(m.version, protocol.ReplyOK(req.Frame, resp))}
	if old != nil {
		frames = append(frames, protocol.Encode(m.version, protocol.Close(old.joinRef, r.topic)))
	}
	r.sendEncoded(m, append(frames, state)...)
	r.log.Debug("member joined", "user_id", m.user, "join_ref", m.joinRef, "members", r.count)
	return m, nil
}

// userJoined emits user_joined for a user's first membership, with the join payload's
// components over the user's last known ones: the entity if it still exists, what they had
// when they left this interval, or what the store kept from their last visit. It returns
// the error of a limit the event would break (the join is refused); a rule refusing the
// event is logged, and the user joins without it.
func (r *Room) userJoined(user string, comps entity.Components) error {
	last, ok := r.batch.Lookup(user)
	if !ok {
		last, ok = r.departed[user]
	}
	if !ok {
		var err error
		last, _, err = r.store.User(user)
		if err != nil {
			r.log.Error("failed to read a user's last components; joining without them", "user_id", user, "err", err)
		}
	}
	delete(r.departed, user) // back before the flush: nothing to remember
	payload := make(map[string]json.RawMessage, len(last)+len(comps)+1)
	maps.Copy(payload, last)
	maps.Copy(payload, comps)
	err := r.apply(event.New(EventUserJoined, user, payload), r.eventsIn[fromServer])
	var le *limit.Error
	if errors.As(err, &le) {
		return err
	}
	if err != nil {
		r.log.Error("user_joined refused by a rule", "user_id", user, "err", err)
	}
	return nil
}

// Leave ends a membership. With req (the member's phx_leave) the loop queues the ok reply
// and the phx_close; without (the socket went away) nothing is sent. Leaving twice is
// harmless. Leave does not wait for the loop.
func (r *Room) Leave(ctx context.Context, m *Member, req *protocol.Frame) error {
	return r.do(ctx, func() {
		r.remove(m)
		if req != nil {
			sendTo(m.conn, m.version, protocol.ReplyOK(*req, nil), protocol.Close(m.joinRef, r.topic))
		}
	})
}

// remove forgets m and emits user_left when it was the user's last membership.
func (r *Room) remove(m *Member) {
	if m.index < 0 {
		return
	}
	ms := r.members[m.format]
	last := ms[len(ms)-1]
	ms[m.index], last.index = last, m.index
	ms[len(ms)-1] = nil
	r.members[m.format] = ms[:len(ms)-1]
	m.index = -1
	r.count--
	r.m.Members.Set(float64(r.count))
	r.users[m.user]--
	if r.users[m.user] > 0 {
		return
	}
	delete(r.users, m.user)
	if comps, ok := r.batch.Lookup(m.user); ok {
		r.departed[m.user] = comps
	}
	if err := r.apply(event.New(EventUserLeft, m.user, nil), r.eventsIn[fromServer]); err != nil {
		r.log.Error("user_left refused by a rule", "user_id", m.user, "err", err)
	}
	r.log.Debug("user left", "user_id", m.user, "members", r.count)
}

// Push applies a member's event (see FromPush) and queues the reply to req: ok, or error
// with the rule's reason. It does not wait for the loop. A push from a membership that has
// already ended is ignored, as Phoenix ignores pushes for a channel it has closed.
func (r *Room) Push(ctx context.Context, m *Member, req protocol.Frame, ev event.Event) error {
	return r.do(ctx, func() {
		if m.index < 0 {
			return
		}
		if err := r.apply(ev, r.eventsIn[fromSocket]); err != nil {
			r.send(m, ErrorReply(req, err))
			return
		}
		if r.interval <= holdRepliesUpTo {
			r.hold(m, protocol.ReplyOK(req, nil))
			return
		}
		r.send(m, protocol.ReplyOK(req, nil))
	})
}

// Event applies an event from outside the sockets (a backend service, Go code) and waits
// for it. It is not stamped with any user. The error is the rule's, for bad input.
func (r *Room) Event(ctx context.Context, ev event.Event) error {
	if err := CheckName(ev.Name); err != nil {
		return err
	}
	var err error
	if cerr := r.call(ctx, func() { err = r.apply(ev, r.eventsIn[fromHTTP]) }); cerr != nil {
		return cerr
	}
	return err
}

// apply runs ev through the rules into the batch and publishes it. A refused event changes
// nothing and is not published.
func (r *Room) apply(ev event.Event, in prometheus.Counter) error {
	in.Inc()
	muts, err := r.rules.Apply(ev, r.lookup)
	if err != nil {
		r.m.RuleErrors.Inc()
		// Bad input is the pusher's business (they get the error); a declared rule that fails
		// to evaluate is the room operator's, so it is logged too.
		if ee := (*rules.EvalError)(nil); errors.As(err, &ee) {
			r.log.Warn("rule failed", "event", ev.Name, "expression", ee.Where, "user_id", ev.UserID(), "err", ee.Err)
		}
		return err
	}
	if r.maxEntity > 0 && r.batch.Current()+r.growth(muts) > r.maxEntity {
		r.m.Refusals.WithLabelValues(limit.ReasonEntityLimit).Inc()
		return &limit.Error{Reason: limit.ReasonEntityLimit, Limit: "max-entities", Max: int64(r.maxEntity)}
	}
	for _, m := range muts {
		r.batch.Add(m)
	}
	if dropped := r.hub.Publish(ev); dropped > 0 {
		r.m.StreamDropped.Add(float64(dropped))
	}
	return nil
}

// growth returns how many entities muts, applied in order, would add to the room (0 when
// they add none or remove more than they add).
func (r *Room) growth(muts []entity.Mutation) int {
	n := 0
	var after map[string]bool // existence after this event's earlier mutations
	exists := func(id string) bool {
		if e, ok := after[id]; ok {
			return e
		}
		return r.batch.Exists(id)
	}
	for _, m := range muts {
		var now bool
		switch m.Op {
		case entity.Create:
			now = true
		case entity.Delete:
			now = false
		default:
			continue
		}
		if was := exists(m.ID); was != now {
			if now {
				n++
			} else {
				n--
			}
		}
		if after == nil {
			after = map[string]bool{}
		}
		after[m.ID] = now
	}
	return n
}

// ErrorReply returns the error reply to req for err: a limit's reply names the limit
// ({"reason", "limit", "max"}); any other error's text is the reason.
func ErrorReply(req protocol.Frame, err error) protocol.Frame {
	var le *limit.Error
	if errors.As(err, &le) {
		return protocol.Reply(req, protocol.StatusError, le.Response())
	}
	return protocol.ReplyError(req, err.Error())
}
