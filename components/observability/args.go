package observability

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"

	"github.com/omscloud/omscloud/components/internal/kube"
	"github.com/omscloud/omscloud/components/observability/rules"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Defaults.
const (
	DefaultNamespace = "oms"
	// DefaultScrapeInterval of the PodMonitorings: the 5-minute burn-rate window then holds 10 samples.
	DefaultScrapeInterval = "30s"
	// DefaultUptimePath is what the uptime checks request: /readyz answers 200 only when the runtime reaches its
	// database, so the check sees what a customer sees.
	DefaultUptimePath = "/readyz"
	nameMax           = 30
)

// UptimeRegions are the regions uptime checks may run from
// (https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.uptimeCheckConfigs#UptimeCheckRegion); a check
// that names regions must name at least 3.
var UptimeRegions = []string{"USA", "EUROPE", "SOUTH_AMERICA", "ASIA_PACIFIC", "USA_OREGON", "USA_IOWA", "USA_VIRGINIA"}

// DefaultUptimeRegions check from three continents.
var DefaultUptimeRegions = []string{"USA", "EUROPE", "ASIA_PACIFIC"}

// Args configures an environment's monitoring.
type Args struct {
	// Name prefixes every resource ("oms-prod-us"); it is also the GKE cluster's name, which scopes every query.
	Name    string
	Project string
	// Namespace holds the scraped workloads (default "oms").
	Namespace string
	// ClusterName scopes the queries to this environment's cluster (default Name).
	ClusterName string
	// Targets are the workloads Managed Prometheus scrapes; Web, Worker, Redis and RabbitMQ are required (the
	// rules read them).
	Targets Targets
	// Hostnames are the public endpoint's hostnames: each gets an uptime check (both edge kinds serve them).
	Hostnames []string
	// DatabaseInstance is a regular expression for the Cloud SQL instance's names (postgres.InstancePattern: every
	// generation of a DR environment's instance matches).
	DatabaseInstance string
	// Thresholds are the objectives and alert thresholds (rules.Production() or rules.Sandbox()); the selectors
	// are set by New.
	Thresholds rules.Params
	// UptimeRegions default to DefaultUptimeRegions; UptimePath to DefaultUptimePath.
	UptimeRegions []string
	UptimePath    string
	Notifications NotificationArgs
	Labels        map[string]string
}

// Targets are the scraped workloads.
type Targets struct {
	Web, Worker, Redis, RabbitMQ Target
}

// Target is one workload's pods and the port serving /metrics.
type Target struct {
	Selector map[string]string
	// Port is the container port's name (e.g. "http", "metrics", "prometheus").
	Port string
	// Path defaults to /metrics.
	Path string
}

// NotificationArgs are where alerts go. Pages go to every channel; tickets to email and Slack, not PagerDuty.
type NotificationArgs struct {
	Emails []string
	// PagerDutyKey is a PagerDuty Events API v2 integration key (secret).
	PagerDutyKey pulumi.StringInput
	// SlackChannel ("#oms-alerts") with SlackToken, a Slack app's OAuth token (secret).
	SlackChannel string
	SlackToken   pulumi.StringInput
}

// Count is the number of channels configured.
func (n NotificationArgs) Count() int {
	c := len(n.Emails)
	if n.PagerDutyKey != nil {
		c++
	}
	if n.SlackChannel != "" {
		c++
	}
	return c
}

var slackChannel = regexp.MustCompile(`^#[a-z0-9][a-z0-9._-]{0,79}$`)

func (a Args) withDefaults() Args {
	if a.Namespace == "" {
		a.Namespace = DefaultNamespace
	}
	if a.ClusterName == "" {
		a.ClusterName = a.Name
	}
	if len(a.UptimeRegions) == 0 {
		a.UptimeRegions = DefaultUptimeRegions
	}
	if a.UptimePath == "" {
		a.UptimePath = DefaultUptimePath
	}
	for _, t := range []*Target{&a.Targets.Web, &a.Targets.Worker, &a.Targets.Redis, &a.Targets.RabbitMQ} {
		if t.Path == "" {
			t.Path = "/metrics"
		}
	}
	if a.Thresholds == (rules.Params{}) {
		a.Thresholds = rules.Production()
	}
	a.Thresholds = a.params()
	return a
}

// JobName is the PodMonitoring's name of a target, which Managed Service for Prometheus writes as the series' job
// label.
func JobName(name, target string) string { return name + "-" + target }

// params are the thresholds with the selectors of this environment's series: the cluster, namespace and
// PodMonitoring of each workload, the public hostnames and the Cloud SQL instance.
func (a Args) params() rules.Params {
	p := a.Thresholds
	sel := func(target string) string {
		return fmt.Sprintf(`cluster=%q,namespace=%q,job=%q`, a.ClusterName, a.Namespace, JobName(a.Name, target))
	}
	p.Web, p.Worker, p.Redis, p.RabbitMQ = sel("web"), sel("worker"), sel("redis"), sel("rabbitmq")
	quoted := make([]string, len(a.Hostnames))
	for i, h := range a.Hostnames {
		quoted[i] = regexp.QuoteMeta(h)
	}
	p.Hosts = fmt.Sprintf(`host=~%q`, strings.Join(quoted, "|"))
	p.Database = fmt.Sprintf(`database_id=~%q`, regexp.QuoteMeta(a.Project+":")+a.DatabaseInstance)
	return p
}

// Validate reports every problem of the arguments (after defaults), naming the field and the fix.
func (a *Args) Validate() error {
	d := a.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := kube.ValidateName("Name", d.Name, nameMax); err != nil {
		errs = append(errs, err)
	}
	if d.Project == "" {
		add("Project is required: the GCP project whose Cloud Monitoring holds the alerts")
	}
	if err := kube.ValidateNamespace("Namespace", d.Namespace); err != nil {
		errs = append(errs, err)
	}
	for _, t := range []struct {
		field string
		t     Target
	}{{"Targets.Web", d.Targets.Web}, {"Targets.Worker", d.Targets.Worker}, {"Targets.Redis", d.Targets.Redis}, {"Targets.RabbitMQ", d.Targets.RabbitMQ}} {
		errs = append(errs, kube.ValidateSelector(t.field+".Selector", t.t.Selector)...)
		if t.t.Port == "" {
			add("%s.Port is required: the name of the container port serving metrics", t.field)
		}
	}
	if len(d.Hostnames) == 0 {
		add("Hostnames is required: the public endpoint's hostnames get uptime checks")
	}
	if d.DatabaseInstance == "" {
		add("DatabaseInstance is required: the Cloud SQL instance the database alerts watch")
	}
	if len(d.UptimeRegions) < 3 {
		add("UptimeRegions %v: Cloud Monitoring needs at least 3 regions when any are named", d.UptimeRegions)
	}
	for _, r := range d.UptimeRegions {
		if !slices.Contains(UptimeRegions, r) {
			add("UptimeRegions: %q is not an uptime check region: use %s", r, strings.Join(UptimeRegions, ", "))
		}
	}
	if !strings.HasPrefix(d.UptimePath, "/") {
		add("UptimePath %q must start with /", d.UptimePath)
	}
	for i, e := range d.Notifications.Emails {
		if addr, err := mail.ParseAddress(e); err != nil || addr.Address != e {
			add("Notifications.Emails[%d] %q is not an email address", i, e)
		}
	}
	if (d.Notifications.SlackChannel == "") != (d.Notifications.SlackToken == nil) {
		add("Notifications: SlackChannel and SlackToken go together")
	}
	if c := d.Notifications.SlackChannel; c != "" && !slackChannel.MatchString(c) {
		add("Notifications.SlackChannel %q: give the channel as #name", c)
	}
	if err := d.Thresholds.Validate(); err != nil {
		add("Thresholds: %v", err)
	}
	errs = append(errs, kube.ValidateLabels("Labels", d.Labels)...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("observability: %w", err)
	}
	return nil
}

// ParamsOf are the rules' parameters New uses: the thresholds with this environment's selectors.
func ParamsOf(a Args) rules.Params { return a.withDefaults().Thresholds }
