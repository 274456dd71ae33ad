// Package kubeverify turns the Kubernetes objects of an omscloud inventory into the manifests a real API server
// receives, so that its tests (testing layer 4 in DESIGN.md) can dry-run and apply them on a local control plane
// started by testtools/k8s-up.sh.
package kubeverify

import (
	"encoding/base64"
	"fmt"
	"maps"
	"regexp"
	"strings"

	"github.com/omscloud/omscloud/inventory"
)

// Object is one Kubernetes object an inventory declares, as the engine would send it to the API server.
type Object struct {
	Source     inventory.Resource
	APIVersion string
	Kind       string
	Name       string
	// Namespace is empty for cluster-scoped objects and for namespaced ones that take the provider's default.
	Namespace string
	Manifest  map[string]any
}

// ID names the object in test output and failure reports.
func (o Object) ID() string {
	ns := o.Namespace
	if ns != "" {
		ns += "/"
	}
	return fmt.Sprintf("%s %s%s (resource %q)", o.Kind, ns, o.Name, o.Source.Name)
}

// SecretPlaceholder is what a secret input becomes in a Secret's base64 `data`: the value is never known offline.
var SecretPlaceholder = base64.StdEncoding.EncodeToString([]byte("placeholder-for-a-secret"))

// Objects returns every Kubernetes object of the inventory, in inventory order. Providers and omscloud components
// are not objects; Pulumi's Helm, YAML and Kustomize resources are refused because the API server never sees them
// as declared (omscloud uses typed resources only).
func Objects(inv *inventory.Inventory) ([]Object, error) {
	var out []Object
	var errs []string
	for _, r := range inv.Resources {
		o, ok, err := FromResource(r)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if ok {
			out = append(out, o)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("stack %s: %s", inv.Stack, strings.Join(errs, "; "))
	}
	return out, nil
}

// FromResource converts one inventory resource; ok is false when the resource is not a Kubernetes object.
func FromResource(r inventory.Resource) (o Object, ok bool, err error) {
	parts := strings.Split(r.Type, ":")
	if len(parts) != 3 || parts[0] != "kubernetes" {
		return Object{}, false, nil
	}
	gv, kind := parts[1], parts[2]
	group, version, hasVersion := strings.Cut(gv, "/")
	if !hasVersion || strings.HasPrefix(gv, "helm.sh/") || strings.HasPrefix(gv, "yaml") || strings.HasPrefix(gv, "kustomize") {
		return Object{}, false, fmt.Errorf("resource %q of type %s is not a single Kubernetes object: declare typed resources (apps/v1, core/v1, ...) so that it can be verified", r.Name, r.Type)
	}
	if strings.HasSuffix(kind, "List") {
		return Object{}, false, fmt.Errorf("resource %q of type %s: declare the items as separate typed resources", r.Name, r.Type)
	}
	o = Object{Source: r, Kind: kind, APIVersion: version}
	if group != "core" {
		o.APIVersion = group + "/" + version
	}
	// Pulumi's <Kind>Patch resources are server-side applies of a partial object, which is what the tests send.
	o.Kind, _ = strings.CutSuffix(kind, "Patch")

	m, _ := deepCopy(r.Inputs).(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	m["apiVersion"], m["kind"] = o.APIVersion, o.Kind
	meta, _ := m["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		m["metadata"] = meta
	}
	name, _ := meta["name"].(string)
	if name == "" {
		// Pulumi auto-names the object from the logical name plus a random suffix; the suffix does not matter here.
		name = dnsName(r.Name)
		meta["name"] = name
	}
	o.Name = name
	o.Namespace, _ = meta["namespace"].(string)
	if o.Kind == "Secret" && o.APIVersion == "v1" {
		fillSecret(m)
	}
	o.Manifest = m
	return o, true, nil
}

// fillSecret keeps a Secret valid although its values read "[secret]": `data` must be base64.
func fillSecret(m map[string]any) {
	for _, field := range []string{"data", "stringData"} {
		placeholder := "placeholder-for-a-secret"
		if field == "data" {
			placeholder = SecretPlaceholder
		}
		switch v := m[field].(type) {
		case string: // the whole map was a secret output: its keys are unknown offline
			if v == inventory.Secret {
				m[field] = map[string]any{"secret": placeholder}
			}
		case map[string]any:
			for k, val := range v {
				if val == inventory.Secret || (field == "data" && val == inventory.Unknown) {
					v[k] = placeholder
				}
			}
		}
	}
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

func dnsName(s string) string {
	n := strings.Trim(notDNS.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(n) > 63 {
		n = strings.TrimRight(n[:63], "-")
	}
	return n
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
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

// PodTemplate returns the pod template of a workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
// CronJob), or nil.
func (o Object) PodTemplate() map[string]any { return podTemplate(o.Kind, o.Manifest) }

func podTemplate(kind string, m map[string]any) map[string]any {
	spec, _ := m["spec"].(map[string]any)
	if spec == nil {
		return nil
	}
	switch kind {
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		t, _ := spec["template"].(map[string]any)
		return t
	case "CronJob":
		jt, _ := spec["jobTemplate"].(map[string]any)
		js, _ := jt["spec"].(map[string]any)
		t, _ := js["template"].(map[string]any)
		return t
	}
	return nil
}

// Pod renders the pod a workload's controller would create, so that Pod Security is enforced on it (admission only
// warns about workloads). A StatefulSet's claim templates become the persistentVolumeClaim volumes its pods get.
func (o Object) Pod() map[string]any {
	tmpl := o.PodTemplate()
	if tmpl == nil {
		return nil
	}
	tmpl, _ = deepCopy(tmpl).(map[string]any)
	spec, _ := tmpl["spec"].(map[string]any)
	meta, _ := tmpl["metadata"].(map[string]any)
	// Not a name the controller uses: the check must create, not update, while the real pods run.
	podMeta := map[string]any{"name": dnsName(o.Name + "-podcheck")}
	if meta != nil {
		for _, k := range []string{"labels", "annotations"} {
			if v, ok := meta[k]; ok {
				podMeta[k] = v
			}
		}
	}
	if o.Namespace != "" {
		podMeta["namespace"] = o.Namespace
	}
	if o.Kind == "StatefulSet" {
		claims, _ := o.Manifest["spec"].(map[string]any)["volumeClaimTemplates"].([]any)
		vols, _ := spec["volumes"].([]any)
		for _, c := range claims {
			cm, _ := c.(map[string]any)
			cmeta, _ := cm["metadata"].(map[string]any)
			n, _ := cmeta["name"].(string)
			vols = append(vols, map[string]any{"name": n, "persistentVolumeClaim": map[string]any{"claimName": n + "-" + podMeta["name"].(string)}})
		}
		if len(vols) > 0 {
			spec["volumes"] = vols
		}
	}
	return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": podMeta, "spec": spec}
}

// WithToleration returns a copy of the manifest whose pod template also tolerates t (the test's kwok taint; never
// the product's).
func (o Object) WithToleration(t map[string]any) map[string]any {
	m, _ := deepCopy(o.Manifest).(map[string]any)
	tmpl := podTemplate(o.Kind, m)
	if tmpl == nil {
		return m
	}
	spec, _ := tmpl["spec"].(map[string]any)
	if spec == nil {
		spec = map[string]any{}
		tmpl["spec"] = spec
	}
	tols, _ := spec["tolerations"].([]any)
	spec["tolerations"] = append(tols, maps.Clone(t))
	return m
}
