// Package omsruntime deploys the OMS runtime on GKE: `oms serve` as two colors (blue and green), each with a
// Service of its own (NEG-backed behind the GCP load balancer), a public Service that selects the active one,
// `oms worker`, and `oms migrate` as a Job per release. Traffic moves to a color only after the migrate Job and a
// smoke-test Job against that color's Service have completed; the other color keeps running as the instant fallback. Pods run under a Workload Identity service
// account with the restricted security context, spread over zones, with probes, a preStop pause and a grace period
// that covers the runtime's drain, PodDisruptionBudgets, HPAs and NetworkPolicies.
package omsruntime

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/omscloud/omscloud/components/internal/child"
	"github.com/omscloud/omscloud/components/internal/kube"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Labels the component sets.
const (
	// ColorLabel tells the blue and green web pods apart; Services select on it.
	ColorLabel   = "omscloud.io/color"
	VersionLabel = "app.kubernetes.io/version"
	// ConfigChecksumAnnotation on the pod templates changes with the ConfigMap, so a config change rolls the pods.
	ConfigChecksumAnnotation = "omscloud.io/config-checksum"
	// SecretChecksumAnnotation on the pod templates changes with the credentials the pods read, so a rotation rolls
	// them; Redis and RabbitMQ carry it too.
	SecretChecksumAnnotation = kube.SecretChecksumAnnotation
	appName                  = "oms"
)

// Runtime is the component.
type Runtime struct {
	pulumi.ResourceState

	// AdminToken is the generated bearer token of the account endpoints (secret).
	AdminToken pulumi.StringOutput `pulumi:"adminToken"`
	// ServiceAccountEmail is the runtime's GCP service account (Workload Identity).
	ServiceAccountEmail pulumi.StringOutput `pulumi:"serviceAccountEmail"`
	// PublicService selects the active color ("<Name>-web", port 80): cloudflared's origin.
	PublicService pulumi.StringOutput `pulumi:"publicService"`
	// ColorServices are the per-color Services ("blue", "green"): the smoke test's target and, in gcp mode, each
	// color's NEGs behind the load balancer.
	ColorServices map[string]pulumi.StringOutput
	// ColorServicesReady are ColorServices, each known only once the Service exists and the Kubernetes provider has
	// awaited it (its status is known): unknown in a preview that creates it. GKE creates a color's NEGs from its
	// Service, so the edge looks them up only then (edge.ColorBackend.ServiceReady).
	ColorServicesReady map[string]pulumi.StringOutput
	// ActiveColor is the color that takes traffic.
	ActiveColor string
	// ActiveColorReady is ActiveColor, known only once its smoke test completed and its HPA was raised: the load
	// balancer moves its capacity to the color only then (edge.BackendArgs.ActiveColor).
	ActiveColorReady pulumi.StringOutput
	// Wiring runs more pods of the oms image (backup CronJobs, the DR restore Job) like the runtime's own.
	Wiring Wiring
}

// ServiceName is the public Service's name (edge.ServiceName agrees).
func ServiceName(name string) string { return name + "-web" }

// ClientSelector are labels every runtime pod carries (web, worker, migrate): Redis' and RabbitMQ's NetworkPolicies
// admit them.
func ClientSelector(name string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": appName, "app.kubernetes.io/instance": name}
}

// WebSelector are the labels of the web pods of both colors (edge.Args.Backend.PodSelector).
func WebSelector(name string) map[string]string {
	sel, _ := kube.Labels(appName, name, "web", nil)
	return sel
}

// WorkerSelector are the labels of the worker pods (the metrics collection selects them).
func WorkerSelector(name string) map[string]string {
	sel, _ := kube.Labels(appName, name, "worker", nil)
	return sel
}

// New declares the runtime. Pass the Kubernetes provider with pulumi.Provider (or pulumi.Providers together with the
// GCP provider); the GCP resources use the GCP provider inherited from the parent. Explicit dependencies of the
// component (e.g. on the namespace) are passed on to every object.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Runtime, error) {
	if args == nil {
		return nil, fmt.Errorf("omsruntime: Args are required")
	}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	a := args.withDefaults()
	r := &Runtime{ActiveColor: a.ActiveColor, ColorServices: map[string]pulumi.StringOutput{},
		ColorServicesReady: map[string]pulumi.StringOutput{}}
	if err := ctx.RegisterComponentResource("omscloud:omsruntime:Runtime", name, r, opts...); err != nil {
		return nil, err
	}
	child, err := child.Options(r, opts)
	if err != nil {
		return nil, fmt.Errorf("omsruntime: %w", err)
	}
	d := &deployer{ctx: ctx, name: name, a: &a, child: child}
	if err := d.declare(r); err != nil {
		return nil, fmt.Errorf("omsruntime: %w", err)
	}
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{
		"adminToken":          r.AdminToken,
		"serviceAccountEmail": r.ServiceAccountEmail,
		"publicService":       r.PublicService,
		"activeColor":         pulumi.String(r.ActiveColor),
	})
}

// deployer holds what every declaration needs.
type deployer struct {
	ctx   *pulumi.Context
	name  string
	a     *Args
	child []pulumi.ResourceOption
	w     Wiring
	// checksum fingerprints the ConfigMap for the pod templates.
	checksum pulumi.StringOutput
	// secretData is the runtime Secret's data and checksumKey the key of its fingerprints (secretChecksum).
	secretData  pulumi.StringMap
	checksumKey pulumi.StringOutput
	// accountSecret names the Secret of the account databases' passwords, when there are accounts.
	accountSecret pulumi.StringOutput
}

func (d *deployer) opts(more ...pulumi.ResourceOption) []pulumi.ResourceOption {
	return append(slices.Clone(d.child), more...)
}

// labels returns the selector and the full labels of a component's pods; color is "" for colorless ones.
func (d *deployer) labels(component, color, image string) (selector, all map[string]string) {
	selector, all = kube.Labels(appName, d.a.Name, component, d.a.Labels)
	if color != "" {
		selector[ColorLabel] = color
		all[ColorLabel] = color
	}
	if image != "" {
		all[VersionLabel] = Version(image)
	}
	return selector, all
}

func (d *deployer) meta(objectName string, labels map[string]string) metav1.ObjectMetaArgs {
	return kube.Meta(objectName, d.a.Namespace, labels)
}

// declare is the whole runtime, in the order Pulumi needs it: the identity and the control database, the pods'
// environment (wiring.go), one migrate Job per release, the blue-green web tier with its switch (bluegreen.go), the
// worker and the network policies.
func (d *deployer) declare(r *Runtime) error {
	id, err := d.identity()
	if err != nil {
		return err
	}
	r.ServiceAccountEmail = id.email
	db, err := d.controlDatabase()
	if err != nil {
		return err
	}
	if err := d.wire(r, id, db); err != nil {
		return err
	}
	migrations, err := d.migrations(db.ready)
	if err != nil {
		return err
	}
	public, err := d.blueGreen(r, migrations)
	if err != nil {
		return err
	}
	if err := d.worker(migrations.of(d.a.ActiveColor), public); err != nil {
		return err
	}
	return d.networkPolicies()
}

// ImageHash is a short fingerprint of an image reference, for the names of per-release Jobs.
func ImageHash(image string) string {
	h := sha256.Sum256([]byte(image))
	return hex.EncodeToString(h[:4])
}

// Version is the app.kubernetes.io/version label of an image: its tag, else the start of its digest.
func Version(image string) string {
	ref, dgst, hasDigest := strings.Cut(image, "@sha256:")
	slash, colon := strings.LastIndex(ref, "/"), strings.LastIndex(ref, ":")
	if colon > slash {
		tag := strings.Trim(ref[colon+1:], "_.-")
		if tag != "" && len(tag) <= 63 {
			return tag
		}
	}
	if hasDigest && len(dgst) >= 12 {
		return "sha256-" + dgst[:12]
	}
	return "unversioned"
}
