// Package edge declares how traffic reaches the OMS runtime's web pods, selected per stack:
//
//   - gcp: a global external HTTPS load balancer (static IP, Certificate Manager map of DNS-authorized managed
//     certificates, modern TLS, HTTP → HTTPS redirect) whose backends are each blue-green color's zonal NEGs
//     (container-native load balancing, health-checked on /readyz, capacity on the active color only), protected by a Cloud Armor policy (preconfigured WAF rules, per-IP
//     rate limit, adaptive protection), with Cloud CDN only for static paths, and the hostnames' records in a Cloud
//     DNS zone. With GCP.CertificateMap (a DR environment) it serves another stack's certificates and owns no record;
//   - cloudflare: a Zero Trust tunnel (no public IP, no GCP load balancer) whose connector, cloudflared, runs in the
//     cluster, proxied DNS records to the tunnel, and a Cloudflare load balancer with a health monitor and the
//     primary pool, to which the DR pool is appended when it exists. With Cloudflare.ConnectorOnly (a DR
//     environment) only the connector runs, with the token of a tunnel another stack owns.
package edge

import (
	"fmt"
	"github.com/omscloud/omscloud/components/internal/child"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Edge is the component. Outputs of the other mode are empty strings.
type Edge struct {
	pulumi.ResourceState

	// Provider is the mode: gcp or cloudflare.
	Provider string
	// IPAddress is the load balancer's public IPv4 address (gcp); empty in cloudflare mode, which has none.
	IPAddress pulumi.StringOutput `pulumi:"ipAddress"`
	// URLs are https://<hostname> for every hostname.
	URLs pulumi.StringArrayOutput `pulumi:"urls"`
	// CertificateMap is the Certificate Manager map the HTTPS proxy serves, its id (gcp): the edge's own, or
	// GCP.CertificateMap.
	CertificateMap pulumi.StringOutput `pulumi:"certificateMap"`
	// SecurityPolicy is the Cloud Armor policy's self link (gcp).
	SecurityPolicy pulumi.StringOutput `pulumi:"securityPolicy"`
	// TunnelID and TunnelCNAME ("<id>.cfargotunnel.com") identify the tunnel (cloudflare). They and the other
	// Cloudflare outputs are empty with ConnectorOnly, which declares nothing on Cloudflare.
	TunnelID    pulumi.StringOutput `pulumi:"tunnelId"`
	TunnelCNAME pulumi.StringOutput `pulumi:"tunnelCname"`
	// MonitorID is the health monitor a DR pool reuses; PrimaryPoolID is the pool of this region's tunnel
	// (cloudflare).
	MonitorID     pulumi.StringOutput `pulumi:"monitorId"`
	PrimaryPoolID pulumi.StringOutput `pulumi:"primaryPoolId"`
	// LoadBalancerID is the Cloudflare load balancer on the primary hostname (cloudflare).
	LoadBalancerID pulumi.StringOutput `pulumi:"loadBalancerId"`
}

// New declares the edge. Pass providers explicitly: the GCP provider through the parent (gcp mode); the Kubernetes
// and Cloudflare providers with pulumi.Providers (cloudflare mode; ConnectorOnly needs only Kubernetes). Explicit dependencies of the component (e.g. on
// the runtime's Service, whose annotation makes GKE create the NEGs) are passed on to every child.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Edge, error) {
	if args == nil {
		return nil, fmt.Errorf("edge: Args are required")
	}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	a := args.withDefaults()
	e := &Edge{Provider: a.Provider}
	if err := ctx.RegisterComponentResource("omscloud:edge:Edge", name, e, opts...); err != nil {
		return nil, err
	}
	child, err := child.Options(e, opts)
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	empty := pulumi.String("").ToStringOutput()
	e.IPAddress, e.CertificateMap, e.SecurityPolicy = empty, empty, empty
	e.TunnelID, e.TunnelCNAME, e.MonitorID, e.PrimaryPoolID, e.LoadBalancerID = empty, empty, empty, empty, empty
	urls := make([]string, len(a.Hostnames))
	for i, h := range a.Hostnames {
		urls[i] = "https://" + h
	}
	e.URLs = pulumi.ToStringArray(urls).ToStringArrayOutput()

	switch a.Provider {
	case GCP:
		err = newGCP(ctx, name, &a, e, child)
	case Cloudflare:
		err = newCloudflare(ctx, name, &a, e, child)
	}
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	return e, ctx.RegisterResourceOutputs(e, pulumi.Map{
		"provider":       pulumi.String(e.Provider),
		"ipAddress":      e.IPAddress,
		"urls":           e.URLs,
		"certificateMap": e.CertificateMap,
		"securityPolicy": e.SecurityPolicy,
		"tunnelId":       e.TunnelID,
		"tunnelCname":    e.TunnelCNAME,
		"monitorId":      e.MonitorID,
		"primaryPoolId":  e.PrimaryPoolID,
		"loadBalancerId": e.LoadBalancerID,
	})
}
