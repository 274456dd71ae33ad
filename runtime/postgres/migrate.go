package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations
var migrationFS embed.FS

// migration is one embedded SQL file; its version is the number before the first '_'.
type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations(dir string) ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, path.Join("migrations", dir))
	if err != nil {
		return nil, fmt.Errorf("read migrations %s: %w", dir, err)
	}
	var ms []migration
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a version number", e.Name())
		}
		b, err := migrationFS.ReadFile(path.Join("migrations", dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// migrate applies the embedded migrations of dir ("control" or "account") that
// the database has not recorded yet, each in its own transaction. An advisory
// lock taken in each transaction makes concurrent migrators (several pods
// starting at once) apply every migration exactly once.
func migrate(ctx context.Context, pool *pgxpool.Pool, dir string) (applied int, err error) {
	return migrateTo(ctx, pool, dir, 0)
}

// migrateTo is migrate stopping after version upTo (0: the latest).
func migrateTo(ctx context.Context, pool *pgxpool.Pool, dir string, upTo int) (applied int, err error) {
	ms, err := loadMigrations(dir)
	if err != nil {
		return 0, err
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, m := range ms {
		if upTo > 0 && m.version > upTo {
			break
		}
		done, err := applyMigration(ctx, pool, m)
		if err != nil {
			return applied, err
		}
		if done {
			applied++
		}
	}
	return applied, nil
}

func applyMigration(ctx context.Context, pool *pgxpool.Pool, m migration) (bool, error) {
	var done bool
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7413001)`); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.version).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
			return err
		}
		done = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("migration %s: %w", m.name, err)
	}
	return done, nil
}

// migrateAccount migrates an account database and installs the default
// workflows it lacks (they are data, not schema, so they live in Go).
func migrateAccount(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	n, err := migrate(ctx, pool, "account")
	if err != nil {
		return n, err
	}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return installDefaultWorkflows(ctx, tx) }); err != nil {
		return n, fmt.Errorf("default workflows: %w", err)
	}
	return n, nil
}
