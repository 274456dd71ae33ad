package rabbitmq_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/omscloud/omscloud/components/internal/kube/kubetest"
	"github.com/omscloud/omscloud/components/rabbitmq"
	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var runtimePods = map[string]string{"app.kubernetes.io/name": "oms", "app.kubernetes.io/instance": "oms-prod-us"}

func prodArgs() rabbitmq.Args {
	return rabbitmq.Args{
		Name:           "oms-prod-us",
		Namespace:      "oms",
		Size:           rabbitmq.Size{CPU: "1", Memory: "4Gi", StorageGB: 50},
		ClientSelector: runtimePods,
	}
}

type outputs struct {
	url, serviceName, urlSecret string
	urlIsSecret                 bool
}

func evaluate(t *testing.T, args rabbitmq.Args) (*inventory.Inventory, outputs) {
	t.Helper()
	var out outputs
	inv, err := inventory.Evaluate(func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{})
		if err != nil {
			return err
		}
		r, err := rabbitmq.New(ctx, "rabbitmq", &args, pulumi.Provider(k8s))
		if err != nil {
			return err
		}
		r.AmqpURL.ApplyT(func(s string) string { out.url = s; return s })
		r.ServiceName.ApplyT(func(s string) string { out.serviceName = s; return s })
		r.URLSecret.Name.ApplyT(func(s string) string { out.urlSecret = s; return s })
		out.urlIsSecret = pulumi.IsSecret(r.AmqpURL)
		return nil
	}, "omscloud", "test", nil, nil)
	require.NoError(t, err)
	return inv, out
}

func TestStatefulSetIsHighlyAvailable(t *testing.T) {
	inv, _ := evaluate(t, prodArgs())
	sts := kubetest.One(t, inv, kubetest.StatefulSet)

	assert.Equal(t, "oms-prod-us-rabbitmq", sts.String("metadata.name"))
	replicas, _ := sts.Number("spec.replicas")
	assert.Equal(t, float64(3), replicas)
	assert.Equal(t, "Parallel", sts.String("spec.podManagementPolicy"))
	assert.Equal(t, "oms-prod-us-rabbitmq-nodes", sts.String("spec.serviceName"))
	kubetest.AssertSpread(t, sts)
	kubetest.AssertPlacement(t, sts)
	kubetest.AssertRestricted(t, sts)
	kubetest.AssertProbes(t, sts)
	kubetest.AssertSelectorMatchesTemplate(t, sts)
	kubetest.AssertPDB(t, inv, sts)
	kubetest.AssertVolumeClaims(t, sts, "premium-rwo", 50)
	assert.Len(t, kubetest.Map(t, sts, "spec.template.metadata.annotations")[rabbitmq.ConfigChecksumAnnotation], 64)

	c := kubetest.Container(t, sts, "rabbitmq")
	assert.Equal(t, "rabbitmq:3.13.7-management", c["image"])
	assert.Contains(t, c["env"], map[string]any{"name": "RABBITMQ_NODENAME",
		"value": "rabbit@$(POD_NAME).oms-prod-us-rabbitmq-nodes.oms.svc.cluster.local"})
	assert.Equal(t, map[string]any{"cpu": "1", "memory": "4Gi"}, c["resources"].(map[string]any)["requests"])

	for _, r := range inv.Resources {
		if strings.HasPrefix(r.Type, "kubernetes:") {
			assert.Equal(t, "oms", r.String("metadata.namespace"), "%s %s in the namespace", r.Type, r.Name)
			name := r.String("metadata.name")
			if r.Type == "kubernetes:core/v1:PersistentVolumeClaimPatch" {
				// The StatefulSet controller names the claims: <template>-<statefulset>-<ordinal>.
				name = strings.TrimPrefix(name, "data-")
				assert.Equal(t, "50Gi", r.String("spec.resources.requests.storage"), "%s expands the claim", r.Name)
			}
			assert.True(t, strings.HasPrefix(name, "oms-prod-us-rabbitmq"), "%s named from Args.Name", r.Name)
		}
	}
}

func config(t *testing.T, inv *inventory.Inventory) map[string]string {
	t.Helper()
	data := kubetest.Map(t, kubetest.One(t, inv, kubetest.ConfigMap), "data")
	out := map[string]string{}
	for _, line := range strings.Split(data["rabbitmq.conf"].(string), "\n") {
		if k, v, ok := strings.Cut(line, " = "); ok && !strings.HasPrefix(line, "#") {
			_, dup := out[k]
			require.False(t, dup, "key %s set twice", k)
			out[k] = v
		}
	}
	return out
}

func TestConfig(t *testing.T) {
	inv, _ := evaluate(t, prodArgs())
	conf := config(t, inv)
	for k, want := range map[string]string{
		"cluster_formation.peer_discovery_backend":   "k8s",
		"cluster_formation.k8s.address_type":         "hostname",
		"cluster_formation.k8s.service_name":         "oms-prod-us-rabbitmq-nodes",
		"cluster_formation.k8s.hostname_suffix":      ".oms-prod-us-rabbitmq-nodes.oms.svc.cluster.local",
		"cluster_formation.target_cluster_size_hint": "3",
		"cluster_partition_handling":                 "pause_minority",
		"total_memory_available_override_value":      "4294967296",
		"disk_free_limit.absolute":                   "5368709120", // 10% of 50 GiB
		"definitions.local.path":                     "/etc/rabbitmq-definitions/definitions.json",
	} {
		assert.Equal(t, want, conf[k], k)
	}
	for k := range conf {
		assert.NotRegexp(t, `default_(user|pass)|password|cookie`, k, "no credential in rabbitmq.conf")
	}
	// A 3.13-only key: RabbitMQ 3.10-3.12 refuse to boot on it. The vhost carries the default instead.
	assert.NotContains(t, conf, "default_queue_type", "rabbitmq.conf must boot every supported RabbitMQ version")
	plugins := kubetest.Map(t, kubetest.One(t, inv, kubetest.ConfigMap), "data")["enabled_plugins"]
	assert.Contains(t, plugins, "rabbitmq_peer_discovery_k8s")
	assert.Contains(t, plugins, "rabbitmq_prometheus")
}

func TestPeerDiscoveryRBACIsLeastPrivilege(t *testing.T) {
	inv, _ := evaluate(t, prodArgs())
	role := kubetest.One(t, inv, kubetest.Role)
	rules := kubetest.List(t, role, "rules")
	require.Len(t, rules, 2)
	assert.Equal(t, []any{"endpoints"}, rules[0]["resources"])
	assert.Equal(t, []any{"oms-prod-us-rabbitmq-nodes"}, rules[0]["resourceNames"], "only the headless Service's endpoints")
	assert.ElementsMatch(t, []any{"get", "list"}, rules[0]["verbs"])
	assert.Equal(t, []any{"events"}, rules[1]["resources"])
	assert.Equal(t, []any{"create"}, rules[1]["verbs"])

	binding := kubetest.One(t, inv, kubetest.RoleBinding)
	assert.Equal(t, role.String("metadata.name"), binding.String("roleRef.name"))
	assert.Equal(t, "Role", binding.String("roleRef.kind"))
	sa := kubetest.One(t, inv, kubetest.ServiceAccount)
	subjects := kubetest.List(t, binding, "subjects")
	require.Len(t, subjects, 1)
	assert.Equal(t, map[string]any{"kind": "ServiceAccount", "name": sa.String("metadata.name"), "namespace": "oms"}, subjects[0])
	sts := kubetest.One(t, inv, kubetest.StatefulSet)
	assert.Equal(t, sa.String("metadata.name"), sts.String("spec.template.spec.serviceAccountName"))
}

func TestServices(t *testing.T) {
	inv, out := evaluate(t, prodArgs())
	ports := func(svc inventory.Resource) []float64 {
		var ps []float64
		for _, p := range kubetest.List(t, svc, "spec.ports") {
			ps = append(ps, p["port"].(float64))
		}
		return ps
	}
	headless, ok := inv.Find(kubetest.Service, "rabbitmq-nodes")
	require.True(t, ok)
	assert.Equal(t, "None", headless.String("spec.clusterIP"))
	assert.True(t, headless.Bool("spec.publishNotReadyAddresses"))
	assert.ElementsMatch(t, []float64{4369, 25672, 5672}, ports(headless))
	client, ok := inv.Find(kubetest.Service, "rabbitmq")
	require.True(t, ok)
	assert.ElementsMatch(t, []float64{5672, 15692}, ports(client))

	assert.Equal(t, "oms-prod-us-rabbitmq", out.serviceName)
	assert.True(t, out.urlIsSecret, "the AMQP URL is a secret")
	assert.Equal(t, "amqp://oms:mock-generated-rabbitmq-app-password@oms-prod-us-rabbitmq.oms.svc:5672/", out.url)
	assert.Equal(t, "oms-prod-us-rabbitmq-auth", out.urlSecret)
}

func TestNetworkPolicy(t *testing.T) {
	inv, _ := evaluate(t, prodArgs())
	np := kubetest.One(t, inv, kubetest.NetworkPolicy)
	selector := kubetest.Map(t, kubetest.One(t, inv, kubetest.StatefulSet), "spec.selector.matchLabels")
	assert.Equal(t, selector, kubetest.Map(t, np, "spec.podSelector.matchLabels"))
	rules := kubetest.Ingresses(t, np)
	require.Len(t, rules, 2)
	assert.Equal(t, kubetest.Ingress{From: []map[string]any{{"app.kubernetes.io/name": "oms", "app.kubernetes.io/instance": "oms-prod-us"}},
		Ports: []float64{5672}}, rules[0], "AMQP only from the runtime")
	assert.Equal(t, kubetest.Ingress{From: []map[string]any{selector}, Ports: []float64{4369, 25672}}, rules[1],
		"clustering only between the nodes")

	args := prodArgs()
	args.Metrics = &rabbitmq.MetricsAccess{
		NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "gmp-system"},
		PodLabels:       map[string]string{"app.kubernetes.io/name": "collector"},
	}
	inv, _ = evaluate(t, args)
	np = kubetest.One(t, inv, kubetest.NetworkPolicy)
	metrics := kubetest.List(t, np, "spec.ingress")[2]
	assert.Equal(t, []any{map[string]any{
		"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "gmp-system"}},
		"podSelector":       map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "collector"}},
	}}, metrics["from"])
	assert.Equal(t, []any{map[string]any{"port": float64(15692), "protocol": "TCP"}}, metrics["ports"])
}

func TestCredentialsStayInSecrets(t *testing.T) {
	inv, _ := evaluate(t, prodArgs())
	kubetest.AssertNoPlaintextSecrets(t, inv)
	assert.Equal(t, inventory.Secret, kubetest.One(t, inv, kubetest.Secret).String("stringData"))

	sts := kubetest.One(t, inv, kubetest.StatefulSet)
	volumes := map[string]map[string]any{}
	for _, v := range kubetest.List(t, sts, "spec.template.spec.volumes") {
		volumes[v["name"].(string)] = v
	}
	for _, name := range []string{"cookie", "definitions"} {
		secret, ok := volumes[name]["secret"].(map[string]any)
		require.True(t, ok, "volume %s comes from the Secret", name)
		assert.Equal(t, "oms-prod-us-rabbitmq-auth", secret["secretName"])
	}
	assert.Equal(t, "Memory", volumes["home"]["emptyDir"].(map[string]any)["medium"], "the copied cookie stays in memory")
}

// TestDefinitions checks the users file RabbitMQ imports: both users, their permissions, and password hashes in
// RabbitMQ's salted SHA-256 format that verify against the passwords and are stable between runs.
func TestDefinitions(t *testing.T) {
	raw, err := rabbitmq.Definitions("adminpw", [2]string{"apppw0", "apppw1"})
	require.NoError(t, err)
	again, err := rabbitmq.Definitions("adminpw", [2]string{"apppw0", "apppw1"})
	require.NoError(t, err)
	assert.Equal(t, raw, again, "stable: no diff on every deployment")
	assert.NotContains(t, raw, "adminpw")
	assert.NotContains(t, raw, "apppw")

	var defs struct {
		Users []struct {
			Name             string   `json:"name"`
			PasswordHash     string   `json:"password_hash"`
			HashingAlgorithm string   `json:"hashing_algorithm"`
			Tags             []string `json:"tags"`
		}
		Permissions []map[string]string
		Vhosts      []struct {
			Name             string `json:"name"`
			DefaultQueueType string `json:"default_queue_type"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &defs))
	require.Len(t, defs.Users, 3)
	passwords := map[string]string{rabbitmq.AdminUser: "adminpw", rabbitmq.AppUsers[0]: "apppw0", rabbitmq.AppUsers[1]: "apppw1"}
	for _, u := range defs.Users {
		assert.Equal(t, "rabbit_password_hashing_sha256", u.HashingAlgorithm)
		b, err := base64.StdEncoding.DecodeString(u.PasswordHash)
		require.NoError(t, err)
		require.Len(t, b, 4+32)
		sum := sha256.Sum256(append(append([]byte{}, b[:4]...), passwords[u.Name]...))
		assert.Equal(t, sum[:], b[4:], "hash of %s verifies", u.Name)
	}
	assert.Equal(t, []string{"administrator"}, defs.Users[0].Tags)
	assert.Empty(t, defs.Users[1].Tags, "the application users have no management rights")
	assert.Empty(t, defs.Users[2].Tags)
	assert.Len(t, defs.Permissions, 3)
	require.Len(t, defs.Vhosts, 1)
	assert.Equal(t, "/", defs.Vhosts[0].Name)
	assert.Equal(t, "quorum", defs.Vhosts[0].DefaultQueueType)
	assert.NotEqual(t, rabbitmq.PasswordHash("a", "same"), rabbitmq.PasswordHash("b", "same"), "salt differs per user")
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*rabbitmq.Args)
		want   string
	}{
		{"two replicas lose quorum", func(a *rabbitmq.Args) { a.Replicas = 2 }, "Replicas is 2"},
		{"even replicas", func(a *rabbitmq.Args) { a.Replicas = 4 }, "Replicas is 4"},
		{"missing namespace", func(a *rabbitmq.Args) { a.Namespace = "" }, "Namespace is required"},
		{"bad namespace", func(a *rabbitmq.Args) { a.Namespace = "Oms" }, `Namespace "Oms"`},
		{"bad cpu", func(a *rabbitmq.Args) { a.Size.CPU = "one" }, `Size.CPU "one"`},
		{"bad memory", func(a *rabbitmq.Args) { a.Size.Memory = "4 gigs" }, "Size.Memory"},
		{"too little memory", func(a *rabbitmq.Args) { a.Size.Memory = "256Mi" }, "below the minimum"},
		{"too little disk", func(a *rabbitmq.Args) { a.Size.StorageGB = 2 }, "Size.StorageGB"},
		{"unpinned image", func(a *rabbitmq.Args) { a.Image = "rabbitmq" }, "not pinned"},
		{"open network policy", func(a *rabbitmq.Args) { a.ClientSelector = map[string]string{} }, "ClientSelector is empty"},
		{"metrics from anywhere", func(a *rabbitmq.Args) { a.Metrics = &rabbitmq.MetricsAccess{} }, "Metrics.NamespaceLabels"},
		{"bad toleration", func(a *rabbitmq.Args) {
			a.Placement = &rabbitmq.Placement{Tolerations: []rabbitmq.Toleration{{Key: "k", Effect: "NO_SCHEDULE"}}}
		}, "Placement"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := prodArgs()
			tc.mutate(&args)
			err := args.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// Every problem is reported at once.
	err := (&rabbitmq.Args{Replicas: 2}).Validate()
	require.Error(t, err)
	for _, field := range []string{"Name", "Namespace", "Replicas", "Size.CPU", "Size.Memory", "ClientSelector"} {
		assert.Contains(t, err.Error(), field)
	}
}

// TestPasswordRotation: raising PasswordRotation moves the application to the other user, whose password is the one
// regenerated; the previous user keeps its password; the definitions change, and with them the pod template's secret
// checksum (an HMAC, kept secret), so every node re-imports the users as it restarts.
func TestPasswordRotation(t *testing.T) {
	type state struct {
		url, checksum string
		secret        bool
	}
	at := func(rotation int) state {
		args := prodArgs()
		args.PasswordRotation = rotation
		mocks := kubetest.NewRawMocks()
		var st state
		require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
			r, err := rabbitmq.New(ctx, "rabbitmq", &args)
			if err != nil {
				return err
			}
			r.AmqpURL.ApplyT(func(s string) string { st.url = s; return s })
			return nil
		}, pulumi.WithMocks("omscloud", "test", mocks)))
		st.checksum, st.secret = mocks.SecretChecksum(t, kubetest.StatefulSet, "rabbitmq")
		return st
	}
	zero, one := at(0), at(1)
	assert.Equal(t, "amqp://oms:mock-generated-rabbitmq-app-password@oms-prod-us-rabbitmq.oms.svc:5672/", zero.url)
	assert.Equal(t, "amqp://oms-alt:mock-generated-rabbitmq-app-password-1@oms-prod-us-rabbitmq.oms.svc:5672/", one.url)
	for _, st := range []state{zero, one} {
		assert.True(t, st.secret, "the checksum annotation is a secret")
		assert.Regexp(t, `^[0-9a-f]{64}$`, st.checksum)
	}
	assert.Equal(t, zero.checksum, at(0).checksum, "no roll without a change")
}
