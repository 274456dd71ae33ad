package stacks

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func loadConfig(t *testing.T, stack string) *Config {
	t.Helper()
	dir, err := FindProjectDir(".")
	require.NoError(t, err)
	sf, err := LoadStackFile(dir, stack)
	require.NoError(t, err)
	cfg, err := sf.Config()
	require.NoError(t, err)
	return cfg
}

func TestDRConfigMovesEveryShippedProductionStackToItsDRSite(t *testing.T) {
	for _, stack := range shippedStacks(t) {
		primary := loadConfig(t, stack)
		if !primary.DR.Enabled {
			continue
		}
		t.Run(stack, func(t *testing.T) {
			before := *primary
			beforeZones, beforeLabels := slices.Clone(primary.Zones), len(primary.Labels)

			dr, err := DRConfigFor(primary)
			require.NoError(t, err)

			site := primary.Region.DR
			assert.Equal(t, stack+"-dr", dr.Stack)
			assert.Equal(t, site.GCPRegion, dr.Region.Primary.GCPRegion, "the DR environment runs in the DR region")
			assert.Len(t, dr.Zones, len(primary.Zones), "as many zones as the primary")
			for _, z := range dr.Zones {
				assert.Contains(t, site.Zones, z)
			}
			assert.False(t, dr.DR.Enabled, "a DR environment has no DR site of its own")
			assert.Empty(t, dr.DR.GCPRegion)
			assert.Equal(t, primary.NamePrefix()+"-dr", dr.NamePrefix())
			assert.LessOrEqual(t, len(dr.NamePrefix()), 20)
			assert.Equal(t, stack, dr.Labels["dr-of"])
			assert.NotEqual(t, primary.Region.Primary.GCPRegion, dr.Database.BackupLocation, "DR backups avoid the lost region")

			// Sized like production, same accounts, release and protection.
			assert.Equal(t, primary.Sizing, dr.Sizing)
			assert.Equal(t, primary.Accounts, dr.Accounts)
			assert.Equal(t, primary.Runtime.Image, dr.Runtime.Image)
			assert.Equal(t, primary.Database.Availability, dr.Database.Availability)
			assert.True(t, dr.DeletionProtection)
			assert.Equal(t, primary.Edge.Domain, dr.Edge.Domain)

			// The primary's config is untouched.
			assert.Equal(t, before.Region, primary.Region)
			assert.Equal(t, beforeZones, primary.Zones)
			assert.Len(t, primary.Labels, beforeLabels)
			assert.Equal(t, before.RegionID, primary.RegionID)
			assert.True(t, primary.DR.Enabled)
		})
	}
}

func TestDRConfigRefusesStacksWithoutDR(t *testing.T) {
	sandbox := loadConfig(t, "sandbox")
	_, err := DRConfigFor(sandbox)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no cold DR site")

	prod := loadConfig(t, "prod-eu")
	prod.DR.GCPRegion = "europe-west3"
	_, err = DRConfigFor(prod)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "omscloud:dr.region")
	assert.Contains(t, err.Error(), "regions/")

	_, err = DRConfigFor(nil)
	assert.Error(t, err)
}

func TestDRConfigKeepsSingleRegionBackupsOutOfTheLostRegion(t *testing.T) {
	prod := loadConfig(t, "prod-eu")
	prod.Database.BackupLocation = prod.Region.Primary.GCPRegion
	dr, err := DRConfigFor(prod)
	require.NoError(t, err)
	assert.Equal(t, prod.Region.DR.GCPRegion, dr.Database.BackupLocation)
}

// drMocks answers the primary's StackReference with the outputs a deployed primary has.
type drMocks struct {
	*inventory.Mocks
	outputs resource.PropertyMap
}

func (m drMocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	if args.TypeToken == "pulumi:pulumi:StackReference" {
		return args.Name, resource.PropertyMap{
			"name":              args.Inputs["name"],
			"outputs":           resource.NewObjectProperty(m.outputs),
			"secretOutputNames": resource.NewArrayProperty(nil),
		}, nil
	}
	return m.Mocks.NewResource(args)
}

var gcpLocation = regexp.MustCompile(`^[a-z]+-[a-z]+[0-9]+(-[a-z])?$`)

// locations collects every value that names a GCP region or zone, at any depth.
func locations(v any) []string {
	switch x := v.(type) {
	case string:
		if gcpLocation.MatchString(x) {
			return []string{x}
		}
	case map[string]any:
		var out []string
		for _, e := range x {
			out = append(out, locations(e)...)
		}
		return out
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, locations(e)...)
		}
		return out
	}
	return nil
}

func TestDRProgramDeclaresOnlyInTheDRRegion(t *testing.T) {
	dir, err := FindProjectDir(".")
	require.NoError(t, err)
	sf, err := LoadStackFile(dir, "prod-eu")
	require.NoError(t, err)
	primary, err := sf.Config()
	require.NoError(t, err)

	mocks := drMocks{Mocks: &inventory.Mocks{Project: Project, Stack: "prod-eu-dr"}, outputs: resource.PropertyMap{
		OutputBackupURL:       resource.NewProperty("gs://oms-prod-eu-backups"),
		OutputBackupKeySecret: resource.NewProperty("projects/omscloud-prod-eu/secrets/oms-prod-eu-backup-key"),
		OutputAccounts:        resource.NewProperty([]resource.PropertyValue{resource.NewProperty("tailspin"), resource.NewProperty("adventureworks"), resource.NewProperty("litware")}),
		OutputDRAddress:       resource.NewProperty("203.0.113.99"),
		OutputCertificateMap:  resource.NewProperty(prodEUCertificateMap),
	}}
	values := map[string]string{DRNamespace + ":" + DRKeyRestore: "1"}
	for k, v := range sf.Values {
		values[k] = v
	}
	withConfig := func(info *pulumi.RunInfo) { info.Config, info.ConfigSecretKeys = values, sf.SecretKeys }
	require.NoError(t, pulumi.RunErr(DRProgram("prod-eu"), pulumi.WithMocks(Project, "prod-eu-dr", mocks), withConfig))
	inv := inventory.New("prod-eu-dr", mocks.Resources())
	require.NotEmpty(t, inv.Resources)

	drSite := primary.Region.DR
	for _, r := range inv.Resources {
		for _, loc := range locations(r.Inputs) {
			ok := loc == drSite.GCPRegion || slices.Contains(drSite.Zones, loc)
			assert.True(t, ok, "%s %s names %s, outside the DR site %s", r.Type, r.Name, loc, drSite.GCPRegion)
		}
		if !strings.HasPrefix(r.Type, "pulumi:providers:") {
			assert.True(t, strings.HasPrefix(r.Name, "oms-prod-eu-dr"), "%s is named under the DR prefix", r.Name)
		}
	}

	// The DR load balancer answers on the reserved address with the primary's certificates (a global map); the
	// primary keeps the certificates and the hostnames' records, so the DR stack declares none.
	proxy := only(t, inv, "gcp:compute/targetHttpsProxy:TargetHttpsProxy")
	assert.Equal(t, "//certificatemanager.googleapis.com/"+prodEUCertificateMap, proxy.String("certificateMap"))
	for _, r := range inv.OfType("gcp:compute/globalForwardingRule:GlobalForwardingRule") {
		assert.Equal(t, "203.0.113.99", r.String("ipAddress"), r.Name)
	}
	for _, r := range inv.Resources {
		assert.False(t, strings.HasPrefix(r.Type, "gcp:certificatemanager/") || strings.HasPrefix(r.Type, "gcp:dns/"),
			"the primary owns %s %s", r.Type, r.Name)
	}

	// The accounts come from the primary's state (litware was added after the stack file was read).
	var accounts []string
	for _, db := range inv.OfType("gcp:sql/database:Database") {
		if a, ok := strings.CutPrefix(db.String("name"), "acct_"); ok {
			accounts = append(accounts, a)
		}
	}
	assert.ElementsMatch(t, []string{"tailspin", "adventureworks", "litware"}, accounts)

	// The Cloud SQL instance is named for this DR generation: a deleted instance's name stays taken for a week.
	generation := only(t, inv, "random:index/randomId:RandomId")
	assert.Equal(t, "oms-prod-eu-dr-generation", generation.Name)
	assert.Equal(t, 3.0, generation.Inputs["byteLength"])
	assert.Equal(t, "oms-prod-eu-dr-pg-00112233445566778899aabbccddeeff", only(t, inv, "gcp:sql/databaseInstance:DatabaseInstance").String("name"), "the mocks' random hex")
	// The database alerts watch this generation's instance: their selector is not the primary's fixed name.
	instance := only(t, inv, "gcp:sql/databaseInstance:DatabaseInstance")
	databaseID := instance.String("project") + ":" + instance.String("name")
	for _, sel := range databaseSelectors(t, inv) {
		assert.Regexp(t, sel, databaseID, "the database alerts watch the instance of this generation")
	}

	restore, ok := inv.Find("kubernetes:batch/v1:Job", "oms-prod-eu-dr-restore-1")
	require.True(t, ok, "restore run 1 is declared")
	assert.Equal(t, []string{"restore", "--from", "gs://oms-prod-eu-backups", "--latest"}, restore.Strings("spec.template.spec.containers[0].args"))
	assert.True(t, restore.Bool("spec.template.spec.securityContext.runAsNonRoot"))
	assert.Equal(t, "oms-prod-eu-dr-backup", restore.String("spec.template.spec.serviceAccountName"), "runs as the backup identity")
	env, _ := restore.Get("spec.template.spec.containers[0].env")
	assert.Contains(t, env, map[string]any{"name": "OMS_BACKUP_KEY_FILE", "value": "/var/run/oms-backup/key"})
	assert.Equal(t, "oms-prod-eu-dr-db-ca", restore.String("spec.template.spec.volumes[1].configMap.name"), "verifies the DR instance")
	assert.Equal(t, "oms-prod-eu-dr-primary-key", restore.String("spec.template.spec.volumes[2].secret.secretName"))
	_, set := restore.Get("spec.ttlSecondsAfterFinished")
	assert.False(t, set, "a finished restore Job stays, so no refresh finds it gone and no up creates it again")
	for _, j := range inv.OfType("kubernetes:batch/v1:Job") {
		assert.NotContains(t, j.Name, "failback", "no failback backup unless asked")
	}

	// The primary's archive key reaches the Job only as a secret.
	key, ok := inv.Find("kubernetes:core/v1:Secret", "oms-prod-eu-dr-primary-key")
	require.True(t, ok)
	data, _ := key.Get("stringData")
	assert.Equal(t, inventory.Secret, data)

	// The DR environment reads the primary's archives (and may not write them).
	grant, ok := inv.Find("gcp:storage/bucketIAMMember:BucketIAMMember", "oms-prod-eu-dr-restore-read-archives")
	require.True(t, ok)
	assert.Equal(t, "oms-prod-eu-backups", grant.String("bucket"))
	assert.Equal(t, "roles/storage.objectViewer", grant.String("role"))
}

const prodEUCertificateMap = "projects/omscloud-prod-eu/locations/global/certificateMaps/oms-prod-eu"

// runDR runs the DR program of prod-eu with the primary's outputs, and returns its mocks and error.
func runDR(t *testing.T, outputs resource.PropertyMap) (drMocks, error) {
	t.Helper()
	return runDROf(t, "prod-eu", outputs, nil)
}

// runDROf runs the DR program of a shipped or test-only stack with the primary's outputs and DR settings
// (DRNamespace keys).
func runDROf(t *testing.T, stack string, outputs resource.PropertyMap, settings map[string]string) (drMocks, error) {
	t.Helper()
	return runDROfStackFile(t, stackFile(t, stack), outputs, settings)
}

// runDROfStackFile is runDROf with the primary's stack file as given (a test may have changed its values).
func runDROfStackFile(t *testing.T, sf *StackFile, outputs resource.PropertyMap, settings map[string]string) (drMocks, error) {
	t.Helper()
	stack := sf.Stack
	values := maps.Clone(sf.Values)
	for k, v := range settings {
		values[DRNamespace+":"+k] = v
	}
	mocks := drMocks{Mocks: &inventory.Mocks{Project: Project, Stack: DRStackName(stack)}, outputs: outputs}
	withConfig := func(info *pulumi.RunInfo) { info.Config, info.ConfigSecretKeys = values, sf.SecretKeys }
	return mocks, pulumi.RunErr(DRProgram(stack), pulumi.WithMocks(Project, DRStackName(stack), mocks), withConfig)
}

func TestDRProgramNeedsThePrimarysCertificateMap(t *testing.T) {
	mocks, err := runDR(t, resource.PropertyMap{
		OutputBackupURL:       resource.NewProperty("gs://oms-prod-eu-backups"),
		OutputBackupKeySecret: resource.NewProperty("projects/omscloud-prod-eu/secrets/oms-prod-eu-backup-key"),
		OutputDRAddress:       resource.NewProperty("203.0.113.99"),
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exports no certificateMap")
	assert.Contains(t, err.Error(), "Run `pulumi up` on prod-eu first")
	for _, r := range mocks.Resources() {
		assert.False(t, strings.HasPrefix(r.Type, "gcp:"), "nothing is declared: %s", r.Name)
	}
}

func TestDRProgramNeedsTheBackupBucket(t *testing.T) {
	mocks, err := runDR(t, resource.PropertyMap{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exports no backupUrl")
	for _, r := range mocks.Resources() {
		assert.False(t, strings.HasPrefix(r.Type, "gcp:"), "nothing is declared without a backup to restore: %s", r.Name)
	}
}

func TestCloudflareDREnvironmentRunsOnlyTheConnectorOfThePredeclaredTunnel(t *testing.T) {
	dir, err := FindProjectDir(".")
	require.NoError(t, err)
	sf, err := LoadStackFile(dir, "acme-prod-eu")
	require.NoError(t, err)
	mocks := drMocks{Mocks: &inventory.Mocks{Project: Project, Stack: "acme-prod-eu-dr"}, outputs: resource.PropertyMap{
		OutputBackupURL:       resource.NewProperty("gs://acme-prod-eu-backups"),
		OutputBackupKeySecret: resource.NewProperty("projects/acme-oms-prod-eu/secrets/acme-prod-eu-backup-key"),
		OutputAccounts:        resource.NewProperty([]resource.PropertyValue{resource.NewProperty("acme-retail")}),
		OutputDRTunnelToken:   resource.MakeSecret(resource.NewProperty("dr-tunnel-token-value")),
	}}
	withConfig := func(info *pulumi.RunInfo) { info.Config, info.ConfigSecretKeys = sf.Values, sf.SecretKeys }
	require.NoError(t, pulumi.RunErr(DRProgram("acme-prod-eu"), pulumi.WithMocks(Project, "acme-prod-eu-dr", mocks), withConfig))
	inv := inventory.New("acme-prod-eu-dr", mocks.Resources())

	for _, r := range inv.Resources {
		assert.False(t, strings.HasPrefix(r.Type, "cloudflare:") || r.Type == "pulumi:providers:cloudflare",
			"the primary owns DNS, the load balancer and the DR tunnel; the DR environment declares %s %s", r.Type, r.Name)
	}
	token, ok := inv.Find("kubernetes:core/v1:Secret", "acme-prod-eu-dr-edge-cloudflared-token")
	require.True(t, ok, "the connector's token Secret")
	assert.Equal(t, inventory.Secret, token.String("stringData"))
	connectors := 0
	for _, d := range inv.OfType("kubernetes:apps/v1:Deployment") {
		if strings.Contains(d.Name, "cloudflared") {
			connectors++
		}
	}
	assert.Equal(t, 1, connectors)
}

func TestDRActiveNeedsADRSite(t *testing.T) {
	values := map[string]string{
		"omscloud:environment": "sandbox", "omscloud:region": "eu", "omscloud:project": "omscloud-sbx-eu",
		"omscloud:edge":    `{"domain":"a.example.com"}`,
		"omscloud:runtime": `{"image":"oms:1.0.0"}`, "omscloud:dr": `{"active":true}`,
	}
	_, err := ParseConfig("s", values, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "omscloud:dr.active: is true but dr.enabled is false")
}

// runDRWith runs the DR program of prod-eu with DR settings and a deployed primary's outputs.
func runDRWith(t *testing.T, settings map[string]string) *inventory.Inventory {
	t.Helper()
	dir, err := FindProjectDir(".")
	require.NoError(t, err)
	sf, err := LoadStackFile(dir, "prod-eu")
	require.NoError(t, err)
	mocks := drMocks{Mocks: &inventory.Mocks{Project: Project, Stack: "prod-eu-dr"}, outputs: resource.PropertyMap{
		OutputBackupURL:       resource.NewProperty("gs://oms-prod-eu-backups"),
		OutputBackupKeySecret: resource.NewProperty("projects/omscloud-prod-eu/secrets/oms-prod-eu-backup-key"),
		OutputDRAddress:       resource.NewProperty("203.0.113.99"),
		OutputCertificateMap:  resource.NewProperty(prodEUCertificateMap),
	}}
	values := map[string]string{}
	for k, v := range sf.Values {
		values[k] = v
	}
	for k, v := range settings {
		values[DRNamespace+":"+k] = v
	}
	withConfig := func(info *pulumi.RunInfo) { info.Config, info.ConfigSecretKeys = values, sf.SecretKeys }
	require.NoError(t, pulumi.RunErr(DRProgram("prod-eu"), pulumi.WithMocks(Project, "prod-eu-dr", mocks), withConfig))
	return inventory.New("prod-eu-dr", mocks.Resources())
}

func TestDRProgramRunsEachRestoreAndFailbackOnce(t *testing.T) {
	tests := []struct {
		name     string
		settings map[string]string
		jobs     map[string][]string
	}{
		{"provision only", map[string]string{DRKeyRestore: "0"}, map[string][]string{}},
		{"first restore", map[string]string{DRKeyRestore: "1"}, map[string][]string{
			"oms-prod-eu-dr-restore-1": {"restore", "--from", "gs://oms-prod-eu-backups", "--latest"}}},
		{"forced second restore", map[string]string{DRKeyRestore: "2", DRKeyForceRestore: "true"}, map[string][]string{
			"oms-prod-eu-dr-restore-2": {"restore", "--from", "gs://oms-prod-eu-backups", "--latest", "--force"}}},
		{"failback after a restore", map[string]string{DRKeyRestore: "1", DRKeyFailback: "1"}, map[string][]string{
			"oms-prod-eu-dr-restore-1":  {"restore", "--from", "gs://oms-prod-eu-backups", "--latest"},
			"oms-prod-eu-dr-failback-1": {"backup", "--tier", "monthly", "--to", "gs://oms-prod-eu-backups"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := runDRWith(t, tc.settings)
			got := map[string][]string{}
			for _, j := range inv.OfType("kubernetes:batch/v1:Job") {
				if strings.Contains(j.Name, "-restore-") || strings.Contains(j.Name, "-failback-") {
					got[j.Name] = j.Strings("spec.template.spec.containers[0].args")
				}
			}
			assert.Equal(t, tc.jobs, got)
			_, writes := inv.Find("gcp:storage/bucketIAMMember:BucketIAMMember", "oms-prod-eu-dr-failback-write-archives")
			assert.Equal(t, tc.settings[DRKeyFailback] != "", writes, "the DR identity may add archives to the primary's bucket only for a failback")
		})
	}
	inv := runDRWith(t, map[string]string{DRKeyFailback: "1"})
	failback, ok := inv.Find("kubernetes:batch/v1:Job", "oms-prod-eu-dr-failback-1")
	require.True(t, ok)
	env, _ := failback.Get("spec.template.spec.containers[0].env")
	assert.Contains(t, env, map[string]any{"name": "OMS_BACKUP_KEY_FILE", "value": "/var/run/oms-backup/key"}, "written with the primary's key")
	assert.Contains(t, env, map[string]any{"name": "OMS_RELEASE", "value": loadConfig(t, "prod-eu").Runtime.Image})
	grant, _ := inv.Find("gcp:storage/bucketIAMMember:BucketIAMMember", "oms-prod-eu-dr-failback-write-archives")
	assert.Equal(t, "roles/storage.objectCreator", grant.String("role"), "adds archives, never overwrites or deletes one")

}

// TestExistingDRStacksKeepTheirRestoreState: the restore and failback Jobs, the primary's archive key and the grants on
// the primary's bucket moved from stacks/ into components/restore. A DR stack deployed before holds them under the
// URNs below (the DR environment parented the grants, the rest sat at the stack's root); each is aliased to its old
// URN, so the next up moves its state instead of creating a new one and deleting the old (which would run a restore
// again over the live DR database).
func TestExistingDRStacksKeepTheirRestoreState(t *testing.T) {
	inv := runDRWith(t, map[string]string{DRKeyRestore: "1", DRKeyFailback: "1"})
	const stack = "urn:pulumi:prod-eu-dr::omscloud::"
	before := []string{
		stack + "kubernetes:batch/v1:Job::oms-prod-eu-dr-restore-1",
		stack + "kubernetes:batch/v1:Job::oms-prod-eu-dr-failback-1",
		stack + "kubernetes:core/v1:Secret::oms-prod-eu-dr-primary-key",
		stack + "omscloud:environment:Environment$gcp:storage/bucketIAMMember:BucketIAMMember::oms-prod-eu-dr-restore-read-archives",
		stack + "omscloud:environment:Environment$gcp:storage/bucketIAMMember:BucketIAMMember::oms-prod-eu-dr-failback-write-archives",
	}
	for _, old := range before {
		u, err := resource.ParseURN(old)
		require.NoError(t, err)
		r, ok := inv.Find(string(u.Type()), u.Name())
		require.True(t, ok, old)
		assert.Equal(t, stack+"omscloud:restore:Restore$"+string(u.Type())+"::"+u.Name(), r.URN, "declared in the restore component")
		assert.Contains(t, r.Aliases, old, "%s keeps the state it has", u.Name())
	}
}

func TestDRTeardownReleasesEverythingButTheKeys(t *testing.T) {
	live := runDRWith(t, map[string]string{DRKeyRestore: "1"})
	sql := only(t, live, "gcp:sql/databaseInstance:DatabaseInstance")
	assert.True(t, sql.Bool("deletionProtection"), "a live DR database is protected like production")
	assert.True(t, sql.Bool("settings.deletionProtectionEnabled"))

	down := runDRWith(t, map[string]string{DRKeyRestore: "1", DRKeyTeardown: "true"})
	sql = only(t, down, "gcp:sql/databaseInstance:DatabaseInstance")
	assert.False(t, sql.Bool("deletionProtection"))
	assert.False(t, sql.Bool("settings.deletionProtectionEnabled"))
	assert.False(t, only(t, down, "gcp:container/cluster:Cluster").Bool("deletionProtection"))
	for _, b := range down.OfType("gcp:storage/bucket:Bucket") {
		assert.True(t, b.Bool("forceDestroy"), "%s: its archives are superseded by the failback archive in the primary's bucket", b.Name)
	}
	assert.Len(t, down.OfType("gcp:kms/keyRing:KeyRing"), len(live.OfType("gcp:kms/keyRing:KeyRing")), "the keys stay declared (and retained on delete)")
	_, ok := down.Find("kubernetes:batch/v1:Job", "oms-prod-eu-dr-restore-1")
	assert.True(t, ok, "the teardown changes no Job")
}
