// Package restore declares a DR environment's runs against its primary's archives: the restore that fills the DR
// database from the primary's latest backup, and the failback backup that writes the DR databases and media back into
// the primary's bucket. Each run is a one-shot Job, with the grants on the primary's bucket and the primary's archive
// key it needs. The DR spin-up (stacks.DRProgram) declares it beside the DR environment; nothing of it exists in a
// primary stack.
package restore

import (
	"fmt"
	"path"
	"strings"

	"github.com/omscloud/omscloud/components/backup"
	"github.com/omscloud/omscloud/components/internal/child"
	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/secretmanager"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/storage"
	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Restore is the component. A Job output is empty when its run is 0.
type Restore struct {
	pulumi.ResourceState

	// RestoreJob is the name of the restore run's Job.
	RestoreJob pulumi.StringOutput `pulumi:"restoreJob"`
	// FailbackJob is the name of the failback run's Job.
	FailbackJob pulumi.StringOutput `pulumi:"failbackJob"`
}

// New declares the grants, and for a run the primary's archive key and the run's Job. Pass the DR environment's GCP
// and Kubernetes providers with pulumi.Providers; declare it beside the environment (Args.Environment), not inside:
// the Jobs wait for all of the environment.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Restore, error) {
	if args == nil {
		return nil, fmt.Errorf("restore: Args are required")
	}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	r := &Restore{}
	if err := ctx.RegisterComponentResource("omscloud:restore:Restore", name, r, opts...); err != nil {
		return nil, err
	}
	child, err := child.Options(r, opts)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	d := &declarer{ctx: ctx, a: args, self: r, child: child}
	empty := pulumi.String("").ToStringOutput()
	r.RestoreJob, r.FailbackJob = empty, empty
	if err := d.declare(r); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{
		"restoreJob":  r.RestoreJob,
		"failbackJob": r.FailbackJob,
	})
}

type declarer struct {
	ctx   *pulumi.Context
	a     *Args
	self  *Restore
	child []pulumi.ResourceOption
}

// opts are a child's options. movedFrom is where an existing DR stack has the child from before this component:
// the environment (grants) or the stack's root (key, Jobs).
func (d *declarer) opts(movedFrom pulumi.Alias, more ...pulumi.ResourceOption) []pulumi.ResourceOption {
	return append(append([]pulumi.ResourceOption{pulumi.Aliases([]pulumi.Alias{movedFrom})}, d.child...), more...)
}

// fromEnvironment and fromRoot are the aliases of the children's former places.
func (d *declarer) fromEnvironment() pulumi.Alias { return pulumi.Alias{Parent: d.a.Environment} }
func fromRoot() pulumi.Alias                      { return pulumi.Alias{NoParent: pulumi.Bool(true)} }

func (d *declarer) declare(r *Restore) error {
	a := d.a
	if err := d.grants(); err != nil {
		return err
	}
	if a.Restore == 0 && a.Failback == 0 {
		return nil
	}
	key, err := d.primaryKey()
	if err != nil {
		return err
	}
	if a.Restore > 0 {
		job, err := d.oneShotJob(key, fmt.Sprintf("%s-restore-%d", a.Name, a.Restore), "restore", Command(a.BackupURL, a.ForceRestore), nil)
		if err != nil {
			return fmt.Errorf("restore Job: %w", err)
		}
		r.RestoreJob = job.Metadata.Name().Elem()
	}
	if a.Failback > 0 {
		job, err := d.oneShotJob(key, fmt.Sprintf("%s-failback-%d", a.Name, a.Failback), "failback", FailbackCommand(a.BackupURL), corev1.EnvVarArray{
			corev1.EnvVarArgs{Name: pulumi.String(backup.EnvMediaURL), Value: a.MediaURL},
			corev1.EnvVarArgs{Name: pulumi.String(backup.EnvRelease), Value: pulumi.String(a.Image)},
		})
		if err != nil {
			return fmt.Errorf("failback Job: %w", err)
		}
		r.FailbackJob = job.Metadata.Name().Elem()
	}
	return nil
}

// grants let the backup identity read the primary's archives, and for a failback also add one (objectCreator: it
// can neither overwrite nor delete an archive) — and nothing else of the primary (the archive key reaches the Jobs as
// a Kubernetes Secret).
func (d *declarer) grants() error {
	a := d.a
	grants := []struct{ name, role string }{{a.Name + "-restore-read-archives", "roles/storage.objectViewer"}}
	if a.Failback > 0 {
		grants = append(grants, struct{ name, role string }{a.Name + "-failback-write-archives", "roles/storage.objectCreator"})
	}
	for _, g := range grants {
		if _, err := storage.NewBucketIAMMember(d.ctx, g.name, &storage.BucketIAMMemberArgs{
			Bucket: pulumi.String(strings.TrimPrefix(a.BackupURL, "gs://")),
			Role:   pulumi.String(g.role),
			Member: pulumi.Sprintf("serviceAccount:%s", a.Identity.Email),
		}, d.opts(d.fromEnvironment())...); err != nil {
			return fmt.Errorf("grant %s on the primary's archives: %w", g.role, err)
		}
	}
	return nil
}

// primaryKey hands the primary's archive key (Secret Manager, replicated to the DR region) to the Jobs as a
// Kubernetes Secret, read at deploy time like the backup pods' own key: the restore reads the primary's archives
// with it, the failback backup writes the archive the primary restores.
func (d *declarer) primaryKey() (*corev1.Secret, error) {
	a := d.a
	name := a.Name + "-primary-key"
	key := secretmanager.LookupSecretVersionOutput(d.ctx, secretmanager.LookupSecretVersionOutputArgs{
		Project: pulumi.String(a.Project),
		Secret:  pulumi.String(a.KeySecretID),
	}, pulumi.Parent(d.self))
	secret, err := corev1.NewSecret(d.ctx, name, &corev1.SecretArgs{
		Metadata: metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: pulumi.String(a.Runtime.Namespace),
			Labels: pulumi.ToStringMap(omsruntime.ClientSelector(a.Name))},
		Type: pulumi.String("Opaque"),
		StringData: pulumi.StringMap{
			backup.KeySecretKey: pulumi.ToSecret(key.SecretData()).(pulumi.StringOutput),
		},
	}, d.opts(fromRoot(), pulumi.DependsOn([]pulumi.Resource{a.Environment}))...)
	if err != nil {
		return nil, fmt.Errorf("the primary's archive key: %w", err)
	}
	return secret, nil
}

// oneShotJob runs `oms <args>` once the whole DR environment is up: as the DR environment's backup identity, with the
// primary's archive key as a file, the runtime's environment and database credentials (omsruntime.Wiring), under the
// restricted Pod Security level. It runs once: a later change of its spec (a new release) is ignored rather than
// replacing the Job, which would run it again, and it is never deleted by a TTL, which would make a refresh drop it
// and the next up create it again. A new run is a new Job (a new run number in its name).
func (d *declarer) oneShotJob(key *corev1.Secret, name, component string, args []string, extraEnv corev1.EnvVarArray) (*batchv1.Job, error) {
	a := d.a
	w := a.Runtime
	labels := omsruntime.ClientSelector(a.Name)
	labels["app.kubernetes.io/component"] = component
	container := w.Container(component, a.Image, args, []string{omsruntime.EnvDatabaseURL},
		omsruntime.Resources{CPU: "500m", Memory: "1Gi", CPULimit: "2", MemoryLimit: "2Gi"})
	container.Env = append(append(container.Env.(corev1.EnvVarArray), corev1.EnvVarArgs{
		Name: pulumi.String(backup.EnvKeyFile), Value: pulumi.String(backup.KeyFile),
	}), extraEnv...)
	container.VolumeMounts = append(container.VolumeMounts.(corev1.VolumeMountArray), corev1.VolumeMountArgs{
		Name: pulumi.String("archive-key"), MountPath: pulumi.String(path.Dir(backup.KeyFile)), ReadOnly: pulumi.Bool(true),
	})
	pod := w.PodSpec("Never", container)
	// The backup identity reads (and, for the failback, writes) the primary's archives (grants); the runtime's
	// Secret gives the database.
	pod.ServiceAccountName = pulumi.String(a.Identity.KSA)
	pod.Volumes = append(pod.Volumes.(corev1.VolumeArray), corev1.VolumeArgs{
		Name: pulumi.String("archive-key"),
		Secret: corev1.SecretVolumeSourceArgs{
			SecretName:  key.Metadata.Name().Elem(),
			DefaultMode: pulumi.Int(0o400),
			Items: corev1.KeyToPathArray{corev1.KeyToPathArgs{
				Key: pulumi.String(backup.KeySecretKey), Path: pulumi.String(path.Base(backup.KeyFile)),
			}},
		},
	})
	return batchv1.NewJob(d.ctx, name, &batchv1.JobArgs{
		Metadata: metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: pulumi.String(w.Namespace), Labels: pulumi.ToStringMap(labels)},
		Spec: batchv1.JobSpecArgs{
			BackoffLimit:          pulumi.Int(2),
			ActiveDeadlineSeconds: pulumi.Int(3 * 3600),
			Template: corev1.PodTemplateSpecArgs{
				Metadata: metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(labels)},
				Spec:     pod,
			},
		},
	}, d.opts(fromRoot(), pulumi.DependsOn([]pulumi.Resource{a.Environment, key}), pulumi.IgnoreChanges([]string{"spec"}))...)
}
