package main

import (
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/postgres"
)

// config is every setting of every command; each flag has an OMS_* variable.
type config struct {
	Listen      string
	AdminToken  string
	DatabaseURL string
	// DBCAFile is the database server's CA (PEM); validate makes DatabaseURL verify against it.
	DBCAFile        string
	AccountDBPrefix string
	// AdoptAccounts and AccountPasswordsDir let migrate register accounts provisioned by the infrastructure.
	AdoptAccounts       string
	AccountPasswordsDir string
	RedisSentinels      string
	RedisMaster         string
	RedisPassword       string
	// RedisSentinelPassword is empty for "the Redis password" (redis.Options.SentinelPassword).
	RedisSentinelPassword string
	RedisKeyPrefix        string
	AMQPURL               string
	LogLevel              string
	ShutdownGrace         time.Duration
	DrainDelay            time.Duration
	Concurrency           int
	MaxConns              int
	AccountID             string
	AccountName           string
	DevDir                string
	Webhooks              webhookConfig
	// Backup and restore.
	Tier        string
	BackupURL   string
	KeyFile     string
	BackupKey   string // OMS_BACKUP_KEY only: a key is never a flag value (it would show in ps)
	MediaURL    string
	Release     string
	PGBinDir    string
	PruneNow    string
	DryRun      bool
	JSON        bool
	RestoreFrom string
	RestoreID   string
	Latest      bool
	Force       bool

	envErrs []string
}

func (c *config) str(fs *flag.FlagSet, getenv func(string) string, p *string, name, env, def, help string) {
	if v := getenv(env); v != "" {
		def = v
	}
	fs.StringVar(p, name, def, fmt.Sprintf("%s (%s)", help, env))
}

func (c *config) dur(fs *flag.FlagSet, getenv func(string) string, p *time.Duration, name, env string, def time.Duration, help string) {
	if v := getenv(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			c.envErrs = append(c.envErrs, fmt.Sprintf("%s=%q: not a duration (e.g. 25s)", env, v))
		} else {
			def = d
		}
	}
	fs.DurationVar(p, name, def, fmt.Sprintf("%s (%s)", help, env))
}

func (c *config) int(fs *flag.FlagSet, getenv func(string) string, p *int, name, env string, def int, help string) {
	if v := getenv(env); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			c.envErrs = append(c.envErrs, fmt.Sprintf("%s=%q: not a whole number", env, v))
		} else {
			def = n
		}
	}
	fs.IntVar(p, name, def, fmt.Sprintf("%s (%s)", help, env))
}

func (c *config) boolean(fs *flag.FlagSet, getenv func(string) string, p *bool, name, env string, help string) {
	def := false
	if v := getenv(env); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			c.envErrs = append(c.envErrs, fmt.Sprintf("%s=%q: use true or false", env, v))
		}
		def = b
	}
	fs.BoolVar(p, name, def, fmt.Sprintf("%s (%s)", help, env))
}

// flags declares the flags of cmd; nil for an unknown command.
func (c *config) flags(cmd string, stderr io.Writer, getenv func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet("oms "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.str(fs, getenv, &c.LogLevel, "log-level", "OMS_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	db := func() {
		c.str(fs, getenv, &c.DatabaseURL, "database-url", "OMS_DATABASE_URL", "",
			"control database URL; list every node with target_session_attrs=read-write so a promoted standby is found")
		c.str(fs, getenv, &c.DBCAFile, "db-ca-file", "OMS_DB_CA_FILE", "", dbCAHelp)
		c.str(fs, getenv, &c.AccountDBPrefix, "account-db-prefix", "OMS_ACCOUNT_DB_PREFIX", "",
			"prefix of account database and role names (default: the control database name)")
		c.int(fs, getenv, &c.MaxConns, "max-conns-per-account", "OMS_MAX_CONNS_PER_ACCOUNT", 8, "connection pool size per account database")
	}
	redis := func() {
		c.str(fs, getenv, &c.RedisSentinels, "redis-sentinels", "OMS_REDIS_SENTINELS", "",
			"comma-separated Redis Sentinel addresses (host:port); empty caches in process")
		c.str(fs, getenv, &c.RedisMaster, "redis-master", "OMS_REDIS_MASTER", "oms", "Redis Sentinel master name")
		c.str(fs, getenv, &c.RedisPassword, "redis-password", "OMS_REDIS_PASSWORD", "", "Redis password (prefer the environment variable)")
		c.str(fs, getenv, &c.RedisSentinelPassword, "redis-sentinel-password", "OMS_REDIS_SENTINEL_PASSWORD", "",
			"Redis Sentinel password, if not the Redis password (prefer the environment variable)")
		c.str(fs, getenv, &c.RedisKeyPrefix, "redis-key-prefix", "OMS_REDIS_KEY_PREFIX", "oms:", "prefix of every cache key (to share one Redis between environments)")
	}
	http := func(defListen string) {
		c.str(fs, getenv, &c.Listen, "listen", "OMS_LISTEN", defListen, "HTTP listen address")
		c.dur(fs, getenv, &c.ShutdownGrace, "shutdown-grace", "OMS_SHUTDOWN_GRACE", 25*time.Second,
			"on SIGTERM, the longest wait for in-flight work before exiting")
		c.dur(fs, getenv, &c.DrainDelay, "drain-delay", "OMS_DRAIN_DELAY", 5*time.Second,
			"on SIGTERM, how long /readyz reports 503 before the listener closes (lets load balancers notice)")
	}
	switch cmd {
	case "serve":
		db()
		redis()
		http("127.0.0.1:8080")
		c.str(fs, getenv, &c.AdminToken, "admin-token", "OMS_ADMIN_TOKEN", "", "bearer token for the account endpoints; empty disables them")
	case "worker":
		db()
		redis()
		http("127.0.0.1:8081")
		c.str(fs, getenv, &c.AMQPURL, "amqp-url", "OMS_AMQP_URL", "", "RabbitMQ URL; empty consumes the outbox straight from PostgreSQL")
		c.int(fs, getenv, &c.Concurrency, "concurrency", "OMS_WORKER_CONCURRENCY", 4, "parallel event consumers")
		c.webhookFlags(fs, getenv, true)
		c.str(fs, getenv, &c.BackupURL, "backup-url", "OMS_BACKUP_URL", "",
			"backup bucket (gs:// or file://) whose newest archive per tier the worker exports for the freshness alerts; empty exports none")
	case "migrate":
		db()
		c.str(fs, getenv, &c.AdoptAccounts, "accounts", "OMS_ACCOUNTS", "",
			"comma-separated ids of provisioned accounts to register by adopting their database and role (no API key is issued)")
		c.str(fs, getenv, &c.AccountPasswordsDir, "account-passwords-dir", "OMS_ACCOUNT_PASSWORDS_DIR", "",
			"directory with one file per --accounts id holding its database password")
	case "account create":
		db()
		c.str(fs, getenv, &c.AccountID, "id", "OMS_ACCOUNT_ID", "", "account id: [a-z][a-z0-9-]{2,30}")
		c.str(fs, getenv, &c.AccountName, "name", "OMS_ACCOUNT_NAME", "", "account display name")
	case "dev":
		http("127.0.0.1:8080")
		c.str(fs, getenv, &c.AdminToken, "admin-token", "OMS_ADMIN_TOKEN", "", "bearer token for the account endpoints; generated and printed when empty")
		c.str(fs, getenv, &c.DevDir, "dir", "OMS_DEV_DIR", "", "where the private PostgreSQL cluster lives (default: <user cache dir>/omscloud/dev)")
		c.int(fs, getenv, &c.Concurrency, "concurrency", "OMS_WORKER_CONCURRENCY", 4, "parallel event consumers")
		c.webhookFlags(fs, getenv, false)
	case "backup", "backup list", "backup prune", "restore":
		c.backupFlags(fs, getenv, cmd)
	default:
		return nil
	}
	return fs
}

const dbCAHelp = "PEM file of the database server's CA: every connection (control and account databases, pg_dump) " +
	"uses sslmode=verify-ca against it"

// backupFlags declares the flags of backup, backup list, backup prune and restore.
func (c *config) backupFlags(fs *flag.FlagSet, getenv func(string) string, cmd string) {
	bucket := "bucket URL of the archives: gs://<bucket> or file:///<dir>"
	withDB := func() {
		c.str(fs, getenv, &c.DatabaseURL, "database-url", "OMS_DATABASE_URL", "", "control database URL")
		c.str(fs, getenv, &c.DBCAFile, "db-ca-file", "OMS_DB_CA_FILE", "", dbCAHelp)
		c.str(fs, getenv, &c.AccountDBPrefix, "account-db-prefix", "OMS_ACCOUNT_DB_PREFIX", "",
			"prefix of account database and role names (default: the control database name)")
		c.str(fs, getenv, &c.KeyFile, "key-file", "OMS_BACKUP_KEY_FILE", "",
			"file holding the 32-byte archive key in base64 (or set OMS_BACKUP_KEY to the base64 key)")
		c.str(fs, getenv, &c.MediaURL, "media-url", "OMS_MEDIA_URL", "", "media bucket URL (gs:// or file://); empty skips media")
		c.str(fs, getenv, &c.PGBinDir, "pg-bin-dir", "OMS_PG_BIN_DIR", "",
			"directory of pg_dump/pg_restore (default: PATH, else the newest /usr/lib/postgresql/*/bin)")
		c.BackupKey = getenv("OMS_BACKUP_KEY")
	}
	switch cmd {
	case "backup":
		withDB()
		c.str(fs, getenv, &c.BackupURL, "to", "OMS_BACKUP_URL", "", bucket)
		c.str(fs, getenv, &c.Tier, "tier", "OMS_BACKUP_TIER", "", "hourly, weekly or monthly: the archive's prefix and retention")
		c.str(fs, getenv, &c.Release, "release", "OMS_RELEASE", "", "release identity recorded in the archive (the image reference)")
	case "backup list":
		c.str(fs, getenv, &c.BackupURL, "to", "OMS_BACKUP_URL", "", bucket)
		c.boolean(fs, getenv, &c.JSON, "json", "OMS_BACKUP_LIST_JSON", "print JSON instead of a table")
	case "backup prune":
		c.str(fs, getenv, &c.BackupURL, "to", "OMS_BACKUP_URL", "", bucket)
		c.str(fs, getenv, &c.PruneNow, "now", "OMS_BACKUP_PRUNE_NOW", "", "the time to prune as of, RFC 3339 (default: now; for tests and drills)")
		c.boolean(fs, getenv, &c.DryRun, "dry-run", "OMS_BACKUP_PRUNE_DRY_RUN", "print what would be deleted, delete nothing")
	case "restore":
		withDB()
		c.str(fs, getenv, &c.RestoreFrom, "from", "OMS_BACKUP_URL", "", bucket)
		c.str(fs, getenv, &c.RestoreID, "id", "OMS_RESTORE_ID", "", "id of the archive to restore (see oms backup list)")
		c.boolean(fs, getenv, &c.Latest, "latest", "OMS_RESTORE_LATEST", "restore the newest archive of any tier")
		c.boolean(fs, getenv, &c.Force, "force", "OMS_RESTORE_FORCE", "replace account databases even if they have taken writes since their last restore (the replaced ones are kept as <name>_old_<time>)")
	}
}

// validate reports every problem at once, naming the flag and its variable.
func (c *config) validate(cmd string) error {
	errs := append([]string{}, c.envErrs...)
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Sprintf("--log-level/OMS_LOG_LEVEL %q: use debug, info, warn or error", c.LogLevel))
	}
	if cmd != "dev" && cmd != "backup list" && cmd != "backup prune" {
		if c.DatabaseURL == "" {
			errs = append(errs, "--database-url/OMS_DATABASE_URL is required (e.g. postgres://oms@db1,db2/oms?target_session_attrs=read-write)")
		} else if _, err := url.Parse(c.DatabaseURL); err != nil || !strings.HasPrefix(c.DatabaseURL, "postgres") {
			errs = append(errs, "--database-url/OMS_DATABASE_URL must be a postgres:// URL")
		} else if c.DBCAFile != "" {
			u, err := postgres.VerifyServerCA(c.DatabaseURL, c.DBCAFile)
			if err != nil {
				errs = append(errs, fmt.Sprintf("--db-ca-file/OMS_DB_CA_FILE: %v", err))
			}
			c.DatabaseURL = u
		}
	}
	if cmd == "migrate" && c.AdoptAccounts != "" {
		if c.AccountPasswordsDir == "" {
			errs = append(errs, "--accounts/OMS_ACCOUNTS needs --account-passwords-dir/OMS_ACCOUNT_PASSWORDS_DIR")
		}
		for _, id := range strings.Split(c.AdoptAccounts, ",") {
			if err := oms.ValidateAccountID(strings.TrimSpace(id)); err != nil {
				errs = append(errs, fmt.Sprintf("--accounts/OMS_ACCOUNTS: %q is not a valid account id", id))
			}
		}
	}
	if cmd == "account create" {
		if c.AccountID == "" {
			errs = append(errs, "--id/OMS_ACCOUNT_ID is required")
		}
		if c.AccountName == "" {
			errs = append(errs, "--name/OMS_ACCOUNT_NAME is required")
		}
	}
	errs = append(errs, c.validateBackup(cmd)...)
	if cmd == "worker" || cmd == "dev" {
		errs = append(errs, c.Webhooks.validate()...)
	}
	if c.ShutdownGrace < 0 || c.DrainDelay < 0 {
		errs = append(errs, "--shutdown-grace and --drain-delay must not be negative")
	}
	if c.DrainDelay > 0 && c.ShutdownGrace > 0 && c.DrainDelay >= c.ShutdownGrace {
		errs = append(errs, "--drain-delay/OMS_DRAIN_DELAY must be shorter than --shutdown-grace/OMS_SHUTDOWN_GRACE")
	}
	if (cmd == "worker" || cmd == "dev") && c.Concurrency < 1 {
		errs = append(errs, "--concurrency/OMS_WORKER_CONCURRENCY must be at least 1")
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

// redactURL hides the password of a URL for logging.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable)"
	}
	return u.Redacted()
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (c *config) validateBackup(cmd string) []string {
	var errs []string
	switch cmd {
	case "backup", "backup list", "backup prune":
		if c.BackupURL == "" {
			errs = append(errs, "--to/OMS_BACKUP_URL is required (gs://<bucket> or file:///<dir>)")
		}
	case "restore":
		if c.RestoreFrom == "" {
			errs = append(errs, "--from/OMS_BACKUP_URL is required (gs://<bucket> or file:///<dir>)")
		}
		if (c.RestoreID == "") == !c.Latest {
			errs = append(errs, "give exactly one of --id <id> (see oms backup list) or --latest")
		}
	}
	if cmd == "backup" {
		switch c.Tier {
		case "hourly", "weekly", "monthly":
		default:
			errs = append(errs, fmt.Sprintf("--tier/OMS_BACKUP_TIER %q: use hourly, weekly or monthly", c.Tier))
		}
	}
	if (cmd == "backup" || cmd == "restore") && c.KeyFile == "" && c.BackupKey == "" {
		errs = append(errs, "--key-file/OMS_BACKUP_KEY_FILE (a file holding the base64 key) or OMS_BACKUP_KEY is required")
	}
	return errs
}
