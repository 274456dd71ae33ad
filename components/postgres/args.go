package postgres

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Availability types of a Cloud SQL instance.
const (
	// Regional keeps a standby in a second zone with synchronous replication and automatic failover.
	Regional = "REGIONAL"
	// Zonal is a single instance: restorable from backups, no failover. Sandbox only.
	Zonal = "ZONAL"
)

// Args configures one environment's Cloud SQL for PostgreSQL instance and the accounts' databases in it.
type Args struct {
	// Name prefixes every physical name ("oms-prod-us"): instance "<Name>-pg", key ring "<Name>-sql",
	// secrets "<Name>-db-<account>".
	Name    string
	Project string
	Region  string
	// Zones are the environment's zones: the primary runs in Zones[0], the standby of a REGIONAL instance in
	// Zones[1] (or SecondaryZone).
	Zones []string
	// SecondaryZone overrides Zones[1] as the standby's zone; REGIONAL only.
	SecondaryZone string
	// Network is the VPC (id or self link) the instance gets its private IP on.
	Network pulumi.StringInput
	// PrivateServices is the private services access connection of Network; the instance waits for it.
	PrivateServices pulumi.Resource
	// ServiceAgent is Cloud SQL's service agent (Postgres.ServiceAgent of another instance of the project), granted
	// the CMEK key; unset, the component looks it up itself.
	ServiceAgent pulumi.StringInput

	// Version is the engine version (default POSTGRES_16).
	Version string
	// Edition is ENTERPRISE (default; db-custom-* tiers) or ENTERPRISE_PLUS (db-perf-optimized-* tiers).
	Edition string
	// Tier is the machine: db-custom-<vCPUs>-<MB>, db-n1-standard-<N>, db-n1-highmem-<N>, db-f1-micro,
	// db-g1-small or db-perf-optimized-N-<N>.
	Tier string
	// DiskSizeGB is the initial disk size: autoresize grows it, and later changes are ignored (a Cloud SQL disk
	// never shrinks, and a size below the grown one would replace the instance).
	DiskSizeGB int
	// Availability is REGIONAL (default) or ZONAL.
	Availability string

	Backup      BackupArgs
	Maintenance MaintenanceArgs
	// MaxConnections overrides the connection limit derived from the tier's memory (0 = derived).
	MaxConnections int
	// LogSlowStatementsMs logs the text of statements slower than this; 0 (default) logs none, because statement
	// text carries customer data into Cloud Logging. Query Insights shows slow queries with literals removed.
	LogSlowStatementsMs int

	// LogicalDecoding sets the flag cloudsql.logical_decoding=on (wal_level=logical), which `oms account move` needs
	// on the instance an account moves away from; turning it on or off restarts the instance once.
	LogicalDecoding bool

	// KeyRotationDays is the CMEK key's rotation period, at most 90 (default 90).
	KeyRotationDays int
	// DeletionProtection guards the instance at the API and in Pulumi, and the CMEK key in Pulumi.
	DeletionProtection bool
	Labels             map[string]string
	// AdoptKeys keeps the CMEK key ring and key in GCP when the stack is destroyed and adopts them when they exist
	// (cmek.Args.Adopt): for an environment torn down and declared again under the same names, a DR environment.
	AdoptKeys bool
	// Teardown is set only while the environment is being torn down (a DR environment, after its failback backup
	// reached the primary's bucket): the accounts' databases, users and password secrets are unprotected too, so that the destroy that follows deletes them.
	Teardown bool
	// InstanceSuffix is appended to the instance name ("<Name>-pg-<suffix>"): Cloud SQL keeps a deleted instance's
	// name taken for up to a week, so an environment declared again after a teardown needs a new one.
	InstanceSuffix pulumi.StringInput

	// Accounts get a database, a user and a password secret each; all protected from deletion.
	Accounts []string
	// RetiredAccounts keep their resources but unprotected, so that removing them afterwards really deletes
	// them. See README "Removing an account".
	RetiredAccounts []string
	// IncomingAccounts are accounts being moved onto this instance from another (the root README, "Moving an account
	// to another cell"): declared exactly as Accounts are (same logical names, protected, ABANDON), so that the
	// account moving into Accounts later changes nothing of them, but left out of Postgres.Accounts: until the move
	// is recorded, the runtime's wiring takes the account's password from the instance it is still on.
	IncomingAccounts []string
}

// BackupArgs configures automated backups and point-in-time recovery.
type BackupArgs struct {
	// Location keeps backups in the jurisdiction: a region or multi-region (default: Region).
	Location string
	// RetainedBackups is how many daily automated backups are kept (default 7, 1 to 365).
	RetainedBackups int
	// TransactionLogRetentionDays is the point-in-time recovery window (default 7; 1 to 7 on ENTERPRISE).
	TransactionLogRetentionDays int
	// StartTime is the UTC "HH:MM" at which the daily backup starts (default: chosen by Cloud SQL).
	StartTime string
}

// MaintenanceArgs is Cloud SQL's weekly one-hour maintenance window.
type MaintenanceArgs struct {
	// Day is 1 (Monday) to 7 (Sunday).
	Day     int
	HourUTC int
}

var (
	namePattern    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,28}[a-z0-9]$`)
	accountPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{2,30}$`)
	versionPattern = regexp.MustCompile(`^POSTGRES_[0-9]{2}$`)
	timePattern    = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
)

// Weekday returns the maintenance day number (1 = Monday ... 7 = Sunday) of a lowercase weekday name.
func Weekday(name string) (int, bool) {
	for i, d := range []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"} {
		if d == name {
			return i + 1, true
		}
	}
	return 0, false
}

// withDefaults returns a copy of the args with every unset option at its safe production default.
func (a Args) withDefaults() Args {
	if a.Version == "" {
		a.Version = "POSTGRES_16"
	}
	if a.Edition == "" {
		a.Edition = "ENTERPRISE"
	}
	if a.Availability == "" {
		a.Availability = Regional
	}
	if a.Backup.Location == "" {
		a.Backup.Location = a.Region
	}
	if a.Backup.RetainedBackups == 0 {
		a.Backup.RetainedBackups = 7
	}
	if a.Backup.TransactionLogRetentionDays == 0 {
		a.Backup.TransactionLogRetentionDays = 7
	}
	if a.KeyRotationDays == 0 {
		a.KeyRotationDays = 90
	}
	return a
}

// primaryZone and secondaryZone are where the instance and its standby run.
func (a *Args) primaryZone() string { return a.Zones[0] }

func (a *Args) secondaryZone() string {
	if a.SecondaryZone != "" {
		return a.SecondaryZone
	}
	return a.Zones[1]
}

// Validate reports every missing or inconsistent argument, after defaults.
func (a *Args) Validate() error {
	d := a.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("postgres: "+format, args...)) }

	if !namePattern.MatchString(d.Name) {
		add("Name %q: 2-30 lowercase letters, digits and hyphens, starting with a letter (e.g. oms-prod-us)", d.Name)
	}
	if d.Project == "" || d.Region == "" {
		add("Project and Region are required")
	}
	if d.Network == nil {
		add("Network is required: the instance has a private IP only")
	}
	if d.PrivateServices == nil {
		add("PrivateServices is required: the private services access connection of Network")
	}
	d.validateZones(add)

	if !versionPattern.MatchString(d.Version) {
		add("Version %q: use a Cloud SQL PostgreSQL version such as POSTGRES_16", d.Version)
	}
	_, tierErr := tierMemoryMB(d.Tier)
	if tierErr != nil {
		add("Tier: %v", tierErr)
	}
	switch d.Edition {
	case "ENTERPRISE":
		if strings.HasPrefix(d.Tier, "db-perf-optimized-") {
			add("Tier %q needs Edition ENTERPRISE_PLUS", d.Tier)
		}
		if t := d.Backup.TransactionLogRetentionDays; t < 1 || t > 7 {
			add("Backup.TransactionLogRetentionDays is %d: ENTERPRISE keeps 1 to 7 days", t)
		}
	case "ENTERPRISE_PLUS":
		if tierErr == nil && !strings.HasPrefix(d.Tier, "db-perf-optimized-") {
			add("Tier %q: ENTERPRISE_PLUS runs db-perf-optimized-N-<vCPUs> tiers only", d.Tier)
		}
		if t := d.Backup.TransactionLogRetentionDays; t < 1 || t > 35 {
			add("Backup.TransactionLogRetentionDays is %d: ENTERPRISE_PLUS keeps 1 to 35 days", t)
		}
	default:
		add("Edition %q: use ENTERPRISE or ENTERPRISE_PLUS", d.Edition)
	}
	if d.DiskSizeGB < 10 {
		add("DiskSizeGB is %d: Cloud SQL needs at least 10", d.DiskSizeGB)
	}
	if r := d.Backup.RetainedBackups; r < 1 || r > 365 {
		add("Backup.RetainedBackups is %d: keep 1 to 365", r)
	}
	if d.Backup.StartTime != "" && !timePattern.MatchString(d.Backup.StartTime) {
		add("Backup.StartTime %q: use HH:MM in UTC", d.Backup.StartTime)
	}
	if d.Maintenance.Day < 1 || d.Maintenance.Day > 7 {
		add("Maintenance.Day is %d: use 1 (Monday) to 7 (Sunday)", d.Maintenance.Day)
	}
	if d.Maintenance.HourUTC < 0 || d.Maintenance.HourUTC > 23 {
		add("Maintenance.HourUTC is %d: use 0 to 23", d.Maintenance.HourUTC)
	}
	if d.MaxConnections != 0 && (d.MaxConnections < 14 || d.MaxConnections > 262143) {
		add("MaxConnections is %d: Cloud SQL accepts 14 to 262143 (0 derives it from the tier)", d.MaxConnections)
	}
	if d.LogSlowStatementsMs < 0 {
		add("LogSlowStatementsMs is %d: use 0 (off) or a duration in milliseconds", d.LogSlowStatementsMs)
	}
	if d.KeyRotationDays < 1 || d.KeyRotationDays > 90 {
		add("KeyRotationDays is %d: rotate the CMEK key at least every 90 days", d.KeyRotationDays)
	}

	seen := map[string]string{}
	for _, list := range []struct {
		field string
		ids   []string
	}{{"Accounts", d.Accounts}, {"RetiredAccounts", d.RetiredAccounts}, {"IncomingAccounts", d.IncomingAccounts}} {
		for i, id := range list.ids {
			switch {
			case !accountPattern.MatchString(id):
				add("%s[%d] %q is not an account id: 3-31 lowercase letters, digits and hyphens, starting with a letter", list.field, i, id)
			case seen[id] == list.field:
				add("%s[%d] %q is listed twice: each account has exactly one database", list.field, i, id)
			case seen[id] != "":
				add("%s[%d] %q is also in %s: an account is in one list of Accounts, RetiredAccounts and IncomingAccounts", list.field, i, id, seen[id])
			}
			if seen[id] == "" {
				seen[id] = list.field
			}
		}
	}
	return errors.Join(errs...)
}

func (a *Args) validateZones(add func(string, ...any)) {
	for i, z := range a.Zones {
		if !strings.HasPrefix(z, a.Region+"-") {
			add("Zones[%d] %q is not a zone of region %s", i, z, a.Region)
		}
	}
	switch a.Availability {
	case Regional:
		if len(a.Zones) < 2 && a.SecondaryZone == "" {
			add("Zones has %d zone(s): REGIONAL needs a primary and a secondary zone", len(a.Zones))
			return
		}
		if len(a.Zones) == 0 {
			add("Zones is empty: the primary zone is Zones[0]")
			return
		}
		if a.SecondaryZone != "" && !strings.HasPrefix(a.SecondaryZone, a.Region+"-") {
			add("SecondaryZone %q is not a zone of region %s", a.SecondaryZone, a.Region)
		}
		if a.primaryZone() == a.secondaryZone() {
			add("the secondary zone %q is the primary zone: the standby must survive the primary zone's outage, use another of %v", a.secondaryZone(), a.Zones)
		}
	case Zonal:
		if len(a.Zones) == 0 {
			add("Zones is empty: the primary zone is Zones[0]")
		}
		if a.SecondaryZone != "" {
			add("SecondaryZone %q is set on a ZONAL instance, which has no standby: use REGIONAL or remove SecondaryZone", a.SecondaryZone)
		}
	default:
		add("Availability %q: use REGIONAL (standby in another zone, automatic failover) or ZONAL", a.Availability)
	}
}

// tierMemoryMB returns the memory of a Cloud SQL tier.
func tierMemoryMB(tier string) (int, error) {
	bad := fmt.Errorf("%q is not a Cloud SQL tier omscloud can size: use db-custom-<vCPUs>-<MB> (e.g. db-custom-4-16384)", tier)
	num := func(s string) int {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return 0
		}
		return n
	}
	switch {
	case tier == "db-f1-micro":
		return 614, nil
	case tier == "db-g1-small":
		return 1740, nil
	case strings.HasPrefix(tier, "db-custom-"):
		parts := strings.Split(strings.TrimPrefix(tier, "db-custom-"), "-")
		if len(parts) != 2 || num(parts[0]) == 0 || num(parts[1]) == 0 {
			return 0, bad
		}
		return num(parts[1]), nil
	case strings.HasPrefix(tier, "db-n1-standard-"):
		if n := num(strings.TrimPrefix(tier, "db-n1-standard-")); n > 0 {
			return n * 3840, nil
		}
	case strings.HasPrefix(tier, "db-n1-highmem-"):
		if n := num(strings.TrimPrefix(tier, "db-n1-highmem-")); n > 0 {
			return n * 6656, nil
		}
	case strings.HasPrefix(tier, "db-perf-optimized-N-"):
		// Enterprise Plus performance-optimized machines have 8 GB per vCPU.
		if n := num(strings.TrimPrefix(tier, "db-perf-optimized-N-")); n > 0 {
			return n * 8192, nil
		}
	}
	return 0, bad
}

// maxConnections follows Cloud SQL's own sizing of PostgreSQL connections by memory; setting it explicitly makes
// the limit visible in review and lets policy check the runtime's pool sizes against it.
func maxConnections(memoryMB int) int {
	steps := []struct{ belowMB, conns int }{
		{1024, 25}, {3840, 50}, {6144, 100}, {7680, 200}, {15360, 400}, {30720, 500}, {61440, 600}, {122880, 800},
	}
	for _, s := range steps {
		if memoryMB < s.belowMB {
			return s.conns
		}
	}
	return 1000
}
