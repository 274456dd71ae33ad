package omsruntime

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/omscloud/omscloud/components/internal/kube"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/sql"
	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// controlDB is the runtime's control database: its URL (secret) and what must exist before migrate runs.
type controlDB struct {
	url   pulumi.StringOutput
	ready []pulumi.Resource
}

// controlDatabase creates the control database and its login on the Cloud SQL instance, and the same login on every
// other cell (cellLogins). Cloud SQL makes the login a member of cloudsqlsuperuser, so it may create the accounts'
// roles and databases, as `oms account create` does.
func (d *deployer) controlDatabase() (*controlDB, error) {
	a := d.a
	// Customer data: never dropped by Pulumi in production, and abandoned rather than dropped if unprotected. The
	// password is no data: a rotation replaces it (its keepers change), and the user takes the new one in place.
	protect := pulumi.Protect(a.Production && !a.Teardown)
	pwArgs := &random.RandomPasswordArgs{
		Length: pulumi.Int(32),
		// Letters and digits: nothing to escape in a URL.
		Special: pulumi.Bool(false),
	}
	if a.Database.PasswordRotation > 0 {
		pwArgs.Keepers = pulumi.StringMap{"rotation": pulumi.String(strconv.Itoa(a.Database.PasswordRotation))}
	}
	pw, err := random.NewRandomPassword(d.ctx, d.name+"-db-password", pwArgs, d.opts()...)
	if err != nil {
		return nil, fmt.Errorf("database password: %w", err)
	}
	password := pulumi.ToSecret(pw.Result).(pulumi.StringOutput)
	user, err := sql.NewUser(d.ctx, d.name+"-db-user", &sql.UserArgs{
		Project:        pulumi.String(a.Project),
		Instance:       a.Database.Instance,
		Name:           pulumi.String(a.Database.Name),
		Type:           pulumi.String("BUILT_IN"),
		Password:       password,
		DeletionPolicy: pulumi.String("ABANDON"),
	}, d.opts(protect)...)
	if err != nil {
		return nil, fmt.Errorf("database user: %w", err)
	}
	cellUsers, err := d.cellLogins(password, protect)
	if err != nil {
		return nil, err
	}
	db, err := sql.NewDatabase(d.ctx, d.name+"-db", &sql.DatabaseArgs{
		Project:        pulumi.String(a.Project),
		Instance:       a.Database.Instance,
		Name:           pulumi.String(a.Database.Name),
		Charset:        pulumi.String("UTF8"),
		Collation:      pulumi.String("en_US.UTF8"),
		DeletionPolicy: pulumi.String("ABANDON"),
	}, d.opts(protect, pulumi.DependsOn([]pulumi.Resource{user}))...)
	if err != nil {
		return nil, fmt.Errorf("control database: %w", err)
	}
	// The private IP of a REGIONAL instance moves with failover, so one host suffices; read-write makes a client
	// that lands on a read-only node during failover retry. Cloud SQL enforces TLS (ENCRYPTED_ONLY); verify-ca
	// checks the server against OMS_DB_CA_FILE (why not verify-full: runtime/postgres.VerifyServerCA).
	// Cloud SQL holds one password per user: the URL (and with it the pods' roll) follows the update of the user on
	// every cell, so the new pods start with a password every server already accepts.
	inputs := []any{user.Name, password, a.Database.Host}
	ready := []pulumi.Resource{user, db}
	for _, u := range cellUsers {
		inputs = append(inputs, u.Name)
		ready = append(ready, u)
	}
	url := pulumi.All(inputs...).ApplyT(func(v []any) string {
		return fmt.Sprintf("postgres://%s:%s@%s:5432/%s?sslmode=verify-ca&target_session_attrs=read-write",
			v[0].(string), v[1].(string), v[2].(string), a.Database.Name)
	}).(pulumi.StringOutput)
	return &controlDB{url: pulumi.ToSecret(url).(pulumi.StringOutput), ready: ready}, nil
}

// accountPasswords keeps the provisioned account databases' passwords in a Secret of their own, mounted only into
// the migrate Job, which adopts the databases.
func (d *deployer) accountPasswords(labels map[string]string) error {
	if len(d.a.Database.Accounts) == 0 {
		return nil
	}
	data := pulumi.StringMap{}
	for id, pw := range d.a.Database.Accounts {
		data[id] = pulumi.ToSecret(pw).(pulumi.StringOutput)
	}
	s, err := corev1.NewSecret(d.ctx, d.name+"-account-passwords", &corev1.SecretArgs{
		Metadata:   d.meta(d.a.Name+"-account-passwords", labels),
		Type:       pulumi.String("Opaque"),
		StringData: data,
	}, d.opts()...)
	if err != nil {
		return fmt.Errorf("account passwords secret: %w", err)
	}
	d.accountSecret = s.Metadata.Name().Elem()
	return nil
}

func (d *deployer) migrateJob(image string, ready []pulumi.Resource) (*batchv1.Job, error) {
	a := d.a
	hash := ImageHash(image)
	_, labels := d.labels("migrate", "", image)
	args := []string{"migrate"}
	ids := slices.Sorted(maps.Keys(a.Database.Accounts))
	if len(ids) > 0 {
		args = append(args, "--accounts", strings.Join(ids, ","), "--account-passwords-dir", AccountPasswordsDir)
	}
	c := d.w.Container("migrate", image, args, []string{EnvDatabaseURL}, a.Worker.Resources)
	if placement := a.Database.accountCells(); placement != "" {
		c.Env = append(c.Env.(corev1.EnvVarArray), kube.Env(EnvAccountCells, placement))
	}
	if len(ids) > 0 {
		c.VolumeMounts = append(c.VolumeMounts.(corev1.VolumeMountArray), corev1.VolumeMountArgs{
			Name: pulumi.String("account-passwords"), MountPath: pulumi.String(AccountPasswordsDir), ReadOnly: pulumi.Bool(true),
		})
	}
	spec := d.w.PodSpec("Never", c)
	if len(ids) > 0 {
		spec.Volumes = append(spec.Volumes.(corev1.VolumeArray), corev1.VolumeArgs{
			Name:   pulumi.String("account-passwords"),
			Secret: corev1.SecretVolumeSourceArgs{SecretName: d.accountSecret, DefaultMode: pulumi.Int(0o400)},
		})
	}
	job, err := batchv1.NewJob(d.ctx, d.name+"-migrate-"+hash, &batchv1.JobArgs{
		Metadata: d.meta(a.Name+"-migrate-"+hash, labels),
		Spec: batchv1.JobSpecArgs{
			// Migrations are idempotent (versioned, each in a transaction): retrying is safe.
			BackoffLimit:          pulumi.Int(2),
			ActiveDeadlineSeconds: pulumi.Int(1800),
			Template: corev1.PodTemplateSpecArgs{
				Metadata: kube.TemplateMeta(labels, nil),
				Spec:     spec,
			},
		},
	}, d.opts(pulumi.DependsOn(ready))...)
	if err != nil {
		return nil, fmt.Errorf("migrate job: %w", err)
	}
	return job, nil
}

// releases are the migrate Jobs by image: one per distinct release in use.
type releases struct {
	a    *Args
	jobs map[string]*batchv1.Job
}

// of is the migrate Job of a color's release.
func (m releases) of(color string) *batchv1.Job { return m.jobs[m.a.imageOf(color)] }

// all are the migrate Jobs in image order.
func (m releases) all() []pulumi.Resource {
	out := make([]pulumi.Resource, 0, len(m.jobs))
	for _, img := range slices.Sorted(maps.Keys(m.jobs)) {
		out = append(out, m.jobs[img])
	}
	return out
}

// migrations declares one migrate Job per distinct release: a release migrates once, and switching colors never
// re-runs it.
func (d *deployer) migrations(ready []pulumi.Resource) (releases, error) {
	m := releases{a: d.a, jobs: map[string]*batchv1.Job{}}
	for _, color := range []string{Blue, Green} {
		img := d.a.imageOf(color)
		if m.jobs[img] != nil {
			continue
		}
		job, err := d.migrateJob(img, ready)
		if err != nil {
			return m, err
		}
		m.jobs[img] = job
	}
	return m, nil
}
