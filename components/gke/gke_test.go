package gke

import (
	"strings"
	"sync"
	"testing"

	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var zones = []string{"us-central1-a", "us-central1-b", "us-central1-c"}

func validArgs() Args {
	return Args{
		Name: "oms-prod-us", Project: "omscloud-prod-us", Region: "us-central1", Zones: zones,
		Network: pulumi.String("vpc"), Subnetwork: pulumi.String("subnet"),
		PodsRangeName: "pods", ServicesRangeName: "services", MasterCIDR: "172.16.0.0/28",
		MasterAuthorizedNetworks: []AuthorizedNetwork{{Name: "ci", CIDR: "198.51.100.0/24"}},
		ReleaseChannel:           "STABLE",
		Maintenance:              MaintenanceWindow{Days: []string{"saturday", "sunday"}, StartHourUTC: 2, DurationHours: 6},
		DeletionProtection:       true,
		Labels:                   map[string]string{"environment": "production"},
		ServiceAgent:             pulumi.String(gkeAgent),
		Pools: []PoolArgs{
			{Name: "web", MachineType: "e2-standard-4", MinNodesPerZone: 1, MaxNodesPerZone: 5, DiskSizeGB: 100,
				Labels: map[string]string{"omscloud.io/pool": "web"}},
			{Name: "stateful", MachineType: "n2-standard-4", MinNodesPerZone: 1, MaxNodesPerZone: 2, DiskSizeGB: 100,
				Taints: []Taint{{Key: "omscloud.io/stateful", Value: "true", Effect: "NO_SCHEDULE"}}},
		},
	}
}

func evaluate(t *testing.T, args Args) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Evaluate(func(ctx *pulumi.Context) error {
		_, err := New(ctx, "gke", &args)
		return err
	}, "omscloud", "test", nil, nil)
	require.NoError(t, err)
	return inv
}

func cluster(t *testing.T, inv *inventory.Inventory) inventory.Resource {
	c, ok := inv.Find("gcp:container/cluster:Cluster", "gke")
	require.True(t, ok)
	return c
}

func TestRegionalPrivateCluster(t *testing.T) {
	c := cluster(t, evaluate(t, validArgs()))
	assert.Equal(t, "us-central1", c.String("location"), "regional: the control plane is replicated across zones")
	assert.Equal(t, zones, c.Strings("nodeLocations"))
	assert.True(t, c.Bool("privateClusterConfig.enablePrivateNodes"), "nodes have no public IP")
	assert.Equal(t, "172.16.0.0/28", c.String("privateClusterConfig.masterIpv4CidrBlock"))
	assert.Equal(t, "198.51.100.0/24", c.String("masterAuthorizedNetworksConfig.cidrBlocks[0].cidrBlock"))
	assert.False(t, c.Bool("masterAuthorizedNetworksConfig.gcpPublicCidrsAccessEnabled"))
	assert.Equal(t, "VPC_NATIVE", c.String("networkingMode"))
	assert.Equal(t, "pods", c.String("ipAllocationPolicy.clusterSecondaryRangeName"))
}

func TestSecurityBaseline(t *testing.T) {
	c := cluster(t, evaluate(t, validArgs()))
	assert.Equal(t, "omscloud-prod-us.svc.id.goog", c.String("workloadIdentityConfig.workloadPool"), "Workload Identity")
	assert.Equal(t, "ADVANCED_DATAPATH", c.String("datapathProvider"), "Dataplane V2 enforces NetworkPolicies")
	assert.True(t, c.Bool("enableShieldedNodes"))
	assert.True(t, c.Bool("removeDefaultNodePool"))
	assert.True(t, c.Bool("deletionProtection"))
	assert.Equal(t, "STABLE", c.String("releaseChannel.channel"))
	assert.Equal(t, "FREQ=WEEKLY;BYDAY=SA,SU", c.String("maintenancePolicy.recurringWindow.recurrence"))
	assert.Equal(t, "2025-01-04T02:00:00Z", c.String("maintenancePolicy.recurringWindow.startTime"))
	assert.Equal(t, "2025-01-04T08:00:00Z", c.String("maintenancePolicy.recurringWindow.endTime"))
	assert.True(t, c.Bool("monitoringConfig.managedPrometheus.enabled"), "the collectors the metrics NetworkPolicy admits")
}

// gkeAgent is the Kubernetes Engine service agent the secrets key is granted to.
const gkeAgent = "service-123456789012@container-engine-robot.iam.gserviceaccount.com"

func TestSecretsEncryptedWithARegionalCMEKKey(t *testing.T) {
	inv := evaluate(t, validArgs())
	c := cluster(t, inv)
	ring, ok := inv.Find("gcp:kms/keyRing:KeyRing", "gke-keyring")
	require.True(t, ok)
	assert.Equal(t, "us-central1", ring.String("location"), "GKE takes a key in the cluster's region")
	key, ok := inv.Find("gcp:kms/cryptoKey:CryptoKey", "gke-secrets-key")
	require.True(t, ok)
	assert.Equal(t, "7776000s", key.String("rotationPeriod"), "rotated every 90 days")
	assert.Equal(t, "ENCRYPTED", c.String("databaseEncryption.state"))
	assert.Equal(t, "gke-secrets-key-id", c.String("databaseEncryption.keyName"))
	grant, ok := inv.Find("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "gke-secrets-key-gke-agent")
	require.True(t, ok)
	assert.Equal(t, "serviceAccount:"+gkeAgent, grant.String("member"))
	assert.Equal(t, "roles/cloudkms.cryptoKeyEncrypterDecrypter", grant.String("role"))
	assert.Contains(t, c.DependsOn, grant.URN, "the agent can use the key before the cluster asks it to")

	args := validArgs()
	args.ServiceAgent = nil
	require.ErrorContains(t, args.Validate(), "ServiceAgent is required")
}

// A change that would replace the cluster (its network, ranges or control-plane range) fails the preview in
// production instead of planning a delete that GKE refuses mid-update.
func TestClusterIsProtectedInProduction(t *testing.T) {
	assert.True(t, cluster(t, evaluate(t, validArgs())).Protected)
	args := validArgs()
	args.DeletionProtection = false
	assert.False(t, cluster(t, evaluate(t, args)).Protected, "sandbox and a DR teardown may replace or delete it")
}

func TestDeletionProtectionFollowsArgs(t *testing.T) {
	args := validArgs()
	args.DeletionProtection = false
	assert.False(t, cluster(t, evaluate(t, args)).Bool("deletionProtection"))
}

func TestNodePoolsSpanEveryZoneWithAutoscalingBounds(t *testing.T) {
	inv := evaluate(t, validArgs())
	pools := inv.OfType("gcp:container/nodePool:NodePool")
	require.Len(t, pools, 2)
	want := map[string][2]float64{"web": {1, 5}, "stateful": {1, 2}}
	for _, p := range pools {
		name := p.String("name")
		assert.Equal(t, zones, p.Strings("nodeLocations"), name)
		lo, _ := p.Number("autoscaling.minNodeCount")
		hi, _ := p.Number("autoscaling.maxNodeCount")
		assert.Equal(t, want[name], [2]float64{lo, hi}, name)
		assert.Equal(t, "BALANCED", p.String("autoscaling.locationPolicy"), "keep zones even")
		assert.True(t, p.Bool("management.autoRepair"))
		assert.True(t, p.Bool("management.autoUpgrade"))
		surge, _ := p.Number("upgradeSettings.maxSurge")
		unavailable, _ := p.Number("upgradeSettings.maxUnavailable")
		assert.Equal(t, [2]float64{1, 0}, [2]float64{surge, unavailable}, "surge upgrades never lower capacity")
		assert.Equal(t, "GKE_METADATA", p.String("nodeConfig.workloadMetadataConfig.mode"))
		assert.True(t, p.Bool("nodeConfig.shieldedInstanceConfig.enableSecureBoot"))
		assert.Equal(t, "oms-prod-us-nodes@omscloud-prod-us.iam.gserviceaccount.com", p.String("nodeConfig.serviceAccount"),
			"nodes run as the dedicated least-privilege account, not the default compute one")
		assert.Equal(t, "oms-prod-us", p.String("cluster"))
	}
	stateful, _ := inv.Find("gcp:container/nodePool:NodePool", "gke-stateful")
	assert.Equal(t, "NO_SCHEDULE", stateful.String("nodeConfig.taints[0].effect"))
}

func TestNodeServiceAccountHasOnlyNodeRoles(t *testing.T) {
	inv := evaluate(t, validArgs())
	var roles []string
	for _, m := range inv.OfType("gcp:projects/iAMMember:IAMMember") {
		roles = append(roles, m.String("role"))
		assert.Equal(t, "serviceAccount:oms-prod-us-nodes@omscloud-prod-us.iam.gserviceaccount.com", m.String("member"))
	}
	assert.ElementsMatch(t, nodeRoles, roles)
	for _, r := range roles {
		assert.NotContains(t, []string{"roles/editor", "roles/owner"}, r)
	}
}

func TestNodesReadOnlyTheRepositoriesTheyPull(t *testing.T) {
	args := validArgs()
	args.Images = []string{
		"us-docker.pkg.dev/omscloud-release/oms/oms@sha256:9c41d7e3a05b86f2e1d4c7b093a8f5e26d1b4c8a7f03e95d2b6c1a8e4f7d0b39",
		"us-docker.pkg.dev/omscloud-release/oms/oms:1.4.2", // the same repository: one grant
		"europe-west1-docker.pkg.dev/acme-builds/hotfix/oms:1.4.3",
	}
	inv := evaluate(t, args)
	var got []Repository
	for _, m := range inv.OfType("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember") {
		assert.Equal(t, "roles/artifactregistry.reader", m.String("role"))
		assert.Equal(t, "serviceAccount:oms-prod-us-nodes@omscloud-prod-us.iam.gserviceaccount.com", m.String("member"))
		assert.Equal(t, "gke", m.Parent)
		got = append(got, Repository{m.String("location"), m.String("project"), m.String("repository")})
	}
	assert.ElementsMatch(t, []Repository{{"us", "omscloud-release", "oms"}, {"europe-west1", "acme-builds", "hotfix"}}, got)
	for _, m := range inv.OfType("gcp:projects/iAMMember:IAMMember") {
		assert.NotEqual(t, "roles/artifactregistry.reader", m.String("role"), "no read on every registry of the project")
	}
}

func TestKubeconfigAndProvider(t *testing.T) {
	inv := evaluate(t, validArgs())
	p, ok := inv.Find("pulumi:providers:kubernetes", "gke-k8s")
	require.True(t, ok)
	assert.Equal(t, inventory.Secret, p.String("kubeconfig"), "the kubeconfig never appears in plain text")
	assert.Equal(t, "gke", p.Parent)

	kc := Kubeconfig("c", "203.0.113.10", "Q0E=")
	assert.Contains(t, kc, "server: https://203.0.113.10")
	assert.Contains(t, kc, "command: gke-gcloud-auth-plugin", "no long-lived credential in the kubeconfig")
	assert.NotContains(t, strings.ToLower(kc), "token")
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Args)
		want   string
	}{
		{"one zone", func(a *Args) { a.Zones = zones[:1] }, "at least 2"},
		{"no pools", func(a *Args) { a.Pools = nil }, "at least one pool"},
		{"bad bounds", func(a *Args) { a.Pools[0].MaxNodesPerZone = 0 }, "inconsistent"},
		{"duplicate pool", func(a *Args) { a.Pools[1].Name = "web" }, "unique"},
		{"release channel", func(a *Args) { a.ReleaseChannel = "NIGHTLY" }, "ReleaseChannel"},
		{"long name", func(a *Args) { a.Name = strings.Repeat("x", 41) }, "40 characters"},
		{"image outside Artifact Registry", func(a *Args) { a.Images = []string{"redis:7.2.5"} }, "Images[0]: \"redis:7.2.5\" is pulled from docker.io"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := validArgs()
			args.Pools = append([]PoolArgs(nil), args.Pools...)
			tt.mutate(&args)
			err := args.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// optionMocks records the ignoreChanges option of every resource, which the inventory does not keep.
type optionMocks struct {
	*inventory.Mocks
	mu     sync.Mutex
	ignore map[string][]string
}

func (m *optionMocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	m.mu.Lock()
	m.ignore[args.Name] = args.RegisterRPC.GetIgnoreChanges()
	m.mu.Unlock()
	return m.Mocks.NewResource(args)
}

func TestNodePoolsStartAtTheirMinimumInEveryZone(t *testing.T) {
	mocks := &optionMocks{Mocks: &inventory.Mocks{Project: "omscloud", Stack: "test"}, ignore: map[string][]string{}}
	args := validArgs()
	args.Pools[1].MinNodesPerZone = 2
	require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := New(ctx, "gke", &args)
		return err
	}, pulumi.WithMocks("omscloud", "test", mocks)))
	inv := inventory.New("test", mocks.Resources())

	want := map[string]float64{"gke-web": 1, "gke-stateful": 2}
	for _, p := range inv.OfType("gcp:container/nodePool:NodePool") {
		initial, ok := p.Number("initialNodeCount")
		require.True(t, ok, "%s sets initialNodeCount", p.Name)
		lo, _ := p.Number("autoscaling.minNodeCount")
		assert.Equal(t, want[p.Name], initial, "%s starts at its minimum per zone, so every zone has nodes (and NEGs)", p.Name)
		assert.Equal(t, lo, initial, p.Name)
		assert.Equal(t, []string{"initialNodeCount"}, mocks.ignore[p.Name],
			"%s ignores later changes to initialNodeCount, which would force a new pool", p.Name)
	}
}
