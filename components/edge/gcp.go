package edge

import (
	"fmt"
	"maps"
	"slices"

	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/compute"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// WAFRules are the Cloud Armor preconfigured rule sets the policy denies with 403, in priority order.
var WAFRules = []string{
	"sqli-v33-stable", "xss-v33-stable", "lfi-v33-stable", "rfi-v33-stable", "rce-v33-stable",
	"scannerdetection-v33-stable", "protocolattack-v33-stable", "sessionfixation-v33-stable",
}

// LoadBalancerSourceRanges are where the load balancer's proxies and health checks reach the NEG endpoints from; the
// runtime's NetworkPolicy admits them on the container port in gcp mode.
var LoadBalancerSourceRanges = []string{"35.191.0.0/16", "130.211.0.0/22"}

// Cloud Armor rule priorities: WAF denials are evaluated before the rate limit, whose conform action allows.
const (
	wafPriority       = 1000
	rateLimitPriority = 9000
	defaultPriority   = 2147483647
)

// scheme is the global external Application Load Balancer (Envoy-based).
const scheme = "EXTERNAL_MANAGED"

func newGCP(ctx *pulumi.Context, name string, a *Args, e *Edge, opts []pulumi.ResourceOption) error {
	project := pulumi.String(a.Project)
	labels := pulumi.ToStringMap(a.Labels)

	address := a.GCP.Address
	if address == nil {
		ip, err := compute.NewGlobalAddress(ctx, name+"-ip", &compute.GlobalAddressArgs{
			Project:     project,
			Name:        pulumi.String(a.Name + "-ip"),
			AddressType: pulumi.String("EXTERNAL"),
			IpVersion:   pulumi.String("IPV4"),
			Description: pulumi.String("public entry point of " + a.Name),
			Labels:      labels,
		}, append(opts, pulumi.Protect(a.GCP.ProtectAddress))...)
		if err != nil {
			return fmt.Errorf("address: %w", err)
		}
		address = ip.Address
	}

	certMap := a.GCP.CertificateMap
	if certMap == nil {
		id, err := certificates(ctx, name, a, opts)
		if err != nil {
			return err
		}
		certMap = id
	}
	tls, err := compute.NewSSLPolicy(ctx, name+"-tls", &compute.SSLPolicyArgs{
		Project:       project,
		Name:          pulumi.String(a.Name + "-tls"),
		Profile:       pulumi.String("MODERN"),
		MinTlsVersion: pulumi.String("TLS_1_2"),
	}, opts...)
	if err != nil {
		return fmt.Errorf("ssl policy: %w", err)
	}

	armor, err := compute.NewSecurityPolicy(ctx, name+"-armor", &compute.SecurityPolicyArgs{
		Project:     project,
		Name:        pulumi.String(a.Name + "-armor"),
		Description: pulumi.String("WAF, per-client rate limit and adaptive protection for " + a.Name),
		Type:        pulumi.String("CLOUD_ARMOR"),
		Rules:       armorRules(a.GCP),
		AdaptiveProtectionConfig: compute.SecurityPolicyAdaptiveProtectionConfigArgs{
			Layer7DdosDefenseConfig: compute.SecurityPolicyAdaptiveProtectionConfigLayer7DdosDefenseConfigArgs{
				Enable:         pulumi.Bool(true),
				RuleVisibility: pulumi.String("STANDARD"),
			},
		},
		// The API speaks JSON: parse bodies so the WAF rules inspect their fields, not an opaque blob.
		AdvancedOptionsConfig: compute.SecurityPolicyAdvancedOptionsConfigArgs{
			JsonParsing: pulumi.String("STANDARD"),
			LogLevel:    pulumi.String("NORMAL"),
		},
	}, opts...)
	if err != nil {
		return fmt.Errorf("security policy: %w", err)
	}

	health, err := compute.NewHealthCheck(ctx, name+"-readyz", &compute.HealthCheckArgs{
		Project:     project,
		Name:        pulumi.String(a.Name + "-readyz"),
		Description: pulumi.String("runtime pods ready to take traffic"),
		HttpHealthCheck: compute.HealthCheckHttpHealthCheckArgs{
			// The NEG endpoints are pod IP:containerPort, so the check targets the container port.
			Port:        pulumi.Int(a.Backend.TargetPort),
			RequestPath: pulumi.String(a.Backend.HealthPath),
		},
		CheckIntervalSec:   pulumi.Int(5),
		TimeoutSec:         pulumi.Int(5),
		HealthyThreshold:   pulumi.Int(2),
		UnhealthyThreshold: pulumi.Int(2),
		LogConfig:          compute.HealthCheckLogConfigArgs{Enable: pulumi.Bool(true)},
	}, opts...)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}

	// Blue-green: every color's NEGs stay backends, so the health check keeps probing the idle color's pods, and
	// only the active color has capacity (capacityScaler 1; 0 drains a backend, which then gets no new requests:
	// https://cloud.google.com/compute/docs/reference/rest/v1/backendServices, Backend.capacityScaler). A switch is
	// one update of these scalers, to endpoints that are already healthy at the load balancer; moving one Service's
	// selector instead would swap every NEG endpoint for new ones that start unhealthy.
	backends := compute.BackendServiceBackendArray{}
	colors := slices.Sorted(maps.Keys(a.Backend.Colors))
	links := map[string][]pulumi.StringOutput{}
	for _, color := range colors {
		links[color] = lookupNEGs(ctx, a, color, e)
	}
	for i := range a.Zones {
		for _, color := range colors {
			backends = append(backends, compute.BackendServiceBackendArgs{
				Group:              links[color][i],
				BalancingMode:      pulumi.String("RATE"),
				MaxRatePerEndpoint: pulumi.Float64(a.GCP.MaxRatePerEndpoint),
				CapacityScaler:     capacityOf(a.Backend.ActiveColor, color, colors),
			})
		}
	}
	backendService := func(suffix, description string, cdn compute.BackendServiceCdnPolicyPtrInput) (*compute.BackendService, error) {
		return compute.NewBackendService(ctx, name+"-"+suffix, &compute.BackendServiceArgs{
			Project:                      project,
			Name:                         pulumi.String(a.Name + "-" + suffix),
			Description:                  pulumi.String(description),
			Protocol:                     pulumi.String("HTTP"),
			LoadBalancingScheme:          pulumi.String(scheme),
			Backends:                     backends,
			HealthChecks:                 health.SelfLink,
			SecurityPolicy:               armor.SelfLink,
			ConnectionDrainingTimeoutSec: pulumi.Int(a.GCP.DrainingSec),
			TimeoutSec:                   pulumi.Int(30),
			EnableCdn:                    pulumi.Bool(cdn != nil),
			CdnPolicy:                    cdn,
			LogConfig: compute.BackendServiceLogConfigArgs{
				Enable:     pulumi.Bool(true),
				SampleRate: pulumi.Float64(a.GCP.LogSampleRate),
			},
		}, opts...)
	}
	api, err := backendService("api", "runtime API; never cached", nil)
	if err != nil {
		return fmt.Errorf("api backend: %w", err)
	}
	static, err := backendService("static", "runtime static assets through Cloud CDN", compute.BackendServiceCdnPolicyArgs{
		// Only responses that are static by content type or Cache-Control are cached.
		CacheMode:       pulumi.String("CACHE_ALL_STATIC"),
		DefaultTtl:      pulumi.Int(3600),
		ClientTtl:       pulumi.Int(3600),
		MaxTtl:          pulumi.Int(86400),
		ServeWhileStale: pulumi.Int(86400),
		NegativeCaching: pulumi.Bool(true),
		CacheKeyPolicy: compute.BackendServiceCdnPolicyCacheKeyPolicyArgs{
			IncludeHost:        pulumi.Bool(true),
			IncludeProtocol:    pulumi.Bool(true),
			IncludeQueryString: pulumi.Bool(true),
		},
	})
	if err != nil {
		return fmt.Errorf("static backend: %w", err)
	}

	urlMap, err := compute.NewURLMap(ctx, name+"-https", &compute.URLMapArgs{
		Project:        project,
		Name:           pulumi.String(a.Name + "-https"),
		Description:    pulumi.String("static paths through Cloud CDN, everything else to the API"),
		DefaultService: api.SelfLink,
		HostRules: compute.URLMapHostRuleArray{compute.URLMapHostRuleArgs{
			Hosts:       pulumi.ToStringArray(a.Hostnames),
			PathMatcher: pulumi.String("oms"),
		}},
		PathMatchers: compute.URLMapPathMatcherArray{compute.URLMapPathMatcherArgs{
			Name:           pulumi.String("oms"),
			DefaultService: api.SelfLink,
			PathRules: compute.URLMapPathMatcherPathRuleArray{compute.URLMapPathMatcherPathRuleArgs{
				Paths:   pulumi.ToStringArray(a.GCP.StaticPaths),
				Service: static.SelfLink,
			}},
		}},
	}, opts...)
	if err != nil {
		return fmt.Errorf("url map: %w", err)
	}
	httpsProxy, err := compute.NewTargetHttpsProxy(ctx, name+"-https", &compute.TargetHttpsProxyArgs{
		Project:        project,
		Name:           pulumi.String(a.Name + "-https"),
		UrlMap:         urlMap.SelfLink,
		CertificateMap: certificateMapURI(certMap),
		SslPolicy:      tls.SelfLink,
	}, opts...)
	if err != nil {
		return fmt.Errorf("https proxy: %w", err)
	}
	if _, err := forwardingRule(ctx, name, "https", a, address, "443", httpsProxy.SelfLink, labels, opts); err != nil {
		return fmt.Errorf("https forwarding rule: %w", err)
	}

	redirect, err := compute.NewURLMap(ctx, name+"-redirect", &compute.URLMapArgs{
		Project:     project,
		Name:        pulumi.String(a.Name + "-redirect"),
		Description: pulumi.String("HTTP to HTTPS"),
		DefaultUrlRedirect: compute.URLMapDefaultUrlRedirectArgs{
			HttpsRedirect:        pulumi.Bool(true),
			RedirectResponseCode: pulumi.String("MOVED_PERMANENTLY_DEFAULT"),
			StripQuery:           pulumi.Bool(false),
		},
	}, opts...)
	if err != nil {
		return fmt.Errorf("redirect url map: %w", err)
	}
	httpProxy, err := compute.NewTargetHttpProxy(ctx, name+"-http", &compute.TargetHttpProxyArgs{
		Project: project,
		Name:    pulumi.String(a.Name + "-http"),
		UrlMap:  redirect.SelfLink,
	}, opts...)
	if err != nil {
		return fmt.Errorf("http proxy: %w", err)
	}
	if _, err := forwardingRule(ctx, name, "http", a, address, "80", httpProxy.SelfLink, labels, opts); err != nil {
		return fmt.Errorf("http forwarding rule: %w", err)
	}

	if a.GCP.CertificateMap == nil {
		target := a.GCP.DNS.Target
		if target == nil {
			target = address
		}
		if err := addressRecords(ctx, name, a, target, opts); err != nil {
			return err
		}
	}

	e.IPAddress = address.ToStringOutput()
	e.CertificateMap = certMap.ToStringOutput()
	e.SecurityPolicy = armor.SelfLink
	return nil
}

// capacityOf is a color's capacityScaler: 1 for the active color, 0 for the others. An active color that is not
// one of the colors fails the update rather than draining every backend.
func capacityOf(active pulumi.StringInput, color string, colors []string) pulumi.Float64Output {
	return active.ToStringOutput().ApplyT(func(c string) (float64, error) {
		if !slices.Contains(colors, c) {
			return 0, fmt.Errorf("Backend.ActiveColor %q is none of the colors %v", c, colors)
		}
		if c == color {
			return 1, nil
		}
		return 0, nil
	}).(pulumi.Float64Output)
}

// forwardingRule sends one port of the shared address to a target proxy.
func forwardingRule(ctx *pulumi.Context, name, suffix string, a *Args, address pulumi.StringInput, port string,
	target pulumi.StringInput, labels pulumi.StringMap, opts []pulumi.ResourceOption) (*compute.GlobalForwardingRule, error) {
	return compute.NewGlobalForwardingRule(ctx, name+"-"+suffix, &compute.GlobalForwardingRuleArgs{
		Project:             pulumi.String(a.Project),
		Name:                pulumi.String(a.Name + "-" + suffix),
		IpAddress:           address,
		IpProtocol:          pulumi.String("TCP"),
		PortRange:           pulumi.String(port),
		Target:              target,
		LoadBalancingScheme: pulumi.String(scheme),
		Labels:              labels,
	}, opts...)
}

// armorRules: the preconfigured WAF rules deny with 403, then a per-client-IP rate limit answers 429, then allow.
func armorRules(g GCPArgs) compute.SecurityPolicyRuleTypeArray {
	everyone := compute.SecurityPolicyRuleMatchArgs{
		VersionedExpr: pulumi.String("SRC_IPS_V1"),
		Config:        compute.SecurityPolicyRuleMatchConfigArgs{SrcIpRanges: pulumi.StringArray{pulumi.String("*")}},
	}
	rules := compute.SecurityPolicyRuleTypeArray{}
	for i, waf := range WAFRules {
		rules = append(rules, compute.SecurityPolicyRuleTypeArgs{
			Priority:    pulumi.Int(wafPriority + i),
			Action:      pulumi.String("deny(403)"),
			Description: pulumi.String("preconfigured WAF " + waf),
			Match: compute.SecurityPolicyRuleMatchArgs{
				Expr: compute.SecurityPolicyRuleMatchExprArgs{
					Expression: pulumi.Sprintf("evaluatePreconfiguredWaf('%s', {'sensitivity': %d})", waf, g.WAFSensitivity),
				},
			},
		})
	}
	limit := compute.SecurityPolicyRuleRateLimitOptionsArgs{
		ConformAction: pulumi.String("allow"),
		ExceedAction:  pulumi.String("deny(429)"),
		EnforceOnKey:  pulumi.String("IP"),
		RateLimitThreshold: compute.SecurityPolicyRuleRateLimitOptionsRateLimitThresholdArgs{
			Count:       pulumi.Int(g.RateLimit.Count),
			IntervalSec: pulumi.Int(g.RateLimit.IntervalSec),
		},
	}
	action := "throttle"
	if g.RateLimit.BanDurationSec > 0 {
		action = "rate_based_ban"
		limit.BanDurationSec = pulumi.Int(g.RateLimit.BanDurationSec)
	}
	rules = append(rules,
		compute.SecurityPolicyRuleTypeArgs{
			Priority:         pulumi.Int(rateLimitPriority),
			Action:           pulumi.String(action),
			Description:      pulumi.String("per-client rate limit"),
			Match:            everyone,
			RateLimitOptions: limit,
		},
		compute.SecurityPolicyRuleTypeArgs{
			Priority:    pulumi.Int(defaultPriority),
			Action:      pulumi.String("allow"),
			Description: pulumi.String("default: allow what no rule above denied"),
			Match:       everyone,
		},
	)
	return rules
}
