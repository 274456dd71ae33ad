package redis_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/omscloud/omscloud/components/internal/kube/kubetest"
	"github.com/omscloud/omscloud/components/redis"
	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var runtimePods = map[string]string{"app.kubernetes.io/name": "oms", "app.kubernetes.io/instance": "oms-prod-us"}

func prodArgs() redis.Args {
	return redis.Args{
		Name:           "oms-prod-us",
		Namespace:      "oms",
		Size:           redis.Size{CPU: "1", Memory: "4Gi", StorageGB: 20},
		ClientSelector: runtimePods,
		Labels:         map[string]string{"environment": "production"},
	}
}

type outputs struct {
	sentinelAddress, secretName, password string
	passwordIsSecret                      bool
	masterName                            string
}

func evaluate(t *testing.T, args redis.Args) (*inventory.Inventory, outputs) {
	t.Helper()
	var out outputs
	inv, err := inventory.Evaluate(func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{})
		if err != nil {
			return err
		}
		r, err := redis.New(ctx, "redis", &args, pulumi.Provider(k8s))
		if err != nil {
			return err
		}
		out.masterName = r.MasterName
		r.SentinelAddress.ApplyT(func(s string) string { out.sentinelAddress = s; return s })
		r.PasswordSecret.Name.ApplyT(func(s string) string { out.secretName = s; return s })
		r.Password.ApplyT(func(s string) string { out.password = s; return s })
		out.passwordIsSecret = pulumi.IsSecret(r.Password)
		return nil
	}, "omscloud", "test", nil, nil)
	require.NoError(t, err)
	return inv, out
}

func TestStatefulSetIsHighlyAvailable(t *testing.T) {
	inv, _ := evaluate(t, prodArgs())
	sts := kubetest.One(t, inv, kubetest.StatefulSet)

	assert.Equal(t, "oms-prod-us-redis", sts.String("metadata.name"))
	assert.Equal(t, "oms", sts.String("metadata.namespace"))
	replicas, _ := sts.Number("spec.replicas")
	assert.Equal(t, float64(3), replicas)
	assert.Equal(t, "oms-prod-us-redis-headless", sts.String("spec.serviceName"))
	assert.Equal(t, "Parallel", sts.String("spec.podManagementPolicy"))
	assert.Equal(t, "Retain", sts.String("spec.persistentVolumeClaimRetentionPolicy.whenDeleted"))
	kubetest.AssertSpread(t, sts)
	kubetest.AssertPlacement(t, sts)
	kubetest.AssertRestricted(t, sts)
	kubetest.AssertProbes(t, sts)
	kubetest.AssertSelectorMatchesTemplate(t, sts)
	kubetest.AssertPDB(t, inv, sts)
	kubetest.AssertVolumeClaims(t, sts, "premium-rwo", 20)
	assert.Equal(t, "production", sts.String("metadata.labels.environment"))

	redisC := kubetest.Container(t, sts, "redis")
	assert.Equal(t, map[string]any{"cpu": "1", "memory": "4Gi"}, redisC["resources"].(map[string]any)["limits"])
	assert.Equal(t, "redis:7.2.5", redisC["image"])
	kubetest.Container(t, sts, "sentinel")
	kubetest.Container(t, sts, "config")
	assert.False(t, sts.Bool("spec.template.spec.automountServiceAccountToken"), "Redis needs no API token")
	assert.Len(t, kubetest.Map(t, sts, "spec.template.metadata.annotations")[redis.ConfigChecksumAnnotation], 64,
		"a config change rolls the pods")

	for _, r := range inv.Resources {
		if strings.HasPrefix(r.Type, "kubernetes:") {
			assert.Equal(t, "oms", r.String("metadata.namespace"), "%s %s in the namespace", r.Type, r.Name)
			name := r.String("metadata.name")
			if r.Type == "kubernetes:core/v1:PersistentVolumeClaimPatch" {
				// The StatefulSet controller names the claims: <template>-<statefulset>-<ordinal>.
				name = strings.TrimPrefix(name, "data-")
				assert.Equal(t, "20Gi", r.String("spec.resources.requests.storage"), "%s expands the claim", r.Name)
			}
			assert.True(t, strings.HasPrefix(name, "oms-prod-us-redis"), "%s named from Args.Name", r.Name)
		}
	}
}

func TestServices(t *testing.T) {
	inv, out := evaluate(t, prodArgs())
	headless, ok := inv.Find(kubetest.Service, "redis-headless")
	require.True(t, ok)
	assert.Equal(t, "None", headless.String("spec.clusterIP"))
	assert.True(t, headless.Bool("spec.publishNotReadyAddresses"), "peers resolve each other before they are ready")

	sentinel, ok := inv.Find(kubetest.Service, "redis-sentinel")
	require.True(t, ok)
	ports := kubetest.List(t, sentinel, "spec.ports")
	require.Len(t, ports, 1)
	assert.Equal(t, float64(redis.SentinelPort), ports[0]["port"])
	sts := kubetest.One(t, inv, kubetest.StatefulSet)
	for _, svc := range []inventory.Resource{headless, sentinel} {
		assert.Equal(t, kubetest.Map(t, sts, "spec.selector.matchLabels"), kubetest.Map(t, svc, "spec.selector"))
	}

	assert.Equal(t, "oms-prod-us-redis-sentinel.oms.svc.cluster.local:26379", out.sentinelAddress)
	assert.Equal(t, "oms", out.masterName)
	assert.Equal(t, "oms-prod-us-redis-auth", out.secretName)
	assert.True(t, out.passwordIsSecret, "the Password output is a secret")
	assert.Equal(t, "mock-generated-redis-client-password", out.password, "clients get the current slot, not the pods' own password")
}

func TestNetworkPolicyAdmitsOnlyRuntimeAndPeers(t *testing.T) {
	inv, _ := evaluate(t, prodArgs())
	np := kubetest.One(t, inv, kubetest.NetworkPolicy)
	sts := kubetest.One(t, inv, kubetest.StatefulSet)
	selector := kubetest.Map(t, sts, "spec.selector.matchLabels")
	assert.Equal(t, selector, kubetest.Map(t, np, "spec.podSelector.matchLabels"))

	rules := kubetest.Ingresses(t, np)
	require.Len(t, rules, 1)
	assert.ElementsMatch(t, []map[string]any{{"app.kubernetes.io/name": "oms", "app.kubernetes.io/instance": "oms-prod-us"}, selector}, rules[0].From)
	assert.ElementsMatch(t, []float64{6379, 26379}, rules[0].Ports)
}

func TestNoPlaintextPassword(t *testing.T) {
	inv, _ := evaluate(t, prodArgs())
	kubetest.AssertNoPlaintextSecrets(t, inv)
	secret := kubetest.One(t, inv, kubetest.Secret)
	assert.Equal(t, inventory.Secret, secret.String("stringData"))
	fromSecret := func(env, key string) map[string]any {
		return map[string]any{"name": env, "valueFrom": map[string]any{
			"secretKeyRef": map[string]any{"name": "oms-prod-us-redis-auth", "key": key},
		}}
	}
	sts := kubetest.One(t, inv, kubetest.StatefulSet)
	for _, name := range []string{"config", "redis", "sentinel"} {
		c := kubetest.Container(t, sts, name)
		assert.Contains(t, c["env"], fromSecret("REDISCLI_AUTH", redis.InternalPasswordKey), "container %s authenticates with the pods' own password", name)
	}
	config := kubetest.Container(t, sts, "config")["env"]
	assert.Contains(t, config, fromSecret("REDIS_CLIENT_PASSWORD", redis.PasswordKey), "only init renders the clients' passwords")
	assert.Contains(t, config, fromSecret("REDIS_PREVIOUS_CLIENT_PASSWORD", redis.PreviousPasswordKey))
}

// TestPasswordRotation: raising PasswordRotation regenerates only the slot clients use next, keeps the previous
// password accepted, and changes the pod template's secret checksum (an HMAC, kept secret), so the pods roll and
// render configs that accept the new password. The pods' own password never changes.
func TestPasswordRotation(t *testing.T) {
	type state struct {
		checksum       string
		secret         bool
		current, slots string
	}
	at := func(rotation int) state {
		args := prodArgs()
		args.PasswordRotation = rotation
		mocks := kubetest.NewRawMocks()
		var st state
		require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
			r, err := redis.New(ctx, "redis", &args)
			if err != nil {
				return err
			}
			r.Password.ApplyT(func(s string) string { st.current = s; return s })
			return nil
		}, pulumi.WithMocks("omscloud", "test", mocks)))
		st.checksum, st.secret = mocks.SecretChecksum(t, kubetest.StatefulSet, "redis")
		inv := inventory.New("test", mocks.Resources())
		for _, name := range []string{"redis-client-password", "redis-client-password-1", "redis-password"} {
			pw, ok := inv.Find("random:index/randomPassword:RandomPassword", name)
			require.True(t, ok, name)
			keepers, _ := pw.Get("keepers")
			st.slots += fmt.Sprintf("%s=%v ", name, keepers)
		}
		return st
	}
	zero, one, two := at(0), at(1), at(2)
	for _, st := range []state{zero, one, two} {
		assert.True(t, st.secret, "the checksum annotation is a secret")
		assert.Regexp(t, `^[0-9a-f]{64}$`, st.checksum)
		assert.NotContains(t, st.checksum, "mock-generated", "a keyed hash, not the value")
	}
	assert.Equal(t, "redis-client-password=<nil> redis-client-password-1=<nil> redis-password=<nil> ", zero.slots)
	assert.Equal(t, "redis-client-password=<nil> redis-client-password-1=map[rotation:1] redis-password=<nil> ", one.slots)
	assert.Equal(t, "redis-client-password=map[rotation:2] redis-client-password-1=map[rotation:1] redis-password=<nil> ", two.slots)
	assert.Equal(t, "mock-generated-redis-client-password", zero.current)
	assert.Equal(t, "mock-generated-redis-client-password-1", one.current)
	assert.NotEqual(t, zero.checksum, one.checksum, "a rotation rolls the pods")
	assert.Equal(t, zero.checksum, at(0).checksum, "the same passwords, the same checksum: no roll without a change")
}

// sentinelDirectives returns the "sentinel <directive> <master> <value...>" lines of the rendered template.
func sentinelDirectives(t *testing.T, conf string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, line := range strings.Split(conf, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "sentinel" {
			out[f[1]] = f[2:]
		}
	}
	return out
}

func TestSentinelConfig(t *testing.T) {
	for _, tc := range []struct {
		replicas, quorum int
	}{{3, 2}, {5, 3}} {
		args := prodArgs()
		args.Replicas = tc.replicas
		inv, _ := evaluate(t, args)
		cm := kubetest.One(t, inv, kubetest.ConfigMap)
		conf, _ := kubetest.Map(t, cm, "data")["sentinel.conf"].(string)
		d := sentinelDirectives(t, conf)
		require.Len(t, d["monitor"], 4, "sentinel monitor <name> <host> <port> <quorum>")
		assert.Equal(t, []string{"oms", "@MASTER_HOST@", "6379", strconv.Itoa(tc.quorum)}, d["monitor"])
		downAfter, err := strconv.Atoi(d["down-after-milliseconds"][1])
		require.NoError(t, err)
		assert.LessOrEqual(t, downAfter, 5000, "failure detected within 5 s")
		failover, err := strconv.Atoi(d["failover-timeout"][1])
		require.NoError(t, err)
		assert.GreaterOrEqual(t, failover, 3*downAfter)
		assert.Equal(t, []string{"yes"}, d["resolve-hostnames"])
		assert.Equal(t, []string{"yes"}, d["announce-hostnames"])
		assert.Less(t, strings.Index(conf, "resolve-hostnames"), strings.Index(conf, "sentinel monitor"),
			"hostnames are enabled before the monitor line names a host")
		assert.NotRegexp(t, `(?m)^(sentinel auth-pass|requirepass)`, conf, "the password is added by the init container, never in the ConfigMap")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*redis.Args)
		want   string
	}{
		{"two replicas lose quorum", func(a *redis.Args) { a.Replicas = 2 }, "Replicas is 2"},
		{"even replicas", func(a *redis.Args) { a.Replicas = 4 }, "Replicas is 4"},
		{"missing namespace", func(a *redis.Args) { a.Namespace = "" }, "Namespace is required"},
		{"missing name", func(a *redis.Args) { a.Name = "" }, "Name is required"},
		{"bad name", func(a *redis.Args) { a.Name = "OMS_prod" }, `Name "OMS_prod"`},
		{"bad cpu", func(a *redis.Args) { a.Size.CPU = "lots" }, `Size.CPU "lots"`},
		{"bad memory", func(a *redis.Args) { a.Size.Memory = "4GB" }, "Size.Memory"},
		{"no storage", func(a *redis.Args) { a.Size.StorageGB = 0 }, "Size.StorageGB"},
		{"unpinned image", func(a *redis.Args) { a.Image = "redis:latest" }, "not pinned"},
		{"untagged image", func(a *redis.Args) { a.Image = "redis" }, "not pinned"},
		{"open network policy", func(a *redis.Args) { a.ClientSelector = nil }, "ClientSelector is empty"},
		{"slow failure detection", func(a *redis.Args) { a.Sentinel.DownAfterMs = 30000 }, "Sentinel.DownAfterMs"},
		{"reserved label", func(a *redis.Args) { a.Labels = map[string]string{"app.kubernetes.io/name": "x"} }, "set by the component"},
		{"bad eviction policy", func(a *redis.Args) { a.MaxMemoryPolicy = "lru" }, "MaxMemoryPolicy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := prodArgs()
			tc.mutate(&args)
			err := args.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}

	ok := prodArgs()
	ok.Image = "redis:7.2.5@sha256:" + strings.Repeat("a", 64)
	assert.NoError(t, ok.Validate(), "a digest pins the image")

	// New refuses bad arguments before declaring anything.
	bad := prodArgs()
	bad.Replicas = 2
	_, err := inventory.Evaluate(func(ctx *pulumi.Context) error {
		_, err := redis.New(ctx, "redis", &bad)
		return err
	}, "omscloud", "test", nil, nil)
	require.ErrorContains(t, err, "Replicas is 2")
}

// TestInitScript runs the init container's script against a fake redis-cli, for a new cluster, restarts and
// failovers, and checks the role each pod takes.
func TestInitScript(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	inv, _ := evaluate(t, prodArgs())
	files := kubetest.Map(t, kubetest.One(t, inv, kubetest.ConfigMap), "data")
	templates := t.TempDir()
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(templates, name), []byte(content.(string)), 0o644))
	}
	// The fake answers SENTINEL queries with $FAKE_SENTINEL_MASTER and INFO with $FAKE_INFO (for $FAKE_INFO_HOST);
	// unset means "not reachable".
	bin := t.TempDir()
	fake := `#!/bin/sh
host=""; port=6379
while [ $# -gt 0 ]; do
  case "$1" in -h) host=$2; shift 2;; -p) port=$2; shift 2;; --raw) shift;; *) break;; esac
done
[ -n "$REDISCLI_AUTH" ] || { echo "NOAUTH"; exit 1; }
if [ "$port" = 26379 ] && [ -n "${FAKE_SENTINEL_MASTER:-}" ]; then printf '%s\n6379\n' "$FAKE_SENTINEL_MASTER"; exit 0; fi
if [ "$port" = 6379 ] && [ "$host" = "${FAKE_INFO_HOST:-}" ]; then printf '%b' "$FAKE_INFO"; exit 0; fi
echo "Could not connect to Redis at $host:$port: Connection refused" >&2; exit 1
`
	require.NoError(t, os.WriteFile(filepath.Join(bin, "redis-cli"), []byte(fake), 0o755))

	const headless = "oms-prod-us-redis-headless.oms.svc.cluster.local"
	pod := func(i int) string { return "oms-prod-us-redis-" + strconv.Itoa(i) + "." + headless }
	for _, tc := range []struct {
		name            string
		self            int
		env             []string
		recorded        string // master in this pod's previous sentinel.conf
		wantReplicaOf   string // "" = starts as master
		wantMonitorHost string
	}{
		{name: "new cluster, pod 0", self: 0, wantMonitorHost: pod(0)},
		{name: "new cluster, pod 1", self: 1, wantReplicaOf: pod(0), wantMonitorHost: pod(0)},
		{name: "restart after failover: sentinels know the master", self: 0, recorded: pod(0),
			env: []string{"FAKE_SENTINEL_MASTER=" + pod(2)}, wantReplicaOf: pod(2), wantMonitorHost: pod(2)},
		{name: "restart while still master", self: 1, env: []string{"FAKE_SENTINEL_MASTER=" + pod(1)}, wantMonitorHost: pod(1)},
		{name: "sentinels down, a peer is master", self: 0,
			env:           []string{"FAKE_INFO_HOST=" + pod(2), `FAKE_INFO=# Replication\r\nrole:master\r\nconnected_slaves:1\r\n`},
			wantReplicaOf: pod(2), wantMonitorHost: pod(2)},
		{name: "sentinels down, a peer replicates the master", self: 0,
			env:           []string{"FAKE_INFO_HOST=" + pod(1), `FAKE_INFO=# Replication\r\nrole:slave\r\nmaster_host:` + pod(2) + `\r\nmaster_port:6379\r\n`},
			wantReplicaOf: pod(2), wantMonitorHost: pod(2)},
		{name: "full restart: the recorded master wins over pod 0", self: 0, recorded: pod(1),
			wantReplicaOf: pod(1), wantMonitorHost: pod(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, data := t.TempDir(), t.TempDir()
			if tc.recorded != "" {
				require.NoError(t, os.MkdirAll(filepath.Join(data, "sentinel"), 0o700))
				require.NoError(t, os.WriteFile(filepath.Join(data, "sentinel", "sentinel.conf"),
					[]byte("sentinel resolve-hostnames yes\nsentinel monitor oms "+tc.recorded+" 6379 2\nsentinel config-epoch oms 3\n"), 0o600))
			}
			cmd := exec.Command("sh", filepath.Join(templates, "init.sh"))
			cmd.Env = append([]string{
				"PATH=" + bin + ":" + os.Getenv("PATH"),
				"POD_NAME=oms-prod-us-redis-" + strconv.Itoa(tc.self), "HEADLESS=" + headless,
				"STATEFULSET=oms-prod-us-redis", "REPLICAS=3", "MASTER_NAME=oms", "REDISCLI_AUTH=s3cretpw",
				"REDIS_CLIENT_PASSWORD=cl1ent", "REDIS_PREVIOUS_CLIENT_PASSWORD=prev10us",
				"TEMPLATES=" + templates, "CONF_DIR=" + conf, "DATA_DIR=" + data, "DNS_WAIT_SECONDS=0",
			}, tc.env...)
			outText, err := cmd.CombinedOutput()
			require.NoError(t, err, string(outText))

			redisConf := read(t, filepath.Join(conf, "redis.conf"))
			sentinelConf := read(t, filepath.Join(data, "sentinel", "sentinel.conf"))
			if tc.wantReplicaOf == "" {
				assert.NotRegexp(t, `(?m)^replicaof`, redisConf, string(outText))
			} else {
				assert.Contains(t, redisConf, "\nreplicaof "+tc.wantReplicaOf+" 6379\n", string(outText))
			}
			assert.Contains(t, sentinelConf, "\nsentinel monitor oms "+tc.wantMonitorHost+" 6379 2\n")
			assert.Contains(t, redisConf, "replica-announce-ip "+pod(tc.self)+"\n")
			assert.Contains(t, sentinelConf, "sentinel announce-ip "+pod(tc.self)+"\n")
			assert.Contains(t, redisConf, "\ndir \""+data+"\"\n", "Redis keeps its data on the volume")
			// Every password is accepted; the pods use their own among themselves.
			acl := "user default on \">s3cretpw\" \">cl1ent\" \">prev10us\" ~* \"&*\" +@all\n"
			assert.Contains(t, redisConf, acl+"masterauth \"s3cretpw\"\n")
			assert.Contains(t, sentinelConf, acl+"sentinel sentinel-pass \"s3cretpw\"\nsentinel auth-pass oms \"s3cretpw\"\n")
			assert.NotContains(t, redisConf+sentinelConf, "requirepass", "one password would refuse clients of the other generation")
			assert.NotContains(t, sentinelConf, "config-epoch", "the sentinel config is rendered afresh")
			for _, f := range []string{filepath.Join(conf, "redis.conf"), filepath.Join(data, "sentinel", "sentinel.conf")} {
				st, err := os.Stat(f)
				require.NoError(t, err)
				assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "%s holds the password: owner only", f)
			}
		})
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// depMocks records each resource's dependencies on top of the shared mocks.
type depMocks struct {
	inventory.Mocks
	mu   sync.Mutex
	deps map[string][]string
}

func (m *depMocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	m.mu.Lock()
	m.deps[args.TypeToken+" "+args.Name] = args.RegisterRPC.GetDependencies()
	m.mu.Unlock()
	return m.Mocks.NewResource(args)
}

// TestObjectsWaitForTheNamespace checks that a dependency given to the component (the namespace) reaches every
// Kubernetes object, which Pulumi would not do by itself.
func TestObjectsWaitForTheNamespace(t *testing.T) {
	mocks := &depMocks{deps: map[string][]string{}}
	args := prodArgs()
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{})
		if err != nil {
			return err
		}
		ns, err := corev1.NewNamespace(ctx, "oms", &corev1.NamespaceArgs{Metadata: metav1.ObjectMetaArgs{Name: pulumi.String("oms")}},
			pulumi.Provider(k8s))
		if err != nil {
			return err
		}
		_, err = redis.New(ctx, "redis", &args, pulumi.Provider(k8s), pulumi.DependsOn([]pulumi.Resource{ns}))
		return err
	}, pulumi.WithMocks("omscloud", "test", mocks))
	require.NoError(t, err)
	checked := 0
	for key, deps := range mocks.deps {
		if strings.HasPrefix(key, "kubernetes:") && !strings.HasPrefix(key, "kubernetes:core/v1:Namespace") {
			assert.True(t, slicesContainsSuffix(deps, "::oms"), "%s depends on the namespace: %v", key, deps)
			checked++
		}
	}
	assert.Equal(t, 11, checked, "every Kubernetes object checked")
}

func slicesContainsSuffix(list []string, suffix string) bool {
	for _, s := range list {
		if strings.HasSuffix(s, suffix) {
			return true
		}
	}
	return false
}

// TestExporterForTheMetricsCollector: with Metrics, each pod runs the exporter the cache alerts read, authenticated
// from the Secret, and only the named scraper may reach it — not Redis or Sentinel.
func TestExporterForTheMetricsCollector(t *testing.T) {
	a := prodArgs()
	collector := map[string]string{"app.kubernetes.io/name": "collector"}
	a.Metrics = &redis.MetricsAccess{NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "gmp-system"}, PodLabels: collector}
	inv, _ := evaluate(t, a)
	c := kubetest.Container(t, kubetest.One(t, inv, kubetest.StatefulSet), "exporter")
	assert.Equal(t, redis.DefaultExporterImage, c["image"])
	assert.Contains(t, c["env"], map[string]any{"name": "REDIS_PASSWORD", "valueFrom": map[string]any{
		"secretKeyRef": map[string]any{"name": "oms-prod-us-redis-auth", "key": "password"},
	}})
	assert.Equal(t, []any{map[string]any{"name": redis.ExporterPortName, "containerPort": float64(redis.ExporterPort)}}, c["ports"])
	kubetest.AssertNoPlaintextSecrets(t, inv)

	rules := kubetest.List(t, kubetest.One(t, inv, kubetest.NetworkPolicy), "spec.ingress")
	require.Len(t, rules, 2)
	assert.Equal(t, []any{map[string]any{
		"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "gmp-system"}},
		"podSelector":       map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "collector"}},
	}}, rules[1]["from"])
	assert.Equal(t, []any{map[string]any{"port": float64(redis.ExporterPort), "protocol": "TCP"}}, rules[1]["ports"])

	// Without Metrics nothing changes: no exporter, no scraper rule.
	inv, _ = evaluate(t, prodArgs())
	containers, _ := kubetest.One(t, inv, kubetest.StatefulSet).Get("spec.template.spec.containers")
	assert.Len(t, containers, 2)
}
