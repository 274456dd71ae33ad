// Package backup declares an environment's backups: a CMEK-encrypted, versioned backup bucket outside the primary
// region with lifecycle rules per tier prefix, a media bucket replicated within the jurisdiction, the archive key
// (AES-256) in Secret Manager, least-privilege Workload Identity service accounts, and CronJobs that run
// `oms backup --tier hourly|weekly|monthly` and `oms backup prune` from the runtime's image. Cloud SQL's own
// automated backups and point-in-time recovery stay with components/postgres.
package backup

import (
	"fmt"
	"github.com/omscloud/omscloud/components/internal/child"
	"github.com/omscloud/omscloud/components/internal/cmek"
	"maps"
	"path"
	"slices"

	"github.com/omscloud/omscloud/components/internal/kube"
	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/secretmanager"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/serviceaccount"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/storage"
	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Backup is the component.
type Backup struct {
	pulumi.ResourceState

	// BackupBucket is the backup bucket's name; BackupURL is "gs://<name>", what `oms backup --to` and
	// `oms restore --from` take.
	BackupBucket pulumi.StringOutput `pulumi:"backupBucket"`
	BackupURL    pulumi.StringOutput `pulumi:"backupUrl"`
	// MediaBucket is the media bucket's name; MediaURL "gs://<name>".
	MediaBucket pulumi.StringOutput `pulumi:"mediaBucket"`
	MediaURL    pulumi.StringOutput `pulumi:"mediaUrl"`
	// KeySecretID is the archive key's Secret Manager secret ("projects/<p>/secrets/<Name>-backup-key").
	KeySecretID pulumi.StringOutput `pulumi:"keySecretId"`
	// ServiceAccountEmail is the backup service account (writes and reads archives, reads the key); the DR restore
	// Job runs as it. PruneServiceAccountEmail may delete archives and nothing else.
	ServiceAccountEmail      pulumi.StringOutput `pulumi:"serviceAccountEmail"`
	PruneServiceAccountEmail pulumi.StringOutput `pulumi:"pruneServiceAccountEmail"`
	// ServiceAccountName is the backup pods' Kubernetes service account ("<Name>-backup").
	ServiceAccountName string
}

// KSAName is the Kubernetes service account of the backup pods.
func KSAName(name string) string { return name + "-backup" }

// PruneKSAName is the Kubernetes service account of the prune pods.
func PruneKSAName(name string) string { return name + "-backup-prune" }

// New declares the backups. The GCP resources use the GCP provider inherited from the parent: every one of them
// sets its location explicitly, so no provider pinned to the DR region is needed. Pass the Kubernetes provider with
// pulumi.Provider or pulumi.Providers; explicit dependencies (e.g. on the namespace) reach every child.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Backup, error) {
	if args == nil {
		return nil, fmt.Errorf("backup: Args are required")
	}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	a := args.withDefaults()
	b := &Backup{ServiceAccountName: KSAName(a.Name)}
	if err := ctx.RegisterComponentResource("omscloud:backup:Backup", name, b, opts...); err != nil {
		return nil, err
	}
	child, err := child.Options(b, opts)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	d := &declarer{ctx: ctx, name: name, a: &a, b: b, child: child}
	if err := d.declare(b); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return b, ctx.RegisterResourceOutputs(b, pulumi.Map{
		"backupBucket":             b.BackupBucket,
		"backupUrl":                b.BackupURL,
		"mediaBucket":              b.MediaBucket,
		"mediaUrl":                 b.MediaURL,
		"keySecretId":              b.KeySecretID,
		"serviceAccountEmail":      b.ServiceAccountEmail,
		"pruneServiceAccountEmail": b.PruneServiceAccountEmail,
	})
}

type declarer struct {
	ctx   *pulumi.Context
	name  string
	a     *Args
	b     *Backup
	child []pulumi.ResourceOption
}

func (d *declarer) opts(more ...pulumi.ResourceOption) []pulumi.ResourceOption {
	return append(slices.Clone(d.child), more...)
}

func (d *declarer) protect() pulumi.ResourceOption { return pulumi.Protect(d.a.DeletionProtection) }

func (d *declarer) declare(b *Backup) error {
	a := d.a
	backupKey, err := d.cmek("backup", a.Bucket.KeyLocation)
	if err != nil {
		return err
	}
	mediaKey, err := d.cmek("media", a.Media.KeyLocation)
	if err != nil {
		return err
	}
	tiers := storage.BucketLifecycleRuleArray{}
	for _, t := range []struct {
		prefix string
		days   int
	}{{Hourly, a.Retention.Hourly}, {Weekly, a.Retention.Weekly}, {Monthly, a.Retention.Monthly}} {
		tiers = append(tiers, deleteRule(storage.BucketLifecycleRuleConditionArgs{
			Age:             pulumi.Int(t.days),
			MatchesPrefixes: pulumi.StringArray{pulumi.String(t.prefix + "/")},
		}))
	}
	backups, err := d.bucket("backups", a.Bucket.Name, a.Bucket.Location, a.Bucket.DataLocations, backupKey, tiers)
	if err != nil {
		return err
	}
	media, err := d.bucket("media", a.Media.Name, a.Media.Location, a.Media.DataLocations, mediaKey, nil)
	if err != nil {
		return err
	}
	backupURL := "gs://" + a.Bucket.Name
	mediaURL := "gs://" + a.Media.Name

	key, err := d.archiveKey()
	if err != nil {
		return err
	}
	ids, err := d.identities(backups, media, key.secret)
	if err != nil {
		return err
	}
	if err := d.cronJobs(ids, key.k8sSecret, backupURL, mediaURL); err != nil {
		return err
	}

	b.BackupBucket = backups.Name
	b.BackupURL = pulumi.Sprintf("gs://%s", backups.Name)
	b.MediaBucket = media.Name
	b.MediaURL = pulumi.Sprintf("gs://%s", media.Name)
	b.KeySecretID = key.secret.ID().ToStringOutput()
	b.ServiceAccountEmail = ids.backupEmail
	b.PruneServiceAccountEmail = ids.pruneEmail
	return nil
}

// cmek declares a key ring and key in a bucket's location and lets the Cloud Storage service agent use the key. The
// agent comes from the provider's look-up, which creates it on a new project: a grant to an agent that does not
// exist yet fails.
func (d *declarer) cmek(purpose, location string) (*cmek.Key, error) {
	a := d.a
	k, err := cmek.New(d.ctx, cmek.Args{
		RingLogical: d.name + "-" + purpose + "-keyring", KeyLogical: d.name + "-" + purpose + "-key",
		GrantLogical: d.name + "-" + purpose + "-key-gcs-agent",
		Project:      a.Project, Location: location, Name: a.Name + "-" + purpose, RotationDays: a.KeyRotationDays,
		Labels: a.Labels, Agent: a.StorageAgent, Protect: a.DeletionProtection, Adopt: a.AdoptKeys, Parent: d.b,
	}, d.opts()...)
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", purpose, err)
	}
	return k, nil
}

func deleteRule(cond storage.BucketLifecycleRuleConditionArgs) storage.BucketLifecycleRuleArgs {
	return storage.BucketLifecycleRuleArgs{
		Action:    storage.BucketLifecycleRuleActionArgs{Type: pulumi.String("Delete")},
		Condition: cond,
	}
}

// bucket declares a private, CMEK-encrypted, versioned bucket with soft delete. There is no retention policy: it
// cannot be combined with Object Versioning, and a locked one would stop prune; versions and soft delete give the
// undo window instead.
func (d *declarer) bucket(purpose, bucketName, location string, dataLocations []string, k *cmek.Key,
	rules storage.BucketLifecycleRuleArray) (*storage.Bucket, error) {
	a := d.a
	rules = append(rules,
		// A replaced or deleted object's old version goes after the undo window.
		deleteRule(storage.BucketLifecycleRuleConditionArgs{
			DaysSinceNoncurrentTime: pulumi.Int(a.Retention.NoncurrentDays),
			WithState:               pulumi.String("ARCHIVED"),
		}),
		// Uploads interrupted by a failed Job leave no billed parts behind.
		storage.BucketLifecycleRuleArgs{
			Action:    storage.BucketLifecycleRuleActionArgs{Type: pulumi.String("AbortIncompleteMultipartUpload")},
			Condition: storage.BucketLifecycleRuleConditionArgs{Age: pulumi.Int(1)},
		},
	)
	labels := maps.Clone(a.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels["purpose"] = purpose
	args := &storage.BucketArgs{
		Project:                  pulumi.String(a.Project),
		Name:                     pulumi.String(bucketName),
		Location:                 pulumi.String(location),
		StorageClass:             pulumi.String("STANDARD"),
		UniformBucketLevelAccess: pulumi.Bool(true),
		PublicAccessPrevention:   pulumi.String("enforced"),
		Versioning:               storage.BucketVersioningArgs{Enabled: pulumi.Bool(true)},
		SoftDeletePolicy: storage.BucketSoftDeletePolicyArgs{
			RetentionDurationSeconds: pulumi.Int(a.Retention.SoftDeleteDays * 86400),
		},
		Encryption:     storage.BucketEncryptionArgs{DefaultKmsKeyName: k.Key.ID().ToStringOutput()},
		LifecycleRules: rules,
		// Never delete objects with the bucket: emptying it must be a deliberate act outside Pulumi.
		ForceDestroy: pulumi.Bool(a.ForceDestroy),
		Labels:       pulumi.ToStringMap(labels),
	}
	if len(dataLocations) > 0 {
		args.CustomPlacementConfig = storage.BucketCustomPlacementConfigArgs{DataLocations: pulumi.ToStringArray(dataLocations)}
	}
	bucket, err := storage.NewBucket(d.ctx, d.name+"-"+purpose, args,
		d.opts(d.protect(), pulumi.DependsOn([]pulumi.Resource{k.Grant}))...)
	if err != nil {
		return nil, fmt.Errorf("%s bucket: %w", purpose, err)
	}
	return bucket, nil
}

type archiveKey struct {
	secret    *secretmanager.Secret
	k8sSecret *corev1.Secret
}

// archiveKey generates the AES-256 key of the archives and keeps it in Secret Manager, replicated to the primary
// and DR regions so that a DR spin-up can read it when the primary region is lost, and in a Kubernetes Secret the
// backup pods mount as a file.
func (d *declarer) archiveKey() (*archiveKey, error) {
	a := d.a
	// Replacing the key makes every existing archive unreadable: protect it like the data.
	bytes, err := random.NewRandomBytes(d.ctx, d.name+"-archive-key", &random.RandomBytesArgs{
		Length: pulumi.Int(keyBytes),
	}, d.opts(d.protect())...)
	if err != nil {
		return nil, fmt.Errorf("archive key: %w", err)
	}
	value := pulumi.ToSecret(bytes.Base64).(pulumi.StringOutput)
	replicas := secretmanager.SecretReplicationUserManagedReplicaArray{
		secretmanager.SecretReplicationUserManagedReplicaArgs{Location: pulumi.String(a.Region)},
	}
	if a.DRRegion != "" {
		replicas = append(replicas, secretmanager.SecretReplicationUserManagedReplicaArgs{Location: pulumi.String(a.DRRegion)})
	}
	secret, err := secretmanager.NewSecret(d.ctx, d.name+"-key-secret", &secretmanager.SecretArgs{
		Project:  pulumi.String(a.Project),
		SecretId: pulumi.String(a.Name + "-backup-key"),
		Labels:   pulumi.ToStringMap(a.Labels),
		Replication: secretmanager.SecretReplicationArgs{
			UserManaged: secretmanager.SecretReplicationUserManagedArgs{Replicas: replicas},
		},
	}, d.opts(d.protect())...)
	if err != nil {
		return nil, fmt.Errorf("archive key secret: %w", err)
	}
	if _, err := secretmanager.NewSecretVersion(d.ctx, d.name+"-key-version", &secretmanager.SecretVersionArgs{
		Secret:     secret.ID(),
		SecretData: value,
		// A superseded version stays enabled: archives written with it remain restorable.
		DeletionPolicy: pulumi.String("ABANDON"),
	}, d.opts()...); err != nil {
		return nil, fmt.Errorf("archive key version: %w", err)
	}
	_, labels := kube.Labels("oms", a.Name, "backup", a.Labels)
	k8s, err := corev1.NewSecret(d.ctx, d.name+"-key", &corev1.SecretArgs{
		Metadata:   kube.Meta(a.Name+"-backup-key", a.Runtime.Namespace, labels),
		Type:       pulumi.String("Opaque"),
		StringData: pulumi.StringMap{KeySecretKey: value},
	}, d.opts()...)
	if err != nil {
		return nil, fmt.Errorf("archive key kubernetes secret: %w", err)
	}
	return &archiveKey{secret: secret, k8sSecret: k8s}, nil
}

type identities struct {
	backupKSA, pruneKSA     pulumi.StringOutput
	backupEmail, pruneEmail pulumi.StringOutput
}

// identities declares two Workload Identity service accounts. The backup account creates and reads archives but
// cannot delete or overwrite one (objectCreator has no delete): a compromised backup run cannot destroy history.
// The prune account may list and delete archives (objectUser, scoped to the backup bucket) but reads neither the
// key nor the database. Every grant is on one bucket or secret; nothing is project-wide. No cloudsql.client: the
// pods reach Cloud SQL's private IP with a password, not through the connector.
func (d *declarer) identities(backups, media *storage.Bucket, keySecret *secretmanager.Secret) (*identities, error) {
	a := d.a
	backupGSA, backupKSA, err := d.identity("backup", KSAName(a.Name))
	if err != nil {
		return nil, err
	}
	pruneGSA, pruneKSA, err := d.identity("prune", PruneKSAName(a.Name))
	if err != nil {
		return nil, err
	}
	backupMember := pulumi.Sprintf("serviceAccount:%s", backupGSA.Email)
	pruneMember := pulumi.Sprintf("serviceAccount:%s", pruneGSA.Email)
	grants := []struct {
		logical string
		bucket  *storage.Bucket
		role    string
		member  pulumi.StringInput
	}{
		{"backup-creator", backups, "roles/storage.objectCreator", backupMember},
		{"backup-viewer", backups, "roles/storage.objectViewer", backupMember},
		{"media-viewer", media, "roles/storage.objectViewer", backupMember},
		{"prune-user", backups, "roles/storage.objectUser", pruneMember},
	}
	for i, w := range a.Media.Writers {
		grants = append(grants, struct {
			logical string
			bucket  *storage.Bucket
			role    string
			member  pulumi.StringInput
		}{fmt.Sprintf("media-writer-%d", i), media, "roles/storage.objectUser", pulumi.Sprintf("serviceAccount:%s", w)})
	}
	for i, l := range a.Bucket.Listers {
		grants = append(grants, struct {
			logical string
			bucket  *storage.Bucket
			role    string
			member  pulumi.StringInput
		}{fmt.Sprintf("backup-lister-%d", i), backups, "roles/storage.legacyBucketReader", pulumi.Sprintf("serviceAccount:%s", l)})
	}
	for _, g := range grants {
		if _, err := storage.NewBucketIAMMember(d.ctx, d.name+"-"+g.logical, &storage.BucketIAMMemberArgs{
			Bucket: g.bucket.Name,
			Role:   pulumi.String(g.role),
			Member: g.member,
		}, d.opts()...); err != nil {
			return nil, fmt.Errorf("bucket grant %s: %w", g.logical, err)
		}
	}
	secrets := map[string]pulumi.StringInput{"key": keySecret.ID()}
	for id, s := range a.AccountSecrets {
		secrets["account-"+id] = s
	}
	for _, k := range slices.Sorted(maps.Keys(secrets)) {
		if _, err := secretmanager.NewSecretIamMember(d.ctx, d.name+"-secret-"+k, &secretmanager.SecretIamMemberArgs{
			Project:  pulumi.String(a.Project),
			SecretId: secrets[k],
			Role:     pulumi.String("roles/secretmanager.secretAccessor"),
			Member:   backupMember,
		}, d.opts()...); err != nil {
			return nil, fmt.Errorf("secret access %s: %w", k, err)
		}
	}
	return &identities{backupKSA: backupKSA, pruneKSA: pruneKSA, backupEmail: backupGSA.Email, pruneEmail: pruneGSA.Email}, nil
}

// identity is a GCP service account that exactly one Kubernetes service account may act as.
func (d *declarer) identity(role, ksaName string) (*serviceaccount.Account, pulumi.StringOutput, error) {
	a := d.a
	ns := a.Runtime.Namespace
	gsa, err := serviceaccount.NewAccount(d.ctx, d.name+"-"+role+"-gsa", &serviceaccount.AccountArgs{
		Project:     pulumi.String(a.Project),
		AccountId:   pulumi.String(a.Name + "-" + role),
		DisplayName: pulumi.String("OMS " + role + " " + a.Name),
		Description: pulumi.String("Workload Identity of the " + role + " pods in " + ns + "/" + ksaName),
	}, d.opts()...)
	if err != nil {
		return nil, pulumi.StringOutput{}, fmt.Errorf("%s service account: %w", role, err)
	}
	if _, err := serviceaccount.NewIAMMember(d.ctx, d.name+"-"+role+"-workload-identity", &serviceaccount.IAMMemberArgs{
		ServiceAccountId: gsa.Name,
		Role:             pulumi.String("roles/iam.workloadIdentityUser"),
		Member:           pulumi.String(omsruntime.WorkloadIdentityMember(a.Project, ns, ksaName)),
	}, d.opts()...); err != nil {
		return nil, pulumi.StringOutput{}, fmt.Errorf("%s workload identity: %w", role, err)
	}
	_, labels := kube.Labels("oms", a.Name, role, a.Labels)
	ksa, err := corev1.NewServiceAccount(d.ctx, d.name+"-"+role+"-ksa", &corev1.ServiceAccountArgs{
		Metadata: metav1.ObjectMetaArgs{
			Name:        pulumi.String(ksaName),
			Namespace:   pulumi.String(ns),
			Labels:      pulumi.ToStringMap(labels),
			Annotations: pulumi.StringMap{"iam.gke.io/gcp-service-account": gsa.Email},
		},
		// The pods never call the Kubernetes API; GKE's metadata server identifies them without the token.
		AutomountServiceAccountToken: pulumi.Bool(false),
	}, d.opts()...)
	if err != nil {
		return nil, pulumi.StringOutput{}, fmt.Errorf("%s kubernetes service account: %w", role, err)
	}
	return gsa, ksa.Metadata.Name().Elem(), nil
}

// schedule is one CronJob.
type schedule struct {
	tier, cron       string
	startingDeadline int
	activeDeadline   int
}

// cronJobs declares the three backup tiers and the daily prune.
func (d *declarer) cronJobs(ids *identities, keySecret *corev1.Secret, backupURL, mediaURL string) error {
	a := d.a
	for _, s := range []schedule{
		// A missed hourly run is not worth starting late: the next one comes within the hour.
		{Hourly, a.Schedule.Hourly, 600, a.Job.HourlyDeadlineSeconds},
		// Weekly and monthly runs still start up to 6 hours late (e.g. after a control plane upgrade).
		{Weekly, a.Schedule.Weekly, 21600, 14400},
		{Monthly, a.Schedule.Monthly, 21600, 14400},
	} {
		if err := d.backupJob(s, ids.backupKSA, keySecret, backupURL, mediaURL); err != nil {
			return err
		}
	}
	return d.pruneJob(ids.pruneKSA, backupURL)
}

func (d *declarer) backupJob(s schedule, ksa pulumi.StringOutput, keySecret *corev1.Secret, backupURL, mediaURL string) error {
	a := d.a
	w := a.Runtime
	c := w.Container("backup", a.Image, []string{"backup", "--tier", s.tier, "--to", backupURL},
		[]string{omsruntime.EnvDatabaseURL}, a.Job.Resources)
	env, okEnv := c.Env.(corev1.EnvVarArray)
	mounts, okMounts := c.VolumeMounts.(corev1.VolumeMountArray)
	if !okEnv || !okMounts {
		return fmt.Errorf("backup %s: omsruntime.Wiring.Container returned env %T and mounts %T, not arrays to extend", s.tier, c.Env, c.VolumeMounts)
	}
	c.Env = append(env,
		kube.Env(EnvKeyFile, KeyFile),
		kube.Env(EnvMediaURL, mediaURL),
		kube.Env(EnvRelease, a.Image),
	)
	c.VolumeMounts = append(mounts, corev1.VolumeMountArgs{
		Name: pulumi.String("backup-key"), MountPath: pulumi.String(path.Dir(KeyFile)), ReadOnly: pulumi.Bool(true),
	})
	pod, volumes, err := d.pod(w.PodSpec("Never", c), ksa)
	if err != nil {
		return err
	}
	pod.Volumes = append(volumes, corev1.VolumeArgs{
		Name: pulumi.String("backup-key"),
		Secret: corev1.SecretVolumeSourceArgs{
			SecretName:  keySecret.Metadata.Name().Elem(),
			DefaultMode: pulumi.Int(0o400),
			Items: corev1.KeyToPathArray{corev1.KeyToPathArgs{
				Key: pulumi.String(KeySecretKey), Path: pulumi.String(path.Base(KeyFile)),
			}},
		},
	})
	_, labels := kube.Labels("oms", a.Name, "backup", a.Labels)
	labels["omscloud.io/backup-tier"] = s.tier
	// Only the backup pods talk to the data tier; prune touches the bucket alone.
	maps.Copy(labels, DataClientLabel)
	return d.cronJob("backup-"+s.tier, s, labels, pod)
}

func (d *declarer) pruneJob(ksa pulumi.StringOutput, backupURL string) error {
	a := d.a
	c := a.Runtime.Container("prune", a.Image, []string{"backup", "prune", "--to", backupURL}, nil, a.Job.PruneResources)
	pod, _, err := d.pod(a.Runtime.PodSpec("Never", c), ksa)
	if err != nil {
		return err
	}
	_, labels := kube.Labels("oms", a.Name, "backup-prune", a.Labels)
	return d.cronJob("backup-prune", schedule{tier: "prune", cron: a.Schedule.Prune, startingDeadline: 3600, activeDeadline: 1800}, labels, pod)
}

// pod runs under the job's own service account, with the runtime's /tmp resized for staging dumps. It returns the
// pod's volumes for the caller to extend.
func (d *declarer) pod(pod corev1.PodSpecArgs, ksa pulumi.StringOutput) (corev1.PodSpecArgs, corev1.VolumeArray, error) {
	pod.ServiceAccountName = ksa
	runtimeVolumes, ok := pod.Volumes.(corev1.VolumeArray)
	if !ok {
		return pod, nil, fmt.Errorf("omsruntime.Wiring.PodSpec returned volumes %T, not an array to extend", pod.Volumes)
	}
	volumes := corev1.VolumeArray{}
	for _, v := range runtimeVolumes {
		if va, ok := v.(corev1.VolumeArgs); ok && va.Name == pulumi.String("tmp") {
			v = kube.EmptyDir("tmp", d.a.Job.ScratchSize, false)
		}
		volumes = append(volumes, v)
	}
	pod.Volumes = volumes
	return pod, volumes, nil
}

func (d *declarer) cronJob(suffix string, s schedule, labels map[string]string, pod corev1.PodSpecArgs) error {
	a := d.a
	objectName := a.Name + "-" + suffix
	_, err := batchv1.NewCronJob(d.ctx, d.name+"-"+suffix, &batchv1.CronJobArgs{
		Metadata: kube.Meta(objectName, a.Runtime.Namespace, labels),
		Spec: batchv1.CronJobSpecArgs{
			Schedule: pulumi.String(s.cron),
			TimeZone: pulumi.String(TimeZone),
			// Two runs of one tier never overlap: the second would race the first's upload and double the load.
			ConcurrencyPolicy:          pulumi.String("Forbid"),
			StartingDeadlineSeconds:    pulumi.Int(s.startingDeadline),
			SuccessfulJobsHistoryLimit: pulumi.Int(3),
			FailedJobsHistoryLimit:     pulumi.Int(5),
			JobTemplate: batchv1.JobTemplateSpecArgs{
				Metadata: metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(labels)},
				Spec: batchv1.JobSpecArgs{
					BackoffLimit:          pulumi.Int(a.Job.BackoffLimit),
					ActiveDeadlineSeconds: pulumi.Int(s.activeDeadline),
					Template: corev1.PodTemplateSpecArgs{
						Metadata: kube.TemplateMeta(labels, nil),
						Spec:     pod,
					},
				},
			},
		},
	}, d.opts()...)
	if err != nil {
		return fmt.Errorf("%s cron job: %w", suffix, err)
	}
	return nil
}
