package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/postgres"
)

// config is every setting of every command; each flag has an OMS_* variable.
type config struct {
	Listen string
	// MetricsListen serves /metrics (and the probes) apart from the API; empty serves no metrics.
	MetricsListen string
	// Pprof serves Go's profiles beside the metrics.
	Pprof       bool
	AdminToken  string
	DatabaseURL string
	// DBCAFile is the database server's CA (PEM); validate makes DatabaseURL verify against it.
	DBCAFile string
	// DBCells (OMS_DB_CELLS) is parsed by validate into Cells; DefaultCell is where new accounts go.
	DBCells         string
	Cells           postgres.Cells
	DefaultCell     string
	AccountDBPrefix string
	// AdoptAccounts and AccountPasswordsDir let migrate register accounts provisioned by the infrastructure.
	AdoptAccounts       string
	AccountPasswordsDir string
	// AccountCells (OMS_ACCOUNT_CELLS) is parsed by validate into AccountCell.
	AccountCells   string
	AccountCell    map[string]string
	RedisSentinels string
	RedisMaster    string
	RedisPassword  string
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
	MoveTo                string
	MoveMaxPause          time.Duration
	MovePasswordFile      string
	MoveMaxCatchUp        time.Duration
	AccountName           string
	DevDir                string
	Webhooks              webhookConfig
	// command is the oms command this config runs, as validate knows it ("serve", "worker").
	command string
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
		errs = append(errs, c.validateCells(cmd)...)
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
	if cmd == "account move" {
		if c.AccountID == "" {
			errs = append(errs, "--id/OMS_ACCOUNT_ID is required")
		}
		if c.MoveTo == "" {
			errs = append(errs, "--to/OMS_ACCOUNT_MOVE_TO is required: the cell to move to")
		} else if err := c.Cells.Check("--to/OMS_ACCOUNT_MOVE_TO", c.MoveTo); err != nil {
			errs = append(errs, err.Error())
		}
		if c.MoveMaxPause <= 0 {
			errs = append(errs, "--max-pause/OMS_ACCOUNT_MOVE_MAX_PAUSE must be positive")
		}
		if c.MoveMaxCatchUp <= 0 {
			errs = append(errs, "--max-catch-up/OMS_ACCOUNT_MOVE_MAX_CATCH_UP must be positive")
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

// validateCells parses OMS_DB_CELLS (checking every cell's CA file), OMS_DB_DEFAULT_CELL and OMS_ACCOUNT_CELLS.
func (c *config) validateCells(cmd string) []string {
	var errs []string
	cells, err := postgres.ParseCells("--db-cells/OMS_DB_CELLS", c.DBCells)
	if err != nil {
		return []string{err.Error()}
	}
	c.Cells = cells
	for _, name := range cells.Names() {
		if cell, ok := cells[name]; ok {
			if _, err := postgres.VerifyServerCA("postgres://x/y", cell.CAFile); err != nil {
				errs = append(errs, fmt.Sprintf("--db-cells/OMS_DB_CELLS: cell %q: caFile: %v", name, err))
			}
		}
	}
	if c.DefaultCell != "" {
		if err := cells.Check("--default-cell/OMS_DB_DEFAULT_CELL", c.DefaultCell); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if cmd != "migrate" || c.AccountCells == "" {
		return errs
	}
	if err := json.Unmarshal([]byte(c.AccountCells), &c.AccountCell); err != nil {
		return append(errs, `--account-cells/OMS_ACCOUNT_CELLS: not a JSON object of account id → cell name`)
	}
	for _, id := range strings.Split(c.AdoptAccounts, ",") {
		if id = strings.TrimSpace(id); id != "" && c.AccountCell[id] == "" {
			errs = append(errs, fmt.Sprintf("--account-cells/OMS_ACCOUNT_CELLS: places no --accounts id %q: give its cell", id))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(c.AccountCell)) {
		if err := cells.Check(fmt.Sprintf("--account-cells/OMS_ACCOUNT_CELLS: account %q", id), c.AccountCell[id]); err != nil {
			errs = append(errs, err.Error())
		}
	}
	return errs
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
