// Command oms is the OMS runtime: the HTTP API (serve), the event worker
// (worker), schema migrations (migrate), account provisioning (account create),
// encrypted backups (backup, backup list, backup prune, restore) and a
// self-contained local mode (dev).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/omscloud/omscloud/runtime/postgres"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "oms:", err)
		os.Exit(1)
	}
}

// command is one oms command: the name validate knows it by, its options and what it runs.
type command struct {
	name, short string
	options     []option
	// preset sets what the command fixes rather than reads (dev always lets webhooks reach this machine).
	preset func(*config)
	run    func(ctx context.Context, cfg *config, log *slog.Logger, stdout io.Writer) error
}

func commands() []command {
	return []command{
		{name: "serve", short: "Run the HTTP API",
			options: concat(databaseOptions, redisOptions, httpOptions("127.0.0.1:8080"),
				[]option{optMetricsListen, optPprof, optAdminToken, optWebhookAllowPrivate}),
			run: func(ctx context.Context, cfg *config, log *slog.Logger, _ io.Writer) error {
				return serve(ctx, cfg, log)
			}},
		{name: "worker", short: "Relay the outbox, process events and send webhooks",
			options: concat(databaseOptions, redisOptions, httpOptions("127.0.0.1:8081"), []option{optAMQPURL, optConcurrency, optPprof},
				webhookOptions, []option{optWebhookAllowPrivate, optWatchBackups}),
			run: func(ctx context.Context, cfg *config, log *slog.Logger, _ io.Writer) error {
				return work(ctx, cfg, log)
			}},
		{name: "migrate", short: "Migrate the control database and every account database",
			options: concat(databaseOptions, []option{optAdoptAccounts, optAccountPasswordsDir, optAccountCells}),
			run: func(ctx context.Context, cfg *config, log *slog.Logger, _ io.Writer) error {
				return migrateAll(ctx, cfg, log)
			}},
		{name: "account create", short: "Create an account (--id, --name) and print its API key",
			options: concat(databaseOptions, []option{optAccountID, optAccountName}), run: createAccount},
		{name: "account move", short: "Move an account's database to another cell (--id, --to) while it takes writes; print what it took",
			options: concat(databaseOptions, []option{optAccountID, optMoveTo, optMovePause, optMoveCatchUp, optMovePasswordFile}), run: moveAccount},
		{name: "dev", short: "Run everything locally with no configuration (private PostgreSQL)",
			options: concat(httpOptions("127.0.0.1:8080"), []option{
				optAdminToken.withHelp("bearer token for the account endpoints; generated and printed when empty"),
				optDevDir, optConcurrency, optMetricsListen.withDefault("")}, webhookOptions),
			preset: func(c *config) { c.Webhooks.AllowPrivate = true }, // receivers run on this machine
			run:    dev},
		{name: "backup", short: "Write an encrypted archive of every account, the registry and media (--tier, --to)",
			options: concat(archiveDatabaseOptions, []option{optBackupTo, optTier, optRelease}), run: runBackup},
		{name: "backup list", short: "List the archives in a bucket (--to)",
			options: concat([]option{optBackupTo, optListJSON}),
			run: func(ctx context.Context, cfg *config, _ *slog.Logger, stdout io.Writer) error {
				return listBackups(ctx, cfg, stdout)
			}},
		{name: "backup prune", short: "Delete archives outside the retention: hourly 7d, weekly 28d, monthly 365d (--to)",
			options: concat([]option{optBackupTo, optPruneNow, optPruneDryRun}), run: pruneBackups},
		{name: "restore", short: "Restore an archive (--from, --id or --latest)",
			options: concat(archiveDatabaseOptions, []option{optRestoreFrom, optRestoreID, optRestoreLatest, optRestoreForce}),
			run:     runRestore},
	}
}

// concat joins groups of options and adds --log-level, which every command has.
func concat(groups ...[]option) []option {
	var out []option
	for _, g := range groups {
		out = append(out, g...)
	}
	return append(out, optLogLevel)
}

// run is main without the process: tests call it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	root := newRoot(stdout, stderr, getenv, execute)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// executor runs a command once its configuration is parsed and valid; tests substitute one that only records it.
type executor func(ctx context.Context, c command, cfg *config, stdout, stderr io.Writer) error

func execute(ctx context.Context, c command, cfg *config, stdout, stderr io.Writer) error {
	return explainDatabaseError(cfg, c.run(ctx, cfg, newLogger(stderr, cfg.LogLevel), stdout))
}

// newRoot is the oms command tree, in the shape of omsctl's: help on every command (exit 0), an error naming
// the command for bad usage (exit 1). getenv reads the OMS_* variables.
func newRoot(stdout, stderr io.Writer, getenv func(string) string, exec executor) *cobra.Command {
	root := &cobra.Command{
		Use:   "oms",
		Short: "The OMS runtime: API, worker, migrations, accounts, backups and a local mode",
		Long: "The OMS runtime: API, worker, migrations, accounts, backups and a local mode.\n\n" +
			"Every flag can also be set with the OMS_* environment variable named in its help; a flag given on the command line wins.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE:          usageError(stderr, "no command given"),
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%s: %w (see %q)", cmd.CommandPath(), err, cmd.CommandPath()+" --help")
	})
	parents := map[string]*cobra.Command{"": root}
	for _, c := range commands() {
		parentPath, use := "", c.name
		if i := strings.LastIndex(c.name, " "); i >= 0 {
			parentPath, use = c.name[:i], c.name[i+1:]
		}
		parent := parents[parentPath]
		if parent == nil { // a group without a command of its own: oms account
			parent = &cobra.Command{Use: parentPath, Short: "Manage " + parentPath + "s", Args: cobra.NoArgs,
				RunE: usageError(stderr, fmt.Sprintf("give a command: %q", "oms "+c.name))}
			root.AddCommand(parent)
			parents[parentPath] = parent
		}
		cmd := newCommand(c, use, stdout, getenv, exec)
		parent.AddCommand(cmd)
		parents[c.name] = cmd
	}
	return root
}

// usageError prints the command's usage on stderr and fails with msg.
func usageError(stderr io.Writer, msg string) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		cmd.SetOut(stderr)
		_ = cmd.Usage()
		return errors.New(msg)
	}
}

// newCommand binds c's options to a fresh config: the flags given, then the variables of the flags not given.
func newCommand(c command, use string, stdout io.Writer, getenv func(string) string, exec executor) *cobra.Command {
	cfg := &config{}
	cmd := &cobra.Command{
		Use:   use,
		Short: c.short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			applyEnvironment(cmd.Flags(), cfg, c.options, getenv)
			cfg.command = c.name
			if c.preset != nil {
				c.preset(cfg)
			}
			if c.name == "backup" || c.name == "restore" {
				cfg.BackupKey = getenv("OMS_BACKUP_KEY") // a key is never a flag value (it would show in ps)
			}
			if err := cfg.validate(c.name); err != nil {
				return err
			}
			return exec(cmd.Context(), c, cfg, stdout, cmd.ErrOrStderr())
		},
	}
	bindOptions(cmd.Flags(), cfg, c.options)
	return cmd
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

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated in config.validate
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}
