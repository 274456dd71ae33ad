// Command oms is the OMS runtime: the HTTP API (serve), the event worker
// (worker), schema migrations (migrate), account provisioning (account create),
// encrypted backups (backup, backup list, backup prune, restore) and a
// self-contained local mode (dev).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/omscloud/omscloud/runtime/postgres"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "oms:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage: oms <command> [flags]

commands:
  serve            run the HTTP API
  worker           relay the outbox, process events and send webhooks
  migrate          migrate the control database and every account database
  account create   create an account (--id, --name) and print its API key
  dev              run everything locally with no configuration (private PostgreSQL)
  backup           write an encrypted archive of every account, the registry and media (--tier, --to)
  backup list      list the archives in a bucket (--to)
  backup prune     delete archives outside the retention: hourly 7d, weekly 28d, monthly 365d (--to)
  restore          restore an archive (--from, --id or --latest)

Every flag can also be set with the OMS_* environment variable named in its help.
Run "oms <command> -h" for the flags of a command.
`

// run is main without the process: tests call it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	if cmd == "account" {
		if len(rest) == 0 || rest[0] != "create" {
			fmt.Fprint(stderr, usage)
			return errors.New(`unknown command: use "oms account create"`)
		}
		cmd, rest = "account create", rest[1:]
	}
	if cmd == "backup" && len(rest) > 0 && (rest[0] == "list" || rest[0] == "prune") {
		cmd, rest = "backup "+rest[0], rest[1:]
	}
	cfg := &config{}
	fs := cfg.flags(cmd, stderr, getenv)
	if fs == nil {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", cmd, fs.Args())
	}
	if err := cfg.validate(cmd); err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	return explainDatabaseError(cfg, dispatch(ctx, cmd, cfg, log, stdout))
}

// explainDatabaseError names the flag to fix when the database server's certificate fails verification.
func explainDatabaseError(cfg *config, err error) error {
	if err == nil || !postgres.IsServerCertificateError(err) {
		return err
	}
	if cfg.DBCAFile == "" {
		return fmt.Errorf("%w: set --db-ca-file/OMS_DB_CA_FILE to the database server's CA certificate (PEM)", err)
	}
	return fmt.Errorf("%w: the database server's certificate is not signed by the CA in --db-ca-file/OMS_DB_CA_FILE (%s): "+
		"give the Cloud SQL instance's server CA", err, cfg.DBCAFile)
}

func dispatch(ctx context.Context, cmd string, cfg *config, log *slog.Logger, stdout io.Writer) error {
	switch cmd {
	case "serve":
		return serve(ctx, cfg, log)
	case "worker":
		return work(ctx, cfg, log)
	case "migrate":
		return migrateAll(ctx, cfg, log)
	case "account create":
		return createAccount(ctx, cfg, log, stdout)
	case "dev":
		return dev(ctx, cfg, log, stdout)
	case "backup":
		return runBackup(ctx, cfg, log, stdout)
	case "backup list":
		return listBackups(ctx, cfg, stdout)
	case "backup prune":
		return pruneBackups(ctx, cfg, log, stdout)
	case "restore":
		return runRestore(ctx, cfg, log, stdout)
	}
	return fmt.Errorf("unknown command %q", cmd)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated in config.validate
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}
