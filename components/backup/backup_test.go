package backup_test

import (
	"encoding/json"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/omscloud/omscloud/components/backup"
	"github.com/omscloud/omscloud/components/internal/kube/kubetest"
	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/inventory"
	"github.com/omscloud/omscloud/policy"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	bucketType     = "gcp:storage/bucket:Bucket"
	bucketIAMType  = "gcp:storage/bucketIAMMember:BucketIAMMember"
	keyRingType    = "gcp:kms/keyRing:KeyRing"
	keyType        = "gcp:kms/cryptoKey:CryptoKey"
	keyIAMType     = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
	secretType     = "gcp:secretmanager/secret:Secret"
	versionType    = "gcp:secretmanager/secretVersion:SecretVersion"
	secretIAMType  = "gcp:secretmanager/secretIamMember:SecretIamMember"
	gsaType        = "gcp:serviceaccount/account:Account"
	cronJobType    = "kubernetes:batch/v1:CronJob"
	image          = "europe-docker.pkg.dev/omscloud/oms/oms@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	storageAgent   = "service-123456789012@gs-project-accounts.iam.gserviceaccount.com"
	gcsAgent       = "serviceAccount:" + storageAgent
	backupGSA      = "serviceAccount:oms-prod-eu-backup@omscloud-prod-eu.iam.gserviceaccount.com"
	pruneGSA       = "serviceAccount:oms-prod-eu-prune@omscloud-prod-eu.iam.gserviceaccount.com"
	backupBucketEU = "omscloud-prod-eu-oms-prod-eu-backups"
	mediaBucketEU  = "omscloud-prod-eu-oms-prod-eu-media"
)

// site is one region's placement, as the stack would pass it from the region catalog.
type site struct {
	name, region, dr string
	bucket           backup.BucketArgs
	media            backup.MediaArgs
	keepInRegion     bool
	crossBorder      bool
}

var sites = []site{
	{name: "eu", region: "europe-west1", dr: "europe-west4",
		bucket: backup.BucketArgs{Location: "europe-west4"},
		media:  backup.MediaDualRegion("europe-west1", "europe-west4")},
	{name: "us", region: "us-central1", dr: "us-east4",
		bucket: backup.BucketArgs{Location: "us-east4"},
		media:  backup.MediaDualRegion("us-central1", "us-east4")},
	{name: "us-multi-region", region: "us-central1", dr: "us-east4",
		bucket: backup.BucketArgs{Location: "us"},
		media:  backup.MediaArgs{Location: "us"}},
	{name: "au", region: "australia-southeast1", dr: "australia-southeast2",
		bucket: backup.BucketArgs{Location: "australia-southeast2"},
		media:  backup.MediaDualRegion("australia-southeast1", "australia-southeast2")},
	{name: "sg", region: "asia-southeast1", keepInRegion: true,
		bucket: backup.BucketArgs{Location: "asia-southeast1"},
		media:  backup.MediaArgs{Location: "asia-southeast1"}},
	{name: "sg-dr-acknowledged", region: "asia-southeast1", dr: "asia-southeast2", crossBorder: true,
		bucket: backup.BucketArgs{Location: "asia-southeast2"},
		media:  backup.MediaArgs{Location: "ASIA", DataLocations: []string{"asia-southeast1", "asia-southeast2"}}},
}

func baseArgs() backup.Args {
	return backup.Args{
		Name: "oms-prod-eu", Project: "omscloud-prod-eu", StorageAgent: pulumi.String(storageAgent),
		Region: "europe-west1", DRRegion: "europe-west4", DeletionProtection: true,
		Labels: map[string]string{"environment": "production"},
		Bucket: backup.BucketArgs{Location: "europe-west4"},
		Media:  backup.MediaArgs{Location: "EU", DataLocations: []string{"europe-west1", "europe-west4"}},
		Image:  image,
	}
}

func (s site) args() backup.Args {
	a := baseArgs()
	a.Region, a.DRRegion, a.KeepInRegion, a.AllowCrossBorder = s.region, s.dr, s.keepInRegion, s.crossBorder
	a.Bucket, a.Media = s.bucket, s.media
	return a
}

type outputs struct {
	bucket, url, media, keySecret, email string
}

// evaluate declares the component under mocks with an explicit Kubernetes provider and the runtime's wiring, as the
// environment does.
func evaluate(t *testing.T, args backup.Args, secrets map[string]string) (*inventory.Inventory, outputs) {
	t.Helper()
	var out outputs
	inv, err := inventory.Evaluate(func(ctx *pulumi.Context) error {
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{})
		if err != nil {
			return err
		}
		args.Runtime = kubetest.RuntimeWiring("oms-prod-eu")
		args.AccountSecrets = map[string]pulumi.StringInput{}
		for id, s := range secrets {
			args.AccountSecrets[id] = pulumi.String(s)
		}
		b, err := backup.New(ctx, "backup", &args, pulumi.Provider(k8s))
		if err != nil {
			return err
		}
		capture := func(key string, o pulumi.StringOutput, dst *string) {
			ctx.Export(key, o.ApplyT(func(s string) string { *dst = s; return s }))
		}
		capture("bucket", b.BackupBucket, &out.bucket)
		capture("url", b.BackupURL, &out.url)
		capture("media", b.MediaBucket, &out.media)
		capture("keySecret", b.KeySecretID, &out.keySecret)
		capture("email", b.ServiceAccountEmail, &out.email)
		return nil
	}, "omscloud", "test", nil, nil)
	require.NoError(t, err)
	return inv, out
}

func find(t *testing.T, inv *inventory.Inventory, typ, name string) inventory.Resource {
	t.Helper()
	r, ok := inv.Find(typ, name)
	require.True(t, ok, "%s %s is declared", typ, name)
	return r
}

func TestPlacementPerRegion(t *testing.T) {
	for _, s := range sites {
		t.Run(s.name, func(t *testing.T) {
			inv, _ := evaluate(t, s.args(), nil)
			backups := find(t, inv, bucketType, "backup-backups")
			media := find(t, inv, bucketType, "backup-media")

			assert.Equal(t, s.bucket.Location, backups.String("location"))
			if !s.keepInRegion {
				assert.NotEqual(t, s.region, strings.ToLower(backups.String("location")), "backups survive the primary region")
			}
			assert.Equal(t, s.media.Location, media.String("location"))
			assert.Equal(t, s.media.DataLocations, nilIfEmpty(media.Strings("customPlacementConfig.dataLocations")))

			// Each key lives where its bucket is: Cloud Storage refuses a key from another location.
			assert.Equal(t, backup.KeyLocation(s.bucket.Location), find(t, inv, keyRingType, "backup-backup-keyring").String("location"))
			assert.Equal(t, backup.KeyLocation(s.media.Location), find(t, inv, keyRingType, "backup-media-keyring").String("location"))

			// The archive key survives the primary region's loss wherever a DR site exists.
			want := []string{s.region}
			if s.dr != "" {
				want = append(want, s.dr)
			}
			var got []string
			for _, r := range kubetest.List(t, find(t, inv, secretType, "backup-key-secret"), "replication.userManaged.replicas") {
				got = append(got, r["location"].(string))
			}
			assert.Equal(t, want, got)

			// The stack's own policies hold: residency, a cold DR region, names, secrets.
			allowed := []string{s.bucket.Location, s.media.Location, backup.KeyLocation(s.bucket.Location), backup.KeyLocation(s.media.Location)}
			rep := policy.Evaluate(policy.Context{
				Environment: policy.Production, Edge: "gcp", PrimaryRegion: s.region, DRRegion: s.dr, AllowedLocations: allowed,
			}, inv)
			assert.Empty(t, rep.Errors(), "policy findings")
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestResidencyPolicyCatchesAKeyOutsideTheJurisdiction(t *testing.T) {
	a := baseArgs()
	a.Media.KeyLocation = "us"
	inv, _ := evaluate(t, a, nil)
	rep := policy.Evaluate(policy.Context{
		Environment: policy.Production, Edge: "gcp", PrimaryRegion: "europe-west1", DRRegion: "europe-west4",
		AllowedLocations: []string{"eu", "europe"},
	}, inv)
	var found bool
	for _, f := range rep.Errors() {
		found = found || f.Policy == "residency" && f.Resource == "backup-media-keyring" && strings.Contains(f.Message, "location is us")
	}
	assert.True(t, found, "residency flags the media key ring in us: %v", rep.Errors())
}

func TestLifecycleRulesPerTier(t *testing.T) {
	inv, _ := evaluate(t, baseArgs(), nil)
	rules := kubetest.List(t, find(t, inv, bucketType, "backup-backups"), "lifecycleRules")
	ages := map[string]float64{}
	var noncurrent, multipart bool
	for _, r := range rules {
		action := r["action"].(map[string]any)["type"]
		cond := r["condition"].(map[string]any)
		prefixes, _ := cond["matchesPrefixes"].([]any)
		switch {
		case action == "Delete" && len(prefixes) == 1:
			ages[prefixes[0].(string)] = cond["age"].(float64)
		case action == "Delete" && cond["daysSinceNoncurrentTime"] != nil:
			noncurrent = cond["withState"] == "ARCHIVED" && cond["daysSinceNoncurrentTime"].(float64) == 7
		case action == "AbortIncompleteMultipartUpload":
			multipart = true
		default:
			t.Errorf("unexpected lifecycle rule %v", r)
		}
		if action == "Delete" {
			assert.True(t, len(prefixes) == 1 || cond["daysSinceNoncurrentTime"] != nil,
				"a delete rule without a tier prefix would delete live archives of every tier: %v", r)
		}
	}
	assert.Equal(t, map[string]float64{"hourly/": 7, "weekly/": 28, "monthly/": 365}, ages)
	assert.True(t, noncurrent, "noncurrent versions are cleaned up after the undo window")
	assert.True(t, multipart, "interrupted uploads are aborted")

	// Media is never expired by age.
	for _, r := range kubetest.List(t, find(t, inv, bucketType, "backup-media"), "lifecycleRules") {
		cond := r["condition"].(map[string]any)
		if r["action"].(map[string]any)["type"] == "Delete" {
			assert.NotNil(t, cond["daysSinceNoncurrentTime"], "media loses only superseded versions: %v", r)
		}
	}
}

func TestBucketsArePrivateEncryptedAndRecoverable(t *testing.T) {
	inv, _ := evaluate(t, baseArgs(), nil)
	for _, b := range []struct{ logical, name, key string }{
		{"backup-backups", backupBucketEU, "backup-backup-key-id"},
		{"backup-media", mediaBucketEU, "backup-media-key-id"},
	} {
		r := find(t, inv, bucketType, b.logical)
		assert.Equal(t, b.name, r.String("name"))
		assert.True(t, r.Bool("uniformBucketLevelAccess"), "%s uniform bucket-level access", b.logical)
		assert.Equal(t, "enforced", r.String("publicAccessPrevention"), "%s public access prevention", b.logical)
		assert.True(t, r.Bool("versioning.enabled"), "%s versioning", b.logical)
		days, _ := r.Number("softDeletePolicy.retentionDurationSeconds")
		assert.Equal(t, float64(7*86400), days, "%s soft delete", b.logical)
		assert.Equal(t, b.key, r.String("encryption.defaultKmsKeyName"), "%s CMEK", b.logical)
		v, set := r.Get("forceDestroy")
		assert.True(t, set && v == false, "%s keeps its objects when deleted", b.logical)
		_, locked := r.Get("retentionPolicy")
		assert.False(t, locked, "%s has no retention policy: it would conflict with versioning and block prune", b.logical)
	}
	for _, k := range inv.OfType(keyType) {
		assert.Equal(t, "7776000s", k.String("rotationPeriod"), "%s rotates every 90 days", k.Name)
	}
	// The Cloud Storage service agent, and only it, uses each key.
	grants := inv.OfType(keyIAMType)
	require.Len(t, grants, 2)
	var keys []string
	for _, g := range grants {
		assert.Equal(t, gcsAgent, g.String("member"))
		assert.Equal(t, "roles/cloudkms.cryptoKeyEncrypterDecrypter", g.String("role"))
		keys = append(keys, g.String("cryptoKeyId"))
	}
	assert.ElementsMatch(t, []string{"backup-backup-key-id", "backup-media-key-id"}, keys)
}

// jobPod is a CronJob's job template as a workload, so the shared pod assertions apply.
func jobPod(cj inventory.Resource) inventory.Resource {
	spec, _ := cj.Get("spec.jobTemplate.spec")
	return inventory.Resource{Type: cj.Type, Name: cj.Name, Inputs: map[string]any{"spec": spec}}
}

func TestCronJobs(t *testing.T) {
	inv, _ := evaluate(t, baseArgs(), map[string]string{"acme": "projects/p/secrets/oms-prod-eu-db-acme"})
	url := "gs://" + backupBucketEU
	want := map[string]struct {
		schedule string
		args     []string
		ksa      string
	}{
		"backup-backup-hourly":  {"7 * * * *", []string{"backup", "--tier", "hourly", "--to", url}, "oms-prod-eu-backup"},
		"backup-backup-weekly":  {"17 0 * * 0", []string{"backup", "--tier", "weekly", "--to", url}, "oms-prod-eu-backup"},
		"backup-backup-monthly": {"37 0 1 * *", []string{"backup", "--tier", "monthly", "--to", url}, "oms-prod-eu-backup"},
		"backup-backup-prune":   {"47 1 * * *", []string{"backup", "prune", "--to", url}, "oms-prod-eu-backup-prune"},
	}
	jobs := inv.OfType(cronJobType)
	require.Len(t, jobs, len(want))
	for _, cj := range jobs {
		w, ok := want[cj.Name]
		require.True(t, ok, "unexpected CronJob %s", cj.Name)
		t.Run(cj.Name, func(t *testing.T) {
			assert.Equal(t, w.schedule, cj.String("spec.schedule"))
			assert.Equal(t, "Etc/UTC", cj.String("spec.timeZone"))
			assert.Equal(t, "Forbid", cj.String("spec.concurrencyPolicy"))
			for _, f := range []string{"spec.startingDeadlineSeconds", "spec.successfulJobsHistoryLimit", "spec.failedJobsHistoryLimit", "spec.jobTemplate.spec.backoffLimit"} {
				_, set := cj.Number(f)
				assert.True(t, set, "%s is set", f)
			}
			deadline, _ := cj.Number("spec.jobTemplate.spec.activeDeadlineSeconds")
			assert.Positive(t, deadline)
			if cj.Name == "backup-backup-hourly" {
				assert.Less(t, deadline, 3600.0, "an hourly run ends before the next one is due")
			}

			pod := jobPod(cj)
			kubetest.AssertRestricted(t, pod)
			assert.Equal(t, "Never", pod.String("spec.template.spec.restartPolicy"))
			assert.Equal(t, w.ksa, pod.String("spec.template.spec.serviceAccountName"))
			assert.Equal(t, "web", pod.String(`spec.template.spec.nodeSelector.omscloud\.io/pool`))
			var scratch any
			for _, v := range kubetest.List(t, pod, "spec.template.spec.volumes") {
				if v["name"] == "tmp" {
					scratch = v["emptyDir"].(map[string]any)["sizeLimit"]
				}
			}
			assert.Equal(t, "4Gi", scratch, "dumps are staged in a sized /tmp")
			c := kubetest.Containers(t, pod)[0]
			assert.Equal(t, image, c["image"])
			assert.Equal(t, toAny(w.args), c["args"])

			labels := kubetest.Map(t, pod, "spec.template.metadata.labels")
			env := envOf(c)
			if cj.Name == "backup-backup-prune" {
				assert.Nil(t, labels["omscloud.io/data-client"], "prune never reaches the data tier")
				assert.NotContains(t, env, omsruntime.EnvDatabaseURL, "prune has no database credentials")
				assert.NotContains(t, env, backup.EnvKeyFile, "prune never reads the archive key")
				return
			}
			assert.Equal(t, "true", labels["omscloud.io/data-client"], "the data tier's NetworkPolicies admit backups")
			assert.Equal(t, "oms-prod-eu-runtime", env[omsruntime.EnvDatabaseURL]["valueFrom"].(map[string]any)["secretKeyRef"].(map[string]any)["name"])
			assert.Equal(t, backup.KeyFile, env[backup.EnvKeyFile]["value"])
			assert.Equal(t, "gs://"+mediaBucketEU, env[backup.EnvMediaURL]["value"])
			assert.Equal(t, image, env[backup.EnvRelease]["value"], "the release identity goes into every archive")

			// The key arrives as a read-only file from the key Secret.
			keyVolume := named(kubetest.List(t, pod, "spec.template.spec.volumes"), "backup-key")
			require.NotNil(t, keyVolume)
			assert.Equal(t, "oms-prod-eu-backup-key", keyVolume["secret"].(map[string]any)["secretName"])
			assert.Equal(t, float64(0o400), keyVolume["secret"].(map[string]any)["defaultMode"])

			// pg_dump verifies Cloud SQL like the runtime: the server CA from the runtime's ConfigMap.
			caVolume := named(kubetest.List(t, pod, "spec.template.spec.volumes"), "db-ca")
			require.NotNil(t, caVolume)
			assert.Equal(t, "oms-prod-eu-db-ca", caVolume["configMap"].(map[string]any)["name"])
			mounts := []map[string]any{}
			for _, m := range c["volumeMounts"].([]any) {
				mounts = append(mounts, m.(map[string]any))
			}
			caMount := named(mounts, "db-ca")
			require.NotNil(t, caMount)
			assert.Equal(t, path.Dir(omsruntime.DatabaseCAFile), caMount["mountPath"])
		})
	}
}

// named is the item of a list of volumes or mounts with this name, or nil.
func named(items []map[string]any, name string) map[string]any {
	for _, it := range items {
		if it["name"] == name {
			return it
		}
	}
	return nil
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func envOf(c map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	list, _ := c["env"].([]any)
	for _, e := range list {
		m := e.(map[string]any)
		out[m["name"].(string)] = m
	}
	return out
}

func TestNoSecretLiteral(t *testing.T) {
	inv, _ := evaluate(t, baseArgs(), nil)
	kubetest.AssertNoPlaintextSecrets(t, inv)
	assert.Equal(t, inventory.Secret, find(t, inv, versionType, "backup-key-version").String("secretData"))
	// The Kubernetes Secret's data is a secret output as a whole (AssertNoPlaintextSecrets checks either shape).
	data, _ := find(t, inv, kubetest.Secret, "backup-key").Get("stringData")
	assert.Equal(t, inventory.Secret, data)
	for _, cj := range inv.OfType(cronJobType) {
		for _, c := range kubetest.Containers(t, jobPod(cj)) {
			b, err := json.Marshal(c)
			require.NoError(t, err)
			assert.NotContains(t, string(b), inventory.Secret, "%s carries no secret value", cj.Name)
			for name, e := range envOf(c) {
				if strings.Contains(name, "URL") && name != backup.EnvMediaURL {
					assert.NotNil(t, e["valueFrom"], "%s of %s comes from a Secret", name, cj.Name)
				}
			}
		}
	}
}

func TestIAMIsScopedToBucketsAndSecrets(t *testing.T) {
	secret := "projects/omscloud-prod-eu/secrets/oms-prod-eu-db-acme"
	a := baseArgs()
	a.Media.Writers = []pulumi.StringInput{pulumi.String("oms-prod-eu-runtime@omscloud-prod-eu.iam.gserviceaccount.com")}
	inv, _ := evaluate(t, a, map[string]string{"acme": secret})
	for _, typ := range inv.Types() {
		assert.False(t, strings.HasPrefix(typ, "gcp:projects/") || strings.HasPrefix(typ, "gcp:organizations/"),
			"no project- or organization-wide grant: %s", typ)
	}
	grants := map[string][]string{}
	for _, g := range inv.OfType(bucketIAMType) {
		assert.NotContains(t, g.String("role"), "admin", "%s", g.Name)
		grants[g.String("member")+" "+g.String("bucket")] = append(grants[g.String("member")+" "+g.String("bucket")], g.String("role"))
	}
	assert.ElementsMatch(t, []string{"roles/storage.objectCreator", "roles/storage.objectViewer"}, grants[backupGSA+" "+backupBucketEU],
		"backups are written and read, never deleted or overwritten, by the backup account")
	assert.Equal(t, []string{"roles/storage.objectViewer"}, grants[backupGSA+" "+mediaBucketEU])
	assert.Equal(t, []string{"roles/storage.objectUser"}, grants[pruneGSA+" "+backupBucketEU], "only prune deletes")
	assert.Empty(t, grants[pruneGSA+" "+mediaBucketEU])
	assert.Equal(t, []string{"roles/storage.objectUser"},
		grants["serviceAccount:oms-prod-eu-runtime@omscloud-prod-eu.iam.gserviceaccount.com "+mediaBucketEU])
	assert.Len(t, grants, 4)

	var readable []string
	for _, g := range inv.OfType(secretIAMType) {
		assert.Equal(t, backupGSA, g.String("member"), "only the backup account reads secrets")
		assert.Equal(t, "roles/secretmanager.secretAccessor", g.String("role"))
		readable = append(readable, g.String("secretId"))
	}
	assert.ElementsMatch(t, []string{"backup-key-secret-id", secret}, readable)

	var members []string
	for _, r := range inv.OfType("gcp:serviceaccount/iAMMember:IAMMember") {
		assert.Equal(t, "roles/iam.workloadIdentityUser", r.String("role"))
		members = append(members, r.String("member"))
	}
	assert.ElementsMatch(t, []string{
		"serviceAccount:omscloud-prod-eu.svc.id.goog[oms/oms-prod-eu-backup]",
		"serviceAccount:omscloud-prod-eu.svc.id.goog[oms/oms-prod-eu-backup-prune]",
	}, members)
	assert.Len(t, inv.OfType(gsaType), 2)
}

func TestOutputs(t *testing.T) {
	_, out := evaluate(t, baseArgs(), nil)
	assert.Equal(t, backupBucketEU, out.bucket)
	assert.Equal(t, "gs://"+backupBucketEU, out.url)
	assert.Equal(t, mediaBucketEU, out.media)
	assert.Equal(t, "backup-key-secret-id", out.keySecret)
	assert.Equal(t, "oms-prod-eu-backup@omscloud-prod-eu.iam.gserviceaccount.com", out.email)
}

func TestValidate(t *testing.T) {
	wiring := omsruntime.Wiring{
		Namespace: "oms", ConfigMap: pulumi.String("cm").ToStringOutput(), Secret: pulumi.String("s").ToStringOutput(),
	}
	valid := func() backup.Args {
		a := baseArgs()
		a.Runtime = wiring
		return a
	}
	require.NoError(t, (func() *backup.Args { a := valid(); return &a })().Validate())
	for _, s := range sites {
		a := s.args()
		a.Runtime = wiring
		assert.NoError(t, a.Validate(), s.name)
	}
	cases := []struct {
		name   string
		change func(*backup.Args)
		want   string
	}{
		{"backups in the primary region", func(a *backup.Args) { a.Bucket.Location = "europe-west1" }, "Bucket.Location \"europe-west1\" is the primary region"},
		{"backups outside the jurisdiction", func(a *backup.Args) { a.Bucket.Location = "us" }, "Bucket.Location \"us\" lies outside EU"},
		{"backups in another jurisdiction's region", func(a *backup.Args) { a.Bucket.Location = "us-east4" }, "lies outside EU"},
		{"media in one region", func(a *backup.Args) { a.Media = backup.MediaArgs{Location: "europe-west4"} }, "media is replicated"},
		{"media dual-region across the border", func(a *backup.Args) { a.Media.DataLocations = []string{"europe-west1", "us-east4"} }, "Media.DataLocations[1] \"us-east4\" is not a region of EU"},
		{"media dual-region of one region", func(a *backup.Args) { a.Media.DataLocations = []string{"europe-west1", "europe-west1"} }, "lists europe-west1 twice"},
		{"unknown location", func(a *backup.Args) { a.Bucket.Location = "mars" }, "Bucket.Location \"mars\" is not a location"},
		{"missing location", func(a *backup.Args) { a.Bucket.Location = "" }, "Bucket.Location is required"},
		{"DR region across the border", func(a *backup.Args) { a.DRRegion = "us-east4" }, "DRRegion \"us-east4\" is in US, outside EU"},
		{"DR region is primary", func(a *backup.Args) { a.DRRegion = "europe-west1" }, "DRRegion \"europe-west1\" is the primary region"},
		{"keep in region elsewhere", func(a *backup.Args) { a.KeepInRegion = true }, "with KeepInRegion the bucket stays in Region"},
		{"no storage agent", func(a *backup.Args) { a.StorageAgent = nil }, "StorageAgent is required"},
		{"unknown region", func(a *backup.Args) { a.Region = "moon-1" }, "Region \"moon-1\" is not a GCP region"},
		{"name too long", func(a *backup.Args) { a.Name = "oms-production-europe-1" }, "Name \"oms-production-europe-1\" must be a DNS label of at most 20"},
		{"no runtime wiring", func(a *backup.Args) { a.Runtime = omsruntime.Wiring{} }, "Runtime is required"},
		{"no image", func(a *backup.Args) { a.Image = "" }, "Image is required"},
		{"unpinned image", func(a *backup.Args) { a.Image = "oms:latest" }, "is not pinned"},
		{"tiers out of order", func(a *backup.Args) { a.Retention.Weekly = 5 }, "Retention 7/5/365 days"},
		{"soft delete too short", func(a *backup.Args) { a.Retention.SoftDeleteDays = 3 }, "Retention.SoftDeleteDays is 3"},
		{"key rotation", func(a *backup.Args) { a.KeyRotationDays = 365 }, "KeyRotationDays is 365"},
		{"cron", func(a *backup.Args) { a.Schedule.Weekly = "every sunday" }, "Schedule.Weekly \"every sunday\" is not a 5-field cron expression"},
		{"hourly deadline", func(a *backup.Args) { a.Job.HourlyDeadlineSeconds = 4000 }, "Job.HourlyDeadlineSeconds is 4000"},
		{"same bucket", func(a *backup.Args) { a.Media.Name, a.Bucket.Name = "shared-bucket", "shared-bucket" }, "need their own buckets"},
		{"bucket name", func(a *backup.Args) { a.Bucket.Name = "Backups_Of_Google" }, "Bucket.Name \"Backups_Of_Google\" is not a bucket name"},
		{"nil account secret", func(a *backup.Args) { a.AccountSecrets = map[string]pulumi.StringInput{"acme": nil} }, "AccountSecrets[\"acme\"] is nil"},
		{"predefined dual-region", func(a *backup.Args) {
			a.Region, a.DRRegion, a.Bucket.Location, a.Media = "us-central1", "us-east4", "nam4", backup.MediaArgs{Location: "us"}
		}, ""},
		{"dual-region of another jurisdiction", func(a *backup.Args) {
			a.Region, a.DRRegion, a.Bucket.Location, a.Media = "us-central1", "us-east4", "us-east4", backup.MediaArgs{}
			a.Media.Location = "eur4"
		}, "Media.Location \"eur4\" lies outside US"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := valid()
			c.change(&a)
			err := a.Validate()
			if c.want == "" {
				assert.NoError(t, err, "a predefined dual-region of the jurisdiction with its KMS location")
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.True(t, strings.HasPrefix(err.Error(), "backup: "))
		})
	}

	// Every problem is reported at once.
	a := valid()
	a.Bucket.Location, a.Image, a.StorageAgent = "europe-west1", "", nil
	err := a.Validate()
	require.Error(t, err)
	for _, want := range []string{"Bucket.Location", "Image", "StorageAgent"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = backup.New(nil, "x", nil)
	assert.EqualError(t, err, "backup: Args are required")
}

func TestKeyLocation(t *testing.T) {
	for loc, want := range map[string]string{
		"europe-west4": "europe-west4", "EU": "europe", "eu": "europe", "US": "us", "ASIA": "asia", "nam4": "nam4", "mars": "",
	} {
		assert.Equal(t, want, backup.KeyLocation(loc), loc)
	}
	assert.Equal(t, backup.MediaArgs{Location: "EU", DataLocations: []string{"europe-west1", "europe-west4"}},
		backup.MediaDualRegion("europe-west1", "europe-west4"))
	assert.Equal(t, "ASIA", backup.MediaDualRegion("australia-southeast1", "australia-southeast2").Location)
	assert.Empty(t, backup.MediaDualRegion("europe-west1", "us-east4").Location, "no dual-region across continents")
	assert.True(t, slices.Equal(backup.Tiers, []string{"hourly", "weekly", "monthly"}))
}
