package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// MigrateAccountTo applies the account migrations up to a version, so tests
// can build a database as an older release left it.
func MigrateAccountTo(ctx context.Context, pool *pgxpool.Pool, version int) error {
	_, err := migrateTo(ctx, pool, "account", version)
	return err
}

// MigrateAccount is what every release runs on an account database.
func MigrateAccount(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := migrateAccount(ctx, pool)
	return err
}

var (
	AppendEvent   = appendEvent
	QueueDelivery = queueDelivery
)

// SetMaxWake changes how many waiting orders one stock event wakes, for the
// test's duration.
func SetMaxWake(t interface{ Cleanup(func()) }, n int) {
	old := maxWake
	maxWake = n
	t.Cleanup(func() { maxWake = old })
}

// RelayOutboxSQL is the relay's batch query ($1: the batch size).
const RelayOutboxSQL = relayOutboxSQL

// SetRelayFullScanEvery changes how often the relay reads the outbox from its start, for the test's duration.
func SetRelayFullScanEvery(t interface{ Cleanup(func()) }, d time.Duration) {
	old := relayFullScanEvery
	relayFullScanEvery = d
	t.Cleanup(func() { relayFullScanEvery = old })
}
