package kubeverify_test

import (
	"encoding/base64"
	"testing"

	"github.com/omscloud/omscloud/inventory"
	"github.com/omscloud/omscloud/kubeverify"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFromResource(t *testing.T) {
	tests := []struct {
		name               string
		res                inventory.Resource
		ok                 bool
		apiVersion, kind   string
		objName, namespace string
	}{
		{"core group is v1", inventory.Resource{Type: "kubernetes:core/v1:Service", Name: "svc",
			Inputs: map[string]any{"metadata": map[string]any{"name": "web", "namespace": "oms"}}},
			true, "v1", "Service", "web", "oms"},
		{"named group", inventory.Resource{Type: "kubernetes:apps/v1:StatefulSet", Name: "redis",
			Inputs: map[string]any{"metadata": map[string]any{"name": "oms-redis", "namespace": "oms"}}},
			true, "apps/v1", "StatefulSet", "oms-redis", "oms"},
		{"dotted group", inventory.Resource{Type: "kubernetes:networking.k8s.io/v1:NetworkPolicy", Name: "np",
			Inputs: map[string]any{"metadata": map[string]any{"name": "np"}}},
			true, "networking.k8s.io/v1", "NetworkPolicy", "np", ""},
		{"auto-named from the logical name", inventory.Resource{Type: "kubernetes:core/v1:ConfigMap", Name: "Redis_Config",
			Inputs: map[string]any{}}, true, "v1", "ConfigMap", "redis-config", ""},
		{"patch resource", inventory.Resource{Type: "kubernetes:apps/v1:DeploymentPatch", Name: "p",
			Inputs: map[string]any{"metadata": map[string]any{"name": "coredns", "namespace": "kube-system"}}},
			true, "apps/v1", "Deployment", "coredns", "kube-system"},
		{"provider is not an object", inventory.Resource{Type: "pulumi:providers:kubernetes", Name: "k8s"}, false, "", "", "", ""},
		{"component is not an object", inventory.Resource{Type: "omscloud:redis:Redis", Name: "redis"}, false, "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, ok, err := kubeverify.FromResource(tt.res)
			require.NoError(t, err)
			require.Equal(t, tt.ok, ok)
			if !ok {
				return
			}
			assert.Equal(t, tt.apiVersion, o.APIVersion)
			assert.Equal(t, tt.kind, o.Kind)
			assert.Equal(t, tt.objName, o.Name)
			assert.Equal(t, tt.namespace, o.Namespace)
			assert.Equal(t, tt.apiVersion, o.Manifest["apiVersion"])
			assert.Equal(t, tt.kind, o.Manifest["kind"])
			assert.Equal(t, tt.objName, o.Manifest["metadata"].(map[string]any)["name"])
		})
	}
}

func TestFromResourceRefusesUntypedResources(t *testing.T) {
	for _, typ := range []string{"kubernetes:yaml/v2:ConfigGroup", "kubernetes:helm.sh/v3:Release", "kubernetes:core/v1:ConfigMapList"} {
		_, _, err := kubeverify.FromResource(inventory.Resource{Type: typ, Name: "x"})
		assert.ErrorContains(t, err, `resource "x"`, typ)
	}
}

func TestSecretsStayValid(t *testing.T) {
	o, ok, err := kubeverify.FromResource(inventory.Resource{Type: "kubernetes:core/v1:Secret", Name: "auth", Inputs: map[string]any{
		"metadata":   map[string]any{"name": "auth"},
		"data":       map[string]any{"password": inventory.Secret, "user": "b2Jz"},
		"stringData": inventory.Secret,
	}})
	require.NoError(t, err)
	require.True(t, ok)
	data := o.Manifest["data"].(map[string]any)
	_, err = base64.StdEncoding.DecodeString(data["password"].(string))
	assert.NoError(t, err, "a secret in data becomes valid base64")
	assert.Equal(t, "b2Jz", data["user"], "known values are kept")
	assert.IsType(t, map[string]any{}, o.Manifest["stringData"], "a wholly secret stringData stays a map")
}

func TestStatefulSetPodAndToleration(t *testing.T) {
	o, _, err := kubeverify.FromResource(inventory.Resource{Type: "kubernetes:apps/v1:StatefulSet", Name: "redis", Inputs: map[string]any{
		"metadata": map[string]any{"name": "redis", "namespace": "oms"},
		"spec": map[string]any{
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "redis"}},
				"spec": map[string]any{"containers": []any{map[string]any{"name": "redis",
					"volumeMounts": []any{map[string]any{"name": "data", "mountPath": "/data"}}}}},
			},
			"volumeClaimTemplates": []any{map[string]any{"metadata": map[string]any{"name": "data"}}},
		},
	}})
	require.NoError(t, err)

	pod := o.Pod()
	assert.Equal(t, "Pod", pod["kind"])
	assert.Equal(t, map[string]any{"name": "redis-podcheck", "namespace": "oms", "labels": map[string]any{"app": "redis"}}, pod["metadata"])
	vols := pod["spec"].(map[string]any)["volumes"].([]any)
	assert.Equal(t, map[string]any{"name": "data", "persistentVolumeClaim": map[string]any{"claimName": "data-redis-podcheck"}}, vols[0],
		"claim templates become the pod's volumes, as the StatefulSet controller does")

	tol := map[string]any{"key": "k", "effect": "NoSchedule"}
	m := o.WithToleration(tol)
	got := m["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["tolerations"]
	assert.Equal(t, []any{tol}, got)
	_, mutated := o.PodTemplate()["spec"].(map[string]any)["tolerations"]
	assert.False(t, mutated, "the object itself keeps the product's tolerations")
}
