package rules_test

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/omscloud/omscloud/components/observability/rules"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// testParams select the series the synthetic inputs below carry.
func testParams(p rules.Params) rules.Params {
	p.Web, p.Worker, p.Redis, p.RabbitMQ = `job="web"`, `job="worker"`, `job="redis"`, `job="rabbitmq"`
	p.Hosts, p.Database = `host="oms.example.com"`, `database_id="p:oms-pg"`
	return p
}

func TestProductionHasEveryClassAndSandboxIsLighter(t *testing.T) {
	prod, err := rules.For(testParams(rules.Production()))
	require.NoError(t, err)
	sandbox, err := rules.For(testParams(rules.Sandbox()))
	require.NoError(t, err)

	classes := map[string]bool{}
	names := map[string]bool{}
	for _, r := range rules.All(prod) {
		assert.False(t, names[r.Name], "%s is declared once", r.Name)
		names[r.Name] = true
		classes[r.Class] = true
		assert.Contains(t, []string{rules.Page, rules.Ticket}, r.Severity, r.Name)
		assert.NotEmpty(t, r.Summary, r.Name)
		assert.Equal(t, strings.ToLower(r.Name), r.Runbook, r.Name)
		// Cloud Monitoring takes the name as the condition's alertRule, which "must be a valid Prometheus label name",
		// and evaluates every multiple of 30s (pulumi-gcp v7 AlertPolicyConditionConditionPrometheusQueryLanguage).
		assert.Regexp(t, `^[a-zA-Z_][a-zA-Z0-9_]*$`, r.Name)
		assert.Zero(t, r.For%time.Second, "%s: for is whole seconds", r.Name)
	}
	assert.Zero(t, rules.EvaluationInterval%(30*time.Second), "Cloud Monitoring evaluates PromQL conditions every multiple of 30s")
	assert.ElementsMatch(t, rules.Classes, slices.Collect(maps.Keys(classes)), "production raises every class of alert")

	byName := func(gs []rules.Group, name string) rules.Rule {
		for _, r := range rules.All(gs) {
			if r.Name == name {
				return r
			}
		}
		return rules.Rule{}
	}
	// 99.95% leaves 0.05% of requests: the fast page fires at 14.4x that, 0.72% errors.
	assert.Contains(t, byName(prod, "OMSAvailabilityBudgetBurnFast").Expr, "> 0.0072")
	assert.Contains(t, byName(prod, "OMSHourlyBackupStale").Expr, "> 7200")
	assert.Contains(t, byName(sandbox, "OMSHourlyBackupStale").Expr, "> 10800")
	assert.Empty(t, byName(sandbox, "OMSDRNotReady").Name, "a sandbox has no DR site")
	assert.Empty(t, byName(sandbox, "OMSDatabaseFailoverUnavailable").Name, "a ZONAL sandbox database has no standby")
}

func TestParamsValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*rules.Params)
		want   string
	}{
		{"selector with braces", func(p *rules.Params) { p.Web = `{job="web"}` }, "Web"},
		{"objective as a percentage", func(p *rules.Params) { p.AvailabilityObjective = 99.95 }, "AvailabilityObjective"},
		{"latency between buckets", func(p *rules.Params) { p.LatencyThreshold = 300 * time.Millisecond }, "bucket boundary"},
		{"backup age under an hour", func(p *rules.Params) { p.BackupMaxAge = time.Hour }, "BackupMaxAge"},
		{"certificate past renewal", func(p *rules.Params) { p.CertificateDays = 30 }, "CertificateDays"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testParams(rules.Production())
			tc.change(&p)
			_, err := rules.For(p)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// ---- promtool ----------------------------------------------------------------------------------------------------

// requirePromtool skips without promtool, except under CI=true where a missing binary is a failure (like the other
// real-software layers: runtime/localenv/localenvtest.RequireBinaries).
func requirePromtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err == nil {
		return path
	}
	msg := "promtool is not installed (scripts/install-services.sh installs Debian's prometheus package)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true makes this a failure")
	}
	t.Skip(msg)
	return ""
}

// alertCase is one promtool unit test: the synthetic series, and at each evaluation time whether the alert is
// firing (with which labels beyond severity and class).
type alertCase struct {
	name   string
	alert  string
	series map[string]string
	// interval between samples (default 1m).
	interval string
	checks   []check
}

type check struct {
	at     string
	firing bool
	labels map[string]string
}

func fires(at string, labels ...string) check {
	c := check{at: at, firing: true, labels: map[string]string{}}
	for i := 0; i+1 < len(labels); i += 2 {
		c.labels[labels[i]] = labels[i+1]
	}
	return c
}

func quiet(at string) check { return check{at: at} }

const (
	ok201  = `oms_http_requests_total{job="web",method="POST",route="/v1/orders",code="201"}`
	err500 = `oms_http_requests_total{job="web",method="POST",route="/v1/orders",code="500"}`
	fast   = `oms_http_request_duration_seconds_bucket{job="web",method="POST",route="/v1/orders",le="0.5"}`
	count  = `oms_http_request_duration_seconds_count{job="web",method="POST",route="/v1/orders"}`
	uptime = `monitoring_googleapis_com:uptime_check_check_passed{host="oms.example.com",checker_location="%s"}`
	sqlSel = `{database_id="p:oms-pg",monitored_resource="cloudsql_database"}`
)

// Every alert has a case that makes it fire and then resolve; the burn-rate alerts also have a case whose burn is
// below their threshold (the slow burn must not page), as the SRE workbook's windows intend.
var cases = []alertCase{
	{name: "5% errors page within minutes and resolve once the 30m window is clean",
		alert: "OMSAvailabilityBudgetBurnFast",
		series: map[string]string{
			ok201:  "0+100x200",
			err500: "0x30 0+5x60 300x109",
		},
		checks: []check{quiet("29m"), fires("40m"), fires("100m"), quiet("125m")}},
	{name: "0.2% errors open a ticket after hours, never a page", alert: "OMSAvailabilityBudgetBurnSlow",
		series: map[string]string{
			ok201:  "0+1000x720",
			err500: "0+2x240 480x480",
		},
		checks: []check{quiet("10m"), fires("3h"), fires("6h"), quiet("11h")}},
	{name: "0.2% errors do not page", alert: "OMSAvailabilityBudgetBurnFast",
		series: map[string]string{
			ok201:  "0+1000x300",
			err500: "0+2x300",
		},
		checks: []check{quiet("1h"), quiet("3h"), quiet("5h")}},
	{name: "30% slow order creates page", alert: "OMSLatencyBudgetBurnFast",
		series: map[string]string{
			count: "0+100x150",
			fast:  "0+100x30 3000+70x60 7200+100x59",
		},
		checks: []check{quiet("29m"), fires("40m"), quiet("150m")}},
	{name: "5% slow order creates open a ticket, no page", alert: "OMSLatencyBudgetBurnSlow",
		series: map[string]string{
			count: "0+100x720",
			fast:  "0+95x240 22800+100x480",
		},
		checks: []check{fires("3h"), quiet("11h")}},
	{name: "5% slow order creates do not page", alert: "OMSLatencyBudgetBurnFast",
		series: map[string]string{count: "0+100x300", fast: "0+95x300"},
		checks: []check{quiet("1h"), quiet("4h")}},
	{name: "two uptime locations failing page", alert: "OMSEndpointDown",
		series: map[string]string{
			fmt.Sprintf(uptime, "usa-iowa"):       "1x10 0x10 1x10",
			fmt.Sprintf(uptime, "eur-belgium"):    "1x10 0x10 1x10",
			fmt.Sprintf(uptime, "apac-singapore"): "1x30",
		},
		checks: []check{quiet("10m"), fires("15m", "host", "oms.example.com"), quiet("25m")}},
	{name: "one flaky uptime location does not page", alert: "OMSEndpointDown",
		series: map[string]string{
			fmt.Sprintf(uptime, "usa-iowa"):    "1x10 0x20",
			fmt.Sprintf(uptime, "eur-belgium"): "1x30",
		},
		checks: []check{quiet("20m"), quiet("30m")}},
	{name: "a certificate 13 days from expiry opens a ticket", alert: "OMSCertificateExpiring",
		interval: "1h",
		series: map[string]string{
			`monitoring_googleapis_com:uptime_check_time_until_ssl_cert_expires{host="oms.example.com",checker_location="usa-iowa"}`: "20 19 18 17 16 15 14 13 13 13 89 89",
		},
		checks: []check{quiet("6h"), fires("9h", "host", "oms.example.com"), quiet("11h")}},
	{name: "no hourly backup for over 2h pages; the next one resolves it", alert: "OMSHourlyBackupStale",
		series: map[string]string{
			`oms_backup_last_success_timestamp_seconds{job="worker",tier="hourly"}`: "0x130 7800x20",
		},
		checks: []check{quiet("1h"), quiet("2h"), fires("2h8m"), quiet("2h12m")}},
	{name: "a weekly backup 8 days old opens a ticket", alert: "OMSLongTermBackupStale", interval: "1h",
		series: map[string]string{
			`oms_backup_last_success_timestamp_seconds{job="worker",tier="weekly"}`:  "0x200 720000x10",
			`oms_backup_last_success_timestamp_seconds{job="worker",tier="monthly"}`: "0x210",
		},
		checks: []check{quiet("7d"), fires("8d2h"), quiet("8d10h")}},
	{name: "a monthly backup 32 days old opens a ticket", alert: "OMSLongTermBackupStale", interval: "1h",
		series: map[string]string{
			`oms_backup_last_success_timestamp_seconds{job="worker",tier="weekly"}`:  "0+3600x800",
			`oms_backup_last_success_timestamp_seconds{job="worker",tier="monthly"}`: "0x800",
		},
		checks: []check{quiet("31d"), fires("32d2h")}},
	{name: "an unreadable backup bucket pages after 30m", alert: "OMSBackupStoreUnreadable",
		series: map[string]string{`oms_backup_store_up{job="worker"}`: "1x10 0x40 1x10"},
		checks: []check{quiet("30m"), fires("45m"), quiet("55m")}},
	{name: "an outbox 10 minutes behind pages", alert: "OMSOutboxLagHigh",
		series: map[string]string{
			`oms_outbox_lag_seconds{job="worker",account="northwind"}`: "1x10 600x20 1x10",
			`oms_outbox_lag_seconds{job="worker",account="contoso"}`:   "1x40",
		},
		checks: []check{quiet("15m"), fires("25m"), quiet("35m")}},
	{name: "a full worker queue pages", alert: "OMSConsumerLagHigh",
		series: map[string]string{`oms_queue_depth{job="worker",queue="oms.worker"}`: "10x10 20000x20 0x10"},
		checks: []check{quiet("15m"), fires("25m"), quiet("35m")}},
	{name: "events consumed 10 minutes late page", alert: "OMSConsumerLagHigh",
		series: map[string]string{
			`oms_event_delivery_delay_seconds_bucket{job="worker",le="60"}`:   "0+10x10 100x30",
			`oms_event_delivery_delay_seconds_bucket{job="worker",le="600"}`:  "0+10x10 100+10x20 300x10",
			`oms_event_delivery_delay_seconds_bucket{job="worker",le="+Inf"}`: "0+10x10 100+10x20 300x10",
		},
		checks: []check{quiet("10m"), fires("28m"), quiet("45m")}},
	{name: "a killed worker pages; its restart resolves it", alert: "OMSWorkerDown",
		series: map[string]string{`oms_worker_running{job="worker",instance="w1"}`: "1x10 stale _x9 1x10"},
		checks: []check{quiet("10m"), fires("15m", "job", "worker"), quiet("21m")}},
	{name: "dead-lettered webhooks open a ticket", alert: "OMSWebhookDeadLetters",
		series: map[string]string{`oms_webhook_attempts_total{job="worker",outcome="dead"}`: "0x10 1x30"},
		checks: []check{quiet("10m"), fires("12m"), quiet("30m")}},
	{name: "a database reported down pages", alert: "OMSDatabaseDown",
		series: map[string]string{"cloudsql_googleapis_com:database_up" + sqlSel: "1x10 0x10 1x10"},
		checks: []check{quiet("10m"), fires("15m"), quiet("25m")}},
	{name: "database CPU at 95% for 15m opens a ticket", alert: "OMSDatabaseCPUHigh",
		series: map[string]string{"cloudsql_googleapis_com:database_cpu_utilization" + sqlSel: "0.5x10 0.95x30 0.5x10"},
		checks: []check{quiet("20m"), fires("30m"), quiet("45m")}},
	{name: "database disk at 90% pages", alert: "OMSDatabaseDiskFull",
		series: map[string]string{"cloudsql_googleapis_com:database_disk_utilization" + sqlSel: "0.5x10 0.9x30 0.5x10"},
		checks: []check{quiet("20m"), fires("30m"), quiet("45m")}},
	{name: "a standby that cannot take over pages", alert: "OMSDatabaseFailoverUnavailable",
		series: map[string]string{"cloudsql_googleapis_com:database_available_for_failover" + sqlSel: "1x10 0x30 1x10"},
		checks: []check{quiet("20m"), fires("30m"), quiet("45m")}},
	{name: "two of three Redis pods down page", alert: "OMSRedisQuorumLost",
		series: map[string]string{
			`redis_up{job="redis",pod="redis-0"}`: "1x30",
			`redis_up{job="redis",pod="redis-1"}`: "1x10 stale _x9 1x10",
			`redis_up{job="redis",pod="redis-2"}`: "1x10 0x10 1x10",
		},
		checks: []check{quiet("10m"), fires("15m"), quiet("25m")}},
	{name: "Redis resident memory at 1.4x maxmemory opens a ticket", alert: "OMSRedisMemoryHigh",
		series: map[string]string{
			`redis_memory_used_rss_bytes{job="redis",pod="redis-0"}`: "100x10 140x30 100x10",
			`redis_memory_max_bytes{job="redis",pod="redis-0"}`:      "100x50",
		},
		checks: []check{quiet("20m"), fires("30m"), quiet("45m")}},
	{name: "two of three RabbitMQ nodes down page", alert: "OMSRabbitMQQuorumLost",
		series: map[string]string{
			`rabbitmq_identity_info{job="rabbitmq",rabbitmq_node="rabbit@0"}`: "1x30",
			`rabbitmq_identity_info{job="rabbitmq",rabbitmq_node="rabbit@1"}`: "1x10 stale _x9 1x10",
			`rabbitmq_identity_info{job="rabbitmq",rabbitmq_node="rabbit@2"}`: "1x10 stale _x9 1x10",
		},
		checks: []check{quiet("10m"), fires("15m"), quiet("25m")}},
	{name: "a RabbitMQ memory alarm pages", alert: "OMSRabbitMQAlarm",
		series: map[string]string{
			`rabbitmq_alarms_memory_used_watermark{job="rabbitmq",rabbitmq_node="rabbit@0"}`:     "0x10 1x10 0x10",
			`rabbitmq_alarms_free_disk_space_watermark{job="rabbitmq",rabbitmq_node="rabbit@0"}`: "0x30",
		},
		checks: []check{quiet("10m"), fires("18m"), quiet("25m")}},
	{name: "no backup readable within a day pages DR readiness", alert: "OMSDRNotReady", interval: "10m",
		series: map[string]string{
			`oms_backup_last_success_timestamp_seconds{job="worker",tier="hourly"}`: "0x160 96000x10",
			`oms_backup_store_up{job="worker"}`:                                     "1x170",
		},
		checks: []check{quiet("24h"), fires("26h"), quiet("27h20m")}},
	{name: "an unreadable DR bucket pages DR readiness", alert: "OMSDRNotReady",
		series: map[string]string{
			`oms_backup_last_success_timestamp_seconds{job="worker",tier="hourly"}`: "0+60x60",
			`oms_backup_store_up{job="worker"}`:                                     "1x10 0x40 1x10",
		},
		checks: []check{quiet("20m"), fires("45m"), quiet("55m")}},
}

// promtool's unit-test file format (https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/).
type testFile struct {
	RuleFiles          []string   `yaml:"rule_files"`
	EvaluationInterval string     `yaml:"evaluation_interval"`
	Tests              []testCase `yaml:"tests"`
}

type testCase struct {
	Name        string        `yaml:"name"`
	Interval    string        `yaml:"interval"`
	InputSeries []inputSeries `yaml:"input_series"`
	AlertTests  []alertTest   `yaml:"alert_rule_test"`
}

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type alertTest struct {
	EvalTime  string     `yaml:"eval_time"`
	AlertName string     `yaml:"alertname"`
	ExpAlerts []expAlert `yaml:"exp_alerts"`
}

type expAlert struct {
	Labels      map[string]string `yaml:"exp_labels"`
	Annotations map[string]string `yaml:"exp_annotations"`
}

// TestRulesOnPromtool runs `promtool check rules` on the production rule file and `promtool test rules` with a case
// for every alert. promtool evaluates every rule of its rule files at every step, so each group's cases run against
// that group's rules alone (the same rules, split by group), with the evaluation interval of their samples: a
// sample older than the 5-minute lookback would otherwise vanish between samples.
func TestRulesOnPromtool(t *testing.T) {
	promtool := requirePromtool(t)
	groups, err := rules.For(testParams(rules.Production()))
	require.NoError(t, err)
	tested := testOnPromtool(t, promtool, groups, cases)
	for _, g := range groups {
		for _, r := range g.Rules {
			assert.True(t, tested[r.Name], "%s has a promtool case that makes it fire", r.Name)
		}
	}
}

// cellCases: with several instances (database cells), one instance's trouble fires, named, whatever the others do.
var cellCases = []alertCase{
	{name: "one cell's standby that cannot take over pages, though the other's can", alert: "OMSDatabaseFailoverUnavailable",
		series: map[string]string{
			`cloudsql_googleapis_com:database_available_for_failover{database_id="p:oms-pg",monitored_resource="cloudsql_database"}`:   "1x50",
			`cloudsql_googleapis_com:database_available_for_failover{database_id="p:oms-b-pg",monitored_resource="cloudsql_database"}`: "1x10 0x30 1x10",
		},
		checks: []check{quiet("20m"), fires("30m", "database_id", "p:oms-b-pg"), quiet("45m")}},
	{name: "one cell down pages and names it", alert: "OMSDatabaseDown",
		series: map[string]string{
			`cloudsql_googleapis_com:database_up{database_id="p:oms-pg",monitored_resource="cloudsql_database"}`:   "1x30",
			`cloudsql_googleapis_com:database_up{database_id="p:oms-b-pg",monitored_resource="cloudsql_database"}`: "1x10 0x10 1x10",
		},
		checks: []check{quiet("10m"), fires("15m", "database_id", "p:oms-b-pg"), quiet("25m")}},
	{name: "one cell's full disk pages and names it", alert: "OMSDatabaseDiskFull",
		series: map[string]string{
			`cloudsql_googleapis_com:database_disk_utilization{database_id="p:oms-pg",monitored_resource="cloudsql_database"}`:   "0.5x50",
			`cloudsql_googleapis_com:database_disk_utilization{database_id="p:oms-b-pg",monitored_resource="cloudsql_database"}`: "0.5x10 0.9x30 0.5x10",
		},
		checks: []check{quiet("20m"), fires("30m", "database_id", "p:oms-b-pg"), quiet("45m")}},
}

func TestDatabaseAlertsWatchEveryCell(t *testing.T) {
	promtool := requirePromtool(t)
	p := testParams(rules.Production())
	// Two instances, cells main and b, as postgres.InstancePattern selects them.
	p.Database, p.Cells = `database_id=~"p:(oms-pg|oms-b-pg)(-[0-9a-f]+)?"`, true
	groups, err := rules.For(p)
	require.NoError(t, err)
	testOnPromtool(t, promtool, groups, cellCases)
}

// testOnPromtool runs `promtool check rules` on the groups and `promtool test rules` with the cases; it returns the
// alerts some case made fire.
func testOnPromtool(t *testing.T, promtool string, groups []rules.Group, cases []alertCase) map[string]bool {
	t.Helper()
	groupOf := map[string]rules.Group{}
	byName := map[string]rules.Rule{}
	for _, g := range groups {
		for _, r := range g.Rules {
			byName[r.Name], groupOf[r.Name] = r, g
		}
	}
	dir := t.TempDir()
	ruleFile, err := rules.PrometheusYAML(groups)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.yaml"), ruleFile, 0o644))
	out, err := exec.Command(promtool, "check", "rules", filepath.Join(dir, "rules.yaml")).CombinedOutput()
	require.NoError(t, err, "promtool check rules:\n%s", out)

	tested := map[string]bool{}
	files := map[string]*testFile{}
	for _, c := range cases {
		r, ok := byName[c.alert]
		require.True(t, ok, "case %q tests %s, which the rules do not declare", c.name, c.alert)
		interval := c.interval
		if interval == "" {
			interval = "1m"
		}
		key := groupOf[c.alert].Name + "-" + interval
		if files[key] == nil {
			own, err := rules.PrometheusYAML([]rules.Group{groupOf[c.alert]})
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, key+".rules.yaml"), own, 0o644))
			files[key] = &testFile{RuleFiles: []string{key + ".rules.yaml"}, EvaluationInterval: interval}
		}
		tc := testCase{Name: c.alert + ": " + c.name, Interval: interval}
		for _, s := range slices.Sorted(maps.Keys(c.series)) {
			tc.InputSeries = append(tc.InputSeries, inputSeries{Series: s, Values: c.series[s]})
		}
		for _, ch := range c.checks {
			at := alertTest{EvalTime: ch.at, AlertName: c.alert, ExpAlerts: []expAlert{}}
			if ch.firing {
				labels := maps.Clone(ch.labels)
				maps.Copy(labels, r.Labels())
				at.ExpAlerts = append(at.ExpAlerts, expAlert{Labels: labels, Annotations: map[string]string{
					"summary": r.Summary, "runbook": rules.RunbookURL + r.Runbook,
				}})
				tested[c.alert] = true
			}
			tc.AlertTests = append(tc.AlertTests, at)
		}
		files[key].Tests = append(files[key].Tests, tc)
	}
	for _, key := range slices.Sorted(maps.Keys(files)) {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			doc, err := yaml.Marshal(files[key])
			require.NoError(t, err)
			name := key + ".test.yaml"
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), doc, 0o644))
			cmd := exec.Command(promtool, "test", "rules", name)
			cmd.Dir = dir
			start := time.Now()
			out, err := cmd.CombinedOutput()
			t.Logf("promtool test rules %s: %d cases in %s", name, len(files[key].Tests), time.Since(start).Round(time.Millisecond))
			require.NoError(t, err, "promtool test rules %s:\n%s", name, out)
		})
	}
	return tested
}

// TestEveryAlertHasARunbook: each alert's documentation links a section of the component's README.
func TestEveryAlertHasARunbook(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	groups, err := rules.For(testParams(rules.Production()))
	require.NoError(t, err)
	for _, r := range rules.All(groups) {
		assert.Contains(t, string(readme), "\n### "+r.Name+"\n", "README.md has a runbook for %s (anchor #%s)", r.Name, r.Runbook)
	}
}
