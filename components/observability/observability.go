// Package observability declares an environment's monitoring on Google Cloud: Managed Service for Prometheus
// collection of the runtime, Redis and RabbitMQ (PodMonitoring), uptime checks of the public endpoint from several
// regions, the availability and latency SLOs, one Cloud Monitoring alert policy per rule of the rules package (PromQL
// conditions: the same expressions promtool tests), notification channels and a dashboard.
package observability

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/omscloud/omscloud/components/internal/child"
	"github.com/omscloud/omscloud/components/internal/kube"
	"github.com/omscloud/omscloud/components/observability/rules"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/monitoring"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// PodMonitoringType is the type token of Managed Service for Prometheus' scrape configuration
// (https://cloud.google.com/stackdriver/docs/managed-prometheus/setup-managed#gmp-pod-monitoring).
const PodMonitoringType = "kubernetes:monitoring.googleapis.com/v1:PodMonitoring"

// Observability is the component.
type Observability struct {
	pulumi.ResourceState

	// Alerts are the alert policies' names ("projects/<p>/alertPolicies/<id>") by rule name.
	Alerts map[string]pulumi.StringOutput
	// Channels are the notification channels' names.
	Channels pulumi.StringArrayOutput `pulumi:"channels"`
	// Dashboard is the dashboard's id.
	Dashboard pulumi.StringOutput `pulumi:"dashboard"`
	// ServiceID is the Cloud Monitoring service the SLOs belong to.
	ServiceID pulumi.StringOutput `pulumi:"serviceId"`
}

// New declares the monitoring. Pass the Kubernetes provider with pulumi.Providers (the GCP provider comes from the
// parent or with it); explicit dependencies (the enabled APIs, the namespace) reach every child.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Observability, error) {
	if args == nil {
		return nil, fmt.Errorf("observability: Args are required")
	}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	a := args.withDefaults()
	groups, err := rules.For(a.Thresholds)
	if err != nil {
		return nil, fmt.Errorf("observability: %w", err)
	}
	o := &Observability{Alerts: map[string]pulumi.StringOutput{}}
	if err := ctx.RegisterComponentResource("omscloud:observability:Observability", name, o, opts...); err != nil {
		return nil, err
	}
	opts, err = child.Options(o, opts)
	if err != nil {
		return nil, fmt.Errorf("observability: %w", err)
	}
	d := &declarer{ctx: ctx, name: name, a: &a, opts: opts}
	if err := d.declare(o, groups); err != nil {
		return nil, fmt.Errorf("observability: %w", err)
	}
	return o, ctx.RegisterResourceOutputs(o, pulumi.Map{
		"channels":  o.Channels,
		"dashboard": o.Dashboard,
		"serviceId": o.ServiceID,
	})
}

type declarer struct {
	ctx  *pulumi.Context
	name string
	a    *Args
	opts []pulumi.ResourceOption
}

func (d *declarer) declare(o *Observability, groups []rules.Group) error {
	if err := d.podMonitorings(); err != nil {
		return err
	}
	if err := d.uptimeChecks(); err != nil {
		return err
	}
	svc, err := d.slos()
	if err != nil {
		return err
	}
	pages, tickets, err := d.channels()
	if err != nil {
		return err
	}
	for _, g := range groups {
		for _, r := range g.Rules {
			channels := tickets
			if r.Severity == rules.Page {
				channels = pages
			}
			p, err := d.alertPolicy(g, r, channels)
			if err != nil {
				return err
			}
			o.Alerts[r.Name] = p.Name
		}
	}
	dash, err := d.dashboard()
	if err != nil {
		return err
	}
	o.Channels = pulumi.ToStringArrayOutput(pages)
	o.Dashboard = dash.ID().ToStringOutput()
	o.ServiceID = svc.ServiceId
	return nil
}

func (d *declarer) labels() pulumi.StringMap {
	l := maps.Clone(d.a.Labels)
	if l == nil {
		l = map[string]string{}
	}
	return pulumi.ToStringMap(l)
}

// podMonitorings tell the managed collectors (DaemonSet in gmp-system) which pods to scrape. Each workload's
// NetworkPolicy admits the collector to its metrics port (omsruntime.ManagedPrometheusCollector; redis and rabbitmq
// Args.Metrics).
func (d *declarer) podMonitorings() error {
	a := d.a
	for _, t := range []struct {
		id string
		t  Target
	}{{"web", a.Targets.Web}, {"worker", a.Targets.Worker}, {"redis", a.Targets.Redis}, {"rabbitmq", a.Targets.RabbitMQ}} {
		_, labels := kube.Labels("oms-monitoring", a.Name, t.id, a.Labels)
		if _, err := apiextensions.NewCustomResource(d.ctx, d.name+"-"+t.id, &apiextensions.CustomResourceArgs{
			ApiVersion: pulumi.String("monitoring.googleapis.com/v1"),
			Kind:       pulumi.String("PodMonitoring"),
			Metadata:   kube.Meta(JobName(a.Name, t.id), a.Namespace, labels),
			OtherFields: kubernetes.UntypedArgs{"spec": map[string]any{
				"selector": map[string]any{"matchLabels": t.t.Selector},
				"endpoints": []any{map[string]any{
					"port": t.t.Port, "path": t.t.Path, "interval": DefaultScrapeInterval,
				}},
			}},
		}, d.opts...); err != nil {
			return fmt.Errorf("pod monitoring %s: %w", t.id, err)
		}
	}
	return nil
}

// uptimeChecks request each hostname's /readyz over HTTPS, validating its certificate, from every region; the
// certificate-expiry alert reads the same checks.
func (d *declarer) uptimeChecks() error {
	a := d.a
	for _, h := range a.Hostnames {
		if _, err := monitoring.NewUptimeCheckConfig(d.ctx, d.name+"-uptime-"+h, &monitoring.UptimeCheckConfigArgs{
			Project:     pulumi.String(a.Project),
			DisplayName: pulumi.String(a.Name + " " + h),
			Period:      pulumi.String("60s"),
			Timeout:     pulumi.String("10s"),
			HttpCheck: monitoring.UptimeCheckConfigHttpCheckArgs{
				Path: pulumi.String(a.UptimePath), Port: pulumi.Int(443), UseSsl: pulumi.Bool(true), ValidateSsl: pulumi.Bool(true),
				AcceptedResponseStatusCodes: monitoring.UptimeCheckConfigHttpCheckAcceptedResponseStatusCodeArray{
					monitoring.UptimeCheckConfigHttpCheckAcceptedResponseStatusCodeArgs{StatusValue: pulumi.Int(200)},
				},
			},
			MonitoredResource: monitoring.UptimeCheckConfigMonitoredResourceArgs{
				Type:   pulumi.String("uptime_url"),
				Labels: pulumi.StringMap{"host": pulumi.String(h), "project_id": pulumi.String(a.Project)},
			},
			SelectedRegions: pulumi.ToStringArray(a.UptimeRegions),
			UserLabels:      d.labels(),
		}, d.opts...); err != nil {
			return fmt.Errorf("uptime check %s: %w", h, err)
		}
	}
	return nil
}

// promFilter selects a Managed Prometheus metric of one workload in Cloud Monitoring's filter language: GMP writes
// "prometheus.googleapis.com/<name>/<kind>" on the prometheus_target resource
// (https://cloud.google.com/stackdriver/docs/managed-prometheus/query#metric-names).
func (d *declarer) promFilter(metric, job string, extra ...string) string {
	a := d.a
	parts := append([]string{
		fmt.Sprintf(`metric.type=%q`, "prometheus.googleapis.com/"+metric),
		`resource.type="prometheus_target"`,
		fmt.Sprintf(`resource.labels.cluster=%q`, a.ClusterName),
		fmt.Sprintf(`resource.labels.namespace=%q`, a.Namespace),
		fmt.Sprintf(`resource.labels.job=%q`, JobName(a.Name, job)),
	}, extra...)
	return strings.Join(parts, " ")
}

// slos declare the availability and latency objectives over 30 rolling days, so Cloud Monitoring shows the budget
// left; the burn-rate alerts on the same SLIs are PromQL rules.
func (d *declarer) slos() (*monitoring.CustomService, error) {
	a := d.a
	svc, err := monitoring.NewCustomService(d.ctx, d.name+"-service", &monitoring.CustomServiceArgs{
		Project:     pulumi.String(a.Project),
		ServiceId:   pulumi.String(a.Name + "-api"),
		DisplayName: pulumi.String(a.Name + " OMS API"),
		UserLabels:  d.labels(),
	}, d.opts...)
	if err != nil {
		return nil, fmt.Errorf("slo service: %w", err)
	}
	api := `metric.labels.route=monitoring.regex.full_match("/v1/.+")`
	if _, err := monitoring.NewSlo(d.ctx, d.name+"-availability", &monitoring.SloArgs{
		Project: pulumi.String(a.Project), Service: svc.ServiceId, SloId: pulumi.String("availability"),
		DisplayName:       pulumi.Sprintf("%s%% of API requests without a server error", pct(a.Thresholds.AvailabilityObjective)),
		Goal:              pulumi.Float64(a.Thresholds.AvailabilityObjective),
		RollingPeriodDays: pulumi.Int(30),
		RequestBasedSli: monitoring.SloRequestBasedSliArgs{GoodTotalRatio: monitoring.SloRequestBasedSliGoodTotalRatioArgs{
			TotalServiceFilter: pulumi.String(d.promFilter(rules.MetricRequests+"/counter", "web", api)),
			BadServiceFilter: pulumi.String(d.promFilter(rules.MetricRequests+"/counter", "web", api,
				`metric.labels.code=monitoring.regex.full_match("5..")`)),
		}},
		UserLabels: d.labels(),
	}, d.opts...); err != nil {
		return nil, fmt.Errorf("availability slo: %w", err)
	}
	if _, err := monitoring.NewSlo(d.ctx, d.name+"-latency", &monitoring.SloArgs{
		Project: pulumi.String(a.Project), Service: svc.ServiceId, SloId: pulumi.String("latency"),
		DisplayName: pulumi.Sprintf("%s%% of order creates and availability calls within %s",
			pct(a.Thresholds.LatencyObjective), a.Thresholds.LatencyThreshold),
		Goal:              pulumi.Float64(a.Thresholds.LatencyObjective),
		RollingPeriodDays: pulumi.Int(30),
		RequestBasedSli: monitoring.SloRequestBasedSliArgs{DistributionCut: monitoring.SloRequestBasedSliDistributionCutArgs{
			DistributionFilter: pulumi.String(d.promFilter(rules.MetricRequestDuration+"/histogram", "web",
				`metric.labels.method="POST"`, fmt.Sprintf(`metric.labels.route=monitoring.regex.full_match(%q)`, rules.MainRoutes))),
			Range: monitoring.SloRequestBasedSliDistributionCutRangeArgs{Max: pulumi.Float64(a.Thresholds.LatencyThreshold.Seconds())},
		}},
		UserLabels: d.labels(),
	}, d.opts...); err != nil {
		return nil, fmt.Errorf("latency slo: %w", err)
	}
	return svc, nil
}

// channels declares the notification channels: pages reach all of them, tickets all but PagerDuty.
func (d *declarer) channels() (pages, tickets []pulumi.StringOutput, err error) {
	a := d.a
	n := a.Notifications
	channel := func(logical, typ, display string, labels pulumi.StringMap, sensitive *monitoring.NotificationChannelSensitiveLabelsArgs) (pulumi.StringOutput, error) {
		args := &monitoring.NotificationChannelArgs{
			Project: pulumi.String(a.Project), Type: pulumi.String(typ), DisplayName: pulumi.String(display),
			Labels: labels, UserLabels: d.labels(),
		}
		if sensitive != nil {
			args.SensitiveLabels = sensitive
		}
		c, err := monitoring.NewNotificationChannel(d.ctx, d.name+"-"+logical, args, d.opts...)
		if err != nil {
			return pulumi.StringOutput{}, fmt.Errorf("notification channel %s: %w", logical, err)
		}
		return c.Name, nil
	}
	for i, e := range n.Emails {
		c, err := channel(fmt.Sprintf("email-%d", i), "email", a.Name+" "+e, pulumi.StringMap{"email_address": pulumi.String(e)}, nil)
		if err != nil {
			return nil, nil, err
		}
		pages, tickets = append(pages, c), append(tickets, c)
	}
	if n.SlackChannel != "" {
		c, err := channel("slack", "slack", a.Name+" "+n.SlackChannel, pulumi.StringMap{"channel_name": pulumi.String(n.SlackChannel)},
			&monitoring.NotificationChannelSensitiveLabelsArgs{AuthToken: secret(n.SlackToken)})
		if err != nil {
			return nil, nil, err
		}
		pages, tickets = append(pages, c), append(tickets, c)
	}
	if n.PagerDutyKey != nil {
		c, err := channel("pagerduty", "pagerduty", a.Name+" PagerDuty", nil,
			&monitoring.NotificationChannelSensitiveLabelsArgs{ServiceKey: secret(n.PagerDutyKey)})
		if err != nil {
			return nil, nil, err
		}
		pages = append(pages, c)
	}
	return pages, tickets, nil
}

func secret(s pulumi.StringInput) pulumi.StringOutput {
	return pulumi.ToSecret(s.ToStringOutput()).(pulumi.StringOutput)
}

// alertPolicy is one rule as a Cloud Monitoring alert policy with a PromQL condition
// (https://cloud.google.com/monitoring/promql/create-promql-alerts-console): the expression, its `for` and the
// rule's labels, as Prometheus would evaluate them.
func (d *declarer) alertPolicy(g rules.Group, r rules.Rule, channels []pulumi.StringOutput) (*monitoring.AlertPolicy, error) {
	a := d.a
	severity := "WARNING"
	if r.Severity == rules.Page {
		severity = "CRITICAL"
	}
	labels := d.labels()
	for k, v := range r.Labels() {
		labels[k] = pulumi.String(v)
	}
	p, err := monitoring.NewAlertPolicy(d.ctx, d.name+"-"+r.Runbook, &monitoring.AlertPolicyArgs{
		Project:     pulumi.String(a.Project),
		DisplayName: pulumi.String(a.Name + " " + r.Name),
		Combiner:    pulumi.String("OR"),
		Severity:    pulumi.String(severity),
		Conditions: monitoring.AlertPolicyConditionArray{monitoring.AlertPolicyConditionArgs{
			DisplayName: pulumi.String(r.Name),
			ConditionPrometheusQueryLanguage: monitoring.AlertPolicyConditionConditionPrometheusQueryLanguageArgs{
				Query:              pulumi.String(r.Expr),
				Duration:           pulumi.String(fmt.Sprintf("%ds", int(r.For.Seconds()))),
				EvaluationInterval: pulumi.String(fmt.Sprintf("%ds", int(rules.EvaluationInterval.Seconds()))),
				Labels:             pulumi.ToStringMap(r.Labels()),
				RuleGroup:          pulumi.String(g.Name),
				AlertRule:          pulumi.String(r.Name),
			},
		}},
		Documentation: monitoring.AlertPolicyDocumentationArgs{
			Content:  pulumi.String(fmt.Sprintf("%s.\n\nRunbook: %s%s", r.Summary, rules.RunbookURL, r.Runbook)),
			MimeType: pulumi.String("text/markdown"),
		},
		AlertStrategy:        monitoring.AlertPolicyAlertStrategyArgs{AutoClose: pulumi.String("1800s")},
		NotificationChannels: pulumi.ToStringArrayOutput(channels),
		UserLabels:           labels,
	}, d.opts...)
	if err != nil {
		return nil, fmt.Errorf("alert policy %s: %w", r.Name, err)
	}
	return p, nil
}

// dashboard charts the SLIs and what the operator alerts read, with the rules' own expressions.
func (d *declarer) dashboard() (*monitoring.Dashboard, error) {
	a := d.a
	p := a.Thresholds
	chart := func(title string, queries ...string) map[string]any {
		var sets []any
		for _, q := range queries {
			sets = append(sets, map[string]any{"plotType": "LINE", "timeSeriesQuery": map[string]any{"prometheusQuery": q}})
		}
		return map[string]any{"title": title, "xyChart": map[string]any{"dataSets": sets}}
	}
	widgets := []map[string]any{
		chart("API 5xx ratio (5m, 1h)", rules.ErrorRatio(p, "5m"), rules.ErrorRatio(p, "1h")),
		chart(fmt.Sprintf("Main calls slower than %s (5m, 1h)", p.LatencyThreshold), rules.SlowRatio(p, "5m"), rules.SlowRatio(p, "1h")),
		chart("Requests per second by route", fmt.Sprintf(`sum by (route) (rate(%s{%s}[5m]))`, rules.MetricRequests, p.Web)),
		chart("Outbox lag (s), worker queue depth",
			fmt.Sprintf(`max(%s{%s})`, rules.MetricOutboxLag, p.Worker), fmt.Sprintf(`max(%s{%s})`, rules.MetricQueueDepth, p.Worker)),
		chart("Age of the newest backup per tier (s)", fmt.Sprintf(`time() - max by (tier) (%s{%s})`, rules.MetricBackupSuccess, p.Worker)),
		chart("Webhook attempts by outcome", fmt.Sprintf(`sum by (outcome) (rate(%s{%s}[5m]))`, rules.MetricWebhookAttempts, p.Worker)),
		chart("Cloud SQL CPU and disk utilisation",
			fmt.Sprintf(`max(cloudsql_googleapis_com:database_cpu_utilization{%s})`, p.Database),
			fmt.Sprintf(`max(cloudsql_googleapis_com:database_disk_utilization{%s})`, p.Database)),
		chart("Redis pods up, RabbitMQ nodes up",
			fmt.Sprintf(`count(redis_up{%s} == 1)`, p.Redis), fmt.Sprintf(`count(rabbitmq_identity_info{%s})`, p.RabbitMQ)),
	}
	var tiles []any
	for i, w := range widgets {
		tiles = append(tiles, map[string]any{"xPos": (i % 2) * 24, "yPos": (i / 2) * 16, "width": 24, "height": 16, "widget": w})
	}
	doc, err := json.Marshal(map[string]any{
		"displayName":  a.Name + " OMS",
		"mosaicLayout": map[string]any{"columns": 48, "tiles": tiles},
		"labels":       map[string]string{"omscloud": ""},
	})
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	dash, err := monitoring.NewDashboard(d.ctx, d.name+"-dashboard", &monitoring.DashboardArgs{
		Project: pulumi.String(a.Project), DashboardJson: pulumi.String(string(doc)),
	}, d.opts...)
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	return dash, nil
}

func pct(f float64) string { return fmt.Sprintf("%g", f*100) }
