package rabbitmq

import (
	"errors"
	"fmt"

	"github.com/omscloud/omscloud/components/internal/kube"
)

// Defaults.
const (
	// DefaultImage is the official image; 3.13 discovers peers through the Endpoints of the headless Service.
	DefaultImage    = "rabbitmq:3.13.7-management"
	DefaultReplicas = 3
	// imageUser is the uid and gid of the `rabbitmq` user in the official image.
	imageUser = 999
	// nameMax leaves room for "-rabbitmq-peer-discovery" within Kubernetes' name limits.
	nameMax = 30
)

// Size sizes each RabbitMQ node: CPU, memory and its persistent volume.
type Size = kube.Size

// Placement selects the nodes the pods run on.
type Placement = kube.Placement

// Toleration lets the pods onto a tainted node pool.
type Toleration = kube.Toleration

// Args configures a RabbitMQ cluster in an existing namespace.
type Args struct {
	// Name prefixes every object name ("oms-prod-us" → "oms-prod-us-rabbitmq").
	Name string
	// Namespace must already exist (the environment creates it with the restricted Pod Security label).
	Namespace string
	// Replicas is the number of nodes: odd, at least 3 (default 3), so quorum queues keep a majority.
	Replicas int
	// Image is an official RabbitMQ 3.13 image pinned by exact version or digest (default rabbitmq:3.13.7-management).
	Image string
	Size  Size
	// StorageClass of the data volumes (default premium-rwo, GKE's SSD class).
	StorageClass string
	// DeletionProtection protects the StatefulSet (production): a change to one of its immutable fields fails the
	// preview instead of replacing every replica at once.
	DeletionProtection bool
	// Placement defaults to the GKE stateful node pool.
	Placement *Placement
	// ClientSelector are the labels of the pods (the OMS runtime) that may connect over AMQP.
	ClientSelector map[string]string
	// Metrics, when set, admits a Prometheus scraper to the metrics port 15692.
	Metrics *MetricsAccess
	// Labels are added to every object.
	Labels map[string]string
	// PasswordRotation counts rotations of the application's credentials (default 0): raise it by one to rotate.
	// The application has a user per slot (AppUsers); the previous one keeps its password, so clients that have not
	// restarted yet are not refused.
	PasswordRotation int
}

// MetricsAccess names the scraper's pods: PodLabels in namespaces with NamespaceLabels (both required, so the rule
// never admits every pod of a namespace or of the cluster by accident).
type MetricsAccess struct {
	NamespaceLabels map[string]string
	PodLabels       map[string]string
}

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
	errs = append(errs, d.Size.Validate("Size", 512<<20)...)
	if d.Size.StorageGB > 0 && d.Size.StorageGB < 4 {
		add(fmt.Errorf("Size.StorageGB is %d: RabbitMQ keeps %d GiB free as its disk alarm, use at least 4", d.Size.StorageGB, minDiskFreeGB))
	}
	errs = append(errs, d.Placement.Validate("Placement")...)
	errs = append(errs, kube.ValidateSelector("ClientSelector", d.ClientSelector)...)
	errs = append(errs, kube.ValidateLabels("Labels", d.Labels)...)
	if m := d.Metrics; m != nil {
		errs = append(errs, kube.ValidateSelector("Metrics.NamespaceLabels", m.NamespaceLabels)...)
		errs = append(errs, kube.ValidateSelector("Metrics.PodLabels", m.PodLabels)...)
	}
	if d.PasswordRotation < 0 {
		add(fmt.Errorf("PasswordRotation is %d: count rotations from 0", d.PasswordRotation))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rabbitmq: %w", err)
	}
	return nil
}
