package enginetest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/enginetest"
	"github.com/omscloud/omscloud/stacks"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The control plane the real-provider tests share is started once per test binary, on first use, and stopped in
// TestMain (and by k8s-up.sh's owner watch if this binary is killed first).
var (
	kubeOnce sync.Once
	kube     *enginetest.KubeCluster
	kubeErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if kube != nil {
		if err := kube.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// skipOrFail skips on a binary that has not been built, except under CI=true, where it fails (as enginetest.New).
func skipOrFail(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, enginetest.ErrNotBuilt) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	t.Fatal(err)
}

// requireKube returns the shared control plane.
func requireKube(t *testing.T, projectDir string) *enginetest.KubeCluster {
	t.Helper()
	kubeOnce.Do(func() {
		start := time.Now()
		kube, kubeErr = enginetest.StartKubeCluster(projectDir)
		if kubeErr == nil {
			fmt.Fprintf(os.Stderr, "enginetest: control plane up in %.1f s\n", time.Since(start).Seconds())
		}
	})
	if kubeErr != nil {
		skipOrFail(t, kubeErr)
	}
	return kube
}

// nodesPerPoolZone kwok nodes per node pool and zone: more than one, so that hostname anti-affinity has a choice.
const nodesPerPoolZone = 2

// parallelStacks is how many stacks update at once in TestShippedStacksOnRealKubernetes.
const parallelStacks = 2

// TestShippedStacksOnRealKubernetes runs every shipped stack with the real Pulumi Kubernetes provider against a real
// kube-apiserver (kwok nodes shaped like the stack's node pools): up succeeds and leaves every Deployment and
// StatefulSet ready, every PVC bound and every Job complete on the server; a second preview, by the provider
// connected to the cluster, changes nothing; switching to a green release whose smoke test fails (kwok stage
// pod-smoke-fail) fails up and leaves the public Service on blue; switching to a green release whose smoke test
// passes moves the public Service only after that smoke Job has completed. Then every day-2 change of the matrix is
// applied, one after the other, as an update of the live objects (dayTwoUpdates).
func TestShippedStacksOnRealKubernetes(t *testing.T) {
	env := enginetest.New(t)
	bin, err := enginetest.KubernetesProviderBinary()
	if err != nil {
		skipOrFail(t, err)
	}
	k := requireKube(t, env.ProjectDir)
	env.AttachRealKubernetes(t, k, bin)
	names, err := stacks.ListStacks(env.ProjectDir)
	require.NoError(t, err)
	require.NotEmpty(t, names)

	applyDayTwo := onePerEdgeKind(t, env, names)
	matrix := newDayTwoMatrix(t, "day-2 changes applied one after the other (real Kubernetes provider)", slices.Sorted(maps.Keys(applyDayTwo)))

	// Two stacks at a time: an update mostly waits on the provider's awaits, and two of them (each a CLI and a
	// provider process, ~1 GB together) keep a 2-core machine busy without starving the control plane.
	slots := make(chan struct{}, parallelStacks)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			slots <- struct{}{}
			defer func() { <-slots }()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
			defer cancel()
			sf, err := stacks.LoadStackFile(env.WorkDir, name)
			require.NoError(t, err)
			cfg, inv, err := stacks.Plan(sf)
			require.NoError(t, err)
			require.NoError(t, k.PrepareFor(ctx, inv, nodesPerPoolZone), "kwok nodes and volumes")
			prefix := cfg.NamePrefix()
			s := env.Stack(ctx, t, name, stacks.Program)
			timings := []string{}
			timed := func(what string, f func()) {
				start := time.Now()
				f()
				timings = append(timings, fmt.Sprintf("%s %.1fs", what, time.Since(start).Seconds()))
			}
			defer func() { t.Logf("real-provider timings for %s: %s", name, strings.Join(timings, ", ")) }()

			timed("up", func() {
				up, err := s.Up(ctx)
				require.NoError(t, err, "up: %s", tail(err))
				assert.Equal(t, "succeeded", up.Summary.Result)
			})
			assertServerReady(ctx, t, k, env, name, time.Minute)
			state, resources, err := env.RawState(name)
			require.NoError(t, err)
			assertSecretsEncrypted(t, state, resources, env.Providers.GeneratedSecrets())
			public := publicService(t, env, name, prefix)
			assert.Equal(t, omsruntime.Blue, selectorColor(ctx, t, k, public), "the public Service starts on blue")

			timed("preview", func() {
				_, steps, err := preview(ctx, s)
				require.NoError(t, err, "second preview")
				if !assert.Empty(t, opsExceptSame(steps), "a second preview shows no changes: %v", changed(steps)) {
					logDiff(ctx, t, s)
				}
			})

			failing := stagedImage(cfg.Runtime.Image, "smoke-fails")
			setConfig(ctx, t, s, "runtime.activeColor", omsruntime.Green)
			setConfig(ctx, t, s, "runtime.colorImages.green", failing)
			timed("failing switch", func() {
				_, err := s.Up(ctx)
				require.Error(t, err, "up must fail when the green release's smoke test fails")
				assert.Contains(t, err.Error(), omsruntime.SmokeJobName(prefix, omsruntime.Green, failing), "the smoke Job fails the update")
			})
			failedJob, err := k.Get(ctx, "job", "-n", public.namespace, omsruntime.SmokeJobName(prefix, omsruntime.Green, failing))
			require.NoError(t, err, "the failing smoke Job exists")
			assert.True(t, hasCondition(failedJob, "Failed"), "kwok stage pod-smoke-fail failed the smoke Job: %v", failedJob["status"])
			assert.Equal(t, omsruntime.Blue, selectorColor(ctx, t, k, public), "a failing smoke test leaves the public Service on blue")

			passing := stagedImage(cfg.Runtime.Image, "green")
			setConfig(ctx, t, s, "runtime.colorImages.green", passing)
			smoke := omsruntime.SmokeJobName(prefix, omsruntime.Green, passing)
			var order []string
			timed("switch", func() {
				ch := make(chan events.EngineEvent)
				done := make(chan []string)
				go func() { done <- switchOrder(ch, smoke, public.name) }()
				up, err := s.Up(ctx, optup.EventStreams(ch))
				order = <-done
				require.NoError(t, err, "switch to green: %s", tail(err))
				assert.Equal(t, "succeeded", up.Summary.Result)
			})
			assert.Equal(t, []string{"smoke job " + smoke + " done", "public service " + public.name + " updating"}, order,
				"the public Service moves only after the green smoke Job completed")
			assert.Equal(t, omsruntime.Green, selectorColor(ctx, t, k, public), "the public Service selects green")
			job, err := k.Get(ctx, "job", "-n", public.namespace, smoke)
			require.NoError(t, err)
			assert.True(t, hasCondition(job, "Complete"), "the green smoke Job completed: %v", job["status"])
			assertServerReady(ctx, t, k, env, name, time.Minute)

			timed("preview", func() {
				_, steps, err := preview(ctx, s)
				require.NoError(t, err, "preview after the switch")
				if !assert.Empty(t, opsExceptSame(steps), "a preview after the switch shows no changes: %v", changed(steps)) {
					logDiff(ctx, t, s)
				}
			})

			if !applyDayTwo[name] {
				return
			}
			matrix.record(name, baseCell, "ok")
			timings = append(timings, dayTwoUpdates(ctx, t, k, env, s, name, matrix)...)
			timed("preview", func() {
				_, steps, err := preview(ctx, s)
				require.NoError(t, err, "preview after the day-2 changes")
				if !assert.Empty(t, opsExceptSame(steps), "a preview after the day-2 changes shows no changes: %v", changed(steps)) {
					logDiff(ctx, t, s)
				}
			})
		})
	}
}

// onePerEdgeKind picks, for the day-2 changes applied for real, the first stack (by name) of each edge provider: the
// Kubernetes objects differ by edge kind (the tunnel's connector, the NEG Services) and little else, and each stack
// costs about 3 minutes of updates. TestDayTwoChangeMatrix previews the same changes on every stack.
func onePerEdgeKind(t *testing.T, env *enginetest.Env, names []string) map[string]bool {
	seen := map[string]bool{}
	out := map[string]bool{}
	for _, n := range slices.Sorted(slices.Values(names)) {
		if kind := stackConfig(t, env, n).Edge.Provider; !seen[kind] {
			seen[kind], out[n] = true, true
		}
	}
	return out
}

// stagedImage is a release of the stack's runtime image repository tagged tag (omsruntime's version label), pinned
// by a digest derived from the tag.
func stagedImage(image, tag string) string {
	repo, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	sum := sha256.Sum256([]byte(tag))
	return repo + ":" + tag + "@sha256:" + hex.EncodeToString(sum[:])
}

// objectRef names a Kubernetes object in the stack's state.
type objectRef struct{ kind, namespace, name string }

// stateObjects lists the Kubernetes objects of the given types in a stack's state, as the provider reported them.
func stateObjects(t *testing.T, env *enginetest.Env, stack string, types map[string]string) []objectRef {
	t.Helper()
	_, resources, err := env.RawState(stack)
	require.NoError(t, err)
	var out []objectRef
	for _, r := range resources {
		kind, ok := types[r.Type]
		if !ok {
			continue
		}
		meta, _ := r.Outputs["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		ns, _ := meta["namespace"].(string)
		require.NotEmpty(t, name, "%s has no metadata.name in the state", r.URN)
		out = append(out, objectRef{kind: kind, namespace: ns, name: name})
	}
	return out
}

// publicService is the stack's public Service (omsruntime.ServiceName) in the state.
func publicService(t *testing.T, env *enginetest.Env, stack, prefix string) objectRef {
	t.Helper()
	for _, o := range stateObjects(t, env, stack, map[string]string{"kubernetes:core/v1:Service": "service"}) {
		if o.name == omsruntime.ServiceName(prefix) {
			return o
		}
	}
	t.Fatalf("no Service %s in the state of %s", omsruntime.ServiceName(prefix), stack)
	return objectRef{}
}

func selectorColor(ctx context.Context, t *testing.T, k *enginetest.KubeCluster, svc objectRef) string {
	t.Helper()
	obj, err := k.Get(ctx, svc.kind, "-n", svc.namespace, svc.name)
	require.NoError(t, err)
	spec, _ := obj["spec"].(map[string]any)
	sel, _ := spec["selector"].(map[string]any)
	color, _ := sel[omsruntime.ColorLabel].(string)
	return color
}

func hasCondition(obj map[string]any, typ string) bool {
	status, _ := obj["status"].(map[string]any)
	conds, _ := status["conditions"].([]any)
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ && m["status"] == "True" {
			return true
		}
	}
	return false
}

func num(m map[string]any, k string) int64 {
	v, _ := m[k].(float64)
	return int64(v)
}

// assertServerReady checks, on the server, every Deployment, StatefulSet and Job in the stack's state: Deployments
// and StatefulSets have rolled out with every replica ready, Jobs are complete, and every claim in their namespaces
// is bound. (The provider's status outputs may lag behind its await: the server is the truth.) An object gets
// settle to get there: controllers act on their own after the provider's await (an autoscaler scaling a Deployment
// it just rolled out); the time it took is logged.
func assertServerReady(ctx context.Context, t *testing.T, k *enginetest.KubeCluster, env *enginetest.Env, stack string, settle time.Duration) {
	t.Helper()
	refs := stateObjects(t, env, stack, map[string]string{
		"kubernetes:apps/v1:Deployment": "deployment", "kubernetes:apps/v1:StatefulSet": "statefulset", "kubernetes:batch/v1:Job": "job",
	})
	require.NotEmpty(t, refs)
	namespaces := map[string]bool{}
	kinds := map[string]int{}
	for _, ref := range refs {
		kinds[ref.kind]++
		namespaces[ref.namespace] = true
	}
	assert.Positive(t, kinds["deployment"], "the stack has Deployments")
	assert.Positive(t, kinds["statefulset"], "the stack has StatefulSets")
	assert.Positive(t, kinds["job"], "the stack has Jobs")

	start := time.Now()
	pending := refs
	var problems, first []string
	for {
		var next []objectRef
		problems = nil
		for _, ref := range pending {
			obj, err := k.Get(ctx, ref.kind, "-n", ref.namespace, ref.name)
			if err != nil {
				problems = append(problems, err.Error())
				next = append(next, ref)
				continue
			}
			if why := notReady(ref.kind, obj); why != "" {
				problems = append(problems, fmt.Sprintf("%s %s/%s: %s", ref.kind, ref.namespace, ref.name, why))
				next = append(next, ref)
			}
		}
		pending = next
		if first == nil {
			first = append([]string{}, problems...)
		}
		if len(pending) == 0 || time.Since(start) > settle {
			break
		}
		time.Sleep(time.Second)
	}
	if len(problems) == 0 && len(first) > 0 {
		t.Logf("%s: every workload ready on the server %.1f s after the update; at first: %s", stack, time.Since(start).Seconds(), strings.Join(first, "; "))
	}
	assert.Empty(t, problems, "not ready on the server %s after the update", settle)

	for ns := range namespaces {
		pvcs, err := k.Get(ctx, "pvc", "-n", ns)
		require.NoError(t, err)
		items, _ := pvcs["items"].([]any)
		for _, it := range items {
			pvc, _ := it.(map[string]any)
			meta, _ := pvc["metadata"].(map[string]any)
			status, _ := pvc["status"].(map[string]any)
			assert.Equal(t, "Bound", status["phase"], "claim %s/%v is bound", ns, meta["name"])
		}
	}
}

// notReady says why a Deployment or StatefulSet has not rolled out with every replica ready, or a Job is not
// complete ("" when it is).
func notReady(kind string, obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	spec, _ := obj["spec"].(map[string]any)
	status, _ := obj["status"].(map[string]any)
	switch kind {
	case "deployment", "statefulset":
		want := num(spec, "replicas")
		switch {
		case num(status, "observedGeneration") < num(meta, "generation"):
			return fmt.Sprintf("generation %d not observed yet (status %v)", num(meta, "generation"), status)
		case num(status, "readyReplicas") != want || num(status, "updatedReplicas") != want || num(status, "replicas") != want:
			return fmt.Sprintf("%d replicas wanted (status %v)", want, status)
		case kind == "statefulset" && status["updateRevision"] != status["currentRevision"]:
			return fmt.Sprintf("not on its latest revision (status %v)", status)
		}
	case "job":
		if !hasCondition(obj, "Complete") {
			return fmt.Sprintf("not complete (status %v)", status)
		}
	}
	return ""
}

// switchOrder reads an update's engine events and returns, in the order they happened, when the smoke Job of that
// name finished and when the public Service's update began.
func switchOrder(ch <-chan events.EngineEvent, smokeJob, service string) []string {
	var order []string
	name := func(s *apitype.StepEventStateMetadata) string {
		if s == nil {
			return ""
		}
		for _, props := range []map[string]any{s.Outputs, s.Inputs} {
			if meta, ok := props["metadata"].(map[string]any); ok {
				if n, ok := meta["name"].(string); ok {
					return n
				}
			}
		}
		return ""
	}
	for e := range ch {
		switch {
		case e.ResOutputsEvent != nil:
			m := e.ResOutputsEvent.Metadata
			if done := "smoke job " + smokeJob + " done"; m.Type == "kubernetes:batch/v1:Job" && name(m.New) == smokeJob && !slices.Contains(order, done) {
				order = append(order, done)
			}
		case e.ResourcePreEvent != nil:
			m := e.ResourcePreEvent.Metadata
			if updating := "public service " + service + " updating"; m.Type == "kubernetes:core/v1:Service" && name(m.New) == service &&
				m.Op != apitype.OpSame && !slices.Contains(order, updating) {
				order = append(order, updating)
			}
		}
	}
	return order
}

// tail is the end of an engine error, where the diagnostics are (the error holds the whole progress output).
func tail(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if i := strings.LastIndex(s, "Diagnostics:"); i >= 0 {
		return s[i:]
	}
	return s[max(0, len(s)-4000):]
}

// logDiff logs what a preview with --diff says changes, for a preview that should have changed nothing.
func logDiff(ctx context.Context, t *testing.T, s auto.Stack) {
	t.Helper()
	res, err := s.Preview(ctx, optpreview.Diff())
	var lines []string
	for _, l := range strings.Split(res.StdOut, "\n") {
		if trimmed := strings.TrimSpace(l); strings.HasPrefix(trimmed, "~") || strings.HasPrefix(trimmed, "+") ||
			strings.HasPrefix(trimmed, "-") || strings.HasPrefix(trimmed, "+-") {
			lines = append(lines, l)
		}
	}
	t.Logf("preview --diff (err %v):\n%s", err, strings.Join(lines, "\n"))
}
