package policy

import (
	"slices"

	"github.com/omscloud/omscloud/components/observability/rules"
	"github.com/omscloud/omscloud/inventory"
)

const (
	alertPolicyType = "gcp:monitoring/alertPolicy:AlertPolicy"
	uptimeCheckType = "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig"
	sloType         = "gcp:monitoring/slo:Slo"
	environmentType = "omscloud:environment:Environment"
)

// minAvailabilityGoal is the uptime production promises (DESIGN.md: 99.95%).
const minAvailabilityGoal = 0.9995

// alerting: production must notice each way the 99.95% promise, the backups or DR can slip, and tell someone. The
// classes are the rules package's (components/observability/rules), read from each alert policy's PromQL condition
// labels; DR readiness is required only where the stack has a DR site. It judges environments (a stack's
// inventory), not components planned alone.
func alerting() Policy {
	return Policy{
		Name: "alerting",
		Description: "production has an alert policy of every class (SLO burn, endpoint, TLS, backup, messaging, " +
			"webhooks, database, cache, broker, and DR readiness with a DR site), each routed to a notification " +
			"channel, an uptime check and an availability SLO of at least 99.95%",
		Severity: Error,
		Check: func(ctx Context, inv *inventory.Inventory) []Finding {
			// Environments only: a component planned on its own (its tests run the policies too) has no monitoring.
			if !ctx.production() || len(inv.OfType(environmentType)) == 0 {
				return nil
			}
			var out []Finding
			classes := map[string]bool{}
			for _, r := range inv.OfType(alertPolicyType) {
				for _, c := range asList(r.Inputs["conditions"]) {
					cond := asMap(asMap(c)["conditionPrometheusQueryLanguage"])
					classes[stringMap(cond["labels"])["class"]] = true
				}
				if len(asList(r.Inputs["notificationChannels"])) == 0 {
					out = append(out, finding(r, "notificationChannels is empty: the alert reaches no one; set observability.notifications"))
				}
			}
			stack := Finding{Resource: "(stack)", Type: alertPolicyType}
			for _, class := range rules.Classes {
				if class == rules.ClassDR && ctx.DRRegion == "" {
					continue
				}
				if !classes[class] {
					f := stack
					f.Message = "no alert policy of class " + class + ": production must alert on it (components/observability)"
					out = append(out, f)
				}
			}
			if len(inv.OfType(uptimeCheckType)) == 0 {
				f := stack
				f.Type, f.Message = uptimeCheckType, "no uptime check: nothing watches the public endpoint from outside"
				out = append(out, f)
			}
			if !slices.ContainsFunc(inv.OfType(sloType), func(r inventory.Resource) bool {
				g, ok := number(r.Inputs["goal"])
				return r.String("sloId") == "availability" && ok && g >= minAvailabilityGoal
			}) {
				f := stack
				f.Type, f.Message = sloType, "no availability SLO with a goal of at least 0.9995: the promise is not measured"
				out = append(out, f)
			}
			return out
		},
	}
}
