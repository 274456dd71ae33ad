package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/omscloud/omscloud/inventory"
)

// EdgeCloudflare is the edge mode in which traffic arrives only through a Cloudflare tunnel.
const EdgeCloudflare = "cloudflare"

func edgeNoPublicIP() Policy {
	return Policy{
		Name: "edge-no-public-ip",
		Description: "in cloudflare edge mode nothing offers a public entry point: no external global address, no " +
			"global forwarding rule, no external regional forwarding rule, no public LoadBalancer Service or external " +
			"Ingress (Private Service Access ranges are internal and fine)",
		Severity: Error,
		Check: func(ctx Context, inv *inventory.Inventory) []Finding {
			if ctx.Edge != EdgeCloudflare {
				return nil
			}
			const why = "in cloudflare mode traffic arrives only through the tunnel"
			var out []Finding
			for _, r := range inv.Resources {
				switch {
				case r.Type == "gcp:compute/globalAddress:GlobalAddress":
					// addressType defaults to EXTERNAL.
					if t := r.String("addressType"); t == "" || t == "EXTERNAL" {
						out = append(out, finding(r, "reserves an external global IP address (addressType %s): %s", orUnset(t), why))
					}
				case r.Type == "gcp:compute/globalForwardingRule:GlobalForwardingRule":
					out = append(out, finding(r, "is a global forwarding rule (a load balancer front end): %s", why))
				case r.Type == "gcp:compute/forwardingRule:ForwardingRule":
					// loadBalancingScheme defaults to EXTERNAL.
					if s := r.String("loadBalancingScheme"); s == "" || strings.HasPrefix(s, "EXTERNAL") {
						out = append(out, finding(r, "is an external forwarding rule (loadBalancingScheme %s): %s", orUnset(s), why))
					}
				case isKind(r, "Service"):
					if r.String("spec.type") == "LoadBalancer" && !internalLB(stringMap(mustGet(r, "metadata.annotations"))) {
						out = append(out, finding(r, "is a LoadBalancer Service without the networking.gke.io/load-balancer-type: Internal annotation, which gets a public IP: %s", why))
					}
				case isKind(r, "Ingress"):
					class := r.String("spec.ingressClassName")
					if class == "" {
						class = stringMap(mustGet(r, "metadata.annotations"))["kubernetes.io/ingress.class"]
					}
					if class != "gce-internal" {
						out = append(out, finding(r, "is an Ingress of class %q, which GKE serves from an external load balancer: %s", orUnset(class), why))
					}
				}
			}
			return out
		},
	}
}

func internalLB(annotations map[string]string) bool {
	return strings.EqualFold(annotations["networking.gke.io/load-balancer-type"], "Internal") ||
		strings.EqualFold(annotations["cloud.google.com/load-balancer-type"], "Internal")
}

// locationField is an input naming where a resource, or a copy of its data, lives.
type locationField struct {
	path string
	list bool
}

// locationFields are the inputs of GCP resources that place data: the resource itself, its zones, its backups and
// its replicas.
var locationFields = []locationField{
	{path: "region"}, {path: "location"}, {path: "zone"}, {path: "nodeLocations", list: true},
	{path: "settings.locationPreference.zone"}, {path: "settings.locationPreference.secondaryZone"},
	{path: "settings.backupConfiguration.location"},
	{path: "customPlacementConfig.dataLocations", list: true},
}

// placedAt lists the locations of a GCP resource: each with the input it came from.
func placedAt(r inventory.Resource) [][2]string {
	var out [][2]string
	for _, f := range locationFields {
		if f.list {
			for i, l := range r.Strings(f.path) {
				out = append(out, [2]string{fmt.Sprintf("%s[%d]", f.path, i), l})
			}
		} else if l := r.String(f.path); l != "" {
			out = append(out, [2]string{f.path, l})
		}
	}
	for i, rep := range asList(mustGet(r, "replication.userManaged.replicas")) {
		if l, _ := asMap(rep)["location"].(string); l != "" {
			out = append(out, [2]string{fmt.Sprintf("replication.userManaged.replicas[%d].location", i), l})
		}
	}
	return out
}

// placesData reports whether a type is one whose locations the residency rules govern. An IAM grant stores nothing:
// its location names the resource it grants on, such as the release registry the nodes pull from.
func placesData(typ string) bool {
	return (strings.HasPrefix(typ, "gcp:") || typ == "pulumi:providers:gcp") && !iamGrant.MatchString(typ)
}

var iamGrant = regexp.MustCompile(`(?i)iam(member|binding|policy)$`)

// inRegion reports whether a location is the region or one of its zones.
func inRegion(location, region string) bool {
	return region != "" && (location == region || isZone(location) && strings.HasPrefix(location, region+"-"))
}

func residency() Policy {
	return Policy{
		Name: "residency",
		Description: "every GCP location in the stack (resources, zones, backups, replicas) is the primary region, the " +
			"DR region, global, or an allowed jurisdiction location such as the \"us\"/\"eu\" multi-region",
		Severity: Error,
		Check: func(ctx Context, inv *inventory.Inventory) []Finding {
			if ctx.PrimaryRegion == "" {
				return []Finding{{Resource: inv.Stack, Type: "stack", Message: "policy context has no PrimaryRegion: residency cannot be checked"}}
			}
			allowed := func(l string) bool {
				l = strings.ToLower(l)
				return !known(l) || l == "global" || inRegion(l, ctx.PrimaryRegion) || inRegion(l, ctx.DRRegion) ||
					slices.ContainsFunc(ctx.AllowedLocations, func(a string) bool { return strings.EqualFold(a, l) })
			}
			var places []string
			for _, l := range append([]string{ctx.PrimaryRegion, ctx.DRRegion, "global"}, ctx.AllowedLocations...) {
				if l != "" && !slices.Contains(places, l) {
					places = append(places, l)
				}
			}
			permitted := strings.Join(places, ", ")
			var out []Finding
			for _, r := range inv.Resources {
				if !placesData(r.Type) {
					continue
				}
				for _, pl := range placedAt(r) {
					if !allowed(pl[1]) {
						out = append(out, finding(r, "%s is %s: outside the stack's jurisdiction locations (%s)", pl[0], pl[1], permitted))
					}
				}
				if _, auto := r.Get("replication.auto"); auto && r.Type == "gcp:secretmanager/secret:Secret" {
					out = append(out, warning(r, "replication.auto lets Google choose where the secret is stored: use replication.userManaged with replicas in %s", ctx.PrimaryRegion))
				}
			}
			return out
		},
	}
}

// drResidentTypes may live in the DR region before DR is declared: backup copies, the keys encrypting them, the
// reserved IP customers whitelist, and the provider that creates them.
var drResidentTypes = []string{
	"gcp:storage/bucket:Bucket", "gcp:kms/keyRing:KeyRing", "gcp:kms/cryptoKey:CryptoKey",
	"gcp:compute/address:Address", "pulumi:providers:gcp",
}

func drRegionCold() Policy {
	return Policy{
		Name: "dr-region-cold",
		Description: "nothing runs in the cold DR region before DR is declared: only backup buckets, their KMS keys and " +
			"reserved IP addresses live there (backup locations and secret replicas may point at it)",
		Severity: Error,
		Check: func(ctx Context, inv *inventory.Inventory) []Finding {
			if ctx.DRRegion == "" || ctx.DRRegion == ctx.PrimaryRegion {
				return nil // no DR site, or a DR spin-up stack running in it
			}
			var out []Finding
			for _, r := range inv.Resources {
				if !placesData(r.Type) || slices.Contains(drResidentTypes, r.Type) {
					continue
				}
				for _, pl := range placedAt(r) {
					if strings.HasSuffix(pl[0], "backupConfiguration.location") || strings.HasPrefix(pl[0], "replication.") {
						continue // a copy of data, not something running
					}
					if inRegion(strings.ToLower(pl[1]), ctx.DRRegion) {
						out = append(out, finding(r, "%s is %s, the cold DR region: only backup copies, their keys and reserved IPs may live there until DR is declared", pl[0], pl[1]))
					}
				}
			}
			return out
		},
	}
}
