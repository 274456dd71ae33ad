package stacks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omscloud/omscloud/inventory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stateful are the resource types a dr.enabled toggle must leave exactly as they are.
var stateful = []string{"gcp:storage/bucket:Bucket", "gcp:kms/keyRing:KeyRing", "gcp:kms/cryptoKey:CryptoKey",
	"gcp:secretmanager/secret:Secret", "gcp:sql/databaseInstance:DatabaseInstance"}

// projectWith copies Pulumi.yaml and the stack files into a scratch project, replacing the given stack files.
func projectWith(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	src, err := FindProjectDir(".")
	require.NoError(t, err)
	matches, err := filepath.Glob(filepath.Join(src, "Pulumi*.yaml"))
	require.NoError(t, err)
	for _, m := range matches {
		data, err := os.ReadFile(m)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(m)), data, 0o644))
	}
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	return dir
}

func planFile(t *testing.T, dir, stack string, data []byte) *inventory.Inventory {
	t.Helper()
	sf, err := parseStackFile(dir, stack, data)
	require.NoError(t, err)
	_, inv, err := Plan(sf)
	require.NoError(t, err)
	return inv
}

// assertStatefulUnchanged: every bucket, key, secret and database instance keeps its URN and inputs.
func assertStatefulUnchanged(t *testing.T, before, after *inventory.Inventory) {
	t.Helper()
	byURN := map[string]inventory.Resource{}
	for _, r := range after.Resources {
		byURN[r.URN] = r
	}
	n := 0
	for _, typ := range stateful {
		for _, r := range before.OfType(typ) {
			n++
			a, ok := byURN[r.URN]
			if assert.True(t, ok, "%s is still declared", r.URN) {
				assert.Equal(t, r.Inputs, a.Inputs, "%s is unchanged", r.URN)
			}
		}
	}
	assert.Greater(t, n, 10)
}

func TestDisablingDRKeepsTheBackupBucketAndReleasesTheDRSiteExplicitly(t *testing.T) {
	dir := projectWith(t, nil)
	original, err := os.ReadFile(filepath.Join(dir, "Pulumi.prod-eu.yaml"))
	require.NoError(t, err)
	toggle, err := ToggleDR(dir, "prod-eu", false)
	require.NoError(t, err)

	assert.Equal(t, "europe-west4", toggle.Bucket.Location, "the bucket is in the DR region")
	assert.True(t, toggle.Pinned, "without DR the default would be the EU multi-region: pinned where it is")
	file := string(toggle.File)
	assert.True(t, strings.HasPrefix(file, "# Production, shared multi-tenant, EU"), "comments survive:\n%s", file)
	assert.Contains(t, file, "  omscloud:dr:\n    enabled: false\n")
	assert.Contains(t, file, "  # A bucket's location never changes: pinned where it was when dr.enabled was toggled.\n  omscloud:backup:\n    location: europe-west4\n")
	assert.Contains(t, file, "omscloud:edge:\n    provider: gcp", "the rest of the file is as it was")

	before := planFile(t, dir, "prod-eu", original)
	after := planFile(t, dir, "prod-eu", toggle.File)
	assertStatefulUnchanged(t, before, after)
	require.Len(t, toggle.Released, 1)
	assert.Contains(t, toggle.Released[0], "$omscloud:dr:DR$gcp:compute/globalAddress:GlobalAddress::oms-prod-eu-dr-ip", "the reserved DR address goes, explicitly")
}

func TestEnablingDRKeepsTheBackupBucketInTheMultiRegion(t *testing.T) {
	orig, err := os.ReadFile("../Pulumi.prod-eu.yaml")
	require.NoError(t, err)
	withoutDR := string(orig) + "  omscloud:dr:\n    enabled: false\n"
	dir := projectWith(t, map[string]string{"Pulumi.prod-eu.yaml": withoutDR})

	toggle, err := ToggleDR(dir, "prod-eu", true)
	require.NoError(t, err)
	assert.True(t, toggle.Pinned)
	assert.Equal(t, "eu", strings.ToLower(toggle.Bucket.Location))
	assert.Contains(t, string(toggle.File), "  omscloud:dr:\n    enabled: true\n")
	assert.Empty(t, toggle.Released)
	before := planFile(t, dir, "prod-eu", []byte(withoutDR))
	after := planFile(t, dir, "prod-eu", toggle.File)
	assertStatefulUnchanged(t, before, after)
	_, ok := after.Find("gcp:compute/globalAddress:GlobalAddress", "oms-prod-eu-dr-ip")
	assert.True(t, ok, "the DR site's reserved address is declared")

	// Toggled back: the pin stays, nothing moves.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.prod-eu.yaml"), toggle.File, 0o644))
	back, err := ToggleDR(dir, "prod-eu", false)
	require.NoError(t, err)
	assert.False(t, back.Pinned, "already pinned")
	assert.Equal(t, toggle.Bucket, back.Bucket)
}

func TestToggleDRRefuses(t *testing.T) {
	orig, err := os.ReadFile("../Pulumi.prod-eu.yaml")
	require.NoError(t, err)
	dir := projectWith(t, map[string]string{"Pulumi.active.yaml": string(orig) + "  omscloud:dr:\n    active: true\n"})
	tests := []struct {
		stack  string
		enable bool
		want   string
	}{
		{"sandbox", true, "only production stacks have a DR site"},
		{"prod-eu", true, "already has dr.enabled true"},
		{"active", false, "traffic is on the DR site"},
		{"nope", false, `stack "nope" has no Pulumi.nope.yaml`},
	}
	for _, tc := range tests {
		t.Run(tc.stack, func(t *testing.T) {
			_, err := ToggleDR(dir, tc.stack, tc.enable)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestDREnvironmentIgnoresThePrimarysBackupPin(t *testing.T) {
	primary := loadConfig(t, "prod-eu")
	primary.Backup = BackupConfig{Location: "europe-west4"}
	dr, err := DRConfigFor(primary)
	require.NoError(t, err)
	assert.Empty(t, dr.Backup, "europe-west4 is the DR environment's own region: its bucket takes the default")
	bucket, _, _ := dr.backupPlacement()
	assert.Equal(t, primary.Region.StorageLocation, bucket.Location)
}
