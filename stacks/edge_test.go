package stacks

import (
	"fmt"
	"strings"
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
	assert.Equal(t, int32(6), mocks.lookups.Load(), "one lookup per zone and color")
	backends := inv.OfType("gcp:compute/backendService:BackendService")
	require.Len(t, backends, 2)
	for _, b := range backends {
		for i, zone := range []string{"us-central1-a", "us-central1-b", "us-central1-c"} {
			for j, color := range []string{"blue", "green"} {
				assert.Equal(t, "https://www.googleapis.com/compute/v1/projects/omscloud-prod-us/zones/"+zone+"/networkEndpointGroups/oms-prod-us-web-"+color+"-neg",
					b.String(fmt.Sprintf("backends[%d].group", 2*i+j)), "%s: the inventory mocks' answer", b.Name)
			}
		}
	}
}

// drAddressMocks give the reserved DR address its own value, so that records show which address they point at.
type drAddressMocks struct{ *inventory.Mocks }

const drAddress = "198.51.100.99"

func (m drAddressMocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	id, state, err := m.Mocks.NewResource(args)
	if args.TypeToken == "gcp:compute/globalAddress:GlobalAddress" && strings.HasSuffix(args.Name, "-dr-ip") {
		state["address"] = resource.NewProperty(drAddress)
	}
	return id, state, err
}

// TestDeclaringDRMovesOnlyTheARecords: with the GCP edge, dr.active points the hostnames' A records at the reserved
// DR address and changes nothing else — no certificate, authorization, map entry or CNAME — so activation and
// failback update the records in place, replacing none (Cloud DNS refuses a second record set of a name and type).
// The records then depend on the DR address, which is how `omsctl dr activate --switch`, an update targeted at the
// DR component and its dependents, reaches them.
func TestDeclaringDRMovesOnlyTheARecords(t *testing.T) {
	cold := evaluateStack(t, "prod", drAddressMocks{&inventory.Mocks{Project: Project, Stack: "prod"}}, nil)
	active := evaluateStack(t, "prod", drAddressMocks{&inventory.Mocks{Project: Project, Stack: "prod"}}, func(v map[string]string) {
		v["omscloud:dr"] = `{"active":true}`
	})

	before := map[string]inventory.Resource{}
	for _, r := range cold.Resources {
		before[r.URN] = r
	}
	var changed []string
	for _, r := range active.Resources {
		prev, ok := before[r.URN]
		require.True(t, ok, "%s %s is new when DR is declared", r.Type, r.Name)
		delete(before, r.URN)
		if assert.ObjectsAreEqual(prev.Inputs, r.Inputs) {
			continue
		}
		changed = append(changed, r.Name)
		require.Equal(t, "gcp:dns/recordSet:RecordSet", r.Type, "%s changes when DR is declared", r.Name)
		assert.Equal(t, "A", r.String("type"))
		for _, k := range []string{"name", "type", "managedZone", "project", "ttl"} {
			assert.Equal(t, prev.Inputs[k], r.Inputs[k], "%s: %s, which would replace the record, stays", r.Name, k)
		}
		assert.Equal(t, []string{"203.0.113.20"}, prev.Strings("rrdatas"), "cold: at the load balancer")
		assert.Equal(t, []string{drAddress}, r.Strings("rrdatas"), "declared: at the reserved DR address")
		assert.True(t, r.Waits(active, "gcp:compute/globalAddress:GlobalAddress", "oms-prod-us-dr-ip"))
		assert.False(t, prev.Waits(cold, "gcp:compute/globalAddress:GlobalAddress", "oms-prod-us-dr-ip"))
	}
	assert.Empty(t, before, "nothing is deleted when DR is declared")
	assert.Equal(t, []string{"oms-prod-us-edge-a-api.us.omscloud.example.com"}, changed, "only the hostnames' A records")
}
