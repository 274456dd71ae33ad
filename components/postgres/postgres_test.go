package postgres_test

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/omscloud/omscloud/components/postgres"
	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/servicenetworking"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	instanceType = "gcp:sql/databaseInstance:DatabaseInstance"
	databaseType = "gcp:sql/database:Database"
	userType     = "gcp:sql/user:User"
	secretType   = "gcp:secretmanager/secret:Secret"
	versionType  = "gcp:secretmanager/secretVersion:SecretVersion"
	keyType      = "gcp:kms/cryptoKey:CryptoKey"
	ringType     = "gcp:kms/keyRing:KeyRing"
	grantType    = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
	agentType    = "gcp:projects/serviceIdentity:ServiceIdentity"
	passwordType = "random:index/randomPassword:RandomPassword"
	networkLink  = "https://www.googleapis.com/compute/v1/projects/p/global/networks/oms-prod-us-vpc"
)

// production returns the arguments a production stack in us-central1 passes.
func production() postgres.Args {
	return postgres.Args{
		Name:               "oms-prod-us",
		Project:            "omscloud-prod-us",
		Region:             "us-central1",
		Zones:              []string{"us-central1-a", "us-central1-b", "us-central1-c"},
		Network:            pulumi.String(networkLink),
		Tier:               "db-custom-4-16384",
		DiskSizeGB:         100,
		Availability:       postgres.Regional,
		Backup:             postgres.BackupArgs{Location: "us", RetainedBackups: 30},
		Maintenance:        postgres.MaintenanceArgs{Day: 6, HourUTC: 2},
		DeletionProtection: true,
		Labels:             map[string]string{"environment": "production"},
		Accounts:           []string{"northwind", "contoso"},
	}
}

func sandbox() postgres.Args {
	a := production()
	a.Name = "oms-sbx-us"
	a.Availability = postgres.Zonal
	a.Tier = "db-custom-1-3840"
	a.DeletionProtection = false
	return a
}

// agentEmail is what the recorder's Cloud SQL service identity reports.
const agentEmail = "service-123456789@gcp-sa-cloud-sql.iam.gserviceaccount.com"

// recorder wraps the shared mocks to also record each resource's protect flag and dependencies, which the
// inventory does not keep, and to give the Cloud SQL service identity an email.
type recorder struct {
	*inventory.Mocks
	mu      sync.Mutex
	protect map[string]bool
	deps    map[string][]string
}

func (r *recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r.mu.Lock()
	r.protect[args.Name] = args.RegisterRPC.GetProtect()
	for _, d := range args.RegisterRPC.GetDependencies() {
		r.deps[args.Name] = append(r.deps[args.Name], d[strings.LastIndex(d, "::")+2:])
	}
	r.mu.Unlock()
	id, state, err := r.Mocks.NewResource(args)
	if args.TypeToken == agentType {
		state["email"] = resource.NewProperty(agentEmail)
	}
	return id, state, err
}

// privateServices stands in for the network component's private services access connection.
func privateServices(ctx *pulumi.Context) (*servicenetworking.Connection, error) {
	return servicenetworking.NewConnection(ctx, "psa", &servicenetworking.ConnectionArgs{
		Network:               pulumi.String(networkLink),
		Service:               pulumi.String("servicenetworking.googleapis.com"),
		ReservedPeeringRanges: pulumi.StringArray{pulumi.String("oms-prod-us-psa")},
	})
}

// program declares the component next to the private services access connection it depends on.
func program(args postgres.Args) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		psa, err := privateServices(ctx)
		if err != nil {
			return err
		}
		args.PrivateServices = psa
		_, err = postgres.New(ctx, "db", &args)
		return err
	}
}

func evaluate(t *testing.T, args postgres.Args) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Evaluate(program(args), "omscloud", "test", nil, nil)
	require.NoError(t, err)
	return inv
}

// evaluateRecorded also returns protect flags and dependencies by resource name.
func evaluateRecorded(t *testing.T, args postgres.Args) (*inventory.Inventory, *recorder) {
	t.Helper()
	rec := &recorder{Mocks: &inventory.Mocks{Project: "omscloud", Stack: "test"}, protect: map[string]bool{}, deps: map[string][]string{}}
	require.NoError(t, pulumi.RunErr(program(args), pulumi.WithMocks("omscloud", "test", rec)))
	return inventory.New("test", rec.Resources()), rec
}

func one(t *testing.T, inv *inventory.Inventory, typ string) inventory.Resource {
	t.Helper()
	rs := inv.OfType(typ)
	require.Len(t, rs, 1, typ)
	return rs[0]
}

func TestAvailability(t *testing.T) {
	withOverride := production()
	withOverride.SecondaryZone = "us-central1-c"
	for _, tc := range []struct {
		name                        string
		args                        postgres.Args
		availability, zone, standby string
	}{
		{"production is regional with the standby in the second zone", production(), "REGIONAL", "us-central1-a", "us-central1-b"},
		{"the standby zone can be chosen", withOverride, "REGIONAL", "us-central1-a", "us-central1-c"},
		{"sandbox is zonal without a standby", sandbox(), "ZONAL", "us-central1-a", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := one(t, evaluate(t, tc.args), instanceType)
			assert.Equal(t, tc.availability, db.String("settings.availabilityType"))
			assert.Equal(t, tc.zone, db.String("settings.locationPreference.zone"))
			_, hasStandby := db.Get("settings.locationPreference.secondaryZone")
			if tc.standby == "" {
				assert.False(t, hasStandby, "a ZONAL instance names no secondary zone")
				return
			}
			assert.Equal(t, tc.standby, db.String("settings.locationPreference.secondaryZone"))
			assert.NotEqual(t, db.String("settings.locationPreference.zone"), db.String("settings.locationPreference.secondaryZone"))
		})
	}
}

func TestPrivateIPOnlyWithTLS(t *testing.T) {
	db := one(t, evaluate(t, production()), instanceType)
	ipv4, set := db.Get("settings.ipConfiguration.ipv4Enabled")
	require.True(t, set, "ipv4Enabled must be set explicitly: the API default assigns a public IP")
	assert.Equal(t, false, ipv4)
	assert.Equal(t, networkLink, db.String("settings.ipConfiguration.privateNetwork"))
	assert.Equal(t, "ENCRYPTED_ONLY", db.String("settings.ipConfiguration.sslMode"))
	_, authorized := db.Get("settings.ipConfiguration.authorizedNetworks")
	assert.False(t, authorized, "no network is authorized on a public address")
}

func TestCMEK(t *testing.T) {
	args := production()
	args.KeyRotationDays = 30
	inv, rec := evaluateRecorded(t, args)
	db := one(t, inv, instanceType)
	key := one(t, inv, keyType)
	ring := one(t, inv, ringType)
	grant := one(t, inv, grantType)
	agent := one(t, inv, agentType)

	assert.Equal(t, "us-central1", ring.String("location"), "the key lives in the instance's region")
	assert.Equal(t, ring.Name+"-id", key.String("keyRing"))
	keyID := key.Name + "-id"
	assert.Equal(t, keyID, db.String("encryptionKeyName"))
	assert.Equal(t, "ENCRYPT_DECRYPT", key.String("purpose"))
	rotation, err := strconv.Atoi(strings.TrimSuffix(key.String("rotationPeriod"), "s"))
	require.NoError(t, err)
	assert.Equal(t, 30*86400, rotation)

	assert.Equal(t, "sqladmin.googleapis.com", agent.String("service"))
	assert.Equal(t, keyID, grant.String("cryptoKeyId"))
	assert.Equal(t, "roles/cloudkms.cryptoKeyEncrypterDecrypter", grant.String("role"))
	assert.Equal(t, "serviceAccount:"+agentEmail, grant.String("member"), "the grant goes to Cloud SQL's own identity")
	assert.Contains(t, rec.deps[db.Name], grant.Name, "the instance is created only once Cloud SQL may use the key")
	assert.Contains(t, rec.deps[db.Name], "psa", "the instance waits for private services access")

	def := one(t, evaluate(t, production()), keyType)
	rotation, err = strconv.Atoi(strings.TrimSuffix(def.String("rotationPeriod"), "s"))
	require.NoError(t, err)
	assert.LessOrEqual(t, rotation, 90*86400, "rotation at most every 90 days by default")
}

func TestBackups(t *testing.T) {
	db := one(t, evaluate(t, production()), instanceType)
	assert.True(t, db.Bool("settings.backupConfiguration.enabled"))
	assert.True(t, db.Bool("settings.backupConfiguration.pointInTimeRecoveryEnabled"))
	days, _ := db.Number("settings.backupConfiguration.transactionLogRetentionDays")
	assert.Equal(t, 7.0, days)
	assert.Equal(t, "us", db.String("settings.backupConfiguration.location"))
	kept, _ := db.Number("settings.backupConfiguration.backupRetentionSettings.retainedBackups")
	assert.Equal(t, 30.0, kept)

	// Without a location, backups stay in the instance's region.
	args := production()
	args.Backup = postgres.BackupArgs{}
	db = one(t, evaluate(t, args), instanceType)
	assert.Equal(t, "us-central1", db.String("settings.backupConfiguration.location"))
	kept, _ = db.Number("settings.backupConfiguration.backupRetentionSettings.retainedBackups")
	assert.Equal(t, 7.0, kept)
}

func TestDeletionProtection(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      postgres.Args
		protected bool
	}{{"production", production(), true}, {"sandbox", sandbox(), false}} {
		t.Run(tc.name, func(t *testing.T) {
			inv, rec := evaluateRecorded(t, tc.args)
			db := one(t, inv, instanceType)
			assert.Equal(t, tc.protected, db.Bool("deletionProtection"))
			assert.Equal(t, tc.protected, db.Bool("settings.deletionProtectionEnabled"))
			assert.Equal(t, tc.protected, rec.protect[db.Name])
			assert.Equal(t, tc.protected, rec.protect[one(t, inv, keyType).Name], "the key guards every backup")
			assert.Equal(t, tc.protected, rec.protect[one(t, inv, ringType).Name])
		})
	}
}

func TestSettings(t *testing.T) {
	flags := func(db inventory.Resource) map[string]string {
		v, _ := db.Get("settings.databaseFlags")
		out := map[string]string{}
		for _, f := range v.([]any) {
			m := f.(map[string]any)
			out[m["name"].(string)] = m["value"].(string)
		}
		return out
	}
	db := one(t, evaluate(t, production()), instanceType)
	f := flags(db)
	assert.Equal(t, "500", f["max_connections"], "16 GB tier")
	assert.Equal(t, "-1", f["log_min_duration_statement"], "no statement text in the logs by default")
	assert.Equal(t, "on", f["cloudsql.enable_pgaudit"])
	_, logical := f["cloudsql.logical_decoding"]
	assert.False(t, logical, "logical decoding only for a move")
	moving := production()
	moving.LogicalDecoding = true
	assert.Equal(t, "on", flags(one(t, evaluate(t, moving), instanceType))["cloudsql.logical_decoding"])
	assert.Equal(t, "PD_SSD", db.String("settings.diskType"))
	assert.True(t, db.Bool("settings.diskAutoresize"))
	assert.True(t, db.Bool("settings.insightsConfig.queryInsightsEnabled"))
	assert.Equal(t, "POSTGRES_16", db.String("databaseVersion"))
	assert.Equal(t, "ENTERPRISE", db.String("settings.edition"))
	assert.Equal(t, "production", db.String("settings.userLabels.environment"))
	day, _ := db.Number("settings.maintenanceWindow.day")
	hour, _ := db.Number("settings.maintenanceWindow.hour")
	assert.Equal(t, []float64{6, 2}, []float64{day, hour})

	assert.Equal(t, "100", flags(one(t, evaluate(t, sandbox()), instanceType))["max_connections"], "3.75 GB tier")
	args := production()
	args.MaxConnections, args.LogSlowStatementsMs = 800, 2000
	f = flags(one(t, evaluate(t, args), instanceType))
	assert.Equal(t, "800", f["max_connections"])
	assert.Equal(t, "2000", f["log_min_duration_statement"])
}

func TestAccountResources(t *testing.T) {
	args := production()
	args.RetiredAccounts = []string{"old-shop"}
	inv, rec := evaluateRecorded(t, args)
	all := []string{"northwind", "contoso", "old-shop"}
	for _, typ := range []string{databaseType, userType, secretType, versionType, passwordType} {
		assert.Len(t, inv.OfType(typ), len(all), typ)
	}
	for _, id := range all {
		active := id != "old-shop"
		db, ok := inv.Find(databaseType, "db-db-"+id)
		require.True(t, ok, id)
		user, ok := inv.Find(userType, "db-user-"+id)
		require.True(t, ok, id)
		secret, ok := inv.Find(secretType, "db-secret-"+id)
		require.True(t, ok, id)
		version, ok := inv.Find(versionType, "db-secret-version-"+id)
		require.True(t, ok, id)

		name := "acct_" + strings.ReplaceAll(id, "-", "_")
		assert.Equal(t, name, db.String("name"))
		assert.Equal(t, "oms-prod-us-pg", db.String("instance"))
		assert.Equal(t, name, user.String("name"))
		assert.Equal(t, "BUILT_IN", user.String("type"))
		assert.Equal(t, inventory.Secret, user.String("password"))
		assert.Equal(t, "oms-prod-us-db-"+id, secret.String("secretId"))
		assert.Equal(t, id, secret.String("labels.account"))
		assert.Equal(t, "us-central1", secret.String("replication.userManaged.replicas[0].location"))
		assert.Equal(t, secret.Name+"-id", version.String("secret"))
		assert.Equal(t, inventory.Secret, version.String("secretData"))

		assert.Equal(t, active, rec.protect[db.Name], "database of %s", id)
		assert.Equal(t, active, rec.protect[user.Name], "user of %s", id)
		assert.Equal(t, active, rec.protect[secret.Name], "secret of %s", id)
		want := map[bool]string{true: "ABANDON", false: "DELETE"}[active]
		assert.Equal(t, want, db.String("deletionPolicy"), id)
		assert.Equal(t, want, user.String("deletionPolicy"), id)
		assert.Contains(t, rec.deps[db.Name], user.Name, "the database is dropped before its owner")
	}

	// No input anywhere holds a generated password in clear.
	raw, err := json.Marshal(inv)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "mock-generated-")
}

// byURN indexes an inventory's resource inputs for comparison.
func byURN(t *testing.T, inv *inventory.Inventory) map[string]string {
	out := map[string]string{}
	for _, r := range inv.Resources {
		b, err := json.Marshal(r.Inputs)
		require.NoError(t, err)
		out[r.URN] = string(b)
	}
	return out
}

func TestAccountChangesStayWithTheAccount(t *testing.T) {
	base := production()
	base.Accounts = []string{"alpha", "bravo"}
	before := byURN(t, evaluate(t, base))

	added := base
	added.Accounts = []string{"alpha", "bravo", "charlie"}
	after := byURN(t, evaluate(t, added))
	for urn, inputs := range before {
		require.Contains(t, after, urn, "adding an account must not rename or remove anything")
		assert.Equal(t, inputs, after[urn], "adding an account changed %s", urn)
	}
	var addedNames []string
	for urn := range after {
		if _, ok := before[urn]; !ok {
			addedNames = append(addedNames, urn[strings.LastIndex(urn, "::")+2:])
		}
	}
	assert.ElementsMatch(t, []string{
		"db-password-charlie", "db-user-charlie", "db-db-charlie", "db-secret-charlie", "db-secret-version-charlie",
	}, addedNames)

	// Retiring an account keeps every resource in place and changes only that account's.
	retired := base
	retired.Accounts, retired.RetiredAccounts = []string{"alpha"}, []string{"bravo"}
	after = byURN(t, evaluate(t, retired))
	assert.Len(t, after, len(before))
	for urn, inputs := range before {
		require.Contains(t, after, urn)
		if !strings.HasSuffix(urn, "-bravo") {
			assert.Equal(t, inputs, after[urn], "retiring bravo changed %s", urn)
		}
	}
}

// TestIncomingAccountsAreDeclaredAsActiveOnes: an account moving onto the instance has exactly the resources,
// inputs and protection it will have once placed there, so recording the move changes nothing of them; it is not one
// of the instance's Accounts yet, whose passwords the runtime's wiring reads.
func TestIncomingAccountsAreDeclaredAsActiveOnes(t *testing.T) {
	placed := production()
	placed.Accounts = []string{"alpha", "bravo"}
	incoming := production()
	incoming.Accounts, incoming.IncomingAccounts = []string{"alpha"}, []string{"bravo"}
	invPlaced, recPlaced := evaluateRecorded(t, placed)
	invIncoming, recIncoming := evaluateRecorded(t, incoming)
	assert.Equal(t, byURN(t, invPlaced), byURN(t, invIncoming))
	assert.Equal(t, recPlaced.protect, recIncoming.protect)
	for _, name := range []string{"db-db-bravo", "db-user-bravo", "db-password-bravo", "db-secret-bravo"} {
		assert.True(t, recIncoming.protect[name], name)
	}

	var ids []string
	require.NoError(t, pulumi.RunErr(func(ctx *pulumi.Context) error {
		psa, err := privateServices(ctx)
		if err != nil {
			return err
		}
		incoming.PrivateServices = psa
		p, err := postgres.New(ctx, "db", &incoming)
		if err != nil {
			return err
		}
		ids = slices.Sorted(maps.Keys(p.Accounts))
		return nil
	}, pulumi.WithMocks("omscloud", "test", &inventory.Mocks{Project: "omscloud", Stack: "test"})))
	assert.Equal(t, []string{"alpha"}, ids, "bravo is not the instance's yet")

	both := production()
	both.IncomingAccounts = []string{"contoso"}
	assert.ErrorContains(t, both.Validate(), `IncomingAccounts[0] "contoso" is also in Accounts`)
}

func TestOutputs(t *testing.T) {
	type seen struct {
		instance, conn, ip, db, user, secret, ca string
		caSecret                                 bool
	}
	got := make(chan seen, 1)
	args := production()
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		psa, err := privateServices(ctx)
		if err != nil {
			return err
		}
		args.PrivateServices = psa
		p, err := postgres.New(ctx, "db", &args)
		if err != nil {
			return err
		}
		require.Len(t, p.Accounts, 2)
		acct := p.Accounts["contoso"]
		// The server CA (the runtime's sslmode=verify-ca) is in the clear: pulumi-gcp marks serverCaCerts secret,
		// and a secret would end up hidden in the runtime's ConfigMap.
		caSecret := pulumi.IsSecret(p.ServerCA)
		pulumi.All(p.InstanceName, p.ConnectionName, p.PrivateIP, acct.Database, acct.User, acct.PasswordSecret, p.ServerCA).ApplyT(func(v []any) error {
			got <- seen{v[0].(string), v[1].(string), v[2].(string), v[3].(string), v[4].(string), v[5].(string), v[6].(string), caSecret}
			return nil
		})
		return nil
	}, pulumi.WithMocks("omscloud", "test", &inventory.Mocks{Project: "omscloud", Stack: "test"}))
	require.NoError(t, err)
	s := <-got
	assert.Equal(t, seen{
		instance: "oms-prod-us-pg", conn: "omscloud-prod-us:region:oms-prod-us-pg", ip: "10.30.0.3",
		db: "acct_contoso", user: "acct_contoso", secret: "db-secret-contoso-id",
		ca: "-----BEGIN CERTIFICATE-----\nmock server CA of oms-prod-us-pg\n-----END CERTIFICATE-----\n",
	}, s)
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*postgres.Args)
		want   string
	}{
		{"duplicate account", func(a *postgres.Args) { a.Accounts = []string{"contoso", "contoso"} }, `Accounts[1] "contoso" is listed twice`},
		{"account both active and retired", func(a *postgres.Args) { a.RetiredAccounts = []string{"contoso"} }, `RetiredAccounts[0] "contoso" is also in Accounts`},
		{"invalid account id", func(a *postgres.Args) { a.Accounts = []string{"Contoso_1"} }, `Accounts[0] "Contoso_1" is not an account id`},
		{"short account id", func(a *postgres.Args) { a.Accounts = []string{"ab"} }, `Accounts[0] "ab" is not an account id`},
		{"zonal with a secondary zone", func(a *postgres.Args) { a.Availability, a.SecondaryZone = postgres.Zonal, "us-central1-b" }, "SecondaryZone \"us-central1-b\" is set on a ZONAL instance"},
		{"same primary and secondary zone", func(a *postgres.Args) { a.Zones = []string{"us-central1-a", "us-central1-a"} }, "the secondary zone \"us-central1-a\" is the primary zone"},
		{"secondary zone override equal to primary", func(a *postgres.Args) { a.SecondaryZone = "us-central1-a" }, "is the primary zone"},
		{"regional with one zone", func(a *postgres.Args) { a.Zones = a.Zones[:1] }, "REGIONAL needs a primary and a secondary zone"},
		{"zone outside the region", func(a *postgres.Args) { a.Zones[1] = "europe-west1-b" }, `Zones[1] "europe-west1-b" is not a zone of region us-central1`},
		{"unknown availability", func(a *postgres.Args) { a.Availability = "MULTI" }, `Availability "MULTI"`},
		{"no network", func(a *postgres.Args) { a.Network = nil }, "Network is required"},
		{"unsized tier", func(a *postgres.Args) { a.Tier = "db-custom-4" }, `Tier: "db-custom-4" is not a Cloud SQL tier`},
		{"log retention beyond enterprise", func(a *postgres.Args) { a.Backup.TransactionLogRetentionDays = 14 }, "TransactionLogRetentionDays is 14"},
		{"slow key rotation", func(a *postgres.Args) { a.KeyRotationDays = 365 }, "KeyRotationDays is 365"},
		{"maintenance day", func(a *postgres.Args) { a.Maintenance.Day = 0 }, "Maintenance.Day is 0"},
		{"bad name", func(a *postgres.Args) { a.Name = "OMS" }, `Name "OMS"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := production()
			tc.change(&args)
			err := args.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)

			// New refuses before declaring anything.
			assert.Empty(t, evaluateErr(t, args).Resources[1:], "only the test's private services connection is declared")
		})
	}
	ok := production()
	ok.PrivateServices = &servicenetworking.Connection{}
	assert.NoError(t, ok.Validate())
}

// evaluateErr runs a program that is expected to fail and returns what it declared before failing.
func evaluateErr(t *testing.T, args postgres.Args) *inventory.Inventory {
	t.Helper()
	mocks := &inventory.Mocks{Project: "omscloud", Stack: "test"}
	require.Error(t, pulumi.RunErr(program(args), pulumi.WithMocks("omscloud", "test", mocks)))
	return inventory.New("test", mocks.Resources())
}

// A database cell is another instance of the component: cell main keeps the names of an environment without cells,
// another cell's names carry it, and the alert pattern selects every cell's instances of every DR generation.
func TestCellNames(t *testing.T) {
	assert.Equal(t, "oms-prod-eu", postgres.CellName("oms-prod-eu", postgres.MainCell))
	assert.Equal(t, "oms-prod-eu-b", postgres.CellName("oms-prod-eu", "b"))
	assert.Equal(t, "oms-prod-eu-b-pg", postgres.InstanceName(postgres.CellName("oms-prod-eu", "b")))

	assert.Equal(t, postgres.InstancePattern("oms-prod-eu"), postgres.InstancePattern("oms-prod-eu", postgres.MainCell),
		"cell main alone is the one instance")
	assert.Equal(t, `oms-prod-eu-pg(-[0-9a-f]+)?`, postgres.InstancePattern("oms-prod-eu"))
	cells := regexp.MustCompile("^(?:" + postgres.InstancePattern("oms-prod-eu", postgres.MainCell, "b") + ")$")
	for _, name := range []string{"oms-prod-eu-pg", "oms-prod-eu-b-pg", "oms-prod-eu-pg-0a1b2c", "oms-prod-eu-b-pg-0a1b2c"} {
		assert.Regexp(t, cells, name)
	}
	for _, name := range []string{"oms-prod-eu-c-pg", "oms-prod-eu-dr-pg-0a1b2c", "oms-prod-eu-dr-b-pg-0a1b2c", "xoms-prod-eu-pg"} {
		assert.NotRegexp(t, cells, name)
	}
}

// The cells of an environment share the project's one Cloud SQL service agent: given, it is granted the cell's key
// and not looked up again.
func TestServiceAgentGiven(t *testing.T) {
	args := production()
	args.Name = "oms-prod-us-b"
	args.ServiceAgent = pulumi.String("service-42@gcp-sa-cloud-sql.iam.gserviceaccount.com")
	inv := evaluate(t, args)
	assert.Empty(t, inv.OfType(agentType), "no second service identity")
	assert.Equal(t, "serviceAccount:service-42@gcp-sa-cloud-sql.iam.gserviceaccount.com", one(t, inv, grantType).String("member"))
	assert.Equal(t, "oms-prod-us-b-pg", one(t, inv, instanceType).String("name"))
	assert.Equal(t, "oms-prod-us-b-sql", one(t, inv, ringType).String("name"))
}
