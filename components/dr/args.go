package dr

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/omscloud/omscloud/components/edge"
	"github.com/omscloud/omscloud/components/internal/kube"
	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/regions"
)

// Defaults.
const (
	nameMax = 30
	// maxEgressAddresses bounds the reserved NAT addresses (Cloud NAT takes many more, customers whitelist few).
	maxEgressAddresses = 8
)

// Args configures what exists of the cold DR site before DR is declared: addresses customers whitelist and, in
// cloudflare mode, the DR tunnel and its disabled pool. Nothing runs.
type Args struct {
	// Name prefixes every resource ("oms-prod-eu").
	Name    string
	Project string
	// Region is the primary GCP region; DRRegion the cold DR site (regions.Region.DR.GCPRegion).
	Region   string
	DRRegion string
	// AllowCrossBorder acknowledges a DR site outside the jurisdiction (regions.Region.DRCrossBorder).
	AllowCrossBorder bool
	// Edge is the stack's edge mode: gcp (reserve the DR load balancer's global IP) or cloudflare (DR tunnel and
	// pool; no IP).
	Edge string
	// EgressAddresses reserves this many regional external IPs in DR region for the DR environment's Cloud NAT,
	// for customers that whitelist the platform's outbound calls (webhooks). Default 0.
	EgressAddresses int
	// DeletionProtection protects the reserved addresses and the DR tunnel: a new IP breaks every whitelist.
	DeletionProtection bool
	// Active declares DR; set it once the DR environment answers /readyz, clear it to fail back. Cloudflare edge:
	// it enables the DR pool. GCP edge: nothing here changes; the environment points the edge's A records at
	// DRIPAddress (components/environment).
	Active bool
	// DROrigin is where the DR tunnel sends traffic: the DR environment's runtime Service, whose name prefix is
	// "<Name>-dr" (cloudflare edge; default "http://<Name>-dr-web.<Cloudflare.Namespace>.svc.cluster.local:80").
	DROrigin   string
	Labels     map[string]string
	Cloudflare CloudflareArgs
}

// CloudflareArgs describe the DR tunnel and pool (cloudflare mode).
type CloudflareArgs struct {
	AccountID string
	// Hostnames the DR tunnel will serve: the primary edge's (the first is the pool's Host header).
	Hostnames []string
	// HealthPath answers 200 when the DR runtime may take traffic (default "/readyz"). The DR pool has its own
	// monitor, so the component needs nothing from the primary edge, whose load balancer lists the DR pool.
	HealthPath string
	// Namespace of the DR environment's runtime (default "oms").
	Namespace string
	// CheckRegions are the Cloudflare regions probing the pool once enabled (default: every data center).
	CheckRegions []string
	// NotificationEmail, when set, receives the DR pool's health notifications.
	NotificationEmail string
}

var (
	cloudflareID    = regexp.MustCompile(`^[0-9a-f]{32}$`)
	hostnamePattern = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z][-a-z0-9]{0,61}[a-z0-9]$`)
	cloudflareRegs  = []string{"WNAM", "ENAM", "WEU", "EEU", "NSAM", "SSAM", "OC", "ME", "NAF", "SAF", "SAS", "SEAS", "NEAS", "ALL_REGIONS"}
)

// DefaultDROrigin is the DR environment's runtime Service: the DR spin-up names everything "<name>-dr", so the
// Service is "<name>-dr-web" (edge.ServiceName of the DR prefix).
func DefaultDROrigin(name, namespace string) string {
	return fmt.Sprintf("http://%s:%d", kube.ServiceFQDN(name+"-dr-web", namespace), omsruntime.ServicePort)
}

func (a Args) withDefaults() Args {
	c := &a.Cloudflare
	if c.Namespace == "" {
		c.Namespace = omsruntime.DefaultNamespace
	}
	if c.HealthPath == "" {
		c.HealthPath = omsruntime.ReadyPath
	}
	if a.DROrigin == "" {
		a.DROrigin = DefaultDROrigin(a.Name, c.Namespace)
	}
	return a
}

// Validate reports every problem of the arguments (after defaults), naming the field and the fix.
func (a *Args) Validate() error {
	d := a.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := kube.ValidateName("Name", d.Name, nameMax); err != nil {
		errs = append(errs, err)
	}
	if d.Project == "" {
		add("Project is required")
	}
	primary, okPrimary := regions.JurisdictionOf(d.Region)
	if !okPrimary {
		add("Region %q is not a GCP region omscloud knows: use one of %s", d.Region, strings.Join(regions.KnownGCPRegions(), ", "))
	}
	site, okDR := regions.JurisdictionOf(d.DRRegion)
	switch {
	case d.DRRegion == "":
		add("DRRegion is required: the cold DR site (regions.Region.DR.GCPRegion)")
	case !okDR:
		add("DRRegion %q is not a GCP region omscloud knows", d.DRRegion)
	case d.DRRegion == d.Region:
		add("DRRegion %q is the primary region: the DR site must survive the region's loss", d.DRRegion)
	case okPrimary && site != primary && !d.AllowCrossBorder:
		add("DRRegion %q is in %s, outside %s: choose a DR region in the jurisdiction, or set AllowCrossBorder where the stack acknowledges it", d.DRRegion, site, primary)
	}
	if d.EgressAddresses < 0 || d.EgressAddresses > maxEgressAddresses {
		add("EgressAddresses is %d: reserve 0 to %d", d.EgressAddresses, maxEgressAddresses)
	}
	switch d.Edge {
	case edge.GCP:
	case edge.Cloudflare:
		errs = append(errs, d.validateCloudflare()...)
	default:
		add("Edge %q: use %q (reserve the DR load balancer's IP) or %q (DR tunnel and pool)", d.Edge, edge.GCP, edge.Cloudflare)
	}
	errs = append(errs, kube.ValidateLabels("Labels", d.Labels)...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dr: %w", err)
	}
	return nil
}

func (a *Args) validateCloudflare() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	c := a.Cloudflare
	if !cloudflareID.MatchString(c.AccountID) {
		add("Cloudflare.AccountID %q is not a Cloudflare account id (32 hex characters)", c.AccountID)
	}
	if len(c.Hostnames) == 0 {
		add("Cloudflare.Hostnames is empty: give the hostnames the primary edge serves")
	}
	for i, h := range c.Hostnames {
		if !hostnamePattern.MatchString(h) {
			add("Cloudflare.Hostnames[%d] %q is not a lowercase DNS name", i, h)
		}
	}
	if !strings.HasPrefix(c.HealthPath, "/") {
		add("Cloudflare.HealthPath %q must be an absolute path such as /readyz", c.HealthPath)
	}
	if !strings.HasPrefix(a.DROrigin, "http://") && !strings.HasPrefix(a.DROrigin, "https://") {
		add("DROrigin %q must be an http(s) URL of the DR environment's runtime Service, e.g. %s", a.DROrigin, DefaultDROrigin(a.Name, c.Namespace))
	}
	if err := kube.ValidateNamespace("Cloudflare.Namespace", c.Namespace); err != nil {
		errs = append(errs, err)
	}
	for i, r := range c.CheckRegions {
		if !slices.Contains(cloudflareRegs, r) {
			add("Cloudflare.CheckRegions[%d] %q: use one of %v", i, r, cloudflareRegs)
		}
	}
	return errs
}
