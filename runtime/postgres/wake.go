package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	oms "github.com/omscloud/omscloud/runtime"
)

// maxWake bounds the orders one stock event wakes; past it, an
// inventory.wake_continued event carries on after the last one woken.
var maxWake = 1000

// wakeAwaitingStock writes order.stock_arrived for the orders whose last
// allocation found no stock and whose remaining lines the stock now covers
// (summed over the locations they may use: their store for click & collect,
// never one that rejected them). Their workflows decide what to do; the
// defaults allocate again. Orders are taken in creation order from after.
func (s *Store) wakeAwaitingStock(ctx context.Context, e *oms.Event, after int64) (bool, error) {
	applied := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if applied, err = markProcessed(ctx, tx, e.ID); err != nil || !applied {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT o.id::text, o.seq FROM orders o
			WHERE o.awaiting_stock AND o.seq > $1 AND NOT EXISTS (
				SELECT 1 FROM jsonb_to_recordset(o.items) AS i(sku text, qty bigint)
				WHERE i.qty - COALESCE((SELECT sum((fi->>'qty')::bigint) FROM fulfilments f, jsonb_array_elements(f.items) fi
						WHERE f.order_id = o.id AND f.stock <> 'released' AND fi->>'sku' = i.sku), 0)
					> COALESCE((SELECT sum(s.on_hand - s.reserved) FROM stock s JOIN locations l ON l.id = s.location_id
						WHERE s.sku = i.sku AND s.on_hand > s.reserved
						AND (o.delivery->>'type' <> 'CC' OR l.ref = o.delivery->>'location')
						AND NOT EXISTS (SELECT 1 FROM fulfilments r WHERE r.order_id = o.id AND r.stock = 'released'
							AND r.location_id = s.location_id)), 0))
			ORDER BY o.seq LIMIT $2`, after, maxWake)
		if err != nil {
			return err
		}
		var (
			id   string
			seq  int64
			last int64
			n    int
			x    = &execution{tx: tx}
		)
		_, err = pgx.ForEachRow(rows, []any{&id, &seq}, func() error {
			last, n = seq, n+1
			return x.event("order:"+id, oms.EventOrderStockArrived, map[string]any{"cause": e.ID, "causeType": e.Type})
		})
		if err != nil {
			return err
		}
		if n == maxWake {
			if err := x.event(e.Entity, oms.EventWakeContinued, map[string]any{"after": last, "cause": e.ID}); err != nil {
				return err
			}
		}
		return x.flush(ctx)
	})
	if err != nil {
		return false, fmt.Errorf("wake orders awaiting stock: %w", err)
	}
	return applied, nil
}
