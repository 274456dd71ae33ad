package enginetest_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/enginetest"
	"github.com/omscloud/omscloud/stacks"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// switchStack is the GCP-edge stack the switch test runs: the smallest.
const switchStack = "sandbox"

// TestColorSwitchKeepsHealthyCapacity stages a green release, switches to it and falls back to blue through the
// GCP load balancer, and asserts with the behaviour model (Cloud.ServingGaps) that no backend service is ever left
// without a healthy endpoint with capacity (a moment of 502s), and that the load balancer's switch starts only
// after the new color's smoke Job completed.
func TestColorSwitchKeepsHealthyCapacity(t *testing.T) {
	env := enginetest.New(t)
	ctx := context.Background()
	cfg := stackConfig(t, env, switchStack)
	require.Equal(t, "gcp", cfg.Edge.Provider)
	s := env.Stack(ctx, t, switchStack, stacks.Program)
	gaps := func() []string {
		var out []string
		for _, g := range env.Providers.Cloud.ServingGaps() {
			if strings.Contains(g, "urn:pulumi:"+switchStack+"::") {
				out = append(out, g)
			}
		}
		return out
	}

	_, err := s.Up(ctx)
	require.NoError(t, err, "up: %s", tail(err))
	green := stagedImage(cfg.Runtime.Image, "green")
	setConfig(ctx, t, s, "runtime.colorImages.green", green)
	_, err = s.Up(ctx)
	require.NoError(t, err, "stage green: %s", tail(err))
	require.Empty(t, gaps(), "the load balancer serves through the first up and the staging")

	for _, color := range []string{omsruntime.Green, omsruntime.Blue} {
		setConfig(ctx, t, s, "runtime.activeColor", color)
		smoke := omsruntime.SmokeJobName(cfg.NamePrefix(), color, map[string]string{omsruntime.Green: green, omsruntime.Blue: cfg.Runtime.Image}[color])
		ch := make(chan events.EngineEvent)
		done := make(chan []string)
		go func() { done <- lbSwitchOrder(ch, smoke) }()
		_, err := s.Up(ctx, optup.EventStreams(ch))
		order := <-done
		require.NoError(t, err, "switch to %s: %s", color, tail(err))
		assert.Empty(t, gaps(), "switching to %s never leaves the load balancer without a healthy endpoint", color)
		require.Contains(t, order, "backend service "+cfg.NamePrefix()+"-edge-api updating", "switching to %s moves the load balancer's capacity", color)
		assert.Equal(t, "smoke job "+smoke+" done", order[0], "the backends change only after the %s smoke Job completed: %v", color, order)
	}
}

// lbSwitchOrder reads an update's engine events and returns, in order, when the smoke Job of that name finished and
// when each backend service's update began.
func lbSwitchOrder(ch <-chan events.EngineEvent, smokeJob string) []string {
	var order []string
	for e := range ch {
		switch {
		case e.ResOutputsEvent != nil:
			m := e.ResOutputsEvent.Metadata
			if done := "smoke job " + smokeJob + " done"; m.Type == "kubernetes:batch/v1:Job" && m.New != nil &&
				objectName(m.New.Outputs) == smokeJob && !slices.Contains(order, done) {
				order = append(order, done)
			}
		case e.ResourcePreEvent != nil:
			m := e.ResourcePreEvent.Metadata
			if m.Type == "gcp:compute/backendService:BackendService" && m.Op == apitype.OpUpdate {
				order = append(order, "backend service "+shortURN(m.URN)+" updating")
			}
		}
	}
	return order
}

func objectName(props map[string]any) string {
	meta, _ := props["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	return name
}
