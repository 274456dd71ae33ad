// Package kube holds the Kubernetes building blocks the stateful components share, so that every workload gets the
// same placement, spread, restricted security context and labels: pods that pass the `restricted` Pod Security
// level, land on the stateful node pool and survive the loss of a node or a zone.
package kube

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	"github.com/omscloud/omscloud/components/gke"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	policyv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/policy/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Well-known keys and defaults.
const (
	ZoneKey     = "topology.kubernetes.io/zone"
	HostnameKey = "kubernetes.io/hostname"
	// DefaultStorageClass is GKE's pd-ssd CSI class; it binds volumes in the zone the pod is scheduled to.
	DefaultStorageClass = "premium-rwo"
	PartOf              = "omscloud"
	ManagedBy           = "pulumi"
)

// Toleration lets pods onto a tainted node pool. Effect is a Kubernetes effect: NoSchedule, PreferNoSchedule or
// NoExecute.
type Toleration struct {
	Key, Value, Effect string
}

// SecretKey locates a value in a Kubernetes Secret.
type SecretKey struct {
	Name pulumi.StringOutput
	Key  string
}

// Placement selects the nodes a workload runs on.
type Placement struct {
	NodeSelector map[string]string
	Tolerations  []Toleration
}

// StatefulPool is the placement on the GKE stateful node pool.
func StatefulPool() Placement {
	return Placement{
		NodeSelector: map[string]string{gke.PoolLabel: gke.StatefulPool},
		Tolerations:  []Toleration{{Key: gke.StatefulTaint, Value: "true", Effect: "NoSchedule"}},
	}
}

// Labels returns the pod selector (stable: a StatefulSet's selector is immutable) and the full label set that adds
// the recommended app.kubernetes.io labels and the caller's extra labels.
func Labels(app, instance, component string, extra map[string]string) (selector, all map[string]string) {
	selector = map[string]string{
		"app.kubernetes.io/name":      app,
		"app.kubernetes.io/instance":  instance,
		"app.kubernetes.io/component": component,
	}
	all = maps.Clone(extra)
	if all == nil {
		all = map[string]string{}
	}
	maps.Copy(all, selector)
	all["app.kubernetes.io/part-of"] = PartOf
	all["app.kubernetes.io/managed-by"] = ManagedBy
	return selector, all
}

// Meta is object metadata in the component's namespace.
func Meta(name, namespace string, labels map[string]string) metav1.ObjectMetaArgs {
	return metav1.ObjectMetaArgs{
		Name:      pulumi.String(name),
		Namespace: pulumi.String(namespace),
		Labels:    pulumi.ToStringMap(labels),
	}
}

// Selector matches pods by labels.
func Selector(labels map[string]string) metav1.LabelSelectorArgs {
	return metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(labels)}
}

// PodSecurityContext is the pod half of the `restricted` Pod Security level; uid is the image's non-root user, which
// also owns the volumes (fsGroup).
func PodSecurityContext(uid int) corev1.PodSecurityContextArgs {
	return corev1.PodSecurityContextArgs{
		RunAsNonRoot:        pulumi.Bool(true),
		RunAsUser:           pulumi.Int(uid),
		RunAsGroup:          pulumi.Int(uid),
		FsGroup:             pulumi.Int(uid),
		FsGroupChangePolicy: pulumi.String("OnRootMismatch"),
		SeccompProfile:      corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
	}
}

// ContainerSecurityContext is the container half of `restricted`, with a read-only root filesystem: every writable
// path is a volume.
func ContainerSecurityContext(uid int) corev1.SecurityContextArgs {
	return corev1.SecurityContextArgs{
		RunAsNonRoot:             pulumi.Bool(true),
		RunAsUser:                pulumi.Int(uid),
		RunAsGroup:               pulumi.Int(uid),
		AllowPrivilegeEscalation: pulumi.Bool(false),
		ReadOnlyRootFilesystem:   pulumi.Bool(true),
		Privileged:               pulumi.Bool(false),
		Capabilities:             corev1.CapabilitiesArgs{Drop: pulumi.StringArray{pulumi.String("ALL")}},
		SeccompProfile:           corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
	}
}

// ZoneSpread keeps the replicas evenly spread over zones: a zone never holds two more than another, so losing one
// zone loses at most ceil(n/zones) replicas.
func ZoneSpread(selector map[string]string) corev1.TopologySpreadConstraintArray {
	return corev1.TopologySpreadConstraintArray{corev1.TopologySpreadConstraintArgs{
		MaxSkew:           pulumi.Int(1),
		TopologyKey:       pulumi.String(ZoneKey),
		WhenUnsatisfiable: pulumi.String("DoNotSchedule"),
		LabelSelector:     Selector(selector),
	}}
}

// HostnameAntiAffinity forbids two replicas on one node, so a node failure costs one replica.
func HostnameAntiAffinity(selector map[string]string) corev1.AffinityArgs {
	return corev1.AffinityArgs{
		PodAntiAffinity: corev1.PodAntiAffinityArgs{
			RequiredDuringSchedulingIgnoredDuringExecution: corev1.PodAffinityTermArray{corev1.PodAffinityTermArgs{
				LabelSelector: Selector(selector),
				TopologyKey:   pulumi.String(HostnameKey),
			}},
		},
	}
}

// TolerationArray renders the placement's tolerations.
func (p Placement) TolerationArray() corev1.TolerationArray {
	out := corev1.TolerationArray{}
	for _, t := range p.Tolerations {
		out = append(out, corev1.TolerationArgs{
			Key: pulumi.String(t.Key), Operator: pulumi.String("Equal"), Value: pulumi.String(t.Value),
			Effect: pulumi.String(t.Effect),
		})
	}
	return out
}

// Resources reserves exactly what it limits (Guaranteed QoS): stateful pods are the last to be evicted under node
// pressure and never run on borrowed CPU or memory.
func Resources(cpu, memory string) corev1.ResourceRequirementsArgs {
	q := pulumi.StringMap{"cpu": pulumi.String(cpu), "memory": pulumi.String(memory)}
	return corev1.ResourceRequirementsArgs{Requests: q, Limits: q}
}

// VolumeClaim is a volumeClaimTemplate of sizeGB on storageClass.
func VolumeClaim(name, storageClass string, sizeGB int, labels map[string]string) corev1.PersistentVolumeClaimTypeArgs {
	return corev1.PersistentVolumeClaimTypeArgs{
		Metadata: metav1.ObjectMetaArgs{Name: pulumi.String(name), Labels: pulumi.ToStringMap(labels)},
		Spec: corev1.PersistentVolumeClaimSpecArgs{
			AccessModes:      pulumi.StringArray{pulumi.String("ReadWriteOnce")},
			StorageClassName: pulumi.String(storageClass),
			Resources: corev1.VolumeResourceRequirementsArgs{
				Requests: pulumi.StringMap{"storage": pulumi.String(fmt.Sprintf("%dGi", sizeGB))},
			},
		},
	}
}

// EmptyDir is a scratch volume; in memory when inMemory (rendered configs holding credentials never touch disk).
func EmptyDir(name, sizeLimit string, inMemory bool) corev1.VolumeArgs {
	src := corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String(sizeLimit)}
	if inMemory {
		src.Medium = pulumi.String("Memory")
	}
	return corev1.VolumeArgs{Name: pulumi.String(name), EmptyDir: src}
}

// SecretEnv reads an environment variable from a Secret key, so the value never appears in the pod spec.
func SecretEnv(name string, secret pulumi.StringInput, key string) corev1.EnvVarArgs {
	return corev1.EnvVarArgs{
		Name: pulumi.String(name),
		ValueFrom: corev1.EnvVarSourceArgs{
			SecretKeyRef: corev1.SecretKeySelectorArgs{Name: secret, Key: pulumi.String(key)},
		},
	}
}

// FieldEnv exposes a pod field (metadata.name, metadata.namespace) through the downward API.
func FieldEnv(name, fieldPath string) corev1.EnvVarArgs {
	return corev1.EnvVarArgs{
		Name:      pulumi.String(name),
		ValueFrom: corev1.EnvVarSourceArgs{FieldRef: corev1.ObjectFieldSelectorArgs{FieldPath: pulumi.String(fieldPath)}},
	}
}

// Env is a plain environment variable; never use it for a credential.
func Env(name, value string) corev1.EnvVarArgs {
	return corev1.EnvVarArgs{Name: pulumi.String(name), Value: pulumi.String(value)}
}

// ClusterDomain is the DNS suffix of the cluster; GKE uses the default.
const ClusterDomain = "svc.cluster.local"

// ServiceFQDN is the fully qualified DNS name of a Service.
func ServiceFQDN(service, namespace string) string {
	return service + "." + namespace + "." + ClusterDomain
}

// NewPDB lets voluntary disruptions (node drains, upgrades) take at most one replica at a time, so a quorum of three
// or more always keeps its majority.
func NewPDB(ctx *pulumi.Context, name string, meta metav1.ObjectMetaArgs, selector map[string]string,
	opts ...pulumi.ResourceOption) (*policyv1.PodDisruptionBudget, error) {
	return policyv1.NewPodDisruptionBudget(ctx, name, &policyv1.PodDisruptionBudgetArgs{
		Metadata: meta,
		Spec: policyv1.PodDisruptionBudgetSpecArgs{
			MaxUnavailable: pulumi.Int(1),
			Selector:       Selector(selector),
		},
	}, opts...)
}

// Port is a NetworkPolicy port.
func Port(n int) networkingv1.NetworkPolicyPortArgs {
	return networkingv1.NetworkPolicyPortArgs{Port: pulumi.Int(n), Protocol: pulumi.String("TCP")}
}

// PodPeer admits pods of the policy's namespace with these labels.
func PodPeer(labels map[string]string) networkingv1.NetworkPolicyPeerArgs {
	return networkingv1.NetworkPolicyPeerArgs{PodSelector: Selector(labels)}
}

// TemplateMeta is a pod template's metadata; annotations (e.g. a config checksum) roll the pods when they change.
func TemplateMeta(labels, annotations map[string]string) metav1.ObjectMetaArgs {
	return metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(labels), Annotations: pulumi.ToStringMap(annotations)}
}

// SecretChecksumAnnotation on a pod template changes with the data of the Secrets its pods read, so that a rotated
// credential rolls them (a Secret updated in place reaches running pods' environment only when they restart).
const SecretChecksumAnnotation = "omscloud.io/secret-checksum"

// SecretChecksum fingerprints secret data for SecretChecksumAnnotation: an HMAC-SHA256 keyed with key, computed
// inside an Apply and kept a Pulumi secret. The annotation is readable by whoever may read the workload, a wider
// audience than the Secret's; keyed, it tells them nothing about the values, not even whether two are equal.
func SecretChecksum(key pulumi.StringInput, data pulumi.StringMapInput) pulumi.StringOutput {
	sum := pulumi.All(key, data).ApplyT(func(v []any) string {
		m := v[1].(map[string]string)
		h := hmac.New(sha256.New, []byte(v[0].(string)))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			fmt.Fprintf(h, "%s\x00%s\x00", k, m[k])
		}
		return hex.EncodeToString(h.Sum(nil))
	}).(pulumi.StringOutput)
	return pulumi.ToSecret(sum).(pulumi.StringOutput)
}

// Checksum fingerprints configuration files for a pod template annotation.
func Checksum(files map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(files)) {
		fmt.Fprintf(h, "%s\x00%s\x00", k, files[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ClaimName is the volume claim a StatefulSet creates for replica ordinal from its volumeClaimTemplate named
// template: <template>-<statefulset>-<ordinal>
// (https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#stable-storage).
func ClaimName(template, statefulSet string, ordinal int) string {
	return fmt.Sprintf("%s-%s-%d", template, statefulSet, ordinal)
}

// StatefulSetOptions keep a StatefulSet from being replaced by a change to an immutable field: the
// volumeClaimTemplates stay at their first value (a size change goes to the claims themselves: ExpandClaims),
// and protect, in production, turns any other replacement (selector, serviceName, podManagementPolicy,
// revisionHistoryLimit; pulumi-kubernetes replaces on each) into a failed preview instead of every replica
// going at once.
func StatefulSetOptions(protect bool) []pulumi.ResourceOption {
	return []pulumi.ResourceOption{
		pulumi.IgnoreChanges([]string{"spec.volumeClaimTemplates"}),
		pulumi.Protect(protect),
	}
}

// ExpandClaims sets the requested storage of each replica's claim by server-side apply, so that a size change
// expands the volumes in place (the StorageClass allows expansion: GKE's premium-rwo does,
// https://cloud.google.com/kubernetes-engine/docs/how-to/persistent-volumes/volume-expansion) and never touches
// the StatefulSet. The claims exist once the StatefulSet is ready (the provider awaits it: dependsOn). A claim may
// only grow; Kubernetes refuses a smaller request.
func ExpandClaims(ctx *pulumi.Context, name, template, statefulSet, namespace string, replicas, sizeGB int,
	sts pulumi.Resource, opts ...pulumi.ResourceOption) error {
	opts = append(slices.Clone(opts), pulumi.DependsOn([]pulumi.Resource{sts}))
	for i := range replicas {
		claim := ClaimName(template, statefulSet, i)
		if _, err := corev1.NewPersistentVolumeClaimPatch(ctx, fmt.Sprintf("%s-%s-%d", name, template, i), &corev1.PersistentVolumeClaimPatchArgs{
			Metadata: metav1.ObjectMetaPatchArgs{
				Name:      pulumi.String(claim),
				Namespace: pulumi.String(namespace),
				Annotations: pulumi.StringMap{
					// The claim's storage request belongs to the StatefulSet controller, which created it.
					"pulumi.com/patchForce": pulumi.String("true"),
					// The claim is bound already (the StatefulSet was awaited). The provider's own claim await waits
					// for Pending when the class binds on first consumer (premium-rwo does), which a bound claim never
					// is: 5 minutes, then the update failed (pulumi-kubernetes 4.25, seen by enginetest's
					// real-provider test; releases after it look for Bound on an update,
					// pulumi/pulumi-kubernetes#4181, but a first patch is a create). A waitFor condition instead may
					// record a stale object, without these annotations: every later preview then shows an update.
					"pulumi.com/skipAwait": pulumi.String("true"),
				},
			},
			Spec: corev1.PersistentVolumeClaimSpecPatchArgs{
				Resources: corev1.VolumeResourceRequirementsPatchArgs{
					Requests: pulumi.StringMap{"storage": pulumi.String(fmt.Sprintf("%dGi", sizeGB))},
				},
			},
		}, opts...); err != nil {
			return fmt.Errorf("claim %s: %w", claim, err)
		}
	}
	return nil
}
