package redis

import (
	"errors"
	"fmt"
	"regexp"
	"slices"

	"github.com/omscloud/omscloud/components/internal/kube"
	"github.com/omscloud/omscloud/redisconf"
)

// Defaults.
const (
	DefaultImage = "redis:7.2.5"
	// DefaultExporterImage is oliver006/redis_exporter, the exporter Prometheus' own docs list for Redis
	// (https://prometheus.io/docs/instrumenting/exporters/); it reports redis_up and the memory the alerts read.
	DefaultExporterImage = "oliver006/redis_exporter:v1.62.0"
	// ExporterPort serves the exporter's /metrics.
	ExporterPort = 9121
	// ExporterPortName names ExporterPort in the pods.
	ExporterPortName  = "metrics"
	DefaultMasterName = redisconf.DefaultMasterName
	DefaultReplicas   = 3
	// DefaultDownAfterMs is how long a master may be silent before the sentinels start a failover.
	DefaultDownAfterMs       = 5000
	DefaultFailoverTimeoutMs = 30000
	// imageUser is the uid and gid of the `redis` user in the official image.
	imageUser = 999
	// nameMax leaves room for "-redis-sentinel" and the StatefulSet's pod suffixes within Kubernetes' limits.
	nameMax = 30
)

// Size sizes each Redis replica: the redis container's CPU and memory, and its persistent volume.
type Size = kube.Size

// Placement selects the nodes the pods run on.
type Placement = kube.Placement

// Toleration lets the pods onto a tainted node pool.
type Toleration = kube.Toleration

// Args configures Redis with Sentinel in an existing namespace.
type Args struct {
	// Name prefixes every object name ("oms-prod-us" → "oms-prod-us-redis").
	Name string
	// Namespace must already exist (the environment creates it with the restricted Pod Security label).
	Namespace string
	// Replicas is the number of pods, each a Redis server plus a Sentinel: odd, at least 3 (default 3). The sentinel
	// quorum is a majority of them.
	Replicas int
	// Image is an official Redis image pinned by exact version or digest (default redis:7.2.5).
	Image string
	Size  Size
	// StorageClass of the data volumes (default premium-rwo, GKE's SSD class).
	StorageClass string
	// DeletionProtection protects the StatefulSet (production): a change to one of its immutable fields fails the
	// preview instead of replacing every replica at once.
	DeletionProtection bool
	// Placement defaults to the GKE stateful node pool.
	Placement *Placement
	// ClientSelector are the labels of the pods (the OMS runtime) that may reach Redis and Sentinel.
	ClientSelector map[string]string
	// Labels are added to every object.
	Labels   map[string]string
	Sentinel SentinelOptions
	// MaxMemoryPolicy is Redis' eviction policy when maxmemory is reached (default allkeys-lru: it is a cache).
	MaxMemoryPolicy string
	// PasswordRotation counts rotations of the clients' password (default 0): raise it by one to rotate. Redis and
	// the sentinels keep accepting the previous one, so clients that have not restarted yet are not refused.
	PasswordRotation int
	// Metrics, when set, runs a Prometheus exporter beside each Redis server (port ExporterPort, named "metrics")
	// and admits the scraper it names to that port.
	Metrics *MetricsAccess
	// ExporterImage is the exporter's image (default DefaultExporterImage).
	ExporterImage string
}

// MetricsAccess names the scraper's pods: PodLabels in namespaces with NamespaceLabels (both required, so the rule
// never admits every pod of a namespace or of the cluster by accident).
type MetricsAccess struct {
	NamespaceLabels map[string]string
	PodLabels       map[string]string
}

// SentinelOptions tunes failure detection.
type SentinelOptions struct {
	// MasterName is the name clients ask the sentinels for (default "oms").
	MasterName string
	// DownAfterMs is the silence after which a master is considered down (default 5000; at most 5000).
	DownAfterMs int
	// FailoverTimeoutMs bounds a failover (default 30000).
	FailoverTimeoutMs int
}

var masterName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

var evictionPolicies = []string{
	"noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
}

// withDefaults returns a copy with every unset option at its production default.
func (a Args) withDefaults() Args {
	if a.Replicas == 0 {
		a.Replicas = DefaultReplicas
	}
	if a.Image == "" {
		a.Image = DefaultImage
	}
	if a.StorageClass == "" {
		a.StorageClass = kube.DefaultStorageClass
	}
	if a.Placement == nil {
		p := kube.StatefulPool()
		a.Placement = &p
	}
	if a.Sentinel.MasterName == "" {
		a.Sentinel.MasterName = DefaultMasterName
	}
	if a.Sentinel.DownAfterMs == 0 {
		a.Sentinel.DownAfterMs = DefaultDownAfterMs
	}
	if a.Sentinel.FailoverTimeoutMs == 0 {
		a.Sentinel.FailoverTimeoutMs = DefaultFailoverTimeoutMs
	}
	if a.ExporterImage == "" {
		a.ExporterImage = DefaultExporterImage
	}
	if a.MaxMemoryPolicy == "" {
		a.MaxMemoryPolicy = redisconf.DefaultMaxMemoryPolicy
	}
	return a
}

// Validate reports every problem of the arguments (after defaults), naming the field and the fix.
func (a *Args) Validate() error {
	d := a.withDefaults()
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(kube.ValidateName("Name", d.Name, nameMax))
	add(kube.ValidateNamespace("Namespace", d.Namespace))
	add(kube.ValidateReplicas("Replicas", d.Replicas))
	add(kube.ValidateImage("Image", d.Image))
	add(kube.ValidateStorageClass("StorageClass", d.StorageClass))
	errs = append(errs, d.Size.Validate("Size", 64<<20)...)
	errs = append(errs, d.Placement.Validate("Placement")...)
	errs = append(errs, kube.ValidateSelector("ClientSelector", d.ClientSelector)...)
	errs = append(errs, kube.ValidateLabels("Labels", d.Labels)...)
	if !masterName.MatchString(d.Sentinel.MasterName) {
		add(fmt.Errorf("Sentinel.MasterName %q: use letters, digits, '-' and '_' only", d.Sentinel.MasterName))
	}
	if d.Sentinel.DownAfterMs < 1000 || d.Sentinel.DownAfterMs > 5000 {
		add(fmt.Errorf("Sentinel.DownAfterMs is %d: use 1000..5000 so a failed master is detected within 5 s without flapping", d.Sentinel.DownAfterMs))
	}
	if d.Sentinel.FailoverTimeoutMs < 3*d.Sentinel.DownAfterMs {
		add(fmt.Errorf("Sentinel.FailoverTimeoutMs is %d: use at least 3×DownAfterMs (%d)", d.Sentinel.FailoverTimeoutMs, 3*d.Sentinel.DownAfterMs))
	}
	if d.PasswordRotation < 0 {
		add(fmt.Errorf("PasswordRotation is %d: count rotations from 0", d.PasswordRotation))
	}
	if m := d.Metrics; m != nil {
		errs = append(errs, kube.ValidateSelector("Metrics.NamespaceLabels", m.NamespaceLabels)...)
		errs = append(errs, kube.ValidateSelector("Metrics.PodLabels", m.PodLabels)...)
		add(kube.ValidateImage("ExporterImage", d.ExporterImage))
	}
	if !slices.Contains(evictionPolicies, d.MaxMemoryPolicy) {
		add(fmt.Errorf("MaxMemoryPolicy %q: use one of %v", d.MaxMemoryPolicy, evictionPolicies))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}
