package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/postgres"
)

// flagsSinceCobra are the flags added after the move: by issue 14, serve's metrics on a listener of their own (the
// API port serves no /metrics) and serve checking webhook URLs at registration by the worker's rule; by issue 17,
// the database cells and oms account move; by issue 15, Go's profiles for the bench.
var flagsSinceCobra = [][4]string{
	{"dev", "metrics-listen", "OMS_METRICS_LISTEN", ""},
	{"serve", "metrics-listen", "OMS_METRICS_LISTEN", "127.0.0.1:9090"},
	{"serve", "webhook-allow-private-networks", "OMS_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "false"},
	{"account create", "db-cells", "OMS_DB_CELLS", ""},
	{"account create", "default-cell", "OMS_DB_DEFAULT_CELL", ""},
	{"migrate", "db-cells", "OMS_DB_CELLS", ""},
	{"migrate", "default-cell", "OMS_DB_DEFAULT_CELL", ""},
	{"serve", "db-cells", "OMS_DB_CELLS", ""},
	{"serve", "default-cell", "OMS_DB_DEFAULT_CELL", ""},
	{"worker", "db-cells", "OMS_DB_CELLS", ""},
	{"worker", "default-cell", "OMS_DB_DEFAULT_CELL", ""},
	{"backup", "db-cells", "OMS_DB_CELLS", ""},
	{"restore", "db-cells", "OMS_DB_CELLS", ""},
	{"migrate", "account-cells", "OMS_ACCOUNT_CELLS", ""},
	{"account move", "account-db-prefix", "OMS_ACCOUNT_DB_PREFIX", ""},
	{"account move", "database-url", "OMS_DATABASE_URL", ""},
	{"account move", "db-ca-file", "OMS_DB_CA_FILE", ""},
	{"account move", "db-cells", "OMS_DB_CELLS", ""},
	{"account move", "default-cell", "OMS_DB_DEFAULT_CELL", ""},
	{"account move", "id", "OMS_ACCOUNT_ID", ""},
	{"account move", "log-level", "OMS_LOG_LEVEL", "info"},
	{"account move", "max-conns-per-account", "OMS_MAX_CONNS_PER_ACCOUNT", "8"},
	{"account move", "max-pause", "OMS_ACCOUNT_MOVE_MAX_PAUSE", "10s"},
	{"account move", "to", "OMS_ACCOUNT_MOVE_TO", ""},
	{"account move", "password-file", "OMS_ACCOUNT_MOVE_PASSWORD_FILE", ""},
	{"account move", "max-catch-up", "OMS_ACCOUNT_MOVE_MAX_CATCH_UP", "5m0s"},
	{"serve", "pprof", "OMS_PPROF", "false"},
	{"worker", "pprof", "OMS_PPROF", "false"},
}

// flagsBeforeCobra is every flag of every command as the flag-based CLI declared them (command, flag, variable,
// default as printed): the move to cobra changed none.
var flagsBeforeCobra = [][4]string{
	{"serve", "account-db-prefix", "OMS_ACCOUNT_DB_PREFIX", ""},
	{"serve", "admin-token", "OMS_ADMIN_TOKEN", ""},
	{"serve", "database-url", "OMS_DATABASE_URL", ""},
	{"serve", "db-ca-file", "OMS_DB_CA_FILE", ""},
	{"serve", "drain-delay", "OMS_DRAIN_DELAY", "5s"},
	{"serve", "listen", "OMS_LISTEN", "127.0.0.1:8080"},
	{"serve", "log-level", "OMS_LOG_LEVEL", "info"},
	{"serve", "max-conns-per-account", "OMS_MAX_CONNS_PER_ACCOUNT", "8"},
	{"serve", "redis-key-prefix", "OMS_REDIS_KEY_PREFIX", "oms:"},
	{"serve", "redis-master", "OMS_REDIS_MASTER", "oms"},
	{"serve", "redis-password", "OMS_REDIS_PASSWORD", ""},
	{"serve", "redis-sentinel-password", "OMS_REDIS_SENTINEL_PASSWORD", ""},
	{"serve", "redis-sentinels", "OMS_REDIS_SENTINELS", ""},
	{"serve", "shutdown-grace", "OMS_SHUTDOWN_GRACE", "25s"},
	{"worker", "account-db-prefix", "OMS_ACCOUNT_DB_PREFIX", ""},
	{"worker", "amqp-url", "OMS_AMQP_URL", ""},
	{"worker", "backup-url", "OMS_BACKUP_URL", ""},
	{"worker", "concurrency", "OMS_WORKER_CONCURRENCY", "4"},
	{"worker", "database-url", "OMS_DATABASE_URL", ""},
	{"worker", "db-ca-file", "OMS_DB_CA_FILE", ""},
	{"worker", "drain-delay", "OMS_DRAIN_DELAY", "5s"},
	{"worker", "listen", "OMS_LISTEN", "127.0.0.1:8081"},
	{"worker", "log-level", "OMS_LOG_LEVEL", "info"},
	{"worker", "max-conns-per-account", "OMS_MAX_CONNS_PER_ACCOUNT", "8"},
	{"worker", "redis-key-prefix", "OMS_REDIS_KEY_PREFIX", "oms:"},
	{"worker", "redis-master", "OMS_REDIS_MASTER", "oms"},
	{"worker", "redis-password", "OMS_REDIS_PASSWORD", ""},
	{"worker", "redis-sentinel-password", "OMS_REDIS_SENTINEL_PASSWORD", ""},
	{"worker", "redis-sentinels", "OMS_REDIS_SENTINELS", ""},
	{"worker", "shutdown-grace", "OMS_SHUTDOWN_GRACE", "25s"},
	{"worker", "webhook-allow-private-networks", "OMS_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "false"},
	{"worker", "webhook-base-delay", "OMS_WEBHOOK_BASE_DELAY", "5s"},
	{"worker", "webhook-concurrency", "OMS_WEBHOOK_CONCURRENCY", "8"},
	{"worker", "webhook-max-attempts", "OMS_WEBHOOK_MAX_ATTEMPTS", "10"},
	{"worker", "webhook-max-delay", "OMS_WEBHOOK_MAX_DELAY", "1h0m0s"},
	{"worker", "webhook-retention", "OMS_WEBHOOK_RETENTION", "720h0m0s"},
	{"worker", "webhook-timeout", "OMS_WEBHOOK_TIMEOUT", "10s"},
	{"migrate", "account-db-prefix", "OMS_ACCOUNT_DB_PREFIX", ""},
	{"migrate", "account-passwords-dir", "OMS_ACCOUNT_PASSWORDS_DIR", ""},
	{"migrate", "accounts", "OMS_ACCOUNTS", ""},
	{"migrate", "database-url", "OMS_DATABASE_URL", ""},
	{"migrate", "db-ca-file", "OMS_DB_CA_FILE", ""},
	{"migrate", "log-level", "OMS_LOG_LEVEL", "info"},
	{"migrate", "max-conns-per-account", "OMS_MAX_CONNS_PER_ACCOUNT", "8"},
	{"account create", "account-db-prefix", "OMS_ACCOUNT_DB_PREFIX", ""},
	{"account create", "database-url", "OMS_DATABASE_URL", ""},
	{"account create", "db-ca-file", "OMS_DB_CA_FILE", ""},
	{"account create", "id", "OMS_ACCOUNT_ID", ""},
	{"account create", "log-level", "OMS_LOG_LEVEL", "info"},
	{"account create", "max-conns-per-account", "OMS_MAX_CONNS_PER_ACCOUNT", "8"},
	{"account create", "name", "OMS_ACCOUNT_NAME", ""},
	{"dev", "admin-token", "OMS_ADMIN_TOKEN", ""},
	{"dev", "concurrency", "OMS_WORKER_CONCURRENCY", "4"},
	{"dev", "dir", "OMS_DEV_DIR", ""},
	{"dev", "drain-delay", "OMS_DRAIN_DELAY", "5s"},
	{"dev", "listen", "OMS_LISTEN", "127.0.0.1:8080"},
	{"dev", "log-level", "OMS_LOG_LEVEL", "info"},
	{"dev", "shutdown-grace", "OMS_SHUTDOWN_GRACE", "25s"},
	{"dev", "webhook-base-delay", "OMS_WEBHOOK_BASE_DELAY", "5s"},
	{"dev", "webhook-concurrency", "OMS_WEBHOOK_CONCURRENCY", "8"},
	{"dev", "webhook-max-attempts", "OMS_WEBHOOK_MAX_ATTEMPTS", "10"},
	{"dev", "webhook-max-delay", "OMS_WEBHOOK_MAX_DELAY", "1h0m0s"},
	{"dev", "webhook-retention", "OMS_WEBHOOK_RETENTION", "720h0m0s"},
	{"dev", "webhook-timeout", "OMS_WEBHOOK_TIMEOUT", "10s"},
	{"backup", "account-db-prefix", "OMS_ACCOUNT_DB_PREFIX", ""},
	{"backup", "database-url", "OMS_DATABASE_URL", ""},
	{"backup", "db-ca-file", "OMS_DB_CA_FILE", ""},
	{"backup", "key-file", "OMS_BACKUP_KEY_FILE", ""},
	{"backup", "log-level", "OMS_LOG_LEVEL", "info"},
	{"backup", "media-url", "OMS_MEDIA_URL", ""},
	{"backup", "pg-bin-dir", "OMS_PG_BIN_DIR", ""},
	{"backup", "release", "OMS_RELEASE", ""},
	{"backup", "tier", "OMS_BACKUP_TIER", ""},
	{"backup", "to", "OMS_BACKUP_URL", ""},
	{"backup list", "json", "OMS_BACKUP_LIST_JSON", "false"},
	{"backup list", "log-level", "OMS_LOG_LEVEL", "info"},
	{"backup list", "to", "OMS_BACKUP_URL", ""},
	{"backup prune", "dry-run", "OMS_BACKUP_PRUNE_DRY_RUN", "false"},
	{"backup prune", "log-level", "OMS_LOG_LEVEL", "info"},
	{"backup prune", "now", "OMS_BACKUP_PRUNE_NOW", ""},
	{"backup prune", "to", "OMS_BACKUP_URL", ""},
	{"restore", "account-db-prefix", "OMS_ACCOUNT_DB_PREFIX", ""},
	{"restore", "database-url", "OMS_DATABASE_URL", ""},
	{"restore", "db-ca-file", "OMS_DB_CA_FILE", ""},
	{"restore", "force", "OMS_RESTORE_FORCE", "false"},
	{"restore", "from", "OMS_BACKUP_URL", ""},
	{"restore", "id", "OMS_RESTORE_ID", ""},
	{"restore", "key-file", "OMS_BACKUP_KEY_FILE", ""},
	{"restore", "latest", "OMS_RESTORE_LATEST", "false"},
	{"restore", "log-level", "OMS_LOG_LEVEL", "info"},
	{"restore", "media-url", "OMS_MEDIA_URL", ""},
	{"restore", "pg-bin-dir", "OMS_PG_BIN_DIR", ""},
}

// leafCommands are the commands that run something, by their path below oms.
func leafCommands(root *cobra.Command) map[string]*cobra.Command {
	out := map[string]*cobra.Command{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Name() == "help" {
				continue
			}
			if sub.Runnable() && sub.Parent() != nil && slices.ContainsFunc(commands(), func(cm command) bool {
				return "oms "+cm.name == sub.CommandPath()
			}) {
				out[strings.TrimPrefix(sub.CommandPath(), "oms ")] = sub
			}
			walk(sub)
		}
	}
	walk(root)
	return out
}

var variableInHelp = regexp.MustCompile(`\((OMS_[A-Z_]+)\)$`)

func TestEveryFlagKeepsItsNameDefaultAndVariable(t *testing.T) {
	var got [][4]string
	for name, cmd := range leafCommands(newRoot(io.Discard, io.Discard, func(string) string { return "" }, execute)) {
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			m := variableInHelp.FindStringSubmatch(f.Usage)
			require.NotNil(t, m, "oms %s --%s: its help names its variable", name, f.Name)
			got = append(got, [4]string{name, f.Name, m[1], f.DefValue})
		})
	}
	sortRows := func(rows [][4]string) {
		sort.Slice(rows, func(i, j int) bool { return strings.Join(rows[i][:], " ") < strings.Join(rows[j][:], " ") })
	}
	want := slices.Concat(flagsBeforeCobra, flagsSinceCobra)
	sortRows(want)
	sortRows(got)
	assert.Equal(t, want, got)
}

// TestEveryFlagReadsItsVariable: for every option of every command, its variable sets it when the flag is absent,
// and the flag wins when given.
func TestEveryFlagReadsItsVariable(t *testing.T) {
	for _, c := range commands() {
		for _, o := range c.options {
			t.Run(c.name+" --"+o.flag, func(t *testing.T) {
				values := map[string][2]string{"string": {"from-env", "from-flag"}, "int": {"37", "41"},
					"duration": {"37s", "41s"}, "bool": {"true", "false"}}[kind(o.def)]
				envValue, flagValue := values[0], values[1]
				getenv := func(k string) string {
					if k == o.env {
						return envValue
					}
					return ""
				}
				for _, args := range [][]string{nil, {"--" + o.flag + "=" + flagValue}} {
					cfg := &config{}
					fs := pflag.NewFlagSet(c.name, pflag.ContinueOnError)
					bindOptions(fs, cfg, c.options)
					require.NoError(t, fs.Parse(args))
					applyEnvironment(fs, cfg, c.options, getenv)
					require.Empty(t, cfg.envErrs)
					want := envValue
					if args != nil {
						want = flagValue
					}
					assert.Equal(t, want, fieldString(o.field(cfg)), "%v with %s=%s", args, o.env, envValue)
				}
			})
		}
	}
}

func fieldString(p any) string {
	switch v := p.(type) {
	case *string:
		return *v
	case *int:
		return fmt.Sprint(*v)
	case *time.Duration:
		return v.String()
	case *bool:
		return fmt.Sprint(*v)
	}
	return fmt.Sprintf("unsupported %T", p)
}

// TestFlagsOverrideEnvironment goes through the whole command: parsing, variables, validation.
func TestFlagsOverrideEnvironment(t *testing.T) {
	cfg := parse(t, map[string]string{"OMS_LISTEN": "127.0.0.1:9", "OMS_ADMIN_TOKEN": "from-env", "OMS_DATABASE_URL": "postgres://x/y"},
		"serve", "--listen", "127.0.0.1:7")
	assert.Equal(t, "127.0.0.1:7", cfg.Listen, "the flag wins")
	assert.Equal(t, "from-env", cfg.AdminToken, "the variable applies when the flag is absent")
	assert.True(t, parse(t, nil, "dev").Webhooks.AllowPrivate, "dev always lets webhooks reach this machine")
}

// parse runs oms args with env up to the point where the command would start, and returns its configuration.
func parse(t *testing.T, env map[string]string, args ...string) *config {
	t.Helper()
	cfg, err := tryParse(env, args...)
	require.NoError(t, err)
	return cfg
}

func tryParse(env map[string]string, args ...string) (*config, error) {
	var got *config
	root := newRoot(io.Discard, io.Discard, func(k string) string { return env[k] },
		func(_ context.Context, _ command, cfg *config, _, _ io.Writer) error { got = cfg; return nil })
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		return nil, err
	}
	if got == nil {
		return nil, fmt.Errorf("oms %v ran no command", args)
	}
	return got, nil
}

func TestHelpListsCommandsAndFlags(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"--help"}, &out, io.Discard, func(string) string { return "" }), "oms --help succeeds")
	for _, c := range commands() {
		assert.Contains(t, out.String(), "\n  "+strings.Fields(c.name)[0]+" ", "oms --help lists %s", c.name)
	}
	for _, c := range commands() {
		for _, h := range []string{"--help", "-h"} {
			out.Reset()
			args := append(strings.Fields(c.name), h)
			require.NoError(t, run(t.Context(), args, &out, io.Discard, func(string) string { return "" }), "oms %v succeeds", args)
			for _, o := range c.options {
				assert.Contains(t, out.String(), "--"+o.flag+" ", "oms %v lists --%s", args, o.flag)
				assert.Contains(t, out.String(), "("+o.env+")", "oms %v names %s", args, o.env)
			}
		}
	}
	out.Reset()
	require.NoError(t, run(t.Context(), []string{"backup", "--help"}, &out, io.Discard, func(string) string { return "" }))
	assert.Contains(t, out.String(), "list")
	assert.Contains(t, out.String(), "prune")
}

func TestBadUsageFailsNamingTheProblem(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--no-such-flag"}, `oms serve: unknown flag: --no-such-flag (see "oms serve --help")`},
		{[]string{"backup", "--key", "secret"}, "oms backup: unknown flag: --key"},
		{[]string{"backup", "list", "--tier", "hourly"}, "oms backup list: unknown flag: --tier"},
		{[]string{"-listen", ":1", "serve"}, "unknown shorthand flag"},
		{[]string{"serve", "now"}, `unknown command "now" for "oms serve"`},
		{[]string{"backup", "lsit"}, `unknown command "lsit" for "oms backup"`},
		{[]string{"account"}, `give a command: "oms account create"`},
		{[]string{"account", "delete"}, `unknown command "delete" for "oms account"`},
		{[]string{"worker", "--concurrency", "many"}, `invalid argument "many" for "--concurrency"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout bytes.Buffer
			err := run(t.Context(), tc.args, &stdout, io.Discard, func(string) string { return "" })
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Empty(t, stdout.String(), "nothing on stdout")
		})
	}
}

// TestTheArgsTheStacksRenderParse runs, up to the point where the command would start, every oms container of
// every stack's golden inventory (stacks/testdata, the rendering of components/omsruntime and components/backup,
// compared with the program on every go test) with the arguments and environment the pods get: the ConfigMap's
// values, and stand-ins for the Secret's keys.
func TestTheArgsTheStacksRenderParse(t *testing.T) {
	goldens, err := filepath.Glob("../../../stacks/testdata/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, goldens, "the stacks' inventories")
	ca := omstest.NewCA(t, "Cloud SQL stand-in")
	secrets := map[string]string{"OMS_DATABASE_URL": "postgres://oms:pw@10.0.0.3/oms", "OMS_ADMIN_TOKEN": "token",
		"OMS_REDIS_PASSWORD": "pw", "OMS_REDIS_SENTINEL_PASSWORD": "pw", "OMS_AMQP_URL": "amqp://oms:pw@rabbitmq/oms"}
	known := map[string]bool{"OMS_BACKUP_KEY": true}
	for _, c := range commands() {
		for _, o := range c.options {
			known[o.env] = true
		}
	}
	seen := map[string]bool{}
	for _, path := range goldens {
		containers, configMaps := renderedContainers(t, path)
		for _, c := range containers {
			env := map[string]string{}
			for _, ref := range c.configMaps {
				require.Contains(t, configMaps, ref, "%s: ConfigMap %s", path, ref)
				for k, v := range configMaps[ref] {
					env[k] = v
				}
			}
			for k, v := range c.env {
				if v == "" {
					v = secrets[k]
					require.NotEmpty(t, v, "%s: no stand-in for the secret %s", path, k)
				}
				env[k] = v
			}
			for k := range env {
				assert.True(t, known[k], "%s: %v sets %s, which no oms command reads", path, c.args, k)
			}
			if _, ok := env["OMS_DB_CA_FILE"]; ok {
				env["OMS_DB_CA_FILE"] = ca.File // the mounted ConfigMap's file, here
			}
			if env["OMS_DB_CELLS"] != "" {
				env["OMS_DB_CELLS"] = cellsHere(t, path, env["OMS_DB_CELLS"], configMaps, ca.File)
			}
			if env["OMS_BACKUP_KEY_FILE"] != "" {
				env["OMS_BACKUP_KEY_FILE"] = filepath.Join(t.TempDir(), "key") // read when the command runs, not before
			}
			cfg, err := tryParse(env, c.args...)
			assert.NoError(t, err, "%s: oms %v", filepath.Base(path), c.args)
			if cfg != nil && (c.args[0] == "serve" || c.args[0] == "worker") {
				// The probes, Services and PodMonitorings name the container's ports: the process must listen on them.
				assert.Equal(t, c.ports["http"], portOf(t, cfg.Listen), "%s: oms %s listens on the port named http", path, c.args[0])
				if c.args[0] == "serve" {
					assert.Equal(t, c.ports["metrics"], portOf(t, cfg.MetricsListen), "%s: oms serve's metrics on the port named metrics", path)
				}
			}
			seen[strings.Join(c.args[:min(2, len(c.args))], " ")] = true
		}
	}
	for _, want := range []string{"serve", "worker", "migrate --accounts", "backup --tier", "backup prune"} {
		assert.True(t, seen[want], "the inventories have an oms %s container", want)
	}
}

// cellsHere is a rendered OMS_DB_CELLS with every cell's CA file replaced by caFile, once the rendered file is found
// to be a key of the CA ConfigMap mounted beside OMS_DB_CA_FILE's.
func cellsHere(t *testing.T, path, rendered string, configMaps map[string]map[string]string, caFile string) string {
	cells, err := postgres.ParseCells("OMS_DB_CELLS", rendered)
	require.NoError(t, err, path)
	var caKeys map[string]string
	for name, data := range configMaps {
		if strings.HasSuffix(name, "-db-ca") {
			caKeys = data
		}
	}
	for name, c := range cells {
		assert.Contains(t, caKeys, filepath.Base(c.CAFile), "%s: cell %s's CA file is a key of the CA ConfigMap", path, name)
		c.CAFile = caFile
		cells[name] = c
	}
	b, err := json.Marshal(cells)
	require.NoError(t, err)
	return string(b)
}

type renderedContainer struct {
	args       []string
	env        map[string]string // "" for a value from a Secret
	configMaps []string
	ports      map[string]int // container port by name
}

func portOf(t *testing.T, addr string) int {
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err, addr)
	n, err := strconv.Atoi(port)
	require.NoError(t, err, addr)
	return n
}

// renderedContainers reads an inventory: the containers that run an oms command, and every ConfigMap's data.
func renderedContainers(t *testing.T, path string) ([]renderedContainer, map[string]map[string]string) {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var inv struct {
		Resources []struct {
			Type   string
			Inputs map[string]any
		}
	}
	require.NoError(t, yaml.Unmarshal(data, &inv))
	tops := map[string]bool{}
	for _, c := range commands() {
		tops[strings.Fields(c.name)[0]] = true
	}
	var out []renderedContainer
	configMaps := map[string]map[string]string{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if list, ok := v["containers"].([]any); ok {
				for _, c := range list {
					if rc, ok := omsContainer(c, tops); ok {
						out = append(out, rc)
					}
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	for _, r := range inv.Resources {
		if r.Type == "kubernetes:core/v1:ConfigMap" {
			name, _ := r.Inputs["metadata"].(map[string]any)["name"].(string)
			cm := map[string]string{}
			for k, v := range asMap(r.Inputs["data"]) {
				cm[k] = fmt.Sprint(v)
			}
			configMaps[name] = cm
		}
		walk(r.Inputs)
	}
	return out, configMaps
}

func omsContainer(c any, commands map[string]bool) (renderedContainer, bool) {
	m := asMap(c)
	rawArgs, _ := m["args"].([]any)
	if len(rawArgs) == 0 || !commands[fmt.Sprint(rawArgs[0])] || m["command"] != nil {
		return renderedContainer{}, false
	}
	rc := renderedContainer{env: map[string]string{}, ports: map[string]int{}}
	ports, _ := m["ports"].([]any)
	for _, p := range ports {
		pm := asMap(p)
		n, _ := pm["containerPort"].(int)
		rc.ports[fmt.Sprint(pm["name"])] = n
	}
	for _, a := range rawArgs {
		rc.args = append(rc.args, fmt.Sprint(a))
	}
	envList, _ := m["env"].([]any)
	for _, e := range envList {
		em := asMap(e)
		v, _ := em["value"].(string)
		rc.env[fmt.Sprint(em["name"])] = v
	}
	from, _ := m["envFrom"].([]any)
	for _, f := range from {
		if ref := asMap(asMap(f)["configMapRef"]); ref != nil {
			rc.configMaps = append(rc.configMaps, fmt.Sprint(ref["name"]))
		}
	}
	return rc, true
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
