package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	oms "github.com/omscloud/omscloud/runtime"
)

// ApplyEvent implements oms.EventService: the consumer side of the worker.
// Order and fulfilment events run the order's workflow; arriving or released
// stock wakes the orders waiting for it. Each event applies at most once: its
// id is recorded in the transaction that applies it.
func (s *Store) ApplyEvent(ctx context.Context, e *oms.Event) (bool, error) {
	if !oms.IsUUID(e.ID) {
		return false, oms.Invalid("id", "event id must be a UUID")
	}
	switch {
	case e.Type == oms.EventInventoryLoaded, e.Type == oms.EventFulfilmentStockReleased:
		return s.wakeAwaitingStock(ctx, e, 0)
	case e.Type == oms.EventWakeContinued:
		var d struct {
			After int64 `json:"after"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil || d.After <= 0 {
			return false, oms.Invalid("data", "%s without a valid after", e.Type)
		}
		return s.wakeAwaitingStock(ctx, e, d.After)
	case e.Type == oms.EventOrderCancelled:
		var d struct {
			Released bool `json:"releasedReservation"`
		}
		if json.Unmarshal(e.Data, &d) == nil && d.Released {
			return s.wakeAwaitingStock(ctx, e, 0)
		}
		return false, nil
	case strings.HasPrefix(e.Entity, "order:") || strings.HasPrefix(e.Entity, "fulfilment:"):
		return s.runWorkflowRetryingDeadlocks(ctx, e)
	}
	return false, nil
}

// runWorkflowRetryingDeadlocks retries a rule that lost a deadlock (a release
// and an allocation in one rule lock stock in two sorted runs), rather than
// spending one of the message's deliveries on it.
func (s *Store) runWorkflowRetryingDeadlocks(ctx context.Context, e *oms.Event) (bool, error) {
	for attempt := 1; ; attempt++ {
		applied, err := s.runWorkflow(ctx, e)
		if code := pgCode(err); attempt < 3 && (code == "40P01" || code == "40001") {
			s.log.Info("workflow rule retried", "event", e.ID, "type", e.Type, "sqlstate", code)
			continue
		}
		return applied, err
	}
}

// markProcessed records the message; false means it was applied before.
func markProcessed(ctx context.Context, tx pgx.Tx, id string) (bool, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO processed_messages (id) VALUES ($1) ON CONFLICT DO NOTHING`, id)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

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

type orderState struct {
	id       string
	status   string
	items    []oms.Item
	delivery oms.Delivery
}

type fulfilmentState struct {
	id         string
	locationID int64
	location   string
	status     string
	items      []oms.Item
	stock      string
}

// execution is one rule running in one transaction.
type execution struct {
	s            *Store
	tx           pgx.Tx
	wf           *oms.Workflow
	rule         *oms.Rule
	trigger      *oms.Event
	order        *orderState
	ful          *fulfilmentState // nil for order events
	stockChanged bool
	created      []string // entities of the fulfilments created
	batch        *pgx.Batch
}

// runWorkflow applies an order or fulfilment event: the first rule of the
// order's workflow version that listens to it and matches the entity's status
// runs its actions; every step lands in the event log.
func (s *Store) runWorkflow(ctx context.Context, e *oms.Event) (bool, error) {
	kind, id, _ := strings.Cut(e.Entity, ":")
	if !oms.IsUUID(id) {
		return false, oms.Invalid("entity", "%q: not an order or fulfilment id", e.Entity)
	}
	// Fast path outside a transaction: most engine notifications (order.allocated,
	// *.status_changed) have no rule, and need no more than this lookup. Every
	// workflow has a rule on order.created, so that one goes straight in.
	run, known := s.runs.get(e.Entity)
	if !known && e.Type != oms.EventOrderCreated {
		q := `SELECT workflow, workflow_version FROM orders WHERE id = $1`
		if kind == oms.EntityFulfilment {
			q = `SELECT o.workflow, o.workflow_version FROM fulfilments f JOIN orders o ON o.id = f.order_id WHERE f.id = $1`
		}
		err := s.pool.QueryRow(ctx, q, id).Scan(&run.name, &run.version)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, oms.Invalid("entity", "%s does not exist in account %s", e.Entity, s.account)
		}
		if err != nil {
			return false, fmt.Errorf("apply %s: %w", e.Type, err)
		}
		s.runs.put(run, e.Entity)
		known = true
	}
	var wf *oms.Workflow
	if known {
		var err error
		if wf, err = s.workflow(ctx, nil, run.name, run.version); err != nil {
			return false, fmt.Errorf("apply %s: %w", e.Type, err)
		}
		if !wf.Handles(e.Type) {
			return false, nil
		}
	}
	applied := false
	var x *execution
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		x = &execution{s: s, tx: tx, trigger: e}
		var err error
		if applied, err = x.begin(ctx, kind, id, &run); err != nil || !applied {
			return err
		}
		if wf == nil {
			if wf, err = s.workflow(ctx, tx, run.name, run.version); err != nil {
				return err
			}
			s.runs.put(run, e.Entity)
		}
		x.wf = wf
		status := x.order.status
		if x.ful != nil {
			status = x.ful.status
		}
		x.rule = wf.RuleFor(e.Type, status)
		if x.rule == nil {
			if err := x.event(e.Entity, oms.EventWorkflowEventIgnored, map[string]any{
				"workflow": wf.Name, "version": wf.Version, "event": e.ID, "type": e.Type, "status": status,
				"reason": fmt.Sprintf("no rule of %s v%d handles %s in status %s", wf.Name, wf.Version, e.Type, status)}); err != nil {
				return err
			}
			return x.flush(ctx)
		}
		if err := x.event(e.Entity, oms.EventWorkflowRuleApplied, map[string]any{
			"workflow": wf.Name, "version": wf.Version, "rule": x.rule.Name, "event": e.ID, "type": e.Type,
			"status": status}); err != nil {
			return err
		}
		for i := range x.rule.Actions {
			if err := x.run(ctx, &x.rule.Actions[i]); err != nil {
				return fmt.Errorf("rule %s action %d (%s): %w", x.rule.Name, i, x.rule.Actions[i].Kind(), err)
			}
		}
		return x.flush(ctx)
	})
	if err != nil {
		return false, fmt.Errorf("apply %s to %s: %w", e.Type, e.Entity, err)
	}
	if x != nil && x.stockChanged {
		s.invalidate(ctx)
	}
	if x != nil && len(x.created) > 0 {
		s.runs.put(run, x.created...)
	}
	return applied, nil
}

// begin records the message as processed and locks its order (then its
// fulfilment: every transaction locks in that order), in one round trip.
// false means the message was applied before.
func (x *execution) begin(ctx context.Context, kind, id string, run *workflowKey) (bool, error) {
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO processed_messages (id) VALUES ($1) ON CONFLICT DO NOTHING`, x.trigger.ID)
	orderID := `$1::uuid`
	if kind == oms.EntityFulfilment {
		orderID = `(SELECT order_id FROM fulfilments WHERE id = $1)`
	}
	b.Queue(`SELECT id::text, status, items, delivery, workflow, workflow_version FROM orders WHERE id = `+orderID+` FOR UPDATE`, id)
	if kind == oms.EntityFulfilment {
		b.Queue(`SELECT f.location_id, l.ref, f.status, f.items, f.stock FROM fulfilments f
			JOIN locations l ON l.id = f.location_id WHERE f.id = $1 FOR UPDATE OF f`, id)
	}
	br := x.tx.SendBatch(ctx, b)
	defer br.Close()
	tag, err := br.Exec()
	if err != nil {
		return false, err
	}
	if tag.RowsAffected() == 0 {
		return false, nil // seen before: its effect is already committed
	}
	o := &orderState{}
	var items, delivery []byte
	err = br.QueryRow().Scan(&o.id, &o.status, &items, &delivery, &run.name, &run.version)
	if errors.Is(err, pgx.ErrNoRows) { // gone (e.g. an older backup restored): nothing can ever apply
		return false, oms.Invalid("entity", "%s:%s does not exist", kind, id)
	}
	if err != nil {
		return false, fmt.Errorf("lock order of %s:%s: %w", kind, id, err)
	}
	if err := json.Unmarshal(items, &o.items); err != nil {
		return false, err
	}
	if err := json.Unmarshal(delivery, &o.delivery); err != nil {
		return false, err
	}
	x.order = o
	if kind == oms.EntityFulfilment {
		f := &fulfilmentState{id: id}
		if err := br.QueryRow().Scan(&f.locationID, &f.location, &f.status, &items, &f.stock); err != nil {
			return false, fmt.Errorf("lock fulfilment %s: %w", id, err)
		}
		if err := json.Unmarshal(items, &f.items); err != nil {
			return false, err
		}
		x.ful = f
	}
	return true, br.Close()
}

// queue defers a write to the next flush, so the writes between two reads
// travel to the database in one round trip, in order.
func (x *execution) queue(sql string, args ...any) {
	if x.batch == nil {
		x.batch = &pgx.Batch{}
	}
	x.batch.Queue(sql, args...)
}

// event queues an event for the log, the outbox and matching webhooks.
func (x *execution) event(entity, typ string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", typ, err)
	}
	x.queue(insertEventSQL, newUUID(), entity, typ, b, oms.MatchingEventPatterns(typ))
	return nil
}

// flush sends the queued writes; call it before every read.
func (x *execution) flush(ctx context.Context) error {
	if x.batch == nil || x.batch.Len() == 0 {
		return nil
	}
	b := x.batch
	x.batch = nil
	return x.tx.SendBatch(ctx, b).Close()
}

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

// because adds what caused a step to its event data.
func (x *execution) because(data map[string]any) map[string]any {
	if data == nil {
		data = map[string]any{}
	}
	data["cause"] = x.trigger.ID
	data["rule"] = x.rule.Name
	return data
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
	Fulfilment string
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
		RETURNING fulfilment_id::text, sku, location_id, qty`, fulfilments)
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

// allocation plans and reserves.

const (
	defaultMaxFulfilments = 3
	// maxAllocateAttempts bounds re-planning when concurrent orders take the
	// planned stock first; each failed attempt means another order progressed.
	maxAllocateAttempts = 10
)

type site struct {
	id       int64
	ref      string
	distance float64
	avail    map[string]int64
}

type part struct {
	site  *site
	items []oms.Item
}

// allocate reserves the order's lines not yet in an active fulfilment: at the
// nearest location holding all of them, else (with split) across several,
// skipping locations of the order's rejected fulfilments. All or nothing.
func (x *execution) allocate(ctx context.Context, a *oms.AllocateAction) error {
	need, excluded, err := x.remaining(ctx)
	if err != nil || len(need) == 0 {
		return err
	}
	maxParts := 1
	if a.Split {
		maxParts = orDefault(a.MaxFulfilments, defaultMaxFulfilments)
	}
	var (
		plan  []part
		tried int
	)
	for attempt := 0; attempt < maxAllocateAttempts; attempt++ {
		sites, err := x.sites(ctx, need, excluded, a.Strategy)
		if err != nil {
			return err
		}
		if plan = choose(need, sites, maxParts); plan == nil {
			break
		}
		tried++
		ok, err := x.reserve(ctx, plan)
		if err != nil {
			return err
		}
		if ok {
			return x.allocated(ctx, a, plan)
		}
		plan = nil
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

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// remaining lists the order's lines not covered by active fulfilments, in SKU
// order, and the locations of its released (rejected) fulfilments.
func (x *execution) remaining(ctx context.Context) ([]oms.Item, []int64, error) {
	if err := x.flush(ctx); err != nil {
		return nil, nil, err
	}
	rows, err := x.tx.Query(ctx, `SELECT location_id, stock, items FROM fulfilments WHERE order_id = $1`, x.order.id)
	if err != nil {
		return nil, nil, err
	}
	covered := map[string]int64{}
	var excluded []int64
	var (
		loc   int64
		stock string
		items []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&loc, &stock, &items}, func() error {
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
	})
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

// sites reads the stock available for the needed SKUs at every eligible location.
func (x *execution) sites(ctx context.Context, need []oms.Item, excluded []int64, strategy string) ([]*site, error) {
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
	if err := x.flush(ctx); err != nil {
		return nil, err
	}
	rows, err := x.tx.Query(ctx, `SELECT l.id, l.ref, l.lat, l.lon, s.sku, s.on_hand - s.reserved
		FROM stock s JOIN locations l ON l.id = s.location_id
		WHERE s.sku = ANY($1) AND s.on_hand > s.reserved AND l.id <> ALL($2) AND ($3::text IS NULL OR l.ref = $3)`,
		skus, excluded, only)
	if err != nil {
		return nil, err
	}
	byID := map[int64]*site{}
	var (
		id            int64
		ref, sku      string
		lat, lon      float64
		available     int64
		addr          = x.order.delivery.Address
		haveAddress   = addr != nil && addr.Lat != nil && addr.Lon != nil
		orderedSites  []*site
		roundedMetres = func(km float64) float64 { return math.Round(km*1000) / 1000 }
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &ref, &lat, &lon, &sku, &available}, func() error {
		st := byID[id]
		if st == nil {
			st = &site{id: id, ref: ref, avail: map[string]int64{}}
			if haveAddress {
				st.distance = roundedMetres(oms.DistanceKm(*addr.Lat, *addr.Lon, lat, lon))
			}
			byID[id] = st
			orderedSites = append(orderedSites, st)
		}
		st.avail[sku] = available
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(orderedSites, func(i, j int) bool {
		if orderedSites[i].distance != orderedSites[j].distance {
			return orderedSites[i].distance < orderedSites[j].distance
		}
		return orderedSites[i].ref < orderedSites[j].ref
	})
	return orderedSites, nil
}

// choose plans the fulfilments: the nearest site holding every line; else,
// when maxParts > 1, greedily the site covering the most remaining units
// (nearest on a tie) until every line is covered. nil when it cannot.
func choose(need []oms.Item, sites []*site, maxParts int) []part {
	for _, st := range sites { // nearest first
		if covers(st, need) {
			return []part{{site: st, items: need}}
		}
	}
	if maxParts <= 1 {
		return nil
	}
	left := map[string]int64{}
	for _, it := range need {
		left[it.SKU] = it.Qty
	}
	var plan []part
	used := map[int64]bool{}
	for len(left) > 0 && len(plan) < maxParts {
		var best *site
		var bestUnits int64
		for _, st := range sites {
			if used[st.id] {
				continue
			}
			var units int64
			for sku, q := range left {
				units += min(q, st.avail[sku])
			}
			if units > bestUnits { // sites are nearest first, so ties keep the nearer
				best, bestUnits = st, units
			}
		}
		if best == nil {
			return nil
		}
		used[best.id] = true
		p := part{site: best}
		for _, it := range need {
			if q := min(left[it.SKU], best.avail[it.SKU]); q > 0 {
				p.items = append(p.items, oms.Item{SKU: it.SKU, Qty: q})
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

func covers(st *site, need []oms.Item) bool {
	for _, it := range need {
		if st.avail[it.SKU] < it.Qty {
			return false
		}
	}
	return true
}

// reserve takes the plan's stock or none of it: each UPDATE re-checks
// availability on the locked row, so concurrent orders never reserve more than
// on hand; a line that no longer fits rolls back to the savepoint.
func (x *execution) reserve(ctx context.Context, plan []part) (bool, error) {
	type line struct {
		sku string
		loc int64
		qty int64
	}
	var lines []line
	for _, p := range plan {
		for _, it := range p.items {
			lines = append(lines, line{it.SKU, p.site.id, it.Qty})
		}
	}
	slices.SortFunc(lines, func(a, b line) int { // one lock order for all transactions
		if c := strings.Compare(a.sku, b.sku); c != 0 {
			return c
		}
		return int(a.loc - b.loc)
	})
	if err := x.flush(ctx); err != nil {
		return false, err
	}
	sp, err := x.tx.Begin(ctx)
	if err != nil {
		return false, err
	}
	for _, l := range lines {
		tag, err := sp.Exec(ctx, `UPDATE stock SET reserved = reserved + $3, updated_at = now()
			WHERE sku = $1 AND location_id = $2 AND on_hand - reserved >= $3`, l.sku, l.loc, l.qty)
		if err != nil {
			_ = sp.Rollback(ctx)
			return false, err
		}
		if tag.RowsAffected() == 0 {
			return false, sp.Rollback(ctx)
		}
	}
	return true, sp.Commit(ctx)
}

// singleLocation is the order's allocatedLocation: the one location all its
// active fulfilments share, else NULL.
const singleLocation = `(SELECT CASE WHEN count(DISTINCT f.location_id) = 1 THEN min(f.location_id) END
	FROM fulfilments f WHERE f.order_id = o.id AND f.stock <> 'released')`

// allocated records the reserved plan: one fulfilment per location.
func (x *execution) allocated(ctx context.Context, a *oms.AllocateAction, plan []part) error {
	type created struct {
		ID         string     `json:"id"`
		Location   string     `json:"location"`
		DistanceKm float64    `json:"distanceKm"`
		Items      []oms.Item `json:"items"`
	}
	var out []created
	for _, p := range plan {
		id := newUUID()
		items, _ := json.Marshal(p.items)
		x.queue(`INSERT INTO fulfilments (id, order_id, location_id, status, items) VALUES ($1, $2, $3, 'CREATED', $4)`,
			id, x.order.id, p.site.id, items)
		skus := make([]string, len(p.items))
		qtys := make([]int64, len(p.items))
		for i, it := range p.items {
			skus[i], qtys[i] = it.SKU, it.Qty
		}
		x.queue(`INSERT INTO reservations (order_id, fulfilment_id, sku, location_id, qty)
			SELECT $1, $2, r.sku, $3, r.qty FROM unnest($4::text[], $5::bigint[]) AS r(sku, qty)`,
			x.order.id, id, p.site.id, skus, qtys)
		c := created{ID: id, Location: p.site.ref, DistanceKm: p.site.distance, Items: p.items}
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
