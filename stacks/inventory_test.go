package stacks

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/omscloud/omscloud/components/gke"
	"github.com/omscloud/omscloud/inventory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite stacks/testdata/<stack>.yaml from the current program")

func shippedStacks(t *testing.T) []string {
	t.Helper()
	names, err := ListStacks("..")
	require.NoError(t, err)
	require.NotEmpty(t, names)
	return names
}

// testStacks are the test-only stacks (TestStacksDir), checked like the shipped ones but never deployed.
func testStacks(t *testing.T) []string {
	t.Helper()
	names, err := ListStacks(filepath.Join("..", TestStacksDir))
	require.NoError(t, err)
	require.NotEmpty(t, names)
	return names
}

// stackFile loads a shipped or a test-only stack.
func stackFile(t *testing.T, stack string) *StackFile {
	t.Helper()
	dir := ".."
	if _, err := os.Stat(filepath.Join("..", TestStacksDir, "Pulumi."+stack+".yaml")); err == nil {
		dir = filepath.Join("..", TestStacksDir)
	}
	sf, err := LoadStackFileFrom("..", dir, stack)
	require.NoError(t, err)
	return sf
}

func plan(t *testing.T, stack string) (*Config, *inventory.Inventory) {
	t.Helper()
	cfg, inv, err := Plan(stackFile(t, stack))
	require.NoError(t, err)
	return cfg, inv
}

// TestInventories compares each shipped and test-only stack with its golden inventory, as Fabric's plan-based tests
// do.
func TestInventories(t *testing.T) {
	for _, stack := range append(shippedStacks(t), testStacks(t)...) {
		t.Run(stack, func(t *testing.T) {
			_, inv := plan(t, stack)
			got, err := inv.YAML()
			require.NoError(t, err)
			golden := filepath.Join("testdata", stack+".yaml")
			if *update {
				require.NoError(t, os.MkdirAll("testdata", 0o755))
				require.NoError(t, os.WriteFile(golden, got, 0o644))
				return
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "no golden inventory: run `go test ./stacks -update` and review the diff")
			assert.Equal(t, string(want), string(got), "inventory of %s changed: review, then `go test ./stacks -update`", stack)
		})
	}
}

func TestEveryGoldenInventoryHasAStack(t *testing.T) {
	stacks := map[string]bool{}
	for _, s := range append(shippedStacks(t), testStacks(t)...) {
		stacks[s] = true
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	require.NoError(t, err)
	for _, f := range files {
		name := filepath.Base(f)
		assert.True(t, stacks[name[:len(name)-len(".yaml")]], "%s has no Pulumi stack file, shipped or in %s: delete it", f, TestStacksDir)
	}
}

func TestProdPlacesWebPoolsInThreeUSZones(t *testing.T) {
	_, inv := plan(t, "prod")
	cluster := only(t, inv, "gcp:container/cluster:Cluster")
	assert.Equal(t, "us-central1", cluster.String("location"), "a regional cluster")
	assert.True(t, cluster.Bool("privateClusterConfig.enablePrivateNodes"))
	assert.Equal(t, "omscloud-prod-us.svc.id.goog", cluster.String("workloadIdentityConfig.workloadPool"))
	assert.True(t, cluster.Bool("removeDefaultNodePool"))
	assert.True(t, cluster.Bool("deletionProtection"))

	pools := inv.OfType("gcp:container/nodePool:NodePool")
	require.Len(t, pools, 2)
	for _, p := range pools {
		assert.Equal(t, []string{"us-central1-a", "us-central1-b", "us-central1-c"}, p.Strings("nodeLocations"), p.Name)
	}
	zones := inv.Zones()
	require.Len(t, zones, 3)
	for _, z := range zones {
		assert.Contains(t, z.Pools, inventory.PoolSpan{Pool: "web", Min: 1, Max: 5}, z.Zone)
	}

	nat := only(t, inv, "gcp:compute/routerNat:RouterNat")
	assert.Equal(t, "ALL_SUBNETWORKS_ALL_IP_RANGES", nat.String("sourceSubnetworkIpRangesToNat"))
	psa := only(t, inv, "gcp:servicenetworking/connection:Connection")
	assert.Equal(t, "servicenetworking.googleapis.com", psa.String("service"))
	vpc := only(t, inv, "gcp:compute/network:Network")
	assert.False(t, vpc.Bool("autoCreateSubnetworks"), "custom-mode VPC")
}

func TestSandboxIsProdTopologyAtSmallerSizes(t *testing.T) {
	_, prod := plan(t, "prod")
	_, sbx := plan(t, "sandbox")
	// Same resources, but for the cold-DR site (production only) and what each hosted account adds.
	perAccount := map[string]bool{
		"gcp:sql/database:Database": true, "gcp:sql/user:User": true, "gcp:secretmanager/secret:Secret": true,
		"gcp:secretmanager/secretVersion:SecretVersion": true, "random:index/randomPassword:RandomPassword": true,
		"gcp:secretmanager/secretIamMember:SecretIamMember": true,
	}
	prodCounts := countsWithout(prod, only(t, prod, "omscloud:dr:DR"))
	sbxCounts := countsWithout(sbx, inventory.Resource{})
	// A sandbox has no DR site and no database standby, so neither their alerts (rules.Sandbox).
	const alertType = "gcp:monitoring/alertPolicy:AlertPolicy"
	assert.Equal(t, prodCounts[alertType]-2, sbxCounts[alertType], "sandbox: no DR-readiness nor failover alert")
	for typ, n := range prodCounts {
		if !perAccount[typ] && typ != alertType {
			assert.Equal(t, n, sbxCounts[typ], typ)
		}
	}
	assert.Len(t, sbxCounts, len(prodCounts))
	for i, z := range sbx.Zones() {
		assert.Equal(t, prod.Zones()[i].Zone, z.Zone)
		for j, p := range z.Pools {
			assert.LessOrEqual(t, p.Max, prod.Zones()[i].Pools[j].Max, "%s %s", z.Zone, p.Pool)
		}
	}
	cluster := only(t, sbx, "gcp:container/cluster:Cluster")
	assert.False(t, cluster.Bool("deletionProtection"))
}

func TestDedicatedEUStackLandsInTheEU(t *testing.T) {
	cfg, inv := plan(t, "acme-prod-eu")
	assert.Equal(t, "europe-west1", only(t, inv, "gcp:container/cluster:Cluster").String("location"))
	assert.Equal(t, "acme-prod-eu", only(t, inv, "gcp:container/cluster:Cluster").String("name"))
	assert.Equal(t, "europe-west4", cfg.DR.GCPRegion)
	for _, z := range inv.Zones() {
		assert.Regexp(t, `^europe-west1-`, z.Zone)
	}
	provider := only(t, inv, "pulumi:providers:gcp")
	assert.Equal(t, "acme", provider.String("defaultLabels.tenant"))
}

func TestNoFirewallRuleAdmitsTheInternet(t *testing.T) {
	for _, stack := range shippedStacks(t) {
		_, inv := plan(t, stack)
		for _, fw := range inv.OfType("gcp:compute/firewall:Firewall") {
			if _, allows := fw.Get("allows"); allows {
				assert.NotContains(t, fw.Strings("sourceRanges"), "0.0.0.0/0", "%s: %s", stack, fw.Name)
			}
		}
	}
}

func TestKubeconfigIsSecret(t *testing.T) {
	_, inv := plan(t, "prod")
	assert.Equal(t, inventory.Secret, only(t, inv, "pulumi:providers:kubernetes").String("kubeconfig"))
}

// TestNodesCanPullEveryReleaseImage: the release lives in another project's Artifact Registry, so the nodes' service
// account needs read on exactly the repositories the workloads' images name, and on nothing project-wide.
func TestNodesCanPullEveryReleaseImage(t *testing.T) {
	for _, stack := range shippedStacks(t) {
		_, inv := plan(t, stack)
		nodes := "serviceAccount:" + inv.OfType("gcp:container/nodePool:NodePool")[0].String("nodeConfig.serviceAccount")
		granted := map[gke.Repository]bool{}
		for _, m := range inv.OfType("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember") {
			assert.Equal(t, "roles/artifactregistry.reader", m.String("role"), "%s: %s", stack, m.Name)
			assert.Equal(t, nodes, m.String("member"), "%s: %s", stack, m.Name)
			granted[gke.Repository{Location: m.String("location"), Project: m.String("project"), Name: m.String("repository")}] = true
		}
		pulled := map[gke.Repository]bool{}
		for _, r := range inv.Resources {
			for _, image := range containerImages(r.Inputs, false) {
				repo, err := gke.ImageRepository(image)
				if err != nil {
					continue // public images (Redis, RabbitMQ, cloudflared, curl) come through Cloud NAT
				}
				pulled[repo] = true
				assert.True(t, granted[repo], "%s: %s runs %s, but the nodes may not read %s", stack, r.Name, image, repo)
			}
		}
		assert.NotEmpty(t, pulled, "%s runs the release from Artifact Registry", stack)
		assert.Equal(t, pulled, granted, "%s: a grant for every repository pulled from, and no other", stack)
		for _, m := range inv.OfType("gcp:projects/iAMMember:IAMMember") {
			assert.NotEqual(t, "roles/artifactregistry.reader", m.String("role"), "%s: no project-wide read on registries", stack)
		}
	}
}

// containerImages collects the images of every container, init container and job template below v.
func containerImages(v any, inContainers bool) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if image, ok := v["image"].(string); ok && inContainers {
			out = append(out, image)
		}
		for k, child := range v {
			out = append(out, containerImages(child, k == "containers" || k == "initContainers")...)
		}
	case []any:
		for _, child := range v {
			out = append(out, containerImages(child, inContainers)...)
		}
	}
	return out
}

// countsWithout counts resources per type, leaving out root and everything below it.
func countsWithout(inv *inventory.Inventory, root inventory.Resource) map[string]int {
	skip := map[string]bool{}
	if root.URN != "" {
		skip[root.URN] = true
	}
	counts := map[string]int{}
	for _, r := range inv.Resources { // depth-first: a parent precedes its children
		if skip[r.URN] || skip[r.ParentURN] {
			skip[r.URN] = true
			continue
		}
		counts[r.Type]++
	}
	return counts
}

func only(t *testing.T, inv *inventory.Inventory, typ string) inventory.Resource {
	t.Helper()
	rs := inv.OfType(typ)
	require.Len(t, rs, 1, "resources of type %s", typ)
	return rs[0]
}

func TestAddingAnAccountAddsOnlyThatAccountsResources(t *testing.T) {
	sf, err := LoadStackFile("..", "prod")
	require.NoError(t, err)
	_, before, err := Plan(sf)
	require.NoError(t, err)

	sf.Values["omscloud:accounts"] = `["northwind","contoso","fabrikam","wingtip"]`
	_, after, err := Plan(sf)
	require.NoError(t, err)

	change := changeOf(before, after)
	var added []string
	for _, r := range change.added {
		assert.Contains(t, r.Name, "wingtip", "only the new account's resources are new: %s %s", r.Type, r.Name)
		added = append(added, r.Type)
	}
	for _, r := range change.changed {
		if r.Type == "kubernetes:batch/v1:Job" && strings.Contains(r.Name, "-migrate-") {
			// The release's migrate Job registers the new account by adopting its database.
			assert.Contains(t, strings.Join(r.Strings("spec.template.spec.containers[0].args"), " "), "fabrikam,northwind,wingtip")
			continue
		}
		assert.Failf(t, "changed", "%s %s changed when an account was added", r.Type, r.Name)
	}
	assert.Empty(t, change.removed, "nothing is removed")
	assert.ElementsMatch(t, []string{
		"gcp:sql/database:Database", "gcp:sql/user:User", "gcp:secretmanager/secret:Secret",
		"gcp:secretmanager/secretVersion:SecretVersion", "random:index/randomPassword:RandomPassword",
		"gcp:secretmanager/secretIamMember:SecretIamMember", // the backup job reads the account's password
	}, added)
}

// planChange is what a config change does to a stack's plan, resource by type and name.
type planChange struct {
	added, removed []inventory.Resource
	// changed are the resources kept with other inputs, as after the change.
	changed []inventory.Resource
}

func changeOf(before, after *inventory.Inventory) planChange {
	var c planChange
	old := map[string]inventory.Resource{}
	for _, r := range before.Resources {
		old[r.Type+" "+r.Name] = r
	}
	for _, r := range after.Resources {
		prev, existed := old[r.Type+" "+r.Name]
		delete(old, r.Type+" "+r.Name)
		switch {
		case !existed:
			c.added = append(c.added, r)
		case !reflect.DeepEqual(prev.Inputs, r.Inputs):
			c.changed = append(c.changed, r)
		}
	}
	for _, r := range before.Resources {
		if _, gone := old[r.Type+" "+r.Name]; gone {
			c.removed = append(c.removed, r)
		}
	}
	return c
}

func TestEveryAccountHasAnIsolatedDatabaseAndUser(t *testing.T) {
	for _, stack := range shippedStacks(t) {
		cfg, inv := plan(t, stack)
		var dbs, users []inventory.Resource
		for _, r := range inv.Children(only(t, inv, "omscloud:postgres:Postgres")) {
			switch r.Type {
			case "gcp:sql/database:Database":
				dbs = append(dbs, r)
			case "gcp:sql/user:User":
				users = append(users, r)
			}
		}
		require.Len(t, dbs, len(cfg.Accounts), stack)
		require.Len(t, users, len(cfg.Accounts), stack)
		names := map[string]bool{}
		for _, db := range dbs {
			names[db.String("name")] = true
		}
		assert.Len(t, names, len(cfg.Accounts), "%s: one distinct database per account", stack)
		for _, u := range users {
			assert.Equal(t, inventory.Secret, u.String("password"), "%s: %s", stack, u.Name)
		}
	}
}

func TestProductionDatabaseIsRegionalWithStandbyInAnotherZone(t *testing.T) {
	for _, stack := range []string{"prod", "prod-eu", "acme-prod-eu"} {
		cfg, inv := plan(t, stack)
		db := only(t, inv, "gcp:sql/databaseInstance:DatabaseInstance")
		assert.Equal(t, "REGIONAL", db.String("settings.availabilityType"), stack)
		primary, secondary := db.String("settings.locationPreference.zone"), db.String("settings.locationPreference.secondaryZone")
		assert.NotEqual(t, primary, secondary, stack)
		assert.Contains(t, cfg.Zones, primary)
		assert.Contains(t, cfg.Zones, secondary)
		assert.False(t, db.Bool("settings.ipConfiguration.ipv4Enabled"), "%s: no public IPv4", stack)
		assert.NotEmpty(t, db.String("encryptionKeyName"), "%s: CMEK", stack)
		assert.True(t, db.Bool("settings.backupConfiguration.pointInTimeRecoveryEnabled"), stack)
	}
	_, sbx := plan(t, "sandbox")
	db := only(t, sbx, "gcp:sql/databaseInstance:DatabaseInstance")
	assert.Equal(t, "ZONAL", db.String("settings.availabilityType"))
}

func TestRedisAndRabbitMQAreThreeReplicasSpreadOverZones(t *testing.T) {
	for _, stack := range shippedStacks(t) {
		_, inv := plan(t, stack)
		sets := inv.OfType("kubernetes:apps/v1:StatefulSet")
		require.Len(t, sets, 2, stack)
		for _, s := range sets {
			replicas, _ := s.Number("spec.replicas")
			assert.Equal(t, 3.0, replicas, "%s %s", stack, s.Name)
			assert.Equal(t, "topology.kubernetes.io/zone", s.String("spec.template.spec.topologySpreadConstraints[0].topologyKey"), "%s %s", stack, s.Name)
			skew, _ := s.Number("spec.template.spec.topologySpreadConstraints[0].maxSkew")
			assert.Equal(t, 1.0, skew)
			assert.Equal(t, "oms", s.String("metadata.namespace"))
		}
		ns := only(t, inv, "kubernetes:core/v1:Namespace")
		assert.Equal(t, "restricted", ns.String("metadata.labels.pod-security\\.kubernetes\\.io/enforce"))
	}
}

func TestSwitchingActiveColorMovesOnlyTheSwitch(t *testing.T) {
	sf, err := LoadStackFile("..", "prod")
	require.NoError(t, err)
	_, blue, err := Plan(sf)
	require.NoError(t, err)
	sf.Values["omscloud:runtime"] = strings.Replace(sf.Values["omscloud:runtime"], `"activeColor":"blue"`, `"activeColor":"green"`, 1)
	require.Contains(t, sf.Values["omscloud:runtime"], `"activeColor":"green"`)
	_, green, err := Plan(sf)
	require.NoError(t, err)

	before := map[string]inventory.Resource{}
	for _, r := range blue.Resources {
		before[r.Type+" "+r.Name] = r
	}
	var changed []string
	for _, r := range green.Resources {
		prev, ok := before[r.Type+" "+r.Name]
		if !ok || !assert.ObjectsAreEqual(prev.Inputs, r.Inputs) {
			changed = append(changed, r.Type+" "+r.Name)
		}
	}
	for _, c := range changed {
		// Only the switch itself: the public Service, the colors' autoscaler bounds, the smoke test of the new color and
		// the load balancer's capacity scalers.
		assert.Regexp(t, `^(kubernetes:core/v1:Service oms-prod-us-runtime-web|kubernetes:autoscaling/v2:HorizontalPodAutoscaler .*|kubernetes:batch/v1:Job .*smoke.*|gcp:compute/backendService:BackendService oms-prod-us-edge-(api|static))$`, c)
	}
	for _, d := range green.OfType("kubernetes:apps/v1:Deployment") {
		if strings.Contains(d.Name, "web-blue") {
			prev := before[d.Type+" "+d.Name]
			assert.Equal(t, prev.Inputs, d.Inputs, "the formerly active color keeps running unchanged: the instant fallback")
		}
	}

	svc, ok := green.Find("kubernetes:core/v1:Service", "oms-prod-us-runtime-web")
	require.True(t, ok)
	assert.Equal(t, "green", svc.String(`spec.selector.omscloud\.io/color`))
	var smoke []inventory.Resource
	for _, j := range green.OfType("kubernetes:batch/v1:Job") {
		if strings.Contains(j.Name, "smoke") {
			smoke = append(smoke, j)
		}
	}
	require.Len(t, smoke, 1)
	assert.True(t, svc.Waits(green, smoke[0].Type, smoke[0].Name), "the selector moves only after the smoke test passed")
	for _, b := range green.OfType("gcp:compute/backendService:BackendService") {
		assert.True(t, b.Waits(green, smoke[0].Type, smoke[0].Name), "%s moves its capacity only after the smoke test passed", b.Name)
		backends, _ := b.Get("backends")
		for _, be := range backends.([]any) {
			m := be.(map[string]any)
			want := 0.0
			if strings.Contains(m["group"].(string), "-web-green-neg") {
				want = 1
			}
			assert.Equal(t, want, m["capacityScaler"], "%s: %s", b.Name, m["group"])
		}
	}
}

func TestEdgeModes(t *testing.T) {
	_, gcp := plan(t, "prod")
	assert.Empty(t, gcp.OfType("gcp:compute/managedSslCertificate:ManagedSslCertificate"))
	cert := only(t, gcp, "gcp:certificatemanager/certificate:Certificate")
	assert.Equal(t, []string{"api.us.omscloud.example.com"}, cert.Strings("managed.domains"))
	certMap := only(t, gcp, "gcp:certificatemanager/certificateMap:CertificateMap")
	assert.Equal(t, "//certificatemanager.googleapis.com/"+certMap.Name+"-id", only(t, gcp, "gcp:compute/targetHttpsProxy:TargetHttpsProxy").String("certificateMap"))
	for _, r := range gcp.OfType("gcp:dns/recordSet:RecordSet") {
		assert.Equal(t, "omscloud-example-com", r.String("managedZone"), r.Name)
		assert.Equal(t, "omscloud-dns", r.String("project"), "%s: the shared DNS project", r.Name)
	}
	only(t, gcp, "gcp:compute/securityPolicy:SecurityPolicy")
	hc := only(t, gcp, "gcp:compute/healthCheck:HealthCheck")
	assert.Equal(t, "/readyz", hc.String("httpHealthCheck.requestPath"))

	_, cf := plan(t, "acme-prod-eu")
	assert.Empty(t, cf.OfType("gcp:compute/globalForwardingRule:GlobalForwardingRule"))
	for _, a := range cf.OfType("gcp:compute/globalAddress:GlobalAddress") {
		// Private services access reserves an INTERNAL range for Cloud SQL; nothing public may exist.
		assert.Equal(t, "INTERNAL", a.String("addressType"), a.Name)
	}
	assert.NotEmpty(t, cf.OfType("cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared"))
	assert.Empty(t, cf.OfType("gcp:dns/recordSet:RecordSet"), "the hostnames' records are Cloudflare's")
	assert.Empty(t, cf.OfType("gcp:certificatemanager/certificateMap:CertificateMap"))
	for _, s := range cf.OfType("kubernetes:core/v1:Service") {
		assert.NotEqual(t, "LoadBalancer", s.String("spec.type"), s.Name)
	}
}

func TestBackupsLiveOutsideThePrimaryRegionAndDRHoldsOnlyWhatMustPreExist(t *testing.T) {
	for _, stack := range []string{"prod", "prod-eu", "acme-prod-eu"} {
		cfg, inv := plan(t, stack)
		var backups inventory.Resource
		for _, b := range inv.OfType("gcp:storage/bucket:Bucket") {
			if strings.HasSuffix(b.String("name"), "-backups") {
				backups = b
			}
		}
		require.NotEmpty(t, backups.Name, stack)
		assert.Equal(t, cfg.DR.GCPRegion, backups.String("location"), "%s: backups sit in the DR region", stack)
		assert.NotEqual(t, cfg.Region.Primary.GCPRegion, backups.String("location"))
		ages := map[string]float64{}
		for i := range 5 {
			prefixes := backups.Strings(fmt.Sprintf("lifecycleRules[%d].condition.matchesPrefixes", i))
			age, ok := backups.Number(fmt.Sprintf("lifecycleRules[%d].condition.age", i))
			if len(prefixes) == 1 && ok {
				ages[prefixes[0]] = age
			}
		}
		assert.Equal(t, map[string]float64{"hourly/": 7, "weekly/": 28, "monthly/": 365}, ages, stack)
		assert.NotEmpty(t, backups.String("encryption.defaultKmsKeyName"), "%s: CMEK", stack)

		schedules := map[string]string{}
		for _, cj := range inv.OfType("kubernetes:batch/v1:CronJob") {
			args := strings.Join(cj.Strings("spec.jobTemplate.spec.template.spec.containers[0].args"), " ")
			schedules[args[:strings.Index(args, " --to")]] = cj.String("spec.schedule")
		}
		assert.Equal(t, map[string]string{
			"backup --tier hourly": "7 * * * *", "backup --tier weekly": "17 0 * * 0",
			"backup --tier monthly": "37 0 1 * *", "backup prune": "47 1 * * *",
		}, schedules, stack)

		site := only(t, inv, "omscloud:dr:DR")
		inDR := 0
		for _, r := range inv.Resources {
			for _, key := range []string{"region", "location"} {
				if r.String(key) == cfg.DR.GCPRegion {
					inDR++
					assert.Contains(t, []string{"gcp:storage/bucket:Bucket", "gcp:kms/keyRing:KeyRing"}, r.Type,
						"%s: %s %s is in the DR region; nothing may run there before DR is declared", stack, r.Type, r.Name)
				}
			}
		}
		assert.Positive(t, inDR, stack)
		if cfg.Edge.Provider == "gcp" {
			ip, ok := inv.Find("gcp:compute/globalAddress:GlobalAddress", site.Name+"-ip")
			require.True(t, ok, "%s: reserved DR IP", stack)
			assert.Equal(t, "EXTERNAL", ip.String("addressType"))
		} else {
			pools := inv.OfType("cloudflare:index/loadBalancerPool:LoadBalancerPool")
			require.Len(t, pools, 2, "%s: the primary pool and the pre-declared DR pool", stack)
		}
	}
	_, sbx := plan(t, "sandbox")
	assert.Empty(t, sbx.OfType("omscloud:dr:DR"), "cold DR is for production")
}

// TestCredentialsReachClientsAfterServers: the runtime's Secret, and with it the roll of its pods, waits for the
// servers to accept a rotated credential: the Redis and RabbitMQ StatefulSets' rollouts and the Cloud SQL user's
// update. Raising a rotation count regenerates one password and changes nothing else of the data tier.
func TestCredentialsReachClientsAfterServers(t *testing.T) {
	_, inv := plan(t, "prod")
	var secret inventory.Resource
	for _, s := range inv.OfType("kubernetes:core/v1:Secret") {
		if s.String("metadata.name") == "oms-prod-us-runtime" {
			secret = s
		}
	}
	require.NotEmpty(t, secret.Name)
	for _, server := range []struct{ typ, name string }{
		{"kubernetes:apps/v1:StatefulSet", "oms-prod-us-redis"},
		{"kubernetes:apps/v1:StatefulSet", "oms-prod-us-rabbitmq"},
		{"gcp:sql/user:User", "oms-prod-us-runtime-db-user"},
	} {
		assert.True(t, secret.Waits(inv, server.typ, server.name), "the runtime's Secret waits for %s %s", server.typ, server.name)
	}

	for _, key := range []string{"redis", "rabbitmq", "database"} {
		sf, err := LoadStackFile("..", "prod")
		require.NoError(t, err)
		sf.Values["omscloud:rotation"] = `{"` + key + `":1}`
		_, rotated, err := Plan(sf)
		require.NoError(t, err)
		var keepers []string
		for _, r := range rotated.OfType("random:index/randomPassword:RandomPassword") {
			if k, ok := r.Get("keepers"); ok && k != nil {
				keepers = append(keepers, r.Name)
			}
		}
		assert.Len(t, keepers, 1, "rotation.%s regenerates exactly one password: %v", key, keepers)
	}
}
