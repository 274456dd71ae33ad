package enginetest_test

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/omscloud/omscloud/stacks"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKwokStages exercises each pod stage of testtools/kwok-stages.yaml, which replaces kwok's default pod stages,
// and the node heartbeats of testtools/k8s-up.sh: a Deployment's pod turns Ready (pod-ready); a Job's pod succeeds
// (pod-complete), also when it carries the failing release's version but is no smoke test; a smoke-test pod of the
// release tagged smoke-fails fails with exit code 1 and fails its Job (pod-smoke-fail); a smoke-test pod of any
// other release succeeds; a deleted pod goes away (pod-delete); kwok renews a 40-second lease for its node.
func TestKwokStages(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	projectDir, err := stacks.FindProjectDir(filepath.Dir(file))
	require.NoError(t, err)
	k := requireKube(t, projectDir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	const ns, node = "kwok-stages", "kwok-stages-node"
	// Only this test's pods run on its node: they name it and tolerate its taint.
	podSpec := func(restart string) map[string]any {
		return map[string]any{
			"restartPolicy": restart, "nodeName": node,
			"tolerations": []any{map[string]any{"key": "kwok-stages", "operator": "Exists", "effect": "NoSchedule"}},
			"containers":  []any{map[string]any{"name": "c", "image": "example.invalid/c:1"}},
		}
	}
	job := func(name, component, version string) map[string]any {
		return map[string]any{
			"apiVersion": "batch/v1", "kind": "Job",
			"metadata": map[string]any{"name": name, "namespace": ns},
			"spec": map[string]any{
				"backoffLimit": 0,
				"template": map[string]any{
					"metadata": map[string]any{"labels": map[string]any{
						"app.kubernetes.io/component": component, "app.kubernetes.io/version": version,
					}},
					"spec": podSpec("Never"),
				},
			},
		}
	}
	require.NoError(t, k.Apply(ctx,
		map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}},
		map[string]any{
			"apiVersion": "v1", "kind": "Node",
			"metadata": map[string]any{
				"name": node, "annotations": map[string]any{"kwok.x-k8s.io/node": "fake"},
				"labels": map[string]any{"kubernetes.io/hostname": node, "type": "kwok"},
			},
			"spec": map[string]any{"taints": []any{map[string]any{"key": "kwok-stages", "value": "only", "effect": "NoSchedule"}}},
		},
	))
	_, err = k.Kubectl(ctx, nil, "wait", "--for=condition=Ready", "--timeout=60s", "node/"+node)
	require.NoError(t, err, "kwok makes its node Ready")

	require.NoError(t, k.Apply(ctx,
		map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": "web", "namespace": ns},
			"spec": map[string]any{
				"replicas": 1,
				"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
				"template": map[string]any{
					"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
					"spec":     podSpec("Always"),
				},
			},
		},
		job("migrate-of-failing-release", "migrate", "smoke-fails"),
		job("smoke-fails", "smoke", "smoke-fails"),
		job("smoke-passes", "smoke", "green"),
	))

	wait := func(what string, args ...string) {
		t.Helper()
		_, err := k.Kubectl(ctx, nil, append([]string{"wait", "-n", ns, "--timeout=90s"}, args...)...)
		assert.NoError(t, err, what)
	}
	wait("pod-ready: the Deployment becomes available", "--for=condition=Available", "deployment/web")
	wait("pod-complete: a Job's pod succeeds", "--for=condition=Complete", "job/migrate-of-failing-release")
	wait("pod-complete: another release's smoke test succeeds", "--for=condition=Complete", "job/smoke-passes")
	wait("pod-smoke-fail: the failing release's smoke test fails its Job", "--for=condition=Failed", "job/smoke-fails")
	pods, err := k.Get(ctx, "pods", "-n", ns, "-l", "job-name=smoke-fails")
	require.NoError(t, err)
	items, _ := pods["items"].([]any)
	require.Len(t, items, 1)
	status := items[0].(map[string]any)["status"].(map[string]any)
	assert.Equal(t, "Failed", status["phase"])
	cs := status["containerStatuses"].([]any)[0].(map[string]any)
	assert.EqualValues(t, 1, cs["state"].(map[string]any)["terminated"].(map[string]any)["exitCode"], "the smoke container exits 1")

	// pod-delete: the pod of the Deployment goes away when deleted (kwok clears finalizers and deletes it).
	out, err := k.Kubectl(ctx, nil, "get", "pods", "-n", ns, "-l", "app=web", "-o", "name")
	require.NoError(t, err)
	_, err = k.Kubectl(ctx, nil, "delete", "-n", ns, "--wait=true", "--timeout=60s", strings.TrimSpace(out))
	assert.NoError(t, err, "pod-delete: a deleted pod disappears")
	wait("the Deployment replaces the deleted pod", "--for=condition=Available", "deployment/web")

	lease, err := k.Get(ctx, "lease", "-n", "kube-node-lease", node)
	require.NoError(t, err, "kwok heartbeats its node through a lease")
	assert.EqualValues(t, 40, lease["spec"].(map[string]any)["leaseDurationSeconds"])

	_, err = k.Kubectl(ctx, nil, "delete", "namespace", ns, "--wait=false")
	assert.NoError(t, err)
	_, err = k.Kubectl(ctx, nil, "delete", "node", node, "--wait=false")
	assert.NoError(t, err)
}
