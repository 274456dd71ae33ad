package postgres_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/postgres"
)

// twoCells is a control database on the shared cluster (cell main) and omstest's cell b.
type twoCells struct {
	*omstest.CellB
	control string // control database URL
	cells   postgres.Cells
}

func newTwoCells(t *testing.T) *twoCells {
	t.Helper()
	b := omstest.NewCellB(t)
	return &twoCells{CellB: b, control: omstest.ControlDB(t), cells: b.Cells}
}

// open opens a registry on the control database with opts, closed at cleanup.
func (tc *twoCells) open(t *testing.T, opts postgres.Options) *postgres.Registry {
	t.Helper()
	opts.URL = tc.control
	reg, err := postgres.Open(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(reg.Close)
	return reg
}

// withAccountOnB is a migrated registry (default cell b) with account alpha on cell b holding one location,
// dropped at cleanup.
func (tc *twoCells) withAccountOnB(t *testing.T, prefix string) (*postgres.Registry, *postgres.Store) {
	t.Helper()
	reg := tc.open(t, postgres.Options{NamePrefix: prefix, Cells: tc.cells, DefaultCell: "b"})
	require.NoError(t, reg.Migrate(context.Background()))
	t.Cleanup(func() { assert.NoError(t, reg.DropAccount(context.Background(), "alpha")) })
	s := newAccount(t, reg, "alpha")
	putLocation(t, s, "wh-1", oms.LocationWarehouse, 52, 4)
	return reg, s
}

func TestAccountsLiveOnTheirCell(t *testing.T) {
	ctx := context.Background()
	tc := newTwoCells(t)
	prefix := fmt.Sprintf("cell%d", os.Getpid()%100000)
	reg := tc.open(t, postgres.Options{NamePrefix: prefix, Cells: tc.cells, DefaultCell: "b"})
	require.NoError(t, reg.Migrate(ctx))
	t.Cleanup(func() {
		for _, id := range []string{"alpha", "beta", "gamma"} {
			assert.NoError(t, reg.DropAccount(context.Background(), id))
		}
	})

	// Created without a cell: on the default cell. With one: on it.
	newAccount(t, reg, "alpha")
	_, err := reg.CreateAccount(ctx, &oms.Account{ID: "beta", Name: "Beta", Cell: postgres.MainCell})
	require.NoError(t, err)
	_, err = reg.CreateAccount(ctx, &oms.Account{ID: "delta", Name: "Delta", Cell: "c"})
	assert.Equal(t, oms.EINVALID, oms.ErrorCode(err), "an unknown cell: %v", err)
	assert.Equal(t, "cell", oms.ErrorField(err))

	// Adopted: provisioned on cell b as Cloud SQL does it there.
	provisionLikeCloudSQL(t, tc.URL(t, "postgres"), prefix+"_gamma", "gamma-pw")
	adopted, err := reg.AdoptAccount(ctx, &oms.Account{ID: "gamma", Name: "gamma", Cell: "b"}, "gamma-pw")
	require.NoError(t, err)
	assert.True(t, adopted)

	main := omstest.Postgres(t).PrimaryURL("postgres")
	assert.Equal(t, []string{prefix + "_beta"}, omstest.Databases(t, main, prefix), "cell main holds beta's database only")
	assert.Equal(t, []string{prefix + "_alpha", prefix + "_gamma"}, omstest.Databases(t, tc.URL(t, "postgres"), prefix),
		"cell b holds alpha's and gamma's")

	accounts, err := reg.Accounts(ctx)
	require.NoError(t, err)
	cellOf := map[string]string{}
	for _, a := range accounts {
		cellOf[a.ID] = a.Cell
	}
	assert.Equal(t, map[string]string{"alpha": "b", "beta": postgres.MainCell, "gamma": "b"}, cellOf)

	// Each account's store writes to its own cell, over TLS verified against that cell's CA.
	for _, id := range []string{"alpha", "beta", "gamma"} {
		s, err := reg.Store(ctx, id)
		require.NoError(t, err)
		putLocation(t, s.(*postgres.Store), "wh-"+id, oms.LocationWarehouse, 52, 4)
	}
	var ref string
	require.NoError(t, pgxQueryRow(t, tc.URL(t, prefix+"_gamma"), `SELECT ref FROM locations`, &ref))
	assert.Equal(t, "wh-gamma", ref)
	require.NoError(t, pgxQueryRow(t, omstest.Postgres(t).PrimaryURL(prefix+"_beta"), `SELECT ref FROM locations`, &ref))
	assert.Equal(t, "wh-beta", ref)

	// Isolation holds on every cell: an account's role reaches its own database only, and exists on its cell only.
	var alphaPW string
	require.NoError(t, pgxQueryRow(t, tc.control, `SELECT db_password FROM accounts WHERE id = 'alpha'`, &alphaPW))
	asAlpha := func(port int, db string) error {
		return pgxQueryRow(t, fmt.Sprintf("postgres://%s_alpha:%s@127.0.0.1:%d/%s?sslmode=require", prefix, alphaPW, port, db), `SELECT 1`, new(int))
	}
	require.NoError(t, asAlpha(tc.PG.PrimaryPort(), prefix+"_alpha"), "alpha reaches its own database")
	assert.ErrorContains(t, asAlpha(tc.PG.PrimaryPort(), prefix+"_gamma"), "permission denied", "not gamma's, on the same cell")
	mainPort := omstest.Postgres(t).PrimaryPort()
	err = pgxQueryRow(t, fmt.Sprintf("postgres://%s_alpha:%s@127.0.0.1:%d/%s_beta?sslmode=disable", prefix, alphaPW, mainPort, prefix), `SELECT 1`, new(int))
	assert.ErrorContains(t, err, "authentication failed", "nor anything on cell main, where alpha has no role")

	// Migrate reaches every cell: a later run finds every account's schema current, wherever it is.
	require.NoError(t, reg.Migrate(ctx))

	// The stack placing gamma on main while the registry has it on b (a move not recorded yet) changes nothing.
	again, err := reg.AdoptAccount(ctx, &oms.Account{ID: "gamma", Name: "gamma", Cell: postgres.MainCell}, "gamma-pw")
	assert.False(t, again)
	assert.Equal(t, oms.ECONFLICT, oms.ErrorCode(err), "%v", err)
	assert.Contains(t, oms.ErrorMessage(err), `on cell "b" in the registry, not "main"`)
	s, err := reg.Store(ctx, "gamma")
	require.NoError(t, err)
	_, err = s.(*postgres.Store).PutLocation(ctx, &oms.Location{Ref: "wh-2", Name: "wh-2", Type: oms.LocationWarehouse, Lat: ptr(1), Lon: ptr(1)})
	require.NoError(t, err, "gamma still works on cell b")
}

func TestCellServerIsVerifiedAgainstItsOwnCA(t *testing.T) {
	ctx := context.Background()
	tc := newTwoCells(t)
	prefix := fmt.Sprintf("cellca%d", os.Getpid()%100000)
	tc.withAccountOnB(t, prefix)

	// The same cell given another CA: the server is not trusted, for the account's pool as for the control login.
	other := omstest.NewCA(t, "not cell b's")
	wrong := postgres.Cells{postgres.MainCell: tc.cells[postgres.MainCell], "b": tc.cells["b"]}
	wrong["b"] = postgres.Cell{Host: "127.0.0.1", Port: tc.PG.PrimaryPort(), CAFile: other.File}
	bad := tc.open(t, postgres.Options{NamePrefix: prefix, Cells: wrong, DefaultCell: "b"})
	s, err := bad.Store(ctx, "alpha")
	if err == nil {
		_, err = s.(*postgres.Store).PutLocation(ctx, &oms.Location{Ref: "x", Name: "x", Type: oms.LocationWarehouse, Lat: ptr(1), Lon: ptr(1)})
	}
	require.Error(t, err)
	assert.True(t, postgres.IsServerCertificateError(err), "a certificate error: %v", err)
	_, err = bad.CreateAccount(ctx, &oms.Account{ID: "beta", Name: "Beta"})
	require.Error(t, err)
	assert.True(t, postgres.IsServerCertificateError(err), "a certificate error: %v", err)

	// A runtime not told of cell b says which cell it lacks instead of reaching another server.
	none := tc.open(t, postgres.Options{NamePrefix: prefix})
	_, err = none.Store(ctx, "alpha")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `cell "b" is not one of OMS_DB_CELLS [main]`)
}

func pgxQueryRow(t *testing.T, url, sql string, dest ...any) error {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, sql).Scan(dest...)
}
