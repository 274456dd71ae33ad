package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	oms "github.com/omscloud/omscloud/runtime"
)

// The workflow engine's run loop: an event finds the first matching rule of its
// order's workflow, whose actions (actions.go, allocation.go) run in one
// transaction with every step in the event log; stock events wake the orders
// waiting for stock (wake.go).

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

// orderState is what the actions read and change of the locked order.
type orderState struct {
	id       string
	status   string
	items    []oms.Item
	delivery oms.Delivery
}

// fulfilmentState is the same of the event's fulfilment.
type fulfilmentState struct {
	id       string
	location string
	status   string
	stock    string
}

// execution is one rule running in one transaction.
type execution struct {
	tx           pgx.Tx
	rule         *oms.Rule
	trigger      *oms.Event
	order        *orderState
	ful          *fulfilmentState // nil for order events
	stockChanged bool
	created      []string // entities of the fulfilments created
	batch        *pgx.Batch
	events       []pendingEvent
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
		x = &execution{tx: tx, trigger: e}
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
		b.Queue(`SELECT l.ref, f.status, f.stock FROM fulfilments f
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
		if err := br.QueryRow().Scan(&f.location, &f.status, &f.stock); err != nil {
			return false, fmt.Errorf("lock fulfilment %s: %w", id, err)
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

// event records an event for the log, the outbox and matching webhooks. Nothing an execution reads depends on its
// own events, so they wait for the next flush and go in one statement (the rule that ran, the fulfilment and the
// outcome of an allocation; every order a stock event wakes), in the order recorded.
func (x *execution) event(entity, typ string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", typ, err)
	}
	x.events = append(x.events, pendingEvent{id: newUUID(), entity: entity, typ: typ, data: string(b)})
	return nil
}

// pendingEvent is an event recorded and not yet written.
type pendingEvent struct{ id, entity, typ, data string }

// insertEventsSQL is insertEventSQL for several events: $1-$4 their ids, entities, types and data (JSON text), in
// the order their seqs follow; $5 and $6 pair each event's number (from 1) with a pattern that matches its type.
const insertEventsSQL = `WITH v AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
		WITH ORDINALITY AS v(id, entity, type, data, n)),
	e AS (INSERT INTO events (id, entity, type, data) SELECT id, entity, type, data::jsonb FROM v ORDER BY n
		RETURNING id, seq, created_at),
	d AS (INSERT INTO webhook_deliveries (webhook_id, event_seq)
		SELECT w.id, e.seq FROM e JOIN v USING (id) JOIN webhooks w ON w.enabled
			AND w.events && ARRAY(SELECT p.pattern FROM unnest($5::int[], $6::text[]) AS p(n, pattern) WHERE p.n = v.n))
	INSERT INTO outbox (event_seq, created_at) SELECT seq, created_at FROM e`

// queueEvents queues the recorded events' write.
func (x *execution) queueEvents() {
	switch len(x.events) {
	case 0:
		return
	case 1:
		e := x.events[0]
		x.queue(insertEventSQL, e.id, e.entity, e.typ, []byte(e.data), oms.MatchingEventPatterns(e.typ))
	default:
		n := len(x.events)
		ids, entities, types, data := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		var nums []int32
		var patterns []string
		for i, e := range x.events {
			ids[i], entities[i], types[i], data[i] = e.id, e.entity, e.typ, e.data
			for _, p := range oms.MatchingEventPatterns(e.typ) {
				nums, patterns = append(nums, int32(i+1)), append(patterns, p)
			}
		}
		x.queue(insertEventsSQL, ids, entities, types, data, nums, patterns)
	}
	x.events = nil
}

// flush sends the queued writes and the recorded events; call it before every read (or read with query) that
// needs them, and last.
func (x *execution) flush(ctx context.Context) error {
	x.queueEvents()
	if x.batch == nil || x.batch.Len() == 0 {
		return nil
	}
	b := x.batch
	x.batch = nil
	return x.tx.SendBatch(ctx, b).Close()
}

// query sends the queued writes and then sql in one round trip, and reads sql's rows with each (pgx.ForEachRow's
// scans). The statements run in the order queued, so a read sees the writes before it; recorded events wait.
func (x *execution) query(ctx context.Context, scans []any, each func() error, sql string, args ...any) error {
	b, writes := x.take()
	b.Queue(sql, args...)
	br := x.tx.SendBatch(ctx, b)
	err := execAll(br, writes)
	if err == nil {
		var rows pgx.Rows
		if rows, err = br.Query(); err == nil {
			_, err = pgx.ForEachRow(rows, scans, each)
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// take hands over the queued writes as the start of a batch that goes next, and how many they are.
func (x *execution) take() (*pgx.Batch, int) {
	b := x.batch
	x.batch = nil
	if b == nil {
		b = &pgx.Batch{}
	}
	return b, b.Len()
}

// execAll reads the results of the next n statements of a batch, stopping at the first error.
func execAll(br pgx.BatchResults, n int) error {
	for range n {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	return nil
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
