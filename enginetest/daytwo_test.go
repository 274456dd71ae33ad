package enginetest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/omscloud/omscloud/enginetest"
	"github.com/omscloud/omscloud/stacks"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/stretchr/testify/require"
)

// dayTwoChange is one change an operator makes to a running stack. apply edits the stack's config (or returns
// preview options, such as a --replace); it runs on the state of the stack's first up.
type dayTwoChange struct {
	name string
	// updates, when set, is a resource type the change must update (so that a cell cannot pass by doing nothing).
	updates string
	apply   func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, env *enginetest.Env) []optpreview.Option
}

func setConfig(ctx context.Context, t *testing.T, s auto.Stack, key, value string) {
	t.Helper()
	require.NoError(t, s.SetConfigWithOptions(ctx, "omscloud:"+key, auto.ConfigValue{Value: value}, &auto.ConfigOptions{Path: true}))
}

// dayTwoChanges are the changes of the matrix (issue 13). The disk change runs last: it first refreshes, which
// finds the disk autoresized, as it will be once data grows.
var dayTwoChanges = []dayTwoChange{
	{"redis storage", "kubernetes:core/v1:PersistentVolumeClaimPatch", func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []optpreview.Option {
		setConfig(ctx, t, s, "sizing.redis.storageGb", strconv.Itoa(cfg.Sizing.Redis.StorageGB+5))
		return nil
	}},
	{"rabbitmq storage", "kubernetes:core/v1:PersistentVolumeClaimPatch", func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []optpreview.Option {
		setConfig(ctx, t, s, "sizing.rabbitmq.storageGb", strconv.Itoa(cfg.Sizing.RabbitMQ.StorageGB+5))
		return nil
	}},
	{"password rotation", "", func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, env *enginetest.Env) []optpreview.Option {
		_, resources, err := env.RawState(cfg.Stack)
		require.NoError(t, err)
		var urns []string
		for _, r := range resources {
			if r.Type == "random:index/randomPassword:RandomPassword" && strings.Contains(r.URN, "redis") {
				urns = append(urns, r.URN)
			}
		}
		require.NotEmpty(t, urns, "the stack generates a Redis password")
		return []optpreview.Option{optpreview.Replace(urns)}
	}},
	{"new image", "", func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []optpreview.Option {
		img := cfg.Runtime.Image
		last := "0"
		if strings.HasSuffix(img, "0") {
			last = "1"
		}
		setConfig(ctx, t, s, "runtime.image", img[:len(img)-1]+last)
		return nil
	}},
	{"color switch", "", func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []optpreview.Option {
		color := "green"
		if cfg.Runtime.ActiveColor == "green" {
			color = "blue"
		}
		setConfig(ctx, t, s, "runtime.activeColor", color)
		return nil
	}},
	{"new account", "", func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []optpreview.Option {
		setConfig(ctx, t, s, fmt.Sprintf("accounts[%d]", len(cfg.Accounts)), "newco")
		return nil
	}},
	{"hostname added", "", func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []optpreview.Option {
		hosts := append(slices.Clone(cfg.Edge.Hostnames), "shop."+cfg.Edge.Domain)
		for i, h := range hosts {
			setConfig(ctx, t, s, fmt.Sprintf("edge.hostnames[%d]", i), h)
		}
		return nil
	}},
	{"web sizing", "gcp:container/nodePool:NodePool", func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []optpreview.Option {
		setConfig(ctx, t, s, "sizing.web.maxNodesPerZone", strconv.Itoa(cfg.Sizing.Web.MaxNodesPerZone+1))
		return nil
	}},
	{"maintenance window", "", func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []optpreview.Option {
		setConfig(ctx, t, s, "maintenance.startHourUtc", strconv.Itoa((cfg.Maintenance.StartHourUTC+1)%24))
		return nil
	}},
	{"db disk size", "", func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []optpreview.Option {
		_, err := s.Refresh(ctx)
		require.NoError(t, err, "refresh (finds the disk autoresized)")
		setConfig(ctx, t, s, "sizing.database.diskSizeGb", strconv.Itoa(cfg.Sizing.Database.DiskSizeGB+10))
		return nil
	}},
}

// destructive are the engine operations that lose a stateful resource.
var destructive = []apitype.OpType{apitype.OpReplace, apitype.OpCreateReplacement, apitype.OpDeleteReplaced,
	apitype.OpDelete, apitype.OpReadDiscard, apitype.OpDiscardReplaced}

// TestDayTwoChangeMatrix: for every shipped stack, after its first up, each day-2 change previews (from the same
// base state and config) without replacing or deleting a stateful resource (enginetest.StatefulTypes). The stand-ins
// replace where the real providers replace (replace.go) and the engine refuses to replace a protected resource, as
// it would for real. Prints the matrix: stack × change → ok or the offending steps.
func TestDayTwoChangeMatrix(t *testing.T) {
	env := enginetest.New(t)
	names, err := stacks.ListStacks(env.ProjectDir)
	require.NoError(t, err)
	require.NotEmpty(t, names)

	var mu sync.Mutex
	matrix := map[string]map[string]string{}
	record := func(stack, change, result string) {
		mu.Lock()
		defer mu.Unlock()
		if matrix[stack] == nil {
			matrix[stack] = map[string]string{}
		}
		matrix[stack][change] = result
	}
	t.Cleanup(func() { t.Log("\n" + formatMatrix(names, matrix)) })

	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := stackConfig(t, env, name)
			s := env.Stack(ctx, t, name, stacks.Program)
			// The base state. Should the up fail part-way (today: a GCP-edge stack's backend services on the NEG
			// look-up, which TestShippedStacksOnEngine also reports), the cell says so and the changes still preview
			// from what was created: everything else is in the state.
			if _, err := s.Up(ctx); err != nil {
				record(name, baseCell, "up failed: "+previewError(err))
				t.Errorf("up: %s", previewError(err))
			} else {
				record(name, baseCell, "ok")
			}

			file := filepath.Join(env.WorkDir, "Pulumi."+name+".yaml")
			base, err := os.ReadFile(file)
			require.NoError(t, err)
			for _, c := range dayTwoChanges {
				require.NoError(t, os.WriteFile(file, base, 0o644), "reset the config")
				opts := c.apply(ctx, t, s, cfg, env)
				_, steps, err := previewWith(ctx, s, opts...)
				result := dayTwoVerdict(steps, err)
				if result == "ok" && c.updates != "" && !slices.ContainsFunc(steps, func(st step) bool {
					return st.typ == c.updates && st.op == string(apitype.OpUpdate)
				}) {
					result = "no update of a " + c.updates
				}
				record(name, c.name, result)
				if result != "ok" {
					t.Errorf("%s: %s", c.name, result)
				}
				for _, st := range changed(steps) {
					if slices.Contains(destructive, apitype.OpType(st.op)) {
						t.Logf("%s: %s", c.name, st)
					}
				}
			}
			require.NoError(t, os.WriteFile(file, base, 0o644))
		})
	}
}

// stackConfig is a shipped stack's typed config, as its scratch stack file holds it.
func stackConfig(t *testing.T, env *enginetest.Env, name string) *stacks.Config {
	t.Helper()
	sf, err := stacks.LoadStackFile(env.WorkDir, name)
	require.NoError(t, err)
	cfg, err := sf.Config()
	require.NoError(t, err)
	cfg.Stack = name
	return cfg
}

// dayTwoVerdict is "ok", or the destructive steps on stateful resources and the preview's error.
func dayTwoVerdict(steps []step, err error) string {
	var bad []string
	for _, st := range steps {
		if _, stateful := enginetest.StatefulTypes[st.typ]; stateful && slices.Contains(destructive, apitype.OpType(st.op)) {
			bad = append(bad, fmt.Sprintf("%s %s %v", st.op, shortURN(st.urn), st.diffs))
		}
	}
	if err != nil {
		bad = append(bad, "preview failed: "+previewError(err))
	}
	if len(bad) == 0 {
		return "ok"
	}
	return strings.Join(bad, "; ")
}

// previewError is the engine's error lines, without the CLI's output around them.
func previewError(err error) string {
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "error:") && !slices.Contains(lines, l) {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return err.Error()
	}
	return strings.Join(lines, " ")
}

func shortURN(urn string) string { return urn[strings.LastIndex(urn, "::")+2:] }

// baseCell is the matrix cell of the stack's first up.
const baseCell = "(first up)"

func formatMatrix(names []string, matrix map[string]map[string]string) string {
	var b strings.Builder
	cells := []string{baseCell}
	for _, c := range dayTwoChanges {
		cells = append(cells, c.name)
	}
	for _, n := range names {
		for _, c := range cells {
			r, ok := matrix[n][c]
			if !ok {
				r = "(not run)"
			}
			fmt.Fprintf(&b, "%-14s %-20s %s\n", n, c, r)
		}
	}
	return b.String()
}

// previewWith runs a preview with options and returns the engine's steps.
func previewWith(ctx context.Context, s auto.Stack, opts ...optpreview.Option) (auto.PreviewResult, []step, error) {
	ch := make(chan events.EngineEvent)
	done := make(chan []step)
	go func() {
		var out []step
		for e := range ch {
			if e.ResourcePreEvent == nil {
				continue
			}
			m := e.ResourcePreEvent.Metadata
			out = append(out, step{op: string(m.Op), typ: m.Type, urn: m.URN, diffs: m.Diffs})
		}
		done <- out
	}()
	res, err := s.Preview(ctx, append(opts, optpreview.EventStreams(ch))...)
	return res, <-done, err
}
