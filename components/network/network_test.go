package network

import (
	"testing"

	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func validArgs() Args {
	return Args{
		Name: "oms-test-eu", Project: "omscloud-test", Region: "europe-west1",
		SubnetCIDR: "10.10.0.0/20", PodsCIDR: "10.16.0.0/14", ServicesCIDR: "10.20.0.0/20",
		MasterCIDR: "172.16.0.0/28", PrivateServicesCIDR: "10.30.0.0/16", FlowLogs: true,
	}
}

func evaluate(t *testing.T, args Args) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Evaluate(func(ctx *pulumi.Context) error {
		_, err := New(ctx, "net", &args)
		return err
	}, "omscloud", "test", nil, nil)
	require.NoError(t, err)
	return inv
}

func TestCustomModeVPCWithGKERanges(t *testing.T) {
	inv := evaluate(t, validArgs())
	vpc, ok := inv.Find("gcp:compute/network:Network", "net-vpc")
	require.True(t, ok)
	assert.False(t, vpc.Bool("autoCreateSubnetworks"))
	assert.Equal(t, "REGIONAL", vpc.String("routingMode"))

	subnet, ok := inv.Find("gcp:compute/subnetwork:Subnetwork", "net-nodes")
	require.True(t, ok)
	assert.Equal(t, "europe-west1", subnet.String("region"))
	assert.True(t, subnet.Bool("privateIpGoogleAccess"), "private nodes reach Google APIs without public IPs")
	assert.Equal(t, "pods", subnet.String("secondaryIpRanges[0].rangeName"))
	assert.Equal(t, "10.16.0.0/14", subnet.String("secondaryIpRanges[0].ipCidrRange"))
	assert.Equal(t, "services", subnet.String("secondaryIpRanges[1].rangeName"))
	assert.Equal(t, "INCLUDE_ALL_METADATA", subnet.String("logConfig.metadata"), "flow logs in production")
}

func TestFlowLogsOnlyWhenAsked(t *testing.T) {
	args := validArgs()
	args.FlowLogs = false
	subnet, _ := evaluate(t, args).Find("gcp:compute/subnetwork:Subnetwork", "net-nodes")
	_, has := subnet.Get("logConfig")
	assert.False(t, has)
}

func TestCloudNATCoversEveryRange(t *testing.T) {
	inv := evaluate(t, validArgs())
	nat, ok := inv.Find("gcp:compute/routerNat:RouterNat", "net-nat")
	require.True(t, ok)
	assert.Equal(t, "ALL_SUBNETWORKS_ALL_IP_RANGES", nat.String("sourceSubnetworkIpRangesToNat"))
	assert.Equal(t, "oms-test-eu-router", nat.String("router"))
	assert.True(t, nat.Bool("enableDynamicPortAllocation"), "ports grow with a node's connections")
	lo, _ := nat.Number("minPortsPerVm")
	hi, _ := nat.Number("maxPortsPerVm")
	assert.GreaterOrEqual(t, lo, 128.0, "a sane floor: 64 ports drop connections under webhook bursts")
	assert.Greater(t, hi, lo)
}

func TestPodsCannotReachAnotherNodesKubeletReadOnlyPort(t *testing.T) {
	inv := evaluate(t, validArgs())
	deny, ok := inv.Find("gcp:compute/firewall:Firewall", "net-deny-kubelet-readonly")
	require.True(t, ok)
	assert.Equal(t, []string{validArgs().PodsCIDR}, deny.Strings("sourceRanges"))
	assert.Equal(t, []string{"10255"}, deny.Strings("denies[0].ports"))
	prio, _ := deny.Number("priority")
	internal, _ := inv.Find("gcp:compute/firewall:Firewall", "net-allow-internal")
	allowPrio, _ := internal.Number("priority")
	assert.Less(t, prio, allowPrio, "evaluated before the allow of pod traffic")
}

func TestPrivateServicesAccessForCloudSQL(t *testing.T) {
	inv := evaluate(t, validArgs())
	rng, ok := inv.Find("gcp:compute/globalAddress:GlobalAddress", "net-psa")
	require.True(t, ok)
	assert.Equal(t, "VPC_PEERING", rng.String("purpose"))
	assert.Equal(t, "INTERNAL", rng.String("addressType"))
	assert.Equal(t, "10.30.0.0", rng.String("address"))
	bits, _ := rng.Number("prefixLength")
	assert.Equal(t, 16.0, bits)

	conn, ok := inv.Find("gcp:servicenetworking/connection:Connection", "net-psa")
	require.True(t, ok)
	assert.Equal(t, "servicenetworking.googleapis.com", conn.String("service"))
	assert.Equal(t, []string{"oms-test-eu-psa"}, conn.Strings("reservedPeeringRanges"))
}

func TestFirewallAdmitsNothingFromTheInternet(t *testing.T) {
	inv := evaluate(t, validArgs())
	rules := inv.OfType("gcp:compute/firewall:Firewall")
	require.NotEmpty(t, rules)
	var denyAll bool
	for _, fw := range rules {
		if _, allows := fw.Get("allows"); allows {
			assert.NotContains(t, fw.Strings("sourceRanges"), "0.0.0.0/0", fw.Name)
			continue
		}
		if fw.String("denies[0].protocol") == "all" && fw.Strings("sourceRanges")[0] == "0.0.0.0/0" {
			denyAll = true
			prio, _ := fw.Number("priority")
			assert.Greater(t, prio, 1000.0, "the deny-all sits below every allow")
		}
	}
	assert.True(t, denyAll, "an explicit, logged deny-all")

	hc, ok := inv.Find("gcp:compute/firewall:Firewall", "net-allow-health-checks")
	require.True(t, ok)
	assert.ElementsMatch(t, []string{"35.191.0.0/16", "130.211.0.0/22"}, hc.Strings("sourceRanges"))
}

func TestEveryChildIsParentedToTheComponent(t *testing.T) {
	inv := evaluate(t, validArgs())
	for _, r := range inv.Resources {
		if r.Type == "omscloud:network:Network" {
			assert.Empty(t, r.Parent)
			continue
		}
		assert.Equal(t, "net", r.Parent, "%s %s", r.Type, r.Name)
	}
}

func TestValidate(t *testing.T) {
	args := validArgs()
	args.Project = ""
	args.PodsCIDR = "10.16.0.0"
	err := args.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Project is required")
	assert.Contains(t, err.Error(), `PodsCIDR "10.16.0.0" is not a CIDR block`)
	_, err = inventory.Evaluate(func(ctx *pulumi.Context) error {
		_, err := New(ctx, "net", &args)
		return err
	}, "omscloud", "test", nil, nil)
	require.Error(t, err, "New validates before declaring anything")
}

// The private services range holds Cloud SQL's private IP: a day-2 change that would replace it (or the VPC and subnet
// everything lives in) fails the preview in production.
func TestAddressSpaceIsProtectedInProduction(t *testing.T) {
	args := validArgs()
	args.DeletionProtection = true
	inv := evaluate(t, args)
	for _, typ := range []string{"gcp:compute/network:Network", "gcp:compute/subnetwork:Subnetwork", "gcp:compute/globalAddress:GlobalAddress"} {
		rs := inv.OfType(typ)
		require.NotEmpty(t, rs, typ)
		for _, r := range rs {
			assert.True(t, r.Protected, "%s %s", typ, r.Name)
		}
	}
	args.DeletionProtection = false
	for _, r := range evaluate(t, args).OfType("gcp:compute/globalAddress:GlobalAddress") {
		assert.False(t, r.Protected, "sandbox and a DR teardown may delete it")
	}
}
