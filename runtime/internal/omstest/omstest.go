// Package omstest holds the helpers the runtime's real-service tests share:
// one local PostgreSQL per test binary (started with localenv) and a fresh
// control database per test, dropped with its account databases at cleanup.
package omstest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/localenv"
	"github.com/omscloud/omscloud/runtime/localenv/localenvtest"
	"github.com/omscloud/omscloud/runtime/postgres"
)

var (
	pgOnce sync.Once
	pg     *localenv.Postgres
	pgErr  error
	pgDir  string
)

// settings of every test server; wal_level=logical lets any of them be the source of an account move.
var settings = map[string]string{"max_connections": "400", "fsync": "off", "full_page_writes": "off", "wal_level": "logical"}

// Postgres returns the test binary's shared cluster (primary + streaming standby),
// starting it on first use. Call Stop from TestMain.
func Postgres(t testing.TB) *localenv.Postgres {
	t.Helper()
	localenvtest.RequireBinaries(t, localenvtest.PostgresBinaries...)
	pgOnce.Do(func() {
		pgDir, pgErr = os.MkdirTemp("", "omstest-pg-")
		if pgErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		pg, pgErr = localenv.StartPostgres(ctx, localenv.PostgresOptions{Dir: pgDir, Standby: true,
			Settings: settings})
	})
	require.NoError(t, pgErr, "start postgres")
	return pg
}

// Stop stops the shared cluster, if started, and removes its files.
func Stop() {
	if pg != nil {
		_ = pg.Stop()
	}
	if pgDir != "" {
		_ = os.RemoveAll(pgDir)
	}
}

// ControlDB creates a fresh control database and returns its multi-host URL;
// the database is dropped at cleanup.
func ControlDB(t testing.TB) string {
	t.Helper()
	p := Postgres(t)
	name := fmt.Sprintf("t%d_%x", time.Now().UnixNano()%1e6, randomSuffix())
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.PrimaryURL("postgres"))
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	require.NoError(t, err)
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, p.PrimaryURL("postgres"))
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return p.URL(name)
}

// Registry opens a migrated registry on a fresh control database. Every
// account created through it is dropped (database and role) at cleanup.
func Registry(t testing.TB, cache oms.Cache) (*postgres.Registry, string) {
	t.Helper()
	url := ControlDB(t)
	ctx := context.Background()
	reg, err := postgres.Open(ctx, postgres.Options{URL: url, Cache: cache})
	require.NoError(t, err)
	require.NoError(t, reg.Migrate(ctx))
	t.Cleanup(func() { DropAccounts(t, url) })
	t.Cleanup(reg.Close)
	return reg, url
}

// DropAccounts drops every account of the registry at url (database and role).
func DropAccounts(t testing.TB, url string) {
	ctx := context.Background()
	reg, err := postgres.Open(ctx, postgres.Options{URL: url})
	if err != nil {
		t.Errorf("drop accounts: %v", err)
		return
	}
	defer reg.Close()
	rows, err := reg.AllAccountIDs(ctx)
	if err != nil {
		return // the control database was never migrated
	}
	for _, id := range rows {
		if err := reg.DropAccount(ctx, id); err != nil {
			t.Errorf("drop account %s: %v", id, err)
		}
	}
}

func randomSuffix() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}
