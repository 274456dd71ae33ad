package kubeverify_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/omscloud/omscloud/components/gke"
	"github.com/omscloud/omscloud/components/rabbitmq"
	"github.com/omscloud/omscloud/components/redis"
	"github.com/omscloud/omscloud/enginetest"
	"github.com/omscloud/omscloud/inventory"
	"github.com/omscloud/omscloud/kubeverify"
	"github.com/omscloud/omscloud/stacks"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	zoneKey  = "topology.kubernetes.io/zone"
	kwokKey  = "kwok.x-k8s.io/node"
	testMark = "omscloud.io/kubeverify" // labels everything the test itself creates
	// nodesPerPoolZone fake nodes per node pool and zone: more than one, so that the scheduler has a choice inside a
	// zone and hostname anti-affinity is exercised.
	nodesPerPoolZone = 2
)

// kwokToleration lets pods onto the fake nodes. Only the test adds it; the product never does.
var kwokToleration = map[string]any{"key": kwokKey, "operator": "Equal", "value": "fake", "effect": "NoSchedule"}

// subject is one inventory to verify and the zones its workloads must spread over.
type subject struct {
	name  string
	zones []string
	inv   *inventory.Inventory
}

// subjects returns every shipped stack, plus the stateful components on their own for as long as no stack
// declares them (they are being integrated into the stack program).
func subjects(t *testing.T) []subject {
	t.Helper()
	names, err := stacks.ListStacks("..")
	require.NoError(t, err)
	require.NotEmpty(t, names, "no Pulumi.<stack>.yaml in the repository root")
	var out []subject
	for _, n := range names {
		sf, err := stacks.LoadStackFile("..", n)
		require.NoError(t, err)
		cfg, inv, err := stacks.Plan(sf)
		require.NoError(t, err, "stack %s", n)
		require.Len(t, cfg.Zones, 3, "stack %s: the verification spreads over the stack's zones", n)
		out = append(out, subject{name: "stack=" + n, zones: cfg.Zones, inv: inv})
	}
	zones := out[0].zones // the components' own tests use the prod stack's names
	if i := slices.IndexFunc(out, func(s subject) bool { return s.name == "stack=prod" }); i >= 0 {
		zones = out[i].zones
	}
	covered := func(typ string) bool {
		for _, s := range out {
			if len(s.inv.OfType(typ)) > 0 {
				return true
			}
		}
		return false
	}
	selector := map[string]string{"app.kubernetes.io/name": "oms", "app.kubernetes.io/instance": "oms-prod-us"}
	if !covered("omscloud:redis:Redis") {
		out = append(out, subject{name: "component=redis", zones: zones, inv: evaluate(t, func(ctx *pulumi.Context, opt pulumi.ResourceOption) error {
			_, err := redis.New(ctx, "redis", &redis.Args{
				Name: "oms-prod-us", Namespace: "oms", ClientSelector: selector,
				Size: redis.Size{CPU: "1", Memory: "4Gi", StorageGB: 20},
			}, opt)
			return err
		})})
	}
	if !covered("omscloud:rabbitmq:RabbitMQ") {
		out = append(out, subject{name: "component=rabbitmq", zones: zones, inv: evaluate(t, func(ctx *pulumi.Context, opt pulumi.ResourceOption) error {
			_, err := rabbitmq.New(ctx, "rabbitmq", &rabbitmq.Args{
				Name: "oms-prod-us", Namespace: "oms", ClientSelector: selector,
				Size: rabbitmq.Size{CPU: "1", Memory: "4Gi", StorageGB: 50},
			}, opt)
			return err
		})})
	}
	return out
}

func evaluate(t *testing.T, declare func(*pulumi.Context, pulumi.ResourceOption) error) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Evaluate(func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{})
		if err != nil {
			return err
		}
		return declare(ctx, pulumi.Provider(k8s))
	}, stacks.Project, "kubeverify", nil, nil)
	require.NoError(t, err)
	return inv
}

// TestKubernetesObjects sends every Kubernetes object of every shipped stack to a real kube-apiserver: each passes a
// strict server-side dry-run under the restricted Pod Security level, then the workloads are applied onto kwok
// nodes in the stack's three zones and must be scheduled, spread with max skew 1, and guarded by a PDB that allows
// exactly the intended disruption.
func TestKubernetesObjects(t *testing.T) {
	c := requireCluster(t)
	start := time.Now()
	all := subjects(t)
	t.Logf("%d inventories evaluated in %.1f s", len(all), time.Since(start).Seconds())
	for i, s := range all {
		t.Run(s.name, func(t *testing.T) {
			objs, err := kubeverify.Objects(s.inv)
			require.NoError(t, err)
			if len(objs) == 0 {
				t.Logf("%s declares no Kubernetes objects", s.name)
				return
			}
			start := time.Now()
			env := &env{c: c, s: s, objs: objs, id: i}
			t.Cleanup(func() { env.cleanup(t) })
			env.createNamespaces(t)
			t.Run("dry-run", env.dryRun)
			t.Run("scheduled", env.schedule)
			t.Logf("%s: %d objects verified in %.1f s", s.name, len(objs), time.Since(start).Seconds())
		})
	}
}

// env is one subject on the shared cluster, and what the test created for it.
type env struct {
	c    *cluster
	s    subject
	objs []kubeverify.Object
	id   int // keeps the names of test nodes and volumes apart from the previous subject's, still being deleted

	namespaces []string
	applied    []kubeverify.Object
	nodes      map[string]string // node name -> zone
}

// createNamespaces creates the namespaces the inventory declares (with their own labels) and the ones its objects
// use, all enforcing the restricted Pod Security level.
func (e *env) createNamespaces(t *testing.T) {
	declared := map[string]kubeverify.Object{}
	for _, o := range e.objs {
		if o.Kind == "Namespace" && o.APIVersion == "v1" {
			declared[o.Name] = o
		}
	}
	used := map[string]bool{}
	for _, o := range e.objs {
		if o.Namespace != "" && o.Namespace != "default" {
			used[o.Namespace] = true
		}
	}
	for name := range declared {
		used[name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(used)) {
		m := map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}}
		if o, ok := declared[name]; ok {
			m = o.Manifest
			if lvl := labels(m)["pod-security.kubernetes.io/enforce"]; lvl != "" && lvl != "restricted" {
				t.Errorf("Namespace %s enforces Pod Security level %q: the workloads must run under restricted", name, lvl)
			} else if lvl == "" {
				t.Logf("Namespace %s sets no pod-security.kubernetes.io/enforce label; the test enforces restricted", name)
			}
		}
		m = withLabels(m, restrictedLabels()...)
		_, err := e.c.apply(m)
		require.NoError(t, err, "create namespace %s", name)
		e.namespaces = append(e.namespaces, name)
	}
	// Pods are admitted only once their ServiceAccount exists; the controller-manager creates "default".
	for _, name := range e.namespaces {
		_, err := e.c.run(nil, "wait", "--for=create", "-n", name, "serviceaccount/default", "--timeout=60s")
		require.NoError(t, err)
	}
}

// dryRun: every object passes a strict server-side dry-run without a single warning (a Pod Security violation of a
// workload's template is only a warning at the workload level: see also the pod check in schedule).
func (e *env) dryRun(t *testing.T) {
	// Claim patches target the claims the StatefulSet controller creates: schedule applies them once those exist.
	objs := slices.DeleteFunc(slices.Clone(e.objs), isClaimPatch)
	// One request for all objects; only when something is refused or warned about, one per object to name it.
	r, err := e.c.apply(list(manifests(objs, nil)...), "--dry-run=server")
	if err == nil && len(r.warnings()) == 0 {
		t.Logf("%d objects passed strict server-side dry-run", len(objs))
		return
	}
	for _, o := range objs {
		t.Run(o.Kind+"/"+o.Name, func(t *testing.T) {
			t.Parallel()
			r, err := e.c.apply(o.Manifest, "--dry-run=server")
			if err != nil {
				t.Errorf("%s failed server-side dry-run (owner: %s): %v", o.ID(), o.Source.Parent, err)
				return
			}
			assert.Empty(t, r.warnings(), "%s: API server warnings", o.ID())
		})
	}
}

// schedule applies the objects for real onto fake nodes and checks where their pods land.
func (e *env) schedule(t *testing.T) {
	e.createNodes(t)
	e.createVolumes(t)

	// Everything else before the workloads, so that their ServiceAccounts, ConfigMaps and Secrets exist.
	sorted := slices.Clone(e.objs)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].PodTemplate() == nil && sorted[j].PodTemplate() != nil })
	sorted = slices.DeleteFunc(sorted, func(o kubeverify.Object) bool { return o.Kind == "Namespace" }) // created already
	patches := slices.DeleteFunc(slices.Clone(sorted), func(o kubeverify.Object) bool { return !isClaimPatch(o) })
	sorted = slices.DeleteFunc(sorted, isClaimPatch)
	e.applied = sorted
	if _, err := e.c.apply(list(manifests(sorted, kwokToleration)...)); err != nil {
		for _, o := range sorted { // name the object that failed
			_, err := e.c.apply(o.WithToleration(kwokToleration))
			assert.NoError(t, err, "apply %s", o.ID())
		}
	}
	if t.Failed() {
		return
	}
	// Each claim patch applies (as the provider does, once the StatefulSet is ready) to a claim the controller made.
	for _, o := range patches {
		_, err := e.c.run(nil, "wait", "--for=create", "-n", ns(o), "persistentvolumeclaim/"+o.Name, "--timeout=60s")
		require.NoError(t, err, "%s: the StatefulSet controller creates the claim the patch expands", o.ID())
		_, err = e.c.apply(o.Manifest)
		assert.NoError(t, err, "apply %s", o.ID())
	}

	// Pod Security admission enforces on pods, not on the workloads that create them.
	for _, o := range e.objs {
		if pod := o.Pod(); pod != nil {
			_, err := e.c.create(pod, "--dry-run=server")
			assert.NoError(t, err, "the pod of %s is rejected", o.ID())
		}
	}

	workloads := map[string]kubeverify.Object{} // by namespace/name
	for _, o := range e.objs {
		if (o.Kind == "Deployment" || o.Kind == "StatefulSet") && e.replicas(o) > 0 {
			workloads[nsName(o)] = o
		}
	}
	t.Run("spread", func(t *testing.T) {
		for _, key := range slices.Sorted(maps.Keys(workloads)) {
			o := workloads[key]
			t.Run(o.Kind+"/"+o.Name, func(t *testing.T) {
				t.Parallel()
				e.checkSpread(t, o)
			})
		}
	})
	e.checkPDBs(t, workloads)
}

func (e *env) createNodes(t *testing.T) {
	e.nodes = map[string]string{}
	var items []any
	for _, zone := range e.s.zones {
		for _, pool := range []string{"web", "stateful"} {
			for i := 1; i <= nodesPerPoolZone; i++ {
				name := fmt.Sprintf("kwok%d-%s-%s-%d", e.id, pool, zone, i)
				taints := []any{map[string]any{"key": kwokKey, "value": "fake", "effect": "NoSchedule"}}
				if pool == "stateful" {
					taints = append(taints, map[string]any{"key": gke.StatefulTaint, "value": "true", "effect": "NoSchedule"})
				}
				items = append(items, map[string]any{
					"apiVersion": "v1", "kind": "Node",
					"metadata": map[string]any{
						"name":        name,
						"annotations": map[string]any{kwokKey: "fake"},
						"labels": map[string]any{
							"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
							zoneKey: zone, "topology.kubernetes.io/region": zone[:strings.LastIndex(zone, "-")],
							gke.PoolLabel: pool, "type": "kwok", testMark: "true",
						},
					},
					"spec": map[string]any{"taints": taints},
				})
				e.nodes[name] = zone
			}
		}
	}
	_, err := e.c.apply(list(items...))
	require.NoError(t, err, "create kwok nodes")
	_, err = e.c.run(nil, "wait", "--for=condition=Ready", "node", "-l", testMark+"=true", "--timeout=120s")
	require.NoError(t, err, "kwok did not make the fake nodes Ready")
}

// createVolumes stands in for GKE's CSI provisioner, which kwok cannot run: a StorageClass of the name the workloads
// ask for that binds on first consumer, and pre-created local PersistentVolumes pinned to each fake node, so that
// the scheduler's volume binding takes part in placement as it does on GKE with zonal disks.
func (e *env) createVolumes(t *testing.T) {
	declared := map[string]bool{}
	for _, o := range e.objs {
		if o.Kind == "StorageClass" {
			declared[o.Name] = true
		}
	}
	type claim struct {
		class, size string
		modes       []any
		count       int
	}
	var claims []claim
	for _, o := range e.objs {
		if isClaimPatch(o) { // expands a claim counted with its StatefulSet
			continue
		}
		var tmpls []any
		count := 1
		switch o.Kind {
		case "StatefulSet":
			tmpls, _ = mapAt(o.Manifest, "spec")["volumeClaimTemplates"].([]any)
			count = e.replicas(o)
		case "PersistentVolumeClaim":
			tmpls = []any{o.Manifest}
		}
		for _, tm := range tmpls {
			spec := mapAt(tm.(map[string]any), "spec")
			class, _ := spec["storageClassName"].(string)
			size, _ := mapAt(mapAt(spec, "resources"), "requests")["storage"].(string)
			modes, _ := spec["accessModes"].([]any)
			require.NotEmpty(t, class, "%s: a claim without storageClassName takes the cluster default; name the class", o.ID())
			claims = append(claims, claim{class: class, size: size, modes: modes, count: count})
		}
	}
	var items []any
	classes := map[string]bool{}
	for i, c := range claims {
		if !declared[c.class] && !classes[c.class] {
			classes[c.class] = true
			items = append(items, withLabels(enginetest.StorageClass(c.class), testMark+"=true"))
		}
		// Enough volumes on every node for every replica: placement, not storage, decides where pods go.
		for node := range e.nodes {
			for j := 0; j < c.count; j++ {
				name := fmt.Sprintf("kv-%s-%d-%d", node, i, j)
				items = append(items, map[string]any{
					"apiVersion": "v1", "kind": "PersistentVolume",
					"metadata": map[string]any{"name": name, "labels": map[string]any{testMark: "true"}},
					"spec": map[string]any{
						"capacity":                      map[string]any{"storage": c.size},
						"accessModes":                   c.modes,
						"storageClassName":              c.class,
						"persistentVolumeReclaimPolicy": "Retain",
						"local":                         map[string]any{"path": "/mnt/" + name},
						"nodeAffinity": map[string]any{"required": map[string]any{"nodeSelectorTerms": []any{
							map[string]any{"matchExpressions": []any{map[string]any{
								"key": "kubernetes.io/hostname", "operator": "In", "values": []any{node},
							}}},
						}}},
					},
				})
			}
		}
	}
	if len(items) > 0 {
		_, err := e.c.apply(list(items...))
		require.NoError(t, err, "create StorageClasses and PersistentVolumes")
	}
}

// checkSpread waits until every replica of a workload is ready, then checks the zones its pods landed in.
func (e *env) checkSpread(t *testing.T, o kubeverify.Object) {
	kind := strings.ToLower(o.Kind)
	ready := fmt.Sprintf("--for=jsonpath={.status.readyReplicas}=%d", e.replicas(o))
	if _, err := e.c.run(nil, "wait", "-n", ns(o), kind+"/"+o.Name, ready, "--timeout=180s"); err != nil {
		t.Errorf("%s: replicas not ready: %v\n%s", o.ID(), err, e.diagnose(o))
		return
	}
	pods := e.pods(t, o)
	perZone := map[string]int{}
	for _, z := range e.s.zones {
		perZone[z] = 0
	}
	nodes := map[string]bool{}
	for _, p := range pods {
		node, _ := mapAt(p, "spec")["nodeName"].(string)
		phase, _ := mapAt(p, "status")["phase"].(string)
		name, _ := mapAt(p, "metadata")["name"].(string)
		zone, ok := e.nodes[node]
		if !assert.True(t, ok, "%s: pod %s on node %q, not one of the stack's fake nodes", o.ID(), name, node) {
			continue
		}
		assert.Equal(t, "Running", phase, "%s: pod %s", o.ID(), name)
		perZone[zone]++
		nodes[node] = true
	}
	if !assert.Len(t, pods, e.replicas(o), "%s: pods", o.ID()) {
		return
	}
	counts := slices.Collect(maps.Values(perZone))
	skew := slices.Max(counts) - slices.Min(counts)
	assert.LessOrEqual(t, skew, 1, "%s: pods per zone %v: max skew must be 1", o.ID(), perZone)
	t.Logf("%s: %d pods on %d nodes, per zone %v", o.ID(), len(pods), len(nodes), perZone)
}

func (e *env) pods(t *testing.T, o kubeverify.Object) []map[string]any {
	sel := mapAt(mapAt(o.Manifest, "spec"), "selector")["matchLabels"].(map[string]any)
	var terms []string
	for _, k := range slices.Sorted(maps.Keys(sel)) {
		terms = append(terms, fmt.Sprintf("%s=%v", k, sel[k]))
	}
	got, err := e.c.get("pods", "-n", ns(o), "-l", strings.Join(terms, ","))
	require.NoError(t, err)
	var out []map[string]any
	for _, p := range got["items"].([]any) {
		out = append(out, p.(map[string]any))
	}
	return out
}

// diagnose explains why a workload's pods are not ready: pod placement and the namespace's warning events.
func (e *env) diagnose(o kubeverify.Object) string {
	var b strings.Builder
	if r, err := e.c.run(nil, "get", "pods,pvc", "-n", ns(o), "-o", "wide"); err == nil {
		b.WriteString(r.stdout)
	}
	if r, err := e.c.run(nil, "get", "events", "-n", ns(o), "--field-selector", "type=Warning"); err == nil {
		b.WriteString(r.stdout)
	}
	return b.String()
}

// checkPDBs: every multi-replica workload has a PDB selecting exactly its pods, and each PDB allows exactly the
// disruption its spec intends once all pods are healthy: at least one (a node drain can proceed), never all of them,
// and for a StatefulSet (a Sentinel or RabbitMQ quorum) never so many that the majority could go at once.
func (e *env) checkPDBs(t *testing.T, workloads map[string]kubeverify.Object) {
	covered := map[string]bool{}
	for _, pdb := range e.objs {
		if pdb.Kind != "PodDisruptionBudget" {
			continue
		}
		var w kubeverify.Object
		var found bool
		for _, o := range workloads {
			if ns(o) == ns(pdb) && selects(pdb, o) {
				require.False(t, found, "%s selects the pods of %s and %s", pdb.ID(), w.ID(), o.ID())
				w, found = o, true
			}
		}
		if !assert.True(t, found, "%s selects the pods of no workload", pdb.ID()) {
			continue
		}
		covered[nsName(w)] = true
		n := e.replicas(w)

		var status map[string]any
		deadline := time.Now().Add(60 * time.Second)
		for {
			got, err := e.c.get("pdb", "-n", ns(pdb), pdb.Name)
			require.NoError(t, err)
			status = mapAt(got, "status")
			if num(status, "observedGeneration") >= num(mapAt(got, "metadata"), "generation") && num(status, "expectedPods") == n && num(status, "currentHealthy") == n {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: status %v never reached %d expected and healthy pods", pdb.ID(), status, n)
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if num(status, "currentHealthy") != n {
			continue
		}
		allowed := num(status, "disruptionsAllowed")
		assert.Equal(t, intended(t, pdb, n), allowed, "%s over %d replicas of %s", pdb.ID(), n, w.ID())
		if n < 2 {
			t.Logf("%s: %d of %d replica may be disrupted", pdb.ID(), allowed, n)
			continue // one replica: either a drain blocks or the workload goes down; the spec decides
		}
		assert.GreaterOrEqual(t, allowed, 1, "%s: no disruption allowed, node drains would block", pdb.ID())
		if w.Kind == "StatefulSet" { // quorum systems: Sentinel, RabbitMQ
			assert.Greater(t, n-allowed, n/2, "%s allows %d of %d replicas down: a majority must stay", pdb.ID(), allowed, n)
		} else {
			assert.Less(t, allowed, n, "%s allows every replica of %s down", pdb.ID(), w.ID())
		}
		t.Logf("%s: %d of %d replicas may be disrupted", pdb.ID(), allowed, n)
	}
	for key, w := range workloads {
		if e.replicas(w) > 1 {
			assert.True(t, covered[key], "%s has %d replicas and no PodDisruptionBudget", w.ID(), e.replicas(w))
		}
	}
}

// intended is the disruption a PDB's spec asks for with n healthy pods, rounded as the disruption controller does.
func intended(t *testing.T, pdb kubeverify.Object, n int) int {
	spec := mapAt(pdb.Manifest, "spec")
	scaled := func(v any) int {
		switch x := v.(type) {
		case float64:
			return int(x)
		case string:
			p, err := strconv.Atoi(strings.TrimSuffix(x, "%"))
			require.NoError(t, err, "%s: %q", pdb.ID(), x)
			return int(math.Ceil(float64(p) * float64(n) / 100))
		}
		t.Fatalf("%s: unexpected value %v", pdb.ID(), v)
		return 0
	}
	if v, ok := spec["maxUnavailable"]; ok {
		return scaled(v)
	}
	if v, ok := spec["minAvailable"]; ok {
		return max(n-scaled(v), 0)
	}
	return 0
}

func selects(pdb, w kubeverify.Object) bool {
	sel := mapAt(mapAt(pdb.Manifest, "spec"), "selector")
	if _, ok := sel["matchExpressions"]; ok || len(sel) == 0 {
		return false // omscloud selects by labels only
	}
	podLabels := mapAt(mapAt(w.PodTemplate(), "metadata"), "labels")
	for k, v := range mapAt(sel, "matchLabels") {
		if podLabels[k] != v {
			return false
		}
	}
	return true
}

// cleanup removes what the subject created, so that the next one starts from an empty cluster (stacks share
// namespace names).
func (e *env) cleanup(t *testing.T) {
	start := time.Now()
	// The namespaces stay (the next subject re-applies its own Namespace objects; deleting a namespace takes the
	// namespace controller ~20 s): the objects go, and with them their pods and claims.
	if len(e.applied) > 0 {
		_, err := e.c.run(mustJSON(t, list(manifests(e.applied, nil)...)), "delete", "--ignore-not-found", "--wait=false", "-f", "-")
		assert.NoError(t, err, "delete the applied objects")
	}
	for _, n := range e.namespaces {
		_, err := e.c.run(nil, "delete", "pvc", "--all", "-n", n, "--wait=false")
		assert.NoError(t, err)
		// The next subject may reuse pod names and selectors.
		_, err = e.c.run(nil, "wait", "--for=delete", "pod", "--all", "-n", n, "--timeout=120s")
		assert.NoError(t, err, "pods of namespace %s not deleted", n)
	}
	for _, kind := range []string{"persistentvolume", "storageclass", "node"} {
		_, err := e.c.run(nil, "delete", kind, "-l", testMark+"=true", "--ignore-not-found", "--wait=false")
		assert.NoError(t, err, "delete test %ss", kind)
	}
	t.Logf("%s: cleaned up in %.1f s", e.s.name, time.Since(start).Seconds())
}

func manifests(objs []kubeverify.Object, toleration map[string]any) []any {
	out := make([]any, len(objs))
	for i, o := range objs {
		out[i] = o.Manifest
		if toleration != nil {
			out[i] = o.WithToleration(toleration)
		}
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// resource names the object's kind unambiguously for kubectl: kind.group.
func resource(o kubeverify.Object) string {
	r := strings.ToLower(o.Kind)
	if g, _, ok := strings.Cut(o.APIVersion, "/"); ok {
		r += "." + g
	}
	return r
}

// replicas is how many pods a workload runs: spec.replicas (defaulted to 1 by the API), held within the bounds of
// an HPA that targets it — without metrics the HPA controller only enforces its bounds; at 0 the HPA is off.
func (e *env) replicas(o kubeverify.Object) int {
	n := 1
	if v, ok := mapAt(o.Manifest, "spec")["replicas"].(float64); ok {
		n = int(v)
	}
	for _, h := range e.objs {
		spec := mapAt(h.Manifest, "spec")
		ref := mapAt(spec, "scaleTargetRef")
		if h.Kind != "HorizontalPodAutoscaler" || ns(h) != ns(o) || ref["kind"] != o.Kind || ref["name"] != o.Name || n == 0 {
			continue
		}
		lo := 1
		if v, ok := spec["minReplicas"].(float64); ok {
			lo = int(v)
		}
		n = min(max(n, lo), num(spec, "maxReplicas"))
	}
	return n
}

func ns(o kubeverify.Object) string {
	if o.Namespace == "" {
		return "default"
	}
	return o.Namespace
}

// isClaimPatch: a PersistentVolumeClaimPatch expands a claim a StatefulSet's controller creates.
func isClaimPatch(o kubeverify.Object) bool {
	return strings.HasSuffix(o.Source.Type, ":PersistentVolumeClaimPatch")
}

func nsName(o kubeverify.Object) string { return ns(o) + "/" + o.Name }

func num(m map[string]any, k string) int {
	v, _ := m[k].(float64)
	return int(v)
}

func mapAt(m map[string]any, k string) map[string]any {
	v, _ := m[k].(map[string]any)
	if v == nil {
		return map[string]any{}
	}
	return v
}

func labels(m map[string]any) map[string]any { return mapAt(mapAt(m, "metadata"), "labels") }

// withLabels returns a copy of the manifest's top level with extra "k=v" labels.
func withLabels(m map[string]any, kv ...string) map[string]any {
	out := maps.Clone(m)
	meta := maps.Clone(mapAt(m, "metadata"))
	l := maps.Clone(labels(m))
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		l[k] = v
	}
	meta["labels"] = l
	out["metadata"] = meta
	return out
}

// TestClusterRejectsBadObjects proves the checks above can fail: the API server refuses unknown fields, Pod
// Security rejects a pod that is not restricted and warns about a workload that would create one.
func TestClusterRejectsBadObjects(t *testing.T) {
	c := requireCluster(t)
	name := fmt.Sprintf("kubeverify-negative-%d", time.Now().UnixNano())
	ns := withLabels(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}}, restrictedLabels()...)
	_, err := c.apply(ns)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = c.run(nil, "delete", "namespace", name, "--wait=false") })
	_, err = c.run(nil, "wait", "--for=create", "-n", name, "serviceaccount/default", "--timeout=60s")
	require.NoError(t, err)

	podSpec := func() map[string]any {
		return map[string]any{"containers": []any{map[string]any{"name": "app", "image": "busybox"}}}
	}
	unknown := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "x", "namespace": name}, "data": map[string]any{}, "bogus": true}
	_, err = c.apply(unknown, "--dry-run=server")
	assert.ErrorContains(t, err, "bogus", "strict field validation")

	pod := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "x", "namespace": name}, "spec": podSpec()}
	_, err = c.create(pod, "--dry-run=server")
	assert.ErrorContains(t, err, `violates PodSecurity "restricted`)

	deploy := map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "x", "namespace": name},
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{"app": "x"}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "x"}}, "spec": podSpec()},
		}}
	r, err := c.apply(deploy, "--dry-run=server")
	require.NoError(t, err, "Pod Security only warns about workloads")
	require.Len(t, r.warnings(), 1)
	assert.Contains(t, r.warnings()[0], `would violate PodSecurity "restricted`)
}
