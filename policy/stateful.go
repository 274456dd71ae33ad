package policy

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/omscloud/omscloud/inventory"
)

const (
	zoneTopologyKey = "topology.kubernetes.io/zone"
	// minStatefulReplicas keeps a quorum (Redis Sentinel, RabbitMQ quorum queues) through the loss of one zone.
	minStatefulReplicas = 3
)

func statefulHA() Policy {
	return Policy{
		Name: "stateful-ha",
		Description: "every production StatefulSet runs at least 3 replicas, spread over zones with a " +
			"topology.kubernetes.io/zone constraint of max skew 1, and has a PodDisruptionBudget selecting its " +
			"pods that keeps a majority up",
		Severity: Error,
		Check: func(ctx Context, inv *inventory.Inventory) []Finding {
			if !ctx.production() {
				return nil
			}
			var pdbs []inventory.Resource
			for _, r := range inv.Resources {
				if isKind(r, "PodDisruptionBudget") {
					pdbs = append(pdbs, r)
				}
			}
			var out []Finding
			for _, r := range inv.Resources {
				if !isKind(r, "StatefulSet") {
					continue
				}
				podLabels := stringMap(mustGet(r, "spec.template.metadata.labels"))
				replicas, ok := replicaCount(r)
				switch {
				case !ok:
					out = append(out, warning(r, "spec.replicas is not known at plan time: cannot check it is at least %d", minStatefulReplicas))
				case replicas < minStatefulReplicas:
					out = append(out, finding(r, "spec.replicas is %d: production needs at least %d so that losing one zone keeps a quorum", replicas, minStatefulReplicas))
				}
				out = append(out, checkZoneSpread(r, podLabels)...)
				out = append(out, checkPDB(r, podLabels, replicas, ok, pdbs)...)
			}
			return out
		},
	}
}

func mustGet(r inventory.Resource, path string) any {
	v, _ := r.Get(path)
	return v
}

// replicaCount reads spec.replicas; Kubernetes runs one replica when it is unset.
func replicaCount(r inventory.Resource) (int, bool) {
	v, ok := r.Get("spec.replicas")
	if !ok || v == nil {
		return 1, true
	}
	n, ok := number(v)
	return int(n), ok
}

func checkZoneSpread(r inventory.Resource, podLabels map[string]string) []Finding {
	for _, c := range asList(mustGet(r, "spec.template.spec.topologySpreadConstraints")) {
		m := asMap(c)
		if m["topologyKey"] != zoneTopologyKey {
			continue
		}
		var out []Finding
		if skew, _ := number(m["maxSkew"]); skew != 1 {
			out = append(out, finding(r, "the %s spread constraint has maxSkew %v: use 1 so that replicas are spread evenly over zones", zoneTopologyKey, m["maxSkew"]))
		}
		if !selects(asMap(m["labelSelector"]), podLabels) {
			out = append(out, finding(r, "the %s spread constraint's labelSelector does not select the StatefulSet's own pods (template labels %v): it would spread nothing", zoneTopologyKey, podLabels))
		}
		if m["whenUnsatisfiable"] == "ScheduleAnyway" {
			out = append(out, warning(r, "the %s spread constraint is ScheduleAnyway: replicas may still land in one zone; DoNotSchedule guarantees the spread", zoneTopologyKey))
		}
		return out
	}
	return []Finding{finding(r, "spec.template.spec.topologySpreadConstraints has no %s constraint: replicas could all land in one zone", zoneTopologyKey)}
}

func checkPDB(r inventory.Resource, podLabels map[string]string, replicas int, replicasKnown bool, pdbs []inventory.Resource) []Finding {
	ns := r.String("metadata.namespace")
	for _, p := range pdbs {
		pns := p.String("metadata.namespace")
		if ns != pns && known(ns) && known(pns) {
			continue
		}
		selector := asMap(mustGet(p, "spec.selector"))
		if len(selector) == 0 || !selects(selector, podLabels) {
			continue
		}
		if !replicasKnown {
			return nil
		}
		allowed, ok := allowedDisruptions(p, replicas)
		switch {
		case !ok:
			return []Finding{finding(r, "PodDisruptionBudget %s sets neither a readable minAvailable nor maxUnavailable", p.Name)}
		case allowed > (replicas-1)/2:
			return []Finding{finding(r, "PodDisruptionBudget %s lets %d of %d replicas be evicted at once: a voluntary disruption could break the quorum (allow at most %d)", p.Name, allowed, replicas, (replicas-1)/2)}
		case allowed < 1:
			return []Finding{warning(r, "PodDisruptionBudget %s allows no eviction of %d replicas: node upgrades and drains will stall", p.Name, replicas)}
		}
		return nil
	}
	return []Finding{finding(r, "no PodDisruptionBudget in its namespace selects its pods (template labels %v): a node drain could evict every replica at once", podLabels)}
}

// allowedDisruptions is how many of replicas the budget lets be evicted at once; percentages round up, as the
// disruption controller does.
func allowedDisruptions(pdb inventory.Resource, replicas int) (int, bool) {
	if v, ok := pdb.Get("spec.maxUnavailable"); ok && v != nil {
		n, ok := scaled(v, replicas)
		return n, ok
	}
	if v, ok := pdb.Get("spec.minAvailable"); ok && v != nil {
		n, ok := scaled(v, replicas)
		return replicas - n, ok
	}
	return 0, false
}

func scaled(v any, total int) (int, bool) {
	if n, ok := number(v); ok {
		return int(n), true
	}
	s, ok := v.(string)
	if !ok {
		return 0, false
	}
	if pct, isPct := strings.CutSuffix(s, "%"); isPct {
		p, err := strconv.Atoi(pct)
		if err != nil {
			return 0, false
		}
		return int(math.Ceil(float64(p) * float64(total) / 100)), true
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// selects evaluates a Kubernetes label selector (matchLabels and matchExpressions) against a pod's labels. An empty
// selector selects nothing here: every selector omscloud relies on must name its pods.
func selects(selector map[string]any, labels map[string]string) bool {
	matchLabels := stringMap(selector["matchLabels"])
	exprs := asList(selector["matchExpressions"])
	if len(matchLabels) == 0 && len(exprs) == 0 {
		return false
	}
	for k, v := range matchLabels {
		if labels[k] != v {
			return false
		}
	}
	for _, e := range exprs {
		m := asMap(e)
		key, _ := m["key"].(string)
		var values []string
		for _, v := range asList(m["values"]) {
			if s, ok := v.(string); ok {
				values = append(values, s)
			}
		}
		val, has := labels[key]
		switch m["operator"] {
		case "In":
			if !has || !slices.Contains(values, val) {
				return false
			}
		case "NotIn":
			if has && slices.Contains(values, val) {
				return false
			}
		case "Exists":
			if !has {
				return false
			}
		case "DoesNotExist":
			if has {
				return false
			}
		default:
			return false
		}
	}
	return true
}
