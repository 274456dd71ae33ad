// Package dr declares what a production stack's cold DR site needs before DR is declared, and nothing that runs:
//
//   - gcp edge: a reserved global static IP for the DR environment's HTTPS load balancer (a global load balancer
//     takes a global address, which lives in no region); the DR spin-up passes it to components/edge as
//     GCP.Address, so customers whitelist one address for the primary and another, already known, for DR. Once DR
//     is declared (Args.Active) the primary's A records point at it;
//   - cloudflare edge: a pre-declared DR tunnel (its secret generated now, its routes configured, no connector
//     running) and a DR load-balancer pool on it, disabled until DR is declared (Args.Active), that the primary
//     load balancer already lists after the primary pool (edge.CloudflareArgs.DRPoolIDs);
//   - optionally, regional external IPs in the DR region for the DR environment's Cloud NAT (outbound whitelists).
//
// Customer backups live in components/backup; the DR environment itself is created by the DR spin-up.
package dr

import (
	"fmt"
	"github.com/omscloud/omscloud/components/edge"
	"github.com/omscloud/omscloud/components/internal/child"
	"slices"

	"github.com/omscloud/omscloud/components/internal/cftunnel"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/compute"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// DR is the component. Outputs of the other edge mode are empty strings.
type DR struct {
	pulumi.ResourceState

	// Edge is the mode the outputs belong to.
	Edge string
	// DRIPAddress is the reserved global IPv4 address of the DR load balancer (gcp); customers whitelist it.
	DRIPAddress pulumi.StringOutput `pulumi:"drIpAddress"`
	// DRAddressName is that address resource's name, for `gcloud compute addresses describe --global`.
	DRAddressName pulumi.StringOutput `pulumi:"drAddressName"`
	// DREgressIPs are the reserved regional addresses for the DR environment's Cloud NAT.
	DREgressIPs pulumi.StringArrayOutput `pulumi:"drEgressIps"`
	// DRPoolID is the DR pool (cloudflare), enabled only while Args.Active.
	DRPoolID pulumi.StringOutput `pulumi:"drPoolId"`
	// DRTunnelID and DRTunnelCNAME identify the DR tunnel; DRTunnelToken (secret) is what the DR environment's
	// cloudflared runs with.
	DRTunnelID    pulumi.StringOutput `pulumi:"drTunnelId"`
	DRTunnelCNAME pulumi.StringOutput `pulumi:"drTunnelCname"`
	DRTunnelToken pulumi.StringOutput `pulumi:"drTunnelToken"`
}

// New declares the DR site's reservations. GCP resources use the GCP provider inherited from the parent (the stack's
// primary-region provider is enough: every regional resource names DRRegion explicitly); pass the Cloudflare
// provider with pulumi.Providers in cloudflare mode.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*DR, error) {
	if args == nil {
		return nil, fmt.Errorf("dr: Args are required")
	}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	a := args.withDefaults()
	d := &DR{Edge: a.Edge}
	if err := ctx.RegisterComponentResource("omscloud:dr:DR", name, d, opts...); err != nil {
		return nil, err
	}
	child, err := child.Options(d, opts)
	if err != nil {
		return nil, fmt.Errorf("dr: %w", err)
	}
	protect := pulumi.Protect(a.DeletionProtection)
	empty := pulumi.String("").ToStringOutput()
	d.DRIPAddress, d.DRAddressName, d.DRPoolID, d.DRTunnelID, d.DRTunnelCNAME = empty, empty, empty, empty, empty
	d.DRTunnelToken = pulumi.ToSecret(empty).(pulumi.StringOutput)

	switch a.Edge {
	case edge.GCP:
		err = reserveIngress(ctx, name, &a, d, append(slices.Clone(child), protect))
	case edge.Cloudflare:
		err = declareTunnel(ctx, name, &a, d, append(slices.Clone(child), protect))
	}
	if err != nil {
		return nil, fmt.Errorf("dr: %w", err)
	}
	egress := pulumi.StringArray{}
	for i := range a.EgressAddresses {
		ip, err := compute.NewAddress(ctx, fmt.Sprintf("%s-egress-%d", name, i), &compute.AddressArgs{
			Project:     pulumi.String(a.Project),
			Name:        pulumi.String(fmt.Sprintf("%s-dr-egress-%d", a.Name, i)),
			Region:      pulumi.String(a.DRRegion),
			AddressType: pulumi.String("EXTERNAL"),
			NetworkTier: pulumi.String("PREMIUM"),
			Description: pulumi.String("Cloud NAT address of " + a.Name + "'s DR environment; customers whitelist it"),
			Labels:      pulumi.ToStringMap(a.Labels),
		}, append(slices.Clone(child), protect)...)
		if err != nil {
			return nil, fmt.Errorf("dr: egress address %d: %w", i, err)
		}
		egress = append(egress, ip.Address)
	}
	d.DREgressIPs = egress.ToStringArrayOutput()

	return d, ctx.RegisterResourceOutputs(d, pulumi.Map{
		"edge":          pulumi.String(d.Edge),
		"drIpAddress":   d.DRIPAddress,
		"drAddressName": d.DRAddressName,
		"drEgressIps":   d.DREgressIPs,
		"drPoolId":      d.DRPoolID,
		"drTunnelId":    d.DRTunnelID,
		"drTunnelCname": d.DRTunnelCNAME,
		"drTunnelToken": d.DRTunnelToken,
	})
}

// reserveIngress reserves the DR load balancer's global IPv4 address.
func reserveIngress(ctx *pulumi.Context, name string, a *Args, d *DR, opts []pulumi.ResourceOption) error {
	ip, err := compute.NewGlobalAddress(ctx, name+"-ip", &compute.GlobalAddressArgs{
		Project:     pulumi.String(a.Project),
		Name:        pulumi.String(a.Name + "-dr"),
		AddressType: pulumi.String("EXTERNAL"),
		IpVersion:   pulumi.String("IPV4"),
		Description: pulumi.String("DR load balancer address of " + a.Name + " (DR site " + a.DRRegion + "); customers whitelist it"),
		Labels:      pulumi.ToStringMap(a.Labels),
	}, opts...)
	if err != nil {
		return fmt.Errorf("dr address: %w", err)
	}
	d.DRIPAddress = ip.Address
	d.DRAddressName = ip.Name
	return nil
}

// declareTunnel declares the DR tunnel with its routes and the disabled DR pool on it. The tunnel costs nothing and
// serves nothing until a connector runs with its token in the DR environment.
func declareTunnel(ctx *pulumi.Context, name string, a *Args, d *DR, opts []pulumi.ResourceOption) error {
	c := a.Cloudflare
	// Routes are declared now, so the spin-up only has to start cloudflared with the token.
	tunnel, err := cftunnel.NewTunnel(ctx, name, cftunnel.TunnelArgs{
		AccountID: c.AccountID, Name: a.Name + "-dr", Hostnames: c.Hostnames, Origin: a.DROrigin,
	}, opts)
	if err != nil {
		return fmt.Errorf("dr %w", err)
	}
	// Disabled until DR is declared (Active): the load balancer sends nothing here and nothing probes it. Probes
	// reach the DR runtime through the DR tunnel by hostname.
	pool, err := cftunnel.NewPool(ctx, name, name+"-pool", cftunnel.PoolArgs{
		AccountID: c.AccountID, Name: a.Name + "-dr", OriginName: a.Name + "-dr-tunnel",
		Description:        a.Name + " DR tunnel in " + a.DRRegion + ": enabled by DR activation",
		MonitorDescription: a.Name + " DR runtime " + c.HealthPath + " through the DR tunnel",
		Tunnel:             tunnel.CNAME, Host: c.Hostnames[0], HealthPath: c.HealthPath, Enabled: a.Active,
		CheckRegions: c.CheckRegions, NotificationEmail: c.NotificationEmail,
	}, opts)
	if err != nil {
		return fmt.Errorf("dr %w", err)
	}
	tunnelID, cname := tunnel.ID, tunnel.CNAME
	d.DRPoolID = pool.ID
	d.DRTunnelID = tunnelID
	d.DRTunnelCNAME = cname
	d.DRTunnelToken = tunnel.Token
	return nil
}
