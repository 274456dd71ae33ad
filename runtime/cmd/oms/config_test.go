package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
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

func TestAccountCreatePrintsTheKeyOnceAndNeverLogsIt(t *testing.T) {
	dbURL := omstest.ControlDB(t)
	t.Cleanup(func() { omstest.DropAccounts(t, dbURL) })
	env := func(k string) string { return map[string]string{"OMS_DATABASE_URL": dbURL}[k] }
	var stdout, logs bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"account", "create", "--id", "acme", "--name", "Acme"}, &stdout, &logs, env))
	var out struct{ ID, APIKey string }
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &out))
	assert.Equal(t, "acme", out.ID)
	require.NotEmpty(t, out.APIKey)
	assert.NotContains(t, logs.String(), out.APIKey)
	assert.NotContains(t, logs.String(), "localenv") // nothing but the runtime's own JSON logs
	err := run(t.Context(), []string{"account", "create", "--id", "acme", "--name", "Again"}, io.Discard, io.Discard, env)
	assert.ErrorContains(t, err, "already exists")
}
