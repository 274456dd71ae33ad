package omstest

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/localenv"
	"github.com/omscloud/omscloud/runtime/postgres"
)

// CellB is a second database server for tests of database cells: its own PostgreSQL, refusing connections
// without TLS and serving a certificate of its own CA, as a second Cloud SQL instance does, with the shared
// cluster's superuser password, as the component gives the control login the same password on every cell.
type CellB struct {
	PG *localenv.Postgres
	CA *CA
	// Cells are cell main (the shared cluster, reached through the control URL) and this server, cell "b".
	Cells postgres.Cells
}

// NewCellB starts cell b, stopped at cleanup.
func NewCellB(t testing.TB) *CellB {
	t.Helper()
	ca := NewCA(t, "cell b")
	b := TLSPostgres(t, ca)
	require.NoError(t, b.Exec(context.Background(), b.PrimaryURL("postgres"),
		fmt.Sprintf(`ALTER ROLE postgres PASSWORD '%s'`, Postgres(t).Password())))
	return &CellB{PG: b, CA: ca, Cells: postgres.Cells{
		postgres.MainCell: {Host: "127.0.0.1", CAFile: ca.File}, // main is reached through the control URL
		"b":               {Host: "127.0.0.1", Port: b.PrimaryPort(), CAFile: ca.File},
	}}
}

// URL is a superuser URL of database db on cell b, over TLS not verified: the tests' own set-up and checks.
func (c *CellB) URL(t testing.TB, db string) string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=require", Postgres(t).Password(), c.PG.PrimaryPort(), db)
}

// Databases lists the databases named prefix_* on the server at url.
func Databases(t testing.TB, url, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1 || '\_%' ORDER BY 1`, prefix)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}
