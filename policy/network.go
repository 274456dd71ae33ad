package policy

import (
	"fmt"
	"net"
	"regexp"

	"github.com/omscloud/omscloud/inventory"
)

const (
	clusterType  = "gcp:container/cluster:Cluster"
	nodePoolType = "gcp:container/nodePool:NodePool"
	firewallType = "gcp:compute/firewall:Firewall"
	// regionalClusterZones is how many zones GKE spreads a regional cluster's nodes over when none are listed.
	regionalClusterZones = 3
)

var gcpZone = regexp.MustCompile(`^[a-z]+-[a-z]+[0-9]+-[a-z]$`)

// isZone tells a zone ("europe-west1-b") from a region ("europe-west1").
func isZone(location string) bool { return gcpZone.MatchString(location) }

// worldOpen reports whether a CIDR covers every address.
func worldOpen(cidr string) bool {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return false
	}
	ones, _ := n.Mask.Size()
	return ones == 0
}

func firewallIngress() Policy {
	return Policy{
		Name:        "firewall-ingress",
		Description: "no enabled firewall rule allows ingress from the whole Internet (0.0.0.0/0 or ::/0, stated or by default); denying it is fine",
		Severity:    Error,
		Check: func(_ Context, inv *inventory.Inventory) []Finding {
			var out []Finding
			for _, r := range inv.OfType(firewallType) {
				if disabled, _ := boolAt(r, "disabled"); disabled {
					continue
				}
				if d := r.String("direction"); d != "" && d != "INGRESS" {
					continue
				}
				if len(asList(mustGet(r, "allows"))) == 0 {
					continue
				}
				ranges := r.Strings("sourceRanges")
				if len(ranges) == 0 && len(r.Strings("sourceTags")) == 0 && len(r.Strings("sourceServiceAccounts")) == 0 {
					out = append(out, finding(r, "allows ingress with no sourceRanges, sourceTags or sourceServiceAccounts, which GCP reads as 0.0.0.0/0: name the sources"))
					continue
				}
				for _, c := range ranges {
					if worldOpen(c) {
						out = append(out, finding(r, "allows ingress from %s: traffic from the Internet enters only through the load balancer or tunnel", c))
					}
				}
			}
			return out
		},
	}
}

func gkePrivateCluster() Policy {
	return Policy{
		Name: "gke-private-cluster",
		Description: "every GKE cluster has private nodes, Workload Identity and master authorized networks that do not " +
			"include the whole Internet; production clusters are regional (replicated control plane)",
		Severity: Error,
		Check: func(ctx Context, inv *inventory.Inventory) []Finding {
			var out []Finding
			for _, r := range inv.OfType(clusterType) {
				if on, _ := boolAt(r, "privateClusterConfig.enablePrivateNodes"); !on {
					out = append(out, finding(r, "privateClusterConfig.enablePrivateNodes is not true: nodes would get public IP addresses"))
				}
				if r.String("workloadIdentityConfig.workloadPool") == "" {
					out = append(out, finding(r, "workloadIdentityConfig.workloadPool is not set: pods would use the node's service account instead of their own (Workload Identity)"))
				}
				// Without the block the public endpoint accepts any source; with an empty list it accepts none.
				blocks := asList(mustGet(r, "masterAuthorizedNetworksConfig.cidrBlocks"))
				if _, configured := r.Get("masterAuthorizedNetworksConfig"); !configured {
					out = append(out, finding(r, "masterAuthorizedNetworksConfig is not set: the control plane endpoint would accept any source; list the networks that may reach it"))
				} else if len(blocks) == 0 {
					out = append(out, warning(r, "masterAuthorizedNetworksConfig.cidrBlocks is empty: only the VPC reaches the control plane, so pulumi and kubectl must run from inside it"))
				}
				for _, b := range blocks {
					if c, _ := asMap(b)["cidrBlock"].(string); worldOpen(c) {
						out = append(out, finding(r, "masterAuthorizedNetworksConfig authorizes %s: the control plane would be open to the Internet", c))
					}
				}
				if on, _ := boolAt(r, "masterAuthorizedNetworksConfig.gcpPublicCidrsAccessEnabled"); on {
					out = append(out, warning(r, "masterAuthorizedNetworksConfig.gcpPublicCidrsAccessEnabled is true: any Google Cloud public IP may reach the control plane"))
				}
				if loc := r.String("location"); ctx.production() && isZone(loc) {
					out = append(out, finding(r, "location %s is a zone: a production cluster is regional so that its control plane survives a zone outage", loc))
				}
			}
			return out
		},
	}
}

func nodePoolSpread() Policy {
	return Policy{
		Name: "node-pool-spread",
		Description: "every GKE node pool autoscales with at least one node per zone and spans at least 2 zones " +
			"(3 in production)",
		Severity: Error,
		Check: func(ctx Context, inv *inventory.Inventory) []Finding {
			minZones := 2
			if ctx.production() {
				minZones = 3
			}
			var out []Finding
			for _, r := range inv.OfType(nodePoolType) {
				zones, source := poolZones(inv, r)
				if zones < minZones {
					out = append(out, finding(r, "spans %d zone(s) (%s): %s pools need at least %d", zones, source, envName(ctx), minZones))
				}
				if _, ok := r.Get("autoscaling"); !ok {
					out = append(out, finding(r, "autoscaling is not set: the pool cannot grow with load or replace a lost zone's capacity"))
					continue
				}
				perZone, hasPerZone := number(mustGet(r, "autoscaling.minNodeCount"))
				total, hasTotal := number(mustGet(r, "autoscaling.totalMinNodeCount"))
				switch {
				case hasPerZone && perZone >= 1:
				case hasTotal && zones > 0 && total >= float64(zones):
				case hasTotal:
					out = append(out, finding(r, "autoscaling.totalMinNodeCount %v is below its %d zones: some zone could run no node", total, zones))
				default:
					out = append(out, finding(r, "autoscaling.minNodeCount is %v: keep at least 1 node per zone so that every zone can run pods", fmtNumber(perZone, hasPerZone)))
				}
			}
			return out
		},
	}
}

// poolZones counts the zones a node pool runs in: its own nodeLocations, else its cluster's, else GKE's default
// for the cluster's location.
func poolZones(inv *inventory.Inventory, pool inventory.Resource) (int, string) {
	if zs := pool.Strings("nodeLocations"); len(zs) > 0 {
		return len(zs), "nodeLocations"
	}
	clusterName := pool.String("cluster")
	for _, c := range inv.OfType(clusterType) {
		if c.String("name") != clusterName && c.Name != clusterName {
			continue
		}
		if zs := c.Strings("nodeLocations"); len(zs) > 0 {
			return len(zs), "the cluster's nodeLocations"
		}
		if loc := c.String("location"); loc != "" && !isZone(loc) {
			return regionalClusterZones, "GKE's default for a regional cluster"
		}
		return 1, "a zonal cluster"
	}
	if loc := pool.String("location"); isZone(loc) {
		return 1, "location " + loc
	}
	return 0, "no nodeLocations and no cluster in the inventory"
}

func envName(ctx Context) string {
	if ctx.production() {
		return Production
	}
	return Sandbox
}

func fmtNumber(v float64, ok bool) string {
	if !ok {
		return "unset"
	}
	return fmt.Sprint(v)
}
