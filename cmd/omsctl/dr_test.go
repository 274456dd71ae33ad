package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omscloud/omscloud/enginetest"
	"github.com/omscloud/omscloud/stacks"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTimelinePrintsEveryStepAndTheTotalAgainstTheAnchor(t *testing.T) {
	tl := &Timeline{Primary: "prod-eu", DRStack: "prod-eu-dr", From: "europe-west1", To: "europe-west4", Steps: []TimelineStep{
		{Name: "provision", Duration: 12*time.Minute + 30*time.Second, Detail: "180 create in europe-west4"},
		{Name: "restore", Duration: 6 * time.Minute, Detail: "Job oms-prod-eu-dr-restore"},
		{Name: "health check", Duration: 1500 * time.Millisecond, Detail: "ready"},
	}}
	tl.Skip("switch", "drill")
	var out bytes.Buffer
	tl.Print(&out)
	text := out.String()

	assert.Contains(t, text, "DR activation of prod-eu -> prod-eu-dr (europe-west1 -> europe-west4)")
	lines := strings.Split(strings.TrimSpace(text), "\n")
	require.Len(t, lines, 7, text)
	assert.Regexp(t, `^STEP\s+DURATION\s+DETAIL$`, lines[1])
	assert.Regexp(t, `^provision\s+12m30s\s+180 create in europe-west4$`, lines[2])
	assert.Regexp(t, `^restore\s+6m0s\s+Job oms-prod-eu-dr-restore$`, lines[3])
	assert.Regexp(t, `^health check\s+1\.5s\s+ready$`, lines[4])
	assert.Regexp(t, `^switch\s+skipped\s+drill$`, lines[5])
	// 18m31.5s of 60m.
	assert.Regexp(t, `^total\s+18m32s\s+30\.9% of the 1h0m0s RTO anchor$`, lines[6])
	assert.Equal(t, 18*time.Minute+31500*time.Millisecond, tl.Total())
}

func TestTimelineMarksAFailedStep(t *testing.T) {
	tl := &Timeline{Action: "deactivation", Primary: "prod", DRStack: "prod-dr"}
	err := tl.Run("provision", func() (string, error) { return "", errors.New("quota exceeded") })
	require.Error(t, err)
	var out bytes.Buffer
	tl.Print(&out)
	assert.Contains(t, out.String(), "DR deactivation of prod -> prod-dr")
	assert.Contains(t, out.String(), "FAILED: quota exceeded")
	assert.Contains(t, out.String(), "incomplete: a step failed")
}

var gcpLocation = regexp.MustCompile(`^[a-z]+-[a-z]+[0-9]+(-[a-z])?$`)

func locationsIn(v any) []string {
	switch x := v.(type) {
	case string:
		if gcpLocation.MatchString(x) {
			return []string{x}
		}
	case map[string]any:
		var out []string
		for _, e := range x {
			out = append(out, locationsIn(e)...)
		}
		return out
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, locationsIn(e)...)
		}
		return out
	}
	return nil
}

// TestDRActivateOnEngine: for every production stack with DR, with the primary up in the backend, dr activate
// creates <stack>-dr with resources only in the DR site (or the jurisdiction's multi-region), restores from the
// primary's bucket, health-checks the reserved DR address (gcp edge) and leaves the primary untouched.
func TestDRActivateOnEngine(t *testing.T) {
	env := enginetest.New(t)
	names, err := stacks.ListStacks(env.WorkDir)
	require.NoError(t, err)
	tested := 0
	for _, name := range names {
		sf, err := stacks.LoadStackFile(env.WorkDir, name)
		require.NoError(t, err)
		cfg, err := sf.Config()
		require.NoError(t, err)
		if !cfg.DR.Enabled {
			continue
		}
		tested++
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			drillOnEngine(t, env, name, cfg)
		})
	}
	require.Positive(t, tested, "some shipped stack has DR")
}

func drillOnEngine(t *testing.T, env *enginetest.Env, primaryName string, primaryCfg *stacks.Config) {
	ctx := context.Background()
	opts := drOptions{Primary: primaryName, ProjectDir: env.WorkDir, Command: env.Command, EnvVars: env.Vars}

	// Not deployed yet: activation refuses and names the fix.
	_, err := activateDR(ctx, opts)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "primary stack "+primaryName+" is not in")

	primary := env.Stack(ctx, t, primaryName, stacks.Program)
	up, err := primary.Up(ctx)
	require.NoError(t, err)
	backupURL, drAddress := up.Outputs["backupUrl"].Value, up.Outputs["drIpAddress"].Value
	require.NotEmpty(t, backupURL)
	before, _, err := env.RawState(primaryName)
	require.NoError(t, err)

	var probed []ReadyTarget
	opts.Probe = func(_ context.Context, target ReadyTarget) error {
		probed = append(probed, target)
		return nil
	}
	tl, err := activateDR(ctx, opts)
	require.NoError(t, err)
	var out bytes.Buffer
	tl.Print(&out)
	t.Logf("\n%s", out.String())
	var names []string
	for _, s := range tl.Steps {
		names = append(names, s.Name)
	}
	if primaryCfg.Edge.Provider == "cloudflare" {
		assert.Equal(t, []string{"provision", "restore", "switch", "health check"}, names)
		assert.Empty(t, probed, "a cloudflare drill cannot reach the DR tunnel from outside")
	} else {
		require.NotEmpty(t, drAddress)
		assert.Equal(t, []string{"provision", "restore", "health check", "switch"}, names)
		assert.Equal(t, []ReadyTarget{{URL: "https://" + primaryCfg.Edge.Domain + "/readyz", Address: drAddress.(string)}}, probed)
	}
	for _, s := range tl.Steps {
		if s.Name == "switch" {
			assert.True(t, s.Skipped, "without --switch the run is a drill")
		}
	}

	// The DR stack: everything in the DR site, the restore Job reading the primary's bucket, the primary referenced.
	_, drResources, err := env.RawState(stacks.DRStackName(primaryName))
	require.NoError(t, err)
	site := primaryCfg.Region.DR
	custom, checked := 0, 0
	var restoreArgs []any
	var refName any
	for _, r := range drResources {
		if r.Custom {
			custom++
		}
		for _, loc := range locationsIn(r.Inputs) {
			checked++
			assert.True(t, loc == site.GCPRegion || slices.Contains(site.Zones, loc), "%s names %s, outside the DR site %s", r.URN, loc, site.GCPRegion)
		}
		switch {
		case r.Type == "kubernetes:batch/v1:Job" && strings.HasSuffix(r.URN, "-restore-1"):
			spec, _ := r.Inputs["spec"].(map[string]any)
			tmpl, _ := spec["template"].(map[string]any)
			pod, _ := tmpl["spec"].(map[string]any)
			containers, _ := pod["containers"].([]any)
			require.Len(t, containers, 1)
			restoreArgs, _ = containers[0].(map[string]any)["args"].([]any)
		case r.Type == "pulumi:pulumi:StackReference":
			refName = r.Inputs["name"]
		}
	}
	assert.Greater(t, custom, 50, "the full environment is declared")
	assert.Greater(t, checked, 10, "regions and zones were found to check")
	assert.Equal(t, []any{"restore", "--from", backupURL, "--latest"}, restoreArgs)
	assert.Equal(t, "organization/omscloud/"+primaryName, refName)

	// The primary is untouched: its state file is byte for byte the same.
	after, _, err := env.RawState(primaryName)
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "the primary's state changed")

	// dr status reports both stacks.
	var status bytes.Buffer
	require.NoError(t, drStatus(ctx, &status, opts))
	t.Logf("\n%s", status.String())
	assert.Regexp(t, `(?m)^`+primaryName+`\s+primary\s+update succeeded\s+\S.*\s+\d+$`, status.String())
	assert.Regexp(t, `(?m)^`+primaryName+`-dr\s+DR\s+update succeeded\s+\S.*\s+\d+$`, status.String())

	if primaryCfg.Edge.Provider != "gcp" {
		return
	}
	// Declaring DR moves the hostnames' A records to the reserved address, where the DR load balancer presents the
	// primary's certificate map: TLS is valid from the first request, no certificate waits for DNS.
	cloud := env.Providers.Cloud
	for _, h := range primaryCfg.Edge.Hostnames {
		require.NoError(t, cloud.ServesTLS(h), "before the switch")
		assert.NotEqual(t, drAddress, cloud.Resolve(h), "%s points at the primary before the switch", h)
	}
	opts.Switch = true
	tl, err = activateDR(ctx, opts)
	require.NoError(t, err, "activate --switch")
	out.Reset()
	tl.Print(&out)
	t.Logf("\n%s", out.String())
	for _, h := range primaryCfg.Edge.Hostnames {
		assert.Equal(t, drAddress, cloud.Resolve(h), "%s points at the DR load balancer after the switch", h)
		assert.NoError(t, cloud.ServesTLS(h), "after the switch")
	}
}

func TestHTTPProbeWaitsForReadyOnTheDRAddress(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || r.Host != "example.com:"+port(t, r) {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	_, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	tlsConfig := srv.Client().Transport.(*http.Transport).TLSClientConfig
	probe := httpProbe(tlsConfig, 10*time.Millisecond)

	// example.com resolves elsewhere: the probe must connect to the DR address and still verify example.com.
	target := ReadyTarget{URL: "https://example.com:" + p + "/readyz", Address: "127.0.0.1"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, probe(ctx, target))
	assert.Equal(t, int32(3), calls.Load(), "two 503s, then ready")

	// Never ready: the probe keeps asking until its deadline, then fails.
	calls.Store(-1000)
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := probe(ctx, target)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not ready")
	assert.Greater(t, calls.Load(), int32(-999), "the probe retried after a 503")
}

func port(t *testing.T, r *http.Request) string {
	t.Helper()
	_, p, err := net.SplitHostPort(r.Context().Value(http.LocalAddrContextKey).(net.Addr).String())
	require.NoError(t, err)
	return p
}

// TestDRRepeatsOnEngine: DR activates, deactivates and activates again, twice, with a behaviour model that keeps the
// names GCP keeps (KMS key rings and keys forever, a deleted Cloud SQL instance's for a week) and refuses to delete a
// protected database or cluster. Each generation adopts the same keys and names a new database instance; a second
// activation of a live generation changes nothing and restores nothing over its database; --force-restore is a new
// run; deactivation backs up into the primary's bucket, refuses to tear down while traffic is on DR, and otherwise
// leaves only the keys.
func TestDRRepeatsOnEngine(t *testing.T) {
	env := enginetest.New(t)
	for _, name := range []string{"prod-eu", "acme-prod-eu"} {
		sf, err := stacks.LoadStackFile(env.WorkDir, name)
		require.NoError(t, err)
		cfg, err := sf.Config()
		require.NoError(t, err)
		require.True(t, cfg.DR.Enabled, name)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			repeatOnEngine(t, env, name)
		})
	}
}

func stepNames(tl *Timeline) []string {
	var out []string
	for _, s := range tl.Steps {
		if s.Skipped {
			out = append(out, s.Name+" (skipped)")
		} else {
			out = append(out, s.Name)
		}
	}
	return out
}

func logTimeline(t *testing.T, tl *Timeline) {
	t.Helper()
	var out bytes.Buffer
	tl.Print(&out)
	t.Logf("\n%s", out.String())
}

// drResources are the DR stack's custom resources by type: their ids.
func drResources(t *testing.T, env *enginetest.Env, stack string) map[string][]string {
	t.Helper()
	_, resources, err := env.RawState(stack)
	require.NoError(t, err)
	out := map[string][]string{}
	for _, r := range resources {
		if r.Custom && !strings.HasPrefix(r.Type, "pulumi:") {
			out[r.Type] = append(out[r.Type], r.ID)
		}
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}

func repeatOnEngine(t *testing.T, env *enginetest.Env, name string) {
	ctx := context.Background()
	opts := drOptions{Primary: name, ProjectDir: env.WorkDir, Command: env.Command, EnvVars: env.Vars,
		Probe: func(context.Context, ReadyTarget) error { return nil }}
	primary := env.Stack(ctx, t, name, stacks.Program)
	_, err := primary.Up(ctx)
	require.NoError(t, err)
	before, _, err := env.RawState(name)
	require.NoError(t, err)
	drName := stacks.DRStackName(name)
	sf, err := stacks.LoadStackFile(env.WorkDir, name)
	require.NoError(t, err)
	cfg, err := sf.Config()
	require.NoError(t, err)
	drCfg, err := stacks.DRConfigFor(cfg)
	require.NoError(t, err)
	drJob := func(suffix string) string { return drCfg.NamePrefix() + "-" + suffix }

	_, err = deactivateDR(ctx, opts)
	require.ErrorContains(t, err, drName+" has no live DR environment", "nothing to deactivate before an activation")

	const keyRings, keys = "gcp:kms/keyRing:KeyRing", "gcp:kms/cryptoKey:CryptoKey"
	var firstKeys []string
	var instances []string
	for gen := 1; gen <= 2; gen++ {
		start := time.Now()
		tl, err := activateDR(ctx, opts)
		require.NoError(t, err, "activation %d", gen)
		logTimeline(t, tl)
		require.GreaterOrEqual(t, len(tl.Steps), 2)
		assert.Equal(t, []string{"provision", "restore"}, stepNames(tl)[:2], "activation %d restores", gen)
		res := drResources(t, env, drName)
		require.Len(t, res[sqlType], 1)
		assert.NotContains(t, instances, res[sqlType][0], "generation %d names a new database instance", gen)
		instances = append(instances, res[sqlType][0])
		gotKeys := slices.Concat(res[keyRings], res[keys])
		assert.Len(t, gotKeys, 8, "4 key rings and 4 keys: database, cluster secrets, backups, media")
		if firstKeys == nil {
			firstKeys = gotKeys
		} else {
			assert.Equal(t, firstKeys, gotKeys, "generation %d adopts the keys of the first", gen)
		}
		restoreJobs := jobsOf(t, env, drName, "-restore-")
		assert.Equal(t, map[string][]any{drJob("restore-1"): {"restore", "--from", backupURLOf(t, primary), "--latest"}}, restoreJobs)

		// Again on the live generation: nothing changes, nothing is restored over its database.
		tl, err = activateDR(ctx, opts)
		require.NoError(t, err, "second activation of generation %d", gen)
		logTimeline(t, tl)
		assert.Equal(t, []string{"provision", "restore (skipped)"}, stepNames(tl)[:2])
		assert.Regexp(t, `^\d+ same in `, tl.Steps[0].Detail, "the second activation changes nothing")
		assert.Equal(t, restoreJobs, jobsOf(t, env, drName, "-restore-"), "the restore Job is the same, never run again")
		assert.Equal(t, res, drResources(t, env, drName))

		if gen == 1 {
			// A DR stack deployed before components/restore held the restore Job, the key and the grants elsewhere
			// (formerLayout): the next activation moves their state through the aliases, creating only the component.
			formerLayout(t, env.Stack(ctx, t, drName, stacks.DRProgram(name)))
			tl, err = activateDR(ctx, opts)
			require.NoError(t, err, "activation over the former layout")
			logTimeline(t, tl)
			assert.Equal(t, []string{"provision", "restore (skipped)"}, stepNames(tl)[:2])
			assert.Regexp(t, `^1 create, \d+ same in `, tl.Steps[0].Detail, "only the restore component is new: nothing replaced or deleted")
			assert.Equal(t, restoreJobs, jobsOf(t, env, drName, "-restore-"), "the restore Job keeps its state, never run again")
			assert.Equal(t, res, drResources(t, env, drName))
		}

		if gen == 1 {
			// Forced: a new run, which tells oms restore to restore over a written database.
			forced := opts
			forced.ForceRestore = true
			tl, err = activateDR(ctx, forced)
			require.NoError(t, err, "forced restore")
			assert.Equal(t, []string{"provision", "restore"}, stepNames(tl)[:2])
			assert.Equal(t, map[string][]any{drJob("restore-2"): {"restore", "--from", backupURLOf(t, primary), "--latest", "--force"}},
				jobsOf(t, env, drName, "-restore-"))
		}

		tl, err = deactivateDR(ctx, opts)
		require.NoError(t, err, "deactivation %d", gen)
		logTimeline(t, tl)
		assert.Equal(t, []string{"backup", "teardown"}, stepNames(tl))
		assert.Contains(t, tl.Steps[0].Detail, fmt.Sprint("oms backup --tier monthly --to ", backupURLOf(t, primary)))
		assert.Contains(t, tl.Steps[1].Detail, "8 KMS key rings and keys stay in GCP")
		assert.Empty(t, drResources(t, env, drName), "generation %d is gone", gen)
		for _, id := range firstKeys {
			typ := keys
			if !strings.Contains(id, "/cryptoKeys/") {
				typ = keyRings
			}
			_, _, exists := env.Providers.Cloud.Read(typ, id)
			assert.True(t, exists, "%s stays in GCP", id)
		}
		t.Logf("generation %d: activate, again, deactivate in %s", gen, time.Since(start).Round(time.Second))
	}
	after, _, err := env.RawState(name)
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "activations and deactivations leave the primary's state as it was")

	// Traffic on DR: deactivation backs up, then refuses to tear down.
	switched := opts
	switched.Switch = true
	_, err = activateDR(ctx, switched)
	require.NoError(t, err, "activate --switch")
	tl, err := deactivateDR(ctx, opts)
	logTimeline(t, tl)
	require.ErrorContains(t, err, "traffic is on the DR site")
	assert.Equal(t, []string{"backup", "teardown"}, stepNames(tl))
	assert.NotEmpty(t, drResources(t, env, drName)[sqlType], "the DR database stays while it serves")
}

const sqlType = "gcp:sql/databaseInstance:DatabaseInstance"

// formerLayout rewrites a DR stack's state into the layout of a DR stack deployed before components/restore: no
// restore component, its grants children of the DR environment, its key and Jobs at the stack's root.
func formerLayout(t *testing.T, s auto.Stack) {
	t.Helper()
	ctx := context.Background()
	exported, err := s.Export(ctx)
	require.NoError(t, err)
	var d struct {
		Resources []map[string]any `json:"resources"`
	}
	dec := json.NewDecoder(bytes.NewReader(exported.Deployment))
	dec.UseNumber() // numbers go back as they came
	require.NoError(t, dec.Decode(&d))
	var root, environment, component string
	for _, r := range d.Resources {
		switch r["type"] {
		case "pulumi:pulumi:Stack":
			root = r["urn"].(string)
		case "omscloud:environment:Environment":
			environment = r["urn"].(string)
		case "omscloud:restore:Restore":
			component = r["urn"].(string)
		}
	}
	require.NotEmpty(t, component, "the state has the restore component")
	renamed := map[string]string{}
	var kept []map[string]any
	for _, r := range d.Resources {
		urn := r["urn"].(string)
		switch {
		case urn == component:
			continue
		case r["parent"] == component && r["type"] == "gcp:storage/bucketIAMMember:BucketIAMMember":
			r["parent"] = environment
			renamed[urn] = strings.Replace(urn, "omscloud:restore:Restore$", "omscloud:environment:Environment$", 1)
		case r["parent"] == component:
			r["parent"] = root
			renamed[urn] = strings.Replace(urn, "omscloud:restore:Restore$", "", 1)
		}
		kept = append(kept, r)
	}
	require.NotEmpty(t, renamed)
	var all map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(exported.Deployment, &all))
	resources, err := json.Marshal(kept)
	require.NoError(t, err)
	text := string(resources)
	for now, before := range renamed {
		text = strings.ReplaceAll(text, `"`+now+`"`, `"`+before+`"`)
	}
	all["resources"] = json.RawMessage(text)
	exported.Deployment, err = json.Marshal(all)
	require.NoError(t, err)
	require.NoError(t, s.Import(ctx, exported))
}

func backupURLOf(t *testing.T, primary auto.Stack) any {
	t.Helper()
	outs, err := primary.Outputs(context.Background())
	require.NoError(t, err)
	return outs["backupUrl"].Value
}

// jobsOf are the DR stack's Jobs whose names contain part, with their arguments.
func jobsOf(t *testing.T, env *enginetest.Env, stack, part string) map[string][]any {
	t.Helper()
	_, resources, err := env.RawState(stack)
	require.NoError(t, err)
	out := map[string][]any{}
	for _, r := range resources {
		if r.Type != "kubernetes:batch/v1:Job" {
			continue
		}
		meta, _ := r.Inputs["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		if !strings.Contains(name, part) {
			continue
		}
		spec, _ := r.Inputs["spec"].(map[string]any)
		tmpl, _ := spec["template"].(map[string]any)
		pod, _ := tmpl["spec"].(map[string]any)
		containers, _ := pod["containers"].([]any)
		require.Len(t, containers, 1)
		out[name], _ = containers[0].(map[string]any)["args"].([]any)
	}
	return out
}
