package enginetest_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/omscloud/omscloud/components/apis"
	"github.com/omscloud/omscloud/enginetest"
	"github.com/omscloud/omscloud/stacks"
	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestShippedStacksOnEngine runs every shipped stack, and every test-only one (two database cells), through the real
// engine: preview and up succeed, a second preview changes nothing, raising the web pool's maximum updates exactly
// the web node pool, generated secrets never reach the state in plain text and the kubeconfig output is a secret.
func TestShippedStacksOnEngine(t *testing.T) {
	env := enginetest.New(t)
	names, err := stacks.ListStacks(env.ProjectDir)
	require.NoError(t, err)
	require.NotEmpty(t, names)
	names = append(names, env.AddTestStacks(t)...)

	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := stackConfig(t, env, name)
			s := env.Stack(ctx, t, name, stacks.Program)

			first, steps, err := preview(ctx, s)
			require.NoError(t, err, "first preview")
			assert.Positive(t, first.ChangeSummary[apitype.OpCreate], "the first preview creates the environment")
			assert.Equal(t, []string{string(apitype.OpCreate)}, opsExceptSame(steps), "a new stack only creates")

			up, err := s.Up(ctx)
			require.NoError(t, err, "up")
			assert.Equal(t, "succeeded", up.Summary.Result)
			_, resources, err := env.RawState(name)
			require.NoError(t, err)
			for _, m := range apis.MissingDependencies(enginetest.APINodes(resources)) {
				t.Errorf("may start before its API is on: %s", m)
			}
			if cfg.Edge.Provider == "gcp" {
				for _, h := range cfg.Edge.Hostnames {
					assert.NoError(t, env.Providers.Cloud.ServesTLS(h), "right after the first up, %s serves a valid certificate", h)
				}
			}
			require.Contains(t, up.Outputs, "kubeconfig")
			assert.True(t, up.Outputs["kubeconfig"].Secret, "the kubeconfig output is a secret")
			assert.Equal(t, cfg.Region.Primary.GCPRegion, up.Outputs["gcpRegion"].Value)

			_, steps, err = preview(ctx, s)
			require.NoError(t, err, "second preview")
			assert.Empty(t, opsExceptSame(steps), "a second preview shows no changes: %v", changed(steps))

			webMax := cfg.Sizing.Web.MaxNodesPerZone + 1
			require.NoError(t, s.SetConfigWithOptions(ctx, "omscloud:sizing.web.maxNodesPerZone",
				auto.ConfigValue{Value: strconv.Itoa(webMax)}, &auto.ConfigOptions{Path: true}))
			_, steps, err = preview(ctx, s)
			require.NoError(t, err, "preview after raising the web pool's maximum")
			updates := changed(steps)
			require.Len(t, updates, 1, "exactly one resource changes: %v", updates)
			assert.Equal(t, string(apitype.OpUpdate), updates[0].op)
			assert.Equal(t, "gcp:container/nodePool:NodePool", updates[0].typ)
			assert.True(t, strings.HasSuffix(updates[0].urn, "-web"), "the web pool changes, not %s", updates[0].urn)
			assert.Contains(t, updates[0].diffs, "autoscaling")

			state, resources, err := env.RawState(name)
			require.NoError(t, err)
			assertSecretsEncrypted(t, state, resources, env.Providers.GeneratedSecrets())
		})
	}
}

// assertSecretsEncrypted checks the state file as the backend stores it: every random password, string and byte
// sequence is encrypted, none of the values the stand-in generated appears anywhere in it, and the kubeconfig
// output is encrypted.
func assertSecretsEncrypted(t *testing.T, stateFile []byte, resources []enginetest.StateResource, generated []string) {
	t.Helper()
	randoms := 0
	for _, r := range resources {
		switch r.Type {
		case "random:index/randomPassword:RandomPassword", "random:index/randomString:RandomString":
			randoms++
			assert.True(t, enginetest.IsSecret(r.Outputs["result"]), "%s: result is stored encrypted", r.URN)
		case "random:index/randomBytes:RandomBytes":
			randoms++
			assert.True(t, enginetest.IsSecret(r.Outputs["base64"]), "%s: base64 is stored encrypted", r.URN)
			assert.True(t, enginetest.IsSecret(r.Outputs["hex"]), "%s: hex is stored encrypted", r.URN)
		case "pulumi:pulumi:Stack":
			assert.True(t, enginetest.IsSecret(r.Outputs["kubeconfig"]), "the kubeconfig output is stored encrypted")
		}
	}
	require.Positive(t, randoms, "the stack generates secrets (else this check proves nothing)")
	require.NotEmpty(t, generated)
	for _, leak := range plaintextSecrets(stateFile, resources, generated) {
		t.Errorf("a generated secret appears in plain text in the state at %s", leak)
	}
}

// plaintextSecrets lists where any generated value appears in plain text in the state file.
func plaintextSecrets(stateFile []byte, resources []enginetest.StateResource, generated []string) []string {
	var leaks []string
	for _, g := range generated {
		if !strings.Contains(string(stateFile), g) {
			continue
		}
		where := []string{"the state file"}
		for _, r := range resources {
			where = append(where, plaintextPaths(r.URN+" inputs", r.Inputs, g)...)
			where = append(where, plaintextPaths(r.URN+" outputs", r.Outputs, g)...)
		}
		leaks = append(leaks, strings.Join(where[min(1, len(where)-1):], ", "))
	}
	return leaks
}

// plaintextPaths names where secret occurs in v (the value itself is never printed).
func plaintextPaths(path string, v any, secret string) []string {
	switch x := v.(type) {
	case string:
		if strings.Contains(x, secret) {
			return []string{path}
		}
	case map[string]any:
		var out []string
		for k, e := range x {
			out = append(out, plaintextPaths(path+"."+k, e, secret)...)
		}
		return out
	case []any:
		var out []string
		for i, e := range x {
			out = append(out, plaintextPaths(fmt.Sprintf("%s[%d]", path, i), e, secret)...)
		}
		return out
	}
	return nil
}

type step struct {
	op, typ, urn string
	diffs        []string
	// rolls: the pod template's secret checksum changes (omsruntime.SecretChecksumAnnotation): the pods restart.
	rolls bool
}

func (s step) String() string { return fmt.Sprintf("%s %s %v", s.op, s.urn, s.diffs) }

// preview runs a preview and returns the engine's steps.
func preview(ctx context.Context, s auto.Stack) (auto.PreviewResult, []step, error) {
	return previewWith(ctx, s)
}

// opsExceptSame lists the distinct operations other than "same".
func opsExceptSame(steps []step) []string {
	var ops []string
	for _, s := range steps {
		if s.op != string(apitype.OpSame) && !slices.Contains(ops, s.op) {
			ops = append(ops, s.op)
		}
	}
	slices.Sort(ops)
	return ops
}

func changed(steps []step) []step {
	var out []step
	for _, s := range steps {
		if s.op != string(apitype.OpSame) {
			out = append(out, s)
		}
	}
	return out
}

// TestSecretCheckCatchesAPlaintextLeak proves the state check can fail: a program that unwraps a generated
// password into a plain output leaks it into the state file, and plaintextSecrets finds it.
func TestSecretCheckCatchesAPlaintextLeak(t *testing.T) {
	env := enginetest.New(t)
	ctx := context.Background()
	s := env.Stack(ctx, t, "leaky", func(ctx *pulumi.Context) error {
		pw, err := random.NewRandomPassword(ctx, "pw", &random.RandomPasswordArgs{Length: pulumi.Int(24)})
		if err != nil {
			return err
		}
		ctx.Export("leak", pulumi.Unsecret(pw.Result))
		return nil
	})
	_, err := s.Up(ctx)
	require.NoError(t, err)
	state, resources, err := env.RawState("leaky")
	require.NoError(t, err)
	leaks := plaintextSecrets(state, resources, env.Providers.GeneratedSecrets())
	require.Len(t, leaks, 1)
	assert.Contains(t, leaks[0], "pulumi:pulumi:Stack::omscloud-leaky outputs.leak")
}

// TestPreviewRefusesWhatPlanRefuses: `pulumi preview` (the program reading the config the engine hands it) refuses a
// misspelt key and a plain-text secret with the same problems `omsctl plan` reports from the stack file.
func TestPreviewRefusesWhatPlanRefuses(t *testing.T) {
	env := enginetest.New(t)
	ctx := context.Background()
	const name = "sandbox"
	s := env.Stack(ctx, t, name, stacks.Program)
	setConfig(ctx, t, s, "zone", "us-central1-a")
	require.NoError(t, s.SetConfig(ctx, "omscloud:dbPassword", auto.ConfigValue{Value: "hunter2hunter2"}))

	sf, err := stacks.LoadStackFile(env.WorkDir, name)
	require.NoError(t, err)
	_, planErr := sf.Config()
	var verr *stacks.ValidationError
	require.ErrorAs(t, planErr, &verr, "omsctl plan refuses the stack file")
	keys := map[string]bool{}
	for _, fe := range verr.Errors {
		keys[fe.Key] = true
	}
	assert.Equal(t, map[string]bool{"omscloud:zone": true, "omscloud:dbPassword": true}, keys)

	_, _, err = preview(ctx, s)
	require.Error(t, err, "pulumi preview refuses it too")
	for _, line := range strings.Split(planErr.Error(), "\n") {
		assert.Contains(t, err.Error(), strings.TrimSpace(line), "preview reports what plan reports")
	}
	assert.NotContains(t, err.Error(), "hunter2hunter2", "the secret is never echoed")

	// A US production stack with an EU DR region: both doors say the region lies outside the jurisdiction and where
	// to recover instead, and neither claims that the US has a single GCP region.
	prod := env.Stack(ctx, t, "prod", stacks.Program)
	setConfig(ctx, t, prod, "dr.region", "europe-west4")
	sf, err = stacks.LoadStackFile(env.WorkDir, "prod")
	require.NoError(t, err)
	_, planErr = sf.Config()
	require.ErrorAs(t, planErr, &verr)
	_, _, err = preview(ctx, prod)
	require.Error(t, err)
	for _, text := range []string{planErr.Error(), err.Error()} {
		assert.Contains(t, text, `omscloud:dr.region: "europe-west4" lies in EU, outside the jurisdiction of region us`)
		assert.NotContains(t, text, "single GCP region")
	}
	for _, line := range strings.Split(planErr.Error(), "\n") {
		assert.Contains(t, err.Error(), strings.TrimSpace(line), "preview reports what plan reports")
	}
}
