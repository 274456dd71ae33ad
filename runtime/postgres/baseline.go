package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Restore baselines: what an account database held when it was last restored, or when oms migrate created its
// schema in an empty database. `oms restore` refuses to replace a database that has taken writes since its baseline.
//
// A write is found the way PostgreSQL's MVCC records it: every row an INSERT or UPDATE leaves carries the id of the
// transaction that wrote it (xmin), and transaction ids grow; a row whose xmin is newer than the baseline's was written
// after it. A DELETE leaves no row, so row counts are compared too. Both hold across crashes, restarts and failovers
// (unlike the statistics counters, which reset), for about 2^31 transactions (beyond that, WrittenSince says it cannot
// tell). Rows committed by transactions that were already running when the baseline was taken would be missed: a
// baseline is taken when the database is quiet, right after a restore or a first migration.

// Querier is a connection or a pool.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// BaselineCreated and BaselineRestored are the reasons of a baseline.
const (
	BaselineCreated  = "created empty by oms migrate"
	BaselineRestored = "restored from "
)

// xidHorizon is how many transactions after a baseline xmin comparisons stay meaningful (transaction ids wrap at 2^32
// and are compared within 2^31).
const xidHorizon = 1 << 30

// CountRows counts the rows of every table of the database's public schema.
func CountRows(ctx context.Context, q Querier) (map[string]int64, error) {
	tables, err := publicTables(ctx, q)
	if err != nil {
		return nil, err
	}
	counts := map[string]int64{}
	for _, t := range tables {
		var n int64
		if err := q.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{"public", t}.Sanitize()).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", t, err)
		}
		counts[t] = n
	}
	return counts, nil
}

func publicTables(ctx context.Context, q Querier) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return tables, nil
}

// SaveBaseline records, in the control database, the account database acct is connected to as it is now.
func SaveBaseline(ctx context.Context, control, acct Querier, reason string) error {
	var db string
	var oid uint32
	var xid string
	if err := acct.QueryRow(ctx, `SELECT d.datname, d.oid, pg_current_xact_id()::text FROM pg_database d
		WHERE d.datname = current_database()`).Scan(&db, &oid, &xid); err != nil {
		return fmt.Errorf("restore baseline: %w", err)
	}
	rows, err := CountRows(ctx, acct)
	if err != nil {
		return fmt.Errorf("restore baseline of %s: %w", db, err)
	}
	counts, err := json.Marshal(rows)
	if err != nil {
		return err
	}
	if _, err := control.Exec(ctx, `INSERT INTO restore_baselines (database, database_oid, xid, row_counts, reason)
		VALUES ($1, $2, $3::xid8, $4, $5)
		ON CONFLICT (database) DO UPDATE SET database_oid = EXCLUDED.database_oid, xid = EXCLUDED.xid,
			row_counts = EXCLUDED.row_counts, reason = EXCLUDED.reason, taken_at = now()`,
		db, oid, xid, counts, reason); err != nil {
		return fmt.Errorf("restore baseline of %s: %w", db, err)
	}
	return nil
}

// WrittenSince tells whether the account database acct is connected to has taken writes since its baseline: "" when
// it has not (or holds no table: nothing to lose), else why it has, or why that cannot be told.
func WrittenSince(ctx context.Context, control, acct Querier) (string, error) {
	var db string
	var oid uint32
	if err := acct.QueryRow(ctx, `SELECT d.datname, d.oid FROM pg_database d WHERE d.datname = current_database()`).
		Scan(&db, &oid); err != nil {
		return "", fmt.Errorf("restore baseline: %w", err)
	}
	tables, err := publicTables(ctx, acct)
	if err != nil || len(tables) == 0 {
		return "", err
	}
	var (
		baseOID     uint32
		xid, reason string
		baseRows    map[string]int64
		takenAt     time.Time
		distance    int64
	)
	err = control.QueryRow(ctx, `SELECT database_oid, xid::text, row_counts, reason, taken_at FROM restore_baselines
		WHERE database = $1`, db).Scan(&baseOID, &xid, &baseRows, &reason, &takenAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return "it has no restore baseline (it was neither restored nor created empty by oms migrate of this release), so writes cannot be ruled out", nil
	}
	if err != nil {
		return "", fmt.Errorf("restore baseline of %s: %w", db, err)
	}
	since := fmt.Sprintf("its baseline (%s, %s)", reason, takenAt.UTC().Format(time.RFC3339))
	if baseOID != oid {
		return "it was replaced since " + since, nil
	}
	if err := acct.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint - $1::text::bigint`, xid).
		Scan(&distance); err != nil {
		return "", fmt.Errorf("restore baseline of %s: %w", db, err)
	}
	if distance > xidHorizon {
		return fmt.Sprintf("%d transactions ran since %s: too many to tell its writes apart", distance, since), nil
	}
	for _, t := range slices.Sorted(maps.Keys(baseRows)) {
		if !slices.Contains(tables, t) {
			return fmt.Sprintf("table %s was dropped since %s", t, since), nil
		}
	}
	for _, t := range tables {
		want, known := baseRows[t]
		if !known {
			return fmt.Sprintf("table %s was created since %s", t, since), nil
		}
		var n, newer int64
		// age() counts transactions back from now: a row newer than the baseline is younger than it.
		if err := acct.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE age(xmin) < age(xid($1::text::xid8))) FROM `+
			pgx.Identifier{"public", t}.Sanitize(), xid).Scan(&n, &newer); err != nil {
			return "", fmt.Errorf("look for writes in %s.%s: %w", db, t, err)
		}
		switch {
		case newer > 0:
			return fmt.Sprintf("table %s has %d rows written since %s", t, newer, since), nil
		case n != want:
			return fmt.Sprintf("table %s has %d rows, %d at %s", t, n, want, since), nil
		}
	}
	return "", nil
}

// accountSchemaFresh reports whether oms migrate has never run on the database: its baseline is then taken once the
// first migration made it.
func accountSchemaFresh(ctx context.Context, q Querier) (bool, error) {
	var fresh bool
	err := q.QueryRow(ctx, `SELECT to_regclass('public.schema_migrations') IS NULL`).Scan(&fresh)
	if err != nil || fresh {
		return fresh, err
	}
	err = q.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM schema_migrations)`).Scan(&fresh)
	return fresh, err
}
