package policy

import (
	"fmt"
	"maps"
	"regexp"
	"sort"
	"strings"

	"github.com/omscloud/omscloud/inventory"
)

// secretWords mark a key (or an environment variable name) whose value is a credential. Keys are compared
// lowercased with separators removed, so "api_key", "apiKey" and "API-KEY" all read "apikey".
var secretWords = []string{
	"password", "passwd", "passphrase", "secret", "token", "cookie", "apikey", "privatekey", "clientkey",
	"credential", "kubeconfig", "requirepass", "masterauth", "authpass", "accesskey",
}

// referenceSuffixes mark keys that name or point at a secret, or describe one, rather than hold it: secretName,
// secretKeyRef, secretId, passwordPolicy, tokenFile, ...
var referenceSuffixes = []string{
	"id", "ids", "name", "names", "ref", "refs", "version", "versions", "policy", "type", "mode", "enabled",
	"path", "file", "uri", "url", "length", "count", "ttl", "expiry", "format", "location", "locations",
}

// labelMaps hold labels and selectors: short identifiers, never credentials, and often named after them
// ("app: token-relay").
var labelMaps = map[string]bool{
	"labels": true, "matchLabels": true, "resourceLabels": true, "userLabels": true, "defaultLabels": true,
	"nodeSelector": true, "annotations": true,
}

var (
	// credentialURL finds "scheme://user:password@" in any string.
	credentialURL = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:([^@\s/]+)@`)
	// secretFlag finds a credential passed on a command line: "--requirepass hunter2", "--password=hunter2".
	secretFlag = regexp.MustCompile(`(?i)--(requirepass|masterauth|password|pass)(?:=|\s+)(\S+)`)
	// secretConfigLine finds credentials in a config file: "requirepass x", "sentinel auth-pass mymaster x",
	// "default_pass = x", "password: x".
	secretConfigLine = []*regexp.Regexp{
		regexp.MustCompile(`(?im)^\s*(requirepass|masterauth)\s+(\S+)`),
		regexp.MustCompile(`(?im)^\s*sentinel\s+auth-pass\s+\S+\s+(\S+)`),
		regexp.MustCompile(`(?im)^\s*([\w.-]*(?:pass|password|passwd|secret|token|cookie|api_?key)[\w.-]*)\s*[=:]\s*(\S.*?)\s*$`),
	}
)

func noPlaintextSecrets() Policy {
	return Policy{
		Name: "no-plaintext-secrets",
		Description: "no input of any resource holds a credential in plain text: secret-looking keys and environment " +
			"variables are secret outputs or references, Kubernetes Secret values are secret, ConfigMaps carry no " +
			"passwords, and no URL, command line or PEM block embeds one",
		Severity: Error,
		Check: func(_ Context, inv *inventory.Inventory) []Finding {
			var out []Finding
			for _, r := range inv.Resources {
				var problems []string
				scanSecrets(withoutReferences(r), "", &problems)
				if isKind(r, "Secret") {
					for _, field := range []string{"data", "stringData"} {
						values := asMap(r.Inputs[field]) // keys like "redis.conf" are not paths
						for _, k := range sortedKeys(values) {
							if values[k] != inventory.Secret {
								problems = append(problems, fmt.Sprintf("%s.%s is not a secret output: build it from a secret (pulumi.ToSecret, a generated password)", field, k))
							}
						}
					}
				}
				if isKind(r, "ConfigMap") {
					values := asMap(r.Inputs["data"])
					for _, k := range sortedKeys(values) {
						if s, ok := values[k].(string); ok {
							if line := literalConfigSecret(s); line != "" {
								problems = append(problems, fmt.Sprintf("data.%s sets a credential in plain text (%s): mount it from a Secret or pass it through an environment variable", k, line))
							}
						}
					}
				}
				for _, p := range dedupe(problems) {
					out = append(out, finding(r, "%s", p))
				}
			}
			return out
		},
	}
}

// referenceInputs are top-level inputs that, for types under a prefix, identify a secret rather than hold one: a
// Secret Manager version's "secret" is its secret's id. (A Cloudflare tunnel's "secret" is the credential itself.)
var referenceInputs = map[string][]string{
	"gcp:secretmanager/": {"secret"},
}

func withoutReferences(r inventory.Resource) map[string]any {
	inputs := r.Inputs
	for prefix, keys := range referenceInputs {
		if strings.HasPrefix(r.Type, prefix) {
			inputs = maps.Clone(inputs)
			for _, k := range keys {
				delete(inputs, k)
			}
		}
	}
	return inputs
}

// scanSecrets walks inputs recursively and records every plain-text credential with its path. Values are never
// quoted in a finding: a report must not leak what it found.
func scanSecrets(v any, path string, problems *[]string) {
	switch t := v.(type) {
	case map[string]any:
		// An environment variable {name, value}: the name says whether the value is a credential.
		if name, ok := t["name"].(string); ok {
			if val, ok := t["value"].(string); ok && secretLooking(name) && literal(val) {
				*problems = append(*problems, fmt.Sprintf("%s: environment variable %s has a literal value: use valueFrom.secretKeyRef", orRoot(path), name))
			}
		}
		for _, k := range sortedKeys(t) {
			child := join(path, k)
			if labelMaps[k] {
				continue
			}
			if s, ok := t[k].(string); ok && secretLooking(k) && literal(s) {
				*problems = append(*problems, fmt.Sprintf("%s holds a plain-text value: make it a secret output or a reference (secretKeyRef, Secret Manager id)", child))
			}
			scanSecrets(t[k], child, problems)
		}
	case []any:
		for i, e := range t {
			child := fmt.Sprintf("%s[%d]", path, i)
			// "--requirepass" "hunter2" as two arguments.
			if s, ok := e.(string); ok && i+1 < len(t) {
				if next, ok := t[i+1].(string); ok && secretFlag.MatchString(s+" "+next) && !strings.Contains(s, "=") && literal(next) {
					*problems = append(*problems, fmt.Sprintf("%s passes a credential on the command line: read it from an environment variable", child))
				}
			}
			scanSecrets(e, child, problems)
		}
	case string:
		if m := credentialURL.FindStringSubmatch(t); m != nil && literal(m[1]) {
			*problems = append(*problems, fmt.Sprintf("%s embeds a password in a URL: build the URL as a secret output", orRoot(path)))
		}
		if m := secretFlag.FindStringSubmatch(t); m != nil && literal(m[2]) {
			*problems = append(*problems, fmt.Sprintf("%s passes a credential on the command line: read it from an environment variable", orRoot(path)))
		}
		if strings.Contains(t, "-----BEGIN") && strings.Contains(t, "PRIVATE KEY-----") {
			*problems = append(*problems, fmt.Sprintf("%s holds a PEM private key: make it a secret output", orRoot(path)))
		}
	}
}

// secretLooking reports whether a key or variable name says its value is a credential.
func secretLooking(key string) bool {
	k := strings.NewReplacer("_", "", "-", "", ".", "").Replace(strings.ToLower(key))
	hit := false
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			hit = true
			break
		}
	}
	if !hit && !strings.HasSuffix(k, "pass") { // RABBITMQ_DEFAULT_PASS, default_pass
		return false
	}
	for _, s := range referenceSuffixes {
		if strings.HasSuffix(k, s) {
			return false
		}
	}
	return true
}

// literal reports whether a string is a value written into the program rather than a secret output, an unknown
// output, a reference to a secret (Secret Manager path, environment or file) or nothing at all.
func literal(s string) bool {
	s = strings.Trim(strings.TrimSpace(s), `"'`)
	switch {
	case s == "", s == inventory.Secret, s == inventory.Unknown:
		return false
	case strings.HasPrefix(s, "$"), strings.HasPrefix(s, "/"), strings.HasPrefix(s, "{{"), strings.HasPrefix(s, "%("):
		return false
	case len(s) > 2 && strings.HasPrefix(s, "@") && strings.HasSuffix(s, "@"):
		return false // an @PLACEHOLDER@ an init script fills from a Secret
	case strings.HasPrefix(s, "projects/") && strings.Contains(s, "/secrets/"):
		return false
	case strings.Contains(s, inventory.Secret):
		return false
	}
	return true
}

// literalConfigSecret returns the directive of the first config line setting a credential to a literal value.
func literalConfigSecret(text string) string {
	for i, re := range secretConfigLine {
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			if i == len(secretConfigLine)-1 && !secretLooking(m[1]) {
				continue // "token_ttl = 5" names no credential
			}
			if literal(m[len(m)-1]) {
				return strings.Fields(m[0])[0]
			}
		}
	}
	return ""
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "value"
	}
	return path
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
