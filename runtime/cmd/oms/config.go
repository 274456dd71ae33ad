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
)

// config is every setting of every command; each flag has an OMS_* variable.
type config struct {
	Listen          string
	AdminToken      string
	DatabaseURL     string
	AccountDBPrefix string
	// AdoptAccounts and AccountPasswordsDir let migrate register accounts provisioned by the infrastructure.
	AdoptAccounts       string
	AccountPasswordsDir string
	RedisSentinels      string
	RedisMaster         string
	RedisPassword       string
	RedisKeyPrefix      string
	AMQPURL             string
	LogLevel            string
	ShutdownGrace       time.Duration
	DrainDelay          time.Duration
	Concurrency         int
	MaxConns            int
	AccountID           string
	AccountName         string
	DevDir              string

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

// flags declares the flags of cmd; nil for an unknown command.
func (c *config) flags(cmd string, stderr io.Writer, getenv func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet("oms "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.str(fs, getenv, &c.LogLevel, "log-level", "OMS_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	db := func() {
		c.str(fs, getenv, &c.DatabaseURL, "database-url", "OMS_DATABASE_URL", "",
			"control database URL; list every node with target_session_attrs=read-write so a promoted standby is found")
		c.str(fs, getenv, &c.AccountDBPrefix, "account-db-prefix", "OMS_ACCOUNT_DB_PREFIX", "",
			"prefix of account database and role names (default: the control database name)")
		c.int(fs, getenv, &c.MaxConns, "max-conns-per-account", "OMS_MAX_CONNS_PER_ACCOUNT", 8, "connection pool size per account database")
	}
	redis := func() {
		c.str(fs, getenv, &c.RedisSentinels, "redis-sentinels", "OMS_REDIS_SENTINELS", "",
			"comma-separated Redis Sentinel addresses (host:port); empty caches in process")
		c.str(fs, getenv, &c.RedisMaster, "redis-master", "OMS_REDIS_MASTER", "oms", "Redis Sentinel master name")
		c.str(fs, getenv, &c.RedisPassword, "redis-password", "OMS_REDIS_PASSWORD", "", "Redis password (prefer the environment variable)")
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
	default:
		return nil
	}
	return fs
}

// validate reports every problem at once, naming the flag and its variable.
func (c *config) validate(cmd string) error {
	errs := append([]string{}, c.envErrs...)
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Sprintf("--log-level/OMS_LOG_LEVEL %q: use debug, info, warn or error", c.LogLevel))
	}
	if cmd != "dev" {
		if c.DatabaseURL == "" {
			errs = append(errs, "--database-url/OMS_DATABASE_URL is required (e.g. postgres://oms@db1,db2/oms?target_session_attrs=read-write)")
		} else if _, err := url.Parse(c.DatabaseURL); err != nil || !strings.HasPrefix(c.DatabaseURL, "postgres") {
			errs = append(errs, "--database-url/OMS_DATABASE_URL must be a postgres:// URL")
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
