// Package cftunnel declares the Cloudflare pieces the edge and the DR site share: a Zero Trust tunnel whose routes
// are managed in Cloudflare, and a load balancer pool that reaches it, with its health monitor.
package cftunnel

import (
	"fmt"

	"github.com/pulumi/pulumi-cloudflare/sdk/v5/go/cloudflare"
	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// secretBytes is the tunnel secret's length; Cloudflare requires at least 32 bytes.
const secretBytes = 32

// TunnelArgs names a tunnel and routes each hostname to one origin.
type TunnelArgs struct {
	AccountID string
	Name      string
	Hostnames []string
	// Origin is the in-cluster URL every hostname reaches, e.g. http://oms-prod-eu-web.oms.svc.cluster.local:80.
	Origin string
}

// Tunnel is what a connector and a pool need.
type Tunnel struct {
	ID pulumi.StringOutput
	// CNAME is the tunnel's hostname, "<id>.cfargotunnel.com".
	CNAME pulumi.StringOutput
	// Token runs a connector (secret).
	Token pulumi.StringOutput
}

// NewTunnel declares the tunnel (logical name name+"-tunnel"), its generated secret and its routes; any hostname not
// listed gets a 404.
func NewTunnel(ctx *pulumi.Context, name string, a TunnelArgs, opts []pulumi.ResourceOption) (*Tunnel, error) {
	account := pulumi.String(a.AccountID)
	// The random bytes are secret outputs too, so the secret stays encrypted in state.
	secret, err := random.NewRandomId(ctx, name+"-tunnel-secret", &random.RandomIdArgs{
		ByteLength: pulumi.Int(secretBytes),
	}, append(opts, pulumi.AdditionalSecretOutputs([]string{"b64Std", "b64Url", "hex", "dec"}))...)
	if err != nil {
		return nil, fmt.Errorf("tunnel secret: %w", err)
	}
	tunnel, err := cloudflare.NewZeroTrustTunnelCloudflared(ctx, name+"-tunnel", &cloudflare.ZeroTrustTunnelCloudflaredArgs{
		AccountId: account,
		Name:      pulumi.String(a.Name),
		Secret:    pulumi.ToSecret(secret.B64Std).(pulumi.StringOutput),
		// Routes are managed in Cloudflare (the config below), not in a file on the connector.
		ConfigSrc: pulumi.String("cloudflare"),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	id := tunnel.ID().ToStringOutput()

	ingress := cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressRuleArray{}
	for _, h := range a.Hostnames {
		ingress = append(ingress, cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressRuleArgs{
			Hostname: pulumi.String(h),
			Service:  pulumi.String(a.Origin),
		})
	}
	// The last rule must match everything.
	ingress = append(ingress, cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressRuleArgs{
		Service: pulumi.String("http_status:404"),
	})
	if _, err := cloudflare.NewZeroTrustTunnelCloudflaredConfig(ctx, name+"-tunnel", &cloudflare.ZeroTrustTunnelCloudflaredConfigArgs{
		AccountId: account,
		TunnelId:  id,
		Config: cloudflare.ZeroTrustTunnelCloudflaredConfigConfigArgs{
			IngressRules: ingress,
			OriginRequest: cloudflare.ZeroTrustTunnelCloudflaredConfigConfigOriginRequestArgs{
				ConnectTimeout: pulumi.String("10s"),
			},
		},
	}, opts...); err != nil {
		return nil, fmt.Errorf("tunnel config: %w", err)
	}
	return &Tunnel{
		ID:    id,
		CNAME: pulumi.Sprintf("%s.cfargotunnel.com", id),
		Token: pulumi.ToSecret(tunnel.TunnelToken).(pulumi.StringOutput),
	}, nil
}

// PoolArgs describes a load balancer pool with one origin: a tunnel.
type PoolArgs struct {
	AccountID string
	// Name is the pool's name; OriginName the origin's.
	Name, OriginName string
	// Description and MonitorDescription are shown in the Cloudflare dashboard.
	Description, MonitorDescription string
	// Tunnel is the origin's address ("<id>.cfargotunnel.com").
	Tunnel pulumi.StringOutput
	// Host is a hostname the tunnel serves: the tunnel routes by hostname, so probes and requests carry it.
	Host string
	// HealthPath answers 200 when the runtime behind the tunnel may take traffic.
	HealthPath string
	// Enabled false keeps the pool out of the load balancer and unprobed (a cold DR pool).
	Enabled           bool
	CheckRegions      []string
	NotificationEmail string
}

// Pool identifies a declared pool and its monitor.
type Pool struct {
	ID, MonitorID pulumi.StringOutput
}

// NewPool declares the pool (logical name poolName) and its HTTPS health monitor (name+"-readyz").
func NewPool(ctx *pulumi.Context, name, poolName string, a PoolArgs, opts []pulumi.ResourceOption) (*Pool, error) {
	account := pulumi.String(a.AccountID)
	host := pulumi.StringArray{pulumi.String(a.Host)}
	monitor, err := cloudflare.NewLoadBalancerMonitor(ctx, name+"-readyz", &cloudflare.LoadBalancerMonitorArgs{
		AccountId:       account,
		Description:     pulumi.String(a.MonitorDescription),
		Type:            pulumi.String("https"),
		Method:          pulumi.String("GET"),
		Path:            pulumi.String(a.HealthPath),
		Port:            pulumi.Int(443),
		Headers:         cloudflare.LoadBalancerMonitorHeaderArray{cloudflare.LoadBalancerMonitorHeaderArgs{Header: pulumi.String("Host"), Values: host}},
		ExpectedCodes:   pulumi.String("200"),
		FollowRedirects: pulumi.Bool(false),
		AllowInsecure:   pulumi.Bool(false),
		Interval:        pulumi.Int(60),
		Timeout:         pulumi.Int(5),
		Retries:         pulumi.Int(2),
		ConsecutiveDown: pulumi.Int(2),
		ConsecutiveUp:   pulumi.Int(2),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("health monitor: %w", err)
	}
	args := &cloudflare.LoadBalancerPoolArgs{
		AccountId:      account,
		Name:           pulumi.String(a.Name),
		Description:    pulumi.String(a.Description),
		Monitor:        monitor.ID().ToStringOutput(),
		Enabled:        pulumi.Bool(a.Enabled),
		MinimumOrigins: pulumi.Int(1),
		Origins: cloudflare.LoadBalancerPoolOriginArray{cloudflare.LoadBalancerPoolOriginArgs{
			Name:    pulumi.String(a.OriginName),
			Address: a.Tunnel,
			Enabled: pulumi.Bool(true),
			Weight:  pulumi.Float64(1),
			Headers: cloudflare.LoadBalancerPoolOriginHeaderArray{cloudflare.LoadBalancerPoolOriginHeaderArgs{
				Header: pulumi.String("Host"), Values: host,
			}},
		}},
	}
	if len(a.CheckRegions) > 0 {
		args.CheckRegions = pulumi.ToStringArray(a.CheckRegions)
	}
	if a.NotificationEmail != "" {
		args.NotificationEmail = pulumi.String(a.NotificationEmail)
	}
	pool, err := cloudflare.NewLoadBalancerPool(ctx, poolName, args, opts...)
	if err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	return &Pool{ID: pool.ID().ToStringOutput(), MonitorID: monitor.ID().ToStringOutput()}, nil
}
