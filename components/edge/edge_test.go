package edge_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/omscloud/omscloud/components/edge"
	"github.com/omscloud/omscloud/components/internal/kube/kubetest"
	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi-cloudflare/sdk/v5/go/cloudflare"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	globalAddressType  = "gcp:compute/globalAddress:GlobalAddress"
	forwardingRuleType = "gcp:compute/globalForwardingRule:GlobalForwardingRule"
	certType           = "gcp:certificatemanager/certificate:Certificate"
	authzType          = "gcp:certificatemanager/dnsAuthorization:DnsAuthorization"
	certMapType        = "gcp:certificatemanager/certificateMap:CertificateMap"
	certMapEntryType   = "gcp:certificatemanager/certificateMapEntry:CertificateMapEntry"
	recordSetType      = "gcp:dns/recordSet:RecordSet"
	sslPolicyType      = "gcp:compute/sSLPolicy:SSLPolicy"
	armorType          = "gcp:compute/securityPolicy:SecurityPolicy"
	healthCheckType    = "gcp:compute/healthCheck:HealthCheck"
	backendType        = "gcp:compute/backendService:BackendService"
	urlMapType         = "gcp:compute/uRLMap:URLMap"
	httpsProxyType     = "gcp:compute/targetHttpsProxy:TargetHttpsProxy"
	httpProxyType      = "gcp:compute/targetHttpProxy:TargetHttpProxy"
	tunnelType         = "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared"
	tunnelConfigType   = "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
	recordType         = "cloudflare:index/record:Record"
	monitorType        = "cloudflare:index/loadBalancerMonitor:LoadBalancerMonitor"
	poolType           = "cloudflare:index/loadBalancerPool:LoadBalancerPool"
	lbType             = "cloudflare:index/loadBalancer:LoadBalancer"
	randomIDType       = "random:index/randomId:RandomId"

	accountID = "0123456789abcdef0123456789abcdef"
	zoneID    = "fedcba9876543210fedcba9876543210"
)

var (
	zones      = []string{"us-central1-a", "us-central1-b", "us-central1-c"}
	hostnames  = []string{"api.us.omscloud.example.com", "oms.us.omscloud.example.com"}
	webPods    = map[string]string{"app.kubernetes.io/name": "oms", "app.kubernetes.io/component": "web"}
	prodLabels = map[string]string{"environment": "production"}
)

func gcpArgs() edge.Args {
	return edge.Args{
		Name: "oms-prod-us", Project: "omscloud-prod-us", Region: "us-central1", Zones: zones,
		Provider: edge.GCP, Hostnames: hostnames, Labels: prodLabels,
		Backend: edge.BackendArgs{
			Colors: map[string]edge.ColorBackend{
				"blue":  {ServiceReady: pulumi.String("oms-prod-us-web-blue-preview")},
				"green": {ServiceReady: pulumi.String("oms-prod-us-web-green-preview")},
			},
			ActiveColor: pulumi.String("blue"),
		},
		GCP: edge.GCPArgs{DNS: edge.DNSArgs{ManagedZone: "omscloud-example-com", Project: "omscloud-dns"}},
	}
}

func cloudflareArgs() edge.Args {
	return edge.Args{
		Name: "acme-prod-eu", Project: "acme-prod-eu", Region: "europe-west1",
		Zones:    []string{"europe-west1-b", "europe-west1-c", "europe-west1-d"},
		Provider: edge.Cloudflare, Hostnames: []string{"oms.acme.example.com", "api.acme.example.com"},
		Labels:     prodLabels,
		Backend:    edge.BackendArgs{PodSelector: webPods},
		Cloudflare: edge.CloudflareArgs{AccountID: accountID, ZoneID: zoneID},
	}
}

type outputs struct {
	ipAddress, tunnelID, tunnelCNAME, primaryPoolID, monitorID, securityPolicy, certificateMap string
	urls                                                                                       []string
}

// evaluate declares the edge under mocks with explicit Kubernetes and Cloudflare providers, as the stack does.
func evaluate(t *testing.T, args edge.Args) (*inventory.Inventory, outputs) {
	t.Helper()
	inv, out, err := run(args, &inventory.Mocks{Project: "omscloud", Stack: "test"}, false)
	require.NoError(t, err)
	return inv, out
}

// recordingMocks are mocks that can tell what they recorded.
type recordingMocks interface {
	pulumi.MockResourceMonitor
	Resources() []inventory.Resource
}

// run is evaluate with the given mocks, as an update or (dryRun) as a preview.
func run(args edge.Args, mocks recordingMocks, dryRun bool) (*inventory.Inventory, outputs, error) {
	var out outputs
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{})
		if err != nil {
			return err
		}
		cf, err := cloudflare.NewProvider(ctx, "cloudflare", &cloudflare.ProviderArgs{
			ApiToken: pulumi.ToSecret(pulumi.String("mock-token")).(pulumi.StringOutput),
		})
		if err != nil {
			return err
		}
		e, err := edge.New(ctx, "edge", &args, pulumi.Providers(k8s, cf))
		if err != nil {
			return err
		}
		// Exporting the applied outputs makes the run wait until every value has been captured.
		capture := func(key string, o pulumi.StringOutput, dst *string) {
			ctx.Export(key, o.ApplyT(func(s string) string { *dst = s; return s }))
		}
		capture("ipAddress", e.IPAddress, &out.ipAddress)
		capture("tunnelId", e.TunnelID, &out.tunnelID)
		capture("tunnelCname", e.TunnelCNAME, &out.tunnelCNAME)
		capture("primaryPoolId", e.PrimaryPoolID, &out.primaryPoolID)
		capture("monitorId", e.MonitorID, &out.monitorID)
		capture("securityPolicy", e.SecurityPolicy, &out.securityPolicy)
		capture("certificateMap", e.CertificateMap, &out.certificateMap)
		ctx.Export("urls", e.URLs.ApplyT(func(u []string) []string { out.urls = u; return u }))
		return nil
	}, pulumi.WithMocks("omscloud", "test", mocks), func(info *pulumi.RunInfo) { info.DryRun = dryRun })
	return inventory.New("test", mocks.Resources()), out, err
}

func one(t *testing.T, inv *inventory.Inventory, typ, name string) inventory.Resource {
	t.Helper()
	r, ok := inv.Find(typ, name)
	require.True(t, ok, "%s %s is declared", typ, name)
	return r
}

// --- cloudflare mode ---

func TestCloudflareHasNoPublicEntryPoint(t *testing.T) {
	inv, out := evaluate(t, cloudflareArgs())
	assert.Empty(t, inv.OfType(globalAddressType), "no public IP")
	assert.Empty(t, inv.OfType(forwardingRuleType), "no GCP load balancer")
	for _, r := range inv.Resources {
		assert.False(t, strings.HasPrefix(r.Type, "gcp:"), "cloudflare mode declares no GCP resource, got %s %s", r.Type, r.Name)
	}
	for _, svc := range inv.OfType(kubetest.Service) {
		assert.NotEqual(t, "LoadBalancer", svc.String("spec.type"), "Service %s is not a public load balancer", svc.Name)
		assert.NotEqual(t, "NodePort", svc.String("spec.type"), "Service %s opens no node port", svc.Name)
	}
	assert.Empty(t, out.ipAddress)
	assert.Equal(t, []string{"https://oms.acme.example.com", "https://api.acme.example.com"}, out.urls)
}

func TestCloudflareTunnel(t *testing.T) {
	inv, out := evaluate(t, cloudflareArgs())
	tunnel := kubetest.One(t, inv, tunnelType)
	assert.Equal(t, inventory.Secret, tunnel.String("secret"), "the tunnel secret is a secret")
	assert.Equal(t, accountID, tunnel.String("accountId"))
	assert.Equal(t, "acme-prod-eu", tunnel.String("name"))
	assert.Equal(t, "cloudflare", tunnel.String("configSrc"), "routes are managed by Pulumi, not a local file")

	secretBytes := kubetest.One(t, inv, randomIDType)
	n, _ := secretBytes.Number("byteLength")
	assert.GreaterOrEqual(t, n, float64(32), "Cloudflare requires at least 32 random bytes")

	cfg := kubetest.One(t, inv, tunnelConfigType)
	assert.Equal(t, "edge-tunnel-id", cfg.String("tunnelId"))
	rules := kubetest.List(t, cfg, "config.ingressRules")
	require.Len(t, rules, 3)
	for i, h := range []string{"oms.acme.example.com", "api.acme.example.com"} {
		assert.Equal(t, h, rules[i]["hostname"])
		assert.Equal(t, "http://acme-prod-eu-web.oms.svc.cluster.local:80", rules[i]["service"])
	}
	assert.Nil(t, rules[2]["hostname"], "the last rule matches every request")
	assert.Equal(t, "http_status:404", rules[2]["service"])

	assert.Equal(t, "edge-tunnel-id", out.tunnelID)
	assert.Equal(t, "edge-tunnel-id.cfargotunnel.com", out.tunnelCNAME)
}

func TestCloudflareDNSRecordsAreProxiedCNAMEsToTheTunnel(t *testing.T) {
	inv, _ := evaluate(t, cloudflareArgs())
	records := inv.OfType(recordType)
	require.Len(t, records, 2)
	var names []string
	for _, r := range records {
		names = append(names, r.String("name"))
		assert.Equal(t, "CNAME", r.String("type"))
		assert.True(t, r.Bool("proxied"), "record %s is proxied", r.Name)
		assert.Equal(t, "edge-tunnel-id.cfargotunnel.com", r.String("content"))
		assert.Equal(t, zoneID, r.String("zoneId"))
		_, hasValue := r.Get("value")
		assert.False(t, hasValue, "the deprecated value field is not used")
	}
	assert.ElementsMatch(t, []string{"oms.acme.example.com", "api.acme.example.com"}, names)
}

func TestCloudflaredDeployment(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replicas int
		want     float64
	}{
		{"default", 0, 2},
		{"production", 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := cloudflareArgs()
			args.Cloudflare.Replicas = tc.replicas
			inv, _ := evaluate(t, args)
			d := kubetest.One(t, inv, kubetest.Deployment)
			assert.Equal(t, "acme-prod-eu-cloudflared", d.String("metadata.name"))
			assert.Equal(t, "oms", d.String("metadata.namespace"))
			replicas, _ := d.Number("spec.replicas")
			assert.Equal(t, tc.want, replicas)
			kubetest.AssertSpread(t, d)
			kubetest.AssertRestricted(t, d)
			kubetest.AssertProbes(t, d)
			kubetest.AssertSelectorMatchesTemplate(t, d)
			assert.Equal(t, float64(65532), kubetest.Map(t, d, "spec.template.spec.securityContext")["runAsUser"], "the image's nonroot uid")
			assert.Equal(t, map[string]any{"omscloud.io/pool": "web"}, kubetest.Map(t, d, "spec.template.spec.nodeSelector"))
			assert.False(t, d.Bool("spec.template.spec.automountServiceAccountToken"))
			assert.Equal(t, "edge-tunnel-id", kubetest.Map(t, d, "spec.template.metadata.annotations")[edge.TunnelIDAnnotation],
				"a new tunnel rolls the connectors")

			c := kubetest.Container(t, d, "cloudflared")
			assert.Equal(t, edge.DefaultCloudflaredImage, c["image"])
			assert.Regexp(t, `^cloudflare/cloudflared:\d{4}\.\d+\.\d+$`, c["image"], "pinned to a released version")
			assert.Equal(t, "--metrics 0.0.0.0:2000", flag(t, c, "--metrics"))
			assert.Equal(t, "run", last(c["command"]))
			live := c["livenessProbe"].(map[string]any)["httpGet"].(map[string]any)
			assert.Equal(t, "/ready", live["path"])
			assert.Equal(t, "metrics", live["port"])
			assert.Equal(t, []any{map[string]any{"name": "metrics", "containerPort": float64(2000), "protocol": "TCP"}}, c["ports"])
			env := c["env"].([]any)
			require.Len(t, env, 1)
			assert.Equal(t, "TUNNEL_TOKEN", env[0].(map[string]any)["name"])
			assert.Equal(t, map[string]any{"name": "acme-prod-eu-cloudflared-token", "key": edge.TokenKey},
				env[0].(map[string]any)["valueFrom"].(map[string]any)["secretKeyRef"])

			secret := kubetest.One(t, inv, kubetest.Secret)
			assert.Equal(t, "acme-prod-eu-cloudflared-token", secret.String("metadata.name"))
			assert.Equal(t, inventory.Secret, secret.String("stringData"), "the tunnel token is a secret")
			kubetest.AssertNoPlaintextSecrets(t, inv)

			pdb := kubetest.One(t, inv, kubetest.PDB)
			assert.Equal(t, float64(1), pdb.Inputs["spec"].(map[string]any)["maxUnavailable"], "one connector drained at a time")
			assert.Equal(t, kubetest.Map(t, d, "spec.selector.matchLabels"), kubetest.Map(t, pdb, "spec.selector.matchLabels"))
		})
	}
}

func TestCloudflaredNetworkPolicyIsEgressOnly(t *testing.T) {
	inv, _ := evaluate(t, cloudflareArgs())
	d := kubetest.One(t, inv, kubetest.Deployment)
	np := kubetest.One(t, inv, kubetest.NetworkPolicy)
	assert.Equal(t, kubetest.Map(t, d, "spec.selector.matchLabels"), kubetest.Map(t, np, "spec.podSelector.matchLabels"))
	assert.Equal(t, []any{"Ingress", "Egress"}, mustGet(t, np, "spec.policyTypes"))
	_, hasIngress := np.Get("spec.ingress")
	assert.False(t, hasIngress, "nothing may connect to cloudflared")

	egress := kubetest.List(t, np, "spec.egress")
	require.Len(t, egress, 3)
	// 1: the runtime's web pods on the container port only.
	assert.Equal(t, []any{map[string]any{"podSelector": map[string]any{"matchLabels": map[string]any{
		"app.kubernetes.io/name": "oms", "app.kubernetes.io/component": "web"}}}}, egress[0]["to"])
	assert.Equal(t, []string{"TCP/8080"}, ports(egress[0]))
	// 2: DNS.
	assert.Equal(t, []string{"UDP/53", "TCP/53"}, ports(egress[1]))
	// 3: Cloudflare's edge, never a private range or the metadata server.
	assert.Equal(t, []string{"UDP/7844", "TCP/7844", "TCP/443"}, ports(egress[2]))
	block := egress[2]["to"].([]any)[0].(map[string]any)["ipBlock"].(map[string]any)
	assert.Equal(t, "0.0.0.0/0", block["cidr"])
	assert.Subset(t, block["except"], []any{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"})
}

func TestCloudflareLoadBalancer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		dr    []pulumi.StringInput
		pools []any
	}{
		{"primary only", nil, []any{"edge-primary-id"}},
		{"with DR pools", []pulumi.StringInput{pulumi.String("dr-pool-1"), pulumi.String("dr-pool-2")},
			[]any{"edge-primary-id", "dr-pool-1", "dr-pool-2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := cloudflareArgs()
			args.Cloudflare.DRPoolIDs = tc.dr
			inv, out := evaluate(t, args)

			monitor := kubetest.One(t, inv, monitorType)
			assert.Equal(t, "https", monitor.String("type"))
			assert.Equal(t, "GET", monitor.String("method"))
			assert.Equal(t, "/readyz", monitor.String("path"))
			assert.Equal(t, "200", monitor.String("expectedCodes"))
			assert.Equal(t, []map[string]any{{"header": "Host", "values": []any{"oms.acme.example.com"}}}, kubetest.List(t, monitor, "headers"),
				"the probe carries a hostname the tunnel routes")

			pool := kubetest.One(t, inv, poolType)
			assert.Equal(t, "edge-readyz-id", pool.String("monitor"))
			assert.Equal(t, accountID, pool.String("accountId"))
			assert.Equal(t, []string{"WEU"}, pool.Strings("checkRegions"))
			origins := kubetest.List(t, pool, "origins")
			require.Len(t, origins, 1)
			assert.Equal(t, "edge-tunnel-id.cfargotunnel.com", origins[0]["address"])
			assert.Equal(t, []any{map[string]any{"header": "Host", "values": []any{"oms.acme.example.com"}}}, origins[0]["headers"])

			lb := kubetest.One(t, inv, lbType)
			assert.Equal(t, "oms.acme.example.com", lb.String("name"), "on the primary hostname")
			assert.Equal(t, zoneID, lb.String("zoneId"))
			assert.True(t, lb.Bool("proxied"))
			assert.Equal(t, "off", lb.String("steeringPolicy"), "failover in the listed order")
			assert.Equal(t, tc.pools, mustGet(t, lb, "defaultPoolIds"))
			assert.Equal(t, "edge-primary-id", lb.String("fallbackPoolId"))

			assert.Equal(t, "edge-primary-id", out.primaryPoolID)
			assert.Equal(t, "edge-readyz-id", out.monitorID)
		})
	}
}

func TestCloudflareChildrenAreParentedAndNamed(t *testing.T) {
	inv, _ := evaluate(t, cloudflareArgs())
	for _, r := range inv.Resources {
		if strings.HasPrefix(r.Type, "cloudflare:index/") || strings.HasPrefix(r.Type, "kubernetes:") {
			assert.Equal(t, "edge", r.Parent, "%s %s is a child of the component", r.Type, r.Name)
		}
		if strings.HasPrefix(r.Type, "kubernetes:") {
			assert.True(t, strings.HasPrefix(r.String("metadata.name"), "acme-prod-eu-cloudflared"), "%s named from Args.Name", r.Name)
			assert.Equal(t, "production", r.String("metadata.labels.environment"))
		}
	}
}

func connectorOnlyArgs() edge.Args {
	a := cloudflareArgs()
	a.Name = "acme-prod-eu-dr"
	a.Cloudflare = edge.CloudflareArgs{
		ConnectorOnly: true,
		TunnelToken:   pulumi.ToSecret(pulumi.String("dr-tunnel-token")).(pulumi.StringOutput),
	}
	return a
}

// TestConnectorOnlyDeclaresNothingOnCloudflare: a DR environment runs the connector of the primary's DR tunnel and
// must not declare the tunnel, records, monitor, pools or load balancer again; no Cloudflare provider is given.
func TestConnectorOnlyDeclaresNothingOnCloudflare(t *testing.T) {
	var out outputs
	inv, err := inventory.Evaluate(func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{})
		if err != nil {
			return err
		}
		args := connectorOnlyArgs()
		e, err := edge.New(ctx, "edge", &args, pulumi.Provider(k8s))
		if err != nil {
			return err
		}
		capture := func(key string, o pulumi.StringOutput, dst *string) {
			ctx.Export(key, o.ApplyT(func(s string) string { *dst = s; return s }))
		}
		capture("tunnelId", e.TunnelID, &out.tunnelID)
		capture("tunnelCname", e.TunnelCNAME, &out.tunnelCNAME)
		capture("primaryPoolId", e.PrimaryPoolID, &out.primaryPoolID)
		capture("monitorId", e.MonitorID, &out.monitorID)
		capture("ipAddress", e.IPAddress, &out.ipAddress)
		return nil
	}, "omscloud", "test", nil, nil)
	require.NoError(t, err)

	var types []string
	for _, r := range inv.Resources {
		assert.False(t, strings.HasPrefix(r.Type, "cloudflare:"), "no Cloudflare resource, got %s %s", r.Type, r.Name)
		assert.False(t, strings.HasPrefix(r.Type, "random:"), "no tunnel secret, got %s %s", r.Type, r.Name)
		assert.False(t, strings.HasPrefix(r.Type, "gcp:"), "no GCP resource, got %s %s", r.Type, r.Name)
		if strings.HasPrefix(r.Type, "kubernetes:") {
			types = append(types, r.Type)
			assert.Equal(t, "edge", r.Parent, "%s is a child of the component", r.Name)
			assert.True(t, strings.HasPrefix(r.String("metadata.name"), "acme-prod-eu-dr-cloudflared"), r.Name)
		}
	}
	assert.ElementsMatch(t, []string{kubetest.Secret, kubetest.ServiceAccount, kubetest.Deployment, kubetest.PDB, kubetest.NetworkPolicy}, types,
		"only the connector")

	secret := kubetest.One(t, inv, kubetest.Secret)
	assert.Equal(t, "acme-prod-eu-dr-cloudflared-token", secret.String("metadata.name"))
	assert.Equal(t, inventory.Secret, secret.String("stringData"), "the given token stays secret")
	kubetest.AssertNoPlaintextSecrets(t, inv)

	d := kubetest.One(t, inv, kubetest.Deployment)
	kubetest.AssertSpread(t, d)
	kubetest.AssertRestricted(t, d)
	kubetest.AssertProbes(t, d)
	c := kubetest.Container(t, d, "cloudflared")
	env := c["env"].([]any)
	require.Len(t, env, 1)
	assert.Equal(t, map[string]any{"name": "acme-prod-eu-dr-cloudflared-token", "key": edge.TokenKey},
		env[0].(map[string]any)["valueFrom"].(map[string]any)["secretKeyRef"], "cloudflared runs the given token")

	np := kubetest.One(t, inv, kubetest.NetworkPolicy)
	egress := kubetest.List(t, np, "spec.egress")
	require.Len(t, egress, 3, "same egress-only policy as a primary connector")
	assert.Equal(t, []string{"TCP/8080"}, ports(egress[0]))
	_, hasIngress := np.Get("spec.ingress")
	assert.False(t, hasIngress)

	assert.Empty(t, out.tunnelID)
	assert.Empty(t, out.tunnelCNAME)
	assert.Empty(t, out.primaryPoolID)
	assert.Empty(t, out.monitorID)
	assert.Empty(t, out.ipAddress)
}

// --- gcp mode ---

func TestGCPTLSAndRedirect(t *testing.T) {
	inv, out := evaluate(t, gcpArgs())
	assert.Empty(t, inv.OfType("gcp:compute/managedSslCertificate:ManagedSslCertificate"),
		"no load-balancer-authorized certificate: it could not provision before DNS points at the load balancer")

	tls := kubetest.One(t, inv, sslPolicyType)
	assert.Equal(t, "MODERN", tls.String("profile"))
	assert.Equal(t, "TLS_1_2", tls.String("minTlsVersion"))

	https := kubetest.One(t, inv, httpsProxyType)
	assert.Equal(t, "//certificatemanager.googleapis.com/edge-certmap-id", https.String("certificateMap"), "the proxy serves the map")
	assert.Equal(t, "edge-certmap-id", out.certificateMap)
	_, direct := https.Get("sslCertificates")
	assert.False(t, direct, "no certificate attached directly")
	assert.Equal(t, selfLink("sslpolicy", "oms-prod-us-tls"), https.String("sslPolicy"))
	assert.Equal(t, selfLink("urlmap", "oms-prod-us-https"), https.String("urlMap"))

	ip := kubetest.One(t, inv, globalAddressType)
	assert.Equal(t, "EXTERNAL", ip.String("addressType"))
	assert.Equal(t, "IPV4", ip.String("ipVersion"))
	assert.Equal(t, "203.0.113.20", out.ipAddress)
	assert.Equal(t, []string{"https://api.us.omscloud.example.com", "https://oms.us.omscloud.example.com"}, out.urls)

	rules := map[string]inventory.Resource{}
	for _, r := range inv.OfType(forwardingRuleType) {
		rules[r.String("portRange")] = r
		assert.Equal(t, "EXTERNAL_MANAGED", r.String("loadBalancingScheme"))
		assert.Equal(t, "203.0.113.20", r.String("ipAddress"), "both ports share the one address")
	}
	require.Len(t, rules, 2)
	assert.Equal(t, selfLink("targethttpsproxy", "oms-prod-us-https"), rules["443"].String("target"))
	assert.Equal(t, selfLink("targethttpproxy", "oms-prod-us-http"), rules["80"].String("target"))

	redirect := one(t, inv, urlMapType, "edge-redirect")
	assert.True(t, redirect.Bool("defaultUrlRedirect.httpsRedirect"))
	assert.Equal(t, "MOVED_PERMANENTLY_DEFAULT", redirect.String("defaultUrlRedirect.redirectResponseCode"))
	_, serves := redirect.Get("defaultService")
	assert.False(t, serves, "port 80 serves nothing but the redirect")
	assert.Equal(t, selfLink("urlmap", "oms-prod-us-redirect"), kubetest.One(t, inv, httpProxyType).String("urlMap"))
}

func TestGCPCloudArmor(t *testing.T) {
	for _, tc := range []struct {
		name      string
		limit     edge.RateLimitArgs
		action    string
		banSecond float64
	}{
		{"throttle by default", edge.RateLimitArgs{}, "throttle", 0},
		{"ban when configured", edge.RateLimitArgs{Count: 300, IntervalSec: 60, BanDurationSec: 600}, "rate_based_ban", 600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := gcpArgs()
			args.GCP.RateLimit = tc.limit
			inv, out := evaluate(t, args)
			armor := kubetest.One(t, inv, armorType)
			assert.Equal(t, "CLOUD_ARMOR", armor.String("type"))
			assert.True(t, armor.Bool("adaptiveProtectionConfig.layer7DdosDefenseConfig.enable"), "adaptive protection on")

			rules := kubetest.List(t, armor, "rules")
			var waf []string
			var limit, dflt map[string]any
			for _, r := range rules {
				expr, _ := r["match"].(map[string]any)["expr"].(map[string]any)
				switch {
				case expr != nil:
					assert.Equal(t, "deny(403)", r["action"], "WAF rule %v denies", expr)
					waf = append(waf, expr["expression"].(string))
				case r["action"] == tc.action:
					limit = r
				case r["priority"] == float64(2147483647):
					dflt = r
				}
			}
			var want []string
			for _, name := range []string{"sqli", "xss", "lfi", "rfi", "rce", "scannerdetection", "protocolattack", "sessionfixation"} {
				want = append(want, fmt.Sprintf("evaluatePreconfiguredWaf('%s-v33-stable', {'sensitivity': 1})", name))
			}
			assert.Equal(t, want, waf)

			require.NotNil(t, limit, "a %s rule", tc.action)
			opts := limit["rateLimitOptions"].(map[string]any)
			assert.Equal(t, "IP", opts["enforceOnKey"])
			assert.Equal(t, "deny(429)", opts["exceedAction"])
			assert.Equal(t, "allow", opts["conformAction"])
			if tc.banSecond > 0 {
				assert.Equal(t, tc.banSecond, opts["banDurationSec"])
				assert.Equal(t, float64(300), opts["rateLimitThreshold"].(map[string]any)["count"])
			} else {
				assert.Equal(t, map[string]any{"count": float64(600), "intervalSec": float64(60)}, opts["rateLimitThreshold"])
			}
			for _, r := range rules {
				if r["match"].(map[string]any)["expr"] != nil {
					assert.Less(t, r["priority"], limit["priority"], "WAF rules run before the rate limit's allow")
				}
			}
			require.NotNil(t, dflt, "an explicit default rule")
			assert.Equal(t, "allow", dflt["action"])

			backends := inv.OfType(backendType)
			require.Len(t, backends, 2)
			for _, b := range backends {
				assert.Equal(t, selfLink("securitypolicy", "oms-prod-us-armor"), b.String("securityPolicy"), "policy on %s", b.Name)
			}
			assert.Equal(t, selfLink("securitypolicy", "oms-prod-us-armor"), out.securityPolicy)
		})
	}
}

func TestGCPBackendsAreZonalNEGsHealthCheckedOnReadyz(t *testing.T) {
	inv, _ := evaluate(t, gcpArgs())
	hc := kubetest.One(t, inv, healthCheckType)
	assert.Equal(t, "/readyz", hc.String("httpHealthCheck.requestPath"))
	port, _ := hc.Number("httpHealthCheck.port")
	assert.Equal(t, float64(8080), port, "the NEG endpoints' port")

	for _, b := range inv.OfType(backendType) {
		assert.Equal(t, "HTTP", b.String("protocol"))
		assert.Equal(t, "EXTERNAL_MANAGED", b.String("loadBalancingScheme"))
		assert.Equal(t, selfLink("healthcheck", "oms-prod-us-readyz"), b.String("healthChecks"))
		draining, _ := b.Number("connectionDrainingTimeoutSec")
		assert.Equal(t, float64(30), draining)
		assert.True(t, b.Bool("logConfig.enable"))
		rate, _ := b.Number("logConfig.sampleRate")
		assert.Equal(t, 0.1, rate)
		for _, be := range kubetest.List(t, b, "backends") {
			assert.Equal(t, "RATE", be["balancingMode"])
			assert.Equal(t, float64(100), be["maxRatePerEndpoint"])
		}
	}
	// The NEGs the backends look up are the ones the color Services' annotations make GKE create.
	assert.Equal(t, `{"exposed_ports":{"80":{"name":"oms-prod-us-web-green-neg"}}}`, edge.NEGAnnotation("oms-prod-us", "green"))
	assert.Equal(t, "oms-prod-us-web", edge.ServiceName("oms-prod-us"))
}

// TestGCPBlueGreenByCapacity: both colors' NEGs are backends in every zone, so the health check probes the idle
// color's pods too; only the active color has capacity, and a switch changes nothing but the capacity scalers.
func TestGCPBlueGreenByCapacity(t *testing.T) {
	capacities := func(active string) map[string][]any {
		args := gcpArgs()
		args.Backend.ActiveColor = pulumi.String(active)
		inv, _, err := run(args, newNEGMocks(lookedUp), false)
		require.NoError(t, err)
		out := map[string][]any{}
		for _, b := range inv.OfType(backendType) {
			for _, be := range kubetest.List(t, b, "backends") {
				out[b.Name] = append(out[b.Name], []any{be["group"], be["capacityScaler"]})
			}
		}
		return out
	}
	blue, green := capacities("blue"), capacities("green")
	for _, name := range []string{"edge-api", "edge-static"} {
		var wantBlue, wantGreen []any
		for _, z := range zones {
			wantBlue = append(wantBlue, []any{negLink("oms-prod-us-web-blue-neg", z), 1.0}, []any{negLink("oms-prod-us-web-green-neg", z), 0.0})
			wantGreen = append(wantGreen, []any{negLink("oms-prod-us-web-blue-neg", z), 0.0}, []any{negLink("oms-prod-us-web-green-neg", z), 1.0})
		}
		assert.Equal(t, wantBlue, blue[name], "%s on blue", name)
		assert.Equal(t, wantGreen, green[name], "%s on green", name)
	}

	// The active color is known only once its smoke test passed: until then the backends are unknown, not switched.
	args := gcpArgs()
	args.Backend.ActiveColor = pulumi.UnsafeUnknownOutput(nil).ApplyT(func(any) string { return "" }).(pulumi.StringOutput)
	inv, _, err := run(args, newNEGMocks(lookedUp), true)
	require.NoError(t, err)
	for _, b := range inv.OfType(backendType) {
		for _, be := range kubetest.List(t, b, "backends") {
			assert.Nil(t, be["capacityScaler"], "%s: unknown while the smoke test has not passed", b.Name)
		}
	}

	args = gcpArgs()
	args.Backend.ActiveColor = pulumi.String("purple")
	_, _, err = run(args, newNEGMocks(lookedUp), false)
	assert.ErrorContains(t, err, `Backend.ActiveColor "purple" is none of the colors [blue green]`)
}

func TestGCPCDNOnlyForStaticPaths(t *testing.T) {
	inv, _ := evaluate(t, gcpArgs())
	api := one(t, inv, backendType, "edge-api")
	static := one(t, inv, backendType, "edge-static")
	assert.False(t, api.Bool("enableCdn"), "the API is never cached")
	_, apiCDN := api.Get("cdnPolicy")
	assert.False(t, apiCDN)
	assert.True(t, static.Bool("enableCdn"))
	assert.Equal(t, "CACHE_ALL_STATIC", static.String("cdnPolicy.cacheMode"))

	urlMap := one(t, inv, urlMapType, "edge-https")
	assert.Equal(t, selfLink("backendservice", "oms-prod-us-api"), urlMap.String("defaultService"))
	hostRules := kubetest.List(t, urlMap, "hostRules")
	require.Len(t, hostRules, 1)
	assert.Equal(t, []any{"api.us.omscloud.example.com", "oms.us.omscloud.example.com"}, hostRules[0]["hosts"])
	matchers := kubetest.List(t, urlMap, "pathMatchers")
	require.Len(t, matchers, 1)
	assert.Equal(t, hostRules[0]["pathMatcher"], matchers[0]["name"])
	assert.Equal(t, selfLink("backendservice", "oms-prod-us-api"), matchers[0]["defaultService"])
	assert.Equal(t, []any{map[string]any{"paths": []any{"/static/*"}, "service": selfLink("backendservice", "oms-prod-us-static")}},
		matchers[0]["pathRules"])
}

func TestGCPModeDeclaresNoTunnelAndUsesAGivenAddress(t *testing.T) {
	args := gcpArgs()
	args.GCP.Address = pulumi.String("198.51.100.7") // e.g. the reserved DR address
	inv, out := evaluate(t, args)
	assert.Empty(t, inv.OfType(globalAddressType), "the given address is used, not a new one")
	for _, r := range inv.OfType(forwardingRuleType) {
		assert.Equal(t, "198.51.100.7", r.String("ipAddress"))
	}
	assert.Equal(t, "198.51.100.7", out.ipAddress)
	for _, r := range inv.Resources {
		assert.False(t, strings.HasPrefix(r.Type, "cloudflare:index/") || strings.HasPrefix(r.Type, "kubernetes:") || r.Type == randomIDType,
			"gcp mode declares no %s", r.Type)
	}
	assert.Empty(t, out.tunnelID)
	assert.Empty(t, out.primaryPoolID)
}

// --- validation ---

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		base   func() edge.Args
		mutate func(*edge.Args)
		want   []string
	}{
		{"unknown provider", gcpArgs, func(a *edge.Args) { a.Provider = "akamai" }, []string{`Provider "akamai"`, "gcp", "cloudflare"}},
		{"empty provider", gcpArgs, func(a *edge.Args) { a.Provider = "" }, []string{`Provider ""`}},
		{"no hostnames", gcpArgs, func(a *edge.Args) { a.Hostnames = nil }, []string{"Hostnames is empty"}},
		{"bad hostname", gcpArgs, func(a *edge.Args) { a.Hostnames = []string{"*.example.com"} }, []string{`Hostnames[0] "*.example.com"`}},
		{"duplicate hostname", gcpArgs, func(a *edge.Args) { a.Hostnames = []string{"a.example.com", "a.example.com"} }, []string{"listed twice"}},
		{"cloudflare without ids", cloudflareArgs, func(a *edge.Args) { a.Cloudflare.AccountID, a.Cloudflare.ZoneID = "", "" },
			[]string{"Cloudflare.AccountID", "Cloudflare.ZoneID"}},
		{"cloudflare with a malformed zone id", cloudflareArgs, func(a *edge.Args) { a.Cloudflare.ZoneID = "example.com" }, []string{`Cloudflare.ZoneID "example.com"`}},
		{"one cloudflared", cloudflareArgs, func(a *edge.Args) { a.Cloudflare.Replicas = 1 }, []string{"Cloudflare.Replicas is 1"}},
		{"unpinned cloudflared", cloudflareArgs, func(a *edge.Args) { a.Cloudflare.Image = "cloudflare/cloudflared:latest" }, []string{"Cloudflare.Image"}},
		{"no runtime pod selector", cloudflareArgs, func(a *edge.Args) { a.Backend.PodSelector = nil }, []string{"Backend.PodSelector"}},
		{"nil DR pool", cloudflareArgs, func(a *edge.Args) { a.Cloudflare.DRPoolIDs = []pulumi.StringInput{nil} }, []string{"Cloudflare.DRPoolIDs[0]"}},
		{"unknown check region", cloudflareArgs, func(a *edge.Args) { a.Cloudflare.CheckRegions = []string{"MARS"} }, []string{`Cloudflare.CheckRegions[0] "MARS"`}},
		{"gcp with one zone", gcpArgs, func(a *edge.Args) { a.Zones = zones[:1] }, []string{"Zones has 1 zone"}},
		{"zone outside the region", gcpArgs, func(a *edge.Args) { a.Zones = []string{"us-central1-a", "europe-west1-b"} }, []string{`Zones[1] "europe-west1-b"`}},
		{"gcp without project", gcpArgs, func(a *edge.Args) { a.Project = "" }, []string{"Project and Region are required"}},
		{"gcp without a DNS zone", gcpArgs, func(a *edge.Args) { a.GCP.DNS = edge.DNSArgs{} }, []string{"GCP.DNS.ManagedZone is required", "GCP.CertificateMap"}},
		{"DNS with another stack's map", gcpArgs, func(a *edge.Args) {
			a.GCP.CertificateMap = pulumi.String("projects/p/locations/global/certificateMaps/m")
		},
			[]string{"GCP.DNS is set with GCP.CertificateMap", "leave GCP.DNS empty"}},
		{"gcp without the Services' readiness", gcpArgs, func(a *edge.Args) { a.Backend.Colors["green"] = edge.ColorBackend{} },
			[]string{`Backend.Colors["green"].ServiceReady is required`, "omsruntime.Runtime.ColorServicesReady"}},
		{"gcp without colors", gcpArgs, func(a *edge.Args) { a.Backend.Colors, a.Backend.ActiveColor = nil, nil },
			[]string{"Backend.Colors is empty", "Backend.ActiveColor is required in gcp mode"}},
		{"gcp with a NEG name GCP refuses", gcpArgs, func(a *edge.Args) {
			a.Backend.Colors["blue"] = edge.ColorBackend{NEG: "Blue_NEG", ServiceReady: pulumi.String("s")}
		}, []string{`Backend.Colors["blue"].NEG "Blue_NEG" must be a NEG name`}},
		{"rate interval", gcpArgs, func(a *edge.Args) { a.GCP.RateLimit.IntervalSec = 45 }, []string{"GCP.RateLimit.IntervalSec 45"}},
		{"sensitivity", gcpArgs, func(a *edge.Args) { a.GCP.WAFSensitivity = 5 }, []string{"GCP.WAFSensitivity 5"}},
		{"static path", gcpArgs, func(a *edge.Args) { a.GCP.StaticPaths = []string{"static/*"} }, []string{`GCP.StaticPaths[0] "static/*"`}},
		{"name", gcpArgs, func(a *edge.Args) { a.Name = "OMS_prod" }, []string{`Name "OMS_prod"`}},
		{"connector only without token", connectorOnlyArgs, func(a *edge.Args) { a.Cloudflare.TunnelToken = nil }, []string{"Cloudflare.TunnelToken is required"}},
		{"connector only with DR pools", connectorOnlyArgs, func(a *edge.Args) { a.Cloudflare.DRPoolIDs = []pulumi.StringInput{pulumi.String("p")} },
			[]string{"Cloudflare.DRPoolIDs is set with Cloudflare.ConnectorOnly"}},
		{"token without connector only", cloudflareArgs, func(a *edge.Args) { a.Cloudflare.TunnelToken = pulumi.String("t") },
			[]string{"Cloudflare.TunnelToken is set without Cloudflare.ConnectorOnly"}},
		{"connector only, one replica", connectorOnlyArgs, func(a *edge.Args) { a.Cloudflare.Replicas = 1 }, []string{"Cloudflare.Replicas is 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.base()
			tc.mutate(&args)
			err := args.Validate()
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "edge: "), err.Error())
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}

			// New refuses before declaring anything.
			mocks := &inventory.Mocks{Project: "omscloud", Stack: "test"}
			runErr := pulumi.RunErr(func(ctx *pulumi.Context) error {
				_, err := edge.New(ctx, "edge", &args)
				return err
			}, pulumi.WithMocks("omscloud", "test", mocks))
			require.Error(t, runErr)
			assert.Empty(t, mocks.Resources())
		})
	}
	// ConnectorOnly needs no account, zone or check region (nothing is declared on Cloudflare).
	connectorOnly := connectorOnlyArgs()
	connectorOnly.Region = "moon-1"
	for _, ok := range []edge.Args{gcpArgs(), cloudflareArgs(), connectorOnly} {
		assert.NoError(t, ok.Validate(), ok.Provider)
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	args := cloudflareArgs()
	args.Hostnames = nil
	args.Cloudflare = edge.CloudflareArgs{Replicas: 1}
	err := args.Validate()
	require.Error(t, err)
	for _, w := range []string{"Hostnames is empty", "Cloudflare.AccountID", "Cloudflare.ZoneID", "Cloudflare.Replicas"} {
		assert.Contains(t, err.Error(), w)
	}
}

// --- helpers ---

// selfLink is the self link the mocks compute for a GCP resource of the test project.
func selfLink(kind, name string) string {
	return "https://www.googleapis.com/compute/v1/projects/omscloud-prod-us/" + kind + "s/" + name
}

func mustGet(t *testing.T, r inventory.Resource, path string) any {
	t.Helper()
	v, ok := r.Get(path)
	require.True(t, ok, "%s has %s", r.Name, path)
	return v
}

// flag returns "flag value" from a container's command.
func flag(t *testing.T, c map[string]any, name string) string {
	t.Helper()
	cmd := c["command"].([]any)
	for i, a := range cmd {
		if a == name && i+1 < len(cmd) {
			return fmt.Sprintf("%s %s", a, cmd[i+1])
		}
	}
	return ""
}

func last(v any) any {
	arr, _ := v.([]any)
	if len(arr) == 0 {
		return nil
	}
	return arr[len(arr)-1]
}

// ports renders a NetworkPolicy rule's ports as PROTOCOL/port.
func ports(rule map[string]any) []string {
	var out []string
	for _, p := range rule["ports"].([]any) {
		m := p.(map[string]any)
		out = append(out, fmt.Sprintf("%s/%v", m["protocol"], m["port"]))
	}
	return out
}
