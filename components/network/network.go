// Package network declares an environment's VPC: a custom-mode network with one regional subnet (secondary ranges
// for GKE pods and services), Cloud NAT for egress from private nodes, private services access for Cloud SQL, and
// firewall rules that admit only Google's health checks, the GKE control plane and traffic inside the VPC.
package network

import (
	"fmt"
	"github.com/omscloud/omscloud/components/internal/child"
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
	inherited, err := child.Options(n, opts)
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	parent := pulumi.Composite(inherited...)
	// The address space everything else lives in: the VPC, the nodes' subnet and the range of Cloud SQL's private
	// IP. Replacing one takes down every workload and database attached, so in production a change that would do so
	// fails the preview instead.
	addressSpace := pulumi.Composite(parent, pulumi.Protect(args.DeletionProtection))

	vpc, err := compute.NewNetwork(ctx, name+"-vpc", &compute.NetworkArgs{
		Project:               pulumi.String(args.Project),
		Name:                  pulumi.String(args.Name + "-vpc"),
		AutoCreateSubnetworks: pulumi.Bool(false),
		RoutingMode:           pulumi.String("REGIONAL"),
		// The default 0.0.0.0/0 route stays: private nodes reach the internet only through Cloud NAT.
		Description: pulumi.String("omscloud environment " + args.Name),
	}, addressSpace)
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
	subnet, err := compute.NewSubnetwork(ctx, name+"-nodes", subnetArgs, addressSpace)
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
		// Dynamic port allocation: a node starts with minNatPorts source ports and gets more as its pods open
		// connections (webhook bursts), instead of a fixed 64 that drops connections under load
		// (https://cloud.google.com/nat/docs/ports-and-addresses#dynamic-port).
		EnableDynamicPortAllocation: pulumi.Bool(true),
		MinPortsPerVm:               pulumi.Int(minNatPorts),
		MaxPortsPerVm:               pulumi.Int(maxNatPorts),
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
	}, addressSpace)
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
		deny              bool
	}{
		{name: "allow-health-checks", description: "Google load balancer health checks and proxies to nodes and pods", sources: healthCheckRanges, protocol: "tcp"},
		{name: "allow-internal", description: "traffic between nodes, pods and services", sources: internal, protocol: "all"},
		// pulumi-gcp v7 cannot switch the kubelet's unauthenticated read-only port off (the field came with the
		// Terraform provider 5.44, after pulumi-gcp v7.38): no pod reaches it on another node. Same-node traffic
		// never crosses the VPC firewall, so a pod still reaches its own node's.
		{name: "deny-kubelet-readonly", description: "the kubelet's unauthenticated read-only port, from pods", sources: []string{args.PodsCIDR}, protocol: "tcp", ports: []string{"10255"}, deny: true},
		{name: "allow-master-webhooks", description: "GKE control plane to admission webhooks and kubelets", sources: []string{args.MasterCIDR}, protocol: "tcp", ports: []string{"443", "8443", "9443", "10250", "15017"}},
	}
	for _, r := range rules {
		fw := &compute.FirewallArgs{
			Project:      pulumi.String(args.Project),
			Name:         pulumi.String(args.Name + "-" + r.name),
			Network:      vpc.SelfLink,
			Description:  pulumi.String(r.description),
			Direction:    pulumi.String("INGRESS"),
			Priority:     pulumi.Int(allowPriority),
			SourceRanges: pulumi.ToStringArray(r.sources),
			LogConfig:    compute.FirewallLogConfigArgs{Metadata: pulumi.String("EXCLUDE_ALL_METADATA")},
		}
		var ports pulumi.StringArrayInput
		if len(r.ports) > 0 {
			ports = pulumi.ToStringArray(r.ports)
		}
		if r.deny {
			// Evaluated before the allows: a lower number wins.
			fw.Priority = pulumi.Int(allowPriority - 100)
			fw.Denies = compute.FirewallDenyArray{compute.FirewallDenyArgs{Protocol: pulumi.String(r.protocol), Ports: ports}}
		} else {
			fw.Allows = compute.FirewallAllowArray{compute.FirewallAllowArgs{Protocol: pulumi.String(r.protocol), Ports: ports}}
		}
		if _, err := compute.NewFirewall(ctx, name+"-"+r.name, fw, parent); err != nil {
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
