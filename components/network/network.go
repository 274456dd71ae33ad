// Package network declares an environment's VPC: a custom-mode network with one regional subnet (secondary ranges
// for GKE pods and services), Cloud NAT for egress from private nodes, private services access for Cloud SQL, and
// firewall rules that admit only Google's health checks, the GKE control plane and traffic inside the VPC.
package network

import (
	"net/netip"

	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/compute"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/servicenetworking"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Network is the component; its fields are what other components consume.
type Network struct {
	pulumi.ResourceState

	// Network and Subnetwork are self links.
	Network    pulumi.StringOutput `pulumi:"network"`
	Subnetwork pulumi.StringOutput `pulumi:"subnetwork"`
	// PrivateServices is the private services access connection; Cloud SQL private IP depends on it.
	PrivateServices *servicenetworking.Connection
}

// New declares the network.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Network, error) {
	if err := args.Validate(); err != nil {
		return nil, err
	}
	n := &Network{}
	if err := ctx.RegisterComponentResource("omscloud:network:Network", name, n, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(n)

	vpc, err := compute.NewNetwork(ctx, name+"-vpc", &compute.NetworkArgs{
		Project:               pulumi.String(args.Project),
		Name:                  pulumi.String(args.Name + "-vpc"),
		AutoCreateSubnetworks: pulumi.Bool(false),
		RoutingMode:           pulumi.String("REGIONAL"),
		// The default 0.0.0.0/0 route stays: private nodes reach the internet only through Cloud NAT.
		Description: pulumi.String("omscloud environment " + args.Name),
	}, parent)
	if err != nil {
		return nil, err
	}

	subnetArgs := &compute.SubnetworkArgs{
		Project:               pulumi.String(args.Project),
		Region:                pulumi.String(args.Region),
		Name:                  pulumi.String(args.Name + "-nodes"),
		Network:               vpc.SelfLink,
		IpCidrRange:           pulumi.String(args.SubnetCIDR),
		PrivateIpGoogleAccess: pulumi.Bool(true),
		SecondaryIpRanges: compute.SubnetworkSecondaryIpRangeArray{
			compute.SubnetworkSecondaryIpRangeArgs{RangeName: pulumi.String(PodsRangeName), IpCidrRange: pulumi.String(args.PodsCIDR)},
			compute.SubnetworkSecondaryIpRangeArgs{RangeName: pulumi.String(ServicesRangeName), IpCidrRange: pulumi.String(args.ServicesCIDR)},
		},
	}
	if args.FlowLogs {
		subnetArgs.LogConfig = compute.SubnetworkLogConfigArgs{
			AggregationInterval: pulumi.String("INTERVAL_5_SEC"),
			FlowSampling:        pulumi.Float64(0.5),
			Metadata:            pulumi.String("INCLUDE_ALL_METADATA"),
		}
	}
	subnet, err := compute.NewSubnetwork(ctx, name+"-nodes", subnetArgs, parent)
	if err != nil {
		return nil, err
	}

	router, err := compute.NewRouter(ctx, name+"-router", &compute.RouterArgs{
		Project: pulumi.String(args.Project),
		Region:  pulumi.String(args.Region),
		Name:    pulumi.String(args.Name + "-router"),
		Network: vpc.SelfLink,
	}, parent)
	if err != nil {
		return nil, err
	}
	if _, err := compute.NewRouterNat(ctx, name+"-nat", &compute.RouterNatArgs{
		Project:                          pulumi.String(args.Project),
		Region:                           pulumi.String(args.Region),
		Name:                             pulumi.String(args.Name + "-nat"),
		Router:                           router.Name,
		NatIpAllocateOption:              pulumi.String("AUTO_ONLY"),
		SourceSubnetworkIpRangesToNat:    pulumi.String("ALL_SUBNETWORKS_ALL_IP_RANGES"),
		EnableEndpointIndependentMapping: pulumi.Bool(false),
		LogConfig: compute.RouterNatLogConfigArgs{
			Enable: pulumi.Bool(true),
			Filter: pulumi.String("ERRORS_ONLY"),
		},
	}, parent); err != nil {
		return nil, err
	}

	psaPrefix := netip.MustParsePrefix(args.PrivateServicesCIDR)
	psaRange, err := compute.NewGlobalAddress(ctx, name+"-psa", &compute.GlobalAddressArgs{
		Project:      pulumi.String(args.Project),
		Name:         pulumi.String(args.Name + "-psa"),
		Purpose:      pulumi.String("VPC_PEERING"),
		AddressType:  pulumi.String("INTERNAL"),
		Address:      pulumi.String(psaPrefix.Addr().String()),
		PrefixLength: pulumi.Int(psaPrefix.Bits()),
		Network:      vpc.ID(),
	}, parent)
	if err != nil {
		return nil, err
	}
	psa, err := servicenetworking.NewConnection(ctx, name+"-psa", &servicenetworking.ConnectionArgs{
		Network:               vpc.ID(),
		Service:               pulumi.String("servicenetworking.googleapis.com"),
		ReservedPeeringRanges: pulumi.StringArray{psaRange.Name},
		// Abandon rather than fail on delete: the peering outlives Cloud SQL instances being torn down.
		DeletionPolicy: pulumi.String("ABANDON"),
	}, parent)
	if err != nil {
		return nil, err
	}

	internal := []string{args.SubnetCIDR, args.PodsCIDR, args.ServicesCIDR}
	rules := []struct {
		name, description string
		sources           []string
		protocol          string
		ports             []string
	}{
		{"allow-health-checks", "Google load balancer health checks and proxies to nodes and pods", healthCheckRanges, "tcp", nil},
		{"allow-internal", "traffic between nodes, pods and services", internal, "all", nil},
		{"allow-master-webhooks", "GKE control plane to admission webhooks and kubelets", []string{args.MasterCIDR}, "tcp", []string{"443", "8443", "9443", "10250", "15017"}},
	}
	for _, r := range rules {
		allow := compute.FirewallAllowArgs{Protocol: pulumi.String(r.protocol)}
		if len(r.ports) > 0 {
			allow.Ports = pulumi.ToStringArray(r.ports)
		}
		if _, err := compute.NewFirewall(ctx, name+"-"+r.name, &compute.FirewallArgs{
			Project:      pulumi.String(args.Project),
			Name:         pulumi.String(args.Name + "-" + r.name),
			Network:      vpc.SelfLink,
			Description:  pulumi.String(r.description),
			Direction:    pulumi.String("INGRESS"),
			Priority:     pulumi.Int(1000),
			SourceRanges: pulumi.ToStringArray(r.sources),
			Allows:       compute.FirewallAllowArray{allow},
			LogConfig:    compute.FirewallLogConfigArgs{Metadata: pulumi.String("EXCLUDE_ALL_METADATA")},
		}, parent); err != nil {
			return nil, err
		}
	}
	// An explicit, logged deny-all below every allow: the implied deny is not logged, this one is.
	if _, err := compute.NewFirewall(ctx, name+"-deny-all-ingress", &compute.FirewallArgs{
		Project:      pulumi.String(args.Project),
		Name:         pulumi.String(args.Name + "-deny-all-ingress"),
		Network:      vpc.SelfLink,
		Description:  pulumi.String("everything not allowed above, logged"),
		Direction:    pulumi.String("INGRESS"),
		Priority:     pulumi.Int(65534),
		SourceRanges: pulumi.StringArray{pulumi.String("0.0.0.0/0")},
		Denies:       compute.FirewallDenyArray{compute.FirewallDenyArgs{Protocol: pulumi.String("all")}},
		LogConfig:    compute.FirewallLogConfigArgs{Metadata: pulumi.String("EXCLUDE_ALL_METADATA")},
	}, parent); err != nil {
		return nil, err
	}

	n.Network = vpc.SelfLink
	n.Subnetwork = subnet.SelfLink
	n.PrivateServices = psa
	return n, ctx.RegisterResourceOutputs(n, pulumi.Map{
		"network":    vpc.SelfLink,
		"subnetwork": subnet.SelfLink,
	})
}
