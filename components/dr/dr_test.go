package dr_test

import (
	"strings"
	"testing"

	"github.com/omscloud/omscloud/components/dr"
	"github.com/omscloud/omscloud/components/edge"
	"github.com/omscloud/omscloud/inventory"
	"github.com/omscloud/omscloud/policy"
	"github.com/pulumi/pulumi-cloudflare/sdk/v5/go/cloudflare"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	globalAddressType = "gcp:compute/globalAddress:GlobalAddress"
	addressType       = "gcp:compute/address:Address"
	tunnelType        = "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared"
	tunnelConfigType  = "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
	poolType          = "cloudflare:index/loadBalancerPool:LoadBalancerPool"
	monitorType       = "cloudflare:index/loadBalancerMonitor:LoadBalancerMonitor"
	accountID         = "0123456789abcdef0123456789abcdef"
)

func gcpArgs() dr.Args {
	return dr.Args{
		Name: "oms-prod-eu", Project: "omscloud-prod-eu", Region: "europe-west1", DRRegion: "europe-west4",
		Edge: edge.GCP, DeletionProtection: true, Labels: map[string]string{"environment": "production"},
	}
}

func cloudflareArgs() dr.Args {
	a := gcpArgs()
	a.Name, a.Edge = "acme-prod-eu", edge.Cloudflare
	a.Cloudflare = dr.CloudflareArgs{
		AccountID: accountID,
		Hostnames: []string{"oms.acme.example.com", "api.acme.example.com"},
	}
	return a
}

type outputs struct {
	ip, pool, tunnel, cname, token string
	egress                         []string
}

// evaluate declares the component under mocks with an explicit Cloudflare provider, as the stack does.
func evaluate(t *testing.T, args dr.Args) (*inventory.Inventory, outputs) {
	t.Helper()
	var out outputs
	inv, err := inventory.Evaluate(func(ctx *pulumi.Context) error {
		cf, err := cloudflare.NewProvider(ctx, "cloudflare", &cloudflare.ProviderArgs{
			ApiToken: pulumi.ToSecret(pulumi.String("mock-token")).(pulumi.StringOutput),
		})
		if err != nil {
			return err
		}
		d, err := dr.New(ctx, "dr", &args, pulumi.Providers(cf))
		if err != nil {
			return err
		}
		capture := func(key string, o pulumi.StringOutput, dst *string) {
			ctx.Export(key, o.ApplyT(func(s string) string { *dst = s; return s }))
		}
		capture("ip", d.DRIPAddress, &out.ip)
		capture("pool", d.DRPoolID, &out.pool)
		capture("tunnel", d.DRTunnelID, &out.tunnel)
		capture("cname", d.DRTunnelCNAME, &out.cname)
		capture("token", d.DRTunnelToken, &out.token)
		ctx.Export("egress", d.DREgressIPs.ApplyT(func(s []string) []string { out.egress = s; return s }))
		return nil
	}, "omscloud", "test", nil, nil)
	require.NoError(t, err)
	return inv, out
}

// policies runs the stack policies that govern the DR site.
func policies(t *testing.T, inv *inventory.Inventory, edge string) {
	t.Helper()
	rep := policy.Evaluate(policy.Context{
		Environment: policy.Production, Edge: edge, PrimaryRegion: "europe-west1", DRRegion: "europe-west4",
		AllowedLocations: []string{"eu"},
	}, inv)
	assert.Empty(t, rep.Errors())
}

func TestGCPReservesAGlobalDRAddress(t *testing.T) {
	inv, out := evaluate(t, gcpArgs())
	addrs := inv.OfType(globalAddressType)
	require.Len(t, addrs, 1, "one reserved address for the DR load balancer")
	ip := addrs[0]
	assert.Equal(t, "oms-prod-eu-dr", ip.String("name"))
	assert.Equal(t, "EXTERNAL", ip.String("addressType"))
	assert.Equal(t, "IPV4", ip.String("ipVersion"))
	assert.Equal(t, "203.0.113.20", out.ip, "the reserved IP is exported for customer whitelists")

	assert.Empty(t, inv.OfType(poolType))
	assert.Empty(t, inv.OfType(tunnelType))
	assert.Empty(t, inv.OfType(addressType), "no egress address unless asked for")
	assert.Empty(t, out.pool)
	policies(t, inv, "gcp")
}

func TestEgressAddressesLiveInTheDRRegion(t *testing.T) {
	a := gcpArgs()
	a.EgressAddresses = 2
	inv, out := evaluate(t, a)
	addrs := inv.OfType(addressType)
	require.Len(t, addrs, 2)
	for _, r := range addrs {
		assert.Equal(t, "europe-west4", r.String("region"))
		assert.Equal(t, "EXTERNAL", r.String("addressType"))
	}
	assert.Equal(t, []string{"203.0.113.20", "203.0.113.20"}, out.egress)
	policies(t, inv, "gcp")
}

func TestCloudflareDeclaresADisabledDRPool(t *testing.T) {
	inv, out := evaluate(t, cloudflareArgs())
	assert.Empty(t, inv.OfType(globalAddressType), "cloudflare mode has no public IP")

	tunnels := inv.OfType(tunnelType)
	require.Len(t, tunnels, 1)
	assert.Equal(t, "acme-prod-eu-dr", tunnels[0].String("name"))
	assert.Equal(t, inventory.Secret, tunnels[0].String("secret"), "the tunnel secret is generated and secret")
	assert.Equal(t, "cloudflare", tunnels[0].String("configSrc"))

	cfg := inv.OfType(tunnelConfigType)
	require.Len(t, cfg, 1)
	rules, _ := cfg[0].Get("config.ingressRules")
	list := rules.([]any)
	require.Len(t, list, 3)
	assert.Equal(t, "oms.acme.example.com", list[0].(map[string]any)["hostname"])
	for i, h := range []string{"oms.acme.example.com", "api.acme.example.com"} {
		assert.Equal(t, h, list[i].(map[string]any)["hostname"])
		assert.Equal(t, "http://acme-prod-eu-dr-web.oms.svc.cluster.local:80", list[i].(map[string]any)["service"],
			"the DR environment's runtime Service (its prefix is acme-prod-eu-dr), not the lost primary's")
	}
	assert.Equal(t, "http_status:404", list[2].(map[string]any)["service"])

	pools := inv.OfType(poolType)
	require.Len(t, pools, 1)
	pool := pools[0]
	enabled, set := pool.Get("enabled")
	assert.True(t, set && enabled == false, "the DR pool takes no traffic until DR is declared")
	assert.Equal(t, "dr-readyz-id", pool.String("monitor"), "the DR pool has its own monitor")
	monitors := inv.OfType(monitorType)
	require.Len(t, monitors, 1)
	assert.Equal(t, "/readyz", monitors[0].String("path"))
	assert.Equal(t, "https", monitors[0].String("type"))
	origin, _ := pool.Get("origins[0]")
	assert.Equal(t, "dr-tunnel-id.cfargotunnel.com", origin.(map[string]any)["address"])
	assert.Equal(t, "dr-pool-id", out.pool)
	assert.Equal(t, "dr-tunnel-id", out.tunnel)
	assert.Equal(t, "dr-tunnel-id.cfargotunnel.com", out.cname)

	// Nothing runs in the DR region: no GCP resource at all, nor any Kubernetes object.
	for _, r := range inv.Resources {
		assert.False(t, strings.HasPrefix(r.Type, "gcp:") || strings.HasPrefix(r.Type, "kubernetes:"), "%s %s", r.Type, r.Name)
	}
	assert.Empty(t, out.ip)
	policies(t, inv, "cloudflare")
}

func TestDRPoolFollowsActive(t *testing.T) {
	for _, tc := range []struct {
		name   string
		active bool
	}{
		{"cold by default", false},
		{"DR declared", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := cloudflareArgs()
			a.Active = tc.active
			inv, _ := evaluate(t, a)
			pools := inv.OfType(poolType)
			require.Len(t, pools, 1)
			enabled, set := pools[0].Get("enabled")
			require.True(t, set, "enabled is always explicit")
			assert.Equal(t, tc.active, enabled)
			// Switching changes only the pool: the tunnel (and so its token, which the DR connector runs) stays.
			require.Len(t, inv.OfType(tunnelType), 1)
			assert.Equal(t, "acme-prod-eu-dr", inv.OfType(tunnelType)[0].String("name"))
		})
	}
}

func TestDROrigin(t *testing.T) {
	for _, tc := range []struct {
		name      string
		namespace string
		origin    string
		want      string
	}{
		{"default", "", "", "http://acme-prod-eu-dr-web.oms.svc.cluster.local:80"},
		{"namespace", "orders", "", "http://acme-prod-eu-dr-web.orders.svc.cluster.local:80"},
		{"explicit", "", "https://dr-web.example.internal:8443", "https://dr-web.example.internal:8443"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := cloudflareArgs()
			a.Cloudflare.Namespace = tc.namespace
			a.DROrigin = tc.origin
			inv, _ := evaluate(t, a)
			cfg := inv.OfType(tunnelConfigType)
			require.Len(t, cfg, 1)
			rules, _ := cfg[0].Get("config.ingressRules")
			list := rules.([]any)
			require.Len(t, list, 3)
			for _, r := range list[:2] {
				assert.Equal(t, tc.want, r.(map[string]any)["service"])
			}
		})
	}
	assert.Equal(t, "http://oms-prod-eu-dr-web.oms.svc.cluster.local:80", dr.DefaultDROrigin("oms-prod-eu", "oms"))
}

func TestNothingButAddressesInTheDRRegion(t *testing.T) {
	a := cloudflareArgs()
	a.EgressAddresses = 1
	inv, _ := evaluate(t, a)
	for _, r := range inv.Resources {
		if strings.HasPrefix(r.Type, "gcp:") {
			assert.Equal(t, addressType, r.Type, "only reserved addresses exist in GCP before DR")
		}
	}
	policies(t, inv, "cloudflare")
}

func TestValidate(t *testing.T) {
	require.NoError(t, (func() *dr.Args { a := gcpArgs(); return &a })().Validate())
	require.NoError(t, (func() *dr.Args { a := cloudflareArgs(); return &a })().Validate())
	cases := []struct {
		name   string
		args   func() dr.Args
		change func(*dr.Args)
		want   string
	}{
		{"no DR region", gcpArgs, func(a *dr.Args) { a.DRRegion = "" }, "DRRegion is required"},
		{"DR region is primary", gcpArgs, func(a *dr.Args) { a.DRRegion = "europe-west1" }, "DRRegion \"europe-west1\" is the primary region"},
		{"DR outside the jurisdiction", gcpArgs, func(a *dr.Args) { a.DRRegion = "us-east4" }, "DRRegion \"us-east4\" is in US, outside EU"},
		{"unknown DR region", gcpArgs, func(a *dr.Args) { a.DRRegion = "moon-1" }, "DRRegion \"moon-1\" is not a GCP region"},
		{"unknown region", gcpArgs, func(a *dr.Args) { a.Region = "moon-1" }, "Region \"moon-1\" is not a GCP region"},
		{"edge", gcpArgs, func(a *dr.Args) { a.Edge = "akamai" }, "Edge \"akamai\""},
		{"egress", gcpArgs, func(a *dr.Args) { a.EgressAddresses = 20 }, "EgressAddresses is 20"},
		{"name", gcpArgs, func(a *dr.Args) { a.Name = "OMS" }, "Name \"OMS\" must be a DNS label"},
		{"account", cloudflareArgs, func(a *dr.Args) { a.Cloudflare.AccountID = "acme" }, "Cloudflare.AccountID \"acme\""},
		{"hostnames", cloudflareArgs, func(a *dr.Args) { a.Cloudflare.Hostnames = nil }, "Cloudflare.Hostnames is empty"},
		{"hostname", cloudflareArgs, func(a *dr.Args) { a.Cloudflare.Hostnames = []string{"*.acme.example.com"} }, "Cloudflare.Hostnames[0]"},
		{"health path", cloudflareArgs, func(a *dr.Args) { a.Cloudflare.HealthPath = "readyz" }, "Cloudflare.HealthPath \"readyz\""},
		{"origin", cloudflareArgs, func(a *dr.Args) { a.DROrigin = "acme-web:80" }, "DROrigin \"acme-web:80\""},
		{"check regions", cloudflareArgs, func(a *dr.Args) { a.Cloudflare.CheckRegions = []string{"EU"} }, "Cloudflare.CheckRegions[0] \"EU\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := c.args()
			c.change(&a)
			err := a.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.True(t, strings.HasPrefix(err.Error(), "dr: "))
		})
	}
	crossBorder := dr.Args{Name: "oms-prod-sg", Project: "p", Region: "asia-southeast1", DRRegion: "asia-southeast2", Edge: edge.GCP}
	require.Error(t, crossBorder.Validate(), "Jakarta is outside Singapore")
	crossBorder.AllowCrossBorder = true
	assert.NoError(t, crossBorder.Validate(), "acknowledged by the stack")

	_, err := dr.New(nil, "x", nil)
	assert.EqualError(t, err, "dr: Args are required")
}

// TestGCPDeclaringDRChangesNothingHere: with the GCP edge, declaring DR (Active) moves the primary's A records to
// DRIPAddress (components/environment); the reserved address itself, which customers whitelist, and everything
// else of the component stay exactly as they are, so the switch cannot replace them. The component declares no DNS
// record or certificate: the primary edge owns them.
func TestGCPDeclaringDRChangesNothingHere(t *testing.T) {
	cold, coldOut := evaluate(t, gcpArgs())
	args := gcpArgs()
	args.Active = true
	active, activeOut := evaluate(t, args)
	assert.Equal(t, cold.Resources, active.Resources)
	assert.Equal(t, coldOut.ip, activeOut.ip)
	for _, r := range active.Resources {
		assert.False(t, strings.HasPrefix(r.Type, "gcp:dns/") || strings.HasPrefix(r.Type, "gcp:certificatemanager/"), "%s %s", r.Type, r.Name)
	}
}
