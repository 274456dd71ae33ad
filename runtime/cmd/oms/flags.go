package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"
)

// option is one setting of config: its flag, the OMS_* variable that sets it when the flag is not given, its
// default and the field it fills. Every flag of every command is one of the options below, bound by bindOptions
// and nowhere else.
type option struct {
	flag, env string
	def       any // string, int, time.Duration or bool: the flag's type
	help      string
	field     func(*config) any // a pointer to the field, of the default's type
}

// withDefault is o with another default (the worker listens on another port).
func (o option) withDefault(def any) option { o.def = def; return o }

// withHelp is o with the help of another command's use of it.
func (o option) withHelp(help string) option { o.help = help; return o }

const dbCAHelp = "PEM file of the database server's CA: every connection (control and account databases, pg_dump) " +
	"uses sslmode=verify-ca against it"

const bucketHelp = "bucket URL of the archives: gs://<bucket> or file:///<dir>"

var (
	optLogLevel = option{"log-level", "OMS_LOG_LEVEL", "info", "log level: debug, info, warn or error",
		func(c *config) any { return &c.LogLevel }}

	// Database.
	optDatabaseURL = option{"database-url", "OMS_DATABASE_URL", "",
		"control database URL; list every node with target_session_attrs=read-write so a promoted standby is found",
		func(c *config) any { return &c.DatabaseURL }}
	optDBCAFile        = option{"db-ca-file", "OMS_DB_CA_FILE", "", dbCAHelp, func(c *config) any { return &c.DBCAFile }}
	optAccountDBPrefix = option{"account-db-prefix", "OMS_ACCOUNT_DB_PREFIX", "",
		"prefix of account database and role names (default: the control database name)",
		func(c *config) any { return &c.AccountDBPrefix }}
	optDBCells = option{"db-cells", "OMS_DB_CELLS", "",
		`database servers ("cells") holding the accounts' databases, JSON: {"<cell>": {"host": "<ip>", "caFile": "<PEM>"}, …} ` +
			`with "main", the control database's; empty: every account is on the control database's server`,
		func(c *config) any { return &c.DBCells }}
	optDefaultCell = option{"default-cell", "OMS_DB_DEFAULT_CELL", "",
		"cell of the accounts created here or through the API (default main)", func(c *config) any { return &c.DefaultCell }}
	optMaxConns = option{"max-conns-per-account", "OMS_MAX_CONNS_PER_ACCOUNT", 8, "connection pool size per account database",
		func(c *config) any { return &c.MaxConns }}

	// Redis.
	optRedisSentinels = option{"redis-sentinels", "OMS_REDIS_SENTINELS", "",
		"comma-separated Redis Sentinel addresses (host:port); empty caches in process", func(c *config) any { return &c.RedisSentinels }}
	optRedisMaster   = option{"redis-master", "OMS_REDIS_MASTER", "oms", "Redis Sentinel master name", func(c *config) any { return &c.RedisMaster }}
	optRedisPassword = option{"redis-password", "OMS_REDIS_PASSWORD", "", "Redis password (prefer the environment variable)",
		func(c *config) any { return &c.RedisPassword }}
	optRedisSentinelPassword = option{"redis-sentinel-password", "OMS_REDIS_SENTINEL_PASSWORD", "",
		"Redis Sentinel password, if not the Redis password (prefer the environment variable)",
		func(c *config) any { return &c.RedisSentinelPassword }}
	optRedisKeyPrefix = option{"redis-key-prefix", "OMS_REDIS_KEY_PREFIX", "oms:",
		"prefix of every cache key (to share one Redis between environments)", func(c *config) any { return &c.RedisKeyPrefix }}

	// HTTP.
	optListen        = option{"listen", "OMS_LISTEN", "127.0.0.1:8080", "HTTP listen address", func(c *config) any { return &c.Listen }}
	optMetricsListen = option{"metrics-listen", "OMS_METRICS_LISTEN", "127.0.0.1:9090",
		"listen address of /metrics (and /healthz, /readyz), apart from the API, which serves no metrics; empty serves none",
		func(c *config) any { return &c.MetricsListen }}
	optPprof = option{"pprof", "OMS_PPROF", false,
		"serve Go's profiles (/debug/pprof/) beside /metrics (serve: --metrics-listen; worker: its port), for profiling; off as deployed",
		func(c *config) any { return &c.Pprof }}
	optShutdownGrace = option{"shutdown-grace", "OMS_SHUTDOWN_GRACE", 25 * time.Second,
		"on SIGTERM, the longest wait for in-flight work before exiting", func(c *config) any { return &c.ShutdownGrace }}
	optDrainDelay = option{"drain-delay", "OMS_DRAIN_DELAY", 5 * time.Second,
		"on SIGTERM, how long /readyz reports 503 before the listener closes (lets load balancers notice)",
		func(c *config) any { return &c.DrainDelay }}
	optAdminToken = option{"admin-token", "OMS_ADMIN_TOKEN", "", "bearer token for the account endpoints; empty disables them",
		func(c *config) any { return &c.AdminToken }}

	// Worker.
	optAMQPURL = option{"amqp-url", "OMS_AMQP_URL", "", "RabbitMQ URL; empty consumes the outbox straight from PostgreSQL",
		func(c *config) any { return &c.AMQPURL }}
	optConcurrency = option{"concurrency", "OMS_WORKER_CONCURRENCY", 4, "parallel event consumers",
		func(c *config) any { return &c.Concurrency }}
	optWatchBackups = option{"backup-url", "OMS_BACKUP_URL", "",
		"backup bucket (gs:// or file://) whose newest archive per tier the worker exports for the freshness alerts; empty exports none",
		func(c *config) any { return &c.BackupURL }}

	// Webhooks (worker, dev).
	optWebhookConcurrency = option{"webhook-concurrency", "OMS_WEBHOOK_CONCURRENCY", 8, "webhook attempts in flight per account",
		func(c *config) any { return &c.Webhooks.Concurrency }}
	optWebhookTimeout = option{"webhook-timeout", "OMS_WEBHOOK_TIMEOUT", 10 * time.Second, "timeout of one webhook attempt",
		func(c *config) any { return &c.Webhooks.Timeout }}
	optWebhookBaseDelay = option{"webhook-base-delay", "OMS_WEBHOOK_BASE_DELAY", 5 * time.Second,
		"wait after a webhook's first failed attempt; doubles per attempt (with jitter) up to --webhook-max-delay",
		func(c *config) any { return &c.Webhooks.BaseDelay }}
	optWebhookMaxDelay = option{"webhook-max-delay", "OMS_WEBHOOK_MAX_DELAY", time.Hour, "longest wait between webhook attempts",
		func(c *config) any { return &c.Webhooks.MaxDelay }}
	optWebhookMaxAttempts = option{"webhook-max-attempts", "OMS_WEBHOOK_MAX_ATTEMPTS", 10,
		"attempts before a webhook delivery is dead-lettered", func(c *config) any { return &c.Webhooks.MaxAttempts }}
	optWebhookRetention = option{"webhook-retention", "OMS_WEBHOOK_RETENTION", 30 * 24 * time.Hour,
		"how long delivered webhook deliveries are kept", func(c *config) any { return &c.Webhooks.Retention }}
	optWebhookAllowPrivate = option{"webhook-allow-private-networks", "OMS_WEBHOOK_ALLOW_PRIVATE_NETWORKS", false,
		"let webhooks reach loopback and private addresses (off: a webhook URL cannot reach the cluster's internals)",
		func(c *config) any { return &c.Webhooks.AllowPrivate }}

	// Migrate and account create.
	optAdoptAccounts = option{"accounts", "OMS_ACCOUNTS", "",
		"comma-separated ids of provisioned accounts to register by adopting their database and role (no API key is issued)",
		func(c *config) any { return &c.AdoptAccounts }}
	optAccountPasswordsDir = option{"account-passwords-dir", "OMS_ACCOUNT_PASSWORDS_DIR", "",
		"directory with one file per --accounts id holding its database password", func(c *config) any { return &c.AccountPasswordsDir }}
	optAccountCells = option{"account-cells", "OMS_ACCOUNT_CELLS", "",
		`cell of each --accounts id, JSON {"<id>": "<cell>", …} (with --db-cells; default: main)`,
		func(c *config) any { return &c.AccountCells }}
	optAccountID   = option{"id", "OMS_ACCOUNT_ID", "", "account id: [a-z][a-z0-9-]{2,30}", func(c *config) any { return &c.AccountID }}
	optAccountName = option{"name", "OMS_ACCOUNT_NAME", "", "account display name", func(c *config) any { return &c.AccountName }}
	optMoveTo      = option{"to", "OMS_ACCOUNT_MOVE_TO", "", "the cell to move the account's database to (one of --db-cells)",
		func(c *config) any { return &c.MoveTo }}
	optMovePasswordFile = option{"password-file", "OMS_ACCOUNT_MOVE_PASSWORD_FILE", "",
		"file holding the password of the account's role on the target cell, when the stack provisioned it there (database.moving)",
		func(c *config) any { return &c.MovePasswordFile }}
	optMoveCatchUp = option{"max-catch-up", "OMS_ACCOUNT_MOVE_MAX_CATCH_UP", 5 * time.Minute,
		"longest wait, after the initial copy, for the copy to come within 1 MiB of the source before the pause; past it the move fails, changing nothing",
		func(c *config) any { return &c.MoveMaxCatchUp }}
	optMovePause = option{"max-pause", "OMS_ACCOUNT_MOVE_MAX_PAUSE", 10 * time.Second,
		"longest pause of the account's writes: a copy not caught up by then resumes writes on the source and fails the move, changing nothing",
		func(c *config) any { return &c.MoveMaxPause }}

	// Dev.
	optDevDir = option{"dir", "OMS_DEV_DIR", "",
		"where the private PostgreSQL cluster lives (default: <user cache dir>/omscloud/dev)", func(c *config) any { return &c.DevDir }}

	// Backup and restore.
	optBackupTo = option{"to", "OMS_BACKUP_URL", "", bucketHelp, func(c *config) any { return &c.BackupURL }}
	optKeyFile  = option{"key-file", "OMS_BACKUP_KEY_FILE", "",
		"file holding the 32-byte archive key in base64 (or set OMS_BACKUP_KEY to the base64 key)", func(c *config) any { return &c.KeyFile }}
	optMediaURL = option{"media-url", "OMS_MEDIA_URL", "", "media bucket URL (gs:// or file://); empty skips media",
		func(c *config) any { return &c.MediaURL }}
	optPGBinDir = option{"pg-bin-dir", "OMS_PG_BIN_DIR", "",
		"directory of pg_dump/pg_restore (default: PATH, else the newest /usr/lib/postgresql/*/bin)", func(c *config) any { return &c.PGBinDir }}
	optTier = option{"tier", "OMS_BACKUP_TIER", "", "hourly, weekly or monthly: the archive's prefix and retention",
		func(c *config) any { return &c.Tier }}
	optRelease = option{"release", "OMS_RELEASE", "", "release identity recorded in the archive (the image reference)",
		func(c *config) any { return &c.Release }}
	optListJSON = option{"json", "OMS_BACKUP_LIST_JSON", false, "print JSON instead of a table", func(c *config) any { return &c.JSON }}
	optPruneNow = option{"now", "OMS_BACKUP_PRUNE_NOW", "", "the time to prune as of, RFC 3339 (default: now; for tests and drills)",
		func(c *config) any { return &c.PruneNow }}
	optPruneDryRun = option{"dry-run", "OMS_BACKUP_PRUNE_DRY_RUN", false, "print what would be deleted, delete nothing",
		func(c *config) any { return &c.DryRun }}
	optRestoreFrom = option{"from", "OMS_BACKUP_URL", "", bucketHelp, func(c *config) any { return &c.RestoreFrom }}
	optRestoreID   = option{"id", "OMS_RESTORE_ID", "", "id of the archive to restore (see oms backup list)",
		func(c *config) any { return &c.RestoreID }}
	optRestoreLatest = option{"latest", "OMS_RESTORE_LATEST", false, "restore the newest archive of any tier",
		func(c *config) any { return &c.Latest }}
	optRestoreForce = option{"force", "OMS_RESTORE_FORCE", false,
		"replace account databases even if they have taken writes since their last restore (the replaced ones are kept as <name>_old_<time>)",
		func(c *config) any { return &c.Force }}
)

// Groups of options that several commands share.
var (
	databaseOptions = []option{optDatabaseURL, optDBCAFile, optDBCells, optDefaultCell, optAccountDBPrefix, optMaxConns}
	redisOptions    = []option{optRedisSentinels, optRedisMaster, optRedisPassword, optRedisSentinelPassword, optRedisKeyPrefix}
	webhookOptions  = []option{optWebhookConcurrency, optWebhookTimeout, optWebhookBaseDelay, optWebhookMaxDelay,
		optWebhookMaxAttempts, optWebhookRetention}
	// archiveDatabaseOptions are what backup and restore read and write.
	archiveDatabaseOptions = []option{optDatabaseURL.withHelp("control database URL"), optDBCAFile, optDBCells, optAccountDBPrefix,
		optKeyFile, optMediaURL, optPGBinDir}
)

func httpOptions(listen string) []option {
	return []option{optListen.withDefault(listen), optShutdownGrace, optDrainDelay}
}

// bindOptions declares opts on fs, with their defaults and their variables in the help.
func bindOptions(fs *pflag.FlagSet, c *config, opts []option) {
	for _, o := range opts {
		help := fmt.Sprintf("%s (%s)", o.help, o.env)
		switch def := o.def.(type) {
		case string:
			fs.StringVar(o.field(c).(*string), o.flag, def, help)
		case int:
			fs.IntVar(o.field(c).(*int), o.flag, def, help)
		case time.Duration:
			fs.DurationVar(o.field(c).(*time.Duration), o.flag, def, help)
		case bool:
			fs.BoolVar(o.field(c).(*bool), o.flag, def, help)
		default:
			panic(fmt.Sprintf("option --%s: unsupported default %T", o.flag, o.def))
		}
	}
}

// applyEnvironment sets every option not given on the command line from its variable, if set. A value that does
// not parse is recorded for validate, which reports every problem at once.
func applyEnvironment(fs *pflag.FlagSet, c *config, opts []option, getenv func(string) string) {
	for _, o := range opts {
		v := getenv(o.env)
		if v == "" || fs.Changed(o.flag) {
			continue
		}
		if err := fs.Set(o.flag, v); err != nil {
			c.envErrs = append(c.envErrs, fmt.Sprintf("%s=%q: %s", o.env, v, expected(o.def)))
		}
	}
}

// expected says what a variable for an option with this default must hold.
func expected(def any) string {
	return map[string]string{"int": "not a whole number", "duration": "not a duration (e.g. 25s)", "bool": "use true or false",
		"string": "invalid"}[kind(def)]
}

// kind names the type of an option's default.
func kind(def any) string {
	switch def.(type) {
	case int:
		return "int"
	case time.Duration:
		return "duration"
	case bool:
		return "bool"
	}
	return "string"
}
