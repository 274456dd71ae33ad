package systemtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
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

// TestBackupRestoreAcrossCells: with two database servers ("cells"), `oms backup` dumps every account from its own
// cell and `oms restore`, after both cells lost every account database and role and the registry lost its rows,
// puts each account back on the cell it was on, verified against that cell's CA; a restore into an environment
// that lacks one of the archive's cells refuses before touching anything.
func TestBackupRestoreAcrossCells(t *testing.T) {
	ctx := context.Background()
	main := omstest.Postgres(t)
	e := newTwoCellEnv(t)
	bAdmin := e.b.URL(t, "postgres")
	cfg, err := pgx.ParseConfig(e.env["OMS_DATABASE_URL"])
	require.NoError(t, err)
	prefix := cfg.Database
	opts := e.opts
	opts.DefaultCell = "b"
	reg, err := postgres.Open(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(reg.Close)
	require.NoError(t, reg.Migrate(ctx))
	placed := map[string]string{"alpha": "b", "bravo-2": postgres.MainCell}
	for i, id := range []string{"alpha", "bravo-2"} {
		fillAccount(t, reg, &oms.Account{ID: id, Name: "Account " + id, Cell: placed[id]}, i)
	}
	before := map[string]snapshot{}
	for id := range placed {
		before[id] = takeSnapshotWith(t, opts, id)
		require.Len(t, before[id].Orders, 40)
	}
	dbsOn := func(url string) []string { return omstest.Databases(t, url, prefix) }
	require.Equal(t, []string{prefix + "_alpha"}, dbsOn(bAdmin))
	require.Equal(t, []string{prefix + "_bravo_2"}, dbsOn(main.PrimaryURL("postgres")))

	bucket := "file://" + t.TempDir()
	env := map[string]string{"OMS_DATABASE_URL": e.env["OMS_DATABASE_URL"], "OMS_DB_CELLS": e.env["OMS_DB_CELLS"],
		"OMS_BACKUP_KEY_FILE": writeKey(t), "OMS_PG_BIN_DIR": main.BinDir()}
	out := MustRun(t, env, "backup", "--tier", "hourly", "--to", bucket)
	assert.Contains(t, out, `"accounts":["alpha","bravo-2"]`)

	// Lose both cells' account databases and roles, and the registry's rows.
	for id, cell := range placed {
		name := pgx.Identifier{prefix + "_" + strings.ReplaceAll(id, "-", "_")}.Sanitize()
		url := main.PrimaryURL("postgres")
		if cell == "b" {
			url = bAdmin
		}
		require.NoError(t, main.Exec(ctx, url, `DROP DATABASE `+name+` WITH (FORCE)`))
		require.NoError(t, main.Exec(ctx, url, `DROP ROLE `+name))
	}
	require.NoError(t, main.Exec(ctx, e.env["OMS_DATABASE_URL"], `DELETE FROM accounts`))
	reg.Close() // its pools would keep the old databases' sessions

	// An environment without cell b cannot take the archive: refused, nothing created anywhere.
	only := map[string]string{"OMS_DB_CELLS": fmt.Sprintf(`{"main": {"host": "127.0.0.1", "caFile": %q}}`, e.b.CA.File)}
	for k, v := range env {
		if only[k] == "" {
			only[k] = v
		}
	}
	_, _, err = Run(t, only, "restore", "--from", bucket, "--latest")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `account alpha: the archive has it on cell "b", which --db-cells/OMS_DB_CELLS lacks [main]`)
	assert.Empty(t, dbsOn(bAdmin))
	assert.Empty(t, dbsOn(main.PrimaryURL("postgres")))
	var roles int
	require.NoError(t, pgxQueryRow(ctx, main.PrimaryURL("postgres"), `SELECT count(*) FROM pg_roles WHERE rolname LIKE $1 || '\_%'`,
		[]any{prefix}, &roles))
	assert.Zero(t, roles, "no role created either")

	out = MustRun(t, env, "restore", "--from", bucket, "--latest")
	assert.Regexp(t, `restored \S+ .*: 2 accounts`, out)
	assert.Equal(t, []string{prefix + "_alpha"}, dbsOn(bAdmin), "alpha is back on cell b")
	assert.Equal(t, []string{prefix + "_bravo_2"}, dbsOn(main.PrimaryURL("postgres")), "bravo-2 is back on main")
	reg, err = postgres.Open(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(reg.Close)
	accounts, err := reg.Accounts(ctx)
	require.NoError(t, err)
	got := map[string]string{}
	for _, a := range accounts {
		got[a.ID] = a.Cell
	}
	assert.Equal(t, placed, got, "the registry has each account on its cell again")
	for id := range placed {
		assert.Equal(t, before[id], takeSnapshotWith(t, opts, id), "account %s", id)
	}
}

func pgxQueryRow(ctx context.Context, url, sql string, args []any, dest ...any) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, sql, args...).Scan(dest...)
}

// twoCellEnv is a control database on the shared cluster (cell main) and a second server (cell b, TLS, verified
// against its own CA), with the control login's password on both, as the component provisions them; the oms
// environment of every process, and a registry on it for set-up and clean-up.
type twoCellEnv struct {
	b    *omstest.CellB
	env  map[string]string
	opts postgres.Options
}

func newTwoCellEnv(t *testing.T) *twoCellEnv {
	t.Helper()
	control := omstest.ControlDB(t)
	b := omstest.NewCellB(t)
	cellsJSON, err := json.Marshal(b.Cells)
	require.NoError(t, err)
	e := &twoCellEnv{b: b, opts: postgres.Options{URL: control, Cells: b.Cells},
		env: map[string]string{"OMS_DATABASE_URL": control, "OMS_DB_CELLS": string(cellsJSON), "OMS_DB_DEFAULT_CELL": "b",
			"OMS_ADMIN_TOKEN": adminToken, "OMS_LISTEN": "127.0.0.1:0", "OMS_DRAIN_DELAY": "0s", "OMS_LOG_LEVEL": "info"}}
	t.Cleanup(func() { // every account, on whichever cell it ended
		reg, err := postgres.Open(context.Background(), e.opts)
		require.NoError(t, err)
		defer reg.Close()
		ids, _ := reg.AllAccountIDs(context.Background())
		for _, id := range ids {
			assert.NoError(t, reg.DropAccount(context.Background(), id))
		}
	})
	return e
}

// TestDrillAccountMovedUnderOrderLoad: `oms account move` moves an account's database from cell b to main while
// four clients place its orders and one places another account's, through `oms serve`, with `oms worker`
// processing them. Every failed request failed loudly (503 with Retry-After, or a broken connection) and only
// during the move; retried with its idempotency key it yields exactly one order; every acknowledged order is on
// main once, processed by the worker with its whole event history; the other account never saw a failure.
func TestDrillAccountMovedUnderOrderLoad(t *testing.T) {
	ctx := t.Context()
	e := newTwoCellEnv(t)
	MustRun(t, e.env, "migrate")
	api := Start(t, "serve", e.env, "serve")
	wrk := Start(t, "worker", e.env, "worker")
	base := api.URL()
	key := drillAccount(t, base, "acme") // the default cell, b
	var other struct{ ID, APIKey string }
	mustCall(t, "POST", base+"/v1/accounts", adminToken, map[string]string{"id": "bystander", "name": "Bystander", "cell": "main"},
		http.StatusCreated, &other)
	seedDrill(t, base, key, 4, drillSKUs, 100000)
	seedDrill(t, base, other.APIKey, 4, drillSKUs, 100000)

	placed, bystander := &ordersPlaced{}, &ordersPlaced{}
	// Four clients, each placing an order every 10 ms at most: a busy account, which one apply process on the
	// target outpaces even on the 2 shared cores of CI (unthrottled, it fell behind and never caught up).
	l := startLoad(4, 1_000_000, func(seq int) {
		if a := placed.place(ctx, base, key, seq, drillSKUs); a.Status != http.StatusCreated {
			time.Sleep(20 * time.Millisecond) // a client backing off
		}
		time.Sleep(10 * time.Millisecond)
	})
	defer l.Stop()
	lb := startLoad(1, 1_000_000, func(seq int) { bystander.place(ctx, base, other.APIKey, seq, drillSKUs) })
	defer lb.Stop()
	eventually(t, 30*time.Second, "200 orders acknowledged before the move", func() bool { return acknowledged(placed.snapshot()) >= 200 })

	moveStart := time.Now()
	out := MustRun(t, e.env, "account", "move", "--id", "acme", "--to", "main", "--max-catch-up", "2m")
	moveEnd := time.Now()
	require.Contains(t, out, "moved account acme from cell b to main")
	time.Sleep(2 * time.Second) // writes keep going on main
	l.Stop()
	lb.Stop()

	attempts := placed.snapshot()
	var failed []orderAttempt
	orderOf := map[string]string{}
	var acks []time.Time
	for _, a := range attempts {
		switch {
		case a.Status == http.StatusCreated:
			checkAcknowledged(t, a)
			orderOf[a.Key] = a.Order.ID
			acks = append(acks, a.End)
			continue
		case a.Status == http.StatusServiceUnavailable:
			assert.NotEmpty(t, a.RetryAfter, "order %s: 503 without Retry-After", a.Ref)
		case isTransportErr(a.Reply):
		default:
			t.Errorf("order %s: answered %d %s during the move; want 201, 503 or a connection error", a.Ref, a.Status, a.Body)
		}
		assert.True(t, a.End.After(moveStart) && a.Start.Before(moveEnd.Add(5*time.Second)),
			"order %s failed outside the move: %d %v", a.Ref, a.Status, a.Err)
		failed = append(failed, a)
	}
	// The longest the account's writes waited: the longest gap between acknowledgements during the move.
	var pause time.Duration
	var prev time.Time
	slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
	for _, at := range acks {
		if !prev.IsZero() && at.After(moveStart) && at.Before(moveEnd.Add(5*time.Second)) && at.Sub(prev) > pause {
			pause = at.Sub(prev)
		}
		prev = at
	}
	require.True(t, len(acks) > 0 && acks[len(acks)-1].After(moveEnd), "orders acknowledged after the move")
	acked := len(orderOf)
	ambiguous := retryFailed(ctx, t, base, key, failed, orderOf)

	eventually(t, 60*time.Second, "the worker to process every order", func() bool { return countCreated(t, base, key) == 0 })
	orders := allOrders(t, base, key)
	ids := map[string]bool{}
	for k, id := range orderOf {
		ids[id] = true
		_, ok := orders[id]
		require.True(t, ok, "order %s (key %s) was acknowledged but is gone", id, k)
	}
	require.Len(t, orders, len(orderOf), "exactly one order per idempotency key")
	checkOrderEvents(t, allEvents(t, base, key), ids)

	// The other account: never a failure, and its slowest answer.
	var slowest time.Duration
	others := bystander.snapshot()
	for _, a := range others {
		assert.Equal(t, http.StatusCreated, a.Status, "bystander order %s: %d %v %s", a.Ref, a.Status, a.Err, a.Body)
		slowest = max(slowest, a.End.Sub(a.Start))
	}
	reg, err := postgres.Open(ctx, e.opts)
	require.NoError(t, err)
	defer reg.Close()
	accounts, err := reg.Accounts(ctx)
	require.NoError(t, err)
	for _, a := range accounts {
		assert.Equal(t, postgres.MainCell, a.Cell, "account %s", a.ID)
	}
	for _, p := range []*Proc{api, wrk} {
		select {
		case <-p.Exited:
			t.Fatalf("%s exited during the move: %v", p.Name, p.ExitErr)
		default:
		}
	}
	t.Logf("DRILL account-move: %s; acknowledged %d orders, failed %d (each retried to exactly one order; %d had "+
		"committed), longest gap between acknowledgements during the move %s; bystander %d orders, 0 failed, slowest %s",
		strings.TrimSpace(strings.SplitN(out, "\n", 2)[0]), acked, len(failed), ambiguous, secs(pause), len(others), secs(slowest))
}
