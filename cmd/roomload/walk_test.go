package main

import (
	"encoding/json"
	"math"
	"testing"
)

// The moves are valid JSON, change every step, and keep a unit quaternion.
func TestWalkerMoves(t *testing.T) {
	var w walker
	w.seed("load-00001")
	var last string
	for range 1000 {
		b := append(w.step([]byte("{")), '}')
		var m struct{ Position, Rotation []float64 }
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if len(m.Position) != 3 || len(m.Rotation) != 4 {
			t.Fatalf("move %s", b)
		}
		n := 0.0
		for _, q := range m.Rotation {
			n += q * q
		}
		if math.Abs(n-1) > 1e-3 {
			t.Fatalf("rotation %v is not a unit quaternion", m.Rotation)
		}
		if string(b) == last {
			t.Fatalf("move %s repeated", b)
		}
		last = string(b)
	}
}

func TestMeasuringClientsAreSpreadOverTheJoinOrder(t *testing.T) {
	for _, c := range []struct{ n, m int }{{500, 50}, {500, 10}, {7, 3}, {5, 5}, {100, 1}} {
		var picked []int
		for i := range c.n {
			if measures(i, c.n, c.m) {
				picked = append(picked, i)
			}
		}
		if len(picked) != c.m {
			t.Fatalf("n=%d m=%d: %d measure", c.n, c.m, len(picked))
		}
		if c.m > 1 && picked[len(picked)-1] < c.n-c.n/c.m {
			t.Fatalf("n=%d m=%d: measuring %v, want them spread to the end", c.n, c.m, picked)
		}
	}
}
