package omsruntime

import (
	"fmt"

	"github.com/omscloud/omscloud/components/internal/kube"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// networkPolicies deny all ingress to the runtime's pods except the edge to the web pods' API port and the metrics
// collector to the metrics ports (serve's MetricsPort, the worker's Port). Egress stays open: the data tier (Cloud SQL's private range, Redis, RabbitMQ), DNS, and the
// customers' webhook endpoints on the internet (through Cloud NAT), which no static list can name.
func (d *deployer) networkPolicies() error {
	a := d.a
	_, labels := d.labels("runtime", "", "")
	all := ClientSelector(a.Name)
	policy := func(logical, objectName string, selector map[string]string, rules networkingv1.NetworkPolicyIngressRuleArray) error {
		_, err := networkingv1.NewNetworkPolicy(d.ctx, logical, &networkingv1.NetworkPolicyArgs{
			Metadata: d.meta(objectName, labels),
			Spec: networkingv1.NetworkPolicySpecArgs{
				PodSelector: kube.Selector(selector),
				PolicyTypes: pulumi.StringArray{pulumi.String("Ingress")},
				Ingress:     rules,
			},
		}, d.opts()...)
		return err
	}
	if err := policy(d.name+"-deny", a.Name+"-runtime-deny-ingress", all, nil); err != nil {
		return fmt.Errorf("default-deny network policy: %w", err)
	}

	lb := networkingv1.NetworkPolicyPeerArray{}
	for _, c := range a.Ingress.LoadBalancerCIDRs {
		lb = append(lb, networkingv1.NetworkPolicyPeerArgs{IpBlock: networkingv1.IPBlockArgs{Cidr: pulumi.String(c)}})
	}
	smokeSelector, _ := kube.Labels(appName, a.Name, "smoke", nil)
	inCluster := networkingv1.NetworkPolicyPeerArray{kube.PodPeer(smokeSelector)}
	if len(a.Ingress.EdgeSelector) > 0 {
		inCluster = append(inCluster, kube.PodPeer(a.Ingress.EdgeSelector))
	}
	// Only the collector, not every pod of the namespace: /metrics tells who calls what, and how often.
	scraper := networkingv1.NetworkPolicyPeerArray{networkingv1.NetworkPolicyPeerArgs{
		NamespaceSelector: kube.Selector(map[string]string{"kubernetes.io/metadata.name": a.Ingress.Scraper.Namespace}),
		PodSelector:       kube.Selector(a.Ingress.Scraper.Selector),
	}}
	api := networkingv1.NetworkPolicyPortArray{kube.Port(Port)}
	webRules := networkingv1.NetworkPolicyIngressRuleArray{
		// Google's front ends and health checkers reach the NEG endpoints (the pod IPs) directly.
		networkingv1.NetworkPolicyIngressRuleArgs{From: lb, Ports: api},
		// cloudflared and the smoke test reach the web pods through the Services.
		networkingv1.NetworkPolicyIngressRuleArgs{From: inCluster, Ports: api},
		// The collector reaches serve's metrics port, not the API.
		networkingv1.NetworkPolicyIngressRuleArgs{From: scraper, Ports: networkingv1.NetworkPolicyPortArray{kube.Port(MetricsPort)}},
	}
	if err := policy(d.name+"-web-ingress", a.Name+"-web-ingress", WebSelector(a.Name), webRules); err != nil {
		return fmt.Errorf("web network policy: %w", err)
	}
	// The worker serves its metrics on its only port.
	metricsRules := networkingv1.NetworkPolicyIngressRuleArray{networkingv1.NetworkPolicyIngressRuleArgs{From: scraper, Ports: api}}
	if err := policy(d.name+"-metrics", a.Name+"-runtime-metrics", WorkerSelector(a.Name), metricsRules); err != nil {
		return fmt.Errorf("metrics network policy: %w", err)
	}
	return nil
}
