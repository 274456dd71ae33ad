package policy

import (
	"fmt"

	"github.com/omscloud/omscloud/inventory"
)

// metricsAPIs maps an HPA metric type to the aggregated API that must serve it. Resource metrics (cpu, memory) come
// from metrics.k8s.io, which GKE's metrics-server serves in every cluster
// (https://cloud.google.com/kubernetes-engine/docs/concepts/horizontalpodautoscaler); Pods and Object metrics from
// custom.metrics.k8s.io and External ones from external.metrics.k8s.io, which only an adapter serves, registered
// by an APIService (https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#support-for-metrics-apis).
var metricsAPIs = map[string]string{
	"Resource":          "metrics.k8s.io",
	"ContainerResource": "metrics.k8s.io",
	"Pods":              "custom.metrics.k8s.io",
	"Object":            "custom.metrics.k8s.io",
	"External":          "external.metrics.k8s.io",
}

// servedByCluster are the metrics APIs GKE serves without anything the stack declares.
var servedByCluster = map[string]bool{"metrics.k8s.io": true}

func hpaMetricsServed() Policy {
	return Policy{
		Name: "hpa-metrics-served",
		Description: "every HorizontalPodAutoscaler metric comes from an API the cluster serves: Resource metrics " +
			"(metrics-server, on in GKE), or Pods/Object/External metrics only with an APIService of the stack " +
			"registering custom.metrics.k8s.io or external.metrics.k8s.io; an HPA with an unserved metric never scales down",
		Severity: Error,
		Check: func(_ Context, inv *inventory.Inventory) []Finding {
			served := map[string]bool{}
			for api := range servedByCluster {
				served[api] = true
			}
			for _, r := range inv.Resources {
				if isKind(r, "APIService") {
					served[r.String("spec.group")] = true
				}
			}
			var out []Finding
			for _, r := range inv.Resources {
				if !isKind(r, "HorizontalPodAutoscaler") {
					continue
				}
				for i, m := range asList(mustGet(r, "spec.metrics")) {
					typ, _ := asMap(m)["type"].(string)
					api, ok := metricsAPIs[typ]
					switch {
					case !ok:
						out = append(out, finding(r, "spec.metrics[%d] has type %q: use Resource, ContainerResource, Pods, Object or External", i, typ))
					case !served[api]:
						out = append(out, finding(r, "spec.metrics[%d], type %s (%s), comes from an API nothing in the stack serves: "+
							"the HPA scales up on its other metrics but never down (an unavailable metric blocks scale-down, "+
							"kubernetes/kubernetes#99514). Scale on CPU, or declare the adapter's APIService", i, typ, describeMetric(asMap(m), api)))
					}
				}
			}
			return out
		},
	}
}

// describeMetric names a metric for a finding: its API and, for custom metrics, its name.
func describeMetric(m map[string]any, api string) string {
	for _, k := range []string{"pods", "object", "external"} {
		if name, ok := asMap(asMap(m[k])["metric"])["name"].(string); ok {
			return fmt.Sprintf("%s from %s", name, api)
		}
	}
	return api
}
