package restore_test

import (
	"strings"
	"testing"

	"github.com/omscloud/omscloud/components/internal/kube/kubetest"
	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/components/restore"
	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	jobType    = "kubernetes:batch/v1:Job"
	secretType = "kubernetes:core/v1:Secret"
	grantType  = "gcp:storage/bucketIAMMember:BucketIAMMember"
	image      = "europe-docker.pkg.dev/omscloud/oms/oms@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	backupURL  = "gs://omscloud-prod-eu-oms-prod-eu-backups"
)

type environment struct{ pulumi.ResourceState }

// args are the DR spin-up's, less what New needs from the environment (filled in by evaluate).
func args() restore.Args {
	return restore.Args{
		Name: "oms-prod-eu-dr", Project: "omscloud-prod-eu", BackupURL: backupURL,
		KeySecretID: "projects/omscloud-prod-eu/secrets/oms-prod-eu-backup-key", Image: image,
	}
}

// evaluate declares the component beside a stand-in DR environment, with the providers the DR spin-up passes.
func evaluate(t *testing.T, a restore.Args) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Evaluate(func(ctx *pulumi.Context) error {
		env := &environment{}
		if err := ctx.RegisterComponentResource("omscloud:environment:Environment", "oms-prod-eu-dr", env); err != nil {
			return err
		}
		gcpProvider, err := gcp.NewProvider(ctx, "gcp-europe-west4", &gcp.ProviderArgs{})
		if err != nil {
			return err
		}
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{})
		if err != nil {
			return err
		}
		// What the environment holds: waiting for it is waiting for its children.
		if _, err := corev1.NewNamespace(ctx, "oms-prod-eu-dr-ns", &corev1.NamespaceArgs{}, pulumi.Parent(env), pulumi.Provider(k8s)); err != nil {
			return err
		}
		a.Environment = env
		a.Runtime = kubetest.RuntimeWiring("oms-prod-eu-dr")
		a.Identity = restore.Identity{KSA: "oms-prod-eu-dr-backup", Email: pulumi.String("oms-prod-eu-dr-backup@omscloud-prod-eu.iam.gserviceaccount.com")}
		a.MediaURL = pulumi.String("gs://omscloud-prod-eu-oms-prod-eu-dr-media")
		_, err = restore.New(ctx, "oms-prod-eu-dr-restore", &a, pulumi.Providers(gcpProvider, k8s))
		return err
	}, "omscloud", "prod-eu-dr", nil, nil)
	require.NoError(t, err)
	return inv
}

func TestEachRunIsOneJobWithWhatItNeeds(t *testing.T) {
	tests := []struct {
		name              string
		restore, failback int
		force             bool
		jobs              map[string][]string
		roles             []string
		key               bool
	}{
		{name: "no run: the identity may read the archives, nothing runs", roles: []string{"roles/storage.objectViewer"},
			jobs: map[string][]string{}},
		{name: "first restore", restore: 1, key: true, roles: []string{"roles/storage.objectViewer"},
			jobs: map[string][]string{"oms-prod-eu-dr-restore-1": {"restore", "--from", backupURL, "--latest"}}},
		{name: "forced second restore", restore: 2, force: true, key: true, roles: []string{"roles/storage.objectViewer"},
			jobs: map[string][]string{"oms-prod-eu-dr-restore-2": {"restore", "--from", backupURL, "--latest", "--force"}}},
		{name: "failback after a restore", restore: 1, failback: 1, key: true,
			roles: []string{"roles/storage.objectViewer", "roles/storage.objectCreator"},
			jobs: map[string][]string{
				"oms-prod-eu-dr-restore-1":  {"restore", "--from", backupURL, "--latest"},
				"oms-prod-eu-dr-failback-1": {"backup", "--tier", "monthly", "--to", backupURL}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := args()
			a.Restore, a.ForceRestore, a.Failback = tc.restore, tc.force, tc.failback
			inv := evaluate(t, a)
			jobs := map[string][]string{}
			for _, j := range inv.OfType(jobType) {
				jobs[j.Name] = j.Strings("spec.template.spec.containers[0].args")
			}
			assert.Equal(t, tc.jobs, jobs)
			var roles []string
			for _, g := range inv.OfType(grantType) {
				roles = append(roles, g.String("role"))
				assert.Equal(t, strings.TrimPrefix(backupURL, "gs://"), g.String("bucket"), "the primary's bucket, nothing else")
				assert.Equal(t, "serviceAccount:oms-prod-eu-dr-backup@omscloud-prod-eu.iam.gserviceaccount.com", g.String("member"))
			}
			assert.ElementsMatch(t, tc.roles, roles)
			_, key := inv.Find(secretType, "oms-prod-eu-dr-primary-key")
			assert.Equal(t, tc.key, key, "the primary's archive key reaches the cluster only for a run")
		})
	}
}

func TestJobsRunAsTheBackupIdentityWithThePrimarysKey(t *testing.T) {
	a := args()
	a.Restore, a.Failback = 1, 1
	inv := evaluate(t, a)
	key, ok := inv.Find(secretType, "oms-prod-eu-dr-primary-key")
	require.True(t, ok)
	assert.Equal(t, inventory.Secret, key.String("stringData"), "the key is a secret")
	for _, name := range []string{"oms-prod-eu-dr-restore-1", "oms-prod-eu-dr-failback-1"} {
		job, ok := inv.Find(jobType, name)
		require.True(t, ok, name)
		kubetest.AssertRestricted(t, job)
		assert.Equal(t, "oms-prod-eu-dr-backup", job.String("spec.template.spec.serviceAccountName"), name)
		assert.Equal(t, "oms-prod-eu-dr-db-ca", job.String("spec.template.spec.volumes[1].configMap.name"), "%s verifies the DR instance", name)
		assert.Equal(t, "oms-prod-eu-dr-primary-key", job.String("spec.template.spec.volumes[2].secret.secretName"), name)
		env, _ := job.Get("spec.template.spec.containers[0].env")
		assert.Contains(t, env, map[string]any{"name": "OMS_BACKUP_KEY_FILE", "value": "/var/run/oms-backup/key"}, name)
		_, ttl := job.Get("spec.ttlSecondsAfterFinished")
		assert.False(t, ttl, "%s: a finished Job stays, so no refresh finds it gone and no up creates it again", name)
		assert.True(t, job.Waits(inv, "kubernetes:core/v1:Namespace", "oms-prod-eu-dr-ns"), "%s waits for the whole DR environment", name)
		assert.True(t, job.Waits(inv, secretType, "oms-prod-eu-dr-primary-key"), name)
	}
	failback, _ := inv.Find(jobType, "oms-prod-eu-dr-failback-1")
	env, _ := failback.Get("spec.template.spec.containers[0].env")
	assert.Contains(t, env, map[string]any{"name": "OMS_MEDIA_URL", "value": "gs://omscloud-prod-eu-oms-prod-eu-dr-media"})
	assert.Contains(t, env, map[string]any{"name": "OMS_RELEASE", "value": image})
}

// TestChildrenAreAliasedToWhereTheyWereDeclaredBefore: the grants were the DR environment's children and the key and
// the Jobs sat at the stack's root before this component existed; each child names its former place.
func TestChildrenAreAliasedToWhereTheyWereDeclaredBefore(t *testing.T) {
	a := args()
	a.Restore, a.Failback = 1, 1
	inv := evaluate(t, a)
	const stack = "urn:pulumi:prod-eu-dr::omscloud::"
	moved := 0
	for _, r := range inv.Resources {
		if r.Parent != "oms-prod-eu-dr-restore" {
			continue
		}
		moved++
		former := stack + r.Type + "::" + r.Name
		if r.Type == grantType {
			former = stack + "omscloud:environment:Environment$" + r.Type + "::" + r.Name
		}
		assert.Equal(t, stack+"omscloud:restore:Restore$"+r.Type+"::"+r.Name, r.URN)
		assert.Equal(t, []string{former}, r.Aliases, "%s %s", r.Type, r.Name)
	}
	assert.Equal(t, 5, moved, "two grants, the key and two Jobs")
}

func TestValidate(t *testing.T) {
	valid := func() restore.Args {
		a := args()
		a.Environment = &environment{}
		a.Identity = restore.Identity{KSA: "oms-prod-eu-dr-backup", Email: pulumi.String("e")}
		a.Runtime = omsruntime.Wiring{Namespace: "oms", ConfigMap: pulumi.String("cm").ToStringOutput(), Secret: pulumi.String("s").ToStringOutput()}
		a.MediaURL = pulumi.String("gs://media")
		a.Restore, a.Failback = 1, 1
		return a
	}
	a := valid()
	require.NoError(t, a.Validate())
	tests := []struct {
		name   string
		change func(*restore.Args)
		want   string
	}{
		{"no name", func(a *restore.Args) { a.Name = "" }, "Name is required"},
		{"no project", func(a *restore.Args) { a.Project = "" }, "Project is required"},
		{"bucket without scheme", func(a *restore.Args) { a.BackupURL = "omscloud-backups" }, "gs://<bucket>"},
		{"no key", func(a *restore.Args) { a.KeySecretID = "" }, "KeySecretID is required"},
		{"no identity", func(a *restore.Args) { a.Identity = restore.Identity{} }, "Identity is required"},
		{"no environment", func(a *restore.Args) { a.Environment = nil }, "Environment is required"},
		{"negative run", func(a *restore.Args) { a.Restore = -1 }, "run numbers are 0 (none) or more"},
		{"run without wiring", func(a *restore.Args) { a.Runtime = omsruntime.Wiring{} }, "Runtime is required for a run"},
		{"run without image", func(a *restore.Args) { a.Image = "" }, "Image is required for a run"},
		{"failback without media", func(a *restore.Args) { a.MediaURL = nil }, "MediaURL is required for a failback"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := valid()
			tc.change(&a)
			err := a.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "restore: "), err.Error())
		})
	}
	_, err := restore.New(nil, "x", nil)
	assert.ErrorContains(t, err, "Args are required")
}
