package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/omscloud/omscloud/components/edge"
	"github.com/omscloud/omscloud/components/restore"
	"github.com/omscloud/omscloud/stacks"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
)

type drOptions struct {
	Primary, PrimaryRef string
	ProjectDir          string
	// Backend is PULUMI_BACKEND_URL for every pulumi command; empty keeps the CLI's login.
	Backend string
	// Command runs pulumi; when nil, the CLI in PulumiRoot (or on PATH) is used.
	Command    auto.PulumiCommand
	PulumiRoot string
	// EnvVars are added to every pulumi command's environment.
	EnvVars map[string]string
	// Probe defaults to HTTPProbe.
	Probe        ReadyProbe
	ReadyTimeout time.Duration
	Switch       bool
	// ForceRestore restores again over a live DR database, passing --force to oms restore.
	ForceRestore bool
	// Progress receives the engine's output; nil discards it.
	Progress io.Writer
}

// workspace prepares a scratch copy of Pulumi.yaml and the primary's Pulumi.<stack>.yaml: the DR stack's config is
// derived from the primary's on every activation, and the repository is not written to.
func (o *drOptions) workspace() ([]auto.LocalWorkspaceOption, func(), error) {
	dir, err := os.MkdirTemp("", "omsctl-dr-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	for _, f := range []string{"Pulumi.yaml", "Pulumi." + o.Primary + ".yaml"} {
		data, err := os.ReadFile(filepath.Join(o.ProjectDir, f))
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("DR of %s: %w", o.Primary, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
			cleanup()
			return nil, nil, err
		}
	}
	vars := map[string]string{"PULUMI_SKIP_UPDATE_CHECK": "true"}
	if o.Backend != "" {
		vars["PULUMI_BACKEND_URL"] = o.Backend
	}
	for k, v := range o.EnvVars {
		vars[k] = v
	}
	opts := []auto.LocalWorkspaceOption{auto.WorkDir(dir), auto.EnvVars(vars)}
	if o.Command != nil {
		opts = append(opts, auto.Pulumi(o.Command))
	}
	return opts, cleanup, nil
}

func (o *drOptions) backendName() string {
	if o.Backend == "" {
		return "the CLI's current backend"
	}
	return o.Backend
}

// drRun is what activation and deactivation share: the primary's config and stack, the DR stack and its outputs.
type drRun struct {
	o          drOptions
	primaryCfg *stacks.Config
	drCfg      *stacks.Config
	primary    auto.Stack
	dr         auto.Stack
	// primaryConfig is the primary stack's config: the DR stack's omscloud config is exactly it.
	primaryConfig auto.ConfigMap
	// prev is the DR stack's last outputs: empty for a new DR generation (never activated, or torn down).
	prev     auto.OutputMap
	progress io.Writer
	cleanup  func()
}

// openDR selects the primary (which must be deployed) and creates or selects the DR stack.
func openDR(ctx context.Context, o drOptions) (*drRun, error) {
	if o.Primary == "" {
		return nil, errors.New("--stack is required: the primary production stack")
	}
	r := &drRun{o: o, progress: o.Progress}
	if r.progress == nil {
		r.progress = io.Discard
	}
	sf, err := stacks.LoadStackFile(o.ProjectDir, o.Primary)
	if err != nil {
		return nil, err
	}
	if r.primaryCfg, err = sf.Config(); err != nil {
		return nil, err
	}
	if r.drCfg, err = stacks.DRConfigFor(r.primaryCfg); err != nil {
		return nil, err
	}
	if r.o.Command == nil {
		if r.o.Command, err = pulumiCommand(o.PulumiRoot); err != nil {
			return nil, err
		}
	}
	wsOpts, cleanup, err := r.o.workspace()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*drRun, error) {
		cleanup()
		return nil, err
	}
	r.cleanup = cleanup
	r.primary, err = auto.SelectStackInlineSource(ctx, o.Primary, stacks.Project, stacks.Program, wsOpts...)
	if err != nil {
		if auto.IsSelectStack404Error(err) {
			return fail(fmt.Errorf("primary stack %s is not in %s: DR reads the primary's last state; pass --backend with the primary's backend", o.Primary, o.backendName()))
		}
		return fail(fmt.Errorf("select primary stack %s: %w", o.Primary, err))
	}
	if r.primaryConfig, err = r.primary.GetAllConfig(ctx); err != nil {
		return fail(fmt.Errorf("read the config of %s: %w", o.Primary, err))
	}
	drName := stacks.DRStackName(o.Primary)
	if r.dr, err = auto.UpsertStackInlineSource(ctx, drName, stacks.Project, stacks.DRProgram(o.Primary), wsOpts...); err != nil {
		return fail(fmt.Errorf("create DR stack %s: %w", drName, err))
	}
	if r.prev, err = r.dr.Outputs(ctx); err != nil {
		return fail(fmt.Errorf("read the outputs of %s: %w", drName, err))
	}
	return r, nil
}

// run is one of the DR stack's run-number outputs (0 when absent).
func (r *drRun) run(output string) int {
	n, _ := r.prev[output].Value.(float64)
	return int(n)
}

// live reports whether a DR generation is up: its database instance is in the DR stack's outputs (a destroy
// removes them).
func (r *drRun) live() bool {
	name, _ := r.prev[stacks.OutputDatabase].Value.(string)
	return name != ""
}

// up configures the DR stack (the primary's omscloud config, secrets staying secrets, plus the DR settings, which
// live in their own namespace) and runs an up.
func (r *drRun) up(ctx context.Context, message string, settings map[string]string) (auto.UpResult, error) {
	cfg := auto.ConfigMap{}
	for k, v := range r.primaryConfig {
		cfg[k] = v
	}
	for k, v := range settings {
		cfg[stacks.DRNamespace+":"+k] = auto.ConfigValue{Value: v}
	}
	if r.o.PrimaryRef != "" {
		cfg[stacks.DRNamespace+":"+stacks.DRKeyPrimaryRef] = auto.ConfigValue{Value: r.o.PrimaryRef}
	}
	// Each run states all of its settings: drop what an earlier run of this workspace set.
	old, err := r.dr.GetAllConfig(ctx)
	if err != nil {
		return auto.UpResult{}, fmt.Errorf("read the config of %s: %w", r.dr.Name(), err)
	}
	for k := range old {
		if _, keep := cfg[k]; !keep && strings.HasPrefix(k, stacks.DRNamespace+":") {
			if err := r.dr.RemoveConfig(ctx, k); err != nil {
				return auto.UpResult{}, err
			}
		}
	}
	if err := r.dr.SetAllConfig(ctx, cfg); err != nil {
		return auto.UpResult{}, fmt.Errorf("configure %s: %w", r.dr.Name(), err)
	}
	res, err := r.dr.Up(ctx, optup.ProgressStreams(r.progress), optup.Message(message))
	if err != nil {
		return res, fmt.Errorf("%s: %w", r.dr.Name(), err)
	}
	return res, nil
}

func (r *drRun) timeline(action string) *Timeline {
	return &Timeline{Action: action, Primary: r.o.Primary, DRStack: r.dr.Name(), From: r.primaryCfg.Region.Primary.GCPRegion,
		To: r.drCfg.Region.Primary.GCPRegion}
}

// activateDR runs the DR spin-up and returns its timeline, complete up to the step that failed.
func activateDR(ctx context.Context, o drOptions) (*Timeline, error) {
	if o.Probe == nil {
		o.Probe = HTTPProbe
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 20 * time.Minute
	}
	r, err := openDR(ctx, o)
	if err != nil {
		return nil, err
	}
	defer r.cleanup()
	tl := r.timeline("activation")

	// A live generation keeps its restore and failback Jobs exactly as they are: declared the same, never run again.
	restoreRun, failbackRun := 0, 0
	if r.live() {
		restoreRun, failbackRun = r.run(stacks.OutputRestoreRun), r.run(stacks.OutputFailbackRun)
	}
	settings := map[string]string{
		stacks.DRKeyRestore:  strconv.Itoa(restoreRun),
		stacks.DRKeyFailback: strconv.Itoa(failbackRun),
	}
	var result auto.UpResult
	err = tl.Run("provision", func() (string, error) {
		if result, err = r.up(ctx, "DR activation: provision", settings); err != nil {
			return "", fmt.Errorf("provision: %w", err)
		}
		return fmt.Sprintf("%s in %s, generation %v", changes(result.Summary), tl.To, result.Outputs[stacks.OutputDRGeneration].Value), nil
	})
	if err != nil {
		return tl, err
	}

	if restoreRun > 0 && !o.ForceRestore {
		tl.Skip("restore", fmt.Sprintf("restore run %d already ran in this DR generation: nothing restored over the live DR database (--force-restore restores the primary's latest backup over it)", restoreRun))
	} else {
		settings[stacks.DRKeyRestore] = strconv.Itoa(restoreRun + 1)
		if o.ForceRestore {
			settings[stacks.DRKeyForceRestore] = "true"
		}
		err = tl.Run("restore", func() (string, error) {
			if result, err = r.up(ctx, "DR activation: restore", settings); err != nil {
				return "", fmt.Errorf("restore: %w", err)
			}
			return fmt.Sprintf("Job %v: oms %s", result.Outputs["restoreJob"].Value,
				strings.Join(restore.Command(fmt.Sprint(result.Outputs[stacks.OutputPrimaryBackup].Value), o.ForceRestore), " ")), nil
		})
		if err != nil {
			return tl, err
		}
	}

	if fmt.Sprint(result.Outputs["edgeProvider"].Value) == edge.Cloudflare {
		return tl, cloudflareCutover(ctx, tl, r.o, r.primary, r.progress)
	}
	return tl, gcpCutover(ctx, tl, r.o, result, r.primary, r.progress)
}

// deactivateDR takes a failback backup from the DR environment into the primary's bucket, then tears the DR stack
// down, and returns its timeline, complete up to the step that failed.
func deactivateDR(ctx context.Context, o drOptions) (*Timeline, error) {
	r, err := openDR(ctx, o)
	if err != nil {
		return nil, err
	}
	defer r.cleanup()
	if !r.live() {
		return nil, fmt.Errorf("%s has no live DR environment (never activated, or already deactivated): nothing to deactivate", r.dr.Name())
	}
	tl := r.timeline("deactivation")
	settings := map[string]string{
		stacks.DRKeyRestore:  strconv.Itoa(r.run(stacks.OutputRestoreRun)),
		stacks.DRKeyFailback: strconv.Itoa(r.run(stacks.OutputFailbackRun) + 1),
	}
	err = tl.Run("backup", func() (string, error) {
		res, err := r.up(ctx, "DR deactivation: failback backup", settings)
		if err != nil {
			return "", fmt.Errorf("failback backup: %w", err)
		}
		url := fmt.Sprint(res.Outputs[stacks.OutputPrimaryBackup].Value)
		return fmt.Sprintf("Job %v: oms %s; the primary restores it with oms restore --from %s --latest",
			res.Outputs["failbackJob"].Value, strings.Join(restore.FailbackCommand(url), " "), url), nil
	})
	if err != nil {
		return tl, err
	}
	return tl, tl.Run("teardown", func() (string, error) {
		switched, err := primarySwitched(ctx, r.primary)
		if err != nil {
			return "", err
		}
		if switched {
			return "", fmt.Errorf("traffic is on the DR site (%s has omscloud:dr.active): restore the primary from the failback archive (oms restore --from %v --latest), clear omscloud:dr.active and run omsctl up on %s, then run deactivate again",
				r.o.Primary, r.prev[stacks.OutputPrimaryBackup].Value, r.o.Primary)
		}
		settings[stacks.DRKeyTeardown] = "true"
		if _, err := r.up(ctx, "DR deactivation: release protection", settings); err != nil {
			return "", fmt.Errorf("release protection: %w", err)
		}
		kept, err := retained(ctx, r.dr)
		if err != nil {
			return "", err
		}
		res, err := r.dr.Destroy(ctx, optdestroy.ProgressStreams(r.progress), optdestroy.Message("DR deactivation: teardown"))
		if err != nil {
			return "", fmt.Errorf("destroy %s: %w", r.dr.Name(), err)
		}
		return fmt.Sprintf("%s; %d KMS key rings and keys stay in GCP for the next activation", changes(res.Summary), kept), nil
	})
}

// retained counts the DR stack's resources a destroy leaves in GCP (RetainOnDelete: the KMS key rings and keys).
func retained(ctx context.Context, s auto.Stack) (int, error) {
	d, err := deployment(ctx, s)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, res := range d.Resources {
		if res.RetainOnDelete {
			n++
		}
	}
	return n, nil
}

func deployment(ctx context.Context, s auto.Stack) (*apitype.DeploymentV3, error) {
	dep, err := s.Export(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the state of %s: %w", s.Name(), err)
	}
	var d apitype.DeploymentV3
	if err := json.Unmarshal(dep.Deployment, &d); err != nil {
		return nil, fmt.Errorf("decode the state of %s: %w", s.Name(), err)
	}
	return &d, nil
}

// primarySwitched reports whether the primary's last state sends traffic to the DR site: its pre-declared DR pool
// enabled (Cloudflare), or a hostname's A record holding the reserved DR address (GCP).
func primarySwitched(ctx context.Context, primary auto.Stack) (bool, error) {
	d, err := deployment(ctx, primary)
	if err != nil {
		return false, err
	}
	outs, err := primary.Outputs(ctx)
	if err != nil {
		return false, fmt.Errorf("read the outputs of %s: %w", primary.Name(), err)
	}
	drAddress, _ := outs[stacks.OutputDRAddress].Value.(string)
	for _, res := range d.Resources {
		switch {
		case res.Type == "cloudflare:index/loadBalancerPool:LoadBalancerPool" && strings.Contains(string(res.URN), "$"+drSwitchType):
			if on, _ := res.Inputs["enabled"].(bool); on {
				return true, nil
			}
		case res.Type == "gcp:dns/recordSet:RecordSet" && res.Inputs["type"] == "A" && drAddress != "":
			if datas, _ := res.Inputs["rrdatas"].([]any); slices.Contains(datas, any(drAddress)) {
				return true, nil
			}
		}
	}
	return false, nil
}

// gcpCutover health-checks the DR load balancer on the reserved DR address, where it serves the primary's
// certificates, before any traffic moves; then the switch points the hostnames' A records there.
func gcpCutover(ctx context.Context, tl *Timeline, o drOptions, restored auto.UpResult, primary auto.Stack, progress io.Writer) error {
	target := ReadyTarget{
		URL:     fmt.Sprintf("https://%v/readyz", restored.Outputs["domain"].Value),
		Address: fmt.Sprint(restored.Outputs[stacks.OutputDRAddress].Value),
	}
	err := tl.Run("health check", func() (string, error) {
		if target.Address == "" {
			return "", fmt.Errorf("the primary stack exports no %s: without the reserved DR address there is nothing to health-check or switch to", stacks.OutputDRAddress)
		}
		if err := probe(ctx, o, target); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s answered via %s", target.URL, target.Address), nil
	})
	if err != nil {
		return err
	}
	if !o.Switch {
		tl.Skip("switch", "drill: traffic stays on the primary (re-run with --switch to move it)")
		return nil
	}
	return tl.Run("switch", func() (string, error) { return switchToDR(ctx, primary, progress) })
}

// cloudflareCutover enables the primary's pre-declared DR pool, then checks /readyz through Cloudflare. The load
// balancer sends traffic only to pools its monitor finds healthy, so enabling the pool first is safe; before that
// the DR tunnel is reachable from nowhere, so a drill cannot probe it from outside.
func cloudflareCutover(ctx context.Context, tl *Timeline, o drOptions, primary auto.Stack, progress io.Writer) error {
	if !o.Switch {
		tl.Skip("switch", "drill: the DR pool stays disabled (re-run with --switch to enable it)")
		tl.Skip("health check", "drill: the DR tunnel is reachable only through its pool; check its connectors in the Cloudflare dashboard")
		return nil
	}
	if err := tl.Run("switch", func() (string, error) { return switchToDR(ctx, primary, progress) }); err != nil {
		return err
	}
	return tl.Run("health check", func() (string, error) {
		outs, err := primary.Outputs(ctx)
		if err != nil {
			return "", err
		}
		urls, _ := outs["edgeUrls"].Value.([]any)
		if len(urls) == 0 {
			return "", fmt.Errorf("the primary stack %s exports no edgeUrls", primary.Name())
		}
		target := ReadyTarget{URL: strings.TrimSuffix(fmt.Sprint(urls[0]), "/") + "/readyz"}
		if err := probe(ctx, o, target); err != nil {
			return "", err
		}
		return target.URL + " answered through Cloudflare", nil
	})
}

// drSwitchType is the type-token prefix of the DR component the primary stack declares in advance (reserved DR
// address, or DR tunnel and pool): the switch updates only it and what depends on it.
const drSwitchType = "omscloud:dr:"

// switchToDR sets omscloud:dr.active on the primary stack and runs an up targeted at the primary's DR component and
// its dependents, so that nothing in the lost region is touched: with a Cloudflare edge the DR pool, which active
// enables; with a GCP edge the hostnames' A records, which active points at the reserved DR address (and so makes
// depend on it).
func switchToDR(ctx context.Context, primary auto.Stack, progress io.Writer) (string, error) {
	d, err := deployment(ctx, primary)
	if err != nil {
		return "", err
	}
	urns := urnsOfType(d, drSwitchType)
	if len(urns) == 0 {
		return "", fmt.Errorf("the primary stack %s declares no %s component (reserved DR address or DR pool): switch DNS by hand", primary.Name(), drSwitchType)
	}
	if err := primary.SetConfigWithOptions(ctx, "omscloud:dr.active", auto.ConfigValue{Value: "true"}, &auto.ConfigOptions{Path: true}); err != nil {
		return "", err
	}
	res, err := primary.Up(ctx, optup.Target(urns), optup.TargetDependents(), optup.ProgressStreams(progress), optup.Message("DR activation: switch"))
	if err != nil {
		return "", fmt.Errorf("switch %s to DR: %w", primary.Name(), err)
	}
	return fmt.Sprintf("%s on %s; commit `dr: {active: true}` to Pulumi.%s.yaml", changes(res.Summary), primary.Name(), primary.Name()), nil
}

func urnsOfType(d *apitype.DeploymentV3, prefix string) []string {
	var urns []string
	for _, r := range d.Resources {
		if strings.HasPrefix(string(r.Type), prefix) {
			urns = append(urns, string(r.URN))
		}
	}
	return urns
}

func changes(s auto.UpdateSummary) string {
	if s.ResourceChanges == nil {
		return "no changes"
	}
	var parts []string
	for _, op := range []string{"create", "import", "update", "replace", "delete", "same"} {
		if n := (*s.ResourceChanges)[op]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, op))
		}
	}
	return strings.Join(parts, ", ")
}
