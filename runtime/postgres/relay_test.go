package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/postgres"
)

// TestRelayReadsOnlyItsBatch: a relay batch reads the outbox's oldest rows and their events, however long the
// event log behind them. The outbox only ever holds the tail of the log; joined the other way, the batch walked the
// events index from the first event ever written (76,200 rows read for a batch of 200 after 80,000 events: 10 ms
// here, 28 ms a batch in the bench, and growing with the log forever).
func TestRelayReadsOnlyItsBatch(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "relay")
	ctx := context.Background()
	exec := func(sql string) {
		_, err := s.Pool().Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	// 20,000 events through the outbox, the relay keeping up in batches, as in production; ANALYZE sees the
	// log as autovacuum would.
	for range 100 {
		exec(`WITH e AS (INSERT INTO events (id, entity, type, data) SELECT gen_random_uuid(), 'order:x', 'order.created', '{}'
			FROM generate_series(1, 200) RETURNING seq, created_at) INSERT INTO outbox (event_seq, created_at) SELECT seq, created_at FROM e`)
		exec(`DELETE FROM outbox WHERE event_seq IN (SELECT event_seq FROM outbox ORDER BY event_seq LIMIT 195)`)
	}
	exec(`ANALYZE events`)
	exec(`ANALYZE outbox`)

	const batch = 200
	var plan []byte
	require.NoError(t, s.Pool().QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) `+postgres.RelayOutboxSQL, batch, 0).Scan(&plan))
	var nodes []struct{ Plan planNode }
	require.NoError(t, json.Unmarshal(plan, &nodes))
	read := nodes[0].Plan.rowsFrom("events")
	require.LessOrEqual(t, read, float64(batch), "a batch of %d read %.0f events: %s", batch, read, plan)

	n, err := s.RelayOutbox(ctx, batch, func(context.Context, []*oms.Event) error { return nil })
	require.NoError(t, err)
	require.Equal(t, batch, n)
}

type planNode struct {
	Relation string     `json:"Relation Name"`
	Rows     float64    `json:"Actual Rows"`
	Loops    float64    `json:"Actual Loops"`
	Plans    []planNode `json:"Plans"`
}

// rowsFrom is how many rows the plan read from a table, over all loops.
func (p planNode) rowsFrom(table string) float64 {
	n := 0.0
	if p.Relation == table {
		n = p.Rows * max(p.Loops, 1)
	}
	for _, c := range p.Plans {
		n += c.rowsFrom(table)
	}
	return n
}

// TestTheRelayFindsAnEventCommittedBelowItsCursor: an event whose transaction commits after later events were
// relayed lies below the relay's cursor; the next read from the start relays it.
func TestTheRelayFindsAnEventCommittedBelowItsCursor(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "relay")
	ctx := context.Background()
	postgres.SetRelayFullScanEvery(t, time.Hour)
	relay := func() []string {
		var types []string
		_, err := s.RelayOutbox(ctx, 200, func(_ context.Context, es []*oms.Event) error {
			for _, e := range es {
				types = append(types, e.Type)
			}
			return nil
		})
		require.NoError(t, err)
		return types
	}
	relay() // from the start: nothing yet
	slow, err := s.Pool().Begin(ctx)
	require.NoError(t, err)
	defer slow.Rollback(ctx)
	_, err = postgres.AppendEvent(ctx, slow, "order:x", oms.EventOrderCancelled, map[string]string{})
	require.NoError(t, err)
	appendIn(t, s, oms.EventOrderCreated, false)
	assert.Equal(t, []string{oms.EventOrderCreated}, relay())
	require.NoError(t, slow.Commit(ctx))
	assert.Empty(t, relay(), "below the cursor, until the next read from the start")
	postgres.SetRelayFullScanEvery(t, 0)
	assert.Equal(t, []string{oms.EventOrderCancelled}, relay())
}

// TestTheRelayFollowsSeqsARestoreTookBack: a restore in place gives the account the dump's events, whose counter
// restarts below what the relay had reached; the next read from the start brings the cursor down to them, and the
// reads above it find the new events again.
func TestTheRelayFollowsSeqsARestoreTookBack(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "relay")
	ctx := context.Background()
	postgres.SetRelayFullScanEvery(t, time.Hour)
	relay := func() int {
		n, err := s.RelayOutbox(ctx, 200, func(context.Context, []*oms.Event) error { return nil })
		require.NoError(t, err)
		return n
	}
	for range 20 {
		appendIn(t, s, oms.EventOrderCreated, false)
	}
	require.Equal(t, 20, relay())
	// What the restore leaves: the log as of 5 events ago, its counter where the dump had it.
	_, err := s.Pool().Exec(ctx, `DELETE FROM events WHERE seq > (SELECT max(seq) - 5 FROM events);
		SELECT setval(pg_get_serial_sequence('events', 'seq'), (SELECT max(seq) FROM events))`)
	require.NoError(t, err)
	appendIn(t, s, oms.EventOrderCreated, false)
	assert.Equal(t, 0, relay(), "below the cursor, until the next read from the start")
	postgres.SetRelayFullScanEvery(t, 0)
	assert.Equal(t, 1, relay())
	postgres.SetRelayFullScanEvery(t, time.Hour)
	appendIn(t, s, oms.EventOrderCreated, false)
	assert.Equal(t, 1, relay(), "above the cursor again")
}
