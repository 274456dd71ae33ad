package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"

	oms "github.com/omscloud/omscloud/runtime"
)

// maxCandidates bounds how many locations one allocation tries before giving
// up; a candidate fails only when a concurrent order took its stock meanwhile.
const maxCandidates = 5

type candidate struct {
	id       int64
	ref      string
	distance float64
}

// allocate handles order.created: it reserves every line at one location (the
// nearest holding all of them for HD, the given store for CC) and moves the
// order to ALLOCATED, or to PENDING_STOCK when no location can. The message id
// is recorded in the same transaction, so a redelivery changes nothing.
func (s *Store) allocate(ctx context.Context, e *oms.Event) (bool, error) {
	var created oms.Order
	if err := json.Unmarshal(e.Data, &created); err != nil || !uuidPattern.MatchString(created.ID) {
		return false, oms.Invalid("data", "order.created event without a valid order")
	}
	var (
		applied bool
		changed bool
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO processed_messages (id) VALUES ($1) ON CONFLICT DO NOTHING`, e.ID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil // seen before: its effect is already committed
		}
		applied = true
		var (
			status         string
			items, deliver []byte
		)
		err = tx.QueryRow(ctx, `SELECT status, items, delivery FROM orders WHERE id = $1 FOR UPDATE`, created.ID).Scan(&status, &items, &deliver)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if status != oms.StatusCreated {
			return nil // cancelled before the worker got to it
		}
		var o oms.Order
		if err := json.Unmarshal(items, &o.Items); err != nil {
			return err
		}
		if err := json.Unmarshal(deliver, &o.Delivery); err != nil {
			return err
		}
		sort.Slice(o.Items, func(i, j int) bool { return o.Items[i].SKU < o.Items[j].SKU }) // one lock order for all transactions
		cands, err := candidates(ctx, tx, &o)
		if err != nil {
			return err
		}
		for _, c := range cands {
			ok, err := reserveAt(ctx, tx, created.ID, c, o.Items)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE orders SET status = 'ALLOCATED', location_id = $2, updated_at = now() WHERE id = $1`,
				created.ID, c.id); err != nil {
				return err
			}
			changed = true
			_, err = appendEvent(ctx, tx, "order:"+created.ID, oms.EventOrderAllocated, map[string]any{
				"location": c.ref, "distanceKm": c.distance, "items": o.Items, "cause": e.ID})
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE orders SET status = 'PENDING_STOCK', updated_at = now() WHERE id = $1`, created.ID); err != nil {
			return err
		}
		_, err = appendEvent(ctx, tx, "order:"+created.ID, oms.EventOrderPendingStock, map[string]any{
			"reason": pendingReason(&o, len(cands)), "cause": e.ID})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("allocate order %s: %w", created.ID, err)
	}
	if changed {
		s.invalidate(ctx)
	}
	return applied, nil
}

func pendingReason(o *oms.Order, tried int) string {
	if o.Delivery.Type == oms.DeliveryCC {
		return fmt.Sprintf("store %s does not hold every line", o.Delivery.Location)
	}
	if tried > 0 {
		return "stock taken by concurrent orders at every candidate location"
	}
	return "no location holds every line"
}

// candidates lists the locations that hold every line right now, nearest first.
func candidates(ctx context.Context, tx pgx.Tx, o *oms.Order) ([]candidate, error) {
	skus := make([]string, len(o.Items))
	qtys := make([]int64, len(o.Items))
	for i, it := range o.Items {
		skus[i], qtys[i] = it.SKU, it.Qty
	}
	var onlyRef *string
	if o.Delivery.Type == oms.DeliveryCC {
		onlyRef = &o.Delivery.Location
	}
	rows, err := tx.Query(ctx, `SELECT l.id, l.ref, l.lat, l.lon FROM locations l
		JOIN stock s ON s.location_id = l.id
		JOIN unnest($1::text[], $2::bigint[]) AS w(sku, qty) ON w.sku = s.sku
		WHERE s.on_hand - s.reserved >= w.qty AND ($4::text IS NULL OR l.ref = $4)
		GROUP BY l.id HAVING count(*) = $3`, skus, qtys, len(skus), onlyRef)
	if err != nil {
		return nil, err
	}
	var cands []candidate
	var c candidate
	var lat, lon float64
	_, err = pgx.ForEachRow(rows, []any{&c.id, &c.ref, &lat, &lon}, func() error {
		if a := o.Delivery.Address; a != nil && a.Lat != nil && a.Lon != nil {
			c.distance = float64(int64(oms.DistanceKm(*a.Lat, *a.Lon, lat, lon)*1000)) / 1000
		}
		cands = append(cands, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].distance != cands[j].distance {
			return cands[i].distance < cands[j].distance
		}
		return cands[i].ref < cands[j].ref
	})
	if len(cands) > maxCandidates {
		cands = cands[:maxCandidates]
	}
	return cands, nil
}

// reserveAt reserves every line at one location or none: each UPDATE re-checks
// availability on the locked row, so concurrent orders can never reserve more
// than on hand; a line that no longer fits rolls back to the savepoint.
func reserveAt(ctx context.Context, tx pgx.Tx, orderID string, c candidate, items []oms.Item) (bool, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false, err
	}
	for _, it := range items {
		tag, err := sp.Exec(ctx, `UPDATE stock SET reserved = reserved + $3, updated_at = now()
			WHERE sku = $1 AND location_id = $2 AND on_hand - reserved >= $3`, it.SKU, c.id, it.Qty)
		if err != nil {
			_ = sp.Rollback(ctx)
			return false, err
		}
		if tag.RowsAffected() == 0 {
			return false, sp.Rollback(ctx)
		}
		if _, err := sp.Exec(ctx, `INSERT INTO reservations (order_id, sku, location_id, qty) VALUES ($1, $2, $3, $4)`,
			orderID, it.SKU, c.id, it.Qty); err != nil {
			_ = sp.Rollback(ctx)
			return false, err
		}
	}
	return true, sp.Commit(ctx)
}
