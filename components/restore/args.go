package restore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/omscloud/omscloud/components/backup"
	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// FailbackTier is the tier of the failback archive: monthly archives are kept 12 months (GFS), so the archive
// outlives any failback.
const FailbackTier = backup.Monthly

// Args configures a DR environment's runs against its primary's archives. Run numbers come from the DR stack's
// settings (omsctl dr activate and deactivate): 0 declares no Job, run n is a Job of its own, created once.
type Args struct {
	// Name is the DR environment's name prefix ("oms-prod-eu-dr"): the Jobs are "<Name>-restore-<n>" and
	// "<Name>-failback-<n>", the archive key's Secret "<Name>-primary-key".
	Name    string
	Project string
	// BackupURL ("gs://<bucket>") is the primary's backup bucket: the restore reads it, the failback adds an archive
	// to it, and it outlives the DR environment.
	BackupURL string
	// KeySecretID is the primary's archive key in Secret Manager (replicated to the DR region).
	KeySecretID string
	// Image is the release the Jobs run: the DR environment's runtime image.
	Image string
	// Runtime is the DR runtime's pod wiring (omsruntime.Runtime.Wiring): the Jobs reach the DR database with the
	// runtime's environment and credentials.
	Runtime omsruntime.Wiring
	// Identity is the DR environment's backup identity, which the Jobs run as and which is granted on BackupURL.
	Identity Identity
	// MediaURL is the DR environment's media bucket, which the failback archive includes (backup.Backup.MediaURL).
	MediaURL pulumi.StringInput
	// Restore is the restore run: "<Name>-restore-<Restore>" runs `oms restore --from <BackupURL> --latest`.
	Restore int
	// ForceRestore passes --force: restore over a database that has taken writes since its last restore.
	ForceRestore bool
	// Failback is the failback run: "<Name>-failback-<Failback>" runs `oms backup --tier monthly --to <BackupURL>`.
	// It also grants the identity objectCreator on the primary's bucket.
	Failback int
	// Environment is the DR environment (environment.Environment). The archive key and the Jobs wait until all of it
	// is up. Before this component existed the grants were the environment's children, and the key and the Jobs sat
	// at the stack's root: aliases carry an existing DR stack's state over to this component.
	Environment pulumi.Resource
}

// Identity is the Kubernetes service account the Jobs run as and the GCP service account behind it
// (backup.Backup.ServiceAccountName and ServiceAccountEmail).
type Identity struct {
	KSA   string
	Email pulumi.StringInput
}

// Command is what the restore Job runs; force restores over a database that has taken writes since its last
// restore.
func Command(backupURL string, force bool) []string {
	args := []string{"restore", "--from", backupURL, "--latest"}
	if force {
		args = append(args, "--force")
	}
	return args
}

// FailbackCommand is what the failback Job runs: a backup into the primary's bucket, which outlives the DR stack and
// from which the primary restores.
func FailbackCommand(primaryBackupURL string) []string {
	return []string{"backup", "--tier", FailbackTier, "--to", primaryBackupURL}
}

// Validate reports every problem of the arguments, naming the field and the fix.
func (a *Args) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if a.Name == "" {
		add("Name is required: the DR environment's name prefix")
	}
	if a.Project == "" {
		add("Project is required")
	}
	if !strings.HasPrefix(a.BackupURL, "gs://") || len(a.BackupURL) == len("gs://") {
		add("BackupURL %q: give the primary's backup bucket as gs://<bucket>", a.BackupURL)
	}
	if a.KeySecretID == "" {
		add("KeySecretID is required: the primary's archive key in Secret Manager decrypts and encrypts the archives")
	}
	if a.Identity.KSA == "" || a.Identity.Email == nil {
		add("Identity is required: the DR environment's backup identity (backup.Backup.ServiceAccountName and ServiceAccountEmail)")
	}
	if a.Environment == nil {
		add("Environment is required: the DR environment the Jobs wait for")
	}
	if a.Restore < 0 || a.Failback < 0 {
		add("Restore %d, Failback %d: run numbers are 0 (none) or more", a.Restore, a.Failback)
	}
	if a.Restore > 0 || a.Failback > 0 {
		if a.Runtime.Secret.OutputState == nil || a.Runtime.ConfigMap.OutputState == nil {
			add("Runtime is required for a run: pass the DR runtime's pod wiring (omsruntime.Runtime.Wiring)")
		}
		if a.Image == "" {
			add("Image is required for a run: the DR environment's runtime image")
		}
	}
	if a.Failback > 0 && a.MediaURL == nil {
		add("MediaURL is required for a failback: the archive includes the DR environment's media")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}
