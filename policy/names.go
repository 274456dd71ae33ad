package policy

import (
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/omscloud/omscloud/inventory"
)

// nameRule is the limit GCP (or Kubernetes) puts on one resource type's physical name.
type nameRule struct {
	// Field is the input holding the name; Pulumi auto-names the resource when it is unset and Autoname is true.
	Field    string
	Autoname bool
	Min, Max int
	Pattern  *regexp.Regexp
	// Shape describes Pattern for a person.
	Shape string
}

var (
	rfc1035 = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	// kmsName is the character set of KMS key rings and keys, and of Secret Manager secret ids.
	kmsName = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	// sqlIdentifier: Cloud SQL creates databases and users through its API, which quotes them; we still keep to
	// names that need no quoting in psql beyond the hyphen.
	sqlIdentifier = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_-]*$`)
	anything      = regexp.MustCompile(`^.+$`)
	bucketName    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*[a-z0-9]$`)
	genericGCP    = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$`)
	labelKey      = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	// certManagerName: Certificate Manager resources; dnsRecordName: fully qualified, with the trailing dot (labels
	// such as _acme-challenge may start with an underscore).
	certManagerName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]*$`)
	dnsRecordName   = regexp.MustCompile(`^([_a-z0-9]([-_a-z0-9]{0,61}[a-z0-9])?\.)+$`)
	labelValue      = regexp.MustCompile(`^[a-z0-9_-]*$`)

	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	k8sQualifiedName = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
)

const (
	rfc1035Shape = "lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen"
	// autonameSuffix is what Pulumi appends to a logical name when it picks the physical name: "-" and 7 random
	// characters for most providers, 8 for Kubernetes; the longer bounds both.
	autonameSuffix = len("-abcd1234")
)

// gcpNameRules lists every GCP type omscloud declares. Limits are GCP's own (API reference of each resource):
//   - Compute Engine resources: RFC 1035, 1–63 characters.
//   - GKE clusters and node pools: RFC 1035, at most 40 characters.
//   - Cloud SQL instance ids: lowercase letters, digits, hyphens, starting with a letter, at most 98 characters,
//     the project id not counted (Cloud SQL Admin API reference). Ending with a letter or digit is our stricter rule.
//   - Cloud SQL databases and built-in users: PostgreSQL identifiers, at most 63 bytes; IAM users are email
//     addresses (service accounts without ".gserviceaccount.com"), also at most 63 bytes as role names.
//   - Service accounts: 6–30 characters, RFC 1035.
//   - KMS key rings and keys: [a-zA-Z0-9_-], 1–63 characters.
//   - Secret Manager secret ids: [a-zA-Z0-9_-], 1–255 characters.
//   - Cloud Storage buckets: 3–63 characters (up to 222 with dots, each dot-separated part ≤ 63), lowercase letters,
//     digits, "-", "_" and ".", starting and ending with a letter or digit, not an IP address, no "goog" prefix.
//   - Certificate Manager certificates, DNS authorizations, maps and map entries: 1–64 characters, a letter then
//     letters, digits, "-" and "_".
//   - Cloud DNS record sets: a fully qualified DNS name ending with a dot, at most 253 characters before it.
//
// Any other gcp:compute/* type follows the Compute Engine rule; any other GCP type gets genericRule.
var gcpNameRules = map[string]nameRule{
	"gcp:container/cluster:Cluster":             {Field: "name", Autoname: true, Min: 1, Max: 40, Pattern: rfc1035, Shape: rfc1035Shape},
	"gcp:container/nodePool:NodePool":           {Field: "name", Autoname: true, Min: 1, Max: 40, Pattern: rfc1035, Shape: rfc1035Shape},
	"gcp:sql/databaseInstance:DatabaseInstance": {Field: "name", Autoname: true, Min: 1, Max: 98, Pattern: rfc1035, Shape: rfc1035Shape},
	"gcp:sql/database:Database":                 {Field: "name", Autoname: true, Min: 1, Max: 63, Pattern: sqlIdentifier, Shape: "letters, digits, _ and -, starting with a letter or _"},
	"gcp:serviceaccount/account:Account":        {Field: "accountId", Min: 6, Max: 30, Pattern: rfc1035, Shape: rfc1035Shape},
	"gcp:kms/keyRing:KeyRing":                   {Field: "name", Autoname: true, Min: 1, Max: 63, Pattern: kmsName, Shape: "letters, digits, _ and -"},
	"gcp:kms/cryptoKey:CryptoKey":               {Field: "name", Autoname: true, Min: 1, Max: 63, Pattern: kmsName, Shape: "letters, digits, _ and -"},
	"gcp:secretmanager/secret:Secret":           {Field: "secretId", Min: 1, Max: 255, Pattern: kmsName, Shape: "letters, digits, _ and -"},
	"gcp:storage/bucket:Bucket":                 {Field: "name", Autoname: true, Min: 3, Max: 222, Pattern: bucketName, Shape: "lowercase letters, digits, -, _ and ., starting and ending with a letter or digit"},
	"gcp:sql/user:User":                         {Field: "name", Min: 1, Max: 63, Pattern: anything, Shape: "any characters"},
	"gcp:dns/recordSet:RecordSet":               {Field: "name", Min: 2, Max: 254, Pattern: dnsRecordName, Shape: "a fully qualified lowercase DNS name ending with a dot"},
}

// certManagerTypes are the Certificate Manager types omscloud declares: all auto-named by Pulumi when name is unset.
var certManagerTypes = []string{
	"certificate:Certificate", "dnsAuthorization:DnsAuthorization", "certificateMap:CertificateMap",
	"certificateMapEntry:CertificateMapEntry",
}

// computeTypes are the Compute Engine types omscloud declares: all auto-named by Pulumi when name is unset.
var computeTypes = []string{
	"network:Network", "subnetwork:Subnetwork", "firewall:Firewall", "router:Router", "routerNat:RouterNat",
	"address:Address", "globalAddress:GlobalAddress", "forwardingRule:ForwardingRule",
	"globalForwardingRule:GlobalForwardingRule", "backendService:BackendService", "healthCheck:HealthCheck",
	"uRLMap:URLMap", "targetHttpsProxy:TargetHttpsProxy", "targetHttpProxy:TargetHttpProxy",
	"securityPolicy:SecurityPolicy", "sSLPolicy:SSLPolicy",
	"networkEndpointGroup:NetworkEndpointGroup", "globalNetworkEndpointGroup:GlobalNetworkEndpointGroup",
}

func init() {
	for _, t := range computeTypes {
		gcpNameRules["gcp:compute/"+t] = nameRule{Field: "name", Autoname: true, Min: 1, Max: 63, Pattern: rfc1035, Shape: rfc1035Shape}
	}
	for _, t := range certManagerTypes {
		gcpNameRules["gcp:certificatemanager/"+t] = nameRule{Field: "name", Autoname: true, Min: 1, Max: 64, Pattern: certManagerName,
			Shape: "a letter, then letters, digits, - and _"}
	}
}

// computeRule applies to other Compute Engine types, genericRule to any other GCP type, when name is set: not every
// type has a name (IAM members, service networking connections), so an unset one is not guessed.
var (
	computeRule = nameRule{Field: "name", Min: 1, Max: 63, Pattern: rfc1035, Shape: rfc1035Shape}
	genericRule = nameRule{Field: "name", Min: 1, Max: 63, Pattern: genericGCP, Shape: "letters, digits, ., _ and -, starting and ending with a letter or digit"}
)

// gcpLabelFields hold GCP labels wherever they appear; "labels" counts only at the top level, since nested
// "labels" (a node pool's nodeConfig.labels) are Kubernetes node labels with Kubernetes rules.
const notificationChannelType = "gcp:monitoring/notificationChannel:NotificationChannel"

var gcpLabelFields = []string{"resourceLabels", "userLabels", "defaultLabels"}

func nameLimits() Policy {
	return Policy{
		Name: "name-limits",
		Description: "physical names respect the limits of their resource type (GCP: length and characters per type, " +
			"labels ≤ 63 lowercase; Kubernetes: DNS-1123 names, ≤ 63 for Services and namespaces, ≤ 52 for " +
			"StatefulSets and CronJobs, valid label keys and values), including names Pulumi would auto-generate",
		Severity: Error,
		Check: func(_ Context, inv *inventory.Inventory) []Finding {
			var out []Finding
			for _, r := range inv.Resources {
				switch {
				case strings.HasPrefix(r.Type, "gcp:"):
					out = append(out, checkGCPName(r)...)
					out = append(out, checkGCPLabels(r)...)
				case r.Type == "pulumi:providers:gcp":
					out = append(out, checkGCPLabels(r)...)
				case strings.HasPrefix(r.Type, "kubernetes:"):
					out = append(out, checkK8sNames(r)...)
				}
			}
			return out
		},
	}
}

func ruleFor(typ string) nameRule {
	if rule, ok := gcpNameRules[typ]; ok {
		return rule
	}
	if strings.HasPrefix(typ, "gcp:compute/") {
		return computeRule
	}
	return genericRule
}

// physicalName returns the name a resource will carry, what it is derived from, and whether it can be checked.
func physicalName(r inventory.Resource, field string, autoname bool) (name, source string, ok bool) {
	v, set := r.Get(field)
	if set && v != nil {
		s, isString := v.(string)
		return s, field, isString && known(s)
	}
	if !autoname {
		return "", "", false
	}
	// Pulumi derives the name from the logical name plus a random suffix; check the longest it can be.
	return r.Name + "-" + strings.Repeat("a", autonameSuffix-1), fmt.Sprintf("%s unset, auto-named from %q", field, r.Name), true
}

func checkGCPName(r inventory.Resource) []Finding {
	rule := ruleFor(r.Type)
	if rule.Field == "" {
		return nil
	}
	name, source, ok := physicalName(r, rule.Field, rule.Autoname)
	if !ok {
		return nil
	}
	var out []Finding
	if n := len(name); n < rule.Min || n > rule.Max {
		out = append(out, finding(r, "%s (%s) is %d characters: %s names must be %d–%d", rule.Field, source, n, r.Type, rule.Min, rule.Max))
	}
	if !rule.Pattern.MatchString(name) {
		out = append(out, finding(r, "%s %q (%s): %s names use %s", rule.Field, name, source, r.Type, rule.Shape))
	}
	switch r.Type {
	case "gcp:storage/bucket:Bucket":
		out = append(out, checkBucketName(r, name)...)
	case "gcp:sql/user:User":
		out = append(out, checkSQLUser(r, name)...)
	}
	return out
}

func checkBucketName(r inventory.Resource, name string) []Finding {
	var out []Finding
	if !strings.Contains(name, ".") && len(name) > 63 {
		out = append(out, finding(r, "name is %d characters: bucket names without dots are at most 63", len(name)))
	}
	for _, part := range strings.Split(name, ".") {
		if strings.Contains(name, ".") && len(part) > 63 {
			out = append(out, finding(r, "name part %q is %d characters: each dot-separated part is at most 63", part, len(part)))
		}
	}
	if net.ParseIP(name) != nil {
		out = append(out, finding(r, "name %q is an IP address: bucket names cannot be", name))
	}
	if strings.HasPrefix(name, "goog") || strings.Contains(name, "google") {
		out = append(out, finding(r, "name %q starts with goog or contains google: GCP refuses such bucket names", name))
	}
	return out
}

// checkSQLUser applies the rules of the user's type: built-in users are PostgreSQL roles; IAM users are emails.
func checkSQLUser(r inventory.Resource, name string) []Finding {
	var out []Finding
	switch r.String("type") {
	case "CLOUD_IAM_SERVICE_ACCOUNT":
		if strings.HasSuffix(name, ".gserviceaccount.com") {
			out = append(out, finding(r, "name %q: IAM service account users are named without the .gserviceaccount.com suffix", name))
		}
	case "CLOUD_IAM_USER", "CLOUD_IAM_GROUP":
	default:
		if !sqlIdentifier.MatchString(name) {
			out = append(out, finding(r, "name %q: built-in users use letters, digits, _ and -, starting with a letter or _", name))
		}
		if strings.HasPrefix(name, "pg_") || strings.HasPrefix(name, "cloudsql") {
			out = append(out, finding(r, "name %q: the pg_ and cloudsql prefixes are reserved", name))
		}
	}
	return out
}

func checkGCPLabels(r inventory.Resource) []Finding {
	var out []Finding
	check := func(path string, labels map[string]any) {
		if len(labels) > 64 {
			out = append(out, finding(r, "%s has %d labels: GCP allows at most 64", path, len(labels)))
		}
		for _, k := range sortedKeys(labels) {
			if len(k) > 63 || !labelKey.MatchString(k) {
				out = append(out, finding(r, "%s key %q: GCP label keys are 1–63 lowercase letters, digits, _ and -, starting with a letter", path, k))
			}
			v, ok := labels[k].(string)
			if ok && known(v) && (len(v) > 63 || !labelValue.MatchString(v)) {
				out = append(out, finding(r, "%s.%s value %q: GCP label values are at most 63 lowercase letters, digits, _ and -", path, k, v))
			}
		}
	}
	// A notification channel's "labels" are its configuration (email_address, channel_name), not resource labels:
	// those are its userLabels (https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.notificationChannels).
	if m := asMap(r.Inputs["labels"]); m != nil && r.Type != notificationChannelType {
		check("labels", m)
	}
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch t := v.(type) {
		case map[string]any:
			for _, k := range sortedKeys(t) {
				child := join(path, k)
				for _, f := range gcpLabelFields {
					if k == f {
						if m := asMap(t[k]); m != nil {
							check(child, m)
						}
					}
				}
				walk(t[k], child)
			}
		case []any:
			for i, e := range t {
				walk(e, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(r.Inputs, "")
	return out
}

// k8sNameLimit returns the rule for a Kubernetes object's metadata.name by kind.
func k8sNameLimit(kind string) (limit int, pattern *regexp.Regexp, shape string) {
	switch kind {
	case "Service":
		return 63, rfc1035, "a DNS-1035 label (" + rfc1035Shape + ")"
	case "Namespace":
		return 63, dns1123Label, "a DNS-1123 label"
	case "StatefulSet":
		// Its pods carry the label controller-revision-hash = <name>-<10-character hash>, at most 63.
		return 52, dns1123Subdomain, "a DNS-1123 subdomain"
	case "CronJob":
		// The controller appends an 11-character suffix to the Jobs it creates.
		return 52, dns1123Subdomain, "a DNS-1123 subdomain"
	}
	return 253, dns1123Subdomain, "a DNS-1123 subdomain"
}

func checkK8sNames(r inventory.Resource) []Finding {
	if _, ok := r.Get("metadata"); !ok && !strings.Contains(r.Type, "/") {
		return nil // a provider, not an object
	}
	kind := r.Type[strings.LastIndex(r.Type, ":")+1:]
	var out []Finding
	limit, pattern, shape := k8sNameLimit(kind)
	if name, source, ok := physicalName(r, "metadata.name", true); ok {
		if len(name) > limit {
			out = append(out, finding(r, "metadata.name (%s) is %d characters: a %s name is at most %d", source, len(name), kind, limit))
		}
		if !pattern.MatchString(name) {
			out = append(out, finding(r, "metadata.name %q (%s) is not %s", name, source, shape))
		}
	}
	if ns := r.String("metadata.namespace"); known(ns) && (len(ns) > 63 || !dns1123Label.MatchString(ns)) {
		out = append(out, finding(r, "metadata.namespace %q is not a DNS-1123 label of at most 63 characters", ns))
	}
	for _, path := range []string{"metadata.labels", "spec.template.metadata.labels", "spec.jobTemplate.metadata.labels", "spec.jobTemplate.spec.template.metadata.labels", "spec.selector.matchLabels"} {
		labels := asMap(mustGet(r, path))
		for _, k := range sortedKeys(labels) {
			if problem := k8sLabelKeyProblem(k); problem != "" {
				out = append(out, finding(r, "%s key %q: %s", path, k, problem))
			}
			if v, ok := labels[k].(string); ok && known(v) && (len(v) > 63 || v != "" && !k8sQualifiedName.MatchString(v)) {
				out = append(out, finding(r, "%s.%s value %q: label values are at most 63 letters, digits, -, _ and ., starting and ending with a letter or digit", path, k, v))
			}
		}
	}
	return out
}

// k8sLabelKeyProblem checks a label key: an optional DNS-1123 subdomain prefix (≤ 253) and "/", then a name ≤ 63.
func k8sLabelKeyProblem(key string) string {
	prefix, name, hasPrefix := strings.Cut(key, "/")
	if !hasPrefix {
		name, prefix = key, ""
	}
	if hasPrefix && (prefix == "" || len(prefix) > 253 || !dns1123Subdomain.MatchString(prefix)) {
		return "the prefix must be a DNS-1123 subdomain of at most 253 characters"
	}
	if name == "" || len(name) > 63 || !k8sQualifiedName.MatchString(name) {
		return "the name part must be 1–63 letters, digits, -, _ and ., starting and ending with a letter or digit"
	}
	return ""
}
