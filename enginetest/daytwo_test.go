package enginetest_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/enginetest"
	"github.com/omscloud/omscloud/stacks"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/stretchr/testify/require"
)

// dayTwoChange is one change an operator makes to a running stack. apply edits the stack's config from cfg (the
// config the stack runs with) and returns the URNs the change replaces by hand (`pulumi up --replace`), if any.
type dayTwoChange struct {
	name string
	// updates, when set, is a resource type the change must update (so that a cell cannot pass by doing nothing).
	updates string
	apply   func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, env *enginetest.Env) (replace []string)
	// rolls, when set, are exactly the workloads (the suffixes of their resource names) whose pods the change
	// restarts through their secret checksum: a rotated credential reaches every consumer, and only them.
	rolls []string
}

// rotation raises the rotation count of a generated credential (stacks.Rotation).
func rotation(key string) func(context.Context, *testing.T, auto.Stack, *stacks.Config, *enginetest.Env) []string {
	return func(ctx context.Context, t *testing.T, s auto.Stack, _ *stacks.Config, _ *enginetest.Env) []string {
		setConfig(ctx, t, s, "rotation."+key, "1")
		return nil
	}
}

func setConfig(ctx context.Context, t *testing.T, s auto.Stack, key, value string) {
	t.Helper()
	require.NoError(t, s.SetConfigWithOptions(ctx, "omscloud:"+key, auto.ConfigValue{Value: value}, &auto.ConfigOptions{Path: true}))
}

// dayTwoChanges are the changes of the matrix (issue 13). The disk change runs last: it first refreshes, which
// finds the disk autoresized, as it will be once data grows.
var dayTwoChanges = []dayTwoChange{
	{name: "redis storage", updates: "kubernetes:core/v1:PersistentVolumeClaimPatch", apply: func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []string {
		setConfig(ctx, t, s, "sizing.redis.storageGb", strconv.Itoa(cfg.Sizing.Redis.StorageGB+5))
		return nil
	}},
	{name: "rabbitmq storage", updates: "kubernetes:core/v1:PersistentVolumeClaimPatch", apply: func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []string {
		setConfig(ctx, t, s, "sizing.rabbitmq.storageGb", strconv.Itoa(cfg.Sizing.RabbitMQ.StorageGB+5))
		return nil
	}},
	// Rotations: Redis and RabbitMQ roll first (they then accept the new password as well as the old one), the
	// runtime's pods after them; the Cloud SQL user takes its new password in place before the runtime rolls.
	{name: "redis rotation", updates: "kubernetes:apps/v1:StatefulSet", apply: rotation("redis"),
		rolls: []string{"-redis", "-web-blue", "-web-green", "-worker"}},
	{name: "rabbitmq rotation", updates: "kubernetes:apps/v1:StatefulSet", apply: rotation("rabbitmq"),
		rolls: []string{"-rabbitmq", "-worker"}},
	{name: "database rotation", updates: "gcp:sql/user:User", apply: rotation("database"),
		rolls: []string{"-web-blue", "-web-green", "-worker"}},
	{name: "new image", apply: func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []string {
		img := cfg.Runtime.Image
		last := "0"
		if strings.HasSuffix(img, "0") {
			last = "1"
		}
		setConfig(ctx, t, s, "runtime.image", img[:len(img)-1]+last)
		return nil
	}},
	{name: "color switch", apply: func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []string {
		color := "green"
		if cfg.Runtime.ActiveColor == "green" {
			color = "blue"
		}
		setConfig(ctx, t, s, "runtime.activeColor", color)
		return nil
	}},
	{name: "new account", apply: func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []string {
		setConfig(ctx, t, s, fmt.Sprintf("accounts[%d]", len(cfg.Accounts)), "newco")
		return nil
	}},
	{name: "hostname added", apply: func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []string {
		hosts := append(slices.Clone(cfg.Edge.Hostnames), "shop."+cfg.Edge.Domain)
		for i, h := range hosts {
			setConfig(ctx, t, s, fmt.Sprintf("edge.hostnames[%d]", i), h)
		}
		return nil
	}},
	{name: "web sizing", updates: "gcp:container/nodePool:NodePool", apply: func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []string {
		setConfig(ctx, t, s, "sizing.web.maxNodesPerZone", strconv.Itoa(cfg.Sizing.Web.MaxNodesPerZone+1))
		return nil
	}},
	{name: "maintenance window", apply: func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []string {
		setConfig(ctx, t, s, "maintenance.startHourUtc", strconv.Itoa((cfg.Maintenance.StartHourUTC+1)%24))
		return nil
	}},
	{name: "db disk size", apply: func(ctx context.Context, t *testing.T, s auto.Stack, cfg *stacks.Config, _ *enginetest.Env) []string {
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
// it would for real. Prints the matrix: stack × change → ok or the offending steps. TestShippedStacksOnRealKubernetes
// applies the same changes, one after the other, with the real Kubernetes provider (dayTwoUpdates).
func TestDayTwoChangeMatrix(t *testing.T) {
	env := enginetest.New(t)
	names, err := stacks.ListStacks(env.ProjectDir)
	require.NoError(t, err)
	require.NotEmpty(t, names)
	matrix := newDayTwoMatrix(t, "day-2 changes previewed from the first up (stand-ins)", names)

	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := stackConfig(t, env, name)
			s := env.Stack(ctx, t, name, stacks.Program)
			// The base state. Should the up fail part-way, the cell says so and the changes still preview from what
			// was created: everything else is in the state.
			if _, err := s.Up(ctx); err != nil {
				matrix.record(name, baseCell, "up failed: "+previewError(err))
				t.Errorf("up: %s", previewError(err))
			} else {
				matrix.record(name, baseCell, "ok")
			}

			file := filepath.Join(env.WorkDir, "Pulumi."+name+".yaml")
			base, err := os.ReadFile(file)
			require.NoError(t, err)
			for _, c := range dayTwoChanges {
				require.NoError(t, os.WriteFile(file, base, 0o644), "reset the config")
				_, steps, err := previewWith(ctx, s, optpreview.Replace(c.apply(ctx, t, s, cfg, env)))
				if result := matrix.record(name, c.name, c.verdict(steps, err)); result != "ok" {
					t.Errorf("%s: %s", c.name, result)
				}
				logDestructive(t, c.name, steps)
			}
			require.NoError(t, os.WriteFile(file, base, 0o644))
		})
	}
}

// dayTwoUpdates applies every day-2 change to a stack that is up, each on top of the last, with whatever providers
// the environment has attached (the real Kubernetes provider in TestShippedStacksOnRealKubernetes): the preview must
// not replace or delete a stateful resource, then the up must succeed against the live objects (an immutable-field
// error from the API server fails it) and leave every workload ready on the server. Returns the time each took.
func dayTwoUpdates(ctx context.Context, t *testing.T, k *enginetest.KubeCluster, env *enginetest.Env, s auto.Stack, name string, matrix *dayTwoMatrix) []string {
	t.Helper()
	var timings []string
	for _, c := range dayTwoChanges {
		start := time.Now()
		replace := c.apply(ctx, t, s, stackConfig(t, env, name), env)
		_, steps, err := previewWith(ctx, s, optpreview.Replace(replace))
		result := c.verdict(steps, err)
		logDestructive(t, c.name, steps)
		if result == "ok" {
			if _, err := s.Up(ctx, optup.Replace(replace)); err != nil {
				result = "up failed: " + previewError(err)
				t.Logf("%s: up: %s", c.name, tail(err))
			} else {
				assertServerReady(ctx, t, k, env, name, time.Minute)
			}
		}
		if matrix.record(name, c.name, result) != "ok" {
			t.Errorf("%s: %s", c.name, result)
		}
		timings = append(timings, fmt.Sprintf("%s %.1fs", c.name, time.Since(start).Seconds()))
	}
	return timings
}

// verdict is a cell of the matrix: "ok", or the destructive steps on stateful resources and the preview's error, or
// that the change did not update the resource type it must update or roll exactly the workloads it must roll.
func (c dayTwoChange) verdict(steps []step, err error) string {
	result := dayTwoVerdict(steps, err)
	if result == "ok" && c.updates != "" && !slices.ContainsFunc(steps, func(st step) bool {
		return st.typ == c.updates && st.op == string(apitype.OpUpdate)
	}) {
		result = "no update of a " + c.updates
	}
	if result == "ok" && c.rolls != nil {
		result = rollsVerdict(steps, c.rolls)
	}
	return result
}

// logDestructive logs every destructive step of a change's preview, stateful or not.
func logDestructive(t *testing.T, change string, steps []step) {
	t.Helper()
	for _, st := range changed(steps) {
		if slices.Contains(destructive, apitype.OpType(st.op)) {
			t.Logf("%s: %s", change, st)
		}
	}
}

// dayTwoMatrix collects the cells of parallel subtests, and logs the table when the test ends.
type dayTwoMatrix struct {
	mu    sync.Mutex
	cells map[string]map[string]string
}

func newDayTwoMatrix(t *testing.T, title string, names []string) *dayTwoMatrix {
	m := &dayTwoMatrix{cells: map[string]map[string]string{}}
	t.Cleanup(func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		t.Log(title + ":\n" + formatMatrix(names, m.cells))
	})
	return m
}

// record sets a cell and returns its value.
func (m *dayTwoMatrix) record(stack, change, result string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cells[stack] == nil {
		m.cells[stack] = map[string]string{}
	}
	m.cells[stack][change] = result
	return result
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

// rollsVerdict is "ok" when the workloads whose pod templates' secret checksum changes (they restart) are exactly
// those named by the suffixes, each by an update.
func rollsVerdict(steps []step, suffixes []string) string {
	var rolled, problems []string
	for _, st := range steps {
		if !st.rolls {
			continue
		}
		name := shortURN(st.urn)
		rolled = append(rolled, name)
		switch {
		case st.op != string(apitype.OpUpdate):
			problems = append(problems, fmt.Sprintf("%s rolls by %s, not an update", name, st.op))
		case !slices.ContainsFunc(suffixes, func(s string) bool { return strings.HasSuffix(name, s) }):
			problems = append(problems, name+" rolls but does not use the credential")
		}
	}
	for _, s := range suffixes {
		if !slices.ContainsFunc(rolled, func(n string) bool { return strings.HasSuffix(n, s) }) {
			problems = append(problems, "*"+s+" does not roll")
		}
	}
	if len(problems) == 0 {
		return "ok"
	}
	return strings.Join(problems, "; ")
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
			out = append(out, step{op: string(m.Op), typ: m.Type, urn: m.URN, diffs: m.Diffs,
				rolls: slices.ContainsFunc(slices.Collect(maps.Keys(m.DetailedDiff)), func(path string) bool {
					return strings.HasPrefix(path, "spec.template.metadata.annotations") && strings.Contains(path, omsruntime.SecretChecksumAnnotation)
				})})
		}
		done <- out
	}()
	res, err := s.Preview(ctx, append(opts, optpreview.EventStreams(ch))...)
	return res, <-done, err
}
