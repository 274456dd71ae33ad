package omsruntime

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/omscloud/omscloud/components/gke"
	"github.com/omscloud/omscloud/components/internal/kube"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Blue-green colors.
const (
	Blue  = "blue"
	Green = "green"
)

// Defaults.
const (
	DefaultNamespace = "oms"
	// DefaultSmokeImage runs the smoke test (curl and a POSIX shell), pinned to a released version. Override it with
	// a digest mirrored into the project's Artifact Registry where nodes cannot reach Docker Hub.
	DefaultSmokeImage   = "curlimages/curl:8.11.1"
	DefaultDatabaseName = "oms"
	DefaultLogLevel     = "info"
	// Port is the container port of serve (API, health) and of worker (health, metrics).
	Port = 8080
	// MetricsPort is serve's /metrics (oms serve --metrics-listen): apart from the API port, which the edge routes
	// and which serves no metrics. MetricsPortName names it in the web pods (the PodMonitoring refers to it).
	MetricsPort     = 9090
	MetricsPortName = "metrics"
	// ServicePort is the public and preview Services' port.
	ServicePort = 80
	// ReadyPath answers 200 while a pod may take traffic (the readiness probe, load-balancer and tunnel health
	// checks); HealthPath while the process is alive.
	ReadyPath  = "/readyz"
	HealthPath = "/healthz"
	// PortName names Port in the pods (probes, Services and the metrics collection refer to it).
	PortName = "http"
	// nameMax leaves room for "-runtime" in the GCP service account id (6-30 characters).
	nameMax = 20
)

// Args configures the OMS runtime in an existing namespace.
type Args struct {
	// Name prefixes every object ("oms-prod-us" → Deployments "oms-prod-us-web-blue", Service "oms-prod-us-web").
	Name string
	// Namespace must already exist with the restricted Pod Security labels (default "oms").
	Namespace string
	// Project is the GCP project: the Workload Identity pool is "<Project>.svc.id.goog".
	Project string
	// Production requires an image pinned by digest and defaults IdleReplicas to Web.MinReplicas; it also protects
	// the control database from deletion.
	Production bool
	// Teardown is set only while the environment is being torn down (a DR environment, after its failback backup
	// reached the primary's bucket): the control database is unprotected too, so that the destroy that follows
	// deletes it.
	Teardown bool

	// Image is the release ("…/oms@sha256:…"): it runs on every color without an override in ColorImages.
	Image string
	// ColorImages overrides the image of one color ("blue"/"green"), to stage a release on the idle color before
	// switching to it.
	ColorImages map[string]string
	// ActiveColor is the color that takes traffic: "blue" or "green" (default blue).
	ActiveColor string
	// IdleReplicas are the fewest web pods the idle color keeps (its HPA's minimum), as the instant fallback and as
	// the capacity the next switch starts from (default: Web.MinReplicas in production, 1 otherwise).
	IdleReplicas int

	Web    WebArgs
	Worker WorkerArgs
	// PreStopSeconds keep a terminating pod serving while the endpoint removal reaches kube-proxy and the load
	// balancer (default 10).
	PreStopSeconds int
	// ShutdownGraceSeconds is the runtime's --shutdown-grace after SIGTERM: stop accepting, drain, exit (default 25).
	ShutdownGraceSeconds int
	// GracePeriodSeconds is terminationGracePeriodSeconds (default PreStopSeconds + ShutdownGraceSeconds + 5); at
	// least their sum, or the kubelet kills a pod still draining.
	GracePeriodSeconds int
	LogLevel           string

	Database DatabaseArgs
	Redis    RedisArgs
	// AMQPURL is the RabbitMQ URL with credentials (secret; rabbitmq.AmqpURL).
	AMQPURL pulumi.StringInput
	// BackupURL ("gs://<bucket>", optional) is where the worker lists backups to export each tier's newest archive
	// for the freshness alerts (components/observability); the backup component grants the listing.
	BackupURL string

	Smoke   SmokeArgs
	Ingress IngressArgs
	// NEGAnnotations are the color Services' cloud.google.com/neg annotations by color (edge.NEGAnnotation), so
	// that each color has NEGs of its own behind the load balancer; empty in cloudflare mode.
	NEGAnnotations map[string]string
	// Zones are the environment's zones; the pods spread over topology.kubernetes.io/zone with max skew 1.
	Zones []string
	// NodeSelector places web and worker pods (default gke.PoolLabel: gke.WebPool).
	NodeSelector map[string]string
	// Labels are added to every Kubernetes object.
	Labels map[string]string
}

// Resources sizes one container: requests (what the HPA's CPU target is relative to) and limits.
type Resources struct {
	CPU    string
	Memory string
	// CPULimit defaults to twice CPU; MemoryLimit defaults to Memory (a pod over its request is not OOM-killed
	// before its neighbours).
	CPULimit    string
	MemoryLimit string
}

// WebArgs scale `oms serve`. The HPA scales on CPU, the one metric GKE serves without an adapter (metrics-server);
// a Pods metric nothing serves would block every scale-down (see README).
type WebArgs struct {
	// MinReplicas of the active color, at least 2 (default 3 in production: one per zone).
	MinReplicas int
	MaxReplicas int
	// TargetCPUPercent of the CPU request (default 70).
	TargetCPUPercent int
	Resources        Resources
}

// WorkerArgs scale `oms worker`.
type WorkerArgs struct {
	MinReplicas      int
	MaxReplicas      int
	TargetCPUPercent int
	// Concurrency is the runtime's --concurrency: parallel consumers per pod (default 4).
	Concurrency int
	Resources   Resources
}

// DatabaseArgs locate Cloud SQL. The runtime reaches it over the private IP with one control-database URL held
// in a Kubernetes Secret; the component creates that database and its login on the instance (see README).
type DatabaseArgs struct {
	// Host is the instance's private IP (postgres.PrivateIP). A REGIONAL instance keeps it across failover.
	Host pulumi.StringInput
	// Instance is the Cloud SQL instance name (postgres.InstanceName).
	Instance pulumi.StringInput
	// ServerCA is the PEM of the instance's server CA (postgres.ServerCA): every pod of the oms image gets it as a
	// file and the runtime verifies the server against it (sslmode=verify-ca).
	ServerCA pulumi.StringInput
	// Name of the control database and its login (default "oms").
	Name string
	// PasswordRotation counts rotations of the login's password (default 0): raise it by one to rotate. Cloud SQL
	// keeps one password per user, so pods not yet restarted cannot open new connections until they roll (README).
	PasswordRotation int
	// AccountPrefix names the account databases the runtime opens ("<prefix>_<account>"); it must match the
	// databases provisioned for the accounts (postgres.AccountPrefix). Default: the control database's name.
	AccountPrefix string
	// Accounts are the provisioned account databases' passwords (secrets) by account id. `oms migrate --accounts`
	// registers each account the runtime does not know yet by adopting its database; only the migrate Job sees them.
	Accounts map[string]pulumi.StringInput
	// AccountSecrets are Secret Manager secret ids the runtime's service account may read
	// (postgres.Accounts[id].PasswordSecret): secretAccessor on exactly these, nothing project-wide.
	AccountSecrets map[string]pulumi.StringInput
	// Cells are the Cloud SQL instances holding the accounts' databases, by cell name, Host's among them, when the
	// environment has several (database cells); empty when every account is on Host. The pods get each cell's host
	// and CA, the migrate Job each account's cell, and each cell but "main" (Host's) the control login (README,
	// "Database cells").
	Cells map[string]Cell
	// DefaultCell is the cell of the accounts the runtime creates itself; required with Cells.
	DefaultCell string
}

// RedisArgs locate Redis Sentinel.
type RedisArgs struct {
	// SentinelAddress is host:port of the sentinel Service (redis.SentinelAddress).
	SentinelAddress pulumi.StringInput
	// MasterName is the monitored master (redis.MasterName).
	MasterName pulumi.StringInput
	// Password is the AUTH password of Redis and of its sentinels (secret; redis.Password).
	Password pulumi.StringInput
}

// SmokeArgs configure the test that must pass before traffic moves to a color.
type SmokeArgs struct {
	// Image provides curl and a POSIX shell (default DefaultSmokeImage).
	Image string
	// DeadlineSeconds bounds the whole Job (default 300).
	DeadlineSeconds int
	// BackoffLimit is the retries after a failed run (default 1).
	BackoffLimit int
}

// IngressArgs name who may reach the runtime pods.
type IngressArgs struct {
	// LoadBalancerCIDRs are the Google front ends and health checkers reaching NEG endpoints (default
	// 35.191.0.0/16 and 130.211.0.0/22).
	LoadBalancerCIDRs []string
	// EdgeSelector are the cloudflared pods' labels (edge.ConnectorSelector); empty admits none.
	EdgeSelector map[string]string
	// Scraper is who may scrape port 8080 (default: Google Cloud Managed Service for Prometheus' collectors).
	Scraper ScraperArgs
}

// ScraperArgs select the metrics collector's pods.
type ScraperArgs struct {
	// Namespace the collector runs in; Selector its pods' labels.
	Namespace string
	Selector  map[string]string
}

// ManagedPrometheusCollector is where GKE runs the managed collection's collectors: a DaemonSet in gmp-system
// (https://cloud.google.com/stackdriver/docs/managed-prometheus/setup-managed).
var ManagedPrometheusCollector = ScraperArgs{
	Namespace: "gmp-system",
	Selector:  map[string]string{"app.kubernetes.io/name": "collector"},
}

var (
	databaseName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,23}$`)
	logLevels    = []string{"debug", "info", "warn", "error"}
	cidr         = regexp.MustCompile(`^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$`)
)

// withDefaults returns a copy with every unset option at its default.
func (a Args) withDefaults() Args {
	if a.Namespace == "" {
		a.Namespace = DefaultNamespace
	}
	if a.ActiveColor == "" {
		a.ActiveColor = Blue
	}
	w := &a.Web
	if w.MinReplicas == 0 {
		w.MinReplicas = 2
		if a.Production {
			w.MinReplicas = 3
		}
	}
	if w.MaxReplicas == 0 {
		w.MaxReplicas = max(10, w.MinReplicas)
	}
	if w.TargetCPUPercent == 0 {
		w.TargetCPUPercent = 70
	}
	w.Resources = w.Resources.withDefaults("500m", "512Mi")
	k := &a.Worker
	if k.MinReplicas == 0 {
		k.MinReplicas = 2
	}
	if k.MaxReplicas == 0 {
		k.MaxReplicas = max(6, k.MinReplicas)
	}
	if k.TargetCPUPercent == 0 {
		k.TargetCPUPercent = 70
	}
	if k.Concurrency == 0 {
		k.Concurrency = 4
	}
	k.Resources = k.Resources.withDefaults("250m", "256Mi")
	if a.IdleReplicas == 0 {
		a.IdleReplicas = 1
		if a.Production {
			a.IdleReplicas = w.MinReplicas
		}
	}
	if a.PreStopSeconds == 0 {
		a.PreStopSeconds = 10
	}
	if a.ShutdownGraceSeconds == 0 {
		a.ShutdownGraceSeconds = 25
	}
	if a.GracePeriodSeconds == 0 {
		a.GracePeriodSeconds = a.PreStopSeconds + a.ShutdownGraceSeconds + 5
	}
	if a.LogLevel == "" {
		a.LogLevel = DefaultLogLevel
	}
	if a.Database.Name == "" {
		a.Database.Name = DefaultDatabaseName
	}
	if a.Smoke.Image == "" {
		a.Smoke.Image = DefaultSmokeImage
	}
	if a.Smoke.DeadlineSeconds == 0 {
		a.Smoke.DeadlineSeconds = 300
	}
	if a.Smoke.BackoffLimit == 0 {
		a.Smoke.BackoffLimit = 1
	}
	if a.Ingress.Scraper.Namespace == "" {
		a.Ingress.Scraper = ManagedPrometheusCollector
	}
	if a.Ingress.LoadBalancerCIDRs == nil {
		a.Ingress.LoadBalancerCIDRs = []string{"35.191.0.0/16", "130.211.0.0/22"}
	}
	if a.NodeSelector == nil {
		a.NodeSelector = map[string]string{gke.PoolLabel: gke.WebPool}
	}
	return a
}

func (r Resources) withDefaults(cpu, memory string) Resources {
	if r.CPU == "" {
		r.CPU = cpu
	}
	if r.Memory == "" {
		r.Memory = memory
	}
	if r.CPULimit == "" {
		r.CPULimit = doubleCPU(r.CPU)
	}
	if r.MemoryLimit == "" {
		r.MemoryLimit = r.Memory
	}
	return r
}

// doubleCPU renders twice a CPU quantity in millicores ("500m" → "1000m"); an unparsable value is left for
// Validate to report.
func doubleCPU(q string) string {
	v, ok := cpuMillis(q)
	if !ok {
		return q
	}
	return fmt.Sprintf("%dm", 2*v)
}

var cpuQuantity = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(m?)$`)

// cpuMillis reads a CPU quantity ("250m", "1", "1.5") in millicores.
func cpuMillis(q string) (int64, bool) {
	m := cpuQuantity.FindStringSubmatch(q)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	if m[2] == "" {
		n *= 1000
	}
	return int64(n), n >= 1
}

func (r Resources) validate(field string) []error {
	var errs []error
	cpu, okCPU := cpuMillis(r.CPU)
	limit, okLimit := cpuMillis(r.CPULimit)
	if !okCPU {
		errs = append(errs, fmt.Errorf("%s.CPU %q is not a CPU quantity: use e.g. 250m or 1", field, r.CPU))
	}
	if !okLimit {
		errs = append(errs, fmt.Errorf("%s.CPULimit %q is not a CPU quantity: use e.g. 1", field, r.CPULimit))
	}
	if okCPU && okLimit && limit < cpu {
		errs = append(errs, fmt.Errorf("%s.CPULimit %s is below the request %s", field, r.CPULimit, r.CPU))
	}
	mem, errMem := kube.MemoryBytes(r.Memory)
	memLimit, errLimit := kube.MemoryBytes(r.MemoryLimit)
	if errMem != nil {
		errs = append(errs, fmt.Errorf("%s.Memory: %w", field, errMem))
	}
	if errLimit != nil {
		errs = append(errs, fmt.Errorf("%s.MemoryLimit: %w", field, errLimit))
	}
	if errMem == nil && errLimit == nil && memLimit < mem {
		errs = append(errs, fmt.Errorf("%s.MemoryLimit %s is below the request %s", field, r.MemoryLimit, r.Memory))
	}
	if errMem == nil && mem < 64<<20 {
		errs = append(errs, fmt.Errorf("%s.Memory %s is below 64Mi: the runtime does not start in less", field, r.Memory))
	}
	return errs
}

// imageOf is the image a color runs.
func (a *Args) imageOf(color string) string {
	if img := a.ColorImages[color]; img != "" {
		return img
	}
	return a.Image
}

// idleColor is the color that takes no traffic.
func (a *Args) idleColor() string {
	if a.ActiveColor == Blue {
		return Green
	}
	return Blue
}

// Validate reports every problem of the arguments (after defaults), naming the field and the fix.
func (a *Args) Validate() error {
	d := a.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	addErr := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	addErr(kube.ValidateName("Name", d.Name, nameMax))
	addErr(kube.ValidateNamespace("Namespace", d.Namespace))
	if d.Project == "" {
		add("Project is required: the GCP project whose Workload Identity pool the runtime's service account uses")
	}
	if d.ActiveColor != Blue && d.ActiveColor != Green {
		add("ActiveColor %q: use %q or %q", d.ActiveColor, Blue, Green)
	}
	if d.Image == "" {
		add("Image is required: the OMS release, e.g. <region>-docker.pkg.dev/<project>/oms/oms@sha256:<digest>")
	} else {
		d.validateImage(add, "Image", d.Image)
	}
	for color, img := range d.ColorImages {
		if color != Blue && color != Green {
			add("ColorImages: key %q is not a color: use %q or %q", color, Blue, Green)
			continue
		}
		if img != "" {
			d.validateImage(add, "ColorImages["+color+"]", img)
		}
	}
	if err := kube.ValidateImage("Smoke.Image", d.Smoke.Image); err != nil {
		errs = append(errs, err)
	}

	w := d.Web
	if w.MinReplicas < 2 {
		add("Web.MinReplicas is %d: keep at least 2 web pods so that they run in different zones", w.MinReplicas)
	}
	if d.Production && len(d.Zones) > 0 && w.MinReplicas < len(d.Zones) {
		add("Web.MinReplicas is %d: production keeps one web pod per zone (%d zones)", w.MinReplicas, len(d.Zones))
	}
	if w.MaxReplicas < w.MinReplicas {
		add("Web.MaxReplicas %d is below Web.MinReplicas %d", w.MaxReplicas, w.MinReplicas)
	}
	if w.TargetCPUPercent < 10 || w.TargetCPUPercent > 95 {
		add("Web.TargetCPUPercent is %d: use 10..95", w.TargetCPUPercent)
	}
	errs = append(errs, w.Resources.validate("Web.Resources")...)
	k := d.Worker
	if k.MinReplicas < 1 {
		add("Worker.MinReplicas is %d: at least 1 worker relays the outbox", k.MinReplicas)
	}
	if k.MaxReplicas < k.MinReplicas {
		add("Worker.MaxReplicas %d is below Worker.MinReplicas %d", k.MaxReplicas, k.MinReplicas)
	}
	if k.TargetCPUPercent < 10 || k.TargetCPUPercent > 95 {
		add("Worker.TargetCPUPercent is %d: use 10..95", k.TargetCPUPercent)
	}
	if k.Concurrency < 1 {
		add("Worker.Concurrency is %d: use at least 1", k.Concurrency)
	}
	errs = append(errs, k.Resources.validate("Worker.Resources")...)
	if d.IdleReplicas < 1 {
		add("IdleReplicas is %d: keep at least 1 pod on the idle color as the instant fallback", d.IdleReplicas)
	}
	if d.IdleReplicas > w.MaxReplicas {
		add("IdleReplicas %d is above Web.MaxReplicas %d", d.IdleReplicas, w.MaxReplicas)
	}

	if d.PreStopSeconds < 1 {
		add("PreStopSeconds is %d: pause at least 1 s before SIGTERM so endpoints are removed first", d.PreStopSeconds)
	}
	if d.ShutdownGraceSeconds < 6 {
		add("ShutdownGraceSeconds is %d: the runtime answers 503 on /readyz for 5 s before closing; use at least 6", d.ShutdownGraceSeconds)
	}
	if need := d.PreStopSeconds + d.ShutdownGraceSeconds; d.GracePeriodSeconds < need {
		add("GracePeriodSeconds %d is below PreStopSeconds + ShutdownGraceSeconds (%d): the kubelet would kill pods mid-drain", d.GracePeriodSeconds, need)
	}
	if !slices.Contains(logLevels, d.LogLevel) {
		add("LogLevel %q: use one of %v", d.LogLevel, logLevels)
	}

	if d.Database.Host == nil {
		add("Database.Host is required: the Cloud SQL private IP (postgres.PrivateIP)")
	}
	if d.Database.Instance == nil {
		add("Database.Instance is required: the Cloud SQL instance name (postgres.InstanceName)")
	}
	if d.Database.ServerCA == nil {
		add("Database.ServerCA is required: the Cloud SQL server CA (postgres.ServerCA), which the runtime verifies the server with")
	}
	if d.Database.PasswordRotation < 0 {
		add("Database.PasswordRotation is %d: count rotations from 0", d.Database.PasswordRotation)
	}
	if !databaseName.MatchString(d.Database.Name) {
		add("Database.Name %q: 1-24 lowercase letters, digits and '_', starting with a letter (it prefixes account databases)", d.Database.Name)
	}
	d.Database.validateCells(add)
	for id, s := range d.Database.AccountSecrets {
		if s == nil {
			add("Database.AccountSecrets[%q] is nil: give the secret id (postgres.Accounts[id].PasswordSecret)", id)
		}
	}
	if d.Redis.SentinelAddress == nil || d.Redis.MasterName == nil || d.Redis.Password == nil {
		add("Redis.SentinelAddress, Redis.MasterName and Redis.Password are required (from the redis component)")
	}
	if d.AMQPURL == nil {
		add("AMQPURL is required: the RabbitMQ URL (rabbitmq.AmqpURL)")
	}
	if d.Smoke.DeadlineSeconds < 30 {
		add("Smoke.DeadlineSeconds is %d: allow at least 30 s", d.Smoke.DeadlineSeconds)
	}
	if d.Smoke.BackoffLimit < 0 || d.Smoke.BackoffLimit > 3 {
		add("Smoke.BackoffLimit is %d: use 0..3, a failing release must fail the update quickly", d.Smoke.BackoffLimit)
	}
	for i, c := range d.Ingress.LoadBalancerCIDRs {
		if !cidr.MatchString(c) {
			add("Ingress.LoadBalancerCIDRs[%d] %q is not an IPv4 CIDR", i, c)
		}
	}
	if len(d.Ingress.EdgeSelector) > 0 {
		errs = append(errs, kube.ValidateSelector("Ingress.EdgeSelector", d.Ingress.EdgeSelector)...)
	}
	if len(d.Ingress.Scraper.Selector) == 0 {
		add("Ingress.Scraper.Selector is empty: name the collector's pods, or leave Ingress.Scraper unset for GKE's managed collectors")
	}
	errs = append(errs, kube.ValidateSelector("Ingress.Scraper.Selector", d.Ingress.Scraper.Selector)...)
	if len(d.NEGAnnotations) > 0 {
		for _, color := range []string{Blue, Green} {
			if !strings.HasPrefix(d.NEGAnnotations[color], "{") {
				add("NEGAnnotations[%q] %q is not the JSON value of cloud.google.com/neg: give both colors theirs (edge.NEGAnnotation)", color, d.NEGAnnotations[color])
			}
		}
		for color := range d.NEGAnnotations {
			if color != Blue && color != Green {
				add("NEGAnnotations: key %q is not a color: use %q or %q", color, Blue, Green)
			}
		}
	}
	if len(d.NodeSelector) == 0 {
		add("NodeSelector is empty: the runtime runs on the web node pool ({%q: %q})", gke.PoolLabel, gke.WebPool)
	}
	errs = append(errs, kube.ValidateLabels("Labels", d.Labels)...)
	if _, ok := d.Labels[ColorLabel]; ok {
		add("Labels: %q is set by the component; remove it", ColorLabel)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("omsruntime: %w", err)
	}
	return nil
}

var digest = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

func (a *Args) validateImage(add func(string, ...any), field, image string) {
	if err := kube.ValidateImage(field, image); err != nil {
		add("%v", err)
		return
	}
	if a.Production && !digest.MatchString(image) {
		add("%s %q is not pinned by digest: production runs exactly the reviewed build, use <image>@sha256:<digest>", field, image)
	}
}
