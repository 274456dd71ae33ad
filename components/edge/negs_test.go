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

// negMocks answer the NEG lookups with answer(n, name, zone), n counting that NEG's lookups in the zone from 0, and
// record them.
type negMocks struct {
	*inventory.Mocks
	answer func(n int, name, zone string) (string, error)

	mu      sync.Mutex
	lookups []resource.PropertyMap
	perZone map[string]int
}

func newNEGMocks(answer func(n int, name, zone string) (string, error)) *negMocks {
	return &negMocks{Mocks: &inventory.Mocks{Project: "omscloud", Stack: "test"}, answer: answer, perZone: map[string]int{}}
}

func (m *negMocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	if args.Token != negLookup {
		return m.Mocks.Call(args)
	}
	zone, name := args.Args["zone"].StringValue(), args.Args["name"].StringValue()
	m.mu.Lock()
	m.lookups = append(m.lookups, args.Args)
	n := m.perZone[name+"/"+zone]
	m.perZone[name+"/"+zone]++
	m.mu.Unlock()
	link, err := m.answer(n, name, zone)
	if err != nil {
		return nil, err
	}
	return resource.PropertyMap{"selfLink": resource.NewProperty(link), "zone": resource.NewProperty(zone)}, nil
}

// lookedUp is the self link the mocks report: unlike any link a program could compute.
func lookedUp(_ int, name, zone string) (string, error) { return negLink(name, zone), nil }

func negLink(name, zone string) string { return "https://compute.test/neg/" + zone + "/" + name }

var errNotFound = errors.New("projects/omscloud-prod-us/zones/us-central1-c/networkEndpointGroups/oms-prod-us-web-blue-neg not found")

// missingIn finds every NEG but zone's.
func missingIn(zone string) func(n int, name, z string) (string, error) {
	return func(n int, name, z string) (string, error) {
		if z == zone {
			return "", errNotFound
		}
		return lookedUp(n, name, z)
	}
}

// colorNEGs are the NEG names of the test's colors, in the backends' order within a zone.
var colorNEGs = []string{"oms-prod-us-web-blue-neg", "oms-prod-us-web-green-neg"}

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
		for _, n := range colorNEGs {
			want = append(want, negLink(n, z))
		}
	}
	for name, got := range groups(t, inv) {
		assert.Equal(t, want, got, "%s: one backend per zone and color, the NEG Compute Engine reported", name)
	}
	require.Len(t, mocks.lookups, len(zones)*len(colorNEGs), "one lookup per zone and color, shared by both backend services")
	for _, l := range mocks.lookups {
		assert.Equal(t, "omscloud-prod-us", l["project"].StringValue())
		assert.Contains(t, colorNEGs, l["name"].StringValue(), "the names the color Services' annotations give GKE")
		assert.Contains(t, zones, l["zone"].StringValue())
	}
}

func TestGCPNEGLookupWaitsForTheService(t *testing.T) {
	// In a preview that creates the green Service, its ServiceReady is unknown.
	args := gcpArgs()
	args.Backend.Colors["green"] = edge.ColorBackend{ServiceReady: pulumi.UnsafeUnknownOutput(nil).ApplyT(func(any) string { return "" }).(pulumi.StringOutput)}
	mocks := newNEGMocks(lookedUp)
	inv, _, err := run(args, mocks, true)
	require.NoError(t, err)
	for _, l := range mocks.lookups {
		assert.Equal(t, "oms-prod-us-web-blue-neg", l["name"].StringValue(), "no lookup before the Service exists")
	}
	for name, got := range groups(t, inv) {
		for i, z := range zones {
			assert.Equal(t, []any{negLink("oms-prod-us-web-blue-neg", z), nil}, got[2*i:2*i+2],
				"%s: green unknown in the preview (the mock monitor receives unknowns as null)", name)
		}
	}
}

func TestGCPNEGLookupPollsWithBoundedBackoff(t *testing.T) {
	slept := fakeClock(t)
	// GKE creates the NEG of zone b only after the fifth lookup.
	mocks := newNEGMocks(func(n int, name, zone string) (string, error) {
		if zone == "us-central1-b" && name == colorNEGs[0] && n < 5 {
			return "", errNotFound
		}
		return lookedUp(n, name, zone)
	})
	inv, _, err := run(gcpArgs(), mocks, false)
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second}, *slept,
		"doubling from 1 s, capped at 15 s")
	for _, got := range groups(t, inv) {
		assert.Equal(t, negLink(colorNEGs[0], "us-central1-b"), got[2])
	}
}

func TestGCPNEGLookupGivesUpNamingTheNEGZoneAndCause(t *testing.T) {
	slept := fakeClock(t)
	// Only blue's NEG of zone c is missing, so that one lookup alone advances the fake clock.
	mocks := newNEGMocks(func(n int, name, zone string) (string, error) {
		if name == colorNEGs[0] {
			return missingIn("us-central1-c")(n, name, zone)
		}
		return lookedUp(n, name, zone)
	})
	_, _, err := run(gcpArgs(), mocks, false)
	require.Error(t, err)
	for _, want := range []string{
		"NEG oms-prod-us-web-blue-neg did not appear in zone us-central1-c of project omscloud-prod-us within 5m0s",
		"not found", "cloud.google.com/neg annotation of the runtime's color Service in namespace oms", "kubectl describe service -n oms",
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
		mocks := newNEGMocks(func(int, string, string) (string, error) {
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
	assert.Len(t, mocks.lookups, len(zones)*len(colorNEGs), "one lookup per zone and color")
	for name, got := range groups(t, inv) {
		assert.Equal(t, []any{negLink(colorNEGs[0], "us-central1-a"), negLink(colorNEGs[1], "us-central1-a"),
			negLink(colorNEGs[0], "us-central1-b"), negLink(colorNEGs[1], "us-central1-b"), nil, nil}, got, "%s: zone c unknown", name)
	}
}

// TestGCPNEGLookupDoesNotBlockTheDRSwitch: once DR is declared the hostnames point at the DR address, the primary's
// region may be lost, and a lookup there fails: the backends keep the canonical self link instead of waiting.
func TestGCPNEGLookupDoesNotBlockTheDRSwitch(t *testing.T) {
	slept := fakeClock(t)
	args := gcpArgs()
	args.GCP.DNS.Target = pulumi.String("198.51.100.7")
	mocks := newNEGMocks(func(int, string, string) (string, error) {
		return "", errors.New("googleapi: Error 503: zone unavailable")
	})
	inv, _, err := run(args, mocks, false)
	require.NoError(t, err)
	assert.Empty(t, *slept, "no waiting for a lost region")
	assert.Len(t, mocks.lookups, len(zones)*len(colorNEGs), "one attempt per zone and color")
	for name, got := range groups(t, inv) {
		for i, z := range zones {
			for j, n := range colorNEGs {
				assert.Equal(t, "https://www.googleapis.com/compute/v1/projects/omscloud-prod-us/zones/"+z+"/networkEndpointGroups/"+n, got[2*i+j], name)
			}
		}
	}
}
