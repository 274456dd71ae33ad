package stacks

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lookupMocks count the NEG lookups.
type lookupMocks struct {
	*inventory.Mocks
	lookups atomic.Int32
}

func (m *lookupMocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	if args.Token == "gcp:compute/getNetworkEndpointGroup:getNetworkEndpointGroup" {
		m.lookups.Add(1)
	}
	return m.Mocks.Call(args)
}

// evaluateStack runs a shipped stack's program under mocks, with change applied to its config.
func evaluateStack(t *testing.T, stack string, mocks interface {
	pulumi.MockResourceMonitor
	Resources() []inventory.Resource
}, change func(values map[string]string)) *inventory.Inventory {
	t.Helper()
	sf, err := LoadStackFile("..", stack)
	require.NoError(t, err)
	if change != nil {
		change(sf.Values)
	}
	withConfig := func(info *pulumi.RunInfo) {
		info.Config, info.ConfigSecretKeys = sf.Values, sf.SecretKeys
	}
	require.NoError(t, pulumi.RunErr(Program, pulumi.WithMocks(Project, stack, mocks), withConfig))
	return inventory.New(stack, mocks.Resources())
}

// TestBackendsUseTheLookedUpNEGs: each zone's NEG is looked up once (after the runtime's public Service exists:
// components/omsruntime and components/edge test that part) and both backend services use what the lookup returned.
func TestBackendsUseTheLookedUpNEGs(t *testing.T) {
	mocks := &lookupMocks{Mocks: &inventory.Mocks{Project: Project, Stack: "prod"}}
	inv := evaluateStack(t, "prod", mocks, nil)
	assert.Equal(t, int32(3), mocks.lookups.Load(), "one lookup per zone")
	backends := inv.OfType("gcp:compute/backendService:BackendService")
	require.Len(t, backends, 2)
	for _, b := range backends {
		for i, zone := range []string{"us-central1-a", "us-central1-b", "us-central1-c"} {
			assert.Equal(t, "https://www.googleapis.com/compute/v1/projects/omscloud-prod-us/zones/"+zone+"/networkEndpointGroups/oms-prod-us-web-neg",
				b.String(fmt.Sprintf("backends[%d].group", i)), "%s: the inventory mocks' answer", b.Name)
		}
	}
}
