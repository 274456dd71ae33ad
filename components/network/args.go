package network

import (
	"errors"
	"fmt"
	"net/netip"
)

// Args configures the network of one environment.
type Args struct {
	// Name prefixes every resource ("oms-prod-us").
	Name    string
	Project string
	Region  string
	// SubnetCIDR holds the nodes; PodsCIDR and ServicesCIDR are the subnet's secondary ranges for GKE.
	SubnetCIDR   string
	PodsCIDR     string
	ServicesCIDR string
	// MasterCIDR is the GKE control plane's /28; it may reach admission webhooks on the nodes.
	MasterCIDR string
	// PrivateServicesCIDR is reserved for Google-managed services (Cloud SQL private IP).
	PrivateServicesCIDR string
	// FlowLogs samples VPC flow logs on the subnet (production).
	FlowLogs bool
	// DeletionProtection protects the VPC, the nodes' subnet and the private services range (production).
	DeletionProtection bool
}

// Range names on the subnet, used by the GKE cluster's IP allocation policy.
const (
	PodsRangeName     = "pods"
	ServicesRangeName = "services"
)

// Cloud NAT source ports per node: dynamic allocation between these bounds.
const (
	minNatPorts = 256
	maxNatPorts = 16384
)

// allowPriority orders the allow rules; denies of specific traffic come before it, the logged deny-all last.
const allowPriority = 1000

// Google's health-check and load-balancer source ranges.
var healthCheckRanges = []string{"35.191.0.0/16", "130.211.0.0/22"}

// Validate reports every missing or malformed argument.
func (a *Args) Validate() error {
	var errs []error
	for field, v := range map[string]string{"Name": a.Name, "Project": a.Project, "Region": a.Region} {
		if v == "" {
			errs = append(errs, fmt.Errorf("network: %s is required", field))
		}
	}
	for field, v := range map[string]string{
		"SubnetCIDR": a.SubnetCIDR, "PodsCIDR": a.PodsCIDR, "ServicesCIDR": a.ServicesCIDR,
		"MasterCIDR": a.MasterCIDR, "PrivateServicesCIDR": a.PrivateServicesCIDR,
	} {
		if _, err := netip.ParsePrefix(v); err != nil {
			errs = append(errs, fmt.Errorf("network: %s %q is not a CIDR block", field, v))
		}
	}
	return errors.Join(errs...)
}
