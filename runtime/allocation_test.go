package oms_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	oms "github.com/omscloud/omscloud/runtime"
)

// stockAt is a candidate location: ref, distance, then SKU and quantity pairs.
func stockAt(ref string, km float64, stock ...any) oms.AllocationCandidate {
	c := oms.AllocationCandidate{Location: ref, DistanceKm: km, Available: map[string]int64{}}
	for i := 0; i < len(stock); i += 2 {
		c.Available[stock[i].(string)] = int64(stock[i+1].(int))
	}
	return c
}

// itemsOf builds items from SKU and quantity pairs.
func itemsOf(pairs ...any) []oms.Item {
	var out []oms.Item
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, oms.Item{SKU: pairs[i].(string), Qty: int64(pairs[i+1].(int))})
	}
	return out
}

func planned(ref string, km float64, items ...any) oms.PlannedFulfilment {
	return oms.PlannedFulfilment{Location: ref, DistanceKm: km, Items: itemsOf(items...)}
}

func TestPlanAllocation(t *testing.T) {
	tests := []struct {
		name       string
		need       []oms.Item
		candidates []oms.AllocationCandidate
		max        int
		want       []oms.PlannedFulfilment // nil: no plan
	}{
		{name: "the one location holding every line",
			need:       itemsOf("A", 2, "B", 1),
			candidates: []oms.AllocationCandidate{stockAt("w1", 5, "A", 10, "B", 10)},
			max:        1,
			want:       []oms.PlannedFulfilment{planned("w1", 5, "A", 2, "B", 1)}},
		{name: "the nearest of the complete locations, whatever the input order",
			need:       itemsOf("A", 2),
			candidates: []oms.AllocationCandidate{stockAt("far", 9, "A", 5), stockAt("near", 1.5, "A", 2), stockAt("mid", 3, "A", 50)},
			max:        3,
			want:       []oms.PlannedFulfilment{planned("near", 1.5, "A", 2)}},
		{name: "a nearer location missing a line is passed over for a complete one",
			need:       itemsOf("A", 1, "B", 1),
			candidates: []oms.AllocationCandidate{stockAt("near", 1, "A", 5), stockAt("far", 8, "A", 1, "B", 1)},
			max:        1,
			want:       []oms.PlannedFulfilment{planned("far", 8, "A", 1, "B", 1)}},
		{name: "a nearer location short of a quantity is passed over",
			need:       itemsOf("A", 3),
			candidates: []oms.AllocationCandidate{stockAt("near", 1, "A", 2), stockAt("far", 8, "A", 3)},
			max:        1,
			want:       []oms.PlannedFulfilment{planned("far", 8, "A", 3)}},
		{name: "equal distances go to the lower ref",
			need:       itemsOf("A", 1),
			candidates: []oms.AllocationCandidate{stockAt("s-b", 0, "A", 1), stockAt("s-a", 0, "A", 1), stockAt("s-c", 0, "A", 1)},
			max:        1,
			want:       []oms.PlannedFulfilment{planned("s-a", 0, "A", 1)}},
		{name: "a single location is preferred to a nearer split",
			need:       itemsOf("A", 2, "B", 2),
			candidates: []oms.AllocationCandidate{stockAt("a", 1, "A", 2), stockAt("b", 2, "B", 2), stockAt("ab", 30, "A", 2, "B", 2)},
			max:        3,
			want:       []oms.PlannedFulfilment{planned("ab", 30, "A", 2, "B", 2)}},
		{name: "without split no single location means no plan",
			need:       itemsOf("A", 2, "B", 2),
			candidates: []oms.AllocationCandidate{stockAt("a", 1, "A", 2), stockAt("b", 2, "B", 2)},
			max:        1},
		{name: "a limit of 0 or less is no split",
			need:       itemsOf("A", 2, "B", 2),
			candidates: []oms.AllocationCandidate{stockAt("a", 1, "A", 2), stockAt("b", 2, "B", 2)},
			max:        0},
		{name: "split: lines across locations, items in the order needed",
			need:       itemsOf("A", 2, "B", 2, "C", 1),
			candidates: []oms.AllocationCandidate{stockAt("x", 1, "C", 1, "A", 2), stockAt("y", 2, "B", 5)},
			max:        2,
			want:       []oms.PlannedFulfilment{planned("x", 1, "A", 2, "C", 1), planned("y", 2, "B", 2)}},
		{name: "split: one line's quantity across locations",
			need:       itemsOf("A", 5),
			candidates: []oms.AllocationCandidate{stockAt("x", 1, "A", 3), stockAt("y", 2, "A", 4)},
			max:        2,
			want:       []oms.PlannedFulfilment{planned("y", 2, "A", 4), planned("x", 1, "A", 1)}},
		{name: "split: the location covering the most units first, not the nearest",
			need:       itemsOf("A", 3, "B", 3),
			candidates: []oms.AllocationCandidate{stockAt("near", 1, "A", 1), stockAt("big", 50, "A", 2, "B", 3), stockAt("mid", 5, "A", 3)},
			max:        3,
			want:       []oms.PlannedFulfilment{planned("big", 50, "A", 2, "B", 3), planned("near", 1, "A", 1)}},
		{name: "split: equal units go to the nearer",
			need:       itemsOf("A", 2, "B", 2),
			candidates: []oms.AllocationCandidate{stockAt("b-far", 9, "B", 2), stockAt("a-near", 1, "A", 2)},
			max:        2,
			want:       []oms.PlannedFulfilment{planned("a-near", 1, "A", 2), planned("b-far", 9, "B", 2)}},
		{name: "split: equal units and distance go to the lower ref",
			need:       itemsOf("A", 2, "B", 2),
			candidates: []oms.AllocationCandidate{stockAt("q", 0, "B", 2), stockAt("p", 0, "A", 2)},
			max:        2,
			want:       []oms.PlannedFulfilment{planned("p", 0, "A", 2), planned("q", 0, "B", 2)}},
		{name: "split: more locations needed than allowed",
			need:       itemsOf("A", 1, "B", 1, "C", 1),
			candidates: []oms.AllocationCandidate{stockAt("a", 1, "A", 1), stockAt("b", 2, "B", 1), stockAt("c", 3, "C", 1)},
			max:        2},
		{name: "split: exactly as many locations as allowed",
			need:       itemsOf("A", 1, "B", 1, "C", 1),
			candidates: []oms.AllocationCandidate{stockAt("a", 1, "A", 1), stockAt("b", 2, "B", 1), stockAt("c", 3, "C", 1)},
			max:        3,
			want:       []oms.PlannedFulfilment{planned("a", 1, "A", 1), planned("b", 2, "B", 1), planned("c", 3, "C", 1)}},
		{name: "split: not enough stock in total",
			need:       itemsOf("A", 5),
			candidates: []oms.AllocationCandidate{stockAt("x", 1, "A", 2), stockAt("y", 2, "A", 2)},
			max:        3},
		{name: "split: a line nowhere in stock",
			need:       itemsOf("A", 1, "Z", 1),
			candidates: []oms.AllocationCandidate{stockAt("x", 1, "A", 5)},
			max:        3},
		{name: "split: the greedy choice can miss a smaller split (documented heuristic)",
			need:       itemsOf("A", 3, "B", 3),
			candidates: []oms.AllocationCandidate{stockAt("both", 1, "A", 2, "B", 2), stockAt("a", 2, "A", 3), stockAt("b", 3, "B", 3)},
			max:        2}, // a + b would do; both (4 units) is taken first and leaves two locations' worth
		{name: "no candidates",
			need: itemsOf("A", 1),
			max:  3},
		{name: "stock of other SKUs does not count",
			need:       itemsOf("A", 1),
			candidates: []oms.AllocationCandidate{stockAt("x", 1, "B", 100)},
			max:        3},
		{name: "zero or negative stock is never reserved",
			need:       itemsOf("A", 2),
			candidates: []oms.AllocationCandidate{stockAt("neg", 1, "A", -5), stockAt("zero", 2, "A", 0), stockAt("ok", 3, "A", 2)},
			max:        3,
			want:       []oms.PlannedFulfilment{planned("ok", 3, "A", 2)}},
		{name: "negative stock does not offset another SKU's units in a split",
			need:       itemsOf("A", 1, "B", 1),
			candidates: []oms.AllocationCandidate{stockAt("x", 1, "A", 1, "B", -9), stockAt("y", 2, "B", 1)},
			max:        2,
			want:       []oms.PlannedFulfilment{planned("x", 1, "A", 1), planned("y", 2, "B", 1)}},
		{name: "lines of zero or negative quantity need nothing",
			need:       itemsOf("A", 0, "B", 2, "C", -1),
			candidates: []oms.AllocationCandidate{stockAt("x", 1, "B", 2)},
			max:        1,
			want:       []oms.PlannedFulfilment{planned("x", 1, "B", 2)}},
		{name: "nothing needed, no plan",
			need:       itemsOf("A", 0),
			candidates: []oms.AllocationCandidate{stockAt("x", 1, "A", 2)},
			max:        3},
		{name: "empty need, no plan",
			candidates: []oms.AllocationCandidate{stockAt("x", 1, "A", 2)},
			max:        3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := append([]oms.AllocationCandidate(nil), tt.candidates...)
			needBefore := append([]oms.Item(nil), tt.need...)
			got := oms.PlanAllocation(tt.need, tt.candidates, tt.max)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, before, tt.candidates, "the candidates are left as given")
			assert.Equal(t, needBefore, tt.need, "need is left as given")
		})
	}
}

func TestFulfilmentLimit(t *testing.T) {
	for _, tt := range []struct {
		action oms.AllocateAction
		want   int
	}{
		{oms.AllocateAction{}, 1},
		{oms.AllocateAction{Split: true}, oms.DefaultMaxFulfilments},
		{oms.AllocateAction{Split: true, MaxFulfilments: 5}, 5},
		{oms.AllocateAction{Split: false, MaxFulfilments: 5}, 1}, // refused by Validate; no split all the same
	} {
		assert.Equal(t, tt.want, tt.action.FulfilmentLimit(), "%+v", tt.action)
	}
}
