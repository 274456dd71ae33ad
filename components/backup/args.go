package backup

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/omscloud/omscloud/components/gke"
	"github.com/omscloud/omscloud/components/internal/kube"
	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/regions"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Tiers of `oms backup --tier`, each under its own object prefix ("hourly/...") so lifecycle rules can expire them.
const (
	Hourly  = "hourly"
	Weekly  = "weekly"
	Monthly = "monthly"
)

// Tiers in schedule order.
var Tiers = []string{Hourly, Weekly, Monthly}

// Defaults.
const (
	// Schedules run outside the default maintenance window (Saturday and Sunday 02:00-08:00 UTC) where they can;
	// each tier at its own minute so two dumps never start together.
	DefaultHourlySchedule  = "7 * * * *"
	DefaultWeeklySchedule  = "17 0 * * 0"
	DefaultMonthlySchedule = "37 0 1 * *"
	DefaultPruneSchedule   = "47 1 * * *"
	// TimeZone makes the schedules mean UTC whatever the cluster's zone.
	TimeZone = "Etc/UTC"
	// KeyFile is where backup pods find the archive key (base64 of 32 bytes), from OMS_BACKUP_KEY_FILE.
	KeyFile = "/var/run/oms-backup/key"
	// KeySecretKey is the key of the archive key in the Kubernetes Secret.
	KeySecretKey = "key"
	// Environment of the backup pods (besides the runtime's ConfigMap and database URL).
	EnvKeyFile  = "OMS_BACKUP_KEY_FILE"
	EnvMediaURL = "OMS_MEDIA_URL"
	EnvRelease  = "OMS_RELEASE"
	// keyBytes is AES-256.
	keyBytes = 32
	// nameMax leaves room for "-backup" in the GCP service account id (6-30 characters).
	nameMax = 20
)

// DataClientLabel lets the backup pods through the data tier's NetworkPolicies (environment.DataClientLabel).
var DataClientLabel = map[string]string{"omscloud.io/data-client": "true"}

// Args configures an environment's backups: the backup and media buckets, the archive key, the identities and the
// CronJobs that run `oms backup`.
type Args struct {
	// Name prefixes every resource ("oms-prod-us"), at most 20 characters.
	Name    string
	Project string
	// StorageAgent is the project's Cloud Storage service agent (apis.APIs.StorageAgent), which encrypts and
	// decrypts objects with the buckets' CMEK keys; the key grants wait for it.
	StorageAgent pulumi.StringInput
	// Region is the primary GCP region: backups live outside it (unless KeepInRegion).
	Region string
	// DRRegion is the cold DR site: the archive key is replicated there so a DR spin-up can read it ("" = none).
	DRRegion string
	// AllowCrossBorder acknowledges a DR site outside the jurisdiction (regions.Region.DRCrossBorder).
	AllowCrossBorder bool
	// KeepInRegion keeps backups and media in Region: only for a single-region jurisdiction whose DR site is not
	// acknowledged (sg). Backups then survive a zone, not a region, outage.
	KeepInRegion bool
	// DeletionProtection protects buckets, keys and the archive key in Pulumi (production).
	DeletionProtection bool
	Labels             map[string]string
	// AdoptKeys keeps the CMEK key ring and key in GCP when the stack is destroyed and adopts them when they exist
	// (cmek.Args.Adopt): for an environment torn down and declared again under the same names, a DR environment.
	AdoptKeys bool
	// ForceDestroy lets a destroy delete the buckets with every object in them: only for an environment whose
	// archives are no longer needed (a DR environment torn down after its failback backup reached the primary's bucket).
	ForceDestroy bool

	Bucket BucketArgs
	Media  MediaArgs
	// Retention is how long each tier's objects live before the lifecycle deletes them.
	Retention RetentionArgs
	// KeyRotationDays rotates the CMEK keys, at most 90 (default 90).
	KeyRotationDays int

	// Runtime is the runtime's pod wiring (omsruntime.Runtime.Wiring): its ConfigMap, its Secret's database URL,
	// its namespace and node pool. The backup pods use their own service accounts.
	Runtime omsruntime.Wiring
	// Image is the OMS release that runs the backups (the runtime's active image); its reference is recorded in
	// every archive as the release identity.
	Image string
	// AccountSecrets are the accounts' password secrets in Secret Manager (postgres.Accounts[id].PasswordSecret);
	// the backup service account may read exactly these.
	AccountSecrets map[string]pulumi.StringInput
	Schedule       ScheduleArgs
	Job            JobArgs
}

// BucketArgs place the backup bucket.
type BucketArgs struct {
	// Name is the globally unique bucket name (default "<Project>-<Name>-backups").
	Name string
	// Location is the DR region, the jurisdiction's multi-region ("us", "eu"), a predefined dual-region ("nam4",
	// "eur4") or, with DataLocations, a custom dual-region's multi-region code ("ASIA" for australia-southeast1+2).
	// Never Region, unless KeepInRegion (regions.Region.StorageLocation is the catalog's choice).
	Location string
	// DataLocations are the two regions of a custom dual-region.
	DataLocations []string
	// KeyLocation is the Cloud KMS location of the bucket's key (default KeyLocation(Location)).
	KeyLocation string
	// Listers are service account emails that may list the archives' names and nothing more (the runtime's: its
	// worker exports each tier's newest archive for the freshness alerts). legacyBucketReader has
	// storage.objects.list but not get: the archives stay unreadable to them.
	Listers []pulumi.StringInput
}

// MediaArgs place the media bucket, replicated within the jurisdiction.
type MediaArgs struct {
	// Name defaults to "<Project>-<Name>-media".
	Name string
	// Location is a multi-region or dual-region (with DataLocations for a custom one); Region with KeepInRegion.
	Location      string
	DataLocations []string
	KeyLocation   string
	// Writers are service account emails that read and write media (the runtime's, omsruntime.ServiceAccountEmail).
	Writers []pulumi.StringInput
}

// RetentionArgs bound how long objects live (days).
type RetentionArgs struct {
	// Hourly, Weekly, Monthly: lifecycle deletion age of each tier prefix (defaults 7, 28, 365), the backstop of
	// `oms backup prune`, which keeps the same windows.
	Hourly, Weekly, Monthly int
	// NoncurrentDays keeps a deleted or replaced object's version this long (default 7): a wrong prune is undone
	// within it.
	NoncurrentDays int
	// SoftDeleteDays keeps hard-deleted objects restorable (default 7; Cloud Storage accepts 7 to 90).
	SoftDeleteDays int
}

// ScheduleArgs are cron expressions in UTC.
type ScheduleArgs struct {
	Hourly, Weekly, Monthly, Prune string
}

// JobArgs size and bound the backup Jobs.
type JobArgs struct {
	// Resources of a backup container (default 500m/1Gi, CPU limit 2).
	Resources omsruntime.Resources
	// PruneResources of the prune container (default 100m/128Mi).
	PruneResources omsruntime.Resources
	// ScratchSize is the pods' /tmp (default 4Gi): dumps are staged there before upload.
	ScratchSize string
	// BackoffLimit is the retries of a failed run (default 2).
	BackoffLimit int
	// HourlyDeadlineSeconds bounds an hourly run below the hour (default 3000); other tiers get 4 hours, prune 30
	// minutes.
	HourlyDeadlineSeconds int
}

var (
	regionPattern = regexp.MustCompile(`^[a-z]+-[a-z]+[0-9]+$`)
	bucketPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	cronField     = regexp.MustCompile(`^[0-9*/,-]+$`)
	// multiRegions are Cloud Storage multi-regions: the jurisdiction they stay in, and the Cloud KMS location of
	// keys for their buckets.
	multiRegions = map[string]struct{ jurisdiction, kms string }{
		"us": {"US", "us"}, "eu": {"EU", "europe"}, "asia": {"", "asia"},
	}
	// dualRegions are predefined Cloud Storage dual-regions with their jurisdiction; Cloud KMS has locations of the
	// same names.
	dualRegions = map[string]string{"nam4": "US", "eur4": "EU"}
)

// KeyLocation is the Cloud KMS location a bucket in location needs for its CMEK key: the same region, the
// multi-region's KMS counterpart ("eu" → "europe"), or the dual-region's ("nam4"); "" when unknown.
func KeyLocation(location string) string {
	l := strings.ToLower(location)
	switch {
	case regionPattern.MatchString(l):
		return l
	case multiRegions[l].kms != "":
		return multiRegions[l].kms
	case dualRegions[l] != "":
		return l
	}
	return ""
}

// MediaDualRegion places media in exactly the primary and DR regions: a custom dual-region under the multi-region
// code Cloud Storage files them in (US, EU, ASIA). The DR spin-up then finds the media in its own region.
func MediaDualRegion(primary, dr string) MediaArgs {
	code := ""
	for _, m := range []struct{ prefix, code string }{
		{"us-", "US"}, {"europe-", "EU"}, {"asia-", "ASIA"}, {"australia-", "ASIA"},
	} {
		if strings.HasPrefix(primary, m.prefix) && strings.HasPrefix(dr, m.prefix) {
			code = m.code
		}
	}
	return MediaArgs{Location: code, DataLocations: []string{primary, dr}}
}

// BucketName is the default backup bucket name; the project prefix makes it globally unique.
func BucketName(project, name string) string { return project + "-" + name + "-backups" }

// MediaBucketName is the default media bucket name.
func MediaBucketName(project, name string) string { return project + "-" + name + "-media" }

// withDefaults returns a copy with every unset option at its production default.
func (a Args) withDefaults() Args {
	if a.Runtime.Namespace == "" {
		a.Runtime.Namespace = omsruntime.DefaultNamespace
	}
	if a.Bucket.Name == "" {
		a.Bucket.Name = BucketName(a.Project, a.Name)
	}
	if a.Media.Name == "" {
		a.Media.Name = MediaBucketName(a.Project, a.Name)
	}
	if a.Bucket.KeyLocation == "" {
		a.Bucket.KeyLocation = KeyLocation(a.Bucket.Location)
	}
	if a.Media.KeyLocation == "" {
		a.Media.KeyLocation = KeyLocation(a.Media.Location)
	}
	r := &a.Retention
	for _, d := range []struct {
		v   *int
		def int
	}{{&r.Hourly, 7}, {&r.Weekly, 28}, {&r.Monthly, 365}, {&r.NoncurrentDays, 7}, {&r.SoftDeleteDays, 7}, {&a.KeyRotationDays, 90}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	s := &a.Schedule
	for _, d := range []struct {
		v   *string
		def string
	}{{&s.Hourly, DefaultHourlySchedule}, {&s.Weekly, DefaultWeeklySchedule}, {&s.Monthly, DefaultMonthlySchedule}, {&s.Prune, DefaultPruneSchedule}} {
		if *d.v == "" {
			*d.v = d.def
		}
	}
	j := &a.Job
	j.Resources = fill(j.Resources, omsruntime.Resources{CPU: "500m", Memory: "1Gi", CPULimit: "2", MemoryLimit: "1Gi"})
	j.PruneResources = fill(j.PruneResources, omsruntime.Resources{CPU: "100m", Memory: "128Mi", CPULimit: "500m", MemoryLimit: "128Mi"})
	if j.ScratchSize == "" {
		j.ScratchSize = "4Gi"
	}
	if j.BackoffLimit == 0 {
		j.BackoffLimit = 2
	}
	if j.HourlyDeadlineSeconds == 0 {
		j.HourlyDeadlineSeconds = 3000
	}
	if a.Runtime.NodeSelector == nil {
		a.Runtime.NodeSelector = map[string]string{gke.PoolLabel: gke.WebPool}
	}
	return a
}

func fill(r, def omsruntime.Resources) omsruntime.Resources {
	if r.CPU == "" {
		r.CPU = def.CPU
	}
	if r.Memory == "" {
		r.Memory = def.Memory
	}
	if r.CPULimit == "" {
		r.CPULimit = def.CPULimit
	}
	if r.MemoryLimit == "" {
		r.MemoryLimit = r.Memory
	}
	return r
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
	if d.Project == "" {
		add("Project is required: the GCP project holding the buckets")
	}
	if d.StorageAgent == nil {
		add("StorageAgent is required: the Cloud Storage service agent (apis.APIs.StorageAgent), which must use the CMEK keys")
	}
	jurisdiction, known := regions.JurisdictionOf(d.Region)
	if !known {
		add("Region %q is not a GCP region omscloud knows: use one of %s", d.Region, strings.Join(regions.KnownGCPRegions(), ", "))
	}
	if d.DRRegion != "" {
		j, ok := regions.JurisdictionOf(d.DRRegion)
		switch {
		case !ok:
			add("DRRegion %q is not a GCP region omscloud knows", d.DRRegion)
		case d.DRRegion == d.Region:
			add("DRRegion %q is the primary region: the archive key must survive the region's loss", d.DRRegion)
		case known && j != jurisdiction && !d.AllowCrossBorder:
			add("DRRegion %q is in %s, outside %s: leave it empty, or set AllowCrossBorder where the stack acknowledges DR across the border", d.DRRegion, j, jurisdiction)
		}
	}
	if known {
		d.validatePlacement(add, "Bucket", d.Bucket.Location, d.Bucket.DataLocations, d.Bucket.KeyLocation, jurisdiction, false)
		d.validatePlacement(add, "Media", d.Media.Location, d.Media.DataLocations, d.Media.KeyLocation, jurisdiction, true)
	}
	for _, b := range []struct{ field, name string }{{"Bucket.Name", d.Bucket.Name}, {"Media.Name", d.Media.Name}} {
		if !bucketPattern.MatchString(b.name) || strings.Contains(b.name, "goog") {
			add("%s %q is not a bucket name: 3-63 lowercase letters, digits and '-', without \"goog\"; set %s explicitly", b.field, b.name, b.field)
		}
	}
	if d.Bucket.Name == d.Media.Name {
		add("Bucket.Name and Media.Name are both %q: backups and media need their own buckets", d.Bucket.Name)
	}

	r := d.Retention
	if r.Hourly < 1 || r.Weekly <= r.Hourly || r.Monthly <= r.Weekly {
		add("Retention %d/%d/%d days: hourly, weekly and monthly must each keep longer than the previous tier (default 7/28/365)", r.Hourly, r.Weekly, r.Monthly)
	}
	if r.NoncurrentDays < 1 {
		add("Retention.NoncurrentDays is %d: keep replaced or deleted versions at least 1 day", r.NoncurrentDays)
	}
	if r.SoftDeleteDays < 7 || r.SoftDeleteDays > 90 {
		add("Retention.SoftDeleteDays is %d: Cloud Storage keeps soft-deleted objects 7 to 90 days", r.SoftDeleteDays)
	}
	if d.KeyRotationDays < 1 || d.KeyRotationDays > 90 {
		add("KeyRotationDays is %d: rotate the CMEK keys at least every 90 days", d.KeyRotationDays)
	}

	if d.Runtime.Secret.OutputState == nil || d.Runtime.ConfigMap.OutputState == nil {
		add("Runtime is required: pass the runtime's pod wiring (omsruntime.Runtime.Wiring) so backups reach the database like the runtime")
	}
	addErr(kube.ValidateNamespace("Runtime.Namespace", d.Runtime.Namespace))
	if d.Image == "" {
		add("Image is required: the OMS release that runs `oms backup` (the runtime's active image)")
	} else {
		addErr(kube.ValidateImage("Image", d.Image))
	}
	for _, id := range slices.Sorted(maps.Keys(d.AccountSecrets)) {
		if d.AccountSecrets[id] == nil {
			add("AccountSecrets[%q] is nil: give the secret id (postgres.Accounts[id].PasswordSecret)", id)
		}
	}
	for i, l := range d.Bucket.Listers {
		if l == nil {
			add("Bucket.Listers[%d] is nil: give a service account email (omsruntime.ServiceAccountEmail)", i)
		}
	}
	for i, w := range d.Media.Writers {
		if w == nil {
			add("Media.Writers[%d] is nil: give a service account email (omsruntime.ServiceAccountEmail)", i)
		}
	}
	for _, s := range []struct{ field, expr string }{
		{"Schedule.Hourly", d.Schedule.Hourly}, {"Schedule.Weekly", d.Schedule.Weekly},
		{"Schedule.Monthly", d.Schedule.Monthly}, {"Schedule.Prune", d.Schedule.Prune},
	} {
		if f := strings.Fields(s.expr); len(f) != 5 || slices.ContainsFunc(f, func(x string) bool { return !cronField.MatchString(x) }) {
			add("%s %q is not a 5-field cron expression such as %q", s.field, s.expr, DefaultHourlySchedule)
		}
	}
	j := d.Job
	if j.BackoffLimit < 0 || j.BackoffLimit > 6 {
		add("Job.BackoffLimit is %d: use 0..6", j.BackoffLimit)
	}
	if j.HourlyDeadlineSeconds < 300 || j.HourlyDeadlineSeconds >= 3600 {
		add("Job.HourlyDeadlineSeconds is %d: use 300..3599 so an hourly run ends before the next starts", j.HourlyDeadlineSeconds)
	}
	if _, err := kube.MemoryBytes(j.ScratchSize); err != nil {
		add("Job.ScratchSize: %v", err)
	}
	for _, res := range []struct {
		field string
		r     omsruntime.Resources
	}{{"Job.Resources", j.Resources}, {"Job.PruneResources", j.PruneResources}} {
		for _, q := range []struct{ field, v string }{{"Memory", res.r.Memory}, {"MemoryLimit", res.r.MemoryLimit}} {
			if _, err := kube.MemoryBytes(q.v); err != nil {
				add("%s.%s: %v", res.field, q.field, err)
			}
		}
	}
	errs = append(errs, kube.ValidateLabels("Labels", d.Labels)...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// CheckBucketLocation checks the backup bucket's placement alone, with the rules Validate applies to Bucket: callers
// that pick the location from configuration report its problems before declaring anything.
func (a *Args) CheckBucketLocation() error {
	d := a.withDefaults()
	jurisdiction, known := regions.JurisdictionOf(d.Region)
	if !known {
		return fmt.Errorf("Region %q is not a GCP region omscloud knows", d.Region)
	}
	var errs []error
	d.validatePlacement(func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) },
		"Bucket", d.Bucket.Location, d.Bucket.DataLocations, d.Bucket.KeyLocation, jurisdiction, false)
	return errors.Join(errs...)
}

// validatePlacement checks a bucket's location: inside the jurisdiction, outside the primary region (the backup
// bucket) or replicated (the media bucket), and with a known key location.
func (a *Args) validatePlacement(add func(string, ...any), field, location string, data []string, keyLocation, jurisdiction string, replicated bool) {
	l := strings.ToLower(location)
	if l == "" {
		add("%s.Location is required: use regions.Region.StorageLocation (the DR region or the jurisdiction's multi-region)", field)
		return
	}
	if a.KeepInRegion {
		if l != a.Region || len(data) > 0 {
			add("%s.Location %q: with KeepInRegion the bucket stays in Region %s", field, location, a.Region)
		}
		return
	}
	var inJurisdiction bool
	switch {
	case len(data) > 0:
		if len(data) != 2 || multiRegions[l].kms == "" {
			add("%s.DataLocations %v: a custom dual-region is two regions under a multi-region Location (US, EU, ASIA)", field, data)
			return
		}
		inJurisdiction = true
		for i, dl := range data {
			dl = strings.ToLower(dl)
			if j, ok := regions.JurisdictionOf(dl); !ok || j != jurisdiction && !(a.AllowCrossBorder && dl == a.DRRegion) {
				add("%s.DataLocations[%d] %q is not a region of %s: data must stay in the jurisdiction", field, i, dl, jurisdiction)
				inJurisdiction = false
			}
		}
		if strings.EqualFold(data[0], data[1]) {
			add("%s.DataLocations lists %s twice: a dual-region needs two regions", field, data[0])
		}
	case regionPattern.MatchString(l):
		j, ok := regions.JurisdictionOf(l)
		// Across the border only to the acknowledged DR site.
		inJurisdiction = ok && (j == jurisdiction || a.AllowCrossBorder && l == a.DRRegion)
		if replicated {
			add("%s.Location %q is a single region: media is replicated, use a multi-region or dual-region of %s", field, location, jurisdiction)
		} else if l == a.Region {
			add("%s.Location %q is the primary region: backups must survive its loss, use the DR region or the jurisdiction's multi-region (or KeepInRegion for a single-region jurisdiction)", field, location)
		}
	case multiRegions[l].kms != "":
		inJurisdiction = multiRegions[l].jurisdiction == jurisdiction
	case dualRegions[l] != "":
		inJurisdiction = dualRegions[l] == jurisdiction
	default:
		add("%s.Location %q is not a location omscloud can place: use a region, us, eu, nam4, eur4 or a custom dual-region", field, location)
		return
	}
	if !inJurisdiction && len(data) == 0 {
		add("%s.Location %q lies outside %s: data must stay in the jurisdiction", field, location, jurisdiction)
	}
	if keyLocation == "" {
		add("%s.KeyLocation is required for location %q: the Cloud KMS location of its key", field, location)
	}
}
