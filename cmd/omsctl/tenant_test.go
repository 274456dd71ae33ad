package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/omscloud/omscloud/stacks"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// project copies the repository's Pulumi.yaml and Pulumi.prod.yaml into a fresh directory.
func project(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"Pulumi.yaml", "Pulumi.prod.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), data, 0o644))
	}
	return dir
}

func runOmsctl(args ...string) (stdout, stderr string, err error) {
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestTenantNewPlansInItsRegion(t *testing.T) {
	dir := project(t)
	stdout, stderr, err := runOmsctl("tenant", "new", "globex", "--region", "au", "--dns-zone", "globex-example-com", "--dir", dir)
	require.NoError(t, err, stderr)

	assert.ElementsMatch(t, []string{"Pulumi.yaml", "Pulumi.prod.yaml", "Pulumi.globex-prod-au.yaml"}, files(t, dir), "no temporary file is left behind")
	for _, next := range []string{"pulumi stack init globex-prod-au", "omsctl plan --stack globex-prod-au", "pulumi preview -s globex-prod-au"} {
		assert.Contains(t, stdout, next)
	}

	sf, err := stacks.LoadStackFile(dir, "globex-prod-au")
	require.NoError(t, err)
	cfg, inv, err := stacks.Plan(sf)
	require.NoError(t, err)
	assert.Equal(t, stacks.Dedicated, cfg.Tenancy)
	assert.Equal(t, "globex", cfg.Tenant)
	assert.Equal(t, "globex-oms-prod-au", cfg.Project)
	assert.Equal(t, []string{"globex-main"}, cfg.Accounts)
	assert.Equal(t, "oms.globex.example.com", cfg.Edge.Domain)
	assert.Equal(t, stacks.EdgeDNSConfig{ManagedZone: "globex-example-com"}, cfg.Edge.DNS, "the zone is in the tenant's project")
	assert.Equal(t, "globex-prod-au", cfg.NamePrefix())

	prod, err := stacks.LoadStackFile(dir, "prod")
	require.NoError(t, err)
	prodCfg, err := prod.Config()
	require.NoError(t, err)
	assert.Equal(t, prodCfg.Runtime.Image, cfg.Runtime.Image, "the tenant runs the released image")
	assert.Equal(t, prodCfg.GKE.MasterAuthorizedNetworks, cfg.GKE.MasterAuthorizedNetworks)

	clusters := inv.OfType("gcp:container/cluster:Cluster")
	require.Len(t, clusters, 1)
	assert.Equal(t, "australia-southeast1", clusters[0].String("location"))
	assert.Equal(t, "globex-oms-prod-au", clusters[0].String("project"))
	for _, pool := range inv.OfType("gcp:container/nodePool:NodePool") {
		for _, z := range pool.Strings("nodeLocations") {
			assert.True(t, strings.HasPrefix(z, "australia-southeast1-"), "pool %s in zone %s", pool.Name, z)
		}
	}

	// A second run refuses to overwrite; --force replaces the file.
	before, err := os.ReadFile(sf.Path)
	require.NoError(t, err)
	_, _, err = runOmsctl("tenant", "new", "globex", "--region", "au", "--dns-zone", "globex-example-com", "--dir", dir, "--accounts", "globex-retail")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "already exists")
	after, err := os.ReadFile(sf.Path)
	require.NoError(t, err)
	assert.Equal(t, before, after)

	_, stderr, err = runOmsctl("tenant", "new", "globex", "--region", "au", "--dns-zone", "globex-example-com", "--dir", dir, "--accounts", "globex-retail,globex-b2b", "--force")
	require.NoError(t, err, stderr)
	sf, err = stacks.LoadStackFile(dir, "globex-prod-au")
	require.NoError(t, err)
	cfg, err = sf.Config()
	require.NoError(t, err)
	assert.Equal(t, []string{"globex-retail", "globex-b2b"}, cfg.Accounts)
}

func TestTenantNewSandbox(t *testing.T) {
	dir := project(t)
	_, stderr, err := runOmsctl("tenant", "new", "initech", "--region", "eu", "--environment", "sandbox",
		"--dns-zone", "initech-example-com", "--dns-project", "initech-dns", "--dir", dir)
	require.NoError(t, err, stderr)
	sf, err := stacks.LoadStackFile(dir, "initech-sbx-eu")
	require.NoError(t, err)
	cfg, _, err := stacks.Plan(sf)
	require.NoError(t, err)
	assert.Equal(t, stacks.Sandbox, cfg.Environment)
	assert.Equal(t, "initech-oms-sbx-eu", cfg.Project)
	assert.Equal(t, "europe-west1", cfg.Region.Primary.GCPRegion)
	assert.Equal(t, stacks.EdgeDNSConfig{ManagedZone: "initech-example-com", Project: "initech-dns"}, cfg.Edge.DNS)
}

func TestTenantNewRefusesInvalidInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"bad name", []string{"Globex_Corp", "--region", "au"}, []string{"omscloud:tenant", `"Globex_Corp" is not a valid tenant name`}},
		{"name too long", []string{"globalexpresscorp", "--region", "au"}, []string{"omscloud:tenant", "2-12 lowercase letters"}},
		{"unknown region", []string{"globex", "--region", "mars"}, []string{"omscloud:region", `unknown region "mars"`, "au, eu, sg, us"}},
		{"bad account", []string{"globex", "--region", "au", "--accounts", "Main"}, []string{"omscloud:accounts[0]", `"Main" is not a valid account id`}},
		{"cloudflare without ids", []string{"globex", "--region", "au", "--edge", "cloudflare"}, []string{"omscloud:edge.cloudflare.accountId", "--cloudflare-account-id"}},
		{"sample cloudflare ids in production", []string{"globex", "--region", "au", "--edge", "cloudflare", "--cloudflare-account-id", "0123456789abcdef0123456789abcdef", "--cloudflare-zone-id", "fedcba9876543210fedcba9876543210"},
			[]string{"omscloud:edge.cloudflare.accountId", "is a sample id", "omscloud:edge.cloudflare.zoneId", "--cloudflare-account-id", "--cloudflare-zone-id"}},
		{"gcp without a DNS zone", []string{"globex", "--region", "au"}, []string{"omscloud:edge.dns.managedZone: is required with edge.provider gcp"}},
		{"cross-border DR not acknowledged", []string{"globex", "--region", "sg", "--dns-zone", "globex-example-com"}, []string{"omscloud:dr.acknowledgeCrossBorder"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := project(t)
			_, stderr, err := runOmsctl(append([]string{"tenant", "new", "--dir", dir}, tc.args...)...)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, stderr, w)
			}
			assert.Contains(t, stderr, "Nothing was written.")
			assert.ElementsMatch(t, []string{"Pulumi.yaml", "Pulumi.prod.yaml"}, files(t, dir))
		})
	}

	dir := project(t)
	_, _, err := runOmsctl("tenant", "new", "globex", "--region", "au", "--environment", "staging", "--dns-zone", "globex-example-com", "--dir", dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `--environment "staging"`)
	assert.False(t, slices.ContainsFunc(files(t, dir), func(f string) bool { return strings.Contains(f, "globex") }))

	// With the customer's agreement, a Singapore tenant validates.
	_, stderr, err := runOmsctl("tenant", "new", "globex", "--region", "sg", "--acknowledge-cross-border", "--dns-zone", "globex-example-com", "--dir", dir)
	require.NoError(t, err, stderr)
}

func TestTenantNewSaysWhatToFillIn(t *testing.T) {
	// A sandbox tenant may keep sample Cloudflare ids: it is written, and validates.
	dir := project(t)
	_, stderr, err := runOmsctl("tenant", "new", "globex", "--region", "au", "--environment", "sandbox",
		"--edge", "cloudflare", "--cloudflare-account-id", "0123456789abcdef0123456789abcdef", "--cloudflare-zone-id", "fedcba9876543210fedcba9876543210", "--dir", dir)
	require.NoError(t, err, stderr)
	assert.Contains(t, files(t, dir), "Pulumi.globex-sbx-au.yaml")

	// The release and the operator networks come from Pulumi.prod.yaml: while it holds sample values, the refusal
	// names that file and each key to fill in, and nothing is written.
	dir = project(t)
	prod := filepath.Join(dir, "Pulumi.prod.yaml")
	data, err := os.ReadFile(prod)
	require.NoError(t, err)
	sample := regexp.MustCompile(`sha256:[0-9a-f]{64}`).ReplaceAll(data, []byte("sha256:"+strings.Repeat("0123456789abcdef", 4)))
	require.NoError(t, os.WriteFile(prod, sample, 0o644))
	_, _, err = runOmsctl("tenant", "new", "globex", "--region", "au", "--dir", dir)
	require.Error(t, err)
	for _, want := range []string{"Pulumi.prod.yaml", "omscloud:runtime.image", "sample digest"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.ElementsMatch(t, []string{"Pulumi.yaml", "Pulumi.prod.yaml"}, files(t, dir))
}
