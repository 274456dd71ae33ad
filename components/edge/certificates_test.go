package edge_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/omscloud/omscloud/components/edge"
	"github.com/omscloud/omscloud/components/internal/kube/kubetest"
	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// byHostname indexes the resources of a type named "<name><infix><hostname>" by hostname.
func byHostname(inv *inventory.Inventory, typ, infix string) map[string]inventory.Resource {
	out := map[string]inventory.Resource{}
	for _, r := range inv.OfType(typ) {
		if _, h, ok := strings.Cut(r.Name, infix); ok {
			out[h] = r
		}
	}
	return out
}

func TestGCPCertificatePerHostnameInOneMap(t *testing.T) {
	inv, _ := evaluate(t, gcpArgs())
	certMap := kubetest.One(t, inv, certMapType)
	assert.Equal(t, "oms-prod-us", certMap.String("name"))

	authzs := byHostname(inv, authzType, "-authz-")
	certs := byHostname(inv, certType, "-cert-")
	entries := byHostname(inv, certMapEntryType, "-certmap-")
	for _, m := range []map[string]inventory.Resource{authzs, certs, entries} {
		assert.ElementsMatch(t, hostnames, slices.Collect(maps.Keys(m)), "one of each per hostname")
	}
	for _, h := range hostnames {
		authz, cert, entry := authzs[h], certs[h], entries[h]
		assert.Equal(t, h, authz.String("domain"))
		assert.Equal(t, "FIXED_RECORD", authz.String("type"))
		assert.Equal(t, []string{h}, cert.Strings("managed.domains"))
		assert.Equal(t, []string{authz.Name + "-id"}, cert.Strings("managed.dnsAuthorizations"), "%s: authorized by DNS", h)
		assert.Equal(t, "DEFAULT", cert.String("scope"))
		assert.True(t, cert.Waits(inv, recordSetType, authz.Name), "%s: the certificate follows its authorization's CNAME", h)
		assert.Equal(t, h, entry.String("hostname"))
		assert.Equal(t, "oms-prod-us", entry.String("map"))
		assert.Equal(t, []string{cert.Name + "-id"}, entry.Strings("certificates"))
		for _, r := range []inventory.Resource{authz, cert, entry} {
			assert.Regexp(t, `^oms-prod-us-[0-9a-f]{8}$`, r.String("name"), "%s %s", r.Type, r.Name)
			assert.Equal(t, "omscloud-prod-us", r.String("project"))
			assert.Equal(t, "production", r.String("labels.environment"))
		}
	}
	assert.NotEqual(t, certs[hostnames[0]].String("name"), certs[hostnames[1]].String("name"))
}

func TestGCPRecordsPerHostname(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target pulumi.StringInput
		want   string
	}{
		{"at the load balancer", nil, "203.0.113.20"},
		{"at the DR address once DR is declared", pulumi.String("198.51.100.7"), "198.51.100.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := gcpArgs()
			args.GCP.DNS.Target = tc.target
			inv, out := evaluate(t, args)
			assert.Equal(t, "203.0.113.20", out.ipAddress, "the load balancer keeps its own address")

			cnames := byHostname(inv, recordSetType, "-authz-")
			as := byHostname(inv, recordSetType, "-a-")
			assert.Len(t, inv.OfType(recordSetType), 2*len(hostnames), "a CNAME and an A record per hostname, nothing else")
			for _, h := range hostnames {
				cname, a := cnames[h], as[h]
				assert.Equal(t, "_acme-challenge."+h+".", cname.String("name"), "%s: from the authorization's dnsResourceRecords", h)
				assert.Equal(t, "CNAME", cname.String("type"))
				require.Len(t, cname.Strings("rrdatas"), 1)
				assert.True(t, strings.HasSuffix(cname.Strings("rrdatas")[0], ".authorize.certificatemanager.goog."))

				assert.Equal(t, h+".", a.String("name"))
				assert.Equal(t, "A", a.String("type"))
				assert.Equal(t, []string{tc.want}, a.Strings("rrdatas"))
				for _, r := range []inventory.Resource{cname, a} {
					assert.Equal(t, "omscloud-example-com", r.String("managedZone"))
					assert.Equal(t, "omscloud-dns", r.String("project"), "the zone's project")
					ttl, _ := r.Number("ttl")
					assert.Equal(t, float64(300), ttl)
				}
			}
		})
	}
}

func TestGCPRecordsDefaultToTheStacksProject(t *testing.T) {
	args := gcpArgs()
	args.GCP.DNS.Project = ""
	inv, _ := evaluate(t, args)
	for _, r := range inv.OfType(recordSetType) {
		assert.Equal(t, "omscloud-prod-us", r.String("project"), r.Name)
	}
}

// TestGCPHostnameChangeTouchesOnlyThatHostname: replacing one hostname creates its certificate, authorization, entry
// and records, and deletes the old one's, leaving the other hostname's exactly as they were: TLS never breaks for a
// hostname that stays, and no new resource takes a name an old one still holds.
func TestGCPHostnameChangeTouchesOnlyThatHostname(t *testing.T) {
	before, _ := evaluate(t, gcpArgs())
	args := gcpArgs()
	args.Hostnames = []string{hostnames[0], "orders.us.omscloud.example.com"}
	after, _ := evaluate(t, args)

	types := []string{authzType, certType, certMapEntryType, recordSetType, certMapType}
	old := map[string]inventory.Resource{}
	for _, typ := range types {
		for _, r := range before.OfType(typ) {
			old[typ+" "+r.Name] = r
		}
	}
	names := map[string]bool{}
	for _, typ := range types {
		for _, r := range after.OfType(typ) {
			names[typ+" "+r.String("name")] = true
			prev, kept := old[typ+" "+r.Name]
			if !kept {
				assert.Contains(t, r.Name, "orders.us.omscloud.example.com", "only the new hostname's %s is new", typ)
				continue
			}
			delete(old, typ+" "+r.Name)
			if typ != certMapType {
				assert.Contains(t, r.Name, hostnames[0])
			}
			assert.Equal(t, prev.Inputs, r.Inputs, "%s %s is unchanged", typ, r.Name)
		}
	}
	for key, r := range old {
		assert.Contains(t, r.Name, hostnames[1], "only the removed hostname's resources go: %s", key)
		assert.False(t, names[r.Type+" "+r.String("name")], "%s: no new resource reuses the name %s", key, r.String("name"))
	}
	assert.Len(t, old, 5, "its authorization, certificate, entry, CNAME and A record")
}

func TestGCPWithAnotherStacksCertificateMap(t *testing.T) {
	const primaryMap = "projects/omscloud-prod-us/locations/global/certificateMaps/oms-prod-us"
	args := gcpArgs()
	args.Name = "oms-prod-us-dr"
	args.GCP = edge.GCPArgs{Address: pulumi.String("198.51.100.7"), CertificateMap: pulumi.String(primaryMap)}
	inv, out := evaluate(t, args)
	for _, r := range inv.Resources {
		assert.False(t, strings.HasPrefix(r.Type, "gcp:certificatemanager/") || strings.HasPrefix(r.Type, "gcp:dns/"),
			"the map's owner owns the certificates and records: %s %s", r.Type, r.Name)
	}
	assert.Equal(t, "//certificatemanager.googleapis.com/"+primaryMap, kubetest.One(t, inv, httpsProxyType).String("certificateMap"))
	assert.Equal(t, primaryMap, out.certificateMap)
}
