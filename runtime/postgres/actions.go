package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"

	oms "github.com/omscloud/omscloud/runtime"
)

// run performs one action of the rule; emit needs no more than an event.
func (x *execution) run(ctx context.Context, a *oms.Action) error {
	switch {
	case a.SetStatus != nil:
		return x.setStatus(ctx, a.SetStatus)
	case a.Allocate != nil:
		return x.allocate(ctx, a.Allocate)
	case a.Release != nil:
		return x.release(ctx, a.Release)
	case a.Emit != nil:
		entity := "order:" + x.order.id
		if oms.EventEntity(a.Emit.Type) == oms.EntityFulfilment {
			entity = "fulfilment:" + x.ful.id
		}
		return x.event(entity, a.Emit.Type, x.because(nil))
	case a.Webhook != nil:
		return x.webhook(ctx, a.Webhook)
	}
	return fmt.Errorf("empty action")
}

func (x *execution) setStatus(ctx context.Context, a *oms.SetStatusAction) error {
	target := a.Entity
	if target == "" {
		target = oms.EventEntity(x.rule.On)
	}
	if target == oms.EntityFulfilment {
		if x.ful.status == a.Status {
			return nil
		}
		x.queue(`UPDATE fulfilments SET status = $2, updated_at = now() WHERE id = $1`, x.ful.id, a.Status)
		err := x.event("fulfilment:"+x.ful.id, oms.EventFulfilmentStatusChanged, x.because(map[string]any{
			"order": x.order.id, "location": x.ful.location, "from": x.ful.status, "to": a.Status}))
		x.ful.status = a.Status
		return err
	}
	if len(a.IfAllFulfilments) > 0 {
		// Every line must be in an active fulfilment, or a line still waiting
		// for stock would be forgotten when the others ship.
		need, _, err := x.remaining(ctx)
		if err != nil || len(need) > 0 {
			return err
		}
		var all bool
		if err := x.tx.QueryRow(ctx, `SELECT count(*) > 0 AND bool_and(status = ANY($2)) FROM fulfilments
			WHERE order_id = $1 AND stock <> 'released'`, x.order.id, a.IfAllFulfilments).Scan(&all); err != nil {
			return err
		}
		if !all {
			return nil
		}
	}
	if x.order.status == a.Status {
		return nil
	}
	// A workflow that moves the order on ends any wait for stock.
	x.queue(`UPDATE orders SET status = $2, awaiting_stock = false, updated_at = now() WHERE id = $1`, x.order.id, a.Status)
	err := x.event("order:"+x.order.id, oms.EventOrderStatusChanged, x.because(map[string]any{
		"from": x.order.status, "to": a.Status}))
	x.order.status = a.Status
	return err
}

type reservation struct {
	SKU        string
	LocationID int64
	Qty        int64
}

// release gives back the reservations of the event's fulfilment, or of every
// active fulfilment of the order on an order event.
func (x *execution) release(ctx context.Context, a *oms.ReleaseAction) error {
	var ids []string
	if x.ful != nil {
		if x.ful.stock != oms.StockReserved {
			return nil
		}
		ids = []string{x.ful.id}
	} else {
		if err := x.flush(ctx); err != nil {
			return err
		}
		rows, err := x.tx.Query(ctx, `SELECT id::text FROM fulfilments WHERE order_id = $1 AND stock = 'reserved' FOR UPDATE`, x.order.id)
		if err != nil {
			return err
		}
		if ids, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
	}
	if len(ids) == 0 {
		return nil
	}
	state, event := oms.StockReleased, oms.EventFulfilmentStockReleased
	if a.Consume {
		state, event = oms.StockConsumed, oms.EventFulfilmentStockConsumed
	}
	if err := x.flush(ctx); err != nil {
		return err
	}
	if err := releaseReservations(ctx, x.tx, ids, a.Consume); err != nil {
		return err
	}
	rows, err := x.tx.Query(ctx, `UPDATE fulfilments f SET stock = $2, updated_at = now() FROM locations l
		WHERE f.id = ANY($1) AND l.id = f.location_id RETURNING f.id::text, l.ref, f.items`, ids, state)
	if err != nil {
		return err
	}
	type released struct {
		ID, Location string
		Items        []byte
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[released])
	if err != nil {
		return err
	}
	if !a.Consume { // released fulfilments no longer count for allocatedLocation
		x.queue(`UPDATE orders o SET location_id = `+singleLocation+` WHERE o.id = $1`, x.order.id)
	}
	for _, r := range rs {
		if x.ful != nil && r.ID == x.ful.id {
			x.ful.stock = state
		}
		if err := x.event("fulfilment:"+r.ID, event, x.because(map[string]any{
			"order": x.order.id, "location": r.Location, "items": json.RawMessage(r.Items)})); err != nil {
			return err
		}
	}
	x.stockChanged = true
	return nil
}

// releaseReservations deletes the fulfilments' reservations and gives their
// quantities back (and takes them off on-hand when consumed), locking stock
// rows in (sku, location) order like every other writer.
func releaseReservations(ctx context.Context, tx pgx.Tx, fulfilments []string, consume bool) error {
	rows, err := tx.Query(ctx, `DELETE FROM reservations WHERE fulfilment_id = ANY($1)
		RETURNING sku, location_id, qty`, fulfilments)
	if err != nil {
		return err
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[reservation])
	if err != nil {
		return err
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].SKU != rs[j].SKU {
			return rs[i].SKU < rs[j].SKU
		}
		return rs[i].LocationID < rs[j].LocationID
	})
	for _, r := range rs {
		// on_hand may already be below the reservation after a stock count; it never goes negative.
		if _, err := tx.Exec(ctx, `UPDATE stock SET reserved = reserved - $3,
				on_hand = CASE WHEN $4 THEN greatest(on_hand - $3, 0) ELSE on_hand END, updated_at = now()
			WHERE sku = $1 AND location_id = $2`, r.SKU, r.LocationID, r.Qty, consume); err != nil {
			return err
		}
	}
	return nil
}

func (x *execution) webhook(ctx context.Context, a *oms.WebhookAction) error {
	if err := x.flush(ctx); err != nil {
		return err
	}
	found, err := queueDelivery(ctx, x.tx, a.Name, x.trigger.Seq)
	if err != nil || found {
		return err
	}
	// A webhook deleted after the workflow was written must not stall the order.
	return x.event(x.trigger.Entity, oms.EventWorkflowWebhookNotFound, x.because(map[string]any{"webhook": a.Name}))
}
