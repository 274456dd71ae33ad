package stacks

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/inventory"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every problem of database.moving and database.moved is named under the key to change, with the fix, like the
// other cell problems (TestCellValidation).
func TestMoveValidation(t *testing.T) {
	const cells = `"cells":[{"name":"main"},{"name":"b"}],"placement":{"main":["tailspin"],"b":["northwind","contoso"]},"retiredAccounts":["contoso"]`
	tests := []struct {
		name     string
		database string
		key      string
		mention  []string
	}{
		{name: "moving without cells",
			database: `{"moving":{"tailspin":"b"}}`,
			key:      "omscloud:database.moving",
			mention:  []string{"is set without database.cells", "declare the cells first", "or remove it"}},
		{name: "moved without cells",
			database: `{"moved":{"tailspin":"b"}}`,
			key:      "omscloud:database.moved",
			mention:  []string{"is set without database.cells", "declare the cells first", "or remove it"}},
		{name: "moving to an unknown cell",
			database: `{` + cells + `,"moving":{"tailspin":"c"}}`,
			key:      "omscloud:database.moving.tailspin",
			mention:  []string{`cell "c" is not in database.cells (main, b)`, "name the cell the account moves to"}},
		{name: "moved from an unknown cell",
			database: `{` + cells + `,"moved":{"northwind":"c"}}`,
			key:      "omscloud:database.moved.northwind",
			mention:  []string{`cell "c" is not in database.cells (main, b)`, "name the cell the account left"}},
		{name: "moving to the cell it is placed on",
			database: `{` + cells + `,"moving":{"northwind":"b"}}`,
			key:      "omscloud:database.moving.northwind",
			mention:  []string{`"northwind" is already placed on cell b`, "a move goes to another cell", "database: {moved: {northwind: <the cell it left>}}"}},
		{name: "moved from the cell it is placed on",
			database: `{` + cells + `,"moved":{"tailspin":"main"}}`,
			key:      "omscloud:database.moved.tailspin",
			mention:  []string{`"tailspin" is placed on cell main, the cell it left`, "place it in database.placement on the cell it moved to", "if it has not moved, remove the entry"}},
		{name: "moving and moved at once",
			database: `{` + cells + `,"moving":{"northwind":"main"},"moved":{"northwind":"main"}}`,
			key:      "omscloud:database.moving.northwind",
			mention:  []string{`"northwind" is also in database.moved`, "one move at a time", "remove its database.moved entry", "then prepare the next move"}},
		{name: "moving an account the stack does not host",
			database: `{` + cells + `,"moving":{"globex":"b"}}`,
			key:      "omscloud:database.moving.globex",
			mention:  []string{`"globex" is not in accounts`, "only an active account moves", "remove the entry"}},
		{name: "moving a retired account",
			database: `{` + cells + `,"moving":{"contoso":"main"}}`,
			key:      "omscloud:database.moving.contoso",
			mention:  []string{`"contoso" is in database.retiredAccounts`, "a retired account is not moved", "remove the entry"}},
		{name: "moved account the stack does not host",
			database: `{` + cells + `,"moved":{"globex":"main"}}`,
			key:      "omscloud:database.moved.globex",
			mention:  []string{`"globex" is placed on no cell`, "neither accounts nor database.retiredAccounts", "remove the entry"}},
		{name: "moving id that is no account id",
			database: `{` + cells + `,"moving":{"Globex":"b"}}`,
			key:      "omscloud:database.moving.Globex",
			mention:  []string{`"Globex" is not a valid account id`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("prod-eu", withCells(tt.database), nil)
			require.Error(t, err)
			got := problems(t, err)
			require.Contains(t, got, tt.key, "problems: %v", got)
			for _, m := range tt.mention {
				assert.Contains(t, got[tt.key], m)
			}
			assert.Len(t, got, 1, "one problem, under the key to change: %v", got)
		})
	}

	// Valid: a move prepared, another recorded, of a retired account too (it moved, then was retired).
	cfg, err := ParseConfig("prod-eu", with(map[string]string{"omscloud:accounts": `["tailspin","northwind","litware"]`,
		"omscloud:database": `{"cells":[{"name":"main"},{"name":"b"}],"placement":{"main":["tailspin"],"b":["northwind","litware","contoso"]},` +
			`"retiredAccounts":["contoso"],"moving":{"tailspin":"b"},"moved":{"northwind":"main","contoso":"main"}}`}), nil)
	require.NoError(t, err)
	c := cfg.cells()
	assert.Equal(t, Cell{Name: "main", Size: cfg.Sizing.Database, Accounts: []string{"tailspin"}, RetiredAccounts: []string{"northwind", "contoso"}}, c[0],
		"main keeps the copies northwind and contoso left, retired")
	assert.Equal(t, Cell{Name: "b", Size: cfg.Sizing.Database, Accounts: []string{"northwind", "litware"}, RetiredAccounts: []string{"contoso"}, Incoming: []string{"tailspin"}}, c[1],
		"b prepares tailspin's move")
	assert.Equal(t, map[string]string{"tailspin": "main", "northwind": "b", "litware": "b"}, cfg.accountCells(), "the runtime's placement is placement's")
}

// moveStep is the cells test stack with its database setting changed by change, planned, with the passwords its
// account-passwords Secret holds.
type moveStep struct {
	inv       *inventory.Inventory
	passwords map[string]string
}

func planMoveStep(t *testing.T, changes ...func(db map[string]any)) moveStep {
	t.Helper()
	sf := stackFile(t, "prod-eu-cells")
	var db map[string]any
	require.NoError(t, json.Unmarshal([]byte(sf.Values["omscloud:database"]), &db))
	for _, change := range changes {
		change(db)
	}
	b, err := json.Marshal(db)
	require.NoError(t, err)
	sf.Values["omscloud:database"] = string(b)
	_, inv, err := Plan(sf)
	require.NoError(t, err)

	// The same program under mocks that keep the account-passwords Secret's values (the inventory hides secrets):
	// the mocks generate "mock-generated-<logical name of the password>".
	m := &rawSecretMocks{Mocks: &inventory.Mocks{Project: Project, Stack: sf.Stack}}
	withConfig := func(info *pulumi.RunInfo) { info.Config, info.ConfigSecretKeys = sf.Values, sf.SecretKeys }
	require.NoError(t, pulumi.RunErr(Program, pulumi.WithMocks(Project, sf.Stack, m), withConfig))
	return moveStep{inv: inv, passwords: m.passwords}
}

type rawSecretMocks struct {
	*inventory.Mocks
	passwords map[string]string
}

func (m *rawSecretMocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	if args.TypeToken == "kubernetes:core/v1:Secret" && strings.HasSuffix(args.Name, "-account-passwords") {
		m.passwords = map[string]string{}
		data := args.Inputs["stringData"]
		if data.IsSecret() {
			data = data.SecretValue().Element
		}
		for k, v := range data.ObjectValue() {
			if v.IsSecret() {
				v = v.SecretValue().Element
			}
			m.passwords[string(k)] = v.StringValue()
		}
	}
	return m.Mocks.NewResource(args)
}

// accountResources are the names of an account's database, user, password, secret and secret version on a cell
// (its postgres component's logical name, e.g. oms-prod-eu-b-postgres).
func accountResources(component, account string) []string {
	var out []string
	for _, kind := range []string{"db", "user", "password", "secret", "secret-version"} {
		out = append(out, component+"-"+kind+"-"+account)
	}
	return out
}

func names(rs []inventory.Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

// protection is each resource's protect flag, by type and name.
func protection(inv *inventory.Inventory) map[string]bool {
	out := map[string]bool{}
	for _, r := range inv.Resources {
		out[r.Type+" "+r.Name] = r.Protected
	}
	return out
}

func migrateAccountCells(t *testing.T, inv *inventory.Inventory) []string {
	t.Helper()
	var out []string
	for _, job := range inv.OfType("kubernetes:batch/v1:Job") {
		if !strings.Contains(job.Name, "-migrate-") {
			continue
		}
		envs, _ := job.Get("spec.template.spec.containers[0].env")
		for _, e := range envs.([]any) {
			if e.(map[string]any)["name"] == omsruntime.EnvAccountCells {
				out = append(out, e.(map[string]any)["value"].(string))
			}
		}
	}
	require.NotEmpty(t, out)
	return out
}

// TestMovingAnAccountToAnotherCell plans the README's procedure ("Moving an account to another cell") on the cells
// test stack, adventureworks from main to b: each `pulumi up` does only what the README says it does.
func TestMovingAnAccountToAnotherCell(t *testing.T) {
	const (
		main, b = "oms-prod-eu-postgres", "oms-prod-eu-b-postgres"
		placedB = `{"adventureworks":"b","northwind":"b","tailspin":"main"}`
		placedM = `{"adventureworks":"main","northwind":"b","tailspin":"main"}`
	)
	base := planMoveStep(t)

	// 0. The cell the account leaves streams it: cloudsql.logical_decoding=on, on main's instance only.
	logical := func(db map[string]any) {
		cells := db["cells"].([]any)
		require.Equal(t, "main", cells[0].(map[string]any)["name"])
		cells[0].(map[string]any)["logicalDecoding"] = true
	}
	before := planMoveStep(t, logical)
	change := changeOf(base.inv, before.inv)
	assert.Empty(t, change.added)
	assert.Empty(t, change.removed)
	require.Len(t, change.changed, 1)
	instance := change.changed[0]
	assert.Equal(t, "oms-prod-eu-postgres-instance", instance.Name)
	flags, _ := instance.Get("settings.databaseFlags")
	assert.Contains(t, flags, map[string]any{"name": "cloudsql.logical_decoding", "value": "on"})

	// 1. Prepare: the account is also declared on b, as placing it there would declare it; nothing else changes.
	prepared := planMoveStep(t, logical, func(db map[string]any) { db["moving"] = map[string]any{"adventureworks": "b"} })
	change = changeOf(before.inv, prepared.inv)
	assert.ElementsMatch(t, accountResources(b, "adventureworks"), names(change.added), "only the account's resources on b are new")
	assert.Empty(t, change.changed, "nothing else changes: web and worker do not roll, the migrate Job is the same")
	assert.Empty(t, change.removed)
	for _, r := range change.added {
		// As an active account's: everything but the secret's version (DISABLEd when replaced) is protected.
		assert.Equal(t, r.Type != "gcp:secretmanager/secretVersion:SecretVersion", r.Protected, r.Name)
		if r.Type == "gcp:sql/database:Database" || r.Type == "gcp:sql/user:User" {
			assert.Equal(t, "ABANDON", r.String("deletionPolicy"), r.Name)
			assert.Equal(t, "acct_adventureworks", r.String("name"), r.Name)
			assert.Equal(t, "oms-prod-eu-b-pg", r.String("instance"), r.Name)
		}
		if r.Type == "gcp:secretmanager/secret:Secret" {
			assert.Equal(t, "oms-prod-eu-b-db-adventureworks", r.String("secretId"), "the password `oms account move --password-file` takes")
		}
	}
	for _, cells := range migrateAccountCells(t, prepared.inv) {
		assert.Equal(t, placedM, cells, "the account is still placed on main")
	}
	assert.Equal(t, "mock-generated-"+main+"-password-adventureworks", prepared.passwords["adventureworks"], "the runtime still logs in on main")
	assert.Equal(t, before.passwords, prepared.passwords)

	// Declaring the account on b exactly as placing it there would: what step 3 keeps is step 1's.
	placed := planMoveStep(t, logical, func(db map[string]any) {
		db["placement"] = map[string]any{"main": []string{"tailspin"}, "b": []string{"northwind", "contoso", "adventureworks"}}
	})
	for _, n := range accountResources(b, "adventureworks") {
		r, ok := prepared.inv.Find(typeOf(t, prepared.inv, n), n)
		require.True(t, ok, n)
		p, ok := placed.inv.Find(r.Type, n)
		require.True(t, ok, n)
		assert.Equal(t, p.Inputs, r.Inputs, n)
		assert.Equal(t, p.Protected, r.Protected, n)
		assert.Equal(t, p.URN, r.URN, n)
	}

	// 3. Record: placed on b, moved from main. Nothing on b is created or changed; main's copy is retired, not
	// deleted; the migrate Job and the account passwords follow the placement.
	recorded := planMoveStep(t, logical, func(db map[string]any) {
		db["placement"] = map[string]any{"main": []string{"tailspin"}, "b": []string{"northwind", "contoso", "adventureworks"}}
		db["moved"] = map[string]any{"adventureworks": "main"}
	})
	change = changeOf(prepared.inv, recorded.inv)
	assert.Empty(t, change.added, "nothing is created")
	assert.Empty(t, change.removed, "nothing is deleted")
	var changed []string
	for _, r := range change.changed {
		switch {
		case r.Type == "kubernetes:batch/v1:Job" && strings.Contains(r.Name, "-migrate-"):
		case r.Type == "kubernetes:core/v1:Secret" && strings.HasSuffix(r.Name, "-account-passwords"):
		case r.Type == "gcp:secretmanager/secretIamMember:SecretIamMember":
			// The backups read the account's password where it is placed.
			assert.Equal(t, "oms-prod-eu-backup-secret-account-adventureworks", r.Name)
			assert.Equal(t, b+"-secret-adventureworks-id", r.String("secretId"))
		default:
			changed = append(changed, r.Name)
		}
	}
	assert.ElementsMatch(t, []string{main + "-db-adventureworks", main + "-user-adventureworks"}, changed,
		"on main, the database and user are now deleted, not abandoned, when removed")
	for _, n := range []string{main + "-db-adventureworks", main + "-user-adventureworks"} {
		r, _ := recorded.inv.Find(typeOf(t, recorded.inv, n), n)
		assert.Equal(t, "DELETE", r.String("deletionPolicy"), n)
		was, _ := prepared.inv.Find(r.Type, n)
		for _, path := range []string{"name", "instance", "project", "host", "type"} { // enginetest's replace table
			w, _ := was.Get(path)
			is, _ := r.Get(path)
			assert.Equal(t, w, is, "%s: %s is kept, so it is updated in place", n, path)
		}
	}
	protectedBefore, protectedAfter := protection(prepared.inv), protection(recorded.inv)
	var unprotected []string
	for k, p := range protectedBefore {
		if p != protectedAfter[k] {
			assert.True(t, p, "%s: nothing becomes protected", k)
			unprotected = append(unprotected, k[strings.Index(k, " ")+1:])
		}
	}
	assert.ElementsMatch(t, []string{main + "-db-adventureworks", main + "-user-adventureworks", main + "-password-adventureworks",
		main + "-secret-adventureworks"}, unprotected, "main's copy is retired")
	assert.NotContains(t, strings.Join(names(change.changed), " "), b+"-", "nothing of b changes")
	for _, cells := range migrateAccountCells(t, recorded.inv) {
		assert.Equal(t, placedB, cells, "the migrate Job finds the account where the registry has it")
	}
	assert.Equal(t, "mock-generated-"+b+"-password-adventureworks", recorded.passwords["adventureworks"], "b's password")
	delete(recorded.passwords, "adventureworks")
	delete(before.passwords, "adventureworks")
	assert.Equal(t, before.passwords, recorded.passwords, "the other accounts' are the same")

	// 4. Clean up: the copy left on main is deleted; nothing else changes.
	cleaned := planMoveStep(t, logical, func(db map[string]any) {
		db["placement"] = map[string]any{"main": []string{"tailspin"}, "b": []string{"northwind", "contoso", "adventureworks"}}
	})
	change = changeOf(recorded.inv, cleaned.inv)
	assert.ElementsMatch(t, accountResources(main, "adventureworks"), names(change.removed))
	for _, r := range change.removed {
		assert.False(t, r.Protected, "%s: retired, so really deleted", r.Name)
	}
	assert.Empty(t, change.added)
	assert.Empty(t, change.changed)
	assert.Equal(t, protection(placed.inv), protection(cleaned.inv), "the stack is the one that placed the account on b from the start")
}

// typeOf finds the type of the resource named name.
func typeOf(t *testing.T, inv *inventory.Inventory, name string) string {
	t.Helper()
	for _, r := range inv.Resources {
		if r.Name == name {
			return r.Type
		}
	}
	require.Failf(t, "no resource", "%s", name)
	return ""
}

// TestDRIgnoresMoves: a DR environment declares each account on its placement cell only, whatever move the primary
// has prepared or recorded.
func TestDRIgnoresMoves(t *testing.T) {
	sf := stackFile(t, "prod-eu-cells")
	sf.Values["omscloud:database"] = `{"cells":[{"name":"main"},{"name":"b","tier":"db-custom-8-32768","diskSizeGb":200}],` +
		`"placement":{"main":["tailspin","adventureworks"],"b":["northwind","contoso"]},"defaultCell":"b","retiredAccounts":["contoso"],` +
		`"moving":{"adventureworks":"b"},"moved":{"northwind":"main"}}`
	_, err := sf.Config()
	require.NoError(t, err, "a valid primary config")
	mocks, err := runDROfStackFile(t, sf, primaryOutputs(map[string]string{
		"tailspin": "main", "adventureworks": "main", "northwind": "b",
	}, "tailspin", "adventureworks", "northwind"), map[string]string{DRKeyRestore: "1"})
	require.NoError(t, err)
	inv := inventory.New("prod-eu-cells-dr", mocks.Resources())
	const hex = "00112233445566778899aabbccddeeff"
	onCells := map[string][]string{}
	for _, db := range inv.OfType("gcp:sql/database:Database") {
		onCells[db.String("name")] = append(onCells[db.String("name")], db.String("instance"))
	}
	for _, v := range onCells {
		slices.Sort(v)
	}
	assert.Equal(t, map[string][]string{
		"oms":                 {"oms-prod-eu-dr-pg-" + hex},
		"acct_tailspin":       {"oms-prod-eu-dr-pg-" + hex},
		"acct_adventureworks": {"oms-prod-eu-dr-pg-" + hex},
		"acct_northwind":      {"oms-prod-eu-dr-b-pg-" + hex},
		"acct_contoso":        {"oms-prod-eu-dr-b-pg-" + hex},
	}, onCells, "no database prepared for a move, no copy left by one")
}
