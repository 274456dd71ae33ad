// Package rules is the one source of every alert omscloud raises: each alert's PromQL expression, its `for`
// duration, severity and runbook. components/observability turns the rules into Cloud Monitoring alert policies
// with PromQL conditions; the tests write the very same rules as a Prometheus rule file that `promtool check rules`
// and `promtool test rules` evaluate, and the runtime's end-to-end test loads it into a real Prometheus.
//
// The package has no Pulumi dependency, so its tests build in seconds.
package rules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Severities: page wakes someone (the promise to customers is at risk now), ticket is for working hours.
const (
	Page   = "page"
	Ticket = "ticket"
)

// Classes group alerts by what they watch; the production policy requires every class.
const (
	ClassSLO       = "slo"
	ClassEndpoint  = "endpoint"
	ClassBackup    = "backup"
	ClassMessaging = "messaging"
	ClassWebhooks  = "webhooks"
	ClassDatabase  = "database"
	ClassCache     = "cache"
	ClassBroker    = "broker"
	ClassTLS       = "tls"
	ClassDR        = "dr"
)

// Classes lists every class in report order.
var Classes = []string{ClassSLO, ClassEndpoint, ClassBackup, ClassMessaging, ClassWebhooks, ClassDatabase, ClassCache,
	ClassBroker, ClassTLS, ClassDR}

// Runtime routes of the main API calls whose latency has an objective: order create and availability.
const MainRoutes = `/v1/orders|/v1/availability`

// Metric names the rules read. The runtime's (runtime/metrics) are Prometheus names; Google's system metrics use
// their PromQL mapping: the first "/" becomes ":", other special characters "_"
// (https://cloud.google.com/monitoring/promql/promql-mapping).
const (
	MetricRequests        = "oms_http_requests_total"
	MetricRequestDuration = "oms_http_request_duration_seconds"
	MetricOutboxLag       = "oms_outbox_lag_seconds"
	MetricQueueDepth      = "oms_queue_depth"
	MetricDeliveryDelay   = "oms_event_delivery_delay_seconds"
	MetricWebhookAttempts = "oms_webhook_attempts_total"
	MetricBackupSuccess   = "oms_backup_last_success_timestamp_seconds"
	MetricBackupStoreUp   = "oms_backup_store_up"
	MetricWorkerRunning   = "oms_worker_running"
	uptimePassed          = "monitoring_googleapis_com:uptime_check_check_passed"
	uptimeCertDays        = "monitoring_googleapis_com:uptime_check_time_until_ssl_cert_expires"
	sqlCPU                = "cloudsql_googleapis_com:database_cpu_utilization"
	sqlDisk               = "cloudsql_googleapis_com:database_disk_utilization"
	sqlUp                 = "cloudsql_googleapis_com:database_up"
	sqlFailover           = "cloudsql_googleapis_com:database_available_for_failover"
)

// Params fit the rules to one environment. Selectors are PromQL label matchers without braces.
type Params struct {
	// Web, Worker, Redis and RabbitMQ select each workload's scraped series (in GKE: cluster, namespace and the
	// PodMonitoring's job).
	Web, Worker, Redis, RabbitMQ string
	// Hosts selects the uptime checks' series of the public hostnames (host="a" or host=~"a|b").
	Hosts string
	// Database selects the Cloud SQL instance's series (database_id="<project>:<instance>").
	Database string

	// AvailabilityObjective is the share of API requests that must not fail with a 5xx (0.9995).
	AvailabilityObjective float64
	// LatencyObjective is the share of main API calls (MainRoutes) faster than LatencyThreshold (0.99).
	LatencyObjective float64
	// LatencyThreshold must be a bucket boundary of oms_http_request_duration_seconds (runtime/metrics).
	LatencyThreshold time.Duration

	// BackupMaxAge is the age of the newest hourly backup that alerts (2h).
	BackupMaxAge time.Duration
	// OutboxLag and ConsumerLag alert when events wait longer than this to be published or consumed (5m);
	// QueueDepth when this many messages wait in the worker queue.
	OutboxLag, ConsumerLag time.Duration
	QueueDepth             int
	// DatabaseCPU and DatabaseDisk are utilisations (0..1) that alert when exceeded.
	DatabaseCPU, DatabaseDisk float64
	// CertificateDays alerts when a served certificate expires within this many days (managed certificates renew
	// 30 days ahead: a certificate this close to expiry failed to renew).
	CertificateDays int
	// Regional adds the failover-readiness alert (a REGIONAL Cloud SQL instance has a standby).
	Regional bool
	// Cells: Database selects several instances (database cells). The database alerts then aggregate by
	// database_id, so that one cell's trouble fires on its own (max() would hide one standby that cannot take
	// over behind another that can) and the alert names the instance.
	Cells bool
	// DR adds the DR-readiness alert (production stacks with a DR site).
	DR bool
	// Quorum is the number of Redis and RabbitMQ pods that must be up (a majority: 2 of 3).
	Quorum int
}

// Production are the defaults of a production environment; the selectors are left to the caller.
func Production() Params {
	return Params{
		AvailabilityObjective: 0.9995, LatencyObjective: 0.99, LatencyThreshold: 500 * time.Millisecond,
		BackupMaxAge: 2 * time.Hour, OutboxLag: 5 * time.Minute, ConsumerLag: 5 * time.Minute, QueueDepth: 10000,
		DatabaseCPU: 0.9, DatabaseDisk: 0.85, CertificateDays: 14, Regional: true, DR: true, Quorum: 2,
	}
}

// Sandbox are lighter: a sandbox breaks for a customer's tests, not for their shoppers.
func Sandbox() Params {
	p := Production()
	p.AvailabilityObjective, p.LatencyObjective, p.LatencyThreshold = 0.995, 0.95, time.Second
	p.BackupMaxAge, p.OutboxLag, p.ConsumerLag = 3*time.Hour, 15*time.Minute, 15*time.Minute
	p.DatabaseCPU, p.CertificateDays, p.Regional, p.DR = 0.95, 7, false, false
	return p
}

// Validate reports parameters that would make a rule meaningless.
func (p Params) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, s := range []struct{ field, v string }{{"Web", p.Web}, {"Worker", p.Worker}, {"Redis", p.Redis},
		{"RabbitMQ", p.RabbitMQ}, {"Hosts", p.Hosts}, {"Database", p.Database}} {
		if s.v == "" || strings.ContainsAny(s.v, "{}") {
			add("%s %q: give label matchers without braces, e.g. job=\"web\"", s.field, s.v)
		}
	}
	for _, o := range []struct {
		field string
		v     float64
	}{{"AvailabilityObjective", p.AvailabilityObjective}, {"LatencyObjective", p.LatencyObjective}} {
		// 1x burn over 3 days must stay a ratio below 1: objectives under 90% make the slow-burn threshold moot.
		if o.v < 0.9 || o.v >= 1 {
			add("%s is %v: use a share in [0.9, 1), e.g. 0.9995", o.field, o.v)
		}
	}
	if !isBucket(p.LatencyThreshold) {
		add("LatencyThreshold %s is not a bucket boundary of %s: use one of %v", p.LatencyThreshold, MetricRequestDuration, Buckets)
	}
	if p.BackupMaxAge < time.Hour+10*time.Minute {
		add("BackupMaxAge %s: hourly backups run once an hour and take minutes, alert after at least 70m", p.BackupMaxAge)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"OutboxLag", p.OutboxLag}, {"ConsumerLag", p.ConsumerLag}} {
		if d.v < 30*time.Second {
			add("%s %s: below 30s alerts on ordinary bursts", d.field, d.v)
		}
	}
	if p.QueueDepth < 1 {
		add("QueueDepth %d: give the number of waiting messages that alerts", p.QueueDepth)
	}
	for _, u := range []struct {
		field string
		v     float64
	}{{"DatabaseCPU", p.DatabaseCPU}, {"DatabaseDisk", p.DatabaseDisk}} {
		if u.v <= 0 || u.v >= 1 {
			add("%s is %v: give a utilisation in (0, 1)", u.field, u.v)
		}
	}
	if p.CertificateDays < 1 || p.CertificateDays > 29 {
		add("CertificateDays %d: use 1..29 (managed certificates renew 30 days before expiry)", p.CertificateDays)
	}
	if p.Quorum < 2 {
		add("Quorum %d: a majority of 3 pods is 2", p.Quorum)
	}
	return errors.Join(errs...)
}

// Buckets are the latency histogram's boundaries (runtime/metrics: oms_http_request_duration_seconds).
var Buckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func isBucket(d time.Duration) bool {
	for _, b := range Buckets {
		if time.Duration(b*float64(time.Second)) == d {
			return true
		}
	}
	return false
}

// Rule is one alert.
type Rule struct {
	Name  string
	Class string
	// Expr is PromQL: the alert is active for every series it returns.
	Expr string
	// For is how long Expr must hold before the alert fires.
	For      time.Duration
	Severity string
	Summary  string
	// Runbook is the anchor of the alert's runbook in components/observability/README.md.
	Runbook string
}

// Group is a Prometheus rule group; Cloud Monitoring records it in each condition (ruleGroup).
type Group struct {
	Name  string
	Rules []Rule
}

// Burn-rate windows and thresholds for a 30-day objective, from the SRE workbook's "Alerting on SLOs", table 5-8
// (https://sre.google/workbook/alerting-on-slos/#6-multiwindow-multi-burn-rate-alerts): a page when 2% of the
// budget burns in 1h or 5% in 6h, a ticket when 10% burns in 3d or 1 day burns at 3x; each long window is paired
// with a short one (1/12 of it) so the alert resets soon after the burn stops.
var (
	pageWindows   = []burnWindow{{"1h", "5m", 14.4}, {"6h", "30m", 6}}
	ticketWindows = []burnWindow{{"1d", "2h", 3}, {"3d", "6h", 1}}
)

type burnWindow struct {
	long, short string
	factor      float64
}

// ErrorRatio is the share of API requests answered with a 5xx over window ("5m").
func ErrorRatio(p Params, window string) string {
	return fmt.Sprintf(`(sum(rate(%[1]s{%[2]s,route=~"/v1/.+",code=~"5.."}[%[3]s])) / sum(rate(%[1]s{%[2]s,route=~"/v1/.+"}[%[3]s])))`,
		MetricRequests, p.Web, window)
}

// SlowRatio is the share of main API calls slower than LatencyThreshold over window.
func SlowRatio(p Params, window string) string {
	sel := fmt.Sprintf(`%s,method="POST",route=~"%s"`, p.Web, MainRoutes)
	return fmt.Sprintf(`(1 - sum(rate(%[1]s_bucket{%[2]s,le="%[3]s"}[%[4]s])) / sum(rate(%[1]s_count{%[2]s}[%[4]s])))`,
		MetricRequestDuration, sel, num(p.LatencyThreshold.Seconds()), window)
}

// burn ORs the window pairs: both windows of a pair above factor×budget.
func burn(ratio func(Params, string) string, p Params, budget float64, windows []burnWindow) string {
	var parts []string
	for _, w := range windows {
		limit := num(w.factor * budget)
		parts = append(parts, fmt.Sprintf("(%s > %s and %s > %s)", ratio(p, w.long), limit, ratio(p, w.short), limit))
	}
	return strings.Join(parts, "\nor\n")
}

// num formats a threshold without float noise (0.0072, not 0.007200000000000001).
func num(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }

func seconds(d time.Duration) string { return num(d.Seconds()) }

// promDuration renders a Prometheus duration ("2h", "90m", "45s").
func promDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// For returns the environment's alert rules. Alerts that do not apply (failover readiness without a standby, DR
// readiness without a DR site) are left out.
func For(p Params) ([]Group, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	availabilityBudget := 1 - p.AvailabilityObjective
	latencyBudget := 1 - p.LatencyObjective
	hourly := fmt.Sprintf(`%s{%s,tier="hourly"}`, MetricBackupSuccess, p.Worker)
	weekly := fmt.Sprintf(`%s{%s,tier="weekly"}`, MetricBackupSuccess, p.Worker)
	monthly := fmt.Sprintf(`%s{%s,tier="monthly"}`, MetricBackupSuccess, p.Worker)
	slo := Group{Name: "omscloud-slo", Rules: []Rule{
		{Name: "OMSAvailabilityBudgetBurnFast", Class: ClassSLO, Severity: Page, For: 2 * time.Minute,
			Expr:    burn(ErrorRatio, p, availabilityBudget, pageWindows),
			Summary: fmt.Sprintf("API 5xx errors burn the %s%% availability budget: 2%% of the month's budget in 1h, or 5%% in 6h", pct(p.AvailabilityObjective))},
		{Name: "OMSAvailabilityBudgetBurnSlow", Class: ClassSLO, Severity: Ticket, For: 15 * time.Minute,
			Expr:    burn(ErrorRatio, p, availabilityBudget, ticketWindows),
			Summary: fmt.Sprintf("API 5xx errors burn the %s%% availability budget steadily: 10%% of the month's budget in 1 to 3 days", pct(p.AvailabilityObjective))},
		{Name: "OMSLatencyBudgetBurnFast", Class: ClassSLO, Severity: Page, For: 2 * time.Minute,
			Expr: burn(SlowRatio, p, latencyBudget, pageWindows),
			Summary: fmt.Sprintf("order create and availability calls slower than %s burn the %s%% latency budget fast",
				p.LatencyThreshold, pct(p.LatencyObjective))},
		{Name: "OMSLatencyBudgetBurnSlow", Class: ClassSLO, Severity: Ticket, For: 15 * time.Minute,
			Expr: burn(SlowRatio, p, latencyBudget, ticketWindows),
			Summary: fmt.Sprintf("order create and availability calls slower than %s burn the %s%% latency budget steadily",
				p.LatencyThreshold, pct(p.LatencyObjective))},
	}}
	// Uptime checks run from several regions; two failing locations (not one flaky checker) mean the public
	// endpoint is down for real (https://cloud.google.com/monitoring/uptime-checks#alerting).
	endpoint := Group{Name: "omscloud-endpoint", Rules: []Rule{
		{Name: "OMSEndpointDown", Class: ClassEndpoint, Severity: Page, For: 3 * time.Minute,
			Expr:    fmt.Sprintf(`count by (host) (%s{%s} == 0) >= 2`, uptimePassed, p.Hosts),
			Summary: "the public endpoint's /readyz fails from at least two uptime-check locations"},
		{Name: "OMSCertificateExpiring", Class: ClassTLS, Severity: Ticket, For: 1 * time.Hour,
			Expr:    fmt.Sprintf(`min by (host) (%s{%s}) < %d`, uptimeCertDays, p.Hosts, p.CertificateDays),
			Summary: fmt.Sprintf("a public hostname's certificate expires within %d days: its renewal failed", p.CertificateDays)},
	}}
	backups := Group{Name: "omscloud-backup", Rules: []Rule{
		// The worker reports a tier that has no backup yet as last succeeded when it started watching, so a new
		// environment alerts only if its first backups never come.
		{Name: "OMSHourlyBackupStale", Class: ClassBackup, Severity: Page, For: 5 * time.Minute,
			Expr:    fmt.Sprintf("time() - max(%s) > %s", hourly, seconds(p.BackupMaxAge)),
			Summary: fmt.Sprintf("no successful hourly backup for more than %s", p.BackupMaxAge)},
		{Name: "OMSLongTermBackupStale", Class: ClassBackup, Severity: Ticket, For: 1 * time.Hour,
			// weekly every 7 days, monthly on the 1st: a day of slack for a late or retried run.
			Expr:    fmt.Sprintf("time() - max(%s) > 8 * 86400\nor\ntime() - max(%s) > 32 * 86400", weekly, monthly),
			Summary: "the weekly or monthly backup is overdue"},
		{Name: "OMSBackupStoreUnreadable", Class: ClassBackup, Severity: Page, For: 30 * time.Minute,
			Expr:    fmt.Sprintf(`max(%s{%s}) == 0`, MetricBackupStoreUp, p.Worker),
			Summary: "the worker cannot list the backup bucket (in the DR region): backups may be unreadable when they are needed"},
	}}
	messaging := Group{Name: "omscloud-messaging", Rules: []Rule{
		{Name: "OMSOutboxLagHigh", Class: ClassMessaging, Severity: Page, For: 10 * time.Minute,
			Expr:    fmt.Sprintf(`max(%s{%s}) > %s`, MetricOutboxLag, p.Worker, seconds(p.OutboxLag)),
			Summary: fmt.Sprintf("events wait more than %s in an account's outbox: webhooks and workflows stall", p.OutboxLag)},
		{Name: "OMSConsumerLagHigh", Class: ClassMessaging, Severity: Page, For: 10 * time.Minute,
			Expr: fmt.Sprintf(`histogram_quantile(0.95, sum by (le) (rate(%s_bucket{%s}[10m]))) > %s`+"\nor\n"+`max(%s{%s}) > %d`,
				MetricDeliveryDelay, p.Worker, seconds(p.ConsumerLag), MetricQueueDepth, p.Worker, p.QueueDepth),
			Summary: fmt.Sprintf("events reach the consumers more than %s late, or %d wait in the worker queue", p.ConsumerLag, p.QueueDepth)},
		// The worker reports itself running; a dead or crash-looping worker stops publishing and consuming, and its
		// own lag metrics vanish with it, so this is the alert that sees it.
		{Name: "OMSWorkerDown", Class: ClassMessaging, Severity: Page, For: 3 * time.Minute,
			Expr:    fmt.Sprintf(`sum(%[1]s{%[2]s}) < 1 or absent(%[1]s{%[2]s})`, MetricWorkerRunning, p.Worker),
			Summary: "no OMS worker is running: the outbox, the queue and webhooks are not processed"},
	}}
	webhooks := Group{Name: "omscloud-webhooks", Rules: []Rule{
		{Name: "OMSWebhookDeadLetters", Class: ClassWebhooks, Severity: Ticket, For: 0,
			Expr:    fmt.Sprintf(`sum(increase(%s{%s,outcome="dead"}[15m])) > 0`, MetricWebhookAttempts, p.Worker),
			Summary: "webhook deliveries were dead-lettered after their last retry: a customer's endpoint missed events"},
	}}
	sql := fmt.Sprintf(`{%s,monitored_resource="cloudsql_database"}`, p.Database)
	// byInstance aggregates per instance where there are several (Params.Cells).
	byInstance := func(op string) string {
		if p.Cells {
			return op + " by (database_id) "
		}
		return op
	}
	database := Group{Name: "omscloud-database", Rules: []Rule{
		{Name: "OMSDatabaseDown", Class: ClassDatabase, Severity: Page, For: 3 * time.Minute,
			Expr:    fmt.Sprintf(`%s(%s%s) < 1`, byInstance("min"), sqlUp, sql),
			Summary: "Cloud SQL reports the database instance down"},
		{Name: "OMSDatabaseCPUHigh", Class: ClassDatabase, Severity: Ticket, For: 15 * time.Minute,
			Expr:    fmt.Sprintf(`%s(%s%s) > %s`, byInstance("max"), sqlCPU, sql, num(p.DatabaseCPU)),
			Summary: fmt.Sprintf("Cloud SQL CPU above %s%% for 15 minutes", num(p.DatabaseCPU*100))},
		{Name: "OMSDatabaseDiskFull", Class: ClassDatabase, Severity: Page, For: 15 * time.Minute,
			Expr:    fmt.Sprintf(`%s(%s%s) > %s`, byInstance("max"), sqlDisk, sql, num(p.DatabaseDisk)),
			Summary: fmt.Sprintf("Cloud SQL disk above %s%% although it grows automatically", num(p.DatabaseDisk*100))},
	}}
	if p.Regional {
		// available_for_failover is > 0 while the synchronous standby can take over
		// (https://cloud.google.com/sql/docs/postgres/admin-api/metrics: database/available_for_failover).
		database.Rules = append(database.Rules, Rule{Name: "OMSDatabaseFailoverUnavailable", Class: ClassDatabase, Severity: Page,
			For: 15 * time.Minute, Expr: fmt.Sprintf(`%s(%s%s) < 1`, byInstance("max"), sqlFailover, sql),
			Summary: "the Cloud SQL standby cannot take over: replication to it is broken or a failover is under way"})
	}
	// Redis' exporter and RabbitMQ's prometheus plugin run in each pod: a pod that is down stops reporting.
	data := Group{Name: "omscloud-data", Rules: []Rule{
		{Name: "OMSRedisQuorumLost", Class: ClassCache, Severity: Page, For: 2 * time.Minute,
			Expr:    fmt.Sprintf(`(count(redis_up{%s} == 1) or vector(0)) < %d`, p.Redis, p.Quorum),
			Summary: fmt.Sprintf("fewer than %d Redis pods are up: Sentinel cannot elect a master on failure", p.Quorum)},
		{Name: "OMSRedisMemoryHigh", Class: ClassCache, Severity: Ticket, For: 15 * time.Minute,
			// maxmemory is 70% of the container's limit (components/redis): resident memory 1.3x maxmemory is ~90%
			// of the limit, where the kernel kills the pod.
			Expr:    fmt.Sprintf(`max(redis_memory_used_rss_bytes{%[1]s} / redis_memory_max_bytes{%[1]s}) > 1.3`, p.Redis),
			Summary: "Redis' resident memory nears its container's limit (fragmentation): the pod may be OOM-killed"},
		{Name: "OMSRabbitMQQuorumLost", Class: ClassBroker, Severity: Page, For: 2 * time.Minute,
			Expr:    fmt.Sprintf(`(count(rabbitmq_identity_info{%s}) or vector(0)) < %d`, p.RabbitMQ, p.Quorum),
			Summary: fmt.Sprintf("fewer than %d RabbitMQ nodes are up: quorum queues stop accepting messages", p.Quorum)},
		{Name: "OMSRabbitMQAlarm", Class: ClassBroker, Severity: Page, For: 5 * time.Minute,
			// A memory or disk alarm blocks every publishing connection
			// (https://www.rabbitmq.com/docs/alarms; metrics: https://www.rabbitmq.com/docs/prometheus).
			Expr: fmt.Sprintf(`max(rabbitmq_alarms_memory_used_watermark{%[1]s}) > 0 or max(rabbitmq_alarms_free_disk_space_watermark{%[1]s}) > 0`,
				p.RabbitMQ),
			Summary: "a RabbitMQ memory or disk alarm blocks publishers: the relay cannot publish events"},
	}}
	groups := []Group{slo, endpoint, backups, messaging, webhooks, database, data}
	if p.DR {
		groups = append(groups, Group{Name: "omscloud-dr", Rules: []Rule{
			// The anchor RPO is the last daily backup: DR is ready while a backup under a day old (plus an hour) is
			// listed in the DR-region bucket.
			{Name: "OMSDRNotReady", Class: ClassDR, Severity: Page, For: 30 * time.Minute,
				Expr:    fmt.Sprintf("time() - max(%[1]s{%[2]s}) > 90000\nor\nmax(%[3]s{%[2]s}) == 0", MetricBackupSuccess, p.Worker, MetricBackupStoreUp),
				Summary: "a DR spin-up now could not restore a backup within the RPO: none under 25 hours is readable in the DR region"},
		}})
	}
	for gi := range groups {
		for ri := range groups[gi].Rules {
			r := &groups[gi].Rules[ri]
			r.Runbook = strings.ToLower(r.Name)
		}
	}
	return groups, nil
}

func pct(f float64) string { return num(f * 100) }

// All flattens the groups.
func All(groups []Group) []Rule {
	var out []Rule
	for _, g := range groups {
		out = append(out, g.Rules...)
	}
	return out
}

// RunbookURL is where an alert's runbook lives.
const RunbookURL = "https://github.com/omscloud/omscloud/blob/main/components/observability/README.md#"

// promRuleFile mirrors Prometheus' rule file format
// (https://prometheus.io/docs/prometheus/latest/configuration/alerting_rules/).
type promRuleFile struct {
	Groups []promGroup `yaml:"groups"`
}

type promGroup struct {
	Name     string     `yaml:"name"`
	Interval string     `yaml:"interval,omitempty"`
	Rules    []promRule `yaml:"rules"`
}

type promRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// Labels are the labels an alert carries, in Prometheus and in Cloud Monitoring.
func (r Rule) Labels() map[string]string {
	return map[string]string{"severity": r.Severity, "class": r.Class}
}

// PromDuration is For as Prometheus writes it ("" for 0).
func (r Rule) PromDuration() string {
	if r.For == 0 {
		return ""
	}
	return promDuration(r.For)
}

// EvaluationInterval is how often every rule is evaluated: Cloud Monitoring's PromQL conditions default to 30s, and
// Prometheus' rule groups take the same so a test and production see the same timing.
const EvaluationInterval = 30 * time.Second

// PrometheusYAML renders the groups as a Prometheus rule file evaluated every EvaluationInterval.
func PrometheusYAML(groups []Group) ([]byte, error) {
	return PrometheusYAMLEvery(groups, EvaluationInterval)
}

// PrometheusYAMLEvery renders the groups evaluated every interval (a local end-to-end test evaluates every second).
func PrometheusYAMLEvery(groups []Group, interval time.Duration) ([]byte, error) {
	f := promRuleFile{}
	for _, g := range groups {
		pg := promGroup{Name: g.Name, Interval: promDuration(interval)}
		for _, r := range g.Rules {
			pg.Rules = append(pg.Rules, promRule{Alert: r.Name, Expr: r.Expr, For: r.PromDuration(), Labels: r.Labels(),
				Annotations: map[string]string{"summary": r.Summary, "runbook": RunbookURL + r.Runbook}})
		}
		f.Groups = append(f.Groups, pg)
	}
	out, err := yaml.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("rules: render the Prometheus rule file: %w", err)
	}
	return out, nil
}
