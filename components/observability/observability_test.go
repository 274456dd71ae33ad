package observability_test

import (
	"strings"
	"testing"

	"github.com/omscloud/omscloud/components/observability"
	"github.com/omscloud/omscloud/components/observability/rules"
	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	alertType   = "gcp:monitoring/alertPolicy:AlertPolicy"
	uptimeType  = "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig"
	channelType = "gcp:monitoring/notificationChannel:NotificationChannel"
	sloType     = "gcp:monitoring/slo:Slo"
	dashType    = "gcp:monitoring/dashboard:Dashboard"
)

func baseArgs() observability.Args {
	sel := func(c string) map[string]string {
		return map[string]string{"app.kubernetes.io/name": c, "app.kubernetes.io/instance": "oms-prod-eu"}
	}
	return observability.Args{
		Name: "oms-prod-eu", Project: "omscloud-prod-eu",
		Targets: observability.Targets{
			Web:      observability.Target{Selector: sel("web"), Port: "http"},
			Worker:   observability.Target{Selector: sel("worker"), Port: "http"},
			Redis:    observability.Target{Selector: sel("redis"), Port: "metrics"},
			RabbitMQ: observability.Target{Selector: sel("rabbitmq"), Port: "prometheus"},
		},
		Hostnames:        []string{"api.eu.example.com", "eu.example.com"},
		DatabaseInstance: "oms-prod-eu-pg",
		Thresholds:       rules.Production(),
		Notifications: observability.NotificationArgs{
			Emails: []string{"oncall@example.com"}, PagerDutyKey: pulumi.String("pd-integration-key"),
		},
	}
}

func evaluate(t *testing.T, args observability.Args) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Evaluate(func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{})
		if err != nil {
			return err
		}
		_, err = observability.New(ctx, "obs", &args, pulumi.Providers(k8s))
		return err
	}, "omscloud", "test", nil, nil)
	require.NoError(t, err)
	return inv
}

// TestEveryRuleIsAnAlertPolicyWithTheSamePromQL: Cloud Monitoring evaluates exactly the expressions promtool tests.
func TestEveryRuleIsAnAlertPolicyWithTheSamePromQL(t *testing.T) {
	inv := evaluate(t, baseArgs())
	a := baseArgs()
	groups, err := rules.For(observability.ParamsOf(a))
	require.NoError(t, err)
	policies := inv.OfType(alertType)
	require.Len(t, policies, len(rules.All(groups)))
	byRule := map[string]inventory.Resource{}
	for _, p := range policies {
		byRule[p.String("conditions[0].conditionPrometheusQueryLanguage.alertRule")] = p
	}
	for _, g := range groups {
		for _, r := range g.Rules {
			p, ok := byRule[r.Name]
			require.True(t, ok, "%s has an alert policy", r.Name)
			c := "conditions[0].conditionPrometheusQueryLanguage."
			assert.Equal(t, r.Expr, p.String(c+"query"), r.Name)
			assert.Equal(t, g.Name, p.String(c+"ruleGroup"), r.Name)
			assert.Equal(t, "omscloud-prod-eu", p.String("project"))
			assert.Contains(t, p.String("documentation.content"), rules.RunbookURL+r.Runbook)
			channels := p.Strings("notificationChannels")
			if r.Severity == rules.Page {
				assert.Len(t, channels, 2, "%s pages email and PagerDuty", r.Name)
				assert.Equal(t, "CRITICAL", p.String("severity"))
			} else {
				assert.Len(t, channels, 1, "%s tickets go to email only", r.Name)
			}
			// Scoped to this environment's cluster, hosts or database: other stacks of the project stay out.
			assert.Regexp(t, `cluster="oms-prod-eu"|api\\\\.eu\\\\.example\\\\.com|omscloud-prod-eu:oms-prod-eu-pg`, r.Expr, r.Name)
		}
	}
}

func TestCollectionUptimeSLOsChannelsDashboard(t *testing.T) {
	inv := evaluate(t, baseArgs())

	pms := inv.OfType(observability.PodMonitoringType)
	require.Len(t, pms, 4, "runtime web and worker, Redis, RabbitMQ")
	ports := map[string]string{}
	for _, pm := range pms {
		assert.Equal(t, "oms", pm.String("metadata.namespace"))
		ports[pm.String("metadata.name")] = pm.String("spec.endpoints[0].port")
	}
	assert.Equal(t, map[string]string{"oms-prod-eu-web": "http", "oms-prod-eu-worker": "http",
		"oms-prod-eu-redis": "metrics", "oms-prod-eu-rabbitmq": "prometheus"}, ports, "the job label the rules select on is the PodMonitoring's name")

	checks := inv.OfType(uptimeType)
	require.Len(t, checks, 2, "one uptime check per hostname")
	for _, c := range checks {
		assert.GreaterOrEqual(t, len(c.Strings("selectedRegions")), 3, "checked from several regions")
		assert.Equal(t, "/readyz", c.String("httpCheck.path"))
		assert.True(t, c.Bool("httpCheck.validateSsl"), "an invalid certificate fails the check")
	}

	slos := inv.OfType(sloType)
	require.Len(t, slos, 2)
	goals := map[string]float64{}
	for _, s := range slos {
		g, _ := s.Number("goal")
		goals[s.String("sloId")] = g
	}
	assert.Equal(t, map[string]float64{"availability": 0.9995, "latency": 0.99}, goals)

	var pd inventory.Resource
	for _, c := range inv.OfType(channelType) {
		if c.String("type") == "pagerduty" {
			pd = c
		}
	}
	assert.Equal(t, inventory.Secret, pd.String("sensitiveLabels.serviceKey"), "the integration key is a secret")
	assert.Len(t, inv.OfType(dashType), 1)
}

func TestSandboxHasNoDRNorFailoverAlert(t *testing.T) {
	a := baseArgs()
	a.Thresholds = rules.Sandbox()
	inv := evaluate(t, a)
	for _, p := range inv.OfType(alertType) {
		rule := p.String("conditions[0].conditionPrometheusQueryLanguage.alertRule")
		assert.NotContains(t, []string{"OMSDRNotReady", "OMSDatabaseFailoverUnavailable"}, rule)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*observability.Args)
		want   string
	}{
		{"two uptime regions", func(a *observability.Args) { a.UptimeRegions = []string{"USA", "EUROPE"} }, "at least 3"},
		{"unknown region", func(a *observability.Args) { a.UptimeRegions = []string{"USA", "EUROPE", "MARS"} }, `"MARS"`},
		{"no hostnames", func(a *observability.Args) { a.Hostnames = nil }, "Hostnames"},
		{"bad email", func(a *observability.Args) { a.Notifications.Emails = []string{"oncall"} }, "Emails[0]"},
		{"slack without token", func(a *observability.Args) { a.Notifications.SlackChannel = "#oms" }, "SlackToken"},
		{"no port", func(a *observability.Args) { a.Targets.Redis.Port = "" }, "Targets.Redis.Port"},
		{"latency between buckets", func(a *observability.Args) { a.Thresholds.LatencyObjective = 1 }, "LatencyObjective"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := baseArgs()
			tc.change(&a)
			err := a.Validate()
			require.Error(t, err)
			assert.True(t, strings.Contains(err.Error(), tc.want), "%v", err)
		})
	}
	a := baseArgs()
	assert.NoError(t, a.Validate())
}
