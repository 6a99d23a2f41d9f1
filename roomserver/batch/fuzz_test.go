package batch

import (
	"testing"

	"github.com/xrooms/xrooms/roomserver/entity"
)

// fuzzComponents makes components from one byte: bit j puts names[j], with a value picked
// by the high bits. Zero is nil components.
func fuzzComponents(b byte) entity.Components {
	if b == 0 {
		return nil
	}
	c := entity.Components{}
	for j, n := range names {
		if b>>j&1 == 1 {
			c[n] = raw(values[(int(b>>3)+j)%len(values)])
		}
	}
	return c
}

// fuzzScenario decodes data into a starting state and a sequence of mutations, with nil
// entries standing for flushes. data[0] says which ids exist at the start, one byte each
// then gives their components; then each two bytes are a mutation: op and id from the
// first (op 0 is a flush, 4 an invalid op), components from the second.
func fuzzScenario(data []byte) (entity.State, []*entity.Mutation) {
	start := entity.State{}
	if len(data) == 0 {
		return start, nil
	}
	mask := data[0]
	data = data[1:]
	for i, id := range ids {
		if mask>>i&1 == 0 {
			continue
		}
		var b byte
		if len(data) > 0 {
			b, data = data[0], data[1:]
		}
		c := fuzzComponents(b)
		if c == nil {
			c = entity.Components{}
		}
		start[id] = c
	}
	var muts []*entity.Mutation
	for ; len(data) >= 2; data = data[2:] {
		op := entity.Op(data[0] % 5)
		if op == 0 {
			muts = append(muts, nil)
			continue
		}
		if op == 4 {
			op = entity.Op(data[0]) // an invalid op: 4, 9, 14, ...
		}
		m := &entity.Mutation{Op: op, ID: ids[int(data[0]/5)%len(ids)]}
		if op != entity.Delete {
			m.Components = fuzzComponents(data[1])
		}
		muts = append(muts, m)
	}
	return start, muts
}

// FuzzBatch checks the batcher's model property on any starting state and mutation
// sequence: at every flush, the diff applied the client's way (creates, updates, deletes)
// gives the state that applying each mutation in turn gives; no entity is in two parts of a
// diff; State and Current agree with the model. The seed corpus is in testdata/fuzz/FuzzBatch.
func FuzzBatch(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		start, muts := fuzzScenario(data)
		model := start.Clone()
		b := New(start.Clone())
		before := model.Clone()
		var applied []entity.Mutation
		check := func() {
			d := b.Flush()
			fail := func(what string) {
				t.Fatalf("from %s, mutations %s gave diff %s: %s", show(before), show(applied), show(d), what)
			}
			for id := range d.Creates {
				if _, ok := d.Updates[id]; ok {
					fail(id + " is created and updated")
				}
				if _, ok := d.Deletes[id]; ok {
					fail(id + " is created and deleted")
				}
			}
			for id := range d.Updates {
				if _, ok := d.Deletes[id]; ok {
					fail(id + " is updated and deleted")
				}
			}
			got := before.Clone()
			got.ApplyDiff(d)
			if !got.Equal(model) {
				fail("ApplyDiff gives " + show(got) + ", one by one gives " + show(model))
			}
			if !b.State().Equal(model) || b.Len() != len(model) || b.Current() != len(model) {
				fail("State() is " + show(b.State()))
			}
			before, applied = model.Clone(), nil
		}
		for _, m := range muts {
			if m == nil {
				check()
				continue
			}
			model.Apply(*m)
			b.Add(copyMutation(*m))
			applied = append(applied, *m)
			if b.Current() != len(model) {
				t.Fatalf("after %s, Current() = %d, want %d", show(applied), b.Current(), len(model))
			}
		}
		check()
	})
}
