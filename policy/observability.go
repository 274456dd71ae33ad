package policy

import (
	"regexp"
	"slices"
	"strconv"

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
					class := stringMap(cond["labels"])["class"]
					classes[class] = true
					if class == rules.ClassDatabase {
						out = append(out, unwatchedInstances(r, cond["query"], inv)...)
					}
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

// databaseIDMatcher is a PromQL matcher on Cloud SQL's database_id ("<project>:<instance>"), its value quoted as Go
// quotes strings (components/observability).
var databaseIDMatcher = regexp.MustCompile(`database_id(=~|=)("(?:[^"\\]|\\.)*")`)

// unwatchedInstances: a database alert whose database_id matcher misses a Cloud SQL instance of the stack (a
// database cell added, a name changed) would page no one about it.
func unwatchedInstances(alert inventory.Resource, query any, inv *inventory.Inventory) []Finding {
	q, _ := query.(string)
	m := databaseIDMatcher.FindStringSubmatch(q)
	if m == nil {
		return nil
	}
	value, err := strconv.Unquote(m[2])
	if err != nil {
		return []Finding{finding(alert, "the database_id matcher %s cannot be read: %v", m[2], err)}
	}
	pattern := regexp.QuoteMeta(value)
	if m[1] == "=~" {
		pattern = value
	}
	// Prometheus anchors regular-expression matchers.
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	if err != nil {
		return []Finding{finding(alert, "the database_id matcher %s is not a regular expression: %v", m[2], err)}
	}
	var out []Finding
	for _, db := range inv.OfType(sqlInstanceType) {
		project, name := db.String("project"), db.String("name")
		if isReplica(db) || !known(project) || !known(name) {
			continue
		}
		if !re.MatchString(project + ":" + name) {
			out = append(out, finding(alert, "database_id%s%s misses the Cloud SQL instance %s: its trouble would page no one; select every instance (every database cell: postgres.InstancePattern)",
				m[1], m[2], name))
		}
	}
	return out
}
