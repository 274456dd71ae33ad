package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/omscloud/omscloud/components/gke"
	"github.com/omscloud/omscloud/components/internal/kube"
	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Edge providers.
const (
	GCP        = "gcp"
	Cloudflare = "cloudflare"
)

// Defaults.
const (
	// DefaultCloudflaredImage is the connector, pinned to a released version.
	DefaultCloudflaredImage = "cloudflare/cloudflared:2025.8.1"
	DefaultReplicas         = 2
	// DefaultMaxRatePerEndpoint is the requests per second the load balancer sends one runtime pod before spilling
	// over to others.
	DefaultMaxRatePerEndpoint = 100
	DefaultDrainingSec        = 30
	DefaultLogSampleRate      = 0.1
	// DefaultWAFSensitivity 1 is Cloud Armor's lowest-false-positive level of the preconfigured rules.
	DefaultWAFSensitivity   = 1
	DefaultRateLimitCount   = 600
	DefaultRateLimitSeconds = 60
	// NEGAnnotationKey is the Service annotation by which GKE creates standalone NEGs.
	NEGAnnotationKey = "cloud.google.com/neg"
	// nameMax keeps every derived name ("<Name>-cloudflared-token", "<Name>-<8 hex>") within its limit.
	nameMax = 30
	// recordTTL is Cloud DNS's default: also how long resolvers may keep the primary's address after a DR switch.
	recordTTL = 300
)

// DefaultStaticPaths are served through Cloud CDN.
var DefaultStaticPaths = []string{"/static/*"}

// Args configures the edge in front of the runtime's web Service.
type Args struct {
	// Name prefixes every resource ("oms-prod-us").
	Name    string
	Project string
	Region  string
	// Zones hold the runtime's pods; in gcp mode the backend has one NEG per zone.
	Zones []string
	// Provider is gcp (HTTPS load balancer, Cloud Armor, Cloud CDN) or cloudflare (Zero Trust tunnel, no public IP).
	Provider string
	// Hostnames served; the first is the primary (the Cloudflare load balancer's hostname).
	Hostnames []string
	// Labels are added to every GCP resource that takes labels and to every Kubernetes object.
	Labels     map[string]string
	Backend    BackendArgs
	GCP        GCPArgs
	Cloudflare CloudflareArgs
}

// BackendArgs locate the runtime's Services and pods.
type BackendArgs struct {
	// Namespace of the runtime (default "oms"); cloudflared runs there too.
	Namespace string
	// ServiceName is the runtime's public Service, port 80, which selects the active color: cloudflared's origin
	// (default ServiceName(Name)).
	ServiceName string
	// TargetPort is the container port behind the Services, i.e. the NEG endpoints' port (default 8080).
	TargetPort int
	// HealthPath answers 200 when a pod may take traffic (default "/readyz").
	HealthPath string
	// Colors are the runtime's blue-green colors by name (gcp; required there). Every color's NEGs are backends of
	// the load balancer at all times, so they stay health-checked; only ActiveColor's get capacity.
	Colors map[string]ColorBackend
	// ActiveColor is the color the load balancer sends traffic to (gcp; required there). Pass
	// omsruntime.Runtime.ActiveColorReady: it resolves only once the color's smoke test passed, so the switch of
	// capacity waits for it.
	ActiveColor pulumi.StringInput
	// PodSelector are the labels of the runtime's web pods; cloudflare mode lets cloudflared reach only them.
	PodSelector map[string]string
}

// ColorBackend is one color's Service, from whose cloud.google.com/neg annotation (NEGAnnotation) GKE creates the
// color's NEG in every zone.
type ColorBackend struct {
	// NEG is the NEG's name (default NEGName(Name, color)).
	NEG string
	// ServiceReady resolves once the color's Service exists and the Kubernetes provider has awaited it
	// (omsruntime.Runtime.ColorServicesReady); it is unknown in a preview that creates the Service. The NEG lookups
	// wait for it.
	ServiceReady pulumi.StringInput
}

// GCPArgs tune the HTTPS load balancer.
type GCPArgs struct {
	// Address is an existing global IPv4 address (e.g. a reserved DR address customers whitelist); when nil the
	// component reserves one.
	Address pulumi.StringInput
	// CertificateMap is an existing Certificate Manager map's id ("projects/<p>/locations/global/certificateMaps/<m>"),
	// e.g. the primary stack's for its DR environment: maps are global. The edge then declares no certificate, DNS
	// authorization, map or DNS record — the stack owning the map owns them — so DNS must be empty. When nil, the
	// edge declares them, in DNS.
	CertificateMap pulumi.StringInput
	// DNS is the Cloud DNS zone of the hostnames' records; required unless CertificateMap is given.
	DNS DNSArgs
	// ProtectAddress protects the address the component reserves, like the reserved DR address: customers
	// whitelist it, and a new one breaks every whitelist (production).
	ProtectAddress bool
	// MaxRatePerEndpoint is requests per second per pod (default 100).
	MaxRatePerEndpoint float64
	// DrainingSec lets in-flight requests finish on a removed endpoint (default 30).
	DrainingSec int
	// LogSampleRate is the fraction of requests logged, in (0, 1] (default 0.1).
	LogSampleRate float64
	// WAFSensitivity is the preconfigured rules' sensitivity, 1 (fewest false positives) to 4 (default 1).
	WAFSensitivity int
	RateLimit      RateLimitArgs
	// StaticPaths are URL map path patterns served with Cloud CDN (default ["/static/*"]).
	StaticPaths []string
}

// DNSArgs locate the Cloud DNS managed zone where the edge writes each hostname's A record and the CNAME of its
// certificate's DNS authorization.
type DNSArgs struct {
	// ManagedZone is the zone's name (e.g. "omscloud-example-com"), not its DNS name.
	ManagedZone string
	// Project holds the zone (default Project): it may be a shared DNS project.
	Project string
	// Target, when set, is the address the A records point at instead of the load balancer's: the reserved DR
	// address once DR is declared.
	Target pulumi.StringInput
}

// RateLimitArgs limit each client IP; beyond the limit Cloud Armor answers 429.
type RateLimitArgs struct {
	// Count requests per IntervalSec seconds (defaults 600 per 60).
	Count       int
	IntervalSec int
	// BanDurationSec > 0 bans a client exceeding the limit for that long (rate_based_ban); 0 throttles (throttle).
	BanDurationSec int
}

// CloudflareArgs configure the tunnel, its connector in the cluster and the Cloudflare load balancer.
type CloudflareArgs struct {
	// AccountID and ZoneID are required unless ConnectorOnly.
	AccountID string
	ZoneID    string
	// ConnectorOnly declares only cloudflared in the cluster, running TunnelToken: no tunnel, tunnel configuration,
	// DNS record, monitor, pool or load balancer, and so no Cloudflare provider. A DR environment uses it: the
	// primary stack owns the hostnames' records, the load balancer and the DR tunnel (components/dr).
	ConnectorOnly bool
	// TunnelToken (secret) is the token of a tunnel declared elsewhere (dr.DR.DRTunnelToken); required with
	// ConnectorOnly, refused without it (the edge then generates its own tunnel).
	TunnelToken pulumi.StringInput
	// Replicas of cloudflared, at least 2 (default 2; use 3 in production).
	Replicas int
	// Image is cloudflared pinned by version or digest (default DefaultCloudflaredImage).
	Image string
	// NodeSelector places cloudflared (default the GKE web pool).
	NodeSelector map[string]string
	// CheckRegions are the Cloudflare regions probing the pool (default derived from Region).
	CheckRegions []string
	// DRPoolIDs follow the primary pool in the load balancer's failover order (the DR pool of the DR issue).
	DRPoolIDs []pulumi.StringInput
	// NotificationEmail, when set, receives the pool's health notifications.
	NotificationEmail string
}

// ServiceName is the runtime's public Service.
func ServiceName(name string) string { return name + "-web" }

// NEGName is the standalone NEG a color's Service asks GKE to create in each zone.
func NEGName(name, color string) string { return name + "-web-" + color + "-neg" }

// NEGAnnotation is the value of the cloud.google.com/neg annotation on a color's Service, so that the NEG names the
// load balancer references are exactly those GKE creates.
func NEGAnnotation(name, color string) string {
	b, _ := json.Marshal(map[string]any{
		"exposed_ports": map[string]any{strconv.Itoa(omsruntime.ServicePort): map[string]string{"name": NEGName(name, color)}},
	})
	return string(b)
}

// ConnectorSelector are the labels of the cloudflared pods; the runtime's NetworkPolicy admits them.
func ConnectorSelector(name string) map[string]string {
	sel, _ := kube.Labels("cloudflared", name, "edge", nil)
	return sel
}

// withDefaults returns a copy with every unset option at its production default.
func (a Args) withDefaults() Args {
	b := &a.Backend
	if b.Namespace == "" {
		b.Namespace = omsruntime.DefaultNamespace
	}
	if b.ServiceName == "" {
		b.ServiceName = ServiceName(a.Name)
	}
	if b.TargetPort == 0 {
		b.TargetPort = omsruntime.Port
	}
	if b.HealthPath == "" {
		b.HealthPath = omsruntime.ReadyPath
	}
	colors := make(map[string]ColorBackend, len(b.Colors))
	for color, c := range b.Colors {
		if c.NEG == "" {
			c.NEG = NEGName(a.Name, color)
		}
		colors[color] = c
	}
	b.Colors = colors
	g := &a.GCP
	if g.DNS.Project == "" && g.CertificateMap == nil {
		g.DNS.Project = a.Project
	}
	if g.MaxRatePerEndpoint == 0 {
		g.MaxRatePerEndpoint = DefaultMaxRatePerEndpoint
	}
	if g.DrainingSec == 0 {
		g.DrainingSec = DefaultDrainingSec
	}
	if g.LogSampleRate == 0 {
		g.LogSampleRate = DefaultLogSampleRate
	}
	if g.WAFSensitivity == 0 {
		g.WAFSensitivity = DefaultWAFSensitivity
	}
	if g.RateLimit.Count == 0 {
		g.RateLimit.Count = DefaultRateLimitCount
	}
	if g.RateLimit.IntervalSec == 0 {
		g.RateLimit.IntervalSec = DefaultRateLimitSeconds
	}
	if len(g.StaticPaths) == 0 {
		g.StaticPaths = DefaultStaticPaths
	}
	c := &a.Cloudflare
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.Image == "" {
		c.Image = DefaultCloudflaredImage
	}
	if c.NodeSelector == nil {
		c.NodeSelector = map[string]string{gke.PoolLabel: gke.WebPool}
	}
	if len(c.CheckRegions) == 0 {
		c.CheckRegions = checkRegions(a.Region)
	}
	return a
}

var (
	hostnamePattern = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z][-a-z0-9]{0,61}[a-z0-9]$`)
	cloudflareID    = regexp.MustCompile(`^[0-9a-f]{32}$`)
	staticPath      = regexp.MustCompile(`^/[-A-Za-z0-9._~/]*(/\*)?$`)
	negName         = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
	// Cloud Armor accepts only these rate-limit intervals.
	rateIntervals = []int{10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600}
	// Cloudflare load-balancing region codes.
	cloudflareRegions = []string{"WNAM", "ENAM", "WEU", "EEU", "NSAM", "SSAM", "OC", "ME", "NAF", "SAF", "SAS", "SEAS", "NEAS", "ALL_REGIONS"}
)

// checkRegions maps a GCP region to the Cloudflare region nearest to it, where the pool's health probes run.
func checkRegions(gcpRegion string) []string {
	for _, m := range []struct{ prefix, region string }{
		{"us-west", "WNAM"}, {"northamerica-northeast", "ENAM"}, {"us-", "ENAM"}, {"northamerica-south", "ENAM"},
		{"europe-west", "WEU"}, {"europe-southwest", "WEU"}, {"europe-", "EEU"}, {"australia-", "OC"},
		{"asia-southeast", "SEAS"}, {"asia-south", "SAS"}, {"asia-", "NEAS"}, {"southamerica-", "SSAM"},
		{"me-", "ME"}, {"africa-", "SAF"},
	} {
		if strings.HasPrefix(gcpRegion, m.prefix) {
			return []string{m.region}
		}
	}
	return nil
}

// Validate reports every problem of the arguments (after defaults), naming the field and the fix.
func (a *Args) Validate() error {
	d := a.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := kube.ValidateName("Name", d.Name, nameMax); err != nil {
		errs = append(errs, err)
	}
	switch d.Provider {
	case GCP:
		errs = append(errs, d.validateGCP()...)
	case Cloudflare:
		errs = append(errs, d.validateCloudflare()...)
	default:
		add("Provider %q: use %q (HTTPS load balancer, Cloud Armor, Cloud CDN) or %q (Zero Trust tunnel, no public IP)", d.Provider, GCP, Cloudflare)
	}
	if len(d.Hostnames) == 0 {
		add("Hostnames is empty: give at least one DNS name to serve, e.g. api.us.omscloud.example.com")
	}
	seen := map[string]bool{}
	for i, h := range d.Hostnames {
		if !hostnamePattern.MatchString(h) {
			add("Hostnames[%d] %q is not a lowercase DNS name (no wildcard: each hostname gets its own record and certificate)", i, h)
		}
		if seen[h] {
			add("Hostnames[%d] %q is listed twice", i, h)
		}
		seen[h] = true
	}
	if err := kube.ValidateNamespace("Backend.Namespace", d.Backend.Namespace); err != nil {
		errs = append(errs, err)
	}
	if err := kube.ValidateName("Backend.ServiceName", d.Backend.ServiceName, 63); err != nil {
		errs = append(errs, err)
	}
	if d.Backend.TargetPort < 1 || d.Backend.TargetPort > 65535 {
		add("Backend.TargetPort %d is not a port: use the runtime's container port (8080)", d.Backend.TargetPort)
	}
	if !strings.HasPrefix(d.Backend.HealthPath, "/") {
		add("Backend.HealthPath %q must be an absolute path such as /readyz", d.Backend.HealthPath)
	}
	errs = append(errs, kube.ValidateLabels("Labels", d.Labels)...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	return nil
}

func (a *Args) validateGCP() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if a.Project == "" || a.Region == "" {
		add("Project and Region are required in gcp mode: the NEGs are named by project and zone")
	}
	if len(a.Zones) < 2 {
		add("Zones has %d zone(s): the backend needs the NEGs of at least 2 zones so that losing one zone keeps serving", len(a.Zones))
	}
	for i, z := range a.Zones {
		if !strings.HasPrefix(z, a.Region+"-") {
			add("Zones[%d] %q is not a zone of Region %q", i, z, a.Region)
		}
	}
	if len(a.Backend.Colors) == 0 {
		add("Backend.Colors is empty: give the runtime's colors (each color's Service carries NEGAnnotation), so that each has NEGs behind the load balancer")
	}
	for _, color := range slices.Sorted(maps.Keys(a.Backend.Colors)) {
		c := a.Backend.Colors[color]
		if !negName.MatchString(c.NEG) {
			add("Backend.Colors[%q].NEG %q must be a NEG name: 1..63 lowercase letters, digits and '-', starting with a letter", color, c.NEG)
		}
		if c.ServiceReady == nil {
			add("Backend.Colors[%q].ServiceReady is required: pass omsruntime.Runtime.ColorServicesReady[%q], so that the NEGs are looked up only once GKE can have created them", color, color)
		}
	}
	if a.Backend.ActiveColor == nil {
		add("Backend.ActiveColor is required in gcp mode: pass omsruntime.Runtime.ActiveColorReady, so that the load balancer moves to a color only after its smoke test")
	}
	errs = append(errs, a.validateDNS()...)
	g := a.GCP
	if g.MaxRatePerEndpoint <= 0 {
		add("GCP.MaxRatePerEndpoint %g must be positive (requests per second per pod)", g.MaxRatePerEndpoint)
	}
	if g.DrainingSec < 0 || g.DrainingSec > 3600 {
		add("GCP.DrainingSec %d: use 0..3600 seconds", g.DrainingSec)
	}
	if g.LogSampleRate <= 0 || g.LogSampleRate > 1 {
		add("GCP.LogSampleRate %g: use a fraction in (0, 1]", g.LogSampleRate)
	}
	if g.WAFSensitivity < 1 || g.WAFSensitivity > 4 {
		add("GCP.WAFSensitivity %d: use 1 (fewest false positives) to 4", g.WAFSensitivity)
	}
	if g.RateLimit.Count < 1 {
		add("GCP.RateLimit.Count %d must be at least 1 request", g.RateLimit.Count)
	}
	if !slices.Contains(rateIntervals, g.RateLimit.IntervalSec) {
		add("GCP.RateLimit.IntervalSec %d: Cloud Armor accepts %v", g.RateLimit.IntervalSec, rateIntervals)
	}
	if g.RateLimit.BanDurationSec < 0 {
		add("GCP.RateLimit.BanDurationSec %d: use 0 to throttle or a positive ban duration", g.RateLimit.BanDurationSec)
	}
	for i, p := range g.StaticPaths {
		if !staticPath.MatchString(p) {
			add("GCP.StaticPaths[%d] %q: use an absolute path, optionally ending in /* (e.g. /static/*)", i, p)
		}
	}
	return errs
}

// validateDNS checks that exactly one stack owns the certificates and records: the one with a DNS zone.
func (a *Args) validateDNS() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	d := a.GCP.DNS
	if a.GCP.CertificateMap != nil {
		if d.ManagedZone != "" || d.Project != "" || d.Target != nil {
			add("GCP.DNS is set with GCP.CertificateMap: the stack that owns the certificate map owns the hostnames' records; leave GCP.DNS empty")
		}
		return errs
	}
	if d.ManagedZone == "" {
		add("GCP.DNS.ManagedZone is required: the Cloud DNS zone (its name, e.g. omscloud-example-com) that serves the hostnames, where the edge writes their A records and certificate authorizations; or pass GCP.CertificateMap to serve another stack's certificates")
	}
	return errs
}

func (a *Args) validateCloudflare() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	c := a.Cloudflare
	if c.ConnectorOnly {
		if c.TunnelToken == nil {
			add("Cloudflare.TunnelToken is required with Cloudflare.ConnectorOnly: pass the existing tunnel's token (secret), e.g. the primary stack's drTunnelToken output")
		}
		if len(c.DRPoolIDs) > 0 {
			add("Cloudflare.DRPoolIDs is set with Cloudflare.ConnectorOnly, which declares no load balancer: leave it empty (the primary's load balancer lists the DR pool)")
		}
	} else {
		if c.TunnelToken != nil {
			add("Cloudflare.TunnelToken is set without Cloudflare.ConnectorOnly: the edge generates its own tunnel and token; set ConnectorOnly to run the connector of an existing tunnel")
		}
		if !cloudflareID.MatchString(c.AccountID) {
			add("Cloudflare.AccountID %q is not a Cloudflare account id (32 hex characters, from the dashboard's overview page)", c.AccountID)
		}
		if !cloudflareID.MatchString(c.ZoneID) {
			add("Cloudflare.ZoneID %q is not a Cloudflare zone id (32 hex characters, from the zone's overview page)", c.ZoneID)
		}
		errs = append(errs, a.validateLoadBalancer()...)
	}
	if c.Replicas < 2 {
		add("Cloudflare.Replicas is %d: run at least 2 cloudflared replicas (3 in production) so one zone or node can fail", c.Replicas)
	}
	if err := kube.ValidateImage("Cloudflare.Image", c.Image); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, kube.ValidateLabels("Cloudflare.NodeSelector", c.NodeSelector)...)
	for _, err := range kube.ValidateSelector("Backend.PodSelector", a.Backend.PodSelector) {
		errs = append(errs, fmt.Errorf("%w (cloudflared may reach only the runtime's web pods)", err))
	}
	return errs
}

// validateLoadBalancer checks what only the pool and the load balancer use (not declared with ConnectorOnly).
func (a *Args) validateLoadBalancer() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	c := a.Cloudflare
	if len(c.CheckRegions) == 0 {
		add("Cloudflare.CheckRegions is empty and Region %q has no default: set Cloudflare regions from %v", a.Region, cloudflareRegions)
	}
	for i, r := range c.CheckRegions {
		if !slices.Contains(cloudflareRegions, r) {
			add("Cloudflare.CheckRegions[%d] %q: use one of %v", i, r, cloudflareRegions)
		}
	}
	for i, id := range c.DRPoolIDs {
		if id == nil {
			add("Cloudflare.DRPoolIDs[%d] is nil: pass the DR pool's id output", i)
		}
	}
	return errs
}
