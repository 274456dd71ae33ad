package gke

import (
	"errors"
	"fmt"
	"slices"

	"github.com/omscloud/omscloud/components/internal/cmek"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Args configures a regional GKE Standard cluster and its node pools.
type Args struct {
	// Name is the cluster's name and the prefix of its resources ("oms-prod-us").
	Name    string
	Project string
	Region  string
	// Zones the node pools span; at least 2.
	Zones []string
	// Network and Subnetwork are self links; the subnet carries the pods and services secondary ranges.
	Network           pulumi.StringInput
	Subnetwork        pulumi.StringInput
	PodsRangeName     string
	ServicesRangeName string
	// MasterCIDR is the /28 the private control plane peers into.
	MasterCIDR               string
	MasterAuthorizedNetworks []AuthorizedNetwork
	// ReleaseChannel is RAPID, REGULAR or STABLE.
	ReleaseChannel     string
	Maintenance        MaintenanceWindow
	DeletionProtection bool
	Labels             map[string]string
	// AdoptKeys keeps the CMEK key ring and key in GCP when the stack is destroyed and adopts them when they exist
	// (cmek.Args.Adopt): for an environment torn down and declared again under the same names, a DR environment.
	AdoptKeys bool
	// ServiceAgent is the Kubernetes Engine service agent's email (apis.APIs.KubernetesAgent): it encrypts
	// Kubernetes Secrets in etcd with the cluster's CMEK key (application-layer secrets encryption).
	ServiceAgent pulumi.StringInput
	// KeyRotationDays rotates the secrets key (default 90, at most 90).
	KeyRotationDays int
	Pools           []PoolArgs
	// Images are the Artifact Registry images the workloads run: the nodes may read each repository they name, and no
	// other (see ImageRepository). Public images pulled through Cloud NAT need no grant and are not listed.
	Images []string
}

// AuthorizedNetwork may reach the control plane's endpoint.
type AuthorizedNetwork struct {
	Name string
	CIDR string
}

// MaintenanceWindow is a weekly window; Days are lowercase weekday names.
type MaintenanceWindow struct {
	Days          []string
	StartHourUTC  int
	DurationHours int
}

// PoolArgs is one autoscaled node pool spanning every zone of the cluster.
type PoolArgs struct {
	Name            string
	MachineType     string
	MinNodesPerZone int
	MaxNodesPerZone int
	DiskSizeGB      int
	// Labels become Kubernetes node labels (workloads select on them).
	Labels map[string]string
	// Taints keep other workloads off the pool.
	Taints []Taint
}

// Taint is a Kubernetes node taint; Effect is NO_SCHEDULE, PREFER_NO_SCHEDULE or NO_EXECUTE.
type Taint struct {
	Key, Value, Effect string
}

var releaseChannels = []string{"RAPID", "REGULAR", "STABLE"}

// maxKeyRotationDays is the longest rotation period of the secrets key, and its default.
const maxKeyRotationDays = cmek.MaxRotationDays

// Validate reports every missing or inconsistent argument.
func (a *Args) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("gke: "+format, args...)) }
	if a.Name == "" || a.Project == "" || a.Region == "" {
		add("Name, Project and Region are required")
	}
	if a.ServiceAgent == nil {
		add("ServiceAgent is required: the Kubernetes Engine service agent (apis.APIs.KubernetesAgent) encrypts Secrets with the cluster's key")
	}
	if a.KeyRotationDays < 0 || a.KeyRotationDays > maxKeyRotationDays {
		add("KeyRotationDays is %d: use 1-%d (0 for %d)", a.KeyRotationDays, maxKeyRotationDays, maxKeyRotationDays)
	}
	if len(a.Name) > 40 {
		add("Name %q is longer than GKE's 40 characters", a.Name)
	}
	if len(a.Zones) < 2 {
		add("Zones has %d zone(s): a regional cluster spreads nodes over at least 2", len(a.Zones))
	}
	if a.Network == nil || a.Subnetwork == nil || a.PodsRangeName == "" || a.ServicesRangeName == "" {
		add("Network, Subnetwork, PodsRangeName and ServicesRangeName are required")
	}
	if a.MasterCIDR == "" {
		add("MasterCIDR is required for a private cluster")
	}
	if !slices.Contains(releaseChannels, a.ReleaseChannel) {
		add("ReleaseChannel %q: use one of %v", a.ReleaseChannel, releaseChannels)
	}
	if len(a.Maintenance.Days) == 0 || a.Maintenance.DurationHours < 4 {
		add("Maintenance needs days and a duration of at least 4 hours")
	}
	if len(a.Pools) == 0 {
		add("Pools is empty: the default pool is removed, so at least one pool is required")
	}
	for i, image := range a.Images {
		if _, err := ImageRepository(image); err != nil {
			add("Images[%d]: %v", i, err)
		}
	}
	seen := map[string]bool{}
	for _, p := range a.Pools {
		if p.Name == "" || seen[p.Name] {
			add("pool names must be set and unique, got %q", p.Name)
		}
		seen[p.Name] = true
		if p.MinNodesPerZone < 0 || p.MaxNodesPerZone < p.MinNodesPerZone || p.MaxNodesPerZone == 0 {
			add("pool %s: autoscaling bounds %d..%d per zone are inconsistent", p.Name, p.MinNodesPerZone, p.MaxNodesPerZone)
		}
		if p.MachineType == "" {
			add("pool %s: MachineType is required", p.Name)
		}
	}
	return errors.Join(errs...)
}

// The node pools every environment runs and how workloads find them: each pool labels its nodes PoolLabel=<pool
// name>, and the stateful pool is tainted StatefulTaint=true:NoSchedule so only Redis and RabbitMQ (which tolerate
// it) land there.
const (
	PoolLabel     = "omscloud.io/pool"
	StatefulTaint = "omscloud.io/stateful"
	WebPool       = "web"
	StatefulPool  = "stateful"
)
