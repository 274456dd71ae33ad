// Package policy checks a stack's resource inventory against omscloud's rules — high availability, encryption,
// private networking, secrets, GCP name limits, edge exposure and data residency — before anything reaches a cloud.
// Every check reads only the inventory (inputs as the engine receives them), so it runs offline, in tests and in
// `omsctl plan`.
//
// The package deliberately does not import stacks: stacks' own tests can then run the policies. Callers build a
// Context from their stack config.
package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/omscloud/omscloud/inventory"
)

// Severity says whether a finding blocks a stack (error) or only informs review (warning).
type Severity string

// Severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Finding is one violation of one policy by one resource.
type Finding struct {
	Policy   string   `json:"policy"`
	Resource string   `json:"resource"`
	Type     string   `json:"type"`
	Message  string   `json:"message"`
	Severity Severity `json:"severity"`
}

// Policy is one named rule. Check returns the violations it finds; Evaluate fills in each finding's Policy and, when
// the check left it empty, its Severity from the policy's.
type Policy struct {
	Name        string
	Description string
	Severity    Severity
	Check       func(ctx Context, inv *inventory.Inventory) []Finding
}

// Context is what the policies need to know about the stack beyond its inventory.
type Context struct {
	// Environment is production or sandbox; anything but sandbox is held to the production rules.
	Environment string
	// Edge is the edge provider: gcp or cloudflare.
	Edge string
	// PrimaryRegion is the GCP region the stack runs in; DRRegion its cold DR site ("" when the stack has none).
	// For a DR spin-up stack, PrimaryRegion is the DR site it runs in.
	PrimaryRegion, DRRegion string
	// AllowedLocations are further locations data may live in: the jurisdiction's multi-region or dual-region
	// ("us", "eu") and the configured backup location. Compared case-insensitively.
	AllowedLocations []string
}

// Environment classes as Context.Environment spells them.
const (
	Production = "production"
	Sandbox    = "sandbox"
)

// production reports whether the production rules apply: only an explicit sandbox is spared them.
func (c Context) production() bool { return c.Environment != Sandbox }

// All returns every policy, in the order reports list them.
func All() []Policy {
	return []Policy{
		postgresHA(),
		postgresPrivateEncrypted(),
		statefulHA(),
		noPlaintextSecrets(),
		nameLimits(),
		firewallIngress(),
		gkePrivateCluster(),
		nodePoolSpread(),
		edgeNoPublicIP(),
		residency(),
		drRegionCold(),
		apiDependencies(),
		hpaMetricsServed(),
		alerting(),
	}
}

// Report is the outcome of evaluating policies over one inventory.
type Report struct {
	// Checked lists every policy evaluated, in order.
	Checked []string `json:"checked"`
	// Passed lists the policies with no error finding (warnings do not fail a policy).
	Passed   []string  `json:"passed"`
	Findings []Finding `json:"findings"`
}

// Evaluate runs every policy of All over the inventory.
func Evaluate(ctx Context, inv *inventory.Inventory) Report {
	return EvaluatePolicies(All(), ctx, inv)
}

// EvaluatePolicies runs the given policies over the inventory.
func EvaluatePolicies(policies []Policy, ctx Context, inv *inventory.Inventory) Report {
	rep := Report{Checked: []string{}, Passed: []string{}, Findings: []Finding{}}
	for _, p := range policies {
		rep.Checked = append(rep.Checked, p.Name)
		failed := false
		for _, f := range p.Check(ctx, inv) {
			f.Policy = p.Name
			if f.Severity == "" {
				f.Severity = p.Severity
			}
			failed = failed || f.Severity == Error
			rep.Findings = append(rep.Findings, f)
		}
		if !failed {
			rep.Passed = append(rep.Passed, p.Name)
		}
	}
	return rep
}

// Errors returns the findings that fail a stack.
func (r Report) Errors() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Severity == Error {
			out = append(out, f)
		}
	}
	return out
}

// HasErrors reports whether any finding fails the stack.
func (r Report) HasErrors() bool { return len(r.Errors()) > 0 }

// Text renders one line per policy — PASS or FAIL, with a warning count — and each finding indented below it.
func (r Report) Text() string {
	var b strings.Builder
	byPolicy := map[string][]Finding{}
	for _, f := range r.Findings {
		byPolicy[f.Policy] = append(byPolicy[f.Policy], f)
	}
	names := r.Checked
	for _, f := range r.Findings { // findings of a policy missing from Checked are still shown
		if !slices.Contains(names, f.Policy) {
			names = append(slices.Clone(names), f.Policy)
		}
	}
	for _, name := range names {
		status := "PASS"
		if !slices.Contains(r.Passed, name) {
			status = "FAIL"
		}
		warnings := 0
		for _, f := range byPolicy[name] {
			if f.Severity == Warning {
				warnings++
			}
		}
		fmt.Fprintf(&b, "%s  %s", status, name)
		if warnings > 0 {
			fmt.Fprintf(&b, " (%d warning(s))", warnings)
		}
		b.WriteByte('\n')
		for _, f := range byPolicy[name] {
			fmt.Fprintf(&b, "      %-7s %s (%s): %s\n", f.Severity, f.Resource, f.Type, f.Message)
		}
	}
	errs := len(r.Errors())
	fmt.Fprintf(&b, "%d of %d policies passed, %d error(s), %d warning(s)\n", len(r.Passed), len(names), errs,
		len(r.Findings)-errs)
	return b.String()
}

// finding describes a violation by r; the severity defaults to the policy's.
func finding(r inventory.Resource, format string, args ...any) Finding {
	return Finding{Resource: r.Name, Type: r.Type, Message: fmt.Sprintf(format, args...)}
}

// warning describes a finding that informs review without failing the stack.
func warning(r inventory.Resource, format string, args ...any) Finding {
	f := finding(r, format, args...)
	f.Severity = Warning
	return f
}

// known reports whether an input string holds a real value rather than a placeholder for a secret or an output
// that is not known at plan time.
func known(s string) bool { return s != "" && s != inventory.Secret && s != inventory.Unknown }

// number reads a numeric input whether it came from the engine (float64) or a hand-written inventory (int).
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}

// boolAt reads a boolean input and whether it was set at all.
func boolAt(r inventory.Resource, path string) (value, set bool) {
	v, ok := r.Get(path)
	b, isBool := v.(bool)
	return b, ok && isBool
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// stringMap reads a map of strings (labels, selectors); non-string values are skipped.
func stringMap(v any) map[string]string {
	out := map[string]string{}
	for k, e := range asMap(v) {
		if s, ok := e.(string); ok {
			out[k] = s
		}
	}
	return out
}

// isKind reports whether the resource is a Kubernetes object of the given kind, in any API version.
func isKind(r inventory.Resource, kind string) bool {
	return strings.HasPrefix(r.Type, "kubernetes:") && strings.HasSuffix(r.Type, ":"+kind)
}
