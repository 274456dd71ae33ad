package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/postgres"
)

const whSecret = "0123456789abcdef-secret"

func putHook(t *testing.T, s *postgres.Store, name string, enabled bool, events ...string) {
	t.Helper()
	_, _, err := s.PutWebhook(context.Background(), name, &oms.WebhookInput{URL: "https://hooks.example.com/" + name,
		Events: events, Secret: whSecret, Enabled: &enabled})
	require.NoError(t, err)
}

func hookDeliveries(t *testing.T, s *postgres.Store, name string, f oms.DeliveryFilter) []*oms.WebhookDelivery {
	t.Helper()
	ds, err := s.WebhookDeliveries(context.Background(), name, f)
	require.NoError(t, err)
	return ds
}

// appendIn writes an event in its own transaction, committed unless rollback.
func appendIn(t *testing.T, s *postgres.Store, typ string, rollback bool) *oms.Event {
	t.Helper()
	var e *oms.Event
	errRollback := errors.New("rollback")
	err := pgx.BeginFunc(context.Background(), s.Pool(), func(tx pgx.Tx) error {
		var err error
		e, err = postgres.AppendEvent(context.Background(), tx, "order:x", typ, map[string]string{"k": "v"})
		if err == nil && rollback {
			return errRollback
		}
		return err
	})
	if rollback {
		require.ErrorIs(t, err, errRollback)
	} else {
		require.NoError(t, err)
	}
	return e
}

func TestEventsQueueDeliveriesForMatchingEnabledWebhooksInTheirTransaction(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	other := newAccount(t, reg, "other")
	ctx := context.Background()
	putHook(t, s, "exact", true, "order.allocated")
	putHook(t, s, "prefix", true, "order.*")
	putHook(t, s, "all", true, "*")
	putHook(t, s, "inventory", true, "inventory.*", "location.upserted")
	putHook(t, s, "off", false, "*")
	putHook(t, other, "all", true, "*")

	allocated := appendIn(t, s, oms.EventOrderAllocated, false)
	appendIn(t, s, oms.EventOrderCreated, false)
	appendIn(t, s, oms.EventInventoryLoaded, false)
	appendIn(t, s, oms.EventOrderCancelled, true) // rolled back: its deliveries go with it

	want := map[string][]string{
		"exact":     {oms.EventOrderAllocated},
		"prefix":    {oms.EventOrderCreated, oms.EventOrderAllocated},
		"all":       {oms.EventInventoryLoaded, oms.EventOrderCreated, oms.EventOrderAllocated},
		"inventory": {oms.EventInventoryLoaded},
		"off":       nil,
	}
	for name, types := range want {
		var got []string
		for _, d := range hookDeliveries(t, s, name, oms.DeliveryFilter{}) {
			got = append(got, d.EventType)
			assert.Equal(t, oms.DeliveryPending, d.Status)
			assert.NotNil(t, d.NextAttemptAt)
			assert.Empty(t, d.Attempts)
		}
		assert.Equal(t, types, got, "%s: newest first", name)
	}
	exact := hookDeliveries(t, s, "exact", oms.DeliveryFilter{})[0]
	assert.Equal(t, allocated.Seq, exact.EventSeq)
	assert.Equal(t, allocated.ID, exact.EventID)
	assert.Empty(t, hookDeliveries(t, other, "all", oms.DeliveryFilter{}), "another account's events never queue here")

	// The write-only secret is never read back.
	w, err := s.Webhook(ctx, "exact")
	require.NoError(t, err)
	assert.Empty(t, w.Secret)
	assert.Equal(t, []string{"order.allocated"}, w.Events)
	ws, err := s.Webhooks(ctx)
	require.NoError(t, err)
	require.Len(t, ws, 5)
	for _, w := range ws {
		assert.Empty(t, w.Secret)
	}

	// Deleting a webhook drops its queue.
	require.NoError(t, s.DeleteWebhook(ctx, "all"))
	var left int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries`).Scan(&left))
	assert.Equal(t, 4, left, "exact 1 + prefix 2 + inventory 1")
	_, err = s.WebhookDeliveries(ctx, "all", oms.DeliveryFilter{})
	assert.Equal(t, oms.ENOTFOUND, oms.ErrorCode(err))
	assert.Equal(t, oms.ENOTFOUND, oms.ErrorCode(s.DeleteWebhook(ctx, "all")))
}

func TestQueueDeliveryIgnoresTheEventsFilter(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	ctx := context.Background()
	putHook(t, s, "erp", true, "fulfilment.shipped")
	putHook(t, s, "paused", false, "*")
	e := appendIn(t, s, oms.EventOrderCreated, false)
	queue := func(name string) bool {
		var found bool
		require.NoError(t, pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
			var err error
			found, err = postgres.QueueDelivery(ctx, tx, name, e.Seq)
			return err
		}))
		return found
	}
	assert.Empty(t, hookDeliveries(t, s, "erp", oms.DeliveryFilter{}), "the filter does not match order.created")
	assert.True(t, queue("erp"))
	ds := hookDeliveries(t, s, "erp", oms.DeliveryFilter{})
	require.Len(t, ds, 1)
	assert.Equal(t, e.Seq, ds[0].EventSeq)
	assert.False(t, queue("missing"))
	assert.True(t, queue("paused"), "a disabled webhook exists")
	assert.Empty(t, hookDeliveries(t, s, "paused", oms.DeliveryFilter{}), "but gets nothing")
}

func TestClaimLeasesRecordLogsAndRedeliverStartsANewRound(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	ctx := context.Background()
	putHook(t, s, "erp", true, "*")
	appendIn(t, s, oms.EventOrderCreated, false)
	appendIn(t, s, oms.EventOrderAllocated, false)

	jobs, err := s.ClaimWebhookJobs(ctx, 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, jobs, 2)
	j := jobs[0]
	assert.Equal(t, "https://hooks.example.com/erp", j.URL)
	assert.Equal(t, whSecret, j.Secret, "the dispatcher gets the secret to sign with")
	assert.Equal(t, "acme", j.Event.Account)
	assert.Equal(t, 1, j.Attempt)
	assert.Equal(t, 1, j.N)
	again, err := s.ClaimWebhookJobs(ctx, 10, time.Minute)
	require.NoError(t, err)
	assert.Empty(t, again, "leased deliveries are not claimed twice")

	at := time.Now()
	require.NoError(t, s.RecordWebhookResult(ctx, jobs[0], &oms.WebhookResult{Status: oms.DeliveryDead,
		Attempt: oms.WebhookAttempt{N: 1, At: at, DurationMS: 12, StatusCode: 500}}))
	require.NoError(t, s.RecordWebhookResult(ctx, jobs[1], &oms.WebhookResult{Status: oms.DeliveryDelivered,
		Attempt: oms.WebhookAttempt{N: 1, At: at, DurationMS: 7, StatusCode: 200}}))
	// A result under a lost lease is logged but changes nothing.
	stale := *jobs[1]
	stale.Claim, stale.N = "00000000-0000-4000-8000-000000000000", 2
	require.NoError(t, s.RecordWebhookResult(ctx, &stale, &oms.WebhookResult{Status: oms.DeliveryDead,
		Attempt: oms.WebhookAttempt{N: 2, At: at, DurationMS: 1, Error: "late"}}))

	dead := hookDeliveries(t, s, "erp", oms.DeliveryFilter{Status: oms.DeliveryDead})
	require.Len(t, dead, 1)
	assert.Equal(t, jobs[0].DeliveryID, dead[0].ID)
	assert.Nil(t, dead[0].NextAttemptAt)
	require.Len(t, dead[0].Attempts, 1)
	assert.Equal(t, 500, dead[0].Attempts[0].StatusCode)
	assert.EqualValues(t, 12, dead[0].Attempts[0].DurationMS)
	delivered := hookDeliveries(t, s, "erp", oms.DeliveryFilter{Status: oms.DeliveryDelivered})
	require.Len(t, delivered, 1, "the stale result did not dead-letter it")
	assert.Len(t, delivered[0].Attempts, 2)
	assert.Len(t, hookDeliveries(t, s, "erp", oms.DeliveryFilter{Limit: 1}), 1)

	_, err = s.Redeliver(ctx, "erp", "0b0e3a4c-5f1e-4a57-9c3e-6a1d2f3b4c5d")
	assert.Equal(t, oms.ENOTFOUND, oms.ErrorCode(err))
	_, err = s.Redeliver(ctx, "nope", dead[0].ID)
	assert.Equal(t, oms.ENOTFOUND, oms.ErrorCode(err))
	d, err := s.Redeliver(ctx, "erp", dead[0].ID)
	require.NoError(t, err)
	assert.Equal(t, oms.DeliveryPending, d.Status)
	assert.Len(t, d.Attempts, 1, "the log keeps earlier attempts")
	_, err = s.Redeliver(ctx, "erp", dead[0].ID)
	assert.Equal(t, oms.ECONFLICT, oms.ErrorCode(err), "already pending")

	jobs, err = s.ClaimWebhookJobs(ctx, 10, time.Minute)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	assert.Equal(t, 1, jobs[0].Attempt, "a new round: backoff and bound start over")
	assert.Equal(t, 2, jobs[0].N, "numbered after the earlier attempts")

	// Pruning removes delivered deliveries older than the cutoff, with their attempts, and nothing else.
	n, err := s.PruneWebhookDeliveries(ctx, time.Now().Add(time.Minute), 100)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	var attempts int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM webhook_attempts`).Scan(&attempts))
	assert.Equal(t, 1, attempts, "only the redelivered one's attempt is left")
}

// BenchmarkAppendEventZeroWebhooks compares, in one run on one database, the
// event write of an account without webhooks with the statement it replaced
// (event + outbox only): queueing deliveries must cost nothing measurable.
func BenchmarkAppendEventZeroWebhooks(b *testing.B) {
	reg, _ := omstest.Registry(b, nil)
	ctx := context.Background()
	s := newAccount(b, reg, "bench")
	data := []byte(`{"id":"x","status":"CREATED"}`)
	before := func(tx pgx.Tx, i int) error {
		var seq int64
		var at time.Time
		return tx.QueryRow(ctx, `WITH e AS (INSERT INTO events (id, entity, type, data) VALUES (gen_random_uuid(), $1, $2, $3)
				RETURNING seq, created_at)
			INSERT INTO outbox (event_seq, created_at) SELECT seq, created_at FROM e RETURNING event_seq, created_at`,
			fmt.Sprintf("order:%d", i), oms.EventOrderCreated, data).Scan(&seq, &at)
	}
	after := func(tx pgx.Tx, i int) error {
		_, err := postgres.AppendEvent(ctx, tx, fmt.Sprintf("order:%d", i), oms.EventOrderCreated, map[string]string{"id": "x", "status": "CREATED"})
		return err
	}
	for _, v := range []struct {
		name string
		fn   func(pgx.Tx, int) error
	}{{"outbox-only-baseline", before}, {"with-webhook-queueing", after}, {"outbox-only-baseline-again", before}} {
		b.Run(v.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if err := pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error { return v.fn(tx, i) }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestAWorkflowWritesItsEventsInOrderWithTheirOutboxRowsAndDeliveries: the events one rule records (here an
// allocation's: the rule that ran, the fulfilment, the outcome) are written together in one statement; each keeps
// its place in the log, its outbox row and exactly the deliveries its own type matches.
func TestAWorkflowWritesItsEventsInOrderWithTheirOutboxRowsAndDeliveries(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	ctx := context.Background()
	putLocation(t, s, "wh-1", oms.LocationWarehouse, 52.0, 4.0)
	load(t, s, "sku,location,on_hand\nA,wh-1,5\n")
	putHook(t, s, "exact", true, "order.allocated")
	putHook(t, s, "fulfilments", true, "fulfilment.*")
	putHook(t, s, "all", true, "*")
	var relayed []*oms.Event
	relay := func() {
		relayed = nil
		_, err := s.RelayOutbox(ctx, 100, func(_ context.Context, es []*oms.Event) error { relayed = es; return nil })
		require.NoError(t, err)
	}
	relay() // the location's and the inventory's events
	o, _, err := s.CreateOrder(ctx, "k", hd("o", 52, 4, oms.Item{SKU: "A", Qty: 1}))
	require.NoError(t, err)
	created := createdEvent(t, s, "acme", o.ID)
	relay()
	require.Len(t, relayed, 1)
	ok, err := s.ApplyEvent(ctx, created)
	require.NoError(t, err)
	require.True(t, ok)

	evs, err := s.Events(ctx, oms.EventFilter{After: created.Seq, Limit: 10})
	require.NoError(t, err)
	var types []string
	for i, e := range evs {
		types = append(types, e.Type)
		if i > 0 {
			assert.Greater(t, e.Seq, evs[i-1].Seq)
		}
	}
	require.Equal(t, []string{oms.EventWorkflowRuleApplied, oms.EventFulfilmentCreated, oms.EventOrderAllocated}, types)
	relay()
	assert.Equal(t, evs, relayed, "every event has its outbox row, with its own data")

	bySeq := map[int64]string{}
	for _, e := range append(evs, created) {
		bySeq[e.Seq] = e.Type
	}
	for hook, want := range map[string][]string{
		"exact":       {oms.EventOrderAllocated},
		"fulfilments": {oms.EventFulfilmentCreated},
		"all":         {oms.EventOrderAllocated, oms.EventFulfilmentCreated, oms.EventWorkflowRuleApplied, oms.EventOrderCreated},
	} {
		var got []string
		for _, d := range hookDeliveries(t, s, hook, oms.DeliveryFilter{}) {
			assert.Equal(t, bySeq[d.EventSeq], d.EventType, "%s: the delivery names its own event", hook)
			got = append(got, d.EventType)
		}
		assert.Equal(t, want, got, "%s: newest first", hook)
	}
}
