package enginetest

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Each rule of the behaviour model, refusing and accepting, without the engine.

func urnOf(typ, name string) string { return "urn:pulumi:prod::omscloud::" + typ + "::" + name }

func props(kv ...any) resource.PropertyMap {
	m := resource.PropertyMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[resource.PropertyKey(kv[i].(string))] = resource.NewPropertyValue(kv[i+1])
	}
	return m
}

func create(c *Cloud, typ, name string, inputs resource.PropertyMap) error {
	urn := urnOf(typ, name)
	return c.Create(urn, typ, c.ID(urn, typ, name, inputs), inputs, inputs.Copy())
}

func enable(t *testing.T, c *Cloud, project string, services ...string) {
	t.Helper()
	for _, s := range services {
		require.NoError(t, create(c, "gcp:projects/service:Service", s, props("project", project, "service", s)))
	}
}

func TestADisabledAPIRefusesCreatesAndLookups(t *testing.T) {
	c := newCloud()
	enable(t, c, "p", "iam.googleapis.com")
	err := create(c, "gcp:compute/network:Network", "vpc", props("project", "p"))
	require.ErrorContains(t, err, "compute.googleapis.com API has not been used in project")
	assert.ErrorContains(t, err, "SERVICE_DISABLED")
	_, _, err = c.Invoke("gcp:storage/getProjectServiceAccount:getProjectServiceAccount", props("project", "p"))
	assert.ErrorContains(t, err, "storage.googleapis.com API has not been used")

	enable(t, c, "p", "compute.googleapis.com")
	assert.NoError(t, create(c, "gcp:compute/network:Network", "vpc", props("project", "p")))
	// A resource with no project input acts in its stack's project.
	assert.ErrorContains(t, create(c, "gcp:kms/cryptoKey:CryptoKey", "key", props()), "cloudkms.googleapis.com API")
	// Another project (a shared DNS zone's) is none of the stack's business.
	assert.NoError(t, create(c, "gcp:dns/recordSet:RecordSet", "r", props("project", "dns-hub")))
}

func TestGrantsNeedTheirIdentityToExist(t *testing.T) {
	c := newCloud()
	enable(t, c, "p", "storage.googleapis.com", "cloudkms.googleapis.com", "container.googleapis.com", "iam.googleapis.com")
	grant := func(member string) error {
		return create(c, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "g", props("member", member, "role", "r"))
	}
	// An agent's address typed from a project number: the agent does not exist until the look-up creates it.
	typed := "serviceAccount:service-214365870912@gs-project-accounts.iam.gserviceaccount.com"
	assert.ErrorContains(t, grant(typed), "does not exist")
	out, known, err := c.Invoke("gcp:storage/getProjectServiceAccount:getProjectServiceAccount", props("project", "p"))
	require.NoError(t, err)
	require.True(t, known)
	assert.NoError(t, grant(out["member"].StringValue()))

	// The Kubernetes Engine agent exists once its API is on.
	assert.NoError(t, grant("serviceAccount:service-"+inventory.ProjectNumber("p")+"@container-engine-robot.iam.gserviceaccount.com"))

	// A Workload Identity principal needs a cluster that created its pool.
	wi := "serviceAccount:p.svc.id.goog[oms/oms-prod-us]"
	assert.ErrorContains(t, grant(wi), "Identity Pool does not exist (p.svc.id.goog)")
	enable(t, c, "p", "compute.googleapis.com")
	require.NoError(t, create(c, "gcp:container/cluster:Cluster", "gke", props("project", "p",
		"workloadIdentityConfig", map[string]any{"workloadPool": "p.svc.id.goog"})))
	assert.NoError(t, grant(wi))

	// A service account exists once created.
	require.NoError(t, create(c, "gcp:serviceaccount/account:Account", "sa", props("project", "p", "email", "sa@p.iam.gserviceaccount.com")))
	assert.NoError(t, grant("serviceAccount:sa@p.iam.gserviceaccount.com"))
	assert.NoError(t, grant("group:platform@example.com"), "only service accounts are checked")
}

func TestNEGsAppearAsynchronouslyOnlyInZonesWithNodes(t *testing.T) {
	c := newCloud()
	enable(t, c, "p", "compute.googleapis.com", "container.googleapis.com")
	lookup := func(zone string) error {
		_, _, err := c.Invoke("gcp:compute/getNetworkEndpointGroup:getNetworkEndpointGroup",
			props("project", "p", "zone", zone, "name", "oms-neg"))
		return err
	}
	backend := func(zone string) error {
		return create(c, "gcp:compute/backendService:BackendService", "api", props("project", "p", "backends", []any{
			map[string]any{"group": "https://www.googleapis.com/compute/v1/projects/p/zones/" + zone + "/networkEndpointGroups/oms-neg"},
		}))
	}
	require.NoError(t, create(c, "gcp:container/nodePool:NodePool", "web", props("project", "p",
		"nodeLocations", []any{"z-a", "z-b"}, "initialNodeCount", 1.0)))
	require.NoError(t, create(c, "gcp:container/nodePool:NodePool", "idle", props("project", "p", "nodeLocations", []any{"z-c"})))
	assert.ErrorContains(t, lookup("z-a"), "was not found", "no Service has asked for the NEG yet")

	c.KubernetesApplied("kubernetes:core/v1:Service", props("metadata", map[string]any{
		"annotations": map[string]any{"cloud.google.com/neg": `{"exposed_ports":{"80":{"name":"oms-neg"}}}`},
	}))
	assert.ErrorContains(t, lookup("z-a"), "was not found", "the controller has not run yet")
	assert.ErrorContains(t, backend("z-a"), "networkEndpointGroups/oms-neg' was not found")
	time.Sleep(NEGDelay)
	assert.NoError(t, lookup("z-a"))
	assert.NoError(t, backend("z-b"))
	assert.ErrorContains(t, lookup("z-c"), "was not found", "a pool that starts at zero nodes gets no NEG")
	assert.ErrorContains(t, backend("z-c"), "was not found")
}

func TestCertificatesServeOnlyWhenIssuedBeforeTraffic(t *testing.T) {
	c := newCloud()
	enable(t, c, "p", "compute.googleapis.com", "certificatemanager.googleapis.com", "dns.googleapis.com")
	record := func(name, typ, data string) {
		require.NoError(t, create(c, "gcp:dns/recordSet:RecordSet", name+typ, props("project", "p", "name", name, "type", typ, "rrdatas", []any{data})))
	}
	lb := func(name string, proxy resource.PropertyMap) {
		proxy["selfLink"] = resource.NewProperty("https://proxy/" + name)
		require.NoError(t, create(c, "gcp:compute/targetHttpsProxy:TargetHttpsProxy", name, proxy))
		require.NoError(t, create(c, "gcp:compute/globalForwardingRule:GlobalForwardingRule", name,
			props("project", "p", "ipAddress", "203.0.113.7", "portRange", "443", "target", "https://proxy/"+name)))
	}
	assert.ErrorContains(t, c.ServesTLS("api.example.com"), "no DNS A record")
	record("api.example.com.", "A", "203.0.113.7")
	lb("classic", props("project", "p", "sslCertificates", []any{"https://certs/classic"}))
	assert.ErrorContains(t, c.ServesTLS("api.example.com"), "stays PROVISIONING until DNS has pointed at it")

	c = newCloud()
	enable(t, c, "p", "compute.googleapis.com", "certificatemanager.googleapis.com", "dns.googleapis.com")
	record("api.example.com.", "A", "203.0.113.7")
	require.NoError(t, create(c, "gcp:certificatemanager/dnsAuthorization:DnsAuthorization", "auth", props("project", "p", "domain", "api.example.com")))
	authID := c.ID(urnOf("gcp:certificatemanager/dnsAuthorization:DnsAuthorization", "auth"), "gcp:certificatemanager/dnsAuthorization:DnsAuthorization", "auth", props("project", "p"))
	require.NoError(t, create(c, "gcp:certificatemanager/certificate:Certificate", "cert", props("project", "p",
		"managed", map[string]any{"domains": []any{"api.example.com"}, "dnsAuthorizations": []any{authID}})))
	certID := c.ID(urnOf("gcp:certificatemanager/certificate:Certificate", "cert"), "gcp:certificatemanager/certificate:Certificate", "cert", props("project", "p"))
	require.NoError(t, create(c, "gcp:certificatemanager/certificateMap:CertificateMap", "map", props("project", "p", "name", "map")))
	mapID := c.ID(urnOf("gcp:certificatemanager/certificateMap:CertificateMap", "map"), "gcp:certificatemanager/certificateMap:CertificateMap", "map", props("project", "p"))
	require.NoError(t, create(c, "gcp:certificatemanager/certificateMapEntry:CertificateMapEntry", "entry", props("project", "p",
		"map", "map", "hostname", "api.example.com", "certificates", []any{certID})))
	lb("managed", props("project", "p", "certificateMap", "//certificatemanager.googleapis.com/"+mapID))
	assert.ErrorContains(t, c.ServesTLS("api.example.com"), "the CNAME _acme-challenge.api.example.com. ->")
	name, data := inventory.AuthorizationRecord("api.example.com")
	record(name, "CNAME", data)
	assert.NoError(t, c.ServesTLS("api.example.com"), "issued as soon as the authorization resolves")
	assert.ErrorContains(t, c.ServesTLS("www.example.com"), "no DNS A record")
}

func TestKMSNamesAreNeverFreed(t *testing.T) {
	c := newCloud()
	enable(t, c, "p", "cloudkms.googleapis.com")
	ringArgs := props("project", "p", "location", "europe-west4", "name", "oms-prod-eu-dr-sql")
	lookupRing := func() (resource.PropertyMap, error) {
		out, known, err := c.Invoke("gcp:kms/getKMSKeyRing:getKMSKeyRing", props("project", "p", "location", "europe-west4", "name", "oms-prod-eu-dr-sql"))
		require.True(t, known)
		return out, err
	}
	_, err := lookupRing()
	require.ErrorContains(t, err, "projects/p/locations/europe-west4/keyRings/oms-prod-eu-dr-sql not found")

	require.NoError(t, create(c, kmsKeyRing, "ring", ringArgs))
	ringID := "projects/p/locations/europe-west4/keyRings/oms-prod-eu-dr-sql"
	keyArgs := props("keyRing", ringID, "name", "oms-prod-eu-dr-sql", "rotationPeriod", "7776000s")
	require.NoError(t, create(c, kmsCryptoKey, "key", keyArgs))
	keyID := ringID + "/cryptoKeys/oms-prod-eu-dr-sql"
	assert.NoError(t, c.Update(urnOf(kmsKeyRing, "ring"), kmsKeyRing, ringID, ringArgs, ringArgs.Copy()), "an update is no create")

	// The stack forgets them (destroy): GCP keeps both, and the names stay taken.
	require.NoError(t, c.Delete(urnOf(kmsKeyRing, "ring"), kmsKeyRing, ringID, ringArgs))
	require.NoError(t, c.Delete(urnOf(kmsCryptoKey, "key"), kmsCryptoKey, keyID, keyArgs))
	assert.EqualError(t, create(c, kmsKeyRing, "ring", ringArgs), "googleapi: Error 409: KeyRing "+ringID+" already exists., alreadyExists")
	assert.EqualError(t, create(c, kmsCryptoKey, "key", keyArgs), "googleapi: Error 409: CryptoKey "+keyID+" already exists., alreadyExists")

	// What exists can be looked up and read (imported).
	out, err := lookupRing()
	require.NoError(t, err)
	assert.Equal(t, ringID, out["id"].StringValue())
	out, _, err = c.Invoke("gcp:kms/getKMSCryptoKey:getKMSCryptoKey", props("keyRing", ringID, "name", "oms-prod-eu-dr-sql"))
	require.NoError(t, err)
	assert.Equal(t, keyID, out["id"].StringValue())
	inputs, _, ok := c.Read(kmsCryptoKey, keyID)
	require.True(t, ok)
	assert.Equal(t, "7776000s", inputs["rotationPeriod"].StringValue())
	_, _, ok = c.Read(kmsCryptoKey, ringID+"/cryptoKeys/other")
	assert.False(t, ok)
}

func TestCloudSQLNamesStayReservedAndProtectedInstancesStay(t *testing.T) {
	c := newCloud()
	enable(t, c, "p", "sqladmin.googleapis.com", "container.googleapis.com", "compute.googleapis.com")
	instance := func(name string, tfProtection, apiProtection bool) resource.PropertyMap {
		return props("project", "p", "name", name, "deletionProtection", tfProtection,
			"settings", map[string]any{"deletionProtectionEnabled": apiProtection})
	}
	require.NoError(t, create(c, sqlInstance, "pg", instance("oms-prod-eu-dr-pg-1", true, true)))
	assert.ErrorContains(t, create(c, sqlInstance, "pg-again", instance("oms-prod-eu-dr-pg-1", true, true)), "instanceAlreadyExists")

	urn := urnOf(sqlInstance, "pg")
	assert.ErrorContains(t, c.Delete(urn, sqlInstance, "oms-prod-eu-dr-pg-1", instance("oms-prod-eu-dr-pg-1", true, true)), "deletion_protection is set to true")
	assert.ErrorContains(t, c.Delete(urn, sqlInstance, "oms-prod-eu-dr-pg-1", instance("oms-prod-eu-dr-pg-1", false, true)), "is protected. Please disable the deletion protection")
	require.NoError(t, c.Delete(urn, sqlInstance, "oms-prod-eu-dr-pg-1", instance("oms-prod-eu-dr-pg-1", false, false)))
	assert.ErrorContains(t, create(c, sqlInstance, "pg", instance("oms-prod-eu-dr-pg-1", true, true)),
		"you can't reuse the name of the deleted instance until one week from the deletion date")
	assert.NoError(t, create(c, sqlInstance, "pg", instance("oms-prod-eu-dr-pg-2", true, true)), "another name is free")

	cluster := props("project", "p", "name", "gke", "deletionProtection", true)
	require.NoError(t, create(c, "gcp:container/cluster:Cluster", "gke", cluster))
	assert.ErrorContains(t, c.Delete(urnOf("gcp:container/cluster:Cluster", "gke"), "gcp:container/cluster:Cluster", "gke", cluster), "Cannot destroy cluster")
}

// TestHealthyCapacityAcrossAColorSwitch: moving one NEG's Service selector swaps every endpoint for new ones that
// have not passed a health check (a gap); moving capacity between two NEGs whose endpoints are healthy does not;
// attaching a NEG and giving it all the capacity in one update does.
func TestHealthyCapacityAcrossAColorSwitch(t *testing.T) {
	const hc = "https://www.googleapis.com/compute/v1/projects/p/global/healthChecks/readyz"
	neg := func(name string) string {
		return "https://www.googleapis.com/compute/v1/projects/p/zones/z-a/networkEndpointGroups/" + name
	}
	service := func(c *Cloud, negName, color string) {
		c.KubernetesApplied("kubernetes:core/v1:Service", props(
			"metadata", map[string]any{"annotations": map[string]any{"cloud.google.com/neg": `{"exposed_ports":{"80":{"name":"` + negName + `"}}}`}},
			"spec", map[string]any{"selector": map[string]any{"app": "oms", "color": color}}))
	}
	backends := func(c *Cloud, capacity map[string]float64) {
		var list []any
		for _, n := range slices.Sorted(maps.Keys(capacity)) {
			list = append(list, map[string]any{"group": neg(n), "capacityScaler": capacity[n]})
		}
		require.NoError(t, create(c, "gcp:compute/backendService:BackendService", "api", props("project", "p", "healthChecks", hc, "backends", list)))
	}
	// rounds lets health-check rounds pass: each change the model sees is one.
	rounds := func(c *Cloud, n int) {
		for i := range n {
			require.NoError(t, create(c, "gcp:compute/network:Network", fmt.Sprint("tick-", i), props("project", "p")))
		}
	}
	setup := func(services map[string]string) *Cloud {
		c := newCloud()
		enable(t, c, "p", "compute.googleapis.com", "container.googleapis.com")
		require.NoError(t, create(c, "gcp:container/nodePool:NodePool", "web", props("project", "p", "nodeLocations", []any{"z-a"}, "initialNodeCount", 1.0)))
		require.NoError(t, create(c, "gcp:compute/healthCheck:HealthCheck", "readyz", props("project", "p", "selfLink", hc, "healthyThreshold", 2.0)))
		for negName, color := range services {
			service(c, negName, color)
		}
		time.Sleep(NEGDelay)
		return c
	}

	t.Run("one NEG, the selector moves", func(t *testing.T) {
		c := setup(map[string]string{"web-neg": "blue"})
		backends(c, map[string]float64{"web-neg": 1})
		rounds(c, 1)
		assert.Empty(t, c.ServingGaps(), "not serving yet, so no gap")
		rounds(c, 2)
		assert.Empty(t, c.ServingGaps())
		service(c, "web-neg", "green")
		gaps := c.ServingGaps()
		require.Len(t, gaps, 1)
		assert.Contains(t, gaps[0], "gcp:compute/backendService:BackendService::api has no healthy endpoint with capacity (after the Service of NEG web-neg selects app=oms,color=green)")
	})
	t.Run("a NEG per color, capacity moves to the healthy one", func(t *testing.T) {
		c := setup(map[string]string{"web-blue-neg": "blue", "web-green-neg": "green"})
		backends(c, map[string]float64{"web-blue-neg": 1, "web-green-neg": 0})
		rounds(c, 3)
		backends(c, map[string]float64{"web-blue-neg": 0, "web-green-neg": 1})
		backends(c, map[string]float64{"web-blue-neg": 1, "web-green-neg": 0})
		assert.Empty(t, c.ServingGaps(), "both colors stay health-checked; capacity only moves between healthy backends")
	})
	t.Run("capacity to a NEG attached in the same update", func(t *testing.T) {
		c := setup(map[string]string{"web-blue-neg": "blue", "web-green-neg": "green"})
		backends(c, map[string]float64{"web-blue-neg": 1})
		rounds(c, 3)
		backends(c, map[string]float64{"web-blue-neg": 0, "web-green-neg": 1})
		assert.Len(t, c.ServingGaps(), 1, "the new NEG's endpoints have not passed a probe yet")
	})
}
