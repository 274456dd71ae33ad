package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/postgres"
)

// An inventory batch and an allocation that change the same stock rows must
// not deadlock: allocation and release lock stock rows one at a time in (sku
// bytewise, location_id) order, so the merge must lock them in that order too,
// whatever the database's collation (Cloud SQL's default is en_US.UTF8) and the
// physical order of stock.
func TestInventoryMergeLocksStockInKeyOrder(t *testing.T) {
	const n = 1000
	reg, url := omstest.Registry(t, nil)
	s := newEnglishAccount(t, reg, url, "acme")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	putLocation(t, s, "wh", oms.LocationWarehouse, 52, 4)
	// SKUs in both cases: bytewise every "SKU-" sorts before every "sku-", in
	// English "sku-0000" < "SKU-0000" < "sku-0001". The rows are stored in
	// reverse byte order, so a merge that locks rows as a scan of stock meets
	// them is wrong too.
	_, err := s.Pool().Exec(ctx, `INSERT INTO stock (sku, location_id, on_hand)
		SELECT p || lpad(g::text, 4, '0'), l.id, 10
		FROM generate_series(0, $1 - 1) g, unnest(ARRAY['SKU-', 'sku-']) p, locations l
		ORDER BY (p || lpad(g::text, 4, '0')) COLLATE "C" DESC`, n)
	require.NoError(t, err)
	_, err = s.Pool().Exec(ctx, `ANALYZE stock`)
	require.NoError(t, err)
	var csv strings.Builder
	csv.WriteString("sku,location,on_hand\n")
	for i := range n {
		fmt.Fprintf(&csv, "SKU-%04d,wh,20\nsku-%04d,wh,20\n", i, i)
	}
	// Two keys in the order reserve locks them (bytewise), the other way round in English.
	low, high := "SKU-0000", "sku-0000"

	// An allocation-like transaction: reserve the lowest key, and (as a
	// release with consume does) lower its on_hand, then wait for the batch.
	alloc, err := s.Pool().Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = alloc.Rollback(ctx) }()
	_, err = alloc.Exec(ctx, `UPDATE stock SET reserved = reserved + 1, on_hand = on_hand - 3 WHERE sku = $1`, low)
	require.NoError(t, err)

	type result struct {
		res *oms.BatchResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := s.LoadInventory(ctx, oms.NewCSVReader(strings.NewReader(csv.String())))
		done <- result{res, err}
	}()
	// Wait until the merge waits for a row lock: the reserved row's.
	require.Eventually(t, func() bool {
		var waiting bool
		err := s.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND wait_event = 'transactionid' AND query LIKE '%inventory_staging%')`).Scan(&waiting)
		return err == nil && waiting
	}, 30*time.Second, 10*time.Millisecond, "the merge never waited for the reserved row")

	// The allocation goes on to the next key, as reserve does in sorted order.
	// A merge holding that row while it waits for the first one is a
	// deadlock, which PostgreSQL breaks after deadlock_timeout (1s).
	_, err = alloc.Exec(ctx, `UPDATE stock SET reserved = reserved + 1 WHERE sku = $1`, high)
	require.NoError(t, err, "allocation")
	require.NoError(t, alloc.Commit(ctx))
	r := <-done
	require.NoError(t, r.err, "inventory batch")
	assert.EqualValues(t, 2*n, r.res.Accepted)

	for _, sku := range []string{low, high} {
		lv, err := s.Stock(ctx, "wh", sku)
		require.NoError(t, err)
		assert.EqualValues(t, 20, lv.OnHand, "the batch, merged after the allocation, sets %s", sku)
		assert.EqualValues(t, 1, lv.Reserved, sku)
	}
	var wrong int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM stock WHERE on_hand <> 20`).Scan(&wrong))
	assert.Zero(t, wrong)
	evs, err := s.Events(ctx, oms.EventFilter{Entity: "batch:" + r.res.BatchID})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	var data map[string]int64
	require.NoError(t, json.Unmarshal(evs[0].Data, &data))
	assert.EqualValues(t, 2*n, data["changed"], "every row changed, the lowered one included")

	// A second batch changing nothing rewrites nothing.
	var before string
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT max(updated_at)::text FROM stock`).Scan(&before))
	res := load(t, s, csv.String())
	evs, err = s.Events(ctx, oms.EventFilter{Entity: "batch:" + res.BatchID})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.NoError(t, json.Unmarshal(evs[0].Data, &data))
	assert.Zero(t, data["changed"])
	var after string
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT max(updated_at)::text FROM stock`).Scan(&after))
	assert.Equal(t, before, after)
}

// newEnglishAccount creates an account whose database sorts text in English,
// as Cloud SQL's default collation en_US.UTF8 does (the test server has no
// libc locale but C, so ICU's en-US), adopted as a provisioned database is.
func newEnglishAccount(t *testing.T, reg *postgres.Registry, url, id string) *postgres.Store {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	name := cfg.Database + "_" + id // the registry's default names
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'provisioned-pw'`, name))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`, name))
	require.NoError(t, err)
	_, err = reg.AdoptAccount(ctx, &oms.Account{ID: id, Name: id}, "provisioned-pw")
	require.NoError(t, err)
	s, err := reg.Store(ctx, id)
	require.NoError(t, err)
	var collation string
	require.NoError(t, s.(*postgres.Store).Pool().QueryRow(ctx, `SELECT daticulocale FROM pg_database WHERE datname = current_database()`).Scan(&collation))
	require.Equal(t, "en-US", collation)
	return s.(*postgres.Store)
}

// BenchmarkLoadInventory times LoadInventory for 100k lines at 10 locations
// (10k SKUs), all new keys or a reload in which every line changes, and
// reports lines/s:
//
//	go test ./postgres/ -run '^$' -bench LoadInventory -benchtime 3x -count 3
func BenchmarkLoadInventory(b *testing.B) {
	const locations, skus = 10, 10_000
	batch := func(prefix string, onHand int) []byte {
		var buf bytes.Buffer
		buf.WriteString("sku,location,on_hand\n")
		for s := range skus {
			for l := range locations {
				fmt.Fprintf(&buf, "%s%d,l%d,%d\n", prefix, s, l, onHand)
			}
		}
		return buf.Bytes()
	}
	setup := func(b *testing.B) oms.InventoryService {
		reg, _ := omstest.Registry(b, nil)
		st := newAccount(b, reg, "bench")
		for l := range locations {
			putLocation(b, st, fmt.Sprintf("l%d", l), oms.LocationWarehouse, 50+float64(l)*0.1, 4.0)
		}
		return st
	}
	run := func(b *testing.B, st oms.InventoryService, next func(i int) []byte) {
		ctx := context.Background()
		b.ResetTimer()
		var elapsed time.Duration
		for i := range b.N {
			b.StopTimer()
			in := next(i)
			b.StartTimer()
			begin := time.Now()
			res, err := st.LoadInventory(ctx, oms.NewCSVReader(bytes.NewReader(in)))
			elapsed += time.Since(begin)
			require.NoError(b, err)
			require.EqualValues(b, locations*skus, res.Accepted)
		}
		b.ReportMetric(float64(b.N*locations*skus)/elapsed.Seconds(), "lines/s")
	}
	b.Run("new", func(b *testing.B) {
		st := setup(b)
		run(b, st, func(i int) []byte { return batch(fmt.Sprintf("N%d-", i), 5) })
	})
	b.Run("reload", func(b *testing.B) {
		st := setup(b)
		_, err := st.LoadInventory(context.Background(), oms.NewCSVReader(bytes.NewReader(batch("S", 0))))
		require.NoError(b, err)
		run(b, st, func(i int) []byte { return batch("S", i+1) })
	})
}

// A reload that changes every line rewrites each stock row on its own page (a HOT update: no new index entry), and
// so does a reservation: stock keeps half of each page free for it (migration 008).
func TestStockRowsAreUpdatedInPlace(t *testing.T) {
	const skus = 2000
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	ctx := context.Background()
	putLocation(t, s, "wh", oms.LocationWarehouse, 52, 4)
	pages := func() map[string]string {
		rows, err := s.Pool().Query(ctx, `SELECT sku, (ctid::text::point)[0]::text FROM stock`)
		require.NoError(t, err)
		out := map[string]string{}
		var sku, page string
		_, err = pgx.ForEachRow(rows, []any{&sku, &page}, func() error { out[sku] = page; return nil })
		require.NoError(t, err)
		return out
	}
	assert.EqualValues(t, skus, load(t, s, warehouseCSV(skus, 10)).Accepted)
	before := pages()
	require.Len(t, before, skus)
	assert.EqualValues(t, skus, load(t, s, warehouseCSV(skus, 20)).Accepted)
	_, err := s.Pool().Exec(ctx, `UPDATE stock SET reserved = reserved + 1 WHERE sku = 'sku-00000'`)
	require.NoError(t, err)
	after := pages()
	moved := 0
	for sku, page := range before {
		if after[sku] != page {
			moved++
		}
	}
	assert.Zero(t, moved, "of %d stock rows, %d moved to another page when updated", skus, moved)
}
