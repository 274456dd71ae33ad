package oms

import (
	"slices"
	"strings"
)

// DefaultMaxFulfilments bounds a split allocation whose workflow gives no maxFulfilments.
const DefaultMaxFulfilments = 3

// FulfilmentLimit is how many fulfilments the action may create for one
// allocation: 1 without split, else MaxFulfilments (default 3).
func (a *AllocateAction) FulfilmentLimit() int {
	switch {
	case !a.Split:
		return 1
	case a.MaxFulfilments > 0:
		return a.MaxFulfilments
	}
	return DefaultMaxFulfilments
}

// AllocationCandidate is a location an allocation may use, with the stock it
// has free for the lines needed.
type AllocationCandidate struct {
	Location   string  // the location's ref
	DistanceKm float64 // from the delivery address; 0 for all when there is none
	// Available is the stock free to reserve (on hand less reserved) by SKU;
	// a SKU not listed has none.
	Available map[string]int64
}

// PlannedFulfilment is one location's part of an allocation plan.
type PlannedFulfilment struct {
	Location   string
	DistanceKm float64
	Items      []Item // in the order of the lines needed
}

// PlanAllocation decides where lines ship from, without reserving anything:
// the nearest candidate holding every line; else, when maxFulfilments > 1,
// greedily the candidate covering the most units still needed (the nearer on a
// tie) until every line is covered, at most maxFulfilments of them. The greedy
// choice is a heuristic: it can miss a split into fewer locations that exists.
//
// Candidates rank by DistanceKm, then Location; their order in the slice does
// not matter and the slice is not changed. need holds each SKU once; a line
// whose Qty is not positive needs nothing and is left out. The plan is nil
// when the candidates cannot cover need, or when nothing is needed.
func PlanAllocation(need []Item, candidates []AllocationCandidate, maxFulfilments int) []PlannedFulfilment {
	if slices.ContainsFunc(need, func(it Item) bool { return it.Qty <= 0 }) {
		need = slices.DeleteFunc(slices.Clone(need), func(it Item) bool { return it.Qty <= 0 })
	}
	if len(need) == 0 {
		return nil
	}
	ranked := make([]*AllocationCandidate, len(candidates))
	for i := range candidates {
		ranked[i] = &candidates[i]
	}
	slices.SortStableFunc(ranked, func(a, b *AllocationCandidate) int {
		switch {
		case a.DistanceKm < b.DistanceKm:
			return -1
		case a.DistanceKm > b.DistanceKm:
			return 1
		}
		return strings.Compare(a.Location, b.Location)
	})
	for _, c := range ranked { // nearest first
		if c.covers(need) {
			return []PlannedFulfilment{{Location: c.Location, DistanceKm: c.DistanceKm, Items: need}}
		}
	}
	if maxFulfilments <= 1 {
		return nil
	}
	left := make(map[string]int64, len(need))
	for _, it := range need {
		left[it.SKU] = it.Qty
	}
	var plan []PlannedFulfilment
	used := make([]bool, len(ranked))
	for len(left) > 0 && len(plan) < maxFulfilments {
		best, bestUnits := -1, int64(0)
		for i, c := range ranked {
			if used[i] {
				continue
			}
			var units int64
			for sku, q := range left {
				units += min(q, c.free(sku))
			}
			if units > bestUnits { // ranked nearest first, so a tie keeps the nearer
				best, bestUnits = i, units
			}
		}
		if best < 0 {
			return nil
		}
		used[best] = true
		c := ranked[best]
		p := PlannedFulfilment{Location: c.Location, DistanceKm: c.DistanceKm}
		for _, it := range need {
			if q := min(left[it.SKU], c.free(it.SKU)); q > 0 {
				p.Items = append(p.Items, Item{SKU: it.SKU, Qty: q})
				if left[it.SKU] -= q; left[it.SKU] == 0 {
					delete(left, it.SKU)
				}
			}
		}
		plan = append(plan, p)
	}
	if len(left) > 0 {
		return nil
	}
	return plan
}

// free is the candidate's stock of sku that can be reserved; never negative.
func (c *AllocationCandidate) free(sku string) int64 { return max(c.Available[sku], 0) }

func (c *AllocationCandidate) covers(need []Item) bool {
	for _, it := range need {
		if c.free(it.SKU) < it.Qty {
			return false
		}
	}
	return true
}
