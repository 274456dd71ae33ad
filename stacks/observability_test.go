package stacks

import (
	"maps"
	"testing"

	"github.com/omscloud/omscloud/components/observability"
	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/inventory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTheCollectorReachesEveryScrapedPort: for every PodMonitoring of every shipped stack, the pods it selects exist,
// expose the named port, and the NetworkPolicies that select them admit Managed Prometheus' collector to that port
// (a default-deny policy would otherwise leave the alerts blind: an absent series alerts nothing, or everything).
func TestTheCollectorReachesEveryScrapedPort(t *testing.T) {
	collector := omsruntime.ManagedPrometheusCollector
	for _, stack := range shippedStacks(t) {
		t.Run(stack, func(t *testing.T) {
			_, inv := plan(t, stack)
			pms := inv.OfType(observability.PodMonitoringType)
			require.Len(t, pms, 4, "web, worker, Redis and RabbitMQ are scraped")
			for _, pm := range pms {
				selector := stringsAt(pm.Inputs, "spec", "selector", "matchLabels")
				portName := pm.String("spec.endpoints[0].port")
				labels, port := scrapedPod(t, inv, selector, portName)
				require.NotZero(t, port, "%s: a pod selected by %v exposes port %q", pm.Name, selector, portName)
				// Policies add up: the pods are reachable where any policy selecting them admits the peer.
				selecting, admitting := 0, 0
				for _, np := range inv.OfType("kubernetes:networking.k8s.io/v1:NetworkPolicy") {
					if !subset(stringsAt(np.Inputs, "spec", "podSelector", "matchLabels"), labels) {
						continue
					}
					selecting++
					if admitsCollector(np, collector, port) {
						admitting++
					}
				}
				assert.Positive(t, selecting, "%s: the scraped pods are behind a NetworkPolicy", pm.Name)
				assert.Positive(t, admitting, "%s: a NetworkPolicy admits the collector to port %d", pm.Name, port)
			}
		})
	}
}

// scrapedPod finds the pod template a selector matches and the number of its named container port.
func scrapedPod(t *testing.T, inv *inventory.Inventory, selector map[string]string, portName string) (map[string]string, int) {
	t.Helper()
	for _, r := range inv.Resources {
		if r.Type != "kubernetes:apps/v1:Deployment" && r.Type != "kubernetes:apps/v1:StatefulSet" {
			continue
		}
		labels := stringsAt(r.Inputs, "spec", "template", "metadata", "labels")
		if !subset(selector, labels) {
			continue
		}
		containers, _ := r.Get("spec.template.spec.containers")
		for _, c := range containers.([]any) {
			ports, _ := c.(map[string]any)["ports"].([]any)
			for _, p := range ports {
				pm := p.(map[string]any)
				if pm["name"] == portName {
					n, _ := pm["containerPort"].(float64)
					return labels, int(n)
				}
			}
		}
	}
	return nil, 0
}

func admitsCollector(np inventory.Resource, c omsruntime.ScraperArgs, port int) bool {
	ingress, _ := np.Get("spec.ingress")
	rules, _ := ingress.([]any)
	for _, rule := range rules {
		rm := rule.(map[string]any)
		from, _ := rm["from"].([]any)
		fromCollector := false
		for _, peer := range from {
			p := peer.(map[string]any)
			ns := stringsAt(p, "namespaceSelector", "matchLabels")
			pods := stringsAt(p, "podSelector", "matchLabels")
			fromCollector = fromCollector || ns["kubernetes.io/metadata.name"] == c.Namespace && maps.Equal(pods, c.Selector)
		}
		ports, _ := rm["ports"].([]any)
		for _, pp := range ports {
			if n, _ := pp.(map[string]any)["port"].(float64); fromCollector && int(n) == port {
				return true
			}
		}
	}
	return false
}

// stringsAt reads a map of strings at a path of nested objects.
func stringsAt(m map[string]any, path ...string) map[string]string {
	var cur any = m
	for _, p := range path {
		mm, _ := cur.(map[string]any)
		cur = mm[p]
	}
	out := map[string]string{}
	mm, _ := cur.(map[string]any)
	for k, v := range mm {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}
