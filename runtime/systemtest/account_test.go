package systemtest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/internal/omstest"
)

func TestAccountCreatePrintsTheKeyOnceAndNeverLogsIt(t *testing.T) {
	dbURL := omstest.ControlDB(t)
	t.Cleanup(func() { omstest.DropAccounts(t, dbURL) })
	env := map[string]string{"OMS_DATABASE_URL": dbURL}
	stdout, logs, err := Run(t, env, "account", "create", "--id", "acme", "--name", "Acme")
	require.NoError(t, err, logs)
	var out struct{ ID, APIKey string }
	require.NoError(t, json.Unmarshal([]byte(stdout), &out))
	assert.Equal(t, "acme", out.ID)
	require.NotEmpty(t, out.APIKey)
	assert.NotContains(t, logs, out.APIKey)
	assert.NotContains(t, logs, "localenv") // nothing but the runtime's own JSON logs
	_, _, err = Run(t, env, "account", "create", "--id", "acme", "--name", "Again")
	assert.ErrorContains(t, err, "already exists")
}

// TestHelpAndBadUsageExitCodes: the binary exits 0 for help and 1 for bad usage, naming the problem.
func TestHelpAndBadUsageExitCodes(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"backup", "--help"}, {"backup", "prune", "--help"}, {"account", "create", "-h"}} {
		out := MustRun(t, nil, args...)
		assert.Contains(t, out, "Usage:", "oms %v", args)
	}
	for args, want := range map[string]string{"backup --key x": "oms backup: unknown flag: --key", "launch": `unknown command "launch"`,
		"": "no command given"} {
		stdout, stderr, err := Run(t, nil, strings.Fields(args)...)
		require.Error(t, err, "oms %s", args)
		assert.Contains(t, err.Error(), "exit status 1")
		assert.Contains(t, stderr, "oms: ", "oms %s", args)
		assert.Contains(t, err.Error(), want)
		assert.Empty(t, stdout)
	}
}
