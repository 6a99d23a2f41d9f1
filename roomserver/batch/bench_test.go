package batch

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

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

// Ingest workload: a room of ingestUsers users, each moving at 20 Hz, flushed every 50 ms, so
// about ingestPerFlush moves (each user's once on average, some twice, some not at all)
// between two flushes.
const (
	ingestUsers    = 500
	ingestPerFlush = 500
)

// ingestRoom returns a room of ingestUsers users and n mutations for it, as rules hand them
// out (a fresh components map each): moves, plus, when churn, about one in fifty a user
// leaving or joining again, each leave of a present user and each join of an absent one.
func ingestRoom(n int, churn bool) (entity.State, []entity.Mutation) {
	r := rand.New(rand.NewPCG(5, 6))
	state := entity.State{}
	users := make([]string, ingestUsers)
	present := make([]bool, ingestUsers)
	pose := func() entity.Components {
		return entity.Components{"position": benchFloats(r, 3), "rotation": benchFloats(r, 4)}
	}
	for i := range users {
		users[i] = "user-" + strconv.Itoa(i)
		state[users[i]] = pose()
		present[i] = true
	}
	muts := make([]entity.Mutation, n)
	for i := range muts {
		u := r.IntN(ingestUsers)
		switch {
		case present[u] && (!churn || r.IntN(100) >= 2):
			muts[i] = entity.Mutation{Op: entity.Update, ID: users[u], Components: pose()}
		case present[u]:
			muts[i] = entity.Mutation{Op: entity.Delete, ID: users[u]}
			present[u] = false
		default:
			muts[i] = entity.Mutation{Op: entity.Create, ID: users[u], Components: pose()}
			present[u] = true
		}
	}
	return state, muts
}

// BenchmarkIngest measures the batcher's share of the room loop's work per event: one op is
// one mutation's Add, with the Flush every ingestPerFlush adds timed and so amortised in
// (BenchmarkFlush measures a flush alone). Rules are not included: BenchmarkRulesIngest
// adds them. The mutations are made beforehand and cycled: a few thousand, mostly in cache as
// a map fresh from the rules is. Add takes over their maps, which the batcher may merge later
// updates into: harmless here, as every map has the same two components and a map comes
// round again only intervals after its diff is done with.
func BenchmarkIngest(b *testing.B) {
	for _, churn := range []bool{false, true} {
		name := "moves"
		if churn {
			name = "churn"
		}
		b.Run(name, func(b *testing.B) {
			state, muts := ingestRoom(8*ingestPerFlush+1, churn)
			bt := New(state)
			b.ReportAllocs()
			cpu := startCPU()
			for i := 0; b.Loop(); i++ {
				bt.Add(muts[i%len(muts)])
				if i%ingestPerFlush == ingestPerFlush-1 {
					bt.Flush()
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			cpu.report(b)
		})
	}
}

// cpuMeter measures the process's CPU time over a benchmark loop. On a shared machine the
// wall-clock ns/op counts the time other processes held the core; cpu-ns/op does not, so it
// is the steadier figure to compare runs by. It is only meaningful with the timer never
// stopped and the benchmark pinned to one core (taskset -c 1), where the garbage collector's
// work is all on that core and counted too.
type cpuMeter struct {
	start time.Duration
	ok    bool
}

func startCPU() cpuMeter {
	t, ok := processCPU()
	return cpuMeter{t, ok}
}

// report adds the CPU time per op as the metric cpu-ns/op.
func (m cpuMeter) report(b *testing.B) {
	if t, ok := processCPU(); ok && m.ok && b.N > 0 {
		b.ReportMetric(float64(t-m.start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkRulesIngest measures what the room loop does per event between flushes: rules then
// Add. Flushes (one per 1000 events, as at 20k events/s and a 50ms interval) are not timed;
// BenchmarkFlush measures them.
func BenchmarkRulesIngest(b *testing.B) {
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

// BenchmarkFlush measures one Flush alone after n adds: moves of n of the room's users, one
// in twenty leaving and joining again. dirty=500 is the ingest workload's interval; the
// diff's encoding is measured by entity's BenchmarkEncodeDiff500.
func BenchmarkFlush(b *testing.B) {
	for _, n := range []int{100, 500, 1000} {
		b.Run(fmt.Sprintf("dirty=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(3, 4))
			state, _ := benchRoom(0)
			bt := New(state)
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				for i := range n {
					id := "user-" + strconv.Itoa(i)
					p := entity.Components{"position": benchFloats(r, 3), "rotation": benchFloats(r, 4)}
					switch i % 20 {
					case 0:
						bt.Add(entity.Mutation{Op: entity.Delete, ID: id})
						bt.Add(entity.Mutation{Op: entity.Create, ID: id, Components: p})
					default:
						bt.Add(entity.Mutation{Op: entity.Update, ID: id, Components: p})
					}
				}
				b.StartTimer()
				bt.Flush()
			}
		})
	}
}
