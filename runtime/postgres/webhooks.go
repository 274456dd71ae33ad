package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	oms "github.com/omscloud/omscloud/runtime"
)

// Deliveries are queued by appendEvent (events.go) in the transaction that
// writes the event; this file manages webhooks and the delivery queue.

const webhookColumns = `name, url, events, enabled, created_at, updated_at`

func scanWebhook(row pgx.CollectableRow) (*oms.Webhook, error) {
	var w oms.Webhook
	return &w, row.Scan(&w.Name, &w.URL, &w.Events, &w.Enabled, &w.CreatedAt, &w.UpdatedAt)
}

func webhookNotFound(name string) error {
	return oms.Errorf(oms.ENOTFOUND, "name", "webhook %q not found", name)
}

// PutWebhook implements oms.WebhookService.
func (s *Store) PutWebhook(ctx context.Context, name string, in *oms.WebhookInput) (*oms.Webhook, bool, error) {
	if err := oms.ValidateWebhookName(name); err != nil {
		return nil, false, err
	}
	if err := in.Validate(); err != nil {
		return nil, false, err
	}
	enabled := in.Enabled == nil || *in.Enabled
	// xmax = 0 only for a freshly inserted row: it tells created from replaced.
	rows, err := s.pool.Query(ctx, `INSERT INTO webhooks (name, url, events, secret, enabled) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (name) DO UPDATE SET url = EXCLUDED.url, events = EXCLUDED.events, secret = EXCLUDED.secret,
			enabled = EXCLUDED.enabled, updated_at = now()
		RETURNING `+webhookColumns+`, xmax = 0`, name, in.URL, in.Events, in.Secret, enabled)
	if err != nil {
		return nil, false, fmt.Errorf("put webhook %s: %w", name, err)
	}
	var created bool
	w, err := pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (*oms.Webhook, error) {
		var w oms.Webhook
		return &w, row.Scan(&w.Name, &w.URL, &w.Events, &w.Enabled, &w.CreatedAt, &w.UpdatedAt, &created)
	})
	if err != nil {
		return nil, false, fmt.Errorf("put webhook %s: %w", name, err)
	}
	s.log.Info("webhook saved", "webhook", name, "created", created, "enabled", enabled) // never the secret
	return w, created, nil
}

// Webhook implements oms.WebhookService.
func (s *Store) Webhook(ctx context.Context, name string) (*oms.Webhook, error) {
	if err := oms.ValidateWebhookName(name); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE name = $1`, name)
	if err != nil {
		return nil, fmt.Errorf("read webhook %s: %w", name, err)
	}
	w, err := pgx.CollectExactlyOneRow(rows, scanWebhook)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, webhookNotFound(name)
	}
	if err != nil {
		return nil, fmt.Errorf("read webhook %s: %w", name, err)
	}
	return w, nil
}

// Webhooks implements oms.WebhookService.
func (s *Store) Webhooks(ctx context.Context) ([]*oms.Webhook, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+webhookColumns+` FROM webhooks ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	ws, err := pgx.CollectRows(rows, scanWebhook)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return ws, nil
}

// DeleteWebhook implements oms.WebhookService. Its deliveries and their
// attempts go with it (ON DELETE CASCADE), so none is attempted afterwards.
func (s *Store) DeleteWebhook(ctx context.Context, name string) error {
	if err := oms.ValidateWebhookName(name); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhooks WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("delete webhook %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return webhookNotFound(name)
	}
	s.log.Info("webhook deleted", "webhook", name)
	return nil
}

const deliveryColumns = `d.id::text, w.name, e.id::text, e.type, d.event_seq, d.status,
	CASE WHEN d.status = 'pending' THEN d.next_attempt_at END, d.created_at, d.updated_at`

func scanDelivery(row pgx.CollectableRow) (*oms.WebhookDelivery, error) {
	d := &oms.WebhookDelivery{Attempts: []oms.WebhookAttempt{}}
	return d, row.Scan(&d.ID, &d.Webhook, &d.EventID, &d.EventType, &d.EventSeq, &d.Status, &d.NextAttemptAt,
		&d.CreatedAt, &d.UpdatedAt)
}

// WebhookDeliveries implements oms.WebhookService.
func (s *Store) WebhookDeliveries(ctx context.Context, name string, f oms.DeliveryFilter) ([]*oms.WebhookDelivery, error) {
	if err := oms.ValidateWebhookName(name); err != nil {
		return nil, err
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if _, err := s.Webhook(ctx, name); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+`
		FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN events e ON e.seq = d.event_seq
		WHERE w.name = $1 AND ($2 = '' OR d.status = $2)
		ORDER BY d.created_at DESC, d.event_seq DESC LIMIT $3`, name, f.Status, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("read deliveries of %s: %w", name, err)
	}
	ds, err := pgx.CollectRows(rows, scanDelivery)
	if err != nil {
		return nil, fmt.Errorf("read deliveries of %s: %w", name, err)
	}
	if err := s.attachAttempts(ctx, ds); err != nil {
		return nil, err
	}
	return ds, nil
}

// attachAttempts fills in the attempts of ds in one query.
func (s *Store) attachAttempts(ctx context.Context, ds []*oms.WebhookDelivery) error {
	if len(ds) == 0 {
		return nil
	}
	byID := make(map[string]*oms.WebhookDelivery, len(ds))
	ids := make([]string, len(ds))
	for i, d := range ds {
		byID[d.ID], ids[i] = d, d.ID
	}
	rows, err := s.pool.Query(ctx, `SELECT delivery_id::text, n, attempted_at, duration_ms, COALESCE(status_code, 0),
			COALESCE(error, ''), next_attempt_at
		FROM webhook_attempts WHERE delivery_id = ANY($1::uuid[]) ORDER BY delivery_id, n`, ids)
	if err != nil {
		return fmt.Errorf("read attempts: %w", err)
	}
	var id string
	var a oms.WebhookAttempt
	_, err = pgx.ForEachRow(rows, []any{&id, &a.N, &a.At, &a.DurationMS, &a.StatusCode, &a.Error, &a.NextAttemptAt}, func() error {
		byID[id].Attempts = append(byID[id].Attempts, a)
		a.NextAttemptAt = nil // the next row scans into a fresh pointer
		return nil
	})
	if err != nil {
		return fmt.Errorf("read attempts: %w", err)
	}
	return nil
}

// Redeliver implements oms.WebhookService: the delivery keeps its id (the
// receiver's idempotency key) and gets a new round of attempts.
func (s *Store) Redeliver(ctx context.Context, name, id string) (*oms.WebhookDelivery, error) {
	if err := oms.ValidateWebhookName(name); err != nil {
		return nil, err
	}
	if err := oms.ValidateDeliveryID(id); err != nil {
		return nil, err
	}
	var status string
	err := s.pool.QueryRow(ctx, `WITH cur AS (
			SELECT d.id, d.status FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
			WHERE w.name = $1 AND d.id = $2 FOR UPDATE OF d),
		upd AS (
			UPDATE webhook_deliveries d SET status = 'pending', round_start = d.attempts, next_attempt_at = now(),
				claim = NULL, updated_at = now()
			FROM cur WHERE d.id = cur.id AND cur.status <> 'pending')
		SELECT status FROM cur`, name, id).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, oms.Errorf(oms.ENOTFOUND, "id", "webhook %q has no delivery %s", name, id)
	}
	if err != nil {
		return nil, fmt.Errorf("redeliver %s: %w", id, err)
	}
	if status == oms.DeliveryPending {
		return nil, oms.Errorf(oms.ECONFLICT, "id", "delivery %s is still pending: it will be attempted again without a redeliver", id)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+`
		FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN events e ON e.seq = d.event_seq
		WHERE d.id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("redeliver %s: %w", id, err)
	}
	d, err := pgx.CollectExactlyOneRow(rows, scanDelivery)
	if err != nil {
		return nil, fmt.Errorf("redeliver %s: %w", id, err)
	}
	if err := s.attachAttempts(ctx, []*oms.WebhookDelivery{d}); err != nil {
		return nil, err
	}
	s.log.Info("webhook delivery re-queued", "webhook", name, "delivery", id, "was", status)
	return d, nil
}

// ClaimWebhookJobs implements oms.WebhookService. The lease moves
// next_attempt_at past the attempt's end, so another dispatcher sees the row
// as not due until the lease expires (a crashed worker's attempt is retried).
func (s *Store) ClaimWebhookJobs(ctx context.Context, limit int, lease time.Duration) ([]*oms.WebhookJob, error) {
	rows, err := s.pool.Query(ctx, `WITH due AS (
			SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
			WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND w.enabled
			ORDER BY d.next_attempt_at LIMIT $1 FOR UPDATE OF d SKIP LOCKED)
		UPDATE webhook_deliveries d SET attempts = d.attempts + 1, claim = gen_random_uuid(),
			next_attempt_at = now() + $2 * interval '1 millisecond', updated_at = now()
		FROM due, webhooks w, events e WHERE d.id = due.id AND w.id = d.webhook_id AND e.seq = d.event_seq
		RETURNING d.id::text, d.claim::text, d.attempts - d.round_start, d.attempts, w.name, w.url, w.secret,
			e.seq, e.id::text, e.entity, e.type, e.data, e.created_at`, limit, lease.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("claim deliveries of %s: %w", s.account, err)
	}
	jobs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*oms.WebhookJob, error) {
		j := &oms.WebhookJob{Event: &oms.Event{Account: s.account}}
		var data []byte
		err := row.Scan(&j.DeliveryID, &j.Claim, &j.Attempt, &j.N, &j.Webhook, &j.URL, &j.Secret,
			&j.Event.Seq, &j.Event.ID, &j.Event.Entity, &j.Event.Type, &data, &j.Event.At)
		j.Event.Data = data
		return j, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries of %s: %w", s.account, err)
	}
	return jobs, nil
}

// RecordWebhookResult implements oms.WebhookService. The attempt is logged
// even when the lease was lost (it did happen); the status changes only under
// the job's own lease, so a late result cannot overwrite a newer attempt's.
func (s *Store) RecordWebhookResult(ctx context.Context, job *oms.WebhookJob, r *oms.WebhookResult) error {
	a := r.Attempt
	var errText *string // NULL, not '', when the receiver answered
	if a.Error != "" {
		errText = &a.Error
	}
	var code *int
	if a.StatusCode != 0 {
		code = &a.StatusCode
	}
	_, err := s.pool.Exec(ctx, `WITH d AS (
			UPDATE webhook_deliveries SET status = $3, claim = NULL, updated_at = now(),
				next_attempt_at = CASE WHEN $3 = 'pending' THEN now() + $4 * interval '1 millisecond' ELSE next_attempt_at END
			WHERE id = $1 AND claim = $2 RETURNING next_attempt_at)
		INSERT INTO webhook_attempts (delivery_id, n, attempted_at, duration_ms, status_code, error, next_attempt_at)
		SELECT $1, $5, $6, $7, $8, $9, (SELECT next_attempt_at FROM d WHERE $3 = 'pending')
		WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = $1)
		ON CONFLICT (delivery_id, n) DO NOTHING`,
		job.DeliveryID, job.Claim, r.Status, r.RetryIn.Milliseconds(), job.N, a.At, a.DurationMS, code, errText)
	if pgCode(err) == "23503" { // the webhook was deleted meanwhile: nothing left to record
		return nil
	}
	if err != nil {
		return fmt.Errorf("record attempt of delivery %s: %w", job.DeliveryID, err)
	}
	return nil
}

// PruneWebhookDeliveries implements oms.WebhookService.
func (s *Store) PruneWebhookDeliveries(ctx context.Context, before time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhook_deliveries WHERE id IN (
		SELECT id FROM webhook_deliveries WHERE status = 'delivered' AND updated_at < $1 LIMIT $2)`, before, limit)
	if err != nil {
		return 0, fmt.Errorf("prune deliveries of %s: %w", s.account, err)
	}
	return int(tag.RowsAffected()), nil
}

// queueDelivery queues one delivery of the event eventSeq to the webhook
// named webhook, whatever its events filter, in the caller's transaction: a
// workflow rule's "call webhook" action. found is false if no such webhook
// exists; a disabled webhook exists but gets nothing queued.
func queueDelivery(ctx context.Context, tx pgx.Tx, webhook string, eventSeq int64) (found bool, err error) {
	err = tx.QueryRow(ctx, `WITH w AS (SELECT id, enabled FROM webhooks WHERE name = $1),
			q AS (INSERT INTO webhook_deliveries (webhook_id, event_seq) SELECT id, $2 FROM w WHERE enabled
				ON CONFLICT (event_seq, webhook_id) DO NOTHING)
		SELECT EXISTS (SELECT 1 FROM w)`, webhook, eventSeq).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("queue delivery of event %d to webhook %s: %w", eventSeq, webhook, err)
	}
	return found, nil
}
