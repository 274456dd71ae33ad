package policy_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/omscloud/omscloud/components/apis"
	"github.com/omscloud/omscloud/components/observability/rules"
	"github.com/omscloud/omscloud/inventory"
	"github.com/omscloud/omscloud/policy"
	"github.com/omscloud/omscloud/stacks"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ---- synthetic inventories --------------------------------------------------------------------------------------

var (
	prodUS    = policy.Context{Environment: policy.Production, Edge: "gcp", PrimaryRegion: "us-central1", DRRegion: "us-east4", AllowedLocations: []string{"us"}}
	sandboxUS = policy.Context{Environment: policy.Sandbox, Edge: "gcp", PrimaryRegion: "us-central1", AllowedLocations: []string{"us"}}
	prodCF    = policy.Context{Environment: policy.Production, Edge: policy.EdgeCloudflare, PrimaryRegion: "europe-west1", DRRegion: "europe-west4", AllowedLocations: []string{"eu"}}
)

// res builds a resource as the mocks record it; the URN keeps resources distinct in inventory.New.
func res(typ, name string, inputs map[string]any) inventory.Resource {
	return inventory.Resource{Type: typ, Name: name, Inputs: inputs, URN: "urn:pulumi:t::omscloud::" + typ + "::" + name}
}

// obj is shorthand for nested inputs.
type obj = map[string]any

func list(v ...any) []any { return v }

// with returns a deep copy of inputs with each "dotted.path" set to its value; a nil value deletes the key.
func with(inputs obj, changes ...any) obj {
	out := deepCopy(inputs).(obj)
	for i := 0; i+1 < len(changes); i += 2 {
		parts := strings.Split(changes[i].(string), ".")
		m := out
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(obj)
			if !ok {
				next = obj{}
				m[p] = next
			}
			m = next
		}
		if changes[i+1] == nil {
			delete(m, parts[len(parts)-1])
		} else {
			m[parts[len(parts)-1]] = changes[i+1]
		}
	}
	return out
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case obj:
		out := obj{}
		for k, e := range t {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

func goodSQL() obj {
	return obj{
		"name": "oms-prod-us-pg", "region": "us-central1", "databaseVersion": "POSTGRES_16",
		"encryptionKeyName":  "projects/p/locations/us-central1/keyRings/oms-prod-us/cryptoKeys/cloudsql",
		"deletionProtection": true,
		"settings": obj{
			"tier": "db-custom-4-16384", "availabilityType": "REGIONAL", "deletionProtectionEnabled": true,
			"locationPreference": obj{"zone": "us-central1-a", "secondaryZone": "us-central1-b"},
			"backupConfiguration": obj{
				"enabled": true, "pointInTimeRecoveryEnabled": true, "transactionLogRetentionDays": 7.0, "location": "us",
			},
			"ipConfiguration": obj{"ipv4Enabled": false, "privateNetwork": "projects/p/global/networks/oms-prod-us-vpc", "sslMode": "ENCRYPTED_ONLY"},
			"userLabels":      obj{"app": "omscloud", "environment": "production"},
		},
	}
}

func goodStatefulSet(name string) obj {
	labels := obj{"app.kubernetes.io/name": name, "app.kubernetes.io/instance": "oms-prod-us"}
	return obj{
		"metadata": obj{"name": name, "namespace": "oms-data", "labels": deepCopy(labels)},
		"spec": obj{
			"replicas": 3.0,
			"selector": obj{"matchLabels": deepCopy(labels)},
			"template": obj{
				"metadata": obj{"labels": deepCopy(labels)},
				"spec": obj{
					"topologySpreadConstraints": list(
						obj{"maxSkew": 1.0, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": obj{"matchLabels": deepCopy(labels)}},
						obj{"maxSkew": 1.0, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": obj{"matchLabels": deepCopy(labels)}},
					),
					"containers": list(obj{"name": name, "image": "redis:7.4.1",
						"env": list(obj{"name": "REDIS_PASSWORD", "valueFrom": obj{"secretKeyRef": obj{"name": name + "-auth", "key": "password"}}})}),
				},
			},
		},
	}
}

func goodPDB(name string) obj {
	return obj{
		"metadata": obj{"name": name, "namespace": "oms-data"},
		"spec":     obj{"maxUnavailable": 1.0, "selector": obj{"matchLabels": obj{"app.kubernetes.io/name": name}}},
	}
}

func goodCluster() obj {
	return obj{
		"name": "oms-prod-us", "location": "us-central1",
		"nodeLocations":          list("us-central1-a", "us-central1-b", "us-central1-c"),
		"privateClusterConfig":   obj{"enablePrivateNodes": true, "enablePrivateEndpoint": false, "masterIpv4CidrBlock": "172.16.0.0/28"},
		"workloadIdentityConfig": obj{"workloadPool": "omscloud-prod-us.svc.id.goog"},
		"masterAuthorizedNetworksConfig": obj{
			"cidrBlocks":                  list(obj{"cidrBlock": "198.51.100.0/24", "displayName": "ci-runners"}),
			"gcpPublicCidrsAccessEnabled": false,
		},
		"resourceLabels": obj{"app": "omscloud", "stack": "prod"},
	}
}

func goodPool() obj {
	return obj{
		"name": "web", "cluster": "oms-prod-us", "location": "us-central1",
		"nodeLocations": list("us-central1-a", "us-central1-b", "us-central1-c"),
		"autoscaling":   obj{"minNodeCount": 1.0, "maxNodeCount": 5.0, "locationPolicy": "BALANCED"},
		"nodeConfig": obj{
			"labels":         obj{"omscloud.io/pool": "web"},
			"resourceLabels": obj{"app": "omscloud"},
		},
	}
}

const (
	sqlT      = "gcp:sql/databaseInstance:DatabaseInstance"
	stsT      = "kubernetes:apps/v1:StatefulSet"
	pdbT      = "kubernetes:policy/v1:PodDisruptionBudget"
	secretT   = "kubernetes:core/v1:Secret"
	cmT       = "kubernetes:core/v1:ConfigMap"
	svcT      = "kubernetes:core/v1:Service"
	clusterT  = "gcp:container/cluster:Cluster"
	poolT     = "gcp:container/nodePool:NodePool"
	fwT       = "gcp:compute/firewall:Firewall"
	gaddrT    = "gcp:compute/globalAddress:GlobalAddress"
	bucketT   = "gcp:storage/bucket:Bucket"
	smSecretT = "gcp:secretmanager/secret:Secret"
	repoIAMT  = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
	hpaT      = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
	apiSvcT   = "kubernetes:apiregistration.k8s.io/v1:APIService"
)

// hpaOn is an autoscaler of the web Deployment on the given metrics.
func hpaOn(metrics ...any) obj {
	return obj{"metadata": obj{"name": "web"}, "spec": obj{
		"scaleTargetRef": obj{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
		"minReplicas":    3.0, "maxReplicas": 10.0, "metrics": list(metrics...),
	}}
}

var (
	cpuMetric  = obj{"type": "Resource", "resource": obj{"name": "cpu", "target": obj{"type": "Utilization", "averageUtilization": 70.0}}}
	rateMetric = obj{"type": "Pods", "pods": obj{"metric": obj{"name": "http_requests_per_second"},
		"target": obj{"type": "AverageValue", "averageValue": "80"}}}
)

// ---- table-driven policy cases ----------------------------------------------------------------------------------

type policyCase struct {
	name      string
	policy    string
	ctx       policy.Context
	resources []inventory.Resource
	// errors and warnings: one substring per expected finding of that severity, and no other finding of it.
	errors, warnings []string
}

func runCase(t *testing.T, c policyCase) []policy.Finding {
	t.Helper()
	idx := slices.IndexFunc(policy.All(), func(p policy.Policy) bool { return p.Name == c.policy })
	require.GreaterOrEqual(t, idx, 0, "no policy %s", c.policy)
	rep := policy.EvaluatePolicies([]policy.Policy{policy.All()[idx]}, c.ctx, inventory.New("t", c.resources))
	var errs, warns []policy.Finding
	for _, f := range rep.Findings {
		assert.Equal(t, c.policy, f.Policy)
		if f.Severity == policy.Error {
			errs = append(errs, f)
		} else {
			warns = append(warns, f)
		}
	}
	matchFindings(t, "error", errs, c.errors)
	matchFindings(t, "warning", warns, c.warnings)
	assert.Equal(t, len(c.errors) == 0, slices.Contains(rep.Passed, c.policy), "a policy passes exactly when it has no error finding")
	return rep.Findings
}

// matchFindings pairs each expected substring with a distinct finding and refuses leftovers on either side.
func matchFindings(t *testing.T, kind string, got []policy.Finding, want []string) {
	t.Helper()
	left := slices.Clone(got)
	for _, w := range want {
		i := slices.IndexFunc(left, func(f policy.Finding) bool { return strings.Contains(f.Resource+": "+f.Message, w) })
		if !assert.GreaterOrEqual(t, i, 0, "expected a %s containing %q; got %s", kind, w, describe(left)) {
			continue
		}
		left = slices.Delete(left, i, i+1)
	}
	assert.Empty(t, left, "unexpected %s(s): %s", kind, describe(left))
}

func describe(fs []policy.Finding) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, fmt.Sprintf("[%s %s: %s]", f.Severity, f.Resource, f.Message))
	}
	return strings.Join(parts, " ")
}

func policyCases() []policyCase {
	sts := func(in obj) inventory.Resource { return res(stsT, "redis", in) }
	pdb := func(in obj) inventory.Resource { return res(pdbT, "redis", in) }
	sql := func(in obj) inventory.Resource { return res(sqlT, "pg", in) }
	cluster := func(in obj) inventory.Resource { return res(clusterT, "gke", in) }
	pool := func(in obj) inventory.Resource { return res(poolT, "gke-web", in) }
	fw := func(name string, in obj) inventory.Resource { return res(fwT, name, in) }
	long := func(n int) string { return "a" + strings.Repeat("b", n-1) }
	otherLabels := obj{"matchLabels": obj{"app.kubernetes.io/name": "rabbitmq"}}

	return []policyCase{
		// postgres-ha
		{name: "HA instance passes", policy: "postgres-ha", ctx: prodUS, resources: []inventory.Resource{sql(goodSQL())}},
		{name: "unset log retention defaults to 7 days", policy: "postgres-ha", ctx: prodUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "settings.backupConfiguration.transactionLogRetentionDays", nil))}},
		{name: "sandbox may run a ZONAL instance without PITR", policy: "postgres-ha", ctx: sandboxUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "settings.availabilityType", "ZONAL", "settings.backupConfiguration", nil, "deletionProtection", false))}},
		{name: "read replica takes HA from its primary", policy: "postgres-ha", ctx: prodUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "masterInstanceName", "pg", "settings.availabilityType", "ZONAL", "settings.backupConfiguration", nil))}},
		{name: "ZONAL in production", policy: "postgres-ha", ctx: prodUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "settings.availabilityType", "ZONAL"))},
			errors:    []string{`availabilityType is "ZONAL"`}},
		{name: "unset availability in production", policy: "postgres-ha", ctx: prodUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "settings.availabilityType", nil))},
			errors:    []string{`availabilityType is "unset"`}},
		{name: "standby in the primary zone", policy: "postgres-ha", ctx: prodUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "settings.locationPreference.secondaryZone", "us-central1-a"))},
			errors:    []string{"secondaryZone us-central1-a is the primary zone"}},
		{name: "no standby zone", policy: "postgres-ha", ctx: prodUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "settings.locationPreference.secondaryZone", nil))},
			errors:    []string{"secondaryZone is not set"}},
		{name: "no backups, no PITR", policy: "postgres-ha", ctx: prodUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "settings.backupConfiguration", nil))},
			errors:    []string{"automated backups are off", "point-in-time recovery is off"}},
		{name: "3 days of logs", policy: "postgres-ha", ctx: prodUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "settings.backupConfiguration.transactionLogRetentionDays", 3))},
			errors:    []string{"transactionLogRetentionDays is 3"}},
		{name: "deletion protection off on both levels", policy: "postgres-ha", ctx: prodUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "deletionProtection", false, "settings.deletionProtectionEnabled", nil))},
			errors:    []string{"deletionProtection is false", "deletionProtectionEnabled is not true"}},
		{name: "every database cell is held to it", policy: "postgres-ha", ctx: prodUS,
			resources: []inventory.Resource{sql(goodSQL()), res(sqlT, "pg-b", with(goodSQL(), "name", "oms-prod-us-b-pg"))}},
		{name: "a second cell without HA, PITR or protection", policy: "postgres-ha", ctx: prodUS,
			resources: []inventory.Resource{sql(goodSQL()), res(sqlT, "pg-b", with(goodSQL(), "name", "oms-prod-us-b-pg",
				"settings.availabilityType", "ZONAL", "settings.backupConfiguration.pointInTimeRecoveryEnabled", false,
				"settings.deletionProtectionEnabled", false))},
			errors: []string{`pg-b: settings.availabilityType is "ZONAL"`, "pg-b: settings.backupConfiguration.pointInTimeRecoveryEnabled is not true",
				"pg-b: settings.deletionProtectionEnabled is not true"}},

		// postgres-private-encrypted
		{name: "private CMEK TLS instance passes in production", policy: "postgres-private-encrypted", ctx: prodUS, resources: []inventory.Resource{sql(goodSQL())}},
		{name: "requireSsl alone enforces TLS", policy: "postgres-private-encrypted", ctx: sandboxUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "settings.ipConfiguration.sslMode", nil, "settings.ipConfiguration.requireSsl", true))}},
		{name: "client certificates enforce TLS", policy: "postgres-private-encrypted", ctx: sandboxUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "settings.ipConfiguration.sslMode", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"))}},
		{name: "sandbox without CMEK", policy: "postgres-private-encrypted", ctx: sandboxUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "encryptionKeyName", nil))},
			errors:    []string{"encryptionKeyName is not set"}},
		{name: "public IPv4 by default", policy: "postgres-private-encrypted", ctx: prodUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "settings.ipConfiguration.ipv4Enabled", nil))},
			errors:    []string{"ipv4Enabled is not false"}},
		{name: "public IPv4 and no VPC", policy: "postgres-private-encrypted", ctx: sandboxUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "settings.ipConfiguration.ipv4Enabled", true, "settings.ipConfiguration.privateNetwork", nil))},
			errors:    []string{"ipv4Enabled is not false", "privateNetwork is not set"}},
		{name: "unencrypted connections allowed", policy: "postgres-private-encrypted", ctx: prodUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "settings.ipConfiguration.sslMode", "ALLOW_UNENCRYPTED_AND_ENCRYPTED", "settings.ipConfiguration.requireSsl", true))},
			errors:    []string{`sslMode is "ALLOW_UNENCRYPTED_AND_ENCRYPTED"`}},
		{name: "no TLS setting at all", policy: "postgres-private-encrypted", ctx: prodUS,
			resources: []inventory.Resource{sql(with(goodSQL(), "settings.ipConfiguration.sslMode", nil))},
			errors:    []string{`sslMode is "unset"`}},
		{name: "a second cell without CMEK on a public IP", policy: "postgres-private-encrypted", ctx: prodUS,
			resources: []inventory.Resource{sql(goodSQL()), res(sqlT, "pg-b", with(goodSQL(), "name", "oms-prod-us-b-pg",
				"encryptionKeyName", nil, "settings.ipConfiguration.ipv4Enabled", true))},
			errors: []string{"pg-b: encryptionKeyName is not set", "pg-b: settings.ipConfiguration.ipv4Enabled is not false"}},

		// stateful-ha
		{name: "3 replicas over zones with a PDB", policy: "stateful-ha", ctx: prodUS,
			resources: []inventory.Resource{sts(goodStatefulSet("redis")), pdb(goodPDB("redis"))}},
		{name: "PDB by minAvailable 2 and matchExpressions", policy: "stateful-ha", ctx: prodUS,
			resources: []inventory.Resource{sts(goodStatefulSet("redis")), pdb(with(goodPDB("redis"), "spec.maxUnavailable", nil, "spec.minAvailable", 2.0,
				"spec.selector", obj{"matchExpressions": list(obj{"key": "app.kubernetes.io/name", "operator": "In", "values": list("redis")})}))}},
		{name: "sandbox runs a single replica without PDB", policy: "stateful-ha", ctx: sandboxUS,
			resources: []inventory.Resource{sts(with(goodStatefulSet("redis"), "spec.replicas", 1.0, "spec.template.spec.topologySpreadConstraints", nil))}},
		{name: "2 replicas", policy: "stateful-ha", ctx: prodUS,
			resources: []inventory.Resource{sts(with(goodStatefulSet("redis"), "spec.replicas", 2.0)), pdb(with(goodPDB("redis"), "spec.maxUnavailable", 0.0))},
			warnings:  []string{"allows no eviction"},
			errors:    []string{"spec.replicas is 2"}},
		{name: "replicas unset means 1", policy: "stateful-ha", ctx: prodUS,
			resources: []inventory.Resource{sts(with(goodStatefulSet("redis"), "spec.replicas", nil)), pdb(with(goodPDB("redis"), "spec.maxUnavailable", 0.0))},
			warnings:  []string{"allows no eviction"},
			errors:    []string{"spec.replicas is 1"}},
		{name: "hostname spread only", policy: "stateful-ha", ctx: prodUS,
			resources: []inventory.Resource{sts(with(goodStatefulSet("redis"), "spec.template.spec.topologySpreadConstraints",
				list(obj{"maxSkew": 1.0, "topologyKey": "kubernetes.io/hostname", "labelSelector": obj{"matchLabels": obj{"app.kubernetes.io/name": "redis"}}}))), pdb(goodPDB("redis"))},
			errors: []string{"no topology.kubernetes.io/zone constraint"}},
		{name: "zone spread with skew 2 over other pods", policy: "stateful-ha", ctx: prodUS,
			resources: []inventory.Resource{sts(with(goodStatefulSet("redis"), "spec.template.spec.topologySpreadConstraints",
				list(obj{"maxSkew": 2.0, "topologyKey": "topology.kubernetes.io/zone", "labelSelector": otherLabels}))), pdb(goodPDB("redis"))},
			errors: []string{"maxSkew 2", "does not select the StatefulSet's own pods"}},
		{name: "zone spread without labelSelector spreads nothing", policy: "stateful-ha", ctx: prodUS,
			resources: []inventory.Resource{sts(with(goodStatefulSet("redis"), "spec.template.spec.topologySpreadConstraints",
				list(obj{"maxSkew": 1.0, "topologyKey": "topology.kubernetes.io/zone"}))), pdb(goodPDB("redis"))},
			errors: []string{"does not select the StatefulSet's own pods"}},
		{name: "soft zone spread warns", policy: "stateful-ha", ctx: prodUS,
			resources: []inventory.Resource{sts(with(goodStatefulSet("redis"), "spec.template.spec.topologySpreadConstraints",
				list(obj{"maxSkew": 1.0, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": obj{"matchLabels": obj{"app.kubernetes.io/name": "redis"}}}))), pdb(goodPDB("redis"))},
			warnings: []string{"ScheduleAnyway"}},
		{name: "no PDB", policy: "stateful-ha", ctx: prodUS,
			resources: []inventory.Resource{sts(goodStatefulSet("redis"))},
			errors:    []string{"no PodDisruptionBudget"}},
		{name: "PDB selecting other pods", policy: "stateful-ha", ctx: prodUS,
			resources: []inventory.Resource{sts(goodStatefulSet("redis")), pdb(with(goodPDB("redis"), "spec.selector", otherLabels))},
			errors:    []string{"no PodDisruptionBudget"}},
		{name: "PDB in another namespace", policy: "stateful-ha", ctx: prodUS,
			resources: []inventory.Resource{sts(goodStatefulSet("redis")), pdb(with(goodPDB("redis"), "metadata.namespace", "oms-web"))},
			errors:    []string{"no PodDisruptionBudget"}},
		{name: "PDB with an empty selector", policy: "stateful-ha", ctx: prodUS,
			resources: []inventory.Resource{sts(goodStatefulSet("redis")), pdb(with(goodPDB("redis"), "spec.selector", obj{}))},
			errors:    []string{"no PodDisruptionBudget"}},
		{name: "PDB lets a majority go", policy: "stateful-ha", ctx: prodUS,
			resources: []inventory.Resource{sts(goodStatefulSet("redis")), pdb(with(goodPDB("redis"), "spec.maxUnavailable", "50%"))},
			errors:    []string{"lets 2 of 3 replicas be evicted"}},
		{name: "PDB that blocks drains warns", policy: "stateful-ha", ctx: prodUS,
			resources: []inventory.Resource{sts(goodStatefulSet("redis")), pdb(with(goodPDB("redis"), "spec.maxUnavailable", nil, "spec.minAvailable", "67%"))},
			warnings:  []string{"allows no eviction of 3 replicas"}},

		// no-plaintext-secrets
		{name: "secrets as outputs and references", policy: "no-plaintext-secrets", ctx: prodUS, resources: []inventory.Resource{
			res("gcp:sql/user:User", "pg-northwind", obj{"name": "northwind", "instance": "oms-prod-us-pg", "password": "[secret]", "passwordPolicy": obj{"enablePasswordPolicy": true}}),
			res("gcp:secretmanager/secretVersion:SecretVersion", "pg-northwind", obj{"secret": "oms-prod-us-pg-secret-northwind-id", "secretData": "[secret]"}),
			res("gcp:secretmanager/secretVersion:SecretVersion", "pg-contoso", obj{"secret": "projects/p/secrets/pg-contoso", "secretData": "[secret]"}),
			res(smSecretT, "pg-northwind", obj{"secretId": "oms-prod-us-pg-northwind", "replication": obj{"auto": obj{}}}),
			res(secretT, "redis-auth", obj{"metadata": obj{"name": "redis-auth"}, "stringData": obj{"password": "[secret]"}, "type": "Opaque"}),
			res(stsT, "redis", with(goodStatefulSet("redis"), "spec.template.spec.containers", list(obj{
				"name": "redis", "args": list("--requirepass", "$(REDIS_PASSWORD)"),
				"env": list(
					obj{"name": "REDIS_PASSWORD", "valueFrom": obj{"secretKeyRef": obj{"name": "redis-auth", "key": "password"}}},
					obj{"name": "REDIS_PASSWORD_FILE", "value": "/etc/redis/auth/password"},
					obj{"name": "RABBITMQ_DEFAULT_USER", "value": "oms"},
				),
				"volumeMounts": list(obj{"name": "auth", "mountPath": "/etc/redis/auth"}),
			}), "spec.template.spec.volumes", list(obj{"name": "auth", "secret": obj{"secretName": "redis-auth"}}))),
			res(cmT, "redis-conf", obj{"data": obj{"redis.conf": "appendonly yes\ninclude /etc/redis/auth/auth.conf\n# requirepass is set from the Secret\n", "token_ttl": "3600",
				"sentinel.conf": "sentinel monitor m @MASTER_HOST@ 6379 2\nsentinel auth-pass m @REDIS_PASSWORD@\n"}}),
			res("pulumi:providers:kubernetes", "k8s", obj{"kubeconfig": "[secret]"}),
			res("pulumi:providers:gcp", "gcp", obj{"project": "p", "region": "us-central1"}),
		}},
		{name: "plain-text credentials everywhere", policy: "no-plaintext-secrets", ctx: prodUS, resources: []inventory.Resource{
			res("gcp:sql/user:User", "pg-user", obj{"name": "northwind", "password": "hunter2"}),
			res(secretT, "redis-auth", obj{"stringData": obj{"password": "hunter2"}, "data": obj{"username": "[unknown]"}}),
			res(stsT, "rabbitmq", with(goodStatefulSet("rabbitmq"), "spec.template.spec.containers", list(obj{
				"name": "rabbitmq", "args": list("--requirepass", "hunter2"), "command": list("redis-server --masterauth=hunter2"),
				"env": list(obj{"name": "RABBITMQ_DEFAULT_PASS", "value": "hunter2"}, obj{"name": "RABBITMQ_ERLANG_COOKIE", "value": "hunter2"},
					obj{"name": "AMQP_URL", "value": "amqp://oms:hunter2@rabbitmq:5672/"}),
			}))),
			res(cmT, "redis-conf", obj{"data": obj{"redis.conf": "appendonly yes\nrequirepass hunter2\n"}}),
			res(cmT, "sentinel-conf", obj{"data": obj{"sentinel.conf": "sentinel monitor m redis-0 6379 2\nsentinel auth-pass m hunter2\n"}}),
			res(cmT, "rabbitmq-conf", obj{"data": obj{"rabbitmq.conf": "default_user = oms\ndefault_pass = hunter2\n"}}),
			res("pulumi:providers:gcp", "gcp", obj{"credentials": "hunter2"}),
			res("cloudflare:index/record:Record", "api", obj{"settings": obj{"apiToken": "hunter2"}}),
			res("cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared", "tunnel", obj{"name": "oms", "secret": "aHVudGVyMg=="}),
			res("gcp:secretmanager/secretVersion:SecretVersion", "tls", obj{"secretData": "-----BEGIN RSA PRIVATE KEY-----\nhunter2\n-----END RSA PRIVATE KEY-----"}),
		}, errors: []string{
			"pg-user: password holds a plain-text value",
			"redis-auth: stringData.password holds a plain-text value", // the key rule
			"redis-auth: stringData.password is not a secret output",   // the Secret rule
			"redis-auth: data.username is not a secret output",
			"rabbitmq: spec.template.spec.containers[0].args[0] passes a credential",
			"rabbitmq: spec.template.spec.containers[0].command[0] passes a credential",
			"environment variable RABBITMQ_DEFAULT_PASS has a literal value",
			"environment variable RABBITMQ_ERLANG_COOKIE has a literal value",
			"rabbitmq: spec.template.spec.containers[0].env[2].value embeds a password in a URL",
			"redis-conf: data.redis.conf sets a credential in plain text (requirepass)",
			"sentinel-conf: data.sentinel.conf sets a credential in plain text (sentinel)",
			"rabbitmq-conf: data.rabbitmq.conf sets a credential in plain text (default_pass)",
			"gcp: credentials holds a plain-text value",
			"api: settings.apiToken holds a plain-text value",
			"tunnel: secret holds a plain-text value",
			"tls: secretData holds a plain-text value",
			"tls: secretData holds a PEM private key",
		}},

		// name-limits
		{name: "names within limits", policy: "name-limits", ctx: prodUS, resources: []inventory.Resource{
			res(clusterT, "oms-prod-us-gke", goodCluster()),
			res(poolT, "oms-prod-us-gke-stateful", with(goodPool(), "name", "stateful")),
			res(sqlT, "pg", goodSQL()),
			res("gcp:sql/database:Database", "db", obj{"name": "acme_retail", "instance": "oms-prod-us-pg"}),
			res("gcp:sql/user:User", "u1", obj{"name": "acme-retail", "type": "BUILT_IN"}),
			res("gcp:sql/user:User", "u2", obj{"name": "oms-runtime@omscloud-prod-us.iam", "type": "CLOUD_IAM_SERVICE_ACCOUNT"}),
			res("gcp:serviceaccount/account:Account", "sa", obj{"accountId": "oms-prod-us-nodes"}),
			res("gcp:kms/keyRing:KeyRing", "kr", obj{"name": "oms-prod-us_2024", "location": "us-central1"}),
			res(smSecretT, "s", obj{"secretId": "oms-prod-us-pg-Northwind_password"}),
			res(bucketT, "b", obj{"name": "oms-prod-us-backups", "location": "US", "labels": obj{"tier": "backup"}}),
			res(fwT, "oms-prod-us-network-allow-master-webhooks", obj{"name": "oms-prod-us-allow-master-webhooks"}),
			res("gcp:projects/iAMMember:IAMMember", "oms-prod-us-gke-nodes-stackdriver.resourceMetadata.writer", obj{"role": "roles/stackdriver.resourceMetadata.writer"}),
			res("gcp:compute/network:Network", "vpc", obj{}), // auto-named: "vpc-" + 7 characters
			res("pulumi:providers:gcp", "gcp", obj{"defaultLabels": obj{"cost-center": "oms", "stack": "prod-eu"}}),
			res(svcT, "redis", obj{"metadata": obj{"name": "redis-sentinel", "namespace": "oms-data", "labels": obj{"app.kubernetes.io/name": "redis", "omscloud.io/pool": "stateful"}}}),
			res(stsT, "redis", goodStatefulSet("redis")),
			res("pulumi:providers:kubernetes", "k8s", obj{"kubeconfig": "[secret]"}),
			res("gcp:dns/recordSet:RecordSet", "acme", obj{"name": "_acme-challenge.api.us.omscloud.example.com.", "type": "CNAME"}),
			res("gcp:certificatemanager/certificate:Certificate", "cert", obj{"name": "oms-prod-us-1083756e"}),
		}},
		{name: "names beyond limits", policy: "name-limits", ctx: prodUS, resources: []inventory.Resource{
			res(clusterT, "gke", with(goodCluster(), "name", long(41))),
			res(poolT, "pool", with(goodPool(), "name", "Web")),
			res(sqlT, "pg", with(goodSQL(), "name", long(99))),
			res("gcp:sql/database:Database", "db", obj{"name": long(64)}),
			res("gcp:sql/user:User", "u1", obj{"name": "pg_oms"}),
			res("gcp:sql/user:User", "u2", obj{"name": "oms@p.iam.gserviceaccount.com", "type": "CLOUD_IAM_SERVICE_ACCOUNT"}),
			res("gcp:serviceaccount/account:Account", "sa", obj{"accountId": "oms-a"}),
			res("gcp:kms/cryptoKey:CryptoKey", "key", obj{"name": "cloudsql.key"}),
			res(smSecretT, "s", obj{"secretId": "pg/northwind"}),
			res(bucketT, "b1", obj{"name": "google-backups"}),
			res(bucketT, "b2", obj{"name": long(64)}),
			res(fwT, "fw", obj{"name": "allow-internal-"}),
			res("gcp:compute/network:Network", "oms-prod-us-"+long(50), obj{}),
			res("gcp:compute/subnetwork:Subnetwork", "subnet", obj{"name": "nodes", "labels": obj{"Team": "x"}}),
			res(poolT, "pool2", with(goodPool(), "nodeConfig.resourceLabels", obj{"owner": "Platform Team"})),
			res("gcp:dataflow/job:Job", "job", obj{"name": "nightly export"}),
			res("gcp:dns/recordSet:RecordSet", "a", obj{"name": "api.us.omscloud.example.com", "type": "A"}),
			res("gcp:certificatemanager/certificateMapEntry:CertificateMapEntry", "entry", obj{"name": "1-api"}),
			res("pulumi:providers:gcp", "gcp", obj{"defaultLabels": obj{"stack": long(64)}}),
			res(svcT, "svc", obj{"metadata": obj{"name": "1redis"}}),
			res(svcT, "svc2", obj{"metadata": obj{"name": long(64)}}),
			res(stsT, "sts", with(goodStatefulSet("redis"), "metadata.name", long(53))),
			res(cmT, "cm", obj{"metadata": obj{"name": "Redis_Conf", "namespace": "OMS", "labels": obj{"bad_prefix.io/x": "y", "app": "redis server"}}}),
		}, errors: []string{
			"gke: name (name) is 41 characters",
			`pool: name "Web"`,
			"pg: name (name) is 99 characters",
			"db: name (name) is 64 characters",
			`u1: name "pg_oms": the pg_ and cloudsql prefixes are reserved`,
			"u2: name \"oms@p.iam.gserviceaccount.com\": IAM service account users",
			"sa: accountId (accountId) is 5 characters",
			`key: name "cloudsql.key"`,
			`s: secretId "pg/northwind"`,
			`b1: name "google-backups" starts with goog or contains google`,
			"b2: name is 64 characters: bucket names without dots",
			`fw: name "allow-internal-"`,
			"oms-prod-us-" + long(50) + ": name (name unset, auto-named from",
			`subnet: labels key "Team"`,
			`pool2: nodeConfig.resourceLabels.owner value "Platform Team"`,
			`job: name "nightly export"`,
			`a: name "api.us.omscloud.example.com" (name): gcp:dns/recordSet:RecordSet names use a fully qualified lowercase DNS name ending with a dot`,
			`entry: name "1-api"`,
			"gcp: defaultLabels.stack value",
			`svc: metadata.name "1redis" (metadata.name) is not a DNS-1035 label`,
			"svc2: metadata.name (metadata.name) is 64 characters: a Service name is at most 63",
			"sts: metadata.name (metadata.name) is 53 characters: a StatefulSet name is at most 52",
			`cm: metadata.name "Redis_Conf"`,
			`cm: metadata.namespace "OMS"`,
			`cm: metadata.labels key "bad_prefix.io/x"`,
			`cm: metadata.labels.app value "redis server"`,
		}},

		// firewall-ingress
		{name: "deny from anywhere, allow from named ranges", policy: "firewall-ingress", ctx: prodUS, resources: []inventory.Resource{
			fw("deny-all", obj{"direction": "INGRESS", "denies": list(obj{"protocol": "all"}), "sourceRanges": list("0.0.0.0/0")}),
			fw("internal", obj{"allows": list(obj{"protocol": "all"}), "sourceRanges": list("10.10.0.0/20")}),
			fw("tagged", obj{"allows": list(obj{"protocol": "tcp"}), "sourceTags": list("bastion")}),
			fw("egress", obj{"direction": "EGRESS", "allows": list(obj{"protocol": "all"}), "destinationRanges": list("0.0.0.0/0")}),
			fw("disabled", obj{"disabled": true, "allows": list(obj{"protocol": "tcp"}), "sourceRanges": list("0.0.0.0/0")}),
		}},
		{name: "allow from the Internet", policy: "firewall-ingress", ctx: sandboxUS, resources: []inventory.Resource{
			fw("ssh", obj{"direction": "INGRESS", "allows": list(obj{"protocol": "tcp", "ports": list("22")}), "sourceRanges": list("10.0.0.0/8", "0.0.0.0/0")}),
			fw("v6", obj{"allows": list(obj{"protocol": "tcp"}), "sourceRanges": list("::/0")}),
			fw("no-source", obj{"allows": list(obj{"protocol": "tcp"})}),
		}, errors: []string{"ssh: allows ingress from 0.0.0.0/0", "v6: allows ingress from ::/0", "no-source: allows ingress with no sourceRanges"}},

		// gke-private-cluster
		{name: "private cluster with WI and authorized networks", policy: "gke-private-cluster", ctx: prodUS, resources: []inventory.Resource{cluster(goodCluster())}},
		{name: "zonal sandbox cluster is allowed", policy: "gke-private-cluster", ctx: sandboxUS, resources: []inventory.Resource{cluster(with(goodCluster(), "location", "us-central1-a"))}},
		{name: "public nodes, no WI, open control plane, zonal production", policy: "gke-private-cluster", ctx: prodUS, resources: []inventory.Resource{
			cluster(with(goodCluster(), "privateClusterConfig.enablePrivateNodes", false, "workloadIdentityConfig", nil, "location", "us-central1-a",
				"masterAuthorizedNetworksConfig.cidrBlocks", list(obj{"cidrBlock": "0.0.0.0/0"}), "masterAuthorizedNetworksConfig.gcpPublicCidrsAccessEnabled", true)),
		}, errors: []string{"enablePrivateNodes is not true", "workloadPool is not set", "authorizes 0.0.0.0/0", "location us-central1-a is a zone"},
			warnings: []string{"gcpPublicCidrsAccessEnabled"}},
		{name: "no authorized networks block", policy: "gke-private-cluster", ctx: sandboxUS, resources: []inventory.Resource{
			cluster(with(goodCluster(), "masterAuthorizedNetworksConfig", nil)),
		}, errors: []string{"masterAuthorizedNetworksConfig is not set"}},
		{name: "authorized networks closed to every outside source", policy: "gke-private-cluster", ctx: sandboxUS, resources: []inventory.Resource{
			cluster(with(goodCluster(), "masterAuthorizedNetworksConfig.cidrBlocks", list())),
		}, warnings: []string{"cidrBlocks is empty"}},

		// node-pool-spread
		{name: "3 zones, 1 node per zone", policy: "node-pool-spread", ctx: prodUS, resources: []inventory.Resource{cluster(goodCluster()), pool(goodPool())}},
		{name: "zones from the cluster, total minimum per zone", policy: "node-pool-spread", ctx: prodUS, resources: []inventory.Resource{
			cluster(goodCluster()), pool(with(goodPool(), "nodeLocations", nil, "autoscaling", obj{"totalMinNodeCount": 3, "totalMaxNodeCount": 9})),
		}},
		{name: "regional cluster default zones", policy: "node-pool-spread", ctx: prodUS, resources: []inventory.Resource{
			cluster(with(goodCluster(), "nodeLocations", nil)), pool(with(goodPool(), "nodeLocations", nil)),
		}},
		{name: "sandbox over 2 zones", policy: "node-pool-spread", ctx: sandboxUS, resources: []inventory.Resource{
			pool(with(goodPool(), "nodeLocations", list("us-central1-a", "us-central1-b"))),
		}},
		{name: "production over 2 zones", policy: "node-pool-spread", ctx: prodUS, resources: []inventory.Resource{
			pool(with(goodPool(), "nodeLocations", list("us-central1-a", "us-central1-b"))),
		}, errors: []string{"spans 2 zone(s) (nodeLocations): production pools need at least 3"}},
		{name: "sandbox in one zone of a zonal cluster", policy: "node-pool-spread", ctx: sandboxUS, resources: []inventory.Resource{
			cluster(with(goodCluster(), "location", "us-central1-a", "nodeLocations", nil)), pool(with(goodPool(), "nodeLocations", nil)),
		}, errors: []string{"spans 1 zone(s) (a zonal cluster)"}},
		{name: "no autoscaling, scale to zero", policy: "node-pool-spread", ctx: prodUS, resources: []inventory.Resource{
			res(poolT, "fixed", with(goodPool(), "autoscaling", nil)),
			res(poolT, "zero", with(goodPool(), "autoscaling.minNodeCount", 0.0)),
			res(poolT, "total", with(goodPool(), "autoscaling", obj{"totalMinNodeCount": 2.0, "totalMaxNodeCount": 6.0})),
		}, errors: []string{"fixed: autoscaling is not set", "zero: autoscaling.minNodeCount is 0", "total: autoscaling.totalMinNodeCount 2 is below its 3 zones"}},

		// edge-no-public-ip
		{name: "cloudflare mode with only a PSA range", policy: "edge-no-public-ip", ctx: prodCF, resources: []inventory.Resource{
			res(gaddrT, "psa", obj{"addressType": "INTERNAL", "purpose": "VPC_PEERING", "prefixLength": 16.0}),
			res("gcp:compute/forwardingRule:ForwardingRule", "ilb", obj{"loadBalancingScheme": "INTERNAL"}),
			res(svcT, "internal-lb", obj{"metadata": obj{"annotations": obj{"networking.gke.io/load-balancer-type": "Internal"}}, "spec": obj{"type": "LoadBalancer"}}),
			res(svcT, "web", obj{"spec": obj{"type": "ClusterIP"}}),
		}},
		{name: "gcp mode may have a public load balancer", policy: "edge-no-public-ip", ctx: prodUS, resources: []inventory.Resource{
			res(gaddrT, "lb-ip", obj{"addressType": "EXTERNAL"}),
			res("gcp:compute/globalForwardingRule:GlobalForwardingRule", "https", obj{"portRange": "443"}),
		}},
		{name: "cloudflare mode with public entry points", policy: "edge-no-public-ip", ctx: prodCF, resources: []inventory.Resource{
			res(gaddrT, "lb-ip", obj{"addressType": "EXTERNAL"}),
			res(gaddrT, "default-ip", obj{"name": "x"}),
			res("gcp:compute/globalForwardingRule:GlobalForwardingRule", "https", obj{"portRange": "443"}),
			res("gcp:compute/forwardingRule:ForwardingRule", "nlb", obj{"loadBalancingScheme": "EXTERNAL_MANAGED"}),
			res(svcT, "public-lb", obj{"spec": obj{"type": "LoadBalancer"}}),
			res("kubernetes:networking.k8s.io/v1:Ingress", "ing", obj{"spec": obj{"rules": list()}}),
		}, errors: []string{"lb-ip: reserves an external global IP address (addressType EXTERNAL)", "default-ip: reserves an external global IP address (addressType unset)",
			"https: is a global forwarding rule", "nlb: is an external forwarding rule", "public-lb: is a LoadBalancer Service", "ing: is an Ingress"}},

		// residency
		{name: "everything in the jurisdiction", policy: "residency", ctx: prodUS, resources: []inventory.Resource{
			res("pulumi:providers:gcp", "gcp", obj{"region": "us-central1"}),
			res(clusterT, "gke", goodCluster()),
			res(sqlT, "pg", goodSQL()),
			res(bucketT, "backups", obj{"location": "us-east4"}),
			res(bucketT, "media", obj{"location": "US"}),
			res("gcp:kms/keyRing:KeyRing", "kr", obj{"location": "global"}),
			res(smSecretT, "s", obj{"replication": obj{"userManaged": obj{"replicas": list(obj{"location": "us-central1"}, obj{"location": "us-east4"})}}}),
			res("gcp:compute/subnetwork:Subnetwork", "nodes", obj{"region": "[unknown]"}),
			// A grant stores nothing: its location is where the release registry it grants on lives.
			res(repoIAMT, "pull", obj{"location": "europe", "project": "omscloud-release", "repository": "oms"}),
		}},
		{name: "data outside the jurisdiction", policy: "residency", ctx: prodUS, resources: []inventory.Resource{
			res(bucketT, "media", obj{"location": "EU"}),
			res(sqlT, "pg", with(goodSQL(), "settings.backupConfiguration.location", "europe-west1")),
			res(poolT, "web", with(goodPool(), "nodeLocations", list("us-central1-a", "europe-west1-b"))),
			res(smSecretT, "s", obj{"replication": obj{"userManaged": obj{"replicas": list(obj{"location": "asia-southeast1"})}}}),
			res(smSecretT, "auto", obj{"replication": obj{"auto": obj{}}}),
		}, errors: []string{"media: location is EU: outside the stack's jurisdiction locations (us-central1, us-east4, global, us)", "pg: settings.backupConfiguration.location is europe-west1", "web: nodeLocations[1] is europe-west1-b",
			"s: replication.userManaged.replicas[0].location is asia-southeast1"},
			warnings: []string{"auto: replication.auto"}},
		{name: "no primary region in the context", policy: "residency", ctx: policy.Context{Environment: policy.Production}, resources: nil,
			errors: []string{"no PrimaryRegion"}},

		// hpa-metrics-served
		{name: "CPU from metrics-server", policy: "hpa-metrics-served", ctx: prodUS, resources: []inventory.Resource{res(hpaT, "web", hpaOn(cpuMetric))}},
		{name: "a request rate with the adapter that serves it", policy: "hpa-metrics-served", ctx: prodUS, resources: []inventory.Resource{
			res(hpaT, "web", hpaOn(cpuMetric, rateMetric)),
			res(apiSvcT, "v1beta2.custom.metrics.k8s.io", obj{"spec": obj{"group": "custom.metrics.k8s.io", "version": "v1beta2"}}),
		}},
		{name: "a request rate nothing serves", policy: "hpa-metrics-served", ctx: sandboxUS,
			resources: []inventory.Resource{res(hpaT, "web", hpaOn(cpuMetric, rateMetric))},
			errors:    []string{"web: spec.metrics[1], type Pods (http_requests_per_second from custom.metrics.k8s.io), comes from an API nothing in the stack serves"}},
		{name: "an external metric next to a custom metrics adapter", policy: "hpa-metrics-served", ctx: prodUS, resources: []inventory.Resource{
			res(hpaT, "web", hpaOn(obj{"type": "External", "external": obj{"metric": obj{"name": "queue_depth"}}})),
			res(apiSvcT, "v1beta2.custom.metrics.k8s.io", obj{"spec": obj{"group": "custom.metrics.k8s.io"}}),
		}, errors: []string{"web: spec.metrics[0], type External (queue_depth from external.metrics.k8s.io)"}},

		// dr-region-cold
		{name: "only backups, keys and the reserved IP in the DR region", policy: "dr-region-cold", ctx: prodUS, resources: []inventory.Resource{
			res("pulumi:providers:gcp", "gcp-dr", obj{"region": "us-east4"}),
			res(bucketT, "backups", obj{"location": "us-east4"}),
			res("gcp:kms/keyRing:KeyRing", "kr-dr", obj{"location": "us-east4"}),
			res("gcp:compute/address:Address", "dr-ip", obj{"region": "us-east4", "addressType": "EXTERNAL"}),
			res(sqlT, "pg", with(goodSQL(), "settings.backupConfiguration.location", "us-east4")),
			res(smSecretT, "backup-key", obj{"replication": obj{"userManaged": obj{"replicas": list(obj{"location": "us-east4"})}}}),
			res(clusterT, "gke", goodCluster()),
			res(repoIAMT, "pull", obj{"location": "us-east4", "project": "omscloud-release", "repository": "oms"}),
		}},
		{name: "a DR spin-up stack runs in its region", policy: "dr-region-cold", ctx: policy.Context{Environment: policy.Production, PrimaryRegion: "us-east4", DRRegion: "us-east4"},
			resources: []inventory.Resource{res(clusterT, "gke", with(goodCluster(), "location", "us-east4"))}},
		{name: "running things in the DR region", policy: "dr-region-cold", ctx: prodUS, resources: []inventory.Resource{
			res(clusterT, "gke", with(goodCluster(), "location", "us-east4", "nodeLocations", nil)),
			res("gcp:compute/subnetwork:Subnetwork", "nodes", obj{"region": "us-east4"}),
			res(poolT, "web", with(goodPool(), "nodeLocations", list("us-central1-a", "us-east4-b"))),
			res(sqlT, "pg", with(goodSQL(), "region", "us-east4")),
		}, errors: []string{"gke: location is us-east4", "nodes: region is us-east4", "web: nodeLocations[1] is us-east4-b", "pg: region is us-east4"}},

		// api-dependencies
		{name: "every resource waits for its API, directly, through a resource or through a component", policy: "api-dependencies", ctx: prodUS,
			resources: func() []inventory.Resource {
				component := res("omscloud:apis:APIs", "apis", nil)
				compute := parented(res(apis.ServiceType, "compute", obj{"project": "p", "service": "compute.googleapis.com"}), component)
				kms := parented(res(apis.ServiceType, "kms", obj{"project": "p", "service": "cloudkms.googleapis.com"}), component)
				vpc := dependsOn(res("gcp:compute/network:Network", "vpc", obj{"project": "p"}), compute)
				return []inventory.Resource{
					component, compute, kms, vpc,
					dependsOn(res(fwT, "fw", obj{"project": "p"}), vpc),
					dependsOn(res("gcp:kms/keyRing:KeyRing", "ring", obj{"project": "p"}), component),
					res("gcp:dns/recordSet:RecordSet", "shared-zone-record", obj{"project": "dns-hub"}),
				}
			}()},
		{name: "a resource that may start before its API is on", policy: "api-dependencies", ctx: prodUS,
			resources: func() []inventory.Resource {
				compute := res(apis.ServiceType, "compute", obj{"project": "p", "service": "compute.googleapis.com"})
				return []inventory.Resource{
					compute,
					res("gcp:compute/network:Network", "vpc", obj{"project": "p"}),
					dependsOn(res("gcp:kms/keyRing:KeyRing", "ring", obj{"project": "p"}), compute),
				}
			}(), errors: []string{"vpc: does not wait for the projects.Service of compute.googleapis.com",
				"ring: does not wait for the projects.Service of cloudkms.googleapis.com"}},

		// alerting
		{name: "production alerts on every class, routed, with an uptime check and the SLO", policy: "alerting", ctx: prodUS,
			resources: goodMonitoring(rules.Classes...)},
		{name: "a sandbox needs none of it", policy: "alerting", ctx: sandboxUS,
			resources: []inventory.Resource{res(clusterT, "gke", goodCluster())}},
		{name: "production without DR needs no DR-readiness alert", policy: "alerting",
			ctx:       policy.Context{Environment: policy.Production, PrimaryRegion: "asia-southeast1"},
			resources: goodMonitoring(slices.DeleteFunc(slices.Clone(rules.Classes), func(c string) bool { return c == rules.ClassDR })...)},
		{name: "the database alerts watch every cell's instance, of any DR generation", policy: "alerting", ctx: prodUS,
			resources: append(databaseAlert(`max by (database_id) (cloudsql_googleapis_com:database_up{database_id=~"p:(oms-prod-us-pg|oms-prod-us-b-pg)(-[0-9a-f]+)?"}) < 1`),
				res(sqlT, "pg", with(goodSQL(), "project", "p")), res(sqlT, "pg-b", with(goodSQL(), "project", "p", "name", "oms-prod-us-b-pg")),
				res(sqlT, "pg-dr", with(goodSQL(), "project", "p", "name", "oms-prod-us-b-pg-0a1b2c")))},
		{name: "a database alert that misses a cell", policy: "alerting", ctx: prodUS,
			resources: append(databaseAlert(`min(cloudsql_googleapis_com:database_up{database_id=~"p:oms-prod-us-pg(-[0-9a-f]+)?"}) < 1`),
				res(sqlT, "pg", with(goodSQL(), "project", "p")), res(sqlT, "pg-b", with(goodSQL(), "project", "p", "name", "oms-prod-us-b-pg"))),
			errors: []string{"alert-database: database_id=~" + `"p:oms-prod-us-pg(-[0-9a-f]+)?"` + " misses the Cloud SQL instance oms-prod-us-b-pg"}},
		{name: "an exact database_id that misses the other project's instance", policy: "alerting", ctx: prodUS,
			resources: append(databaseAlert(`min(cloudsql_googleapis_com:database_up{database_id="q:oms-prod-us-pg"}) < 1`),
				res(sqlT, "pg", with(goodSQL(), "project", "p"))),
			errors: []string{"misses the Cloud SQL instance oms-prod-us-pg"}},
		{name: "missing classes, an alert to no one, no uptime check, a lax SLO", policy: "alerting", ctx: prodUS,
			resources: func() []inventory.Resource {
				var out []inventory.Resource
				for _, r := range goodMonitoring(rules.ClassSLO, rules.ClassEndpoint, rules.ClassTLS, rules.ClassMessaging,
					rules.ClassWebhooks, rules.ClassDatabase, rules.ClassCache, rules.ClassBroker) {
					switch r.Type {
					case "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig":
						continue
					case "gcp:monitoring/slo:Slo":
						r.Inputs["goal"] = 0.999
					case "gcp:monitoring/alertPolicy:AlertPolicy":
						if r.Name == "alert-webhooks" {
							r.Inputs["notificationChannels"] = list()
						}
					}
					out = append(out, r)
				}
				return out
			}(), errors: []string{"class backup", "class dr", "alert-webhooks: notificationChannels is empty", "no uptime check",
				"no availability SLO"}},
	}
}

// goodMonitoring is an alert policy per class, an uptime check and the availability SLO, as components/observability
// declares them.
func goodMonitoring(classes ...string) []inventory.Resource {
	out := []inventory.Resource{
		res("omscloud:environment:Environment", "env", nil),
		res("gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig", "uptime", obj{"selectedRegions": list("USA", "EUROPE", "ASIA_PACIFIC")}),
		res("gcp:monitoring/slo:Slo", "availability", obj{"sloId": "availability", "goal": 0.9995}),
	}
	for _, c := range classes {
		out = append(out, res("gcp:monitoring/alertPolicy:AlertPolicy", "alert-"+c, obj{
			"notificationChannels": list("oncall-email"),
			"conditions": list(obj{"conditionPrometheusQueryLanguage": obj{
				"query": "vector(1)", "labels": obj{"class": c, "severity": "page"},
			}}),
		}))
	}
	return out
}

// databaseAlert is goodMonitoring whose database alert runs query.
func databaseAlert(query string) []inventory.Resource {
	out := goodMonitoring(rules.Classes...)
	for _, r := range out {
		if r.Name == "alert-"+rules.ClassDatabase {
			asCondition(r)["query"] = query
		}
	}
	return out
}

func asCondition(r inventory.Resource) obj {
	return r.Inputs["conditions"].([]any)[0].(obj)["conditionPrometheusQueryLanguage"].(obj)
}

// dependsOn makes r wait for deps.
func dependsOn(r inventory.Resource, deps ...inventory.Resource) inventory.Resource {
	for _, d := range deps {
		r.DependsOn = append(r.DependsOn, d.URN)
	}
	return r
}

// parented makes r a child of component.
func parented(r, component inventory.Resource) inventory.Resource {
	r.Parent, r.ParentURN = component.Name, component.URN
	return r
}

func TestPolicies(t *testing.T) {
	for _, c := range policyCases() {
		t.Run(c.policy+"/"+c.name, func(t *testing.T) {
			findings := runCase(t, c)
			for _, f := range findings {
				assert.NotContains(t, f.Message, "hunter2", "a finding must never quote a secret")
			}
		})
	}
}

// TestEveryPolicyHasPassingAndFailingExamples keeps the table honest as policies are added.
func TestEveryPolicyHasPassingAndFailingExamples(t *testing.T) {
	passing, failing := map[string]bool{}, map[string]bool{}
	for _, c := range policyCases() {
		if len(c.errors) == 0 && len(c.resources) > 0 {
			passing[c.policy] = true
		}
		if len(c.errors) > 0 {
			failing[c.policy] = true
		}
	}
	names := map[string]bool{}
	for _, p := range policy.All() {
		assert.False(t, names[p.Name], "duplicate policy name %s", p.Name)
		names[p.Name] = true
		assert.NotEmpty(t, p.Description, p.Name)
		assert.Contains(t, []policy.Severity{policy.Error, policy.Warning}, p.Severity, p.Name)
		assert.True(t, passing[p.Name], "policy %s has no passing example", p.Name)
		assert.True(t, failing[p.Name], "policy %s has no failing example", p.Name)
	}
}

// TestSecretLookingKeys runs each key through the policy as the input of a resource holding a literal.
func TestSecretLookingKeys(t *testing.T) {
	secretPolicy := policy.All()[slices.IndexFunc(policy.All(), func(p policy.Policy) bool { return p.Name == "no-plaintext-secrets" })]
	for key, flagged := range map[string]bool{
		"password": true, "rootPassword": true, "api_key": true, "apiToken": true, "tunnelSecret": true,
		"privateKey": true, "credentials": true, "kubeconfig": true, "default_pass": true, "clientKey": true,
		"secretName": false, "secretKeyRef": false, "secretId": false, "passwordPolicy": false, "passwordFile": false,
		"tokenUrl": false, "name": false, "encryptionKeyName": false, "username": false,
	} {
		inv := inventory.New("t", []inventory.Resource{res("gcp:example/thing:Thing", "thing", obj{key: "hunter2"})})
		rep := policy.EvaluatePolicies([]policy.Policy{secretPolicy}, prodUS, inv)
		assert.Equal(t, flagged, rep.HasErrors(), "key %s", key)
	}
	for env, flagged := range map[string]bool{
		"REDIS_PASSWORD": true, "RABBITMQ_ERLANG_COOKIE": true, "RABBITMQ_DEFAULT_PASS": true,
		"REDIS_PASSWORD_FILE": false, "RABBITMQ_DEFAULT_USER": false,
	} {
		inv := inventory.New("t", []inventory.Resource{res(stsT, "sts", obj{"spec": obj{"template": obj{"spec": obj{"containers": list(
			obj{"name": "c", "env": list(obj{"name": env, "value": "hunter2"})})}}}})})
		rep := policy.EvaluatePolicies([]policy.Policy{secretPolicy}, prodUS, inv)
		assert.Equal(t, flagged, rep.HasErrors(), "env %s", env)
	}
}

// ---- reports -----------------------------------------------------------------------------------------------------

func TestReport(t *testing.T) {
	sqlAPI := res(apis.ServiceType, "sqladmin", obj{"service": "sqladmin.googleapis.com"})
	inv := inventory.New("t", []inventory.Resource{
		sqlAPI,
		dependsOn(res(sqlT, "pg", with(goodSQL(), "settings.availabilityType", "ZONAL")), sqlAPI),
		res(stsT, "redis", with(goodStatefulSet("redis"), "spec.template.spec.topologySpreadConstraints",
			list(obj{"maxSkew": 1.0, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": obj{"matchLabels": obj{"app.kubernetes.io/name": "redis"}}}))),
		res(pdbT, "redis", goodPDB("redis")),
	})
	rep := policy.Evaluate(prodUS, inv)

	require.Len(t, rep.Checked, len(policy.All()))
	assert.True(t, rep.HasErrors())
	require.Len(t, rep.Errors(), 1)
	assert.Equal(t, "postgres-ha", rep.Errors()[0].Policy)
	assert.Equal(t, "pg", rep.Errors()[0].Resource)
	assert.Equal(t, sqlT, rep.Errors()[0].Type)
	assert.NotContains(t, rep.Passed, "postgres-ha")
	assert.Contains(t, rep.Passed, "stateful-ha", "a warning does not fail a policy")
	assert.Len(t, rep.Passed, len(policy.All())-1)

	text := rep.Text()
	assert.Contains(t, text, "FAIL  postgres-ha\n")
	assert.Contains(t, text, "PASS  stateful-ha (1 warning(s))\n")
	assert.Contains(t, text, "PASS  firewall-ingress\n")
	assert.Contains(t, text, `error   pg (gcp:sql/databaseInstance:DatabaseInstance): settings.availabilityType is "ZONAL"`)
	assert.Contains(t, text, fmt.Sprintf("%d of %d policies passed, 1 error(s), 1 warning(s)", len(policy.All())-1, len(policy.All())))
	assert.Equal(t, len(policy.All())+1+2, strings.Count(text, "\n"), "one line per policy, one per finding, one summary")

	b, err := json.Marshal(rep)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	assert.ElementsMatch(t, []string{"checked", "passed", "findings"}, slices.Collect(maps.Keys(doc)))
	first := doc["findings"].([]any)[0].(map[string]any)
	assert.ElementsMatch(t, []string{"policy", "resource", "type", "message", "severity"}, slices.Collect(maps.Keys(first)))

	clean := policy.Evaluate(prodUS, inventory.New("t", nil))
	assert.False(t, clean.HasErrors())
	assert.Equal(t, rep.Checked, clean.Passed)
	assert.NotNil(t, clean.Findings, "JSON shows [] rather than null")
}

// ---- shipped stacks ----------------------------------------------------------------------------------------------

func planStack(t *testing.T, stack string) (*stacks.Config, *inventory.Inventory) {
	t.Helper()
	return planStackIn(t, "..", stack)
}

func planStackIn(t *testing.T, dir, stack string) (*stacks.Config, *inventory.Inventory) {
	t.Helper()
	sf, err := stacks.LoadStackFileFrom("..", dir, stack)
	require.NoError(t, err)
	cfg, inv, err := stacks.Plan(sf)
	require.NoError(t, err)
	return cfg, inv
}

// TestShippedStacksPass: a violation in any shipped or test-only stack fails the build.
func TestShippedStacksPass(t *testing.T) {
	testDir := filepath.Join("..", stacks.TestStacksDir)
	dirOf := map[string]string{}
	for _, dir := range []string{"..", testDir} {
		names, err := stacks.ListStacks(dir)
		require.NoError(t, err)
		require.NotEmpty(t, names)
		for _, n := range names {
			dirOf[n] = dir
		}
	}
	for _, stack := range slices.Sorted(maps.Keys(dirOf)) {
		t.Run(stack, func(t *testing.T) {
			cfg, inv := planStackIn(t, dirOf[stack], stack)
			ctx := cfg.PolicyContext()
			require.NotEmpty(t, ctx.PrimaryRegion)
			// The policies must have something to judge, or passing means nothing.
			require.NotEmpty(t, inv.OfType(clusterT), "stack %s declares no GKE cluster", stack)
			require.NotEmpty(t, inv.OfType(fwT), "stack %s declares no firewall", stack)
			rep := policy.Evaluate(ctx, inv)
			t.Logf("stack %s:\n%s", stack, rep.Text())
			assert.False(t, rep.HasErrors(), "stack %s violates policy", stack)
			assert.Equal(t, rep.Checked, rep.Passed)
		})
	}
}

// TestShippedStackRegressionsAreCaught breaks a real inventory the way a careless change would and expects the
// policies to notice: they read the inputs the program really produces, not only hand-written ones.
func TestShippedStackRegressionsAreCaught(t *testing.T) {
	cfg, inv := planStack(t, "prod")
	ctx := cfg.PolicyContext()
	for i := range inv.Resources {
		r := &inv.Resources[i]
		switch r.Type {
		case fwT:
			if r.String("name") == "oms-prod-us-allow-internal" {
				r.Inputs["sourceRanges"] = []any{"0.0.0.0/0"}
			}
		case clusterT:
			r.Inputs["privateClusterConfig"] = map[string]any{"enablePrivateNodes": false}
		case poolT:
			r.Inputs["nodeLocations"] = []any{"us-central1-a", "us-east4-a"}
		case "gcp:monitoring/alertPolicy:AlertPolicy":
			// A refactor that silently drops the backup alerts' class label.
			if strings.Contains(r.String("conditions[0].conditionPrometheusQueryLanguage.alertRule"), "Backup") {
				r.Inputs["conditions"] = []any{}
			}
		}
	}
	rep := policy.Evaluate(ctx, inv)
	failed := map[string]bool{}
	for _, f := range rep.Errors() {
		failed[f.Policy] = true
	}
	for _, p := range []string{"firewall-ingress", "gke-private-cluster", "node-pool-spread", "dr-region-cold", "alerting"} {
		assert.True(t, failed[p], "%s did not catch the regression:\n%s", p, rep.Text())
	}
}

// TestACellTheAlertsMissIsCaught: a refactor that selects only the first instance leaves the two-cell test stack's
// second cell unwatched.
func TestACellTheAlertsMissIsCaught(t *testing.T) {
	cfg, inv := planStackIn(t, filepath.Join("..", stacks.TestStacksDir), "prod-eu-cells")
	for _, r := range inv.OfType("gcp:monitoring/alertPolicy:AlertPolicy") {
		cond := asCondition(r)
		cond["query"] = strings.Replace(cond["query"].(string), "(oms-prod-eu-pg|oms-prod-eu-b-pg)", "oms-prod-eu-pg", 1)
	}
	rep := policy.Evaluate(cfg.PolicyContext(), inv)
	var missed []string
	for _, f := range rep.Errors() {
		if f.Policy == "alerting" && strings.Contains(f.Message, "misses the Cloud SQL instance oms-prod-eu-b-pg") {
			missed = append(missed, f.Resource)
		}
	}
	assert.Len(t, missed, 4, "every database alert misses cell b:\n%s", rep.Text())
}
