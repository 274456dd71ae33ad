package stacks

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// release is a production runtime image: in Artifact Registry, pinned by a digest that is not a sample.
const release = "europe-docker.pkg.dev/omscloud-release/oms/oms@sha256:1596487d3babad38bf3cb341aec9b483e53233a883695a162cda759436033e8a"

// base is a minimal valid production config; tests change one thing at a time.
func base() map[string]string {
	return map[string]string{
		"omscloud:environment": "production",
		"omscloud:region":      "eu",
		"omscloud:project":     "omscloud-prod-eu",
		"omscloud:accounts":    `["tailspin"]`,
		"omscloud:edge":        `{"provider":"gcp","domain":"api.eu.example.com","dns":{"managedZone":"example-com"}}`,
		"omscloud:runtime":     `{"image":"` + release + `"}`,
	}
}

func with(changes map[string]string) map[string]string {
	v := base()
	for k, val := range changes {
		if val == "" {
			delete(v, k)
			continue
		}
		v[k] = val
	}
	return v
}

func problems(t *testing.T, err error) map[string]string {
	t.Helper()
	var verr *ValidationError
	require.True(t, errors.As(err, &verr), "want a *ValidationError, got %v", err)
	out := map[string]string{}
	for _, fe := range verr.Errors {
		out[fe.Key] += fe.Problem + "\n"
	}
	return out
}

func TestProductionDefaults(t *testing.T) {
	cfg, err := ParseConfig("prod-eu", base(), nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"europe-west1-b", "europe-west1-c", "europe-west1-d"}, cfg.Zones, "production spans 3 zones")
	assert.True(t, cfg.DeletionProtection)
	assert.Equal(t, "REGIONAL", cfg.Database.Availability)
	assert.True(t, cfg.DR.Enabled)
	assert.Equal(t, "europe-west4", cfg.DR.GCPRegion, "EU DR stays in the EU")
	assert.Equal(t, "eu", cfg.Database.BackupLocation)
	assert.True(t, cfg.Network.FlowLogs)
	assert.Equal(t, []string{"api.eu.example.com"}, cfg.Edge.Hostnames)
	assert.Equal(t, "oms-prod-eu", cfg.NamePrefix())
}

func TestSandboxHasTheSameTopologyAtSmallerSizes(t *testing.T) {
	prod, err := ParseConfig("prod", base(), nil)
	require.NoError(t, err)
	sbx, err := ParseConfig("sandbox", with(map[string]string{
		"omscloud:environment": "sandbox",
		"omscloud:runtime":     `{"image":"europe-docker.pkg.dev/omscloud-release/oms/oms:1.4.2"}`,
	}), nil)
	require.NoError(t, err)
	assert.Equal(t, prod.Zones, sbx.Zones)
	assert.Less(t, sbx.Sizing.Web.MaxNodesPerZone, prod.Sizing.Web.MaxNodesPerZone)
	assert.Less(t, sbx.Sizing.Database.DiskSizeGB, prod.Sizing.Database.DiskSizeGB)
	assert.False(t, sbx.DeletionProtection)
	assert.False(t, sbx.DR.Enabled)
	assert.Equal(t, "ZONAL", sbx.Database.Availability)
	assert.Equal(t, "oms-sbx-eu", sbx.NamePrefix())
}

func TestStructuredValuesMergeOverDefaults(t *testing.T) {
	cfg, err := ParseConfig("prod", with(map[string]string{
		"omscloud:sizing": `{"web":{"maxNodesPerZone":9}}`,
	}), nil)
	require.NoError(t, err)
	assert.Equal(t, 9, cfg.Sizing.Web.MaxNodesPerZone)
	assert.Equal(t, "e2-standard-4", cfg.Sizing.Web.MachineType, "unset fields keep the class default")
	assert.Equal(t, 1, cfg.Sizing.Web.MinNodesPerZone)
}

func TestValidationNamesEveryOffendingKey(t *testing.T) {
	tests := []struct {
		name    string
		changes map[string]string
		key     string
		mention string
	}{
		{"retired project number", map[string]string{"omscloud:projectNumber": "123456789012"}, "omscloud:projectNumber", "no longer a setting"},
		{"unknown region", map[string]string{"omscloud:region": "mars"}, "omscloud:region", "au, eu, sg, us"},
		{"missing region", map[string]string{"omscloud:region": ""}, "omscloud:region", "is required"},
		{"one zone in production", map[string]string{"omscloud:zones": `["europe-west1-b"]`}, "omscloud:zones", "at least 2 zones"},
		{"zone of another region", map[string]string{"omscloud:zones": `["europe-west1-b","us-central1-a"]`}, "omscloud:zones[1]", "not a zone of eu"},
		{"dedicated without tenant", map[string]string{"omscloud:tenancy": "dedicated"}, "omscloud:tenant", "required when tenancy is dedicated"},
		{"tenant on shared", map[string]string{"omscloud:tenant": "acme"}, "omscloud:tenant", "set tenancy to dedicated"},
		{"bad tenancy", map[string]string{"omscloud:tenancy": "private"}, "omscloud:tenancy", "shared or dedicated"},
		{"environment typo", map[string]string{"omscloud:environment": "prod"}, "omscloud:environment", "production or sandbox"},
		{"unknown key", map[string]string{"omscloud:zone": `["a"]`}, "omscloud:zone", "did you mean zones"},
		{"unknown nested field", map[string]string{"omscloud:sizing": `{"web":{"maxNodes":3}}`}, "omscloud:sizing", "unknown field"},
		{"wrong type", map[string]string{"omscloud:sizing": `{"web":{"maxNodesPerZone":"many"}}`}, "omscloud:sizing", "must be a whole number, not string"},
		{"DR outside the EU", map[string]string{"omscloud:dr": `{"enabled":true,"region":"us-east4"}`}, "omscloud:dr.region", "must stay in EU"},
		{"DR in the primary region", map[string]string{"omscloud:dr": `{"enabled":true,"region":"europe-west1"}`}, "omscloud:dr.region", "is the primary region"},
		{"zonal database in production", map[string]string{"omscloud:database": `{"availability":"ZONAL"}`}, "omscloud:database.availability", "production needs REGIONAL"},
		{"duplicate account", map[string]string{"omscloud:accounts": `["tailspin","tailspin"]`}, "omscloud:accounts[1]", "listed twice"},
		{"invalid account id", map[string]string{"omscloud:accounts": `["Tail Spin"]`}, "omscloud:accounts[0]", "not a valid account id"},
		{"account both active and retired", map[string]string{"omscloud:database": `{"retiredAccounts":["tailspin"]}`}, "omscloud:database.retiredAccounts[0]", "also in accounts"},
		{"production image by tag", map[string]string{"omscloud:runtime": `{"image":"oms:latest"}`}, "omscloud:runtime.image", "not pinned by digest"},
		{"image on Docker Hub", map[string]string{"omscloud:runtime": `{"image":"docker.io/omscloud/oms@sha256:1596487d3babad38bf3cb341aec9b483e53233a883695a162cda759436033e8a"}`}, "omscloud:runtime.image", "pulled from docker.io, where the nodes cannot be granted read access: push the image to an Artifact Registry repository"},
		{"staged image on ghcr.io", map[string]string{"omscloud:runtime": `{"image":"` + release + `","colorImages":{"green":"ghcr.io/omscloud/oms@sha256:1596487d3babad38bf3cb341aec9b483e53233a883695a162cda759436033e8a"}}`}, "omscloud:runtime.colorImages.green", "pulled from ghcr.io"},
		{"bad color", map[string]string{"omscloud:runtime": `{"image":"oms@sha256:` + strings.Repeat("0", 64) + `","activeColor":"red"}`}, "omscloud:runtime.activeColor", "blue or green"},
		{"cloudflare without ids", map[string]string{"omscloud:edge": `{"provider":"cloudflare","domain":"a.example.com"}`}, "omscloud:edge.cloudflare.accountId", "32 hex"},
		{"gcp edge without a DNS zone", map[string]string{"omscloud:edge": `{"provider":"gcp","domain":"a.example.com"}`}, "omscloud:edge.dns.managedZone", "is required with edge.provider gcp"},
		{"DNS name as zone name", map[string]string{"omscloud:edge": `{"domain":"a.example.com","dns":{"managedZone":"example.com"}}`}, "omscloud:edge.dns.managedZone", "not a Cloud DNS zone name"},
		{"DNS zone project", map[string]string{"omscloud:edge": `{"domain":"a.example.com","dns":{"managedZone":"example-com","project":"DNS"}}`}, "omscloud:edge.dns.project", "not a GCP project id"},
		{"DNS zone with the cloudflare edge", map[string]string{"omscloud:edge": `{"provider":"cloudflare","domain":"a.example.com","dns":{"managedZone":"example-com"}}`}, "omscloud:edge.dns", "remove it"},
		{"overlapping ranges", map[string]string{"omscloud:network": `{"podsCidr":"10.10.0.0/16"}`}, "omscloud:network.podsCidr", "overlaps"},
		{"negative rotation", map[string]string{"omscloud:rotation": `{"redis":-1}`}, "omscloud:rotation.redis", "count rotations from 0"},
		{"master range not /28", map[string]string{"omscloud:network": `{"masterCidr":"172.16.0.0/24"}`}, "omscloud:network.masterCidr", "must be a /28"},
		{"max below min", map[string]string{"omscloud:sizing": `{"web":{"minNodesPerZone":3,"maxNodesPerZone":2}}`}, "omscloud:sizing.web.maxNodesPerZone", "below minNodesPerZone"},
		{"no web node in a zone", map[string]string{"omscloud:sizing": `{"web":{"minNodesPerZone":0}}`}, "omscloud:sizing.web.minNodesPerZone", "at least 1 node per zone"},
		{"maintenance too short for GKE", map[string]string{"omscloud:maintenance": `{"days":["sunday"],"durationHours":4}`}, "omscloud:maintenance.durationHours", "at least 48"},
		{"backup bucket pinned in the primary region", map[string]string{"omscloud:backup": `{"location":"europe-west1"}`}, "omscloud:backup.location", "is the primary region: backups must survive its loss"},
		{"backup bucket pinned outside the EU", map[string]string{"omscloud:backup": `{"location":"us"}`}, "omscloud:backup.location", "lies outside EU"},
		{"backup dual-region without its code", map[string]string{"omscloud:backup": `{"dataLocations":["europe-west1","europe-west4"]}`}, "omscloud:backup.dataLocations", "without backup.location"},
		{"deletion protection off in production", map[string]string{"omscloud:deletionProtection": "false"}, "omscloud:deletionProtection", "keep deletion protection on"},
		{"bad label", map[string]string{"omscloud:labels": `{"Team":"x"}`}, "omscloud:labels.Team", "not a valid GCP label key"},
		{"plaintext provider secret", map[string]string{"cloudflare:apiToken": "abc123"}, "cloudflare:apiToken", "--secret"},
		{"production objective below the promise", map[string]string{"omscloud:observability": `{"availabilityObjective":99.9}`}, "omscloud:observability.availabilityObjective", "promises 99.95% uptime"},
		{"objective as a share", map[string]string{"omscloud:observability": `{"latencyObjective":0.99}`}, "omscloud:observability.latencyObjective", "percentage in [90, 100)"},
		{"latency between buckets", map[string]string{"omscloud:observability": `{"latencyThresholdMs":300}`}, "omscloud:observability.latencyThresholdMs", "250, 500"},
		{"backup age under an hour", map[string]string{"omscloud:observability": `{"backupMaxAgeMinutes":60}`}, "omscloud:observability.backupMaxAgeMinutes", "at least 70"},
		{"two uptime regions", map[string]string{"omscloud:observability": `{"uptimeRegions":["USA","EUROPE"]}`}, "omscloud:observability.uptimeRegions", "at least 3"},
		{"unknown uptime region", map[string]string{"omscloud:observability": `{"uptimeRegions":["USA","EUROPE","MOON"]}`}, "omscloud:observability.uptimeRegions[2]", "ASIA_PACIFIC"},
		{"bad alert email", map[string]string{"omscloud:observability": `{"notifications":{"emails":["oncall"]}}`}, "omscloud:observability.notifications.emails[0]", "not an email address"},
		{"plaintext PagerDuty key", map[string]string{"omscloud:observability": `{"notifications":{"pagerdutyToken":"abc"}}`}, "omscloud:observability.notifications.pagerdutyToken", "--secret --path"},
		{"plaintext nested secret", map[string]string{"omscloud:edge": `{"provider":"gcp","domain":"a.example.com","cloudflare":{"apiToken":"abc"}}`}, "omscloud:edge.cloudflare.apiToken", "--secret --path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("s", with(tt.changes), nil)
			require.Error(t, err)
			got := problems(t, err)
			require.Contains(t, got, tt.key, "problems: %v", got)
			assert.Contains(t, got[tt.key], tt.mention)
		})
	}
}

func TestValidationReportsEveryProblemAtOnce(t *testing.T) {
	_, err := ParseConfig("s", with(map[string]string{
		"omscloud:region":  "mars",
		"omscloud:tenancy": "dedicated",
		"omscloud:project": "X",
	}), nil)
	got := problems(t, err)
	assert.Contains(t, got, "omscloud:region")
	assert.Contains(t, got, "omscloud:tenant")
	assert.Contains(t, got, "omscloud:project")
	assert.Contains(t, err.Error(), "stack s: ")
}

func TestSecretsAreNeverEchoed(t *testing.T) {
	_, err := ParseConfig("s", with(map[string]string{"cloudflare:apiToken": "sup3r-s3cret-value"}), nil)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "sup3r-s3cret-value")
}

func TestSecretGivenAsSecretIsAccepted(t *testing.T) {
	_, err := ParseConfig("s", with(map[string]string{"cloudflare:apiToken": "[secret]"}), []string{"cloudflare:apiToken"})
	require.NoError(t, err)
}

func TestCrossBorderDRMustBeAcknowledged(t *testing.T) {
	sg := map[string]string{"omscloud:region": "sg", "omscloud:project": "omscloud-prod-sg"}
	_, err := ParseConfig("prod-sg", with(sg), nil)
	assert.Contains(t, problems(t, err), "omscloud:dr.acknowledgeCrossBorder")

	sg["omscloud:dr"] = `{"acknowledgeCrossBorder":true}`
	cfg, err := ParseConfig("prod-sg", with(sg), nil)
	require.NoError(t, err)
	assert.Equal(t, "asia-southeast2", cfg.DR.GCPRegion)

	sg["omscloud:dr"] = `{"enabled":false}`
	_, err = ParseConfig("prod-sg", with(sg), nil)
	require.NoError(t, err, "a stack may opt out of cross-border DR instead")
}

func TestDedicatedStack(t *testing.T) {
	cfg, err := ParseConfig("acme-prod-eu", with(map[string]string{
		"omscloud:tenancy": "dedicated", "omscloud:tenant": "acme",
	}), nil)
	require.NoError(t, err)
	assert.Equal(t, "acme-prod-eu", cfg.NamePrefix())
	assert.Equal(t, "acme", cfg.ResourceLabels()["tenant"])
	assert.Equal(t, "dedicated", cfg.ResourceLabels()["tenancy"])
}
