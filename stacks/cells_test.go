package stacks

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/components/postgres"
	"github.com/omscloud/omscloud/inventory"
	runtimepg "github.com/omscloud/omscloud/runtime/postgres"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// twoCells is a valid database setting with cells main and b, for base()'s accounts plus northwind.
const twoCells = `{"cells":[{"name":"main"},{"name":"b","tier":"db-custom-8-32768","diskSizeGb":200}],` +
	`"placement":{"main":["tailspin"],"b":["northwind"]},"defaultCell":"b"}`

func withCells(database string) map[string]string {
	return with(map[string]string{"omscloud:accounts": `["tailspin","northwind"]`, "omscloud:database": database})
}

func TestCellsConfig(t *testing.T) {
	cfg, err := ParseConfig("prod-eu", withCells(twoCells), nil)
	require.NoError(t, err)
	cells := cfg.cells()
	require.Len(t, cells, 2)
	assert.Equal(t, Cell{Name: "main", Size: DatabaseSize{Tier: "db-custom-4-16384", DiskSizeGB: 100}, Accounts: []string{"tailspin"}}, cells[0],
		"main keeps the environment's sizing")
	assert.Equal(t, Cell{Name: "b", Size: DatabaseSize{Tier: "db-custom-8-32768", DiskSizeGB: 200}, Accounts: []string{"northwind"}}, cells[1])
	assert.Equal(t, "b", cfg.Database.DefaultCell)

	// main need not come first: the instance it names is found by its name, never by its place in the list.
	cfg, err = ParseConfig("prod-eu", withCells(`{"cells":[{"name":"b"},{"name":"main"}],"placement":{"main":["tailspin","northwind"]}}`), nil)
	require.NoError(t, err)
	cells = cfg.cells()
	assert.Equal(t, []string{"main", "b"}, []string{cells[0].Name, cells[1].Name})
	assert.Equal(t, "main", cfg.Database.DefaultCell, "the default cell defaults to main")
	assert.Equal(t, DatabaseSize{Tier: "db-custom-4-16384", DiskSizeGB: 100}, cells[1].Size, "a cell without sizes takes sizing.database")
	assert.Empty(t, cells[1].Accounts, "a new cell starts empty")

	// Retired accounts stay on the cell that holds their database until they are deleted.
	cfg, err = ParseConfig("prod-eu", withCells(`{"cells":[{"name":"main"},{"name":"b"}],"placement":{"main":["tailspin"],"b":["northwind","contoso"]},"retiredAccounts":["contoso"]}`), nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"contoso"}, cfg.cells()[1].RetiredAccounts)
}

func TestWithoutCellsOneInstanceHostsEveryAccount(t *testing.T) {
	cfg, err := ParseConfig("prod-eu", with(map[string]string{"omscloud:accounts": `["tailspin","northwind"]`,
		"omscloud:database": `{"retiredAccounts":["contoso"]}`}), nil)
	require.NoError(t, err)
	assert.Equal(t, []Cell{{Name: "main", Size: cfg.Sizing.Database, Accounts: []string{"tailspin", "northwind"}, RetiredAccounts: []string{"contoso"}}}, cfg.cells())
	assert.Empty(t, cfg.Database.DefaultCell, "nothing to render for the runtime: one instance")
}

// Every cell problem is named under the key to change, with the fix; `pulumi up` and `omsctl plan` share this
// validation (TestBothDoorsRefuseTheSameConfig).
func TestCellValidation(t *testing.T) {
	tests := []struct {
		name     string
		accounts string // accounts, when not tailspin and northwind
		database string
		key      string
		mention  []string // the problem and its fix
	}{
		{name: "unknown cell in placement",
			database: `{"cells":[{"name":"main"},{"name":"b"}],"placement":{"main":["tailspin"],"c":["northwind"]}}`,
			key:      "omscloud:database.placement.c",
			mention:  []string{`cell "c" is not in database.cells (main, b)`, "list its accounts (northwind) under a cell of database.cells"}},
		{name: "cell removed while accounts are still placed in it",
			database: `{"cells":[{"name":"main"}],"placement":{"main":["tailspin"],"b":["northwind"]}}`,
			key:      "omscloud:database.placement.b",
			mention:  []string{`cell "b" is not in database.cells (main)`, "If you removed cell b, its accounts' databases are still on it: put it back in database.cells"}},
		{name: "cell emptied while its accounts are still in accounts",
			database: `{"cells":[{"name":"main"},{"name":"b"}],"placement":{"main":["tailspin"],"b":[]}}`,
			key:      "omscloud:database.placement",
			mention:  []string{`account "northwind" (accounts[1]) is in no cell`, "list it under the cell that holds its database, e.g. database: {placement: {main: [..., northwind]}}", "never moved by default"}},
		{name: "account not placed",
			accounts: `["tailspin","northwind","contoso"]`,
			database: `{"cells":[{"name":"main"},{"name":"b"}],"placement":{"main":["tailspin"],"b":["northwind"]},"defaultCell":"b"}`,
			key:      "omscloud:database.placement",
			mention:  []string{`account "contoso" (accounts[2]) is in no cell`, "e.g. database: {placement: {b: [..., contoso]}}", "database.defaultCell places only the accounts the runtime creates itself"}},
		{name: "retired account not placed",
			database: `{"cells":[{"name":"main"}],"placement":{"main":["tailspin","northwind"]},"retiredAccounts":["contoso"]}`,
			key:      "omscloud:database.placement",
			mention:  []string{`account "contoso" (database.retiredAccounts[0]) is in no cell`, "database: {placement: {main: [..., contoso]}}"}},
		{name: "account placed in two cells",
			database: `{"cells":[{"name":"main"},{"name":"b"}],"placement":{"main":["tailspin","northwind"],"b":["northwind"]}}`,
			key:      "omscloud:database.placement.main[1]",
			mention:  []string{`"northwind" is also placed in cell b`, "its database is on exactly one cell: remove it from the cell that does not hold it"}},
		{name: "account listed twice in one cell",
			database: `{"cells":[{"name":"main"}],"placement":{"main":["tailspin","northwind","tailspin"]}}`,
			key:      "omscloud:database.placement.main[2]",
			mention:  []string{`"tailspin" is listed twice`, "remove one"}},
		{name: "placed account that the stack does not host",
			database: `{"cells":[{"name":"main"}],"placement":{"main":["tailspin","northwind","globex"]}}`,
			key:      "omscloud:database.placement.main[2]",
			mention:  []string{`"globex" is in neither accounts nor database.retiredAccounts`, "remove it from the placement, or add it to accounts"}},
		{name: "placed account id that is no account id",
			database: `{"cells":[{"name":"main"}],"placement":{"main":["tailspin","northwind","Globex"]}}`,
			key:      "omscloud:database.placement.main[2]",
			mention:  []string{`"Globex" is not a valid account id`, "3-31 characters"}},
		{name: "invalid cell name",
			database: `{"cells":[{"name":"main"},{"name":"Cell-2"}],"placement":{"main":["tailspin","northwind"]}}`,
			key:      "omscloud:database.cells[1].name",
			mention:  []string{`"Cell-2" is not a cell name`, "1-9 lowercase letters and digits, starting with a letter", "oms-prod-eu-<cell>-pg"}},
		{name: "cell name too long for the instance names",
			database: `{"cells":[{"name":"main"},{"name":"europewest"}],"placement":{"main":["tailspin","northwind"]}}`,
			key:      "omscloud:database.cells[1].name",
			mention:  []string{`"europewest" is not a cell name`, "1-9 lowercase letters"}},
		{name: "cell without a name",
			database: `{"cells":[{"name":"main"},{"tier":"db-custom-8-32768"}],"placement":{"main":["tailspin","northwind"]}}`,
			key:      "omscloud:database.cells[1].name",
			mention:  []string{"is required", "name the cell, e.g. b"}},
		{name: "cell named like the DR environment",
			database: `{"cells":[{"name":"main"},{"name":"dr"}],"placement":{"main":["tailspin","northwind"]}}`,
			key:      "omscloud:database.cells[1].name",
			mention:  []string{`"dr" is reserved`, "oms-prod-eu-dr-", "pick another name"}},
		{name: "cell named like the password secrets",
			database: `{"cells":[{"name":"main"},{"name":"db"}],"placement":{"main":["tailspin","northwind"]}}`,
			key:      "omscloud:database.cells[1].name",
			mention:  []string{`"db" is reserved`, "oms-prod-eu-db-<account>", "pick another name"}},
		{name: "duplicate cells",
			database: `{"cells":[{"name":"main"},{"name":"b"},{"name":"b","tier":"db-custom-8-32768"}],"placement":{"main":["tailspin","northwind"]}}`,
			key:      "omscloud:database.cells[2].name",
			mention:  []string{`"b" is listed twice`, "each cell is one Cloud SQL instance: merge the two entries"}},
		{name: "no main cell",
			database: `{"cells":[{"name":"b"}],"placement":{"b":["tailspin","northwind"]}}`,
			key:      "omscloud:database.cells",
			mention:  []string{`has no cell "main"`, "oms-prod-eu-pg", "runtime's control database", "add {name: main}"}},
		{name: "default cell missing",
			database: `{"cells":[{"name":"main"}],"placement":{"main":["tailspin","northwind"]},"defaultCell":"b"}`,
			key:      "omscloud:database.defaultCell",
			mention:  []string{`"b" is not in database.cells (main)`, "name one of them, or remove the setting for main"}},
		{name: "placement without cells",
			database: `{"placement":{"main":["tailspin","northwind"]}}`,
			key:      "omscloud:database.placement",
			mention:  []string{"is set without database.cells", "declare the cells first, e.g. database: {cells: [{name: main}, {name: b}]}"}},
		{name: "default cell without cells",
			database: `{"defaultCell":"main"}`,
			key:      "omscloud:database.defaultCell",
			mention:  []string{"is set without database.cells", "remove it"}},
		{name: "cell tier",
			database: `{"cells":[{"name":"main"},{"name":"b","tier":"n2-standard-8"}],"placement":{"main":["tailspin","northwind"]}}`,
			key:      "omscloud:database.cells[1].tier",
			mention:  []string{`"n2-standard-8" is not a Cloud SQL tier`, "remove it to use sizing.database.tier (db-custom-4-16384)"}},
		{name: "cell disk",
			database: `{"cells":[{"name":"main"},{"name":"b","diskSizeGb":5}],"placement":{"main":["tailspin","northwind"]}}`,
			key:      "omscloud:database.cells[1].diskSizeGb",
			mention:  []string{"is 5: Cloud SQL needs at least 10 GB", "remove it to use sizing.database.diskSizeGb (100)"}},
		{name: "unknown cell field",
			database: `{"cells":[{"name":"main","availability":"ZONAL"}],"placement":{"main":["tailspin","northwind"]}}`,
			key:      "omscloud:database",
			mention:  []string{`unknown field "availability"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			accounts := tt.accounts
			if accounts == "" {
				accounts = `["tailspin","northwind"]`
			}
			_, err := ParseConfig("prod-eu", with(map[string]string{"omscloud:accounts": accounts, "omscloud:database": tt.database}), nil)
			require.Error(t, err)
			got := problems(t, err)
			require.Contains(t, got, tt.key, "problems: %v", got)
			for _, m := range tt.mention {
				assert.Contains(t, got[tt.key], m)
			}
			assert.Len(t, got, 1, "one problem, under the key to change: %v", got)
		})
	}
}

// TestEveryCellIsTheOneInstanceAgain: each cell of the two-cell test stack is declared like the one instance of a
// stack without cells (REGIONAL, CMEK of its own, PITR, private IP, deletion protection), at its own size, and
// holds exactly the accounts placed on it.
func TestEveryCellIsTheOneInstanceAgain(t *testing.T) {
	cfg, inv := plan(t, "prod-eu-cells")
	instances := map[string]inventory.Resource{}
	for _, r := range inv.OfType("gcp:sql/databaseInstance:DatabaseInstance") {
		instances[r.String("name")] = r
	}
	require.Len(t, instances, 2)
	main, b := instances["oms-prod-eu-pg"], instances["oms-prod-eu-b-pg"]
	require.NotEmpty(t, main.Name, "cell main keeps the name of the stack's first instance")
	require.NotEmpty(t, b.Name, "cell b is <prefix>-b-pg")
	assert.Equal(t, "oms-prod-eu-postgres-instance", main.Name, "and its logical name (URN)")
	assert.Equal(t, "db-custom-4-16384", main.String("settings.tier"))
	assert.Equal(t, "db-custom-8-32768", b.String("settings.tier"))
	assert.Equal(t, 200.0, must(b.Number("settings.diskSize")))
	for _, db := range []inventory.Resource{main, b} {
		assert.Equal(t, "REGIONAL", db.String("settings.availabilityType"), db.Name)
		assert.NotEqual(t, db.String("settings.locationPreference.zone"), db.String("settings.locationPreference.secondaryZone"), db.Name)
		assert.True(t, db.Bool("settings.backupConfiguration.pointInTimeRecoveryEnabled"), db.Name)
		assert.Equal(t, "eu", db.String("settings.backupConfiguration.location"), db.Name)
		assert.False(t, db.Bool("settings.ipConfiguration.ipv4Enabled"), db.Name)
		assert.NotEmpty(t, db.String("settings.ipConfiguration.privateNetwork"), db.Name)
		assert.True(t, db.Bool("deletionProtection"), db.Name)
		assert.True(t, db.Bool("settings.deletionProtectionEnabled"), db.Name)
	}
	assert.Equal(t, "oms-prod-eu-postgres-key-id", main.String("encryptionKeyName"))
	assert.Equal(t, "oms-prod-eu-b-postgres-key-id", b.String("encryptionKeyName"), "each cell has its own key")
	agent := only(t, inv, "gcp:projects/serviceIdentity:ServiceIdentity")
	assert.Equal(t, "sqladmin.googleapis.com", agent.String("service"), "one Cloud SQL service agent, granted every cell's key")
	grants := 0
	for _, g := range inv.OfType("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember") {
		if strings.HasSuffix(g.Name, "-key-sql-agent") {
			grants++
			assert.Equal(t, "serviceAccount:service-123456789@gcp-sa-sqladmin.iam.gserviceaccount.com", g.String("member"), g.Name)
		}
	}
	assert.Equal(t, 2, grants, "a key per cell")

	// Databases and users are created on the instance of the account's cell; retired ones stay there, unprotected.
	want := map[string]string{}
	for _, cell := range cfg.cells() {
		for _, a := range append(slices.Clone(cell.Accounts), cell.RetiredAccounts...) {
			want[postgres.DatabaseName(a)] = postgres.InstanceName(postgres.CellName(cfg.NamePrefix(), cell.Name))
		}
	}
	got := map[string]string{}
	for _, typ := range []string{"gcp:sql/database:Database", "gcp:sql/user:User"} {
		for _, r := range inv.OfType(typ) {
			if r.String("name") != "oms" {
				got[r.String("name")] = r.String("instance")
				assert.Equal(t, r.String("name") == "acct_contoso", r.String("deletionPolicy") == "DELETE", r.Name)
			}
		}
	}
	assert.Equal(t, want, got)
	assert.Equal(t, map[string]string{"acct_tailspin": "oms-prod-eu-pg", "acct_adventureworks": "oms-prod-eu-pg",
		"acct_northwind": "oms-prod-eu-b-pg", "acct_contoso": "oms-prod-eu-b-pg"}, got)
	control, ok := inv.Find("gcp:sql/database:Database", "oms-prod-eu-runtime-db")
	require.True(t, ok)
	assert.Equal(t, "oms-prod-eu-pg", control.String("instance"), "the control database stays on main")

	// The backups read every account's password, on whichever cell.
	var readable []string
	for _, m := range inv.OfType("gcp:secretmanager/secretIamMember:SecretIamMember") {
		readable = append(readable, m.String("secretId"))
	}
	assert.Contains(t, readable, "oms-prod-eu-b-postgres-secret-northwind-id")
	assert.Contains(t, readable, "oms-prod-eu-postgres-secret-tailspin-id")

	// The database alerts watch both instances, of every DR generation too.
	for _, sel := range databaseSelectors(t, inv) {
		for _, name := range []string{"oms-prod-eu-pg", "oms-prod-eu-b-pg", "oms-prod-eu-b-pg-0a1b2c"} {
			assert.Regexp(t, sel, "omscloud-prod-eu-cells:"+name)
		}
		assert.NotRegexp(t, sel, "omscloud-prod-eu-cells:oms-prod-eu-dr-pg", "not the DR environment's")
	}
}

// TestTheRuntimeFindsEveryCell: every pod of the oms image gets each cell's host and CA file and the default cell
// (README of components/omsruntime, "Database cells"); the migrate Job alone gets each account's cell, which it
// records in the registry. A stack without cells renders none of it.
func TestTheRuntimeFindsEveryCell(t *testing.T) {
	_, inv := plan(t, "prod-eu-cells")
	config := kubeObject(t, inv, "kubernetes:core/v1:ConfigMap", "oms-prod-eu-runtime")
	var cells map[string]runtimepg.Cell
	require.NoError(t, json.Unmarshal([]byte(config.String("data.OMS_DB_CELLS")), &cells))
	assert.Equal(t, map[string]runtimepg.Cell{
		"main": {Host: "10.30.0.3", CAFile: "/etc/oms/db-ca/server-ca-main.pem"},
		"b":    {Host: "10.30.0.3", CAFile: "/etc/oms/db-ca/server-ca-b.pem"}, // the mocks give every instance one IP
	}, cells)
	assert.Equal(t, "b", config.String("data.OMS_DB_DEFAULT_CELL"))
	assert.Equal(t, omsruntime.DatabaseCAFile, config.String("data.OMS_DB_CA_FILE"), "the control database's CA, as before")

	ca := kubeObject(t, inv, "kubernetes:core/v1:ConfigMap", "oms-prod-eu-db-ca")
	assert.Contains(t, ca.String(`data.server-ca-b\.pem`), "mock server CA of oms-prod-eu-b-pg")
	assert.Contains(t, ca.String(`data.server-ca-main\.pem`), "mock server CA of oms-prod-eu-pg")
	assert.Equal(t, ca.String(`data.server-ca\.pem`), ca.String(`data.server-ca-main\.pem`))

	var migrations int
	for _, job := range inv.OfType("kubernetes:batch/v1:Job") {
		if !strings.Contains(job.Name, "-migrate-") {
			continue
		}
		migrations++
		env, _ := job.Get("spec.template.spec.containers[0].env")
		assert.Contains(t, env, map[string]any{"name": omsruntime.EnvAccountCells,
			"value": `{"adventureworks":"main","northwind":"b","tailspin":"main"}`}, "active accounts only: contoso is retired")
	}
	assert.Positive(t, migrations)
	for _, d := range inv.OfType("kubernetes:apps/v1:Deployment") {
		assert.NotContains(t, fmt.Sprint(d.Inputs), omsruntime.EnvAccountCells, "%s reads an account's cell from the registry", d.Name)
	}

	_, single := plan(t, "prod-eu")
	config = kubeObject(t, single, "kubernetes:core/v1:ConfigMap", "oms-prod-eu-runtime")
	for _, k := range []string{omsruntime.EnvDatabaseCells, omsruntime.EnvDefaultCell} {
		_, set := config.Get("data." + k)
		assert.False(t, set, "one instance: no %s", k)
	}
}

// TestTheControlLoginIsOnEveryCell: the runtime's control login (omscloud:runtime's database name, "oms") is on
// every cell's instance, with the control password, protected and abandoned like main's (README of
// components/omsruntime, "Database cells"): the runtime connects as it to database postgres on cell b. The runtime's
// Secret, and with it the roll of the pods, waits for every cell's login, and rotation.database updates each in place:
// one password is regenerated and no login changes an input that replaces a Cloud SQL user.
func TestTheControlLoginIsOnEveryCell(t *testing.T) {
	sf := stackFile(t, "prod-eu-cells")
	_, inv, err := Plan(sf)
	require.NoError(t, err)
	logins := map[string]inventory.Resource{}
	for _, u := range inv.OfType("gcp:sql/user:User") {
		if u.String("name") == "oms" {
			logins[u.String("instance")] = u
		}
	}
	require.Len(t, logins, 2, "one login per cell")
	assert.Equal(t, "oms-prod-eu-runtime-db-user", logins["oms-prod-eu-pg"].Name, "main's keeps its name")
	assert.Equal(t, "oms-prod-eu-runtime-db-user-b", logins["oms-prod-eu-b-pg"].Name)
	secret := kubeObject(t, inv, "kubernetes:core/v1:Secret", "oms-prod-eu-runtime")
	for _, u := range logins {
		assert.Equal(t, inventory.Secret, u.String("password"), u.Name)
		assert.Equal(t, "BUILT_IN", u.String("type"), u.Name)
		assert.Equal(t, "ABANDON", u.String("deletionPolicy"), u.Name)
		assert.True(t, u.Protected, "%s: protected in production", u.Name)
		assert.True(t, secret.Waits(inv, u.Type, u.Name), "the runtime's Secret waits for %s", u.Name)
	}

	sf.Values["omscloud:rotation"] = `{"database":1}`
	_, rotated, err := Plan(sf)
	require.NoError(t, err)
	var regenerated []string
	for _, r := range rotated.OfType("random:index/randomPassword:RandomPassword") {
		if k, ok := r.Get("keepers"); ok && k != nil {
			regenerated = append(regenerated, r.Name)
		}
	}
	assert.Equal(t, []string{"oms-prod-eu-runtime-db-password"}, regenerated, "one control password for every cell")
	for _, u := range logins {
		after, ok := rotated.Find(u.Type, u.Name)
		require.True(t, ok, u.Name)
		for _, path := range []string{"name", "instance", "host", "project", "type"} { // enginetest's replace table
			was, _ := u.Get(path)
			is, _ := after.Get(path)
			assert.Equal(t, was, is, "%s: %s is kept, so the rotation updates it in place", u.Name, path)
		}
		assert.True(t, after.Protected, u.Name)
	}
}

// TestAddingACellKeepsTheFirstInstance: a stack that declares cells keeps every resource it had, under the same
// name (a renamed instance would be replaced, and its data lost); cell main alone changes nothing at all, and a
// new cell only adds its own resources and tells the runtime.
func TestAddingACellKeepsTheFirstInstance(t *testing.T) {
	sf := stackFile(t, "prod-eu")
	_, before, err := Plan(sf)
	require.NoError(t, err)

	sf.Values["omscloud:database"] = `{"cells":[{"name":"main"}],"placement":{"main":["tailspin","adventureworks"]}}`
	_, mainOnly, err := Plan(sf)
	require.NoError(t, err)
	assert.Equal(t, planChange{}, changeOf(before, mainOnly), "cells: [main] is the stack as it was")

	sf.Values["omscloud:database"] = `{"cells":[{"name":"main"},{"name":"b"}],"placement":{"main":["tailspin","adventureworks"]},"defaultCell":"b"}`
	_, after, err := Plan(sf)
	require.NoError(t, err)
	change := changeOf(before, after)
	assert.Empty(t, change.removed, "every resource is kept under its name")
	for _, r := range change.added {
		// The runtime's control login on cell b is the runtime's (omsruntime.CellLoginName).
		assert.True(t, strings.HasPrefix(r.Name, "oms-prod-eu-b-") || r.Name == omsruntime.CellLoginName("oms-prod-eu-runtime", "b"),
			"only cell b's resources are new: %s %s", r.Type, r.Name)
	}
	var changed []string
	for _, r := range change.changed {
		changed = append(changed, r.Name)
	}
	// The runtime learns of cell b (its pods roll to read it); the database alerts watch it.
	assert.ElementsMatch(t, []string{
		"oms-prod-eu-runtime-config", "oms-prod-eu-runtime-db-ca",
		"oms-prod-eu-runtime-web-blue", "oms-prod-eu-runtime-web-green", "oms-prod-eu-runtime-worker",
		"oms-prod-eu-observability-omsdatabasedown", "oms-prod-eu-observability-omsdatabasecpuhigh",
		"oms-prod-eu-observability-omsdatabasediskfull", "oms-prod-eu-observability-omsdatabasefailoverunavailable",
		"oms-prod-eu-observability-dashboard",
	}, filterPrefix(changed, "oms-prod-eu-runtime-migrate-"))
}

func filterPrefix(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if !strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

func must(v float64, ok bool) float64 {
	if !ok {
		return -1
	}
	return v
}

// kubeObject finds a Kubernetes object by its metadata.name.
func kubeObject(t *testing.T, inv *inventory.Inventory, typ, name string) inventory.Resource {
	t.Helper()
	r, ok := inv.Object(typ, name)
	require.True(t, ok, "no %s named %s", typ, name)
	return r
}

// databaseSelectors are the database_id selectors of the database alerts, as regular expressions over
// "<project>:<instance>".
func databaseSelectors(t *testing.T, inv *inventory.Inventory) []*regexp.Regexp {
	t.Helper()
	var out []*regexp.Regexp
	for _, p := range inv.OfType("gcp:monitoring/alertPolicy:AlertPolicy") {
		query := p.String("conditions[0].conditionPrometheusQueryLanguage.query")
		m := regexp.MustCompile(`database_id(=~?)"([^"]*)"`).FindStringSubmatch(query)
		if m == nil {
			continue
		}
		pattern := regexp.QuoteMeta(m[2])
		if m[1] == "=~" {
			pattern = strings.ReplaceAll(m[2], `\\`, `\`) // the query quotes the expression like a Go string
		}
		out = append(out, regexp.MustCompile("^(?:"+pattern+")$"))
	}
	require.NotEmpty(t, out, "the database alerts are declared")
	return out
}

// primaryOutputs are the outputs of a deployed prod-eu-cells: litware was added to cell b after the stack file was
// read.
func primaryOutputs(accountCells map[string]string, accounts ...string) resource.PropertyMap {
	out := resource.PropertyMap{
		OutputBackupURL:       resource.NewProperty("gs://oms-prod-eu-backups"),
		OutputBackupKeySecret: resource.NewProperty("projects/omscloud-prod-eu-cells/secrets/oms-prod-eu-backup-key"),
		OutputCertificateMap:  resource.NewProperty(prodEUCertificateMap),
	}
	var list []resource.PropertyValue
	for _, a := range accounts {
		list = append(list, resource.NewProperty(a))
	}
	out[OutputAccounts] = resource.NewProperty(list)
	if accountCells != nil {
		cells := resource.PropertyMap{}
		for a, cell := range accountCells {
			cells[resource.PropertyKey(a)] = resource.NewProperty(cell)
		}
		out[OutputAccountCells] = resource.NewObjectProperty(cells)
	}
	return out
}

// TestDRRestoresEveryCell: the DR environment declares every cell, each instance named for its own generation, with
// the accounts where the primary's last state had them, and the restore reaches them all.
func TestDRRestoresEveryCell(t *testing.T) {
	mocks, err := runDROf(t, "prod-eu-cells", primaryOutputs(map[string]string{
		"tailspin": "main", "adventureworks": "main", "northwind": "b", "litware": "b",
	}, "tailspin", "adventureworks", "northwind", "litware"), map[string]string{DRKeyRestore: "1"})
	require.NoError(t, err)
	inv := inventory.New("prod-eu-cells-dr", mocks.Resources())

	var generations []string
	for _, r := range inv.OfType("random:index/randomId:RandomId") {
		generations = append(generations, r.Name)
	}
	assert.ElementsMatch(t, []string{"oms-prod-eu-dr-generation", "oms-prod-eu-dr-b-generation"}, generations,
		"a generation per cell: main's keeps its name")
	const hex = "00112233445566778899aabbccddeeff" // the mocks' random id
	onCell := map[string]string{}
	for _, db := range inv.OfType("gcp:sql/database:Database") {
		onCell[db.String("name")] = db.String("instance")
	}
	assert.Equal(t, map[string]string{
		"oms":                 "oms-prod-eu-dr-pg-" + hex,
		"acct_tailspin":       "oms-prod-eu-dr-pg-" + hex,
		"acct_adventureworks": "oms-prod-eu-dr-pg-" + hex,
		"acct_northwind":      "oms-prod-eu-dr-b-pg-" + hex,
		"acct_litware":        "oms-prod-eu-dr-b-pg-" + hex,
		"acct_contoso":        "oms-prod-eu-dr-b-pg-" + hex, // retired: where the config places it
	}, onCell)
	for _, sel := range databaseSelectors(t, inv) {
		for _, r := range inv.OfType("gcp:sql/databaseInstance:DatabaseInstance") {
			assert.Regexp(t, sel, r.String("project")+":"+r.String("name"))
		}
	}

	// The restore waits for the whole environment, every cell included, and reads the cells like every oms pod.
	restore, ok := inv.Find("kubernetes:batch/v1:Job", "oms-prod-eu-dr-restore-1")
	require.True(t, ok)
	for _, instance := range inv.OfType("gcp:sql/databaseInstance:DatabaseInstance") {
		assert.Contains(t, restore.DependsOn, instance.URN)
	}
	assert.Equal(t, "oms-prod-eu-dr-runtime", restore.String("spec.template.spec.containers[0].envFrom[0].configMapRef.name"))
	assert.Equal(t, "oms-prod-eu-dr-db-ca", restore.String("spec.template.spec.volumes[1].configMap.name"))
	logins := map[string]string{}
	for _, u := range inv.OfType("gcp:sql/user:User") {
		if u.String("name") == "oms" {
			logins[u.String("instance")] = u.Name
		}
	}
	assert.Equal(t, map[string]string{"oms-prod-eu-dr-pg-" + hex: "oms-prod-eu-dr-runtime-db-user",
		"oms-prod-eu-dr-b-pg-" + hex: "oms-prod-eu-dr-runtime-db-user-b"}, logins, "the restore reaches every cell as the control login")
	var cells map[string]runtimepg.Cell
	config := kubeObject(t, inv, "kubernetes:core/v1:ConfigMap", "oms-prod-eu-dr-runtime")
	require.NoError(t, json.Unmarshal([]byte(config.String("data.OMS_DB_CELLS")), &cells))
	assert.ElementsMatch(t, []string{"main", "b"}, slices.Collect(maps.Keys(cells)))
}

func TestDRRefusesAStateThatPlacesAnAccountOnAMissingCell(t *testing.T) {
	_, err := runDROf(t, "prod-eu-cells", primaryOutputs(map[string]string{"tailspin": "main", "northwind": "c"}, "tailspin", "northwind"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "places account northwind on cell c, which its config no longer declares in omscloud:database.cells")
	assert.Contains(t, err.Error(), "run `pulumi up` on the primary first")
}

// A primary whose last update predates its cells had every account on the one instance.
func TestDRPlacesAStateWithoutCellsOnMain(t *testing.T) {
	mocks, err := runDROf(t, "prod-eu-cells", primaryOutputs(nil, "tailspin", "northwind"), nil)
	require.NoError(t, err)
	inv := inventory.New("prod-eu-cells-dr", mocks.Resources())
	for _, db := range inv.OfType("gcp:sql/database:Database") {
		if db.String("name") == "acct_northwind" {
			assert.Equal(t, "oms-prod-eu-dr-pg-00112233445566778899aabbccddeeff", db.String("instance"))
		}
	}
}
