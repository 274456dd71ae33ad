// Package kubetest holds the assertions every stateful workload's tests share: restricted security contexts, zone
// spread, PDBs that match the pods, and no credential in plain sight. They read the recorded inventory, i.e. the
// inputs exactly as the engine would send them to the Kubernetes API.
package kubetest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sync"
	"testing"

	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Kubernetes type tokens.
const (
	Deployment     = "kubernetes:apps/v1:Deployment"
	StatefulSet    = "kubernetes:apps/v1:StatefulSet"
	Service        = "kubernetes:core/v1:Service"
	Secret         = "kubernetes:core/v1:Secret"
	ConfigMap      = "kubernetes:core/v1:ConfigMap"
	PDB            = "kubernetes:policy/v1:PodDisruptionBudget"
	NetworkPolicy  = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
	ServiceAccount = "kubernetes:core/v1:ServiceAccount"
	Role           = "kubernetes:rbac.authorization.k8s.io/v1:Role"
	RoleBinding    = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
)

// RuntimeWiring is the pod wiring the runtime of name prefix name hands on (omsruntime.Runtime.Wiring), as known
// values: what the components that run more pods of the oms image take in their tests.
func RuntimeWiring(name string) omsruntime.Wiring {
	return omsruntime.Wiring{
		Namespace:          "oms",
		ServiceAccount:     pulumi.String(name + "-runtime").ToStringOutput(),
		ConfigMap:          pulumi.String(name + "-runtime").ToStringOutput(),
		Secret:             pulumi.String(name + "-runtime").ToStringOutput(),
		DatabaseCA:         pulumi.String(name + "-db-ca").ToStringOutput(),
		NodeSelector:       map[string]string{"omscloud.io/pool": "web"},
		GracePeriodSeconds: 40,
	}
}

// One returns the only resource of a type.
func One(t *testing.T, inv *inventory.Inventory, typ string) inventory.Resource {
	t.Helper()
	rs := inv.OfType(typ)
	require.Len(t, rs, 1, "exactly one %s", typ)
	return rs[0]
}

// Map returns the object at path.
func Map(t *testing.T, r inventory.Resource, path string) map[string]any {
	t.Helper()
	v, ok := r.Get(path)
	require.True(t, ok, "%s %s has no %s", r.Type, r.Name, path)
	m, ok := v.(map[string]any)
	require.True(t, ok, "%s of %s is not an object", path, r.Name)
	return m
}

// List returns the objects of the array at path.
func List(t *testing.T, r inventory.Resource, path string) []map[string]any {
	t.Helper()
	v, _ := r.Get(path)
	arr, _ := v.([]any)
	out := make([]map[string]any, 0, len(arr))
	for _, e := range arr {
		m, ok := e.(map[string]any)
		require.True(t, ok, "%s of %s holds a non-object", path, r.Name)
		out = append(out, m)
	}
	return out
}

// Containers returns the init containers and containers of a workload's pod template.
func Containers(t *testing.T, sts inventory.Resource) []map[string]any {
	t.Helper()
	cs := append(List(t, sts, "spec.template.spec.initContainers"), List(t, sts, "spec.template.spec.containers")...)
	require.NotEmpty(t, cs)
	return cs
}

// Container returns the container (or init container) with this name.
func Container(t *testing.T, sts inventory.Resource, name string) map[string]any {
	t.Helper()
	for _, c := range Containers(t, sts) {
		if c["name"] == name {
			return c
		}
	}
	require.Failf(t, "no container", "%s has no container %q", sts.Name, name)
	return nil
}

func get(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

// AssertRestricted checks the `restricted` Pod Security level on the pod and on every container, plus requests and
// limits on every container.
func AssertRestricted(t *testing.T, sts inventory.Resource) {
	t.Helper()
	pod := Map(t, sts, "spec.template.spec.securityContext")
	assert.Equal(t, true, pod["runAsNonRoot"], "pod runAsNonRoot")
	assert.Equal(t, "RuntimeDefault", get(pod, "seccompProfile", "type"), "pod seccomp")
	assert.NotZero(t, pod["runAsUser"], "pod runs as a non-root uid")
	assert.NotNil(t, pod["fsGroup"], "volumes owned by the pod's group")
	for _, c := range Containers(t, sts) {
		name := c["name"]
		sc, _ := c["securityContext"].(map[string]any)
		require.NotNil(t, sc, "container %s has a security context", name)
		assert.Equal(t, true, sc["runAsNonRoot"], "container %s runAsNonRoot", name)
		assert.Equal(t, false, sc["allowPrivilegeEscalation"], "container %s allowPrivilegeEscalation", name)
		assert.Equal(t, []any{"ALL"}, get(sc, "capabilities", "drop"), "container %s drops all capabilities", name)
		assert.Nil(t, get(sc, "capabilities", "add"), "container %s adds no capability", name)
		assert.Equal(t, "RuntimeDefault", get(sc, "seccompProfile", "type"), "container %s seccomp", name)
		assert.Equal(t, true, sc["readOnlyRootFilesystem"], "container %s read-only root filesystem", name)
		for _, kind := range []string{"requests", "limits"} {
			for _, res := range []string{"cpu", "memory"} {
				assert.NotEmpty(t, get(c, "resources", kind, res), "container %s %s.%s", name, kind, res)
			}
		}
	}
}

// AssertProbes checks that every long-running container has readiness and liveness probes.
func AssertProbes(t *testing.T, sts inventory.Resource) {
	t.Helper()
	for _, c := range List(t, sts, "spec.template.spec.containers") {
		assert.NotNil(t, c["readinessProbe"], "container %s readiness probe", c["name"])
		assert.NotNil(t, c["livenessProbe"], "container %s liveness probe", c["name"])
	}
}

// AssertSpread checks the zone topology spread (max skew 1, hard) and the required hostname anti-affinity, both on
// the workload's own pods.
func AssertSpread(t *testing.T, sts inventory.Resource) {
	t.Helper()
	selector := Map(t, sts, "spec.selector.matchLabels")
	spread := List(t, sts, "spec.template.spec.topologySpreadConstraints")
	require.Len(t, spread, 1)
	assert.Equal(t, "topology.kubernetes.io/zone", spread[0]["topologyKey"])
	assert.Equal(t, float64(1), spread[0]["maxSkew"])
	assert.Equal(t, "DoNotSchedule", spread[0]["whenUnsatisfiable"])
	assert.Equal(t, selector, get(spread[0], "labelSelector", "matchLabels"), "spread counts this workload's pods")

	terms := List(t, sts, "spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution")
	require.Len(t, terms, 1)
	assert.Equal(t, "kubernetes.io/hostname", terms[0]["topologyKey"])
	assert.Equal(t, selector, get(terms[0], "labelSelector", "matchLabels"))
}

// AssertPlacement checks the node selector and tolerations of the stateful pool.
func AssertPlacement(t *testing.T, sts inventory.Resource) {
	t.Helper()
	assert.Equal(t, map[string]any{"omscloud.io/pool": "stateful"}, Map(t, sts, "spec.template.spec.nodeSelector"))
	assert.Equal(t, []map[string]any{{"key": "omscloud.io/stateful", "operator": "Equal", "value": "true", "effect": "NoSchedule"}},
		List(t, sts, "spec.template.spec.tolerations"))
}

// AssertSelectorMatchesTemplate checks that the workload's selector selects its own pod template and that the
// template carries the recommended labels.
func AssertSelectorMatchesTemplate(t *testing.T, sts inventory.Resource) {
	t.Helper()
	selector := Map(t, sts, "spec.selector.matchLabels")
	template := Map(t, sts, "spec.template.metadata.labels")
	for k, v := range selector {
		assert.Equal(t, v, template[k], "template label %s", k)
	}
	for _, k := range []string{"name", "instance", "component", "part-of", "managed-by"} {
		assert.NotEmpty(t, template["app.kubernetes.io/"+k], "label app.kubernetes.io/%s", k)
	}
}

// AssertPDB checks that the only PDB selects exactly the StatefulSet's pods and lets one go at a time.
func AssertPDB(t *testing.T, inv *inventory.Inventory, sts inventory.Resource) {
	t.Helper()
	pdb := One(t, inv, PDB)
	assert.Equal(t, Map(t, sts, "spec.selector.matchLabels"), Map(t, pdb, "spec.selector.matchLabels"))
	assert.Equal(t, float64(1), pdb.Inputs["spec"].(map[string]any)["maxUnavailable"])
	assert.Nil(t, get(pdb.Inputs, "spec", "minAvailable"))
	assert.Equal(t, sts.String("metadata.namespace"), pdb.String("metadata.namespace"))
}

// AssertVolumeClaims checks the single data volumeClaimTemplate.
func AssertVolumeClaims(t *testing.T, sts inventory.Resource, class string, sizeGB int) {
	t.Helper()
	claims := List(t, sts, "spec.volumeClaimTemplates")
	require.Len(t, claims, 1)
	assert.Equal(t, class, get(claims[0], "spec", "storageClassName"))
	assert.Equal(t, fmt.Sprintf("%dGi", sizeGB), get(claims[0], "spec", "resources", "requests", "storage"))
	assert.Equal(t, []any{"ReadWriteOnce"}, get(claims[0], "spec", "accessModes"))
}

// Ingress is one NetworkPolicy ingress rule, flattened: the pod selectors it admits and its TCP ports.
type Ingress struct {
	From  []map[string]any
	Ports []float64
}

// Ingresses flattens a NetworkPolicy's ingress rules; a peer that is not a plain pod selector fails the test.
func Ingresses(t *testing.T, np inventory.Resource) []Ingress {
	t.Helper()
	assert.Equal(t, []any{"Ingress"}, get(np.Inputs, "spec", "policyTypes"))
	var out []Ingress
	for _, rule := range List(t, np, "spec.ingress") {
		var in Ingress
		from, _ := rule["from"].([]any)
		require.NotEmpty(t, from, "an ingress rule without peers admits every source")
		for _, f := range from {
			peer := f.(map[string]any)
			require.Len(t, peer, 1, "peer %v is only a podSelector (same namespace)", peer)
			sel, ok := get(peer, "podSelector", "matchLabels").(map[string]any)
			require.True(t, ok && len(sel) > 0, "peer %v selects labelled pods", peer)
			in.From = append(in.From, sel)
		}
		ports, _ := rule["ports"].([]any)
		require.NotEmpty(t, ports, "an ingress rule without ports admits every port")
		for _, p := range ports {
			in.Ports = append(in.Ports, p.(map[string]any)["port"].(float64))
		}
		out = append(out, in)
	}
	return out
}

var credentialName = regexp.MustCompile(`(?i)pass|cookie|secret|token|auth|credential`)

// AssertNoPlaintextSecrets checks that no generated secret appears anywhere in plain text, that no ConfigMap, container
// command, argument or env value carries a secret value, and that every credential-like variable comes from a
// Secret key.
func AssertNoPlaintextSecrets(t *testing.T, inv *inventory.Inventory) {
	t.Helper()
	all, err := json.Marshal(inv.Resources)
	require.NoError(t, err)
	// The mocks generate "mock-generated-<name>" for every random password.
	assert.NotContains(t, string(all), "mock-generated-", "a generated secret is visible in plain text")

	for _, cm := range inv.OfType(ConfigMap) {
		for k, v := range Map(t, cm, "data") {
			assert.NotEqual(t, inventory.Secret, v, "ConfigMap %s key %s holds a secret", cm.Name, k)
		}
	}
	for _, sts := range inv.OfType(StatefulSet) {
		for _, c := range Containers(t, sts) {
			for _, field := range []string{"command", "args"} {
				b, _ := json.Marshal(c[field])
				assert.NotContains(t, string(b), inventory.Secret, "container %s %s holds a secret", c["name"], field)
			}
			env, _ := c["env"].([]any)
			for _, e := range env {
				ev := e.(map[string]any)
				assert.NotEqual(t, inventory.Secret, ev["value"], "env %s of %s holds a secret value", ev["name"], c["name"])
				if credentialName.MatchString(ev["name"].(string)) {
					assert.Nil(t, ev["value"], "env %s of %s is a credential given as a plain value", ev["name"], c["name"])
					assert.NotNil(t, get(ev, "valueFrom", "secretKeyRef"), "env %s of %s comes from a Secret key", ev["name"], c["name"])
				}
			}
		}
	}
	for _, s := range inv.OfType(Secret) {
		data, _ := s.Get("stringData")
		if m, ok := data.(map[string]any); ok {
			for k, v := range m {
				assert.Equal(t, inventory.Secret, v, "Secret %s key %s is a secret output", s.Name, k)
			}
		} else {
			assert.Equal(t, inventory.Secret, data, "Secret %s stringData is a secret output", s.Name)
		}
	}
}

// RawMocks are the inventory mocks that also keep each resource's inputs as the engine sent them, secrets still
// marked, so that a test can read a secret value and check that it stayed secret.
type RawMocks struct {
	*inventory.Mocks
	mu     sync.Mutex
	inputs map[string]resource.PropertyMap // "type::name" → inputs
}

// NewRawMocks returns RawMocks recording for project omscloud, stack test.
func NewRawMocks() *RawMocks {
	return &RawMocks{Mocks: &inventory.Mocks{Project: "omscloud", Stack: "test"}, inputs: map[string]resource.PropertyMap{}}
}

// NewResource records the inputs, then answers as the inventory mocks do.
func (m *RawMocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	m.mu.Lock()
	m.inputs[args.TypeToken+"::"+args.Name] = args.Inputs.Copy()
	m.mu.Unlock()
	return m.Mocks.NewResource(args)
}

// SecretChecksum is the secret-checksum annotation of a workload's pod template (kube.SecretChecksumAnnotation): its
// plain value, and whether the engine received it as a secret.
func (m *RawMocks) SecretChecksum(t *testing.T, typ, name string) (value string, secret bool) {
	t.Helper()
	m.mu.Lock()
	in, ok := m.inputs[typ+"::"+name]
	m.mu.Unlock()
	require.True(t, ok, "no %s %s", typ, name)
	v := resource.NewObjectProperty(in)
	for _, k := range []resource.PropertyKey{"spec", "template", "metadata", "annotations", "omscloud.io/secret-checksum"} {
		v = unwrap(v, &secret)
		require.True(t, v.IsObject(), "%s %s: no pod template annotation %s", typ, name, k)
		v = v.ObjectValue()[k]
	}
	v = unwrap(v, &secret)
	require.True(t, v.IsString(), "%s %s: the secret checksum is %v", typ, name, v)
	return v.StringValue(), secret
}

// unwrap returns the value inside secrets and outputs, noting whether any was secret.
func unwrap(v resource.PropertyValue, secret *bool) resource.PropertyValue {
	for {
		switch {
		case v.IsSecret():
			*secret = true
			v = v.SecretValue().Element
		case v.IsOutput():
			*secret = *secret || v.OutputValue().Secret
			v = v.OutputValue().Element
		default:
			return v
		}
	}
}
