package room

import (
	"runtime"
	"sync"
	"time"

	"github.com/xrooms/xrooms/roomserver/compact"
	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/protocol"
	"github.com/xrooms/xrooms/roomserver/store"
)

// state returns the entities_state payload, encoding it at most once per flush.
func (r *Room) state() []byte {
	if r.stateBody == nil {
		// AppendJSON gives json.Marshal's bytes; raw values were checked when they came in.
		r.stateBody = r.batch.State().AppendJSON(nil)
	}
	return r.stateBody
}

// stateFrame returns m's entities_state frame, in m's format; the payload is encoded at most
// once per flush and format.
func (r *Room) stateFrame(m *Member) (protocol.Encoded, error) {
	if m.format != formatV2Compact {
		return protocol.Encode(m.version, protocol.Push(m.joinRef, r.topic, EventState, r.state())), nil
	}
	if r.stateBin == nil {
		b, err := compact.AppendState(nil, r.batch.State())
		if err != nil {
			return protocol.Encoded{}, err
		}
		r.stateBin = b
	}
	return protocol.EncodeBinary(protocol.Push(m.joinRef, r.topic, EventState, r.stateBin))
}

// diffFrame returns the flush's entities_diff frame in format f, prepared to be written to
// every member in that format. json holds the JSON payload, encoded once for both versions.
func (r *Room) diffFrame(f format, d entity.Diff, json *[]byte) (protocol.Encoded, error) {
	if f == formatV2Compact {
		b, err := compact.AppendDiff(nil, d)
		if err != nil {
			return protocol.Encoded{}, err
		}
		e, err := protocol.EncodeBinary(protocol.Broadcast(r.topic, EventDiff, b))
		if err != nil {
			return protocol.Encoded{}, err
		}
		return e.Prepare(), nil
	}
	if *json == nil {
		*json = d.AppendJSON(nil) // json.Marshal's bytes; raw values were checked when they came in
	}
	return protocol.Encode(f.version(), protocol.Broadcast(r.topic, EventDiff, *json)).Prepare(), nil
}

// tick is the sync interval's work: the flush, and the replies held since the last tick.
func (r *Room) tick() {
	r.flush()
	r.wakeHeld()
}

// flush turns the batch into one entities_diff: stored, encoded once per format (see
// format) in use, and queued as the same bytes to every member in that format.
func (r *Room) flush() {
	if r.batch.Pending() == 0 && len(r.departed) == 0 && !r.storeBehind {
		return
	}
	start := time.Now()
	d := r.batch.Flush()
	r.commit(d)
	if d.Empty() {
		return
	}
	r.lastFlush = start
	r.stateBody, r.stateBin = nil, nil
	var body []byte
	for f, ms := range r.members {
		if len(ms) == 0 {
			continue
		}
		e, err := r.diffFrame(format(f), d, &body)
		if err != nil {
			// Raw values are checked when they come in, so this is a bug; members who missed
			// a diff must start over, and rejoining gives them the whole state.
			r.log.Error("failed to encode a diff; dropping the members who needed it", "format", format(f), "err", err)
			r.dead = append(r.dead, ms...)
			continue
		}
		// Prepared: framed (and compressed) once for all of them. Held, with the replies
		// held since the last flush, and written by the wakers (see wakeHeld).
		for _, m := range ms {
			if !r.holdEncoded(m, e) {
				r.dead = append(r.dead, m)
			}
		}
	}
	for i, m := range r.dead {
		r.remove(m)
		r.dead[i] = nil
	}
	r.dead = r.dead[:0]
	r.m.DiffsOut.Inc()
	r.m.EntitiesPerDiff.Observe(float64(len(d.Creates) + len(d.Updates) + len(d.Deletes)))
	r.m.Entities.Set(float64(r.batch.Len()))
	r.m.FlushDuration.Observe(time.Since(start).Seconds())
}

// commit stores one flush. A failed commit changed nothing in the store (its contract), so
// the store is then behind the room; rather than queue diffs without bound while the disk is
// failing, the next flush writes the whole state (and whatever users departed meanwhile),
// which catches the store up in one change.
func (r *Room) commit(d entity.Diff) {
	c := store.Change{Diff: d, Departed: r.departed}
	if r.storeBehind {
		full, err := r.catchUp()
		if err != nil {
			r.m.StoreErrors.Inc()
			r.log.Error("store still failing", "err", err)
			return
		}
		c.Diff = full
	}
	if c.Empty() {
		return
	}
	if err := r.store.Commit(c); err != nil {
		// The members still get the diff: the room's memory is right, only the disk is
		// behind until a commit succeeds.
		r.m.StoreErrors.Inc()
		if !r.storeBehind {
			r.log.Error("failed to commit a flush to the store; will write the whole state next flush", "err", err)
		}
		r.storeBehind = true
		return
	}
	if r.storeBehind {
		r.log.Info("store caught up", "entities", r.batch.Len())
	}
	r.storeBehind = false
	r.departed = map[string]entity.Components{}
}

// catchUp returns the diff that makes the store hold exactly the room's state.
func (r *Room) catchUp() (entity.Diff, error) {
	stored, err := r.store.Load()
	if err != nil {
		return entity.Diff{}, err
	}
	d := entity.NewDiff()
	d.Creates = r.batch.State() // the store keeps no map it is given
	for id := range stored {
		if _, ok := d.Creates[id]; !ok {
			d.Deletes[id] = entity.Components{}
		}
	}
	return d, nil
}

// hold queues f to m without having it written before the next tick (see holdRepliesUpTo),
// forgetting m when its socket refuses.
func (r *Room) hold(m *Member, f protocol.Frame) {
	if m.index >= 0 && !r.holdEncoded(m, protocol.Encode(m.version, f)) {
		r.remove(m)
	}
}

// holdEncoded queues e to m, to be written at the end of the tick; false when the socket
// refuses it.
func (r *Room) holdEncoded(m *Member, e protocol.Encoded) bool {
	r.one[0] = e
	ok := m.conn.Hold(r.one[:]...)
	r.one[0] = protocol.Encoded{}
	if ok && !m.held {
		m.held = true
		r.held = append(r.held, m)
	}
	return ok
}

// wakeHeld has the frames held for members written. The wakers do it, each for a share of
// the members, so that the loop goes on with pushes meanwhile and several cores write at
// once; a socket that takes its batch at once costs no goroutine switch of its own (see
// outbox.Direct). Without wakers (the loop not running), it is done here.
func (r *Room) wakeHeld() {
	ms := r.takeHeld()
	if len(r.wakers) == 0 {
		wake(ms)
		return
	}
	for i, ch := range r.wakers {
		if lo, hi := i*len(ms)/len(r.wakers), (i+1)*len(ms)/len(r.wakers); lo < hi {
			ch <- ms[lo:hi]
		}
	}
}

// takeHeld returns the members with held frames, and forgets them.
func (r *Room) takeHeld() []*Member {
	ms := r.held
	if len(ms) == 0 {
		return nil
	}
	r.held = make([]*Member, 0, cap(ms)) // ms goes to the wakers
	for _, m := range ms {
		m.held = false
	}
	return ms
}

// startWakers starts a waker per core the process may use, up to maxWakers; stop ends them
// once they have woken every member handed to them.
func (r *Room) startWakers() (stop func()) {
	r.wakers = make([]chan []*Member, min(runtime.GOMAXPROCS(0), maxWakers))
	var wg sync.WaitGroup
	for i := range r.wakers {
		ch := make(chan []*Member, 4)
		r.wakers[i] = ch
		wg.Go(func() {
			for ms := range ch {
				wake(ms)
			}
		})
	}
	return func() {
		for _, ch := range r.wakers {
			close(ch)
		}
		wg.Wait()
		r.wakers = nil
	}
}

// maxWakers bounds the goroutines writing a room's flush: past a few cores, the sockets'
// own writers and the kernel share the work anyway.
const maxWakers = 8

func wake(ms []*Member) {
	for _, m := range ms {
		m.conn.Wake()
	}
}

// sendEncoded queues encoded frames to m, together, forgetting m when its socket refuses.
func (r *Room) sendEncoded(m *Member, frames ...protocol.Encoded) {
	if m.index >= 0 && !m.conn.Send(frames...) {
		r.remove(m)
	}
}

// send queues frames to m, together, forgetting m when its socket refuses.
func (r *Room) send(m *Member, frames ...protocol.Frame) {
	if m.index >= 0 && !sendTo(m.conn, m.version, frames...) {
		r.remove(m)
	}
}

// sendTo encodes frames and queues them, together, to a socket.
func sendTo(conn Sender, v protocol.Version, frames ...protocol.Frame) bool {
	enc := make([]protocol.Encoded, len(frames))
	for i, f := range frames {
		enc[i] = protocol.Encode(v, f)
	}
	return conn.Send(enc...)
}
