package compact

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/xrooms/xrooms/roomserver/entity"
)

// movedDiff is n entities moved in one sync interval, as a load test produces them.
func movedDiff(n int) entity.Diff {
	d := entity.NewDiff()
	for i := range n {
		d.Updates[fmt.Sprintf("load-%05d", i+1)] = entity.Components{
			"position": json.RawMessage(fmt.Sprintf(`[%g,1.5,-2.75]`, 12.25+float64(i%40)*0.25)),
			"rotation": json.RawMessage(`[0,0.7071,0,0.7071]`),
			"seq":      json.RawMessage(`12`),
		}
	}
	return d
}

// BenchmarkMovedDiff500 compares the compact encoding with entity's JSON encoding of the same
// 500-moved-entity diff: ns/op, allocs and bytes per entity.
func BenchmarkMovedDiff500(b *testing.B) {
	const n = 500
	d := movedDiff(n)
	b.Run("compact", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = AppendDiff(buf[:0], d); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(buf))/n, "B/entity")
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = d.AppendJSON(buf[:0])
		}
		b.ReportMetric(float64(len(buf))/n, "B/entity")
	})
}
