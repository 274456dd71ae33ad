package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	oms "github.com/omscloud/omscloud/runtime"
	omshttp "github.com/omscloud/omscloud/runtime/http"
	"github.com/omscloud/omscloud/runtime/localenv"
	"github.com/omscloud/omscloud/runtime/metrics"
	"github.com/omscloud/omscloud/runtime/postgres"
	"github.com/omscloud/omscloud/runtime/worker"
)

const devAccount = "demo"

// dev runs the whole runtime in one process on a private PostgreSQL cluster
// that persists under the cache directory between runs: API and worker, the
// outbox consumed straight from PostgreSQL, the cache in process.
func dev(ctx context.Context, cfg *config, log *slog.Logger, stdout io.Writer) error {
	dir := cfg.DevDir
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("dev: no --dir and no user cache directory: %w", err)
		}
		dir = filepath.Join(cache, "omscloud", "dev")
	}
	pg, err := localenv.StartPostgres(ctx, localenv.PostgresOptions{Dir: filepath.Join(dir, "postgres"), Logger: log})
	if err != nil {
		return fmt.Errorf("dev: start postgres: %w", err)
	}
	defer func() {
		if err := pg.Stop(); err != nil {
			log.Error("dev: stop postgres", "err", err)
		}
	}()
	if err := ensureDatabase(ctx, pg.PrimaryURL("postgres"), "oms"); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	cfg.DatabaseURL = pg.URL("oms")
	cache, closeCache, err := openCache(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeCache()
	reg, err := openRegistry(ctx, cfg, log, cache)
	if err != nil {
		return err
	}
	defer reg.Close()
	if err := reg.Migrate(ctx); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	key, err := reg.CreateAccount(ctx, &oms.Account{ID: devAccount, Name: "Demo account"})
	if oms.ErrorCode(err) == oms.ECONFLICT {
		key, err = reg.IssueKey(ctx, devAccount) // the first key was shown on an earlier run
	}
	if err != nil {
		return fmt.Errorf("dev: demo account: %w", err)
	}
	if cfg.AdminToken == "" {
		cfg.AdminToken = "dev_" + randomToken()
	}
	m := metrics.New()
	cache.register(m.Registry)
	proc := &worker.Processor{Accounts: reg, Metrics: m, Logger: log}
	h := omshttp.New(omshttp.Options{Accounts: reg, AdminToken: cfg.AdminToken, Metrics: m,
		Checks: map[string]func(context.Context) error{"postgres": reg.Ping}, Logger: log, Unavailable: postgres.IsUnavailable,
		DenyPrivateWebhooks: !cfg.Webhooks.AllowPrivate})
	stopMetrics, err := serveMetrics(cfg, log, h)
	if err != nil {
		return err
	}
	defer stopMetrics()
	onListen := func(addr string) {
		// Secrets go to stdout for the person at the terminal, never to the log.
		fmt.Fprintf(stdout, "oms dev: serving http://%s (data in %s)\n  demo account API key: %s\n  admin token:          %s\n"+
			"  try: curl -H 'Authorization: Bearer %s' http://%s/v1/orders\n", addr, dir, key, cfg.AdminToken, key, addr)
	}
	return listenAndServe(ctx, cfg, log, h, onListen, func(ctx context.Context) error {
		return runWorker(ctx, log, reg, m, &worker.Local{Processor: proc}, nil, proc, cfg.Concurrency,
			cfg.Webhooks.dispatcher(reg, m, log))
	})
}

// ensureDatabase creates db if it does not exist.
func ensureDatabase(ctx context.Context, adminURL, db string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, db).Scan(&exists); err != nil {
		return fmt.Errorf("check database %s: %w", db, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	return nil
}
