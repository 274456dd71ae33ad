// Package postgres declares an environment's Cloud SQL for PostgreSQL instance: private IP only, TLS enforced,
// encrypted with a customer-managed key (CMEK) that rotates at least every 90 days, REGIONAL (a standby in a second
// zone with automatic failover) in production, automated backups with point-in-time recovery, deletion protection,
// Query Insights and a maintenance window. Every account gets its own database and user, with a generated password
// kept in Secret Manager for the runtime.
package postgres

import (
	"fmt"
	"github.com/omscloud/omscloud/components/internal/child"
	"github.com/omscloud/omscloud/components/internal/cmek"
	runtimepg "github.com/omscloud/omscloud/runtime/postgres"
	"regexp"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/projects"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/secretmanager"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/sql"
	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Postgres is the component.
type Postgres struct {
	pulumi.ResourceState

	InstanceName pulumi.StringOutput `pulumi:"instanceName"`
	// ConnectionName is "<project>:<region>:<instance>", for the Cloud SQL connectors.
	ConnectionName pulumi.StringOutput `pulumi:"connectionName"`
	PrivateIP      pulumi.StringOutput `pulumi:"privateIp"`
	// ServerCA is the PEM of the CA that signs the instance's server certificate, for clients to verify the
	// server with (sslmode=verify-ca). Public, so not secret.
	ServerCA pulumi.StringOutput `pulumi:"serverCa"`
	// EncryptionKey is the CMEK key's id.
	EncryptionKey pulumi.StringOutput `pulumi:"encryptionKey"`
	// ServiceAgent is Cloud SQL's service agent of the project (Args.ServiceAgent of the environment's other cells).
	ServiceAgent pulumi.StringOutput
	// Accounts maps each active account id to its database, user and password secret (not Args.IncomingAccounts).
	Accounts map[string]Account
}

// Account is where one account's data lives and how the runtime logs in.
type Account struct {
	Database pulumi.StringOutput
	User     pulumi.StringOutput
	// Password is the user's generated password (secret): the runtime adopts the database with it.
	Password pulumi.StringOutput
	// PasswordSecret is the Secret Manager secret's id ("projects/<p>/secrets/<id>"); read its latest version.
	PasswordSecret pulumi.StringOutput
}

// AccountPrefix starts every account's database and user name; the runtime's --account-db-prefix must match.
const AccountPrefix = "acct"

// DatabaseName is the account's database (and user) name: a PostgreSQL identifier that needs no quoting.
func DatabaseName(account string) string {
	return AccountPrefix + "_" + strings.ReplaceAll(account, "-", "_")
}

// SecretID is the Secret Manager id of the account's password.
func SecretID(name, account string) string { return name + "-db-" + account }

const cloudSQLService = "sqladmin.googleapis.com"

// InstanceName is the Cloud SQL instance's name (its monitoring database_id is "<project>:<name>"); a generation
// of a DR environment appends "-<suffix>" (Args.InstanceSuffix).
func InstanceName(name string) string { return name + "-pg" }

// MainCell is the cell of an environment's first instance: it keeps the names an environment without cells has, and
// the runtime's control database. It is the runtime's name for that cell (a key of OMS_DB_CELLS).
const MainCell = runtimepg.MainCell

// CellName is the Name (and the logical name prefix) of an environment's cell: name itself for MainCell,
// "<name>-<cell>" for another ("oms-prod-eu-b": instance "oms-prod-eu-b-pg", key ring "oms-prod-eu-b-sql").
func CellName(name, cell string) string {
	if cell == MainCell || cell == "" {
		return name
	}
	return name + "-" + cell
}

// InstancePattern is a regular expression for the name of every generation of the instance of every cell given
// (none: the one instance), so that what watches them (alert selectors) need not know the generation.
func InstancePattern(name string, cells ...string) string {
	if len(cells) == 0 {
		cells = []string{MainCell}
	}
	names := make([]string, len(cells))
	for i, cell := range cells {
		names[i] = regexp.QuoteMeta(InstanceName(CellName(name, cell)))
	}
	if len(names) == 1 {
		return names[0] + "(-[0-9a-f]+)?"
	}
	return "(" + strings.Join(names, "|") + ")(-[0-9a-f]+)?"
}

// New declares the instance and the accounts' databases.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Postgres, error) {
	if err := args.Validate(); err != nil {
		return nil, err
	}
	a := args.withDefaults()
	p := &Postgres{Accounts: map[string]Account{}}
	if err := ctx.RegisterComponentResource("omscloud:postgres:Postgres", name, p, opts...); err != nil {
		return nil, err
	}
	inherited, err := child.Options(p, opts)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	parent := pulumi.Composite(inherited...)
	protect := pulumi.Protect(a.DeletionProtection)
	project := pulumi.String(a.Project)

	// CMEK: the key must live in the instance's region, and Cloud SQL's service agent must be able to use it
	// before the instance is created.
	if a.ServiceAgent != nil {
		p.ServiceAgent = a.ServiceAgent.ToStringOutput()
	} else {
		agent, err := projects.NewServiceIdentity(ctx, name+"-sql-agent", &projects.ServiceIdentityArgs{
			Project: project,
			Service: pulumi.String(cloudSQLService),
		}, parent)
		if err != nil {
			return nil, err
		}
		p.ServiceAgent = agent.Email
	}
	cmk, err := cmek.New(ctx, cmek.Args{
		RingLogical: name + "-keyring", KeyLogical: name + "-key", GrantLogical: name + "-key-sql-agent",
		Project: a.Project, Location: a.Region, Name: a.Name + "-sql", RotationDays: a.KeyRotationDays,
		Labels: a.Labels, Agent: p.ServiceAgent, Protect: a.DeletionProtection, Adopt: a.AdoptKeys, Parent: p,
	}, parent)
	if err != nil {
		return nil, err
	}
	key, grant := cmk.Key, cmk.Grant

	instanceName := pulumi.String(InstanceName(a.Name)).ToStringOutput()
	if a.InstanceSuffix != nil {
		instanceName = pulumi.Sprintf("%s-%s", InstanceName(a.Name), a.InstanceSuffix)
	}
	instance, err := sql.NewDatabaseInstance(ctx, name+"-instance", &sql.DatabaseInstanceArgs{
		Project:           project,
		Name:              instanceName,
		Region:            pulumi.String(a.Region),
		DatabaseVersion:   pulumi.String(a.Version),
		EncryptionKeyName: key.ID(),
		// Pulumi refuses to delete the instance; the API-level flag below also stops the console and gcloud.
		DeletionProtection: pulumi.Bool(a.DeletionProtection),
		Settings:           instanceSettings(&a),
	}, parent, protect, pulumi.DependsOn([]pulumi.Resource{grant, a.PrivateServices}),
		// DiskSizeGB is the initial size only: autoresize grows the disk, and a configured size below the grown one
		// would replace the instance (the provider's doc on settings.diskSize and settings.diskAutoresize: "Size of a
		// running instance cannot be reduced ... set lifecycle.ignore_changes on this field"). Autoresize is the
		// resize path; to grow the disk ahead of need, resize it with gcloud and leave the config alone.
		pulumi.IgnoreChanges([]string{"settings.diskSize"}))
	if err != nil {
		return nil, err
	}

	for _, id := range a.Accounts {
		acct, err := newAccount(ctx, name, &a, id, instance, true, parent)
		if err != nil {
			return nil, err
		}
		p.Accounts[id] = acct
	}
	// An incoming account is declared as an active one, under the same names; it is not the instance's yet.
	for _, id := range a.IncomingAccounts {
		if _, err := newAccount(ctx, name, &a, id, instance, true, parent); err != nil {
			return nil, err
		}
	}
	for _, id := range a.RetiredAccounts {
		if _, err := newAccount(ctx, name, &a, id, instance, false, parent); err != nil {
			return nil, err
		}
	}

	p.InstanceName = instance.Name
	p.ConnectionName = instance.ConnectionName
	p.PrivateIP = instance.PrivateIpAddress
	p.EncryptionKey = key.ID().ToStringOutput()
	p.ServerCA = serverCA(instance)
	accounts := pulumi.Map{}
	for id, acct := range p.Accounts {
		accounts[id] = pulumi.StringMap{"database": acct.Database, "user": acct.User, "passwordSecret": acct.PasswordSecret}
	}
	return p, ctx.RegisterResourceOutputs(p, pulumi.Map{
		"instanceName":   p.InstanceName,
		"connectionName": p.ConnectionName,
		"privateIp":      p.PrivateIP,
		"serverCa":       p.ServerCA,
		"encryptionKey":  p.EncryptionKey,
		"accounts":       accounts,
	})
}

// serverCA is every certificate in the instance's serverCaCerts (the current server CA) as one PEM bundle.
// pulumi-gcp marks serverCaCerts secret; a CA certificate is public, so it is unwrapped.
func serverCA(instance *sql.DatabaseInstance) pulumi.StringOutput {
	pems := instance.ServerCaCerts.ApplyT(func(certs []sql.DatabaseInstanceServerCaCert) string {
		var b strings.Builder
		for _, c := range certs {
			if c.Cert != nil {
				b.WriteString(strings.TrimSpace(*c.Cert) + "\n")
			}
		}
		return b.String()
	}).(pulumi.StringOutput)
	return pulumi.Unsecret(pems).(pulumi.StringOutput)
}

func instanceSettings(a *Args) *sql.DatabaseInstanceSettingsArgs {
	location := &sql.DatabaseInstanceSettingsLocationPreferenceArgs{Zone: pulumi.String(a.primaryZone())}
	if a.Availability == Regional {
		location.SecondaryZone = pulumi.String(a.secondaryZone())
	}
	backup := &sql.DatabaseInstanceSettingsBackupConfigurationArgs{
		Enabled:                     pulumi.Bool(true),
		PointInTimeRecoveryEnabled:  pulumi.Bool(true),
		TransactionLogRetentionDays: pulumi.Int(a.Backup.TransactionLogRetentionDays),
		Location:                    pulumi.String(a.Backup.Location),
		BackupRetentionSettings: &sql.DatabaseInstanceSettingsBackupConfigurationBackupRetentionSettingsArgs{
			RetainedBackups: pulumi.Int(a.Backup.RetainedBackups),
			RetentionUnit:   pulumi.String("COUNT"),
		},
	}
	if a.Backup.StartTime != "" {
		backup.StartTime = pulumi.String(a.Backup.StartTime)
	}
	return &sql.DatabaseInstanceSettingsArgs{
		Tier:                      pulumi.String(a.Tier),
		Edition:                   pulumi.String(a.Edition),
		AvailabilityType:          pulumi.String(a.Availability),
		LocationPreference:        location,
		DiskType:                  pulumi.String("PD_SSD"),
		DiskSize:                  pulumi.Int(a.DiskSizeGB),
		DiskAutoresize:            pulumi.Bool(true),
		DeletionProtectionEnabled: pulumi.Bool(a.DeletionProtection),
		IpConfiguration: &sql.DatabaseInstanceSettingsIpConfigurationArgs{
			Ipv4Enabled:    pulumi.Bool(false),
			PrivateNetwork: a.Network,
			// TLS on every connection, authenticated by password: client certificates would need a per-pod
			// certificate lifecycle, and only the VPC can reach the private IP anyway.
			SslMode:                                 pulumi.String("ENCRYPTED_ONLY"),
			EnablePrivatePathForGoogleCloudServices: pulumi.Bool(true),
		},
		BackupConfiguration: backup,
		MaintenanceWindow: &sql.DatabaseInstanceSettingsMaintenanceWindowArgs{
			Day:         pulumi.Int(a.Maintenance.Day),
			Hour:        pulumi.Int(a.Maintenance.HourUTC),
			UpdateTrack: pulumi.String("stable"),
		},
		InsightsConfig: &sql.DatabaseInstanceSettingsInsightsConfigArgs{
			QueryInsightsEnabled:  pulumi.Bool(true),
			QueryPlansPerMinute:   pulumi.Int(5),
			QueryStringLength:     pulumi.Int(1024),
			RecordApplicationTags: pulumi.Bool(true),
			RecordClientAddress:   pulumi.Bool(false),
		},
		DatabaseFlags: databaseFlags(a),
		UserLabels:    pulumi.ToStringMap(a.Labels),
	}
}

// databaseFlags are the flags Cloud SQL accepts for PostgreSQL, set so that connections are bounded by the tier and
// the logs show who connected and what blocked, without statement text (customer data).
func databaseFlags(a *Args) sql.DatabaseInstanceSettingsDatabaseFlagArray {
	conns := a.MaxConnections
	if conns == 0 {
		mem, _ := tierMemoryMB(a.Tier) // validated
		conns = maxConnections(mem)
	}
	slow := -1
	if a.LogSlowStatementsMs > 0 {
		slow = a.LogSlowStatementsMs
	}
	flags := [][2]string{
		{"max_connections", strconv.Itoa(conns)},
		{"log_min_duration_statement", strconv.Itoa(slow)},
		{"log_checkpoints", "on"},
		{"log_connections", "on"},
		{"log_disconnections", "on"},
		{"log_lock_waits", "on"},
		{"log_temp_files", "0"},
		// A transaction left open holds locks and blocks vacuum: end it after 10 minutes.
		{"idle_in_transaction_session_timeout", "600000"},
		// pgAudit records schema and role changes (not data) once the extension is created by migrate.
		{"cloudsql.enable_pgaudit", "on"},
		{"pgaudit.log", "ddl,role"},
	}
	if a.LogicalDecoding {
		flags = append(flags, [2]string{"cloudsql.logical_decoding", "on"})
	}
	out := make(sql.DatabaseInstanceSettingsDatabaseFlagArray, len(flags))
	for i, f := range flags {
		out[i] = sql.DatabaseInstanceSettingsDatabaseFlagArgs{Name: pulumi.String(f[0]), Value: pulumi.String(f[1])}
	}
	return out
}

// newAccount declares one account's database, user and password secret. Logical names carry the account id, so
// that adding, retiring or removing an account touches that account's resources only.
//
// Active accounts are protected: removing one from Accounts fails the update instead of dropping its database,
// and their database and user are ABANDONed even if protection is lifted out of band, so Pulumi itself never
// drops customer data. Retired accounts are unprotected and deleted for real when finally removed.
func newAccount(ctx *pulumi.Context, name string, a *Args, id string, instance *sql.DatabaseInstance, active bool,
	parent pulumi.ResourceOption) (Account, error) {
	protect := pulumi.Protect(active && !a.Teardown)
	deletion := "DELETE"
	if active {
		deletion = "ABANDON"
	}
	labels := pulumi.StringMap{"account": pulumi.String(id)}
	for k, v := range a.Labels {
		labels[k] = pulumi.String(v)
	}
	dbName := DatabaseName(id)

	password, err := random.NewRandomPassword(ctx, fmt.Sprintf("%s-password-%s", name, id), &random.RandomPasswordArgs{
		Length: pulumi.Int(32),
		// Letters and digits only: ~190 bits, and nothing that needs escaping in a connection string.
		Special:    pulumi.Bool(false),
		MinLower:   pulumi.Int(2),
		MinUpper:   pulumi.Int(2),
		MinNumeric: pulumi.Int(2),
	}, parent, protect)
	if err != nil {
		return Account{}, err
	}
	user, err := sql.NewUser(ctx, fmt.Sprintf("%s-user-%s", name, id), &sql.UserArgs{
		Project:        pulumi.String(a.Project),
		Instance:       instance.Name,
		Name:           pulumi.String(dbName),
		Type:           pulumi.String("BUILT_IN"),
		Password:       pulumi.ToSecret(password.Result).(pulumi.StringOutput),
		DeletionPolicy: pulumi.String(deletion),
	}, parent, protect)
	if err != nil {
		return Account{}, err
	}
	// The database depends on its user so that deleting a retired account drops the database (and the objects
	// the user owns in it) before the user, which PostgreSQL would otherwise refuse to drop.
	db, err := sql.NewDatabase(ctx, fmt.Sprintf("%s-db-%s", name, id), &sql.DatabaseArgs{
		Project:        pulumi.String(a.Project),
		Instance:       instance.Name,
		Name:           pulumi.String(dbName),
		Charset:        pulumi.String("UTF8"),
		Collation:      pulumi.String("en_US.UTF8"),
		DeletionPolicy: pulumi.String(deletion),
	}, parent, protect, pulumi.DependsOn([]pulumi.Resource{user}))
	if err != nil {
		return Account{}, err
	}
	secret, err := secretmanager.NewSecret(ctx, fmt.Sprintf("%s-secret-%s", name, id), &secretmanager.SecretArgs{
		Project:  pulumi.String(a.Project),
		SecretId: pulumi.String(SecretID(a.Name, id)),
		Labels:   labels,
		// Stored only in the instance's region: the password never leaves the jurisdiction.
		Replication: &secretmanager.SecretReplicationArgs{
			UserManaged: &secretmanager.SecretReplicationUserManagedArgs{
				Replicas: secretmanager.SecretReplicationUserManagedReplicaArray{
					&secretmanager.SecretReplicationUserManagedReplicaArgs{Location: pulumi.String(a.Region)},
				},
			},
		},
	}, parent, protect)
	if err != nil {
		return Account{}, err
	}
	if _, err := secretmanager.NewSecretVersion(ctx, fmt.Sprintf("%s-secret-version-%s", name, id), &secretmanager.SecretVersionArgs{
		Secret:     secret.ID(),
		SecretData: pulumi.ToSecret(password.Result).(pulumi.StringOutput),
		// A replaced version is disabled, not destroyed, so a bad rotation can be rolled back.
		DeletionPolicy: pulumi.String("DISABLE"),
	}, parent); err != nil {
		return Account{}, err
	}
	return Account{
		Database: db.Name, User: user.Name, PasswordSecret: secret.ID().ToStringOutput(),
		Password: pulumi.ToSecret(password.Result).(pulumi.StringOutput),
	}, nil
}
