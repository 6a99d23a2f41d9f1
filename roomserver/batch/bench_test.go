package batch

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/event"
	"github.com/xrooms/xrooms/roomserver/rules"
)

const benchUsers = 1000

func benchFloats(r *rand.Rand, n int) json.RawMessage {
	b := []byte{'['}
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, r.Float64()*20-10, 'f', 4, 64)
	}
	return append(b, ']')
}

func benchPose(r *rand.Rand, user string) map[string]json.RawMessage {
	id, _ := json.Marshal(user)
	return map[string]json.RawMessage{
		event.UserIDKey: id,
		"position":      benchFloats(r, 3),
		"rotation":      benchFloats(r, 4),
	}
}

// benchRoom returns a room of benchUsers users and a stream of events for it: about 98%
// user_moved, the rest users leaving and joining again, in an order where each leave is of a
// present user and each join of an absent one.
func benchRoom(n int) (entity.State, []event.Event) {
	r := rand.New(rand.NewPCG(1, 2))
	state := entity.State{}
	users := make([]string, benchUsers)
	present := make([]bool, benchUsers)
	for i := range users {
		users[i] = "user-" + strconv.Itoa(i)
		p := benchPose(r, users[i])
		state[users[i]] = entity.Components{"position": p["position"], "rotation": p["rotation"]}
		present[i] = true
	}
	evs := make([]event.Event, n)
	for i := range evs {
		u := r.IntN(benchUsers)
		switch {
		case r.IntN(100) >= 2 && present[u]:
			evs[i] = event.Event{Name: "user_moved", Payload: benchPose(r, users[u])}
		case present[u]:
			id, _ := json.Marshal(users[u])
			evs[i] = event.Event{Name: "user_left", Payload: map[string]json.RawMessage{event.UserIDKey: id}}
			present[u] = false
		default:
			evs[i] = event.Event{Name: "user_joined", Payload: benchPose(r, users[u])}
			present[u] = true
		}
	}
	return state, evs
}

// BenchmarkIngest measures what the room loop does per event between flushes: rules then
// Add. Flushes (one per 1000 events, as at 20k events/s and a 50ms interval) are not timed;
// BenchmarkFlush measures them.
func BenchmarkIngest(b *testing.B) {
	state, evs := benchRoom(1 << 16)
	t := rules.Builtin()
	bt := New(state)
	look := bt.Lookup
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev := evs[i%len(evs)]
		muts, err := t.Apply(ev, look)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range muts {
			bt.Add(m)
		}
		if i%1000 == 999 {
			b.StopTimer()
			bt.Flush()
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkFlush measures one flush of n dirty entities (moves of n of the room's users, one
// in twenty also leaving or joining again) and the json.Marshal of its diff.
func BenchmarkFlush(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("dirty=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(3, 4))
			state, _ := benchRoom(0)
			bt := New(state)
			b.ReportAllocs()
			var bytes int
			for b.Loop() {
				b.StopTimer()
				for i := range n {
					id := "user-" + strconv.Itoa(i)
					p := benchPose(r, id)
					delete(p, event.UserIDKey)
					switch i % 20 {
					case 0:
						bt.Add(entity.Mutation{Op: entity.Delete, ID: id})
						bt.Add(entity.Mutation{Op: entity.Create, ID: id, Components: p})
					default:
						bt.Add(entity.Mutation{Op: entity.Update, ID: id, Components: p})
					}
				}
				b.StartTimer()
				d := bt.Flush()
				out, err := json.Marshal(d)
				if err != nil {
					b.Fatal(err)
				}
				bytes = len(out)
			}
			b.ReportMetric(float64(bytes), "diff-bytes")
		})
	}
}
