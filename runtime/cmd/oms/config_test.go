package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/internal/omstest"
)

func TestConfigurationErrorsNameTheFlagAndVariable(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"no command", nil, nil, []string{"no command"}},
		{"unknown command", []string{"launch"}, nil, []string{`unknown command "launch"`}},
		{"serve without database", []string{"serve"}, nil, []string{"--database-url/OMS_DATABASE_URL is required"}},
		{"every problem at once", []string{"worker"}, map[string]string{"OMS_SHUTDOWN_GRACE": "soon", "OMS_LOG_LEVEL": "loud",
			"OMS_WORKER_CONCURRENCY": "0"}, []string{`OMS_SHUTDOWN_GRACE="soon": not a duration`, "--log-level/OMS_LOG_LEVEL",
			"--database-url/OMS_DATABASE_URL", "--concurrency/OMS_WORKER_CONCURRENCY"}},
		{"drain longer than grace", []string{"serve", "--database-url", "postgres://x/y", "--drain-delay", "30s"}, nil,
			[]string{"--drain-delay/OMS_DRAIN_DELAY must be shorter"}},
		{"migrate accounts without their passwords", []string{"migrate", "--accounts", "north,Bad Id"}, map[string]string{"OMS_DATABASE_URL": "postgres://x/y"},
			[]string{"--accounts/OMS_ACCOUNTS needs --account-passwords-dir/OMS_ACCOUNT_PASSWORDS_DIR", `"Bad Id" is not a valid account id`}},
		{"cells not JSON", []string{"serve"}, map[string]string{"OMS_DATABASE_URL": "postgres://x/y", "OMS_DB_CELLS": "main=10.0.0.3"},
			[]string{`--db-cells/OMS_DB_CELLS: not a JSON object`}},
		{"cells without main", []string{"serve"}, map[string]string{"OMS_DATABASE_URL": "postgres://x/y",
			"OMS_DB_CELLS": `{"b": {"host": "10.0.0.5", "caFile": "/etc/oms/db-ca/server-ca-b.pem"}}`},
			[]string{`--db-cells/OMS_DB_CELLS: has no cell "main"`}},
		{"a cell's CA missing, an unknown default", []string{"account", "create", "--id", "acme", "--name", "A"},
			map[string]string{"OMS_DATABASE_URL": "postgres://x/y", "OMS_DB_DEFAULT_CELL": "c",
				"OMS_DB_CELLS": `{"main": {"host": "10.0.0.3", "caFile": "/nonexistent/main.pem"}, "b": {"host": "10.0.0.5"}}`},
			[]string{`cell "b" has no caFile`}},
		{"migrate: an account without a cell, a cell unknown", []string{"migrate", "--accounts", "north,south", "--account-passwords-dir", "/x"},
			map[string]string{"OMS_DATABASE_URL": "postgres://x/y", "OMS_DB_CELLS": cellsMainOnly(t), "OMS_DB_DEFAULT_CELL": "b",
				"OMS_ACCOUNT_CELLS": `{"north": "main", "east": "c"}`},
			[]string{`--default-cell/OMS_DB_DEFAULT_CELL: cell "b" is not one of OMS_DB_CELLS [main]`,
				`--account-cells/OMS_ACCOUNT_CELLS: places no --accounts id "south"`,
				`--account-cells/OMS_ACCOUNT_CELLS: account "east": cell "c" is not one of OMS_DB_CELLS [main]`}},
		{"account create without id", []string{"account", "create", "--name", "A"}, map[string]string{"OMS_DATABASE_URL": "postgres://x/y"},
			[]string{"--id/OMS_ACCOUNT_ID is required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard, io.Discard, func(k string) string { return tc.env[k] })
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestBackupConfigErrors(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"backup", "--to", "file:///tmp/x"}, map[string]string{"OMS_DATABASE_URL": "postgres://x/y"}, "--tier/OMS_BACKUP_TIER \"\": use hourly, weekly or monthly"},
		{[]string{"backup", "--tier", "daily", "--to", "file:///tmp/x"}, map[string]string{"OMS_DATABASE_URL": "postgres://x/y", "OMS_BACKUP_KEY": "k"}, "use hourly, weekly or monthly"},
		{[]string{"backup", "--tier", "hourly", "--to", "file:///tmp/x"}, map[string]string{"OMS_DATABASE_URL": "postgres://x/y"}, "OMS_BACKUP_KEY is required"},
		{[]string{"backup", "--tier", "hourly"}, map[string]string{"OMS_DATABASE_URL": "postgres://x/y", "OMS_BACKUP_KEY": "k"}, "--to/OMS_BACKUP_URL is required"},
		{[]string{"backup", "--tier", "hourly", "--key", "secret"}, nil, "unknown flag: --key"},
		{[]string{"restore", "--from", "file:///tmp/x"}, map[string]string{"OMS_DATABASE_URL": "postgres://x/y", "OMS_BACKUP_KEY": "k"}, "exactly one of --id"},
		{[]string{"restore", "--from", "file:///tmp/x", "--latest", "--id", "a"}, map[string]string{"OMS_DATABASE_URL": "postgres://x/y", "OMS_BACKUP_KEY": "k"}, "exactly one of --id"},
		{[]string{"backup", "prune"}, nil, "--to/OMS_BACKUP_URL is required"},
		{[]string{"backup", "prune", "--to", "s3://b"}, nil, "use gs://<bucket> or file:///<dir>"},
		{[]string{"backup", "prune", "--to", "file:///tmp/x", "--now", "yesterday"}, nil, "--now \"yesterday\": use RFC 3339"},
		{[]string{"backup", "--tier", "hourly", "--to", "file:///tmp/x"}, map[string]string{"OMS_DATABASE_URL": "postgres://x/y", "OMS_BACKUP_KEY": "c2hvcnQ="}, "5 bytes, want 32"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard, io.Discard, func(k string) string { return tc.env[k] })
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestWebhookFlagsAreValidatedByName(t *testing.T) {
	env := map[string]string{"OMS_DATABASE_URL": "postgres://x/y", "OMS_WEBHOOK_TIMEOUT": "soon"}
	err := run(t.Context(), []string{"worker", "--webhook-max-attempts", "0", "--webhook-base-delay", "10s", "--webhook-max-delay", "5s"},
		io.Discard, io.Discard, func(k string) string { return env[k] })
	require.Error(t, err)
	for _, want := range []string{`OMS_WEBHOOK_TIMEOUT="soon": not a duration`, "--webhook-max-attempts/OMS_WEBHOOK_MAX_ATTEMPTS must be at least 1",
		"--webhook-max-delay/OMS_WEBHOOK_MAX_DELAY must not be shorter"} {
		assert.Contains(t, err.Error(), want)
	}
}

// cellsMainOnly is an OMS_DB_CELLS with cell main alone, its CA a real file.
func cellsMainOnly(t *testing.T) string {
	ca := omstest.NewCA(t, "cell main")
	return `{"main": {"host": "127.0.0.1", "caFile": "` + ca.File + `"}}`
}

func TestAccountMoveNamesWhatIsMissing(t *testing.T) {
	env := map[string]string{"OMS_DATABASE_URL": "postgres://x/y", "OMS_DB_CELLS": cellsMainOnly(t)}
	err := run(t.Context(), []string{"account", "move", "--to", "b", "--max-pause", "0s"}, io.Discard, io.Discard,
		func(k string) string { return env[k] })
	require.Error(t, err)
	for _, want := range []string{"--id/OMS_ACCOUNT_ID is required",
		`--to/OMS_ACCOUNT_MOVE_TO: cell "b" is not one of OMS_DB_CELLS [main]`,
		"--max-pause/OMS_ACCOUNT_MOVE_MAX_PAUSE must be positive"} {
		assert.Contains(t, err.Error(), want)
	}
}
