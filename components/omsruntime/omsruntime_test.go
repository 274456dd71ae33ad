package omsruntime_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omscloud/omscloud/components/internal/kube/kubetest"
	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	job = "kubernetes:batch/v1:Job"
	hpa = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"

	release   = "europe-docker.pkg.dev/omscloud-release/oms/oms@sha256:4f2b8c1d9e7a6b5c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c"
	candidate = "europe-docker.pkg.dev/omscloud-release/oms/oms@sha256:0000000000000000000000000000000000000000000000000000000000000001"

	// Plain values of the secret inputs: they must never show up in the inventory.
	redisPassword = "redis-plaintext-password"
	amqpURL       = "amqp://oms:amqp-plaintext-password@oms-test-rabbitmq.oms.svc:5672/"

	serverCA = "-----BEGIN CERTIFICATE-----\nthe instance's server CA\n-----END CERTIFICATE-----\n"
)

var edgePods = map[string]string{"app.kubernetes.io/name": "cloudflared", "app.kubernetes.io/instance": "oms-test"}

// prodArgs are production arguments; secret inputs are set inside the program (see evaluate).
func prodArgs() omsruntime.Args {
	return omsruntime.Args{
		Name:        "oms-test",
		Project:     "omscloud-test",
		Production:  true,
		Image:       release,
		ActiveColor: omsruntime.Blue,
		Zones:       []string{"europe-west1-b", "europe-west1-c", "europe-west1-d"},
		NEGAnnotations: map[string]string{
			"blue":  `{"exposed_ports":{"80":{"name":"oms-test-web-blue-neg"}}}`,
			"green": `{"exposed_ports":{"80":{"name":"oms-test-web-green-neg"}}}`,
		},
		Ingress: omsruntime.IngressArgs{EdgeSelector: edgePods},
		Labels:  map[string]string{"environment": "production"},
	}
}

// recorder records, on top of the shared inventory mocks, every resource's explicit and input dependencies as the
// engine receives them in RegisterResource.
type recorder struct {
	*inventory.Mocks
	mu   sync.Mutex
	deps map[string][]string // "type::name" → "type::name" of the resources it depends on
	// secrets are the Kubernetes Secrets' stringData in plain text, by object name, for asserting on their values.
	secrets map[string]map[string]string
	// logins are the Cloud SQL users' passwords by resource name, in plain text, and whether they came as secrets.
	logins map[string]login
}

type login struct {
	password string
	secret   bool
}

func (r *recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	if args.RegisterRPC != nil {
		var names []string
		for _, dep := range args.RegisterRPC.GetDependencies() {
			urn := resource.URN(dep)
			names = append(names, string(urn.Type())+"::"+urn.Name())
		}
		r.mu.Lock()
		r.deps[args.TypeToken+"::"+args.Name] = names
		r.mu.Unlock()
	}
	if args.TypeToken == "kubernetes:core/v1:Secret" {
		data := map[string]string{}
		for k, v := range reveal(args.Inputs["stringData"]).ObjectValue() {
			data[string(k)] = reveal(v).StringValue()
		}
		r.mu.Lock()
		r.secrets[reveal(args.Inputs["metadata"]).ObjectValue()["name"].StringValue()] = data
		r.mu.Unlock()
	}
	if args.TypeToken == "gcp:sql/user:User" {
		pw := args.Inputs["password"]
		l := login{password: reveal(pw).StringValue(), secret: pw.ContainsSecrets()}
		r.mu.Lock()
		r.logins[args.Name] = l
		r.mu.Unlock()
	}
	return r.Mocks.NewResource(args)
}

// reveal unwraps secret and output property values.
func reveal(v resource.PropertyValue) resource.PropertyValue {
	for {
		switch {
		case v.IsSecret():
			v = v.SecretValue().Element
		case v.IsOutput():
			v = v.OutputValue().Element
		default:
			return v
		}
	}
}

type result struct {
	inv     *inventory.Inventory
	deps    map[string][]string
	secrets map[string]map[string]string
	logins  map[string]login
	rt      struct {
		adminTokenSecret           bool
		email, public, activeReady string
		colorsReady                map[string]string
	}
}

func evaluate(t *testing.T, args omsruntime.Args) *result {
	t.Helper()
	res, err := tryEvaluate(args)
	require.NoError(t, err)
	return res
}

func tryEvaluate(args omsruntime.Args) (*result, error) { return evaluateAs(args, false) }

// evaluateAs runs the runtime under mocks, as an update or (preview) as a preview.
func evaluateAs(args omsruntime.Args, preview bool) (*result, error) {
	res := &result{}
	rec := &recorder{Mocks: &inventory.Mocks{Project: "omscloud", Stack: "test"}, deps: map[string][]string{},
		secrets: map[string]map[string]string{}, logins: map[string]login{}}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{})
		if err != nil {
			return err
		}
		ca := args.Database.ServerCA // a test may give its own
		if ca == nil {
			ca = pulumi.String(serverCA)
		}
		// A test may give its own accounts and cells.
		args.Database = omsruntime.DatabaseArgs{
			Host:     pulumi.String("10.30.0.3"),
			Instance: pulumi.String("oms-test-pg"),
			ServerCA: ca,
			AccountSecrets: map[string]pulumi.StringInput{
				"acme":   pulumi.String("projects/omscloud-test/secrets/oms-test-db-acme"),
				"globex": pulumi.String("projects/omscloud-test/secrets/oms-test-db-globex"),
			},
			Accounts: args.Database.Accounts, Cells: args.Database.Cells, DefaultCell: args.Database.DefaultCell,
			PasswordRotation: args.Database.PasswordRotation,
		}
		args.Redis = omsruntime.RedisArgs{
			SentinelAddress: pulumi.String("oms-test-redis-sentinel.oms.svc.cluster.local:26379"),
			MasterName:      pulumi.String("oms"),
			Password:        pulumi.ToSecret(pulumi.String(redisPassword)).(pulumi.StringOutput),
		}
		args.AMQPURL = pulumi.ToSecret(pulumi.String(amqpURL)).(pulumi.StringOutput)
		rt, err := omsruntime.New(ctx, "rt", &args, pulumi.Provider(k8s))
		if err != nil {
			return err
		}
		res.rt.adminTokenSecret = pulumi.IsSecret(rt.AdminToken)
		rt.ServiceAccountEmail.ApplyT(func(s string) string { res.rt.email = s; return s })
		rt.PublicService.ApplyT(func(s string) string { res.rt.public = s; return s })
		rt.ActiveColorReady.ApplyT(func(s string) string { res.rt.activeReady = s; return s })
		res.rt.colorsReady = map[string]string{}
		var mu sync.Mutex
		for color, o := range rt.ColorServicesReady {
			o.ApplyT(func(s string) string { mu.Lock(); defer mu.Unlock(); res.rt.colorsReady[color] = s; return s })
		}
		return nil
	}, pulumi.WithMocks("omscloud", "test", rec), func(info *pulumi.RunInfo) { info.DryRun = preview })
	if err != nil {
		return nil, err
	}
	res.inv = inventory.New("test", rec.Resources())
	res.deps = rec.deps
	res.secrets = rec.secrets
	res.logins = rec.logins
	return res, nil
}

func find(t *testing.T, inv *inventory.Inventory, typ, name string) inventory.Resource {
	t.Helper()
	r, ok := inv.Find(typ, name)
	require.True(t, ok, "no %s %s", typ, name)
	return r
}

// byObjectName finds a Kubernetes object by its metadata.name.
func byObjectName(t *testing.T, inv *inventory.Inventory, typ, name string) inventory.Resource {
	t.Helper()
	r, ok := inv.Object(typ, name)
	require.True(t, ok, "no %s named %s", typ, name)
	return r
}

func TestWebAndWorkerSpreadOverZonesWithPDBs(t *testing.T) {
	inv := evaluate(t, prodArgs()).inv
	deps := inv.OfType(kubetest.Deployment)
	require.Len(t, deps, 3, "web-blue, web-green, worker")
	pdbs := inv.OfType(kubetest.PDB)
	require.Len(t, pdbs, 3)
	for _, d := range deps {
		name := d.String("metadata.name")
		t.Run(name, func(t *testing.T) {
			selector := kubetest.Map(t, d, "spec.selector.matchLabels")
			spread := kubetest.List(t, d, "spec.template.spec.topologySpreadConstraints")
			require.Len(t, spread, 1)
			assert.Equal(t, "topology.kubernetes.io/zone", spread[0]["topologyKey"])
			assert.Equal(t, float64(1), spread[0]["maxSkew"])
			assert.Equal(t, selector, spread[0]["labelSelector"].(map[string]any)["matchLabels"], "spread counts this workload's pods")
			want := "DoNotSchedule"
			if strings.HasSuffix(name, "-worker") {
				want = "ScheduleAnyway"
			}
			assert.Equal(t, want, spread[0]["whenUnsatisfiable"])

			terms := kubetest.List(t, d, "spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution")
			require.Len(t, terms, 1)
			term := terms[0]["podAffinityTerm"].(map[string]any)
			assert.Equal(t, "kubernetes.io/hostname", term["topologyKey"])
			assert.Equal(t, selector, term["labelSelector"].(map[string]any)["matchLabels"])

			assert.Equal(t, map[string]any{"omscloud.io/pool": "web"}, kubetest.Map(t, d, "spec.template.spec.nodeSelector"))
			kubetest.AssertSelectorMatchesTemplate(t, d)
			_, hasReplicas := d.Get("spec.replicas")
			assert.False(t, hasReplicas, "the HPA owns the replica count")
			assert.Equal(t, float64(0), d.Inputs["spec"].(map[string]any)["strategy"].(map[string]any)["rollingUpdate"].(map[string]any)["maxUnavailable"])

			var pdb *inventory.Resource
			for i := range pdbs {
				if pdbs[i].String("metadata.name") == name {
					pdb = &pdbs[i]
				}
			}
			require.NotNil(t, pdb, "a PDB for %s", name)
			assert.Equal(t, selector, kubetest.Map(t, *pdb, "spec.selector.matchLabels"))
			assert.Equal(t, float64(1), pdb.Inputs["spec"].(map[string]any)["maxUnavailable"])
		})
	}
	// The two colors' selectors are disjoint: a PDB or spread constraint never counts the other color's pods.
	blue := find(t, inv, kubetest.Deployment, "rt-web-blue")
	green := find(t, inv, kubetest.Deployment, "rt-web-green")
	assert.Equal(t, "blue", kubetest.Map(t, blue, "spec.selector.matchLabels")["omscloud.io/color"])
	assert.Equal(t, "green", kubetest.Map(t, green, "spec.selector.matchLabels")["omscloud.io/color"])
}

func TestEveryContainerIsRestricted(t *testing.T) {
	inv := evaluate(t, prodArgs()).inv
	workloads := append(inv.OfType(kubetest.Deployment), inv.OfType(job)...)
	require.Len(t, workloads, 5, "3 Deployments, migrate and smoke Jobs")
	for _, w := range workloads {
		t.Run(w.Name, func(t *testing.T) {
			kubetest.AssertRestricted(t, w)
			pod := kubetest.Map(t, w, "spec.template.spec.securityContext")
			assert.Equal(t, float64(65532), pod["runAsUser"])
			assert.Equal(t, false, w.Bool("spec.template.spec.automountServiceAccountToken"))
			vols := kubetest.List(t, w, "spec.template.spec.volumes")
			require.Len(t, vols, 2)
			assert.Equal(t, "tmp", vols[0]["name"])
			assert.NotNil(t, vols[0]["emptyDir"])
			assert.Equal(t, "db-ca", vols[1]["name"], "the database CA (a ConfigMap: no secret volume)")
			for _, c := range kubetest.Containers(t, w) {
				mounts, _ := c["volumeMounts"].([]any)
				require.NotEmpty(t, mounts)
				assert.Equal(t, "/tmp", mounts[0].(map[string]any)["mountPath"])
			}
		})
	}
}

func TestProbesAndDrain(t *testing.T) {
	inv := evaluate(t, prodArgs()).inv
	cm := byObjectName(t, inv, kubetest.ConfigMap, "oms-test-runtime")
	grace, err := time.ParseDuration(cm.String("data.OMS_SHUTDOWN_GRACE"))
	require.NoError(t, err)
	assert.Equal(t, "0.0.0.0:8080", cm.String("data.OMS_LISTEN"), "probes and Services reach the pod IP")
	for _, d := range inv.OfType(kubetest.Deployment) {
		t.Run(d.Name, func(t *testing.T) {
			c := kubetest.List(t, d, "spec.template.spec.containers")
			require.Len(t, c, 1)
			probe := func(kind string) string {
				p, ok := c[0][kind].(map[string]any)
				require.True(t, ok, "%s", kind)
				return p["httpGet"].(map[string]any)["path"].(string)
			}
			assert.Equal(t, "/readyz", probe("readinessProbe"))
			assert.Equal(t, "/healthz", probe("livenessProbe"))
			assert.Equal(t, "/healthz", probe("startupProbe"))
			port := c[0]["ports"].([]any)[0].(map[string]any)
			assert.Equal(t, float64(8080), port["containerPort"])

			preStop, ok := d.Number("spec.template.spec.containers[0].lifecycle.preStop.sleep.seconds")
			require.True(t, ok, "preStop sleep")
			assert.GreaterOrEqual(t, preStop, float64(5), "endpoints are removed before SIGTERM")
			period, ok := d.Number("spec.template.spec.terminationGracePeriodSeconds")
			require.True(t, ok)
			assert.GreaterOrEqual(t, period, preStop+grace.Seconds(), "grace period covers preStop and the runtime's drain")
		})
	}
}

func TestNoSecretInPlainSight(t *testing.T) {
	res := evaluate(t, prodArgs())
	inv := res.inv
	all, err := json.Marshal(inv.Resources)
	require.NoError(t, err)
	for _, plain := range []string{"mock-generated-", redisPassword, "amqp-plaintext-password"} {
		assert.NotContains(t, string(all), plain)
	}
	assert.True(t, res.rt.adminTokenSecret, "AdminToken output is secret")

	for _, cm := range inv.OfType(kubetest.ConfigMap) {
		for k, v := range kubetest.Map(t, cm, "data") {
			assert.NotEqual(t, inventory.Secret, v, "ConfigMap key %s", k)
			assert.NotRegexp(t, `(?i)password|token|amqp|postgres://`, k+"="+v.(string), "ConfigMap key %s", k)
		}
	}
	secret := kubetest.One(t, inv, kubetest.Secret)
	// Any secret value makes the engine mark the whole stringData secret; a per-key map must hold only secrets.
	switch data, _ := secret.Get("stringData"); data := data.(type) {
	case string:
		assert.Equal(t, inventory.Secret, data)
	case map[string]any:
		for k, v := range data {
			assert.Equal(t, inventory.Secret, v, "Secret key %s is a secret output", k)
		}
	default:
		t.Fatalf("Secret stringData is %T", data)
	}

	for _, w := range append(inv.OfType(kubetest.Deployment), inv.OfType(job)...) {
		for _, c := range kubetest.Containers(t, w) {
			for _, field := range []string{"command", "args"} {
				b, _ := json.Marshal(c[field])
				assert.NotContains(t, string(b), inventory.Secret, "%s %s", w.Name, field)
				assert.NotContains(t, string(b), "postgres://", "%s %s", w.Name, field)
			}
			for _, e := range c["env"].([]any) {
				ev := e.(map[string]any)
				assert.NotEqual(t, inventory.Secret, ev["value"], "%s env %s holds a secret value", w.Name, ev["name"])
				if strings.Contains(ev["name"].(string), "TOKEN") || strings.Contains(ev["name"].(string), "PASSWORD") ||
					strings.HasSuffix(ev["name"].(string), "_URL") {
					ref, ok := ev["valueFrom"].(map[string]any)["secretKeyRef"].(map[string]any)
					require.True(t, ok, "%s env %s comes from a Secret key", w.Name, ev["name"])
					assert.Equal(t, secret.String("metadata.name"), ref["name"])
				}
			}
			envFrom, _ := c["envFrom"].([]any)
			for _, e := range envFrom {
				assert.Contains(t, e, "configMapRef", "%s envFrom only the ConfigMap", w.Name)
			}
		}
	}

	// Each command gets only the secrets it uses.
	keys := func(d inventory.Resource) []string {
		var out []string
		for _, e := range kubetest.Containers(t, d)[0]["env"].([]any) {
			if ev := e.(map[string]any); ev["valueFrom"] != nil && ev["valueFrom"].(map[string]any)["secretKeyRef"] != nil {
				out = append(out, ev["name"].(string))
			}
		}
		slices.Sort(out)
		return out
	}
	assert.Equal(t, []string{"OMS_ADMIN_TOKEN", "OMS_DATABASE_URL", "OMS_REDIS_PASSWORD", "OMS_REDIS_SENTINEL_PASSWORD"},
		keys(find(t, inv, kubetest.Deployment, "rt-web-blue")), "the sentinels require the Redis password too")
	assert.Equal(t, []string{"OMS_AMQP_URL", "OMS_DATABASE_URL", "OMS_REDIS_PASSWORD", "OMS_REDIS_SENTINEL_PASSWORD"},
		keys(find(t, inv, kubetest.Deployment, "rt-worker")))
	assert.Equal(t, []string{"OMS_DATABASE_URL"}, keys(inv.OfType(job)[0]))
	assert.Equal(t, []string{"OMS_ADMIN_TOKEN"}, keys(find(t, inv, job, "rt-smoke")))
}

// Every pod of the oms image verifies Cloud SQL: the URL asks for verify-ca, the instance's CA is mounted from a
// ConfigMap, and OMS_DB_CA_FILE points the runtime at it.
func TestDatabaseServerVerifiedWithTheInstanceCA(t *testing.T) {
	res := evaluate(t, prodArgs())
	inv := res.inv
	dsn := res.secrets["oms-test-runtime"][omsruntime.EnvDatabaseURL]
	assert.Equal(t, "postgres://oms:mock-generated-rt-db-password@10.30.0.3:5432/oms?sslmode=verify-ca&target_session_attrs=read-write", dsn)

	ca := byObjectName(t, inv, kubetest.ConfigMap, "oms-test-db-ca")
	assert.Equal(t, map[string]any{"server-ca.pem": serverCA}, kubetest.Map(t, ca, "data"))
	cfg := byObjectName(t, inv, kubetest.ConfigMap, "oms-test-runtime")
	assert.Equal(t, omsruntime.DatabaseCAFile, kubetest.Map(t, cfg, "data")["OMS_DB_CA_FILE"])
	assert.Equal(t, "/etc/oms/db-ca/server-ca.pem", omsruntime.DatabaseCAFile)

	for _, name := range []string{"rt-web-blue", "rt-web-green", "rt-worker"} {
		assertMountsCA(t, find(t, inv, kubetest.Deployment, name), "oms")
	}
	for _, j := range inv.OfType(job) {
		if j.Name != "rt-smoke" {
			assertMountsCA(t, j, "migrate")
		}
	}

	// A new CA restarts the pods: the runtime reads the file when it starts.
	checksum := func(res *result) any {
		return kubetest.Map(t, find(t, res.inv, kubetest.Deployment, "rt-worker"), "spec.template.metadata.annotations")[omsruntime.ConfigChecksumAnnotation]
	}
	rotated := prodArgs()
	rotated.Database.ServerCA = pulumi.String("another CA")
	assert.NotEqual(t, checksum(res), checksum(evaluate(t, rotated)))
}

// assertMountsCA asserts the container reads the database CA from the CA ConfigMap at DatabaseCAFile.
func assertMountsCA(t *testing.T, w inventory.Resource, container string) {
	t.Helper()
	c := kubetest.Container(t, w, container)
	var mounted bool
	for _, m := range c["volumeMounts"].([]any) {
		if m := m.(map[string]any); m["name"] == "db-ca" {
			mounted = true
			assert.Equal(t, "/etc/oms/db-ca", m["mountPath"], w.Name)
			assert.Equal(t, true, m["readOnly"], w.Name)
		}
	}
	assert.True(t, mounted, "%s mounts the database CA", w.Name)
	for _, v := range kubetest.List(t, w, "spec.template.spec.volumes") {
		if v["name"] == "db-ca" {
			assert.Equal(t, "oms-test-db-ca", v["configMap"].(map[string]any)["name"], w.Name)
			return
		}
	}
	t.Errorf("%s has no db-ca volume", w.Name)
}

func TestPublicServiceFollowsActiveColor(t *testing.T) {
	for _, tc := range []struct{ active, idle string }{{"blue", "green"}, {"green", "blue"}} {
		t.Run(tc.active, func(t *testing.T) {
			args := prodArgs()
			args.ActiveColor = tc.active
			res := evaluate(t, args)
			inv := res.inv
			svc := find(t, inv, kubetest.Service, "rt-web")
			assert.Equal(t, "oms-test-web", svc.String("metadata.name"))
			assert.Equal(t, "oms-test-web", res.rt.public)
			assert.Equal(t, map[string]any{
				"app.kubernetes.io/name": "oms", "app.kubernetes.io/instance": "oms-test", "app.kubernetes.io/component": "web",
				"omscloud.io/color": tc.active,
			}, kubetest.Map(t, svc, "spec.selector"))
			assert.NotContains(t, kubetest.Map(t, svc, "metadata"), "annotations", "the load balancer uses the color Services' NEGs")
			assert.Equal(t, "http", svc.String("spec.ports[0].targetPort"))
			assert.Equal(t, float64(80), mustNumber(t, svc, "spec.ports[0].port"))

			for _, color := range []string{"blue", "green"} {
				preview := byObjectName(t, inv, kubetest.Service, "oms-test-web-"+color+"-preview")
				assert.Equal(t, color, kubetest.Map(t, preview, "spec.selector")["omscloud.io/color"])
				assert.Equal(t, args.NEGAnnotations[color], kubetest.Map(t, preview, "metadata.annotations")["cloud.google.com/neg"],
					"each color has NEGs of its own, whichever is active")
			}

			active := byObjectName(t, inv, hpa, "oms-test-web-"+tc.active)
			idle := byObjectName(t, inv, hpa, "oms-test-web-"+tc.idle)
			assert.Equal(t, "oms-test-web-"+tc.active, active.String("spec.scaleTargetRef.name"))
			assert.Equal(t, float64(3), mustNumber(t, active, "spec.minReplicas"), "one per zone")
			assert.Equal(t, float64(10), mustNumber(t, active, "spec.maxReplicas"))
			assert.Equal(t, float64(3), mustNumber(t, idle, "spec.minReplicas"), "production fallback keeps the minimum capacity")
			assert.Equal(t, float64(10), mustNumber(t, idle, "spec.maxReplicas"), "the idle color sheds pods only as its load drains")
			for _, h := range []inventory.Resource{active, idle} {
				metrics := kubetest.List(t, h, "spec.metrics")
				require.Len(t, metrics, 1, "CPU only: the metric metrics-server serves (policy hpa-metrics-served)")
				assert.Equal(t, "Resource", metrics[0]["type"])
				assert.Equal(t, "cpu", metrics[0]["resource"].(map[string]any)["name"])
			}

			smoke := find(t, inv, job, "rt-smoke")
			assert.Equal(t, omsruntime.SmokeJobName("oms-test", tc.active, release), smoke.String("metadata.name"))
			env := kubetest.Containers(t, smoke)[0]["env"].([]any)[0].(map[string]any)
			assert.Equal(t, "OMS_PREVIEW_SERVICE", env["name"])
			assert.Equal(t, "oms-test-web-"+tc.active+"-preview.oms.svc.cluster.local", env["value"])
			assert.Equal(t, float64(1), mustNumber(t, smoke, "spec.backoffLimit"))
			assert.Equal(t, float64(300), mustNumber(t, smoke, "spec.activeDeadlineSeconds"))
		})
	}
}

func mustNumber(t *testing.T, r inventory.Resource, path string) float64 {
	t.Helper()
	n, ok := r.Number(path)
	require.True(t, ok, "%s of %s", path, r.Name)
	return n
}

// changed lists "type::name" of the resources whose inputs differ between two inventories (or exist in one only).
func changed(a, b *inventory.Inventory) []string {
	key := func(r inventory.Resource) string { return r.Type + "::" + r.Name }
	index := func(inv *inventory.Inventory) map[string]inventory.Resource {
		m := map[string]inventory.Resource{}
		for _, r := range inv.Resources {
			m[key(r)] = r
		}
		return m
	}
	ia, ib := index(a), index(b)
	var out []string
	for k, r := range ia {
		if o, ok := ib[k]; !ok || !reflect.DeepEqual(r.Inputs, o.Inputs) {
			out = append(out, k)
		}
	}
	for k := range ib {
		if _, ok := ia[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func TestSwitchingColorsChangesOnlyTheSwitch(t *testing.T) {
	switchTo := func(args omsruntime.Args, color string) *inventory.Inventory {
		args.ActiveColor = color
		return evaluate(t, args).inv
	}
	// In production the idle color keeps the active color's minimum, so the HPAs do not change either.
	theSwitch := []string{"kubernetes:batch/v1:Job::rt-smoke", "kubernetes:core/v1:Service::rt-web"}
	t.Run("same release on both colors", func(t *testing.T) {
		args := prodArgs()
		blue, green := switchTo(args, "blue"), switchTo(args, "green")
		assert.Equal(t, theSwitch, changed(blue, green))
		// Going back is the same single change.
		assert.Equal(t, changed(green, blue), changed(blue, green))
	})
	t.Run("sandbox: the minimums move with the switch", func(t *testing.T) {
		args := prodArgs()
		args.Production, args.Image = false, "europe-docker.pkg.dev/p/oms/oms:1.4.2"
		blue, green := switchTo(args, "blue"), switchTo(args, "green")
		assert.Equal(t, append([]string{hpa + "::rt-web-blue", hpa + "::rt-web-green"}, theSwitch...), changed(blue, green))
	})
	t.Run("release staged on the idle color", func(t *testing.T) {
		args := prodArgs()
		args.ColorImages = map[string]string{"green": candidate}
		blue, green := switchTo(args, "blue"), switchTo(args, "green")
		diff := changed(blue, green)
		// The worker follows the active release; it takes no traffic.
		worker := []string{kubetest.Deployment + "::rt-worker", hpa + "::rt-worker", kubetest.PDB + "::rt-worker"}
		assert.ElementsMatch(t, append(slices.Clone(theSwitch), worker...), diff)
		for _, name := range []string{"rt-web-blue", "rt-web-green"} {
			assert.Equal(t, find(t, blue, kubetest.Deployment, name).Inputs, find(t, green, kubetest.Deployment, name).Inputs,
				"%s is untouched by the switch", name)
		}
		assert.Equal(t, candidate, find(t, green, kubetest.Deployment, "rt-worker").String("spec.template.spec.containers[0].image"))
		assert.Equal(t, release, find(t, blue, kubetest.Deployment, "rt-web-blue").String("spec.template.spec.containers[0].image"))
		assert.Equal(t, candidate, find(t, blue, kubetest.Deployment, "rt-web-green").String("spec.template.spec.containers[0].image"))
	})
}

func TestSwitchWaitsForMigrationAndSmokeTest(t *testing.T) {
	for _, color := range []string{"blue", "green"} {
		t.Run(color, func(t *testing.T) {
			args := prodArgs()
			args.ActiveColor = color
			args.ColorImages = map[string]string{"green": candidate}
			res := evaluate(t, args)
			idle := map[string]string{"blue": "green", "green": "blue"}[color]
			var migrations []string
			for _, j := range res.inv.OfType(job) {
				if j.Name != "rt-smoke" {
					migrations = append(migrations, job+"::"+j.Name)
				}
			}
			require.ElementsMatch(t, []string{job + "::rt-migrate-" + omsruntime.ImageHash(release), job + "::rt-migrate-" + omsruntime.ImageHash(candidate)}, migrations)

			public := res.deps[kubetest.Service+"::rt-web"]
			assert.Contains(t, public, job+"::rt-smoke", "the selector moves only after the smoke test completed")
			assert.Subset(t, public, migrations, "and after every release's migration")
			assert.Contains(t, public, hpa+"::rt-web-"+color, "and after the new active color's HPA")
			assert.NotContains(t, public, hpa+"::rt-web-"+idle)
			assert.NotContains(t, res.deps[hpa+"::rt-web-"+idle], kubetest.Service+"::rt-web", "the old color sheds pods by load, not at the switch")
			assert.Contains(t, res.deps[job+"::rt-smoke"], kubetest.Deployment+"::rt-web-"+color, "the smoke test waits for the color's rollout")
			image := map[string]string{"blue": release, "green": candidate}
			for _, c := range []string{"blue", "green"} {
				assert.Contains(t, res.deps[kubetest.Deployment+"::rt-web-"+c], job+"::rt-migrate-"+omsruntime.ImageHash(image[c]))
			}
			assert.Contains(t, res.deps[kubetest.Deployment+"::rt-worker"], job+"::rt-migrate-"+omsruntime.ImageHash(image[color]))

			for _, r := range res.inv.Resources {
				annotations, _ := r.Get("metadata.annotations")
				m, _ := annotations.(map[string]any)
				assert.NotContains(t, m, "pulumi.com/skipAwait", "%s: Pulumi must wait for Jobs and rollouts", r.Name)
			}
		})
	}
}

func TestMigrateJobRunsOncePerRelease(t *testing.T) {
	inv := evaluate(t, prodArgs()).inv
	var migrate []inventory.Resource
	for _, j := range inv.OfType(job) {
		if j.Name != "rt-smoke" {
			migrate = append(migrate, j)
		}
	}
	require.Len(t, migrate, 1, "both colors run the same release")
	m := migrate[0]
	assert.Equal(t, "oms-test-migrate-"+omsruntime.ImageHash(release), m.String("metadata.name"))
	c := kubetest.Containers(t, m)[0]
	assert.Equal(t, []any{"migrate"}, c["args"])
	assert.Equal(t, release, c["image"])
	assert.Equal(t, "Never", m.String("spec.template.spec.restartPolicy"))
	assert.Equal(t, "oms-test-runtime", m.String("spec.template.spec.serviceAccountName"))
	assert.Len(t, omsruntime.ImageHash(release), 8)
	assert.NotEqual(t, omsruntime.ImageHash(release), omsruntime.ImageHash(candidate))
}

func TestWorkloadIdentityAndLeastPrivilege(t *testing.T) {
	res := evaluate(t, prodArgs())
	inv := res.inv
	gsa := kubetest.One(t, inv, "gcp:serviceaccount/account:Account")
	assert.Equal(t, "oms-test-runtime", gsa.String("accountId"))
	assert.Equal(t, "oms-test-runtime@omscloud-test.iam.gserviceaccount.com", res.rt.email)

	binding := kubetest.One(t, inv, "gcp:serviceaccount/iAMMember:IAMMember")
	assert.Equal(t, "roles/iam.workloadIdentityUser", binding.String("role"))
	assert.Equal(t, "serviceAccount:omscloud-test.svc.id.goog[oms/oms-test-runtime]", binding.String("member"))

	ksa := kubetest.One(t, inv, kubetest.ServiceAccount)
	assert.Equal(t, "oms-test-runtime", ksa.String("metadata.name"))
	assert.Equal(t, res.rt.email, kubetest.Map(t, ksa, "metadata.annotations")["iam.gke.io/gcp-service-account"])
	for _, d := range inv.OfType(kubetest.Deployment) {
		assert.Equal(t, "oms-test-runtime", d.String("spec.template.spec.serviceAccountName"))
	}
	assert.Equal(t, "default", find(t, inv, job, "rt-smoke").String("spec.template.spec.serviceAccountName"),
		"the smoke test gets no GCP identity")

	grants := inv.OfType("gcp:secretmanager/secretIamMember:SecretIamMember")
	var secrets []string
	for _, g := range grants {
		assert.Equal(t, "roles/secretmanager.secretAccessor", g.String("role"))
		assert.Equal(t, "serviceAccount:"+res.rt.email, g.String("member"))
		secrets = append(secrets, g.String("secretId"))
	}
	assert.ElementsMatch(t, []string{"projects/omscloud-test/secrets/oms-test-db-acme", "projects/omscloud-test/secrets/oms-test-db-globex"}, secrets,
		"exactly the account password secrets")
	for _, typ := range inv.Types() {
		assert.NotContains(t, typ, "projects/iAM", "no project-wide grant")
	}

	user := kubetest.One(t, inv, "gcp:sql/user:User")
	db := kubetest.One(t, inv, "gcp:sql/database:Database")
	assert.Equal(t, "oms", user.String("name"))
	assert.Equal(t, "oms-test-pg", user.String("instance"))
	assert.Equal(t, inventory.Secret, user.String("password"))
	assert.Equal(t, "oms", db.String("name"))
	assert.Equal(t, "ABANDON", db.String("deletionPolicy"))
}

func TestNetworkPolicies(t *testing.T) {
	inv := evaluate(t, prodArgs()).inv
	runtimePods := map[string]any{"app.kubernetes.io/name": "oms", "app.kubernetes.io/instance": "oms-test"}
	deny := byObjectName(t, inv, kubetest.NetworkPolicy, "oms-test-runtime-deny-ingress")
	assert.Equal(t, runtimePods, kubetest.Map(t, deny, "spec.podSelector.matchLabels"))
	assert.Equal(t, []string{"Ingress"}, deny.Strings("spec.policyTypes"))
	assert.Empty(t, kubetest.List(t, deny, "spec.ingress"), "deny all ingress by default")

	web := byObjectName(t, inv, kubetest.NetworkPolicy, "oms-test-web-ingress")
	assert.Equal(t, "web", kubetest.Map(t, web, "spec.podSelector.matchLabels")["app.kubernetes.io/component"])
	rules := kubetest.List(t, web, "spec.ingress")
	require.Len(t, rules, 3)
	var cidrs []any
	for _, p := range rules[0]["from"].([]any) {
		cidrs = append(cidrs, p.(map[string]any)["ipBlock"].(map[string]any)["cidr"])
	}
	assert.Equal(t, []any{"35.191.0.0/16", "130.211.0.0/22"}, cidrs)
	var pods []any
	for _, p := range rules[1]["from"].([]any) {
		pods = append(pods, p.(map[string]any)["podSelector"].(map[string]any)["matchLabels"])
	}
	assert.Contains(t, pods, map[string]any{"app.kubernetes.io/name": "cloudflared", "app.kubernetes.io/instance": "oms-test"})
	assert.Contains(t, pods, map[string]any{"app.kubernetes.io/name": "oms", "app.kubernetes.io/instance": "oms-test", "app.kubernetes.io/component": "smoke"})
	for _, r := range rules[:2] {
		assert.Equal(t, []any{map[string]any{"port": float64(8080), "protocol": "TCP"}}, r["ports"], "the edge reaches the API port only")
	}
	collector := []any{map[string]any{
		"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "gmp-system"}},
		"podSelector":       map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "collector"}},
	}}
	assert.Equal(t, collector, rules[2]["from"], "only the managed Prometheus collector may scrape, not every pod of the namespace")
	assert.Equal(t, []any{map[string]any{"port": float64(9090), "protocol": "TCP"}}, rules[2]["ports"], "serve's metrics port, not the API")

	metrics := byObjectName(t, inv, kubetest.NetworkPolicy, "oms-test-runtime-metrics")
	assert.Equal(t, "worker", kubetest.Map(t, metrics, "spec.podSelector.matchLabels")["app.kubernetes.io/component"])
	rule := kubetest.List(t, metrics, "spec.ingress")
	require.Len(t, rule, 1)
	assert.Equal(t, collector, rule[0]["from"])
	assert.Equal(t, []any{map[string]any{"port": float64(8080), "protocol": "TCP"}}, rule[0]["ports"], "the worker's only port")
}

// TestServeMetricsOnTheirOwnPort: the web pods' metrics port is where serve listens for /metrics, the PodMonitoring
// scrapes it, and no Service exposes it (the edge routes Services).
func TestServeMetricsOnTheirOwnPort(t *testing.T) {
	inv := evaluate(t, prodArgs()).inv
	for _, color := range []string{"blue", "green"} {
		dep := byObjectName(t, inv, kubetest.Deployment, "oms-test-web-"+color)
		c := kubetest.List(t, dep, "spec.template.spec.containers")[0]
		assert.Equal(t, []any{
			map[string]any{"name": "http", "containerPort": float64(omsruntime.Port), "protocol": "TCP"},
			map[string]any{"name": omsruntime.MetricsPortName, "containerPort": float64(omsruntime.MetricsPort), "protocol": "TCP"},
		}, c["ports"])
	}
	cm := byObjectName(t, inv, kubetest.ConfigMap, "oms-test-runtime")
	assert.Equal(t, "0.0.0.0:9090", kubetest.Map(t, cm, "data")["OMS_METRICS_LISTEN"])
	for _, svc := range inv.OfType(kubetest.Service) {
		for _, p := range kubetest.List(t, svc, "spec.ports") {
			assert.NotEqual(t, omsruntime.MetricsPortName, p["targetPort"], "a Service exposes the metrics port")
			assert.NotEqual(t, float64(omsruntime.MetricsPort), p["targetPort"])
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*omsruntime.Args)
		want   string
	}{
		{"one web pod", func(a *omsruntime.Args) { a.Web.MinReplicas = 1 }, "Web.MinReplicas is 1"},
		{"fewer web pods than zones", func(a *omsruntime.Args) { a.Web.MinReplicas = 2 }, "one web pod per zone"},
		{"bad color", func(a *omsruntime.Args) { a.ActiveColor = "red" }, `ActiveColor "red"`},
		{"bad color image key", func(a *omsruntime.Args) { a.ColorImages = map[string]string{"red": candidate} }, `ColorImages: key "red"`},
		{"unpinned in production", func(a *omsruntime.Args) { a.Image = "europe-docker.pkg.dev/p/oms/oms:1.4.2" }, "not pinned by digest"},
		{"unpinned color image", func(a *omsruntime.Args) { a.ColorImages = map[string]string{"green": "oms:1.5.0"} }, "ColorImages[green]"},
		{"latest", func(a *omsruntime.Args) { a.Production = false; a.Image = "oms:latest" }, "not pinned"},
		{"no image", func(a *omsruntime.Args) { a.Image = "" }, "Image is required"},
		{"grace below drain", func(a *omsruntime.Args) { a.GracePeriodSeconds = 20 }, "GracePeriodSeconds 20 is below"},
		{"no project", func(a *omsruntime.Args) { a.Project = "" }, "Project is required"},
		{"long name", func(a *omsruntime.Args) { a.Name = "oms-production-europe-west" }, "Name"},
		{"max below min", func(a *omsruntime.Args) { a.Web.MaxReplicas = 2 }, "Web.MaxReplicas 2 is below"},
		{"idle zero", func(a *omsruntime.Args) { a.IdleReplicas = -1 }, "IdleReplicas is -1"},
		{"cpu limit", func(a *omsruntime.Args) { a.Web.Resources = omsruntime.Resources{CPU: "2", CPULimit: "1"} }, "Web.Resources.CPULimit 1 is below"},
		{"color label", func(a *omsruntime.Args) { a.Labels = map[string]string{"omscloud.io/color": "x"} }, "omscloud.io/color"},
		{"bad cidr", func(a *omsruntime.Args) { a.Ingress.LoadBalancerCIDRs = []string{"35.191.0.0"} }, "LoadBalancerCIDRs[0]"},
		{"account in no cell", func(a *omsruntime.Args) {
			a.Database = withCells()
			a.Database.Cells["b"] = omsruntime.Cell{Host: pulumi.String("10.30.0.7"), Instance: pulumi.String("oms-test-b-pg"), ServerCA: pulumi.String("b CA")}
		}, `Database.Accounts["globex"] is in no cell`},
		{"account in two cells", func(a *omsruntime.Args) {
			a.Database = withCells()
			a.Database.Cells["main"] = omsruntime.Cell{Host: pulumi.String("10.30.0.3"), Instance: pulumi.String("oms-test-pg"), ServerCA: pulumi.String(serverCA), Accounts: []string{"acme", "globex"}}
		}, `account "globex" is also in cell "b"`},
		{"cell of an unknown account", func(a *omsruntime.Args) {
			a.Database = withCells()
			delete(a.Database.Accounts, "globex")
		}, `account "globex" is not in Database.Accounts`},
		{"unknown default cell", func(a *omsruntime.Args) { a.Database = withCells(); a.Database.DefaultCell = "c" }, `Database.DefaultCell "c" is not one of Database.Cells [b main]`},
		{"default cell without cells", func(a *omsruntime.Args) { a.Database.DefaultCell = "main" }, "set without Database.Cells"},
		{"cell name", func(a *omsruntime.Args) {
			a.Database = withCells()
			a.Database.Cells["cell/b"] = a.Database.Cells["b"]
			delete(a.Database.Cells, "b")
			a.Database.DefaultCell = "cell/b"
		}, `Database.Cells["cell/b"]: a cell name is letters, digits`},
		{"cell without its instance", func(a *omsruntime.Args) {
			a.Database = withCells()
			b := a.Database.Cells["b"]
			b.Instance = nil
			a.Database.Cells["b"] = b
		}, `Database.Cells["b"]: Host, ServerCA and Instance are required`},
		{"no main cell", func(a *omsruntime.Args) {
			a.Database = withCells()
			delete(a.Database.Cells, "main")
			b := a.Database.Cells["b"]
			b.Accounts = []string{"acme", "globex"}
			a.Database.Cells["b"] = b
		}, `Database.Cells [b] has no cell "main": add the control database's instance`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := prodArgs()
			tc.mutate(&args)
			_, err := tryEvaluate(args)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "omsruntime:")
		})
	}
	t.Run("missing wiring", func(t *testing.T) {
		args := prodArgs()
		err := args.Validate()
		require.Error(t, err)
		for _, want := range []string{"Database.Host", "Database.Instance", "Database.ServerCA", "Redis.SentinelAddress", "AMQPURL"} {
			assert.Contains(t, err.Error(), want)
		}
	})
	t.Run("sandbox defaults", func(t *testing.T) {
		args := prodArgs()
		args.Production = false
		args.Image = "europe-docker.pkg.dev/p/oms/oms:1.4.2"
		res := evaluate(t, args)
		idle := byObjectName(t, res.inv, hpa, "oms-test-web-green")
		assert.Equal(t, float64(1), mustNumber(t, idle, "spec.minReplicas"))
		active := byObjectName(t, res.inv, hpa, "oms-test-web-blue")
		assert.Equal(t, float64(2), mustNumber(t, active, "spec.minReplicas"))
		assert.Equal(t, "1.4.2", kubetest.Map(t, find(t, res.inv, kubetest.Deployment, "rt-web-blue"), "spec.template.metadata.labels")["app.kubernetes.io/version"])
	})
}

func TestVersionLabel(t *testing.T) {
	assert.Equal(t, "sha256-4f2b8c1d9e7a", omsruntime.Version(release))
	assert.Equal(t, "1.4.2", omsruntime.Version("europe-docker.pkg.dev/p/oms/oms:1.4.2@sha256:4f2b8c1d9e7a6b5c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c"))
	assert.Equal(t, "1.4.2", omsruntime.Version("localhost:5000/oms:1.4.2"))
	assert.Equal(t, "unversioned", omsruntime.Version("localhost:5000/oms"))
}

// TestReadyOutputsWaitForTheirObjects: the edge looks up a color's NEGs once ColorServicesReady resolves and moves
// the load balancer's capacity once ActiveColorReady does, so both stay unknown in a preview that creates their
// objects (their status is then unknown) and resolve once the objects exist.
func TestReadyOutputsWaitForTheirObjects(t *testing.T) {
	preview, err := evaluateAs(prodArgs(), true)
	require.NoError(t, err)
	assert.Empty(t, preview.rt.colorsReady, "unknown in a preview that creates the Services")
	assert.Empty(t, preview.rt.activeReady, "unknown in a preview that creates the smoke Job")
	assert.Equal(t, "oms-test-web", preview.rt.public, "the name itself is known")

	update := evaluate(t, prodArgs())
	assert.Equal(t, map[string]string{"blue": "oms-test-web-blue-preview", "green": "oms-test-web-green-preview"}, update.rt.colorsReady)
	assert.Equal(t, "blue", update.rt.activeReady)
}

// TestSecretsRollTheirConsumers: each Deployment's pod template carries a keyed checksum (kept secret) of exactly
// the Secret keys its pods read, so a rotated credential rolls the workloads that use it and no other; the Jobs,
// whose templates are immutable, read the Secret afresh on every run and carry none.
func TestSecretsRollTheirConsumers(t *testing.T) {
	type credentials struct{ redis, amqp string }
	run := func(c credentials, dbRotation int) (map[string]string, *inventory.Inventory) {
		args := prodArgs()
		mocks := kubetest.NewRawMocks()
		require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
			args.Database = omsruntime.DatabaseArgs{Host: pulumi.String("10.30.0.3"), Instance: pulumi.String("oms-test-pg"),
				ServerCA: pulumi.String(serverCA), PasswordRotation: dbRotation}
			args.Redis = omsruntime.RedisArgs{SentinelAddress: pulumi.String("s:26379"), MasterName: pulumi.String("oms"),
				Password: pulumi.ToSecret(pulumi.String(c.redis)).(pulumi.StringOutput)}
			args.AMQPURL = pulumi.ToSecret(pulumi.String(c.amqp)).(pulumi.StringOutput)
			_, err := omsruntime.New(ctx, "rt", &args)
			return err
		}, pulumi.WithMocks("omscloud", "test", mocks)))
		sums := map[string]string{}
		for _, name := range []string{"rt-web-blue", "rt-web-green", "rt-worker"} {
			sum, secret := mocks.SecretChecksum(t, kubetest.Deployment, name)
			assert.True(t, secret, "%s: the checksum is a secret", name)
			assert.Regexp(t, `^[0-9a-f]{64}$`, sum)
			sums[name] = sum
		}
		return sums, inventory.New("test", mocks.Resources())
	}
	base := credentials{redis: redisPassword, amqp: amqpURL}
	before, inv := run(base, 0)
	for name, sum := range before {
		assert.NotContains(t, sum, redisPassword, name)
	}
	for _, j := range inv.OfType(job) {
		annotations, _ := j.Get("spec.template.metadata.annotations")
		assert.NotContains(t, annotations, "omscloud.io/secret-checksum", "%s: a Job's template is immutable; each run reads the Secret", j.Name)
	}
	assert.Contains(t, evaluate(t, prodArgs()).deps[kubetest.Secret+"::rt-env"], "gcp:sql/user:User::rt-db-user",
		"the URL follows the user's update: new pods start with a password Cloud SQL accepts")

	for _, tc := range []struct {
		name       string
		c          credentials
		dbRotation int
		rolls      []string
	}{
		{"redis rotated", credentials{redis: "rotated", amqp: amqpURL}, 0, []string{"rt-web-blue", "rt-web-green", "rt-worker"}},
		{"rabbitmq rotated", credentials{redis: redisPassword, amqp: "amqp://oms-alt:rotated@mq:5672/"}, 0, []string{"rt-worker"}},
		// The mocks name a password after its resource, so its value does not change here: the engine tests'
		// random stand-in generates a new one, and TestDayTwoChangeMatrix sees every consumer roll.
		{"database rotation replaces the password", base, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			after, inv := run(tc.c, tc.dbRotation)
			for name := range before {
				assert.Equal(t, slices.Contains(tc.rolls, name), before[name] != after[name], "%s rolls", name)
			}
			pw := find(t, inv, "random:index/randomPassword:RandomPassword", "rt-db-password")
			keepers, _ := pw.Get("keepers")
			if tc.dbRotation > 0 {
				assert.Equal(t, map[string]any{"rotation": "1"}, keepers, "a rotation replaces the password")
			} else {
				assert.Nil(t, keepers, "no keepers before the first rotation: an existing password keeps its value")
			}
		})
	}
}

// withCells places acme on cell main and globex on cell b, which takes new accounts.
func withCells() omsruntime.DatabaseArgs {
	return omsruntime.DatabaseArgs{
		Accounts: map[string]pulumi.StringInput{"acme": pulumi.String("pw-acme"), "globex": pulumi.String("pw-globex")},
		Cells: map[string]omsruntime.Cell{
			"main": {Host: pulumi.String("10.30.0.3"), Instance: pulumi.String("oms-test-pg"), ServerCA: pulumi.String(serverCA), Accounts: []string{"acme"}},
			"b":    {Host: pulumi.String("10.30.0.7"), Instance: pulumi.String("oms-test-b-pg"), ServerCA: pulumi.String("cell b's CA"), Accounts: []string{"globex"}},
		},
		DefaultCell: "b",
	}
}

// TestDatabaseCells: with cells, every pod of the oms image reads each cell's host and CA file, and the cell of the
// accounts it creates (README, "Database cells"); the migrate Job alone reads each account's cell, so that placing an
// account never rolls the web and worker pods, while a new cell or CA does.
func TestDatabaseCells(t *testing.T) {
	args := prodArgs()
	args.Database = withCells()
	res := evaluate(t, args)
	cfg := kubetest.Map(t, byObjectName(t, res.inv, kubetest.ConfigMap, "oms-test-runtime"), "data")
	assert.JSONEq(t, `{"main":{"host":"10.30.0.3","caFile":"/etc/oms/db-ca/server-ca-main.pem"},`+
		`"b":{"host":"10.30.0.7","caFile":"/etc/oms/db-ca/server-ca-b.pem"}}`, cfg[omsruntime.EnvDatabaseCells].(string))
	assert.Equal(t, "b", cfg[omsruntime.EnvDefaultCell])
	assert.Equal(t, "/etc/oms/db-ca/server-ca-b.pem", omsruntime.CellCAFile("b"))
	assert.Equal(t, map[string]any{"server-ca.pem": serverCA, "server-ca-main.pem": serverCA, "server-ca-b.pem": "cell b's CA"},
		kubetest.Map(t, byObjectName(t, res.inv, kubetest.ConfigMap, "oms-test-db-ca"), "data"), "mounted at /etc/oms/db-ca in every pod")

	placement := func(res *result) any {
		for _, j := range res.inv.OfType(job) {
			if strings.HasPrefix(j.Name, "rt-migrate-") {
				for _, e := range kubetest.Container(t, j, "migrate")["env"].([]any) {
					if e := e.(map[string]any); e["name"] == omsruntime.EnvAccountCells {
						return e["value"]
					}
				}
			}
		}
		return nil
	}
	assert.Equal(t, `{"acme":"main","globex":"b"}`, placement(res))
	for _, d := range []string{"rt-web-blue", "rt-web-green", "rt-worker"} {
		assert.NotContains(t, fmt.Sprint(find(t, res.inv, kubetest.Deployment, d).Inputs), omsruntime.EnvAccountCells, d)
	}

	checksum := func(res *result) any {
		return kubetest.Map(t, find(t, res.inv, kubetest.Deployment, "rt-worker"), "spec.template.metadata.annotations")[omsruntime.ConfigChecksumAnnotation]
	}
	moved := prodArgs()
	moved.Database = withCells()
	moved.Database.Cells["main"] = omsruntime.Cell{Host: pulumi.String("10.30.0.3"), Instance: pulumi.String("oms-test-pg"), ServerCA: pulumi.String(serverCA), Accounts: []string{"acme", "globex"}}
	moved.Database.Cells["b"] = omsruntime.Cell{Host: pulumi.String("10.30.0.7"), Instance: pulumi.String("oms-test-b-pg"), ServerCA: pulumi.String("cell b's CA")}
	movedRes := evaluate(t, moved)
	assert.Equal(t, checksum(res), checksum(movedRes), "a placement does not roll the pods")
	assert.Equal(t, `{"acme":"main","globex":"main"}`, placement(movedRes))
	rotated := prodArgs()
	rotated.Database = withCells()
	rotated.Database.Cells["b"] = omsruntime.Cell{Host: pulumi.String("10.30.0.7"), Instance: pulumi.String("oms-test-b-pg"), ServerCA: pulumi.String("cell b's new CA"), Accounts: []string{"globex"}}
	assert.NotEqual(t, checksum(res), checksum(evaluate(t, rotated)), "a cell's new CA restarts the pods")
}

// TestTheControlLoginIsOnEveryCell: with cells, the runtime's control login exists on every cell's instance with the
// control database's password (README, "Database cells"): the runtime connects as it to database postgres on a cell
// other than main to create, adopt, back up, restore and drop the accounts' databases there. Each is kept like main's
// (ABANDON; protected in production), and what waits for main's login waits for every cell's: the migrate Jobs, and
// the Secret whose URL rolls the pods.
func TestTheControlLoginIsOnEveryCell(t *testing.T) {
	for _, production := range []bool{true, false} {
		t.Run(fmt.Sprintf("production=%v", production), func(t *testing.T) {
			args := prodArgs()
			if !production {
				args.Production = false
				args.Image = "europe-docker.pkg.dev/p/oms/oms:1.4.2"
			}
			args.Database = withCells()
			res := evaluate(t, args)
			instances := map[string]string{}
			for _, u := range res.inv.OfType("gcp:sql/user:User") {
				instances[u.Name] = u.String("instance")
				assert.Equal(t, "oms", u.String("name"), u.Name)
				assert.Equal(t, "BUILT_IN", u.String("type"), u.Name)
				assert.Equal(t, "ABANDON", u.String("deletionPolicy"), u.Name)
				assert.Equal(t, "omscloud-test", u.String("project"), u.Name)
				assert.Equal(t, production, u.Protected, "%s: protected in production only, as main's", u.Name)
				assert.Equal(t, login{password: "mock-generated-rt-db-password", secret: true}, res.logins[u.Name],
					"%s: the control password, a secret", u.Name)
			}
			assert.Equal(t, map[string]string{"rt-db-user": "oms-test-pg", "rt-db-user-b": "oms-test-b-pg"}, instances,
				"one login per cell; main's keeps its name")
			assert.Equal(t, "rt-db-user-b", omsruntime.CellLoginName("rt", "b"))

			cellLogin := "gcp:sql/user:User::rt-db-user-b"
			assert.Contains(t, res.deps[kubetest.Secret+"::rt-env"], cellLogin,
				"the URL follows every cell's login: new pods start with a password every cell accepts")
			var migrations int
			for _, j := range res.inv.OfType(job) {
				if strings.HasPrefix(j.Name, "rt-migrate-") {
					migrations++
					assert.Contains(t, res.deps[job+"::"+j.Name], cellLogin, "%s adopts accounts on cell b as the login", j.Name)
				}
			}
			assert.Positive(t, migrations)
		})
	}

	single := evaluate(t, prodArgs())
	var users []string
	for _, u := range single.inv.OfType("gcp:sql/user:User") {
		users = append(users, u.Name)
	}
	assert.Equal(t, []string{"rt-db-user"}, users, "without cells, main's login alone")
}

// TestRotationUpdatesTheLoginOnEveryCellInPlace: raising Database.PasswordRotation regenerates the one control
// password, and no login changes an input whose change replaces a Cloud SQL user (enginetest's replace table: name,
// instance, host, project, type): every cell's login takes the new password in place, as main's does.
func TestRotationUpdatesTheLoginOnEveryCellInPlace(t *testing.T) {
	args := prodArgs()
	args.Database = withCells()
	before := evaluate(t, args)
	args.Database = withCells()
	args.Database.PasswordRotation = 1
	after := evaluate(t, args)

	var regenerated []string
	for _, pw := range after.inv.OfType("random:index/randomPassword:RandomPassword") {
		if k, ok := pw.Get("keepers"); ok && k != nil {
			regenerated = append(regenerated, pw.Name)
		}
	}
	assert.Equal(t, []string{"rt-db-password"}, regenerated, "one control password, no password per cell")

	logins := before.inv.OfType("gcp:sql/user:User")
	require.Len(t, logins, 2)
	for _, old := range logins {
		rotated := find(t, after.inv, old.Type, old.Name)
		for _, path := range []string{"name", "instance", "host", "project", "type", "deletionPolicy"} {
			was, _ := old.Get(path)
			is, _ := rotated.Get(path)
			assert.Equal(t, was, is, "%s: %s is kept", old.Name, path)
		}
		assert.Equal(t, old.Protected, rotated.Protected, old.Name)
		assert.Equal(t, after.logins["rt-db-user"], after.logins[old.Name], "%s takes the control password", old.Name)
	}
}
