package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/postgres"
)

// An account database written by the release before workflows upgrades in
// place: allocated orders get a fulfilment holding their reservations, waiting
// orders are marked for wake-up, and every order runs version 1 of its default.
func TestWorkflowMigrationUpgradesOrdersInFlight(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, omstest.ControlDB(t))
	require.NoError(t, err)
	defer pool.Close()
	require.NoError(t, postgres.MigrateAccountTo(ctx, pool, 1))
	_, err = pool.Exec(ctx, `
		INSERT INTO locations (ref, name, type, lat, lon) VALUES ('wh', 'WH', 'warehouse', 52, 4), ('st', 'ST', 'store', 52, 4);
		INSERT INTO stock (sku, location_id, on_hand, reserved) VALUES ('A', 1, 10, 3), ('A', 2, 5, 1);
		INSERT INTO orders (id, ref, status, items, delivery, location_id, idempotency_key, request_hash) VALUES
		  ('00000000-0000-4000-8000-000000000001', 'hd', 'ALLOCATED', '[{"sku":"A","qty":3}]', '{"type":"HD"}', 1, 'k1', '\x00'),
		  ('00000000-0000-4000-8000-000000000002', 'cc', 'ALLOCATED', '[{"sku":"A","qty":1}]', '{"type":"CC","location":"st"}', 2, 'k2', '\x00'),
		  ('00000000-0000-4000-8000-000000000003', 'wait', 'PENDING_STOCK', '[{"sku":"A","qty":99}]', '{"type":"HD"}', NULL, 'k3', '\x00'),
		  ('00000000-0000-4000-8000-000000000004', 'gone', 'CANCELLED', '[{"sku":"A","qty":1}]', '{"type":"HD"}', 1, 'k4', '\x00');
		INSERT INTO reservations (order_id, sku, location_id, qty) VALUES
		  ('00000000-0000-4000-8000-000000000001', 'A', 1, 3), ('00000000-0000-4000-8000-000000000002', 'A', 2, 1);`)
	require.NoError(t, err)

	require.NoError(t, postgres.MigrateAccount(ctx, pool))

	rows, err := pool.Query(ctx, `SELECT o.ref, o.workflow, o.workflow_version, o.awaiting_stock, count(f.id), count(r.sku)
		FROM orders o LEFT JOIN fulfilments f ON f.order_id = o.id LEFT JOIN reservations r ON r.fulfilment_id = f.id
		GROUP BY o.ref, o.workflow, o.workflow_version, o.awaiting_stock, o.seq ORDER BY o.seq`)
	require.NoError(t, err)
	type row struct {
		Ref, Workflow          string
		Version                int
		Awaiting               bool
		Fulfilments, Reserving int64
	}
	var got []row
	for rows.Next() {
		var r row
		require.NoError(t, rows.Scan(&r.Ref, &r.Workflow, &r.Version, &r.Awaiting, &r.Fulfilments, &r.Reserving))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []row{
		{"hd", "home-delivery", 1, false, 1, 1},
		{"cc", "click-and-collect", 1, false, 1, 1},
		{"wait", "home-delivery", 1, true, 0, 0},
		{"gone", "home-delivery", 1, false, 0, 0},
	}, got)
	var defaults []string
	r2, err := pool.Query(ctx, `SELECT name || ' v' || version FROM workflows ORDER BY name`)
	require.NoError(t, err)
	for r2.Next() {
		var s string
		require.NoError(t, r2.Scan(&s))
		defaults = append(defaults, s)
	}
	assert.Equal(t, []string{"click-and-collect v1", "home-delivery v1"}, defaults, "the versions the upgraded orders name exist")

	// The previous release keeps serving until the switch: its writes still work on the new schema.
	_, err = pool.Exec(ctx, `
		INSERT INTO orders (id, ref, status, items, delivery, idempotency_key, request_hash) VALUES
		  ('00000000-0000-4000-8000-000000000005', 'old-release', 'CREATED', '[{"sku":"A","qty":2}]', '{"type":"CC","location":"st"}', 'k5', '\x00');
		INSERT INTO reservations (order_id, sku, location_id, qty) VALUES ('00000000-0000-4000-8000-000000000005', 'A', 2, 2);
		UPDATE orders SET status = 'ALLOCATED', location_id = 2 WHERE ref = 'old-release';`)
	require.NoError(t, err, "the old release's order and reservation writes")
	var wf, items string
	require.NoError(t, pool.QueryRow(ctx, `SELECT o.workflow || ' v' || o.workflow_version, f.items::text FROM orders o
		JOIN reservations r ON r.order_id = o.id JOIN fulfilments f ON f.id = r.fulfilment_id WHERE o.ref = 'old-release'`).Scan(&wf, &items))
	assert.Equal(t, "click-and-collect v1", wf)
	assert.JSONEq(t, `[{"sku":"A","qty":2}]`, items)

	// Its worker's "no stock" and its cancel, which knows nothing of fulfilments.
	_, err = pool.Exec(ctx, `
		INSERT INTO orders (id, ref, status, items, delivery, idempotency_key, request_hash) VALUES
		  ('00000000-0000-4000-8000-000000000006', 'old-pending', 'CREATED', '[{"sku":"A","qty":999}]', '{"type":"HD"}', 'k6', '\x00');
		UPDATE orders SET status = 'PENDING_STOCK' WHERE ref = 'old-pending';
		DELETE FROM reservations WHERE order_id = '00000000-0000-4000-8000-000000000005';
		UPDATE orders SET status = 'CANCELLED' WHERE ref = 'old-release';`)
	require.NoError(t, err)
	var awaiting bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT awaiting_stock FROM orders WHERE ref = 'old-pending'`).Scan(&awaiting))
	assert.True(t, awaiting, "a PENDING_STOCK set by the old worker still waits for stock")
	var fstatus, fstock string
	require.NoError(t, pool.QueryRow(ctx, `SELECT f.status, f.stock FROM fulfilments f JOIN orders o ON o.id = f.order_id
		WHERE o.ref = 'old-release'`).Scan(&fstatus, &fstock))
	assert.Equal(t, []string{"CANCELLED", "released"}, []string{fstatus, fstock}, "the old cancel closed the fulfilment")

	// Running it again (every release does) changes nothing.
	require.NoError(t, postgres.MigrateAccount(ctx, pool))
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM workflows`).Scan(&n))
	assert.Equal(t, 2, n)
}

// Stock can only name a location that exists, and a location with stock cannot
// be deleted: the per-statement checks that replaced the foreign key.
func TestStockLocationIntegrityHoldsWithoutTheForeignKey(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, omstest.ControlDB(t))
	require.NoError(t, err)
	defer pool.Close()
	require.NoError(t, postgres.MigrateAccount(ctx, pool))
	_, err = pool.Exec(ctx, `INSERT INTO locations (ref, name, type, lat, lon) VALUES ('wh', 'WH', 'warehouse', 52, 4)`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO stock (sku, location_id, on_hand) VALUES ('A', 1, 1), ('B', 999, 1)`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "23503", "foreign_key_violation, as the key gave")
	_, err = pool.Exec(ctx, `INSERT INTO stock (sku, location_id, on_hand) VALUES ('A', 1, 1)`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `DELETE FROM locations WHERE id = 1`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "still has stock")
}
