package edge_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/omscloud/omscloud/components/edge"
	"github.com/omscloud/omscloud/components/internal/kube/kubetest"
	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const negLookup = "gcp:compute/getNetworkEndpointGroup:getNetworkEndpointGroup"

// negMocks answer the NEG lookups with answer(n, zone), n counting the zone's lookups from 0, and record them.
type negMocks struct {
	*inventory.Mocks
	answer func(n int, zone string) (string, error)

	mu      sync.Mutex
	lookups []resource.PropertyMap
	perZone map[string]int
}

func newNEGMocks(answer func(n int, zone string) (string, error)) *negMocks {
	return &negMocks{Mocks: &inventory.Mocks{Project: "omscloud", Stack: "test"}, answer: answer, perZone: map[string]int{}}
}

func (m *negMocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	if args.Token != negLookup {
		return m.Mocks.Call(args)
	}
	zone := args.Args["zone"].StringValue()
	m.mu.Lock()
	m.lookups = append(m.lookups, args.Args)
	n := m.perZone[zone]
	m.perZone[zone]++
	m.mu.Unlock()
	link, err := m.answer(n, zone)
	if err != nil {
		return nil, err
	}
	return resource.PropertyMap{"selfLink": resource.NewProperty(link), "zone": resource.NewProperty(zone)}, nil
}

// lookedUp is the self link the mocks report: unlike any link a program could compute.
func lookedUp(_ int, zone string) (string, error) { return "https://compute.test/neg/" + zone, nil }

var errNotFound = errors.New("projects/omscloud-prod-us/zones/us-central1-c/networkEndpointGroups/oms-prod-us-web-neg not found")

// missingIn finds every NEG but zone's.
func missingIn(zone string) func(n int, z string) (string, error) {
	return func(n int, z string) (string, error) {
		if z == zone {
			return "", errNotFound
		}
		return lookedUp(n, z)
	}
}

// fakeClock replaces the NEG lookup's clock for one test: sleeping advances it and is recorded.
func fakeClock(t *testing.T) *[]time.Duration {
	t.Helper()
	saved := *edge.NEGPolling
	t.Cleanup(func() { *edge.NEGPolling = saved })
	var mu sync.Mutex
	var slept []time.Duration
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	edge.NEGPolling.Now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now := start
		for _, d := range slept {
			now = now.Add(d)
		}
		return now
	}
	edge.NEGPolling.Sleep = func(_ context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		slept = append(slept, d)
		return nil
	}
	return &slept
}

func groups(t *testing.T, inv *inventory.Inventory) map[string][]any {
	t.Helper()
	out := map[string][]any{}
	for _, b := range inv.OfType(backendType) {
		for _, be := range kubetest.List(t, b, "backends") {
			out[b.Name] = append(out[b.Name], be["group"])
		}
	}
	require.Len(t, out, 2, "the api and static backend services")
	return out
}

func TestGCPBackendsUseTheLookedUpNEGOfEveryZone(t *testing.T) {
	mocks := newNEGMocks(lookedUp)
	inv, _, err := run(gcpArgs(), mocks, false)
	require.NoError(t, err)

	var want []any
	for _, z := range zones {
		want = append(want, "https://compute.test/neg/"+z)
	}
	for name, got := range groups(t, inv) {
		assert.Equal(t, want, got, "%s: one backend per zone, the NEG Compute Engine reported", name)
	}
	require.Len(t, mocks.lookups, len(zones), "one lookup per zone, shared by both backend services")
	for _, l := range mocks.lookups {
		assert.Equal(t, "omscloud-prod-us", l["project"].StringValue())
		assert.Equal(t, "oms-prod-us-web-neg", l["name"].StringValue(), "the name the Service's annotation gives GKE")
		assert.Contains(t, zones, l["zone"].StringValue())
	}
}

func TestGCPNEGLookupWaitsForTheService(t *testing.T) {
	// In a preview that creates the runtime's Service, ServiceReady is unknown.
	args := gcpArgs()
	args.Backend.ServiceReady = pulumi.UnsafeUnknownOutput(nil).ApplyT(func(any) string { return "" }).(pulumi.StringOutput)
	mocks := newNEGMocks(lookedUp)
	inv, _, err := run(args, mocks, true)
	require.NoError(t, err)
	assert.Empty(t, mocks.lookups, "no lookup before the Service exists")
	for name, got := range groups(t, inv) {
		assert.Equal(t, []any{nil, nil, nil}, got, "%s: unknown in the preview (the mock monitor receives unknowns as null)", name)
	}
}

func TestGCPNEGLookupPollsWithBoundedBackoff(t *testing.T) {
	slept := fakeClock(t)
	// GKE creates the NEG of zone b only after the fifth lookup.
	mocks := newNEGMocks(func(n int, zone string) (string, error) {
		if zone == "us-central1-b" && n < 5 {
			return "", errNotFound
		}
		return lookedUp(n, zone)
	})
	inv, _, err := run(gcpArgs(), mocks, false)
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second}, *slept,
		"doubling from 1 s, capped at 15 s")
	for _, got := range groups(t, inv) {
		assert.Equal(t, "https://compute.test/neg/us-central1-b", got[1])
	}
}

func TestGCPNEGLookupGivesUpNamingTheNEGZoneAndCause(t *testing.T) {
	slept := fakeClock(t)
	mocks := newNEGMocks(missingIn("us-central1-c"))
	_, _, err := run(gcpArgs(), mocks, false)
	require.Error(t, err)
	for _, want := range []string{
		"NEG oms-prod-us-web-neg did not appear in zone us-central1-c of project omscloud-prod-us within 5m0s",
		"not found", "cloud.google.com/neg annotation of Service oms/oms-prod-us-web", "kubectl describe service -n oms oms-prod-us-web",
		"nodes in us-central1-c",
	} {
		assert.Contains(t, err.Error(), want)
	}
	var total time.Duration
	for _, d := range *slept {
		assert.LessOrEqual(t, d, 15*time.Second)
		total += d
	}
	assert.LessOrEqual(t, total, 5*time.Minute)
	assert.Greater(t, total, 5*time.Minute-15*time.Second, "it waits about 5 minutes")
}

func TestGCPNEGLookupDeniedFailsAtOnce(t *testing.T) {
	for _, preview := range []bool{false, true} {
		slept := fakeClock(t)
		mocks := newNEGMocks(func(int, string) (string, error) {
			return "", fmt.Errorf("googleapi: Error 403: Compute Engine API has not been used in project omscloud-prod-us")
		})
		_, _, err := run(gcpArgs(), mocks, preview)
		require.Error(t, err, "preview %t", preview)
		assert.Contains(t, err.Error(), "enable compute.googleapis.com")
		assert.Empty(t, *slept, "a denied lookup is not retried")
	}
}

func TestGCPPreviewShowsAMissingNEGAsUnknown(t *testing.T) {
	slept := fakeClock(t)
	// The Service exists, but zone c's NEG does not yet (e.g. the preview adds the zone).
	mocks := newNEGMocks(missingIn("us-central1-c"))
	inv, _, err := run(gcpArgs(), mocks, true)
	require.NoError(t, err, "a preview does not wait for GKE")
	assert.Empty(t, *slept)
	assert.Len(t, mocks.lookups, len(zones), "one lookup per zone")
	for name, got := range groups(t, inv) {
		assert.Equal(t, []any{"https://compute.test/neg/us-central1-a", "https://compute.test/neg/us-central1-b", nil}, got, "%s: zone c unknown", name)
	}
}

// TestGCPNEGLookupDoesNotBlockTheDRSwitch: once DR is declared the hostnames point at the DR address, the primary's
// region may be lost, and a lookup there fails: the backends keep the canonical self link instead of waiting.
func TestGCPNEGLookupDoesNotBlockTheDRSwitch(t *testing.T) {
	slept := fakeClock(t)
	args := gcpArgs()
	args.GCP.DNS.Target = pulumi.String("198.51.100.7")
	mocks := newNEGMocks(func(int, string) (string, error) { return "", errors.New("googleapi: Error 503: zone unavailable") })
	inv, _, err := run(args, mocks, false)
	require.NoError(t, err)
	assert.Empty(t, *slept, "no waiting for a lost region")
	assert.Len(t, mocks.lookups, len(zones), "one attempt per zone")
	for name, got := range groups(t, inv) {
		for i, z := range zones {
			assert.Equal(t, "https://www.googleapis.com/compute/v1/projects/omscloud-prod-us/zones/"+z+"/networkEndpointGroups/oms-prod-us-web-neg", got[i], name)
		}
	}
}
