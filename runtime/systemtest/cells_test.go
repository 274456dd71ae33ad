package systemtest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

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
	control := omstest.ControlDB(t)
	ca := omstest.NewCA(t, "cell b")
	b := omstest.TLSPostgres(t, ca)
	// The control login exists on every cell with the control password (components/omsruntime, "Database cells").
	require.NoError(t, b.Exec(ctx, b.PrimaryURL("postgres"), fmt.Sprintf(`ALTER ROLE postgres PASSWORD '%s'`, main.Password())))
	bAdmin := fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=require", main.Password(), b.PrimaryPort())
	cells := postgres.Cells{
		postgres.MainCell: {Host: "127.0.0.1", CAFile: ca.File}, // main is reached through the control URL
		"b":               {Host: "127.0.0.1", Port: b.PrimaryPort(), CAFile: ca.File},
	}
	cellsJSON, err := json.Marshal(cells)
	require.NoError(t, err)
	cfg, err := pgx.ParseConfig(control)
	require.NoError(t, err)
	prefix := cfg.Database
	opts := postgres.Options{URL: control, Cells: cells, DefaultCell: "b"}
	reg, err := postgres.Open(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(reg.Close)
	require.NoError(t, reg.Migrate(ctx))
	placed := map[string]string{"alpha": "b", "bravo-2": postgres.MainCell}
	for i, id := range []string{"alpha", "bravo-2"} {
		fillAccount(t, reg, &oms.Account{ID: id, Name: "Account " + id, Cell: placed[id]}, i)
	}
	t.Cleanup(func() {
		reg, err := postgres.Open(context.Background(), opts)
		require.NoError(t, err)
		defer reg.Close()
		for id := range placed {
			assert.NoError(t, reg.DropAccount(context.Background(), id))
		}
	})
	before := map[string]snapshot{}
	for id := range placed {
		before[id] = takeSnapshotWith(t, opts, id)
		require.Len(t, before[id].Orders, 40)
	}
	dbsOn := func(url string) []string {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		require.NoError(t, err)
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1 || '\_%' ORDER BY 1`, prefix)
		require.NoError(t, err)
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return names
	}
	require.Equal(t, []string{prefix + "_alpha"}, dbsOn(bAdmin))
	require.Equal(t, []string{prefix + "_bravo_2"}, dbsOn(main.PrimaryURL("postgres")))

	bucket := "file://" + t.TempDir()
	env := map[string]string{"OMS_DATABASE_URL": control, "OMS_DB_CELLS": string(cellsJSON),
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
		require.NoError(t, b.Exec(ctx, url, `DROP DATABASE `+name+` WITH (FORCE)`))
		require.NoError(t, b.Exec(ctx, url, `DROP ROLE `+name))
	}
	require.NoError(t, b.Exec(ctx, control, `DELETE FROM accounts`))
	reg.Close() // its pools would keep the old databases' sessions

	// An environment without cell b cannot take the archive: refused, nothing created anywhere.
	only := map[string]string{"OMS_DB_CELLS": fmt.Sprintf(`{"main": {"host": "127.0.0.1", "caFile": %q}}`, ca.File)}
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
