package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	oms "github.com/omscloud/omscloud/runtime"
)

// Allocation: the database side of the allocate action. The choice of
// locations is oms.PlanAllocation's; this file reads its candidates, reserves
// the plan atomically and records the fulfilments.

// maxAllocateAttempts bounds re-planning when concurrent orders take the
// planned stock first; each failed attempt means another order progressed.
const maxAllocateAttempts = 10

// allocate reserves the order's lines not yet in an active fulfilment: at the
// nearest location holding all of them, else (with split) across several,
// skipping locations of the order's rejected fulfilments. All or nothing.
func (x *execution) allocate(ctx context.Context, a *oms.AllocateAction) error {
	need, excluded, err := x.remaining(ctx)
	if err != nil || len(need) == 0 {
		return err
	}
	maxParts := a.FulfilmentLimit()
	tried := 0
	for attempt := 0; attempt < maxAllocateAttempts; attempt++ {
		candidates, ids, err := x.candidates(ctx, need, excluded, a.Strategy)
		if err != nil {
			return err
		}
		plan := oms.PlanAllocation(need, candidates, maxParts)
		if plan == nil {
			break
		}
		tried++
		ok, err := x.reserve(ctx, plan, ids)
		if err != nil {
			return err
		}
		if ok {
			return x.allocated(ctx, a, plan, ids)
		}
	}
	status := a.PendingStatus
	if status == "" {
		status = oms.StatusPendingStock
	}
	x.queue(`UPDATE orders o SET status = $2, awaiting_stock = true, updated_at = now(),
			location_id = `+singleLocation+` WHERE o.id = $1`, x.order.id, status)
	x.order.status = status
	reason := "no location holds every line"
	switch {
	case x.order.delivery.Type == oms.DeliveryCC:
		reason = fmt.Sprintf("store %s does not hold every line", x.order.delivery.Location)
	case tried > 0:
		reason = "stock taken by concurrent orders at every planned location"
	case a.Split:
		reason = fmt.Sprintf("the locations' stock cannot cover every line with at most %d fulfilments", maxParts)
	}
	return x.event("order:"+x.order.id, oms.EventOrderPendingStock, x.because(map[string]any{
		"reason": reason, "items": need, "excludedLocations": len(excluded)}))
}

// remaining lists the order's lines not covered by active fulfilments, in SKU
// order, and the locations of its released (rejected) fulfilments.
func (x *execution) remaining(ctx context.Context) ([]oms.Item, []int64, error) {
	covered := map[string]int64{}
	var excluded []int64
	var (
		loc   int64
		stock string
		items []byte
	)
	err := x.query(ctx, []any{&loc, &stock, &items}, func() error {
		if stock == oms.StockReleased {
			excluded = append(excluded, loc)
			return nil
		}
		var its []oms.Item
		if err := json.Unmarshal(items, &its); err != nil {
			return err
		}
		for _, it := range its {
			covered[it.SKU] += it.Qty
		}
		return nil
	}, `SELECT location_id, stock, items FROM fulfilments WHERE order_id = $1`, x.order.id)
	if err != nil {
		return nil, nil, err
	}
	var need []oms.Item
	for _, it := range x.order.items {
		if q := it.Qty - covered[it.SKU]; q > 0 {
			need = append(need, oms.Item{SKU: it.SKU, Qty: q})
		}
	}
	sort.Slice(need, func(i, j int) bool { return need[i].SKU < need[j].SKU })
	return need, excluded, nil
}

// candidates reads the stock available for the needed SKUs at every eligible
// location, and the locations' ids by ref.
func (x *execution) candidates(ctx context.Context, need []oms.Item, excluded []int64, strategy string) (
	[]oms.AllocationCandidate, map[string]int64, error) {
	skus := make([]string, len(need))
	for i, it := range need {
		skus[i] = it.SKU
	}
	var only *string
	if strategy == oms.StrategyDeliveryLocation {
		only = &x.order.delivery.Location
	}
	if excluded == nil {
		excluded = []int64{}
	}
	var (
		candidates    []oms.AllocationCandidate
		ids           = map[string]int64{}
		index         = map[int64]int{} // position in candidates by location id
		id            int64
		ref, sku      string
		lat, lon      float64
		available     int64
		addr          = x.order.delivery.Address
		haveAddress   = addr != nil && addr.Lat != nil && addr.Lon != nil
		roundedMetres = func(km float64) float64 { return math.Round(km*1000) / 1000 }
	)
	err := x.query(ctx, []any{&id, &ref, &lat, &lon, &sku, &available}, func() error {
		i, seen := index[id]
		if !seen {
			c := oms.AllocationCandidate{Location: ref, Available: map[string]int64{}}
			if haveAddress {
				c.DistanceKm = roundedMetres(oms.DistanceKm(*addr.Lat, *addr.Lon, lat, lon))
			}
			i = len(candidates)
			index[id], ids[ref] = i, id
			candidates = append(candidates, c)
		}
		candidates[i].Available[sku] = available
		return nil
	}, `SELECT l.id, l.ref, l.lat, l.lon, s.sku, s.on_hand - s.reserved
		FROM stock s JOIN locations l ON l.id = s.location_id
		WHERE s.sku = ANY($1) AND s.on_hand > s.reserved AND l.id <> ALL($2) AND ($3::text IS NULL OR l.ref = $3)`,
		skus, excluded, only)
	if err != nil {
		return nil, nil, err
	}
	return candidates, ids, nil
}

// reserve takes the plan's stock or none of it: each UPDATE re-checks
// availability on the locked row, so concurrent orders never reserve more than
// on hand; a line that no longer fits rolls back to the savepoint.
func (x *execution) reserve(ctx context.Context, plan []oms.PlannedFulfilment, ids map[string]int64) (bool, error) {
	type line struct {
		sku string
		loc int64
		qty int64
	}
	var lines []line
	for _, p := range plan {
		for _, it := range p.Items {
			lines = append(lines, line{it.SKU, ids[p.Location], it.Qty})
		}
	}
	slices.SortFunc(lines, func(a, b line) int { // one lock order for all transactions
		if c := strings.Compare(a.sku, b.sku); c != 0 {
			return c
		}
		return int(a.loc - b.loc)
	})
	// The queued writes, a savepoint and every line's UPDATE go in one round trip, run in this order. A line that
	// does not fit rolls back to the savepoint, which also releases the rows the later lines locked.
	b, writes := x.take()
	b.Queue(`SAVEPOINT reserve`)
	for _, l := range lines {
		b.Queue(`UPDATE stock SET reserved = reserved + $3, updated_at = now()
			WHERE sku = $1 AND location_id = $2 AND on_hand - reserved >= $3`, l.sku, l.loc, l.qty)
	}
	br := x.tx.SendBatch(ctx, b)
	err := execAll(br, writes+1)
	fits := true
	for range lines {
		if err != nil {
			break
		}
		var tag pgconn.CommandTag
		tag, err = br.Exec()
		fits = fits && tag.RowsAffected() == 1
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	if !fits {
		return false, x.tx.SendBatch(ctx, rollbackReserve()).Close()
	}
	x.queue(`RELEASE SAVEPOINT reserve`) // with the writes that record the plan
	return true, nil
}

// rollbackReserve undoes a reservation that did not fit and ends its savepoint (a new batch each time: sending
// one records the statements' descriptions in it).
func rollbackReserve() *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue(`ROLLBACK TO SAVEPOINT reserve`)
	b.Queue(`RELEASE SAVEPOINT reserve`)
	return b
}

// singleLocation is the order's allocatedLocation: the one location all its
// active fulfilments share, else NULL.
const singleLocation = `(SELECT CASE WHEN count(DISTINCT f.location_id) = 1 THEN min(f.location_id) END
	FROM fulfilments f WHERE f.order_id = o.id AND f.stock <> 'released')`

// allocated records the reserved plan: one fulfilment per location.
func (x *execution) allocated(ctx context.Context, a *oms.AllocateAction, plan []oms.PlannedFulfilment, ids map[string]int64) error {
	type created struct {
		ID         string     `json:"id"`
		Location   string     `json:"location"`
		DistanceKm float64    `json:"distanceKm"`
		Items      []oms.Item `json:"items"`
	}
	var out []created
	for _, p := range plan {
		id, loc := newUUID(), ids[p.Location]
		items, _ := json.Marshal(p.Items)
		x.queue(`INSERT INTO fulfilments (id, order_id, location_id, status, items) VALUES ($1, $2, $3, 'CREATED', $4)`,
			id, x.order.id, loc, items)
		skus := make([]string, len(p.Items))
		qtys := make([]int64, len(p.Items))
		for i, it := range p.Items {
			skus[i], qtys[i] = it.SKU, it.Qty
		}
		x.queue(`INSERT INTO reservations (order_id, fulfilment_id, sku, location_id, qty)
			SELECT $1, $2, r.sku, $3, r.qty FROM unnest($4::text[], $5::bigint[]) AS r(sku, qty)`,
			x.order.id, id, loc, skus, qtys)
		c := created{ID: id, Location: p.Location, DistanceKm: p.DistanceKm, Items: p.Items}
		out = append(out, c)
		x.created = append(x.created, "fulfilment:"+id)
		if err := x.event("fulfilment:"+id, oms.EventFulfilmentCreated, x.because(map[string]any{
			"order": x.order.id, "location": c.Location, "distanceKm": c.DistanceKm, "items": c.Items})); err != nil {
			return err
		}
	}
	status := a.Status
	if status == "" {
		status = oms.StatusAllocated
	}
	x.queue(`UPDATE orders o SET status = $2, awaiting_stock = false, updated_at = now(),
			location_id = `+singleLocation+` WHERE o.id = $1`, x.order.id, status)
	x.order.status = status
	x.stockChanged = true
	data := map[string]any{"fulfilments": out, "split": len(out) > 1}
	if len(out) == 1 {
		data["location"], data["distanceKm"] = out[0].Location, out[0].DistanceKm
	}
	return x.event("order:"+x.order.id, oms.EventOrderAllocated, x.because(data))
}
