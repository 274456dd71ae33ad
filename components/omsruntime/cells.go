package omsruntime

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"

	runtimepg "github.com/omscloud/omscloud/runtime/postgres"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/sql"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// The runtime's contract for database cells (README, "Database cells"): rendered only when DatabaseArgs.Cells is
// set, so an environment with one instance renders exactly what it did before cells existed.
const (
	// EnvDatabaseCells (ConfigMap, every pod of the oms image) is the JSON object cell name → runtime/postgres.Cell,
	// the runtime's own type of it (postgres.ParseCells reads it).
	EnvDatabaseCells = "OMS_DB_CELLS"
	// EnvDefaultCell (ConfigMap) is the cell of the accounts the runtime creates itself.
	EnvDefaultCell = "OMS_DB_DEFAULT_CELL"
	// EnvAccountCells (the migrate Job only) is the JSON object account id → cell name of the accounts the stack
	// hosts: migrate records the cell of each account it registers. The runtime's registry, not this, is where a
	// running pod finds an account's cell: an online move changes the registry before the stack catches up.
	EnvAccountCells = "OMS_ACCOUNT_CELLS"
)

// Cell is one Cloud SQL instance holding account databases. Cell runtimepg.MainCell ("main") is the control
// database's instance, DatabaseArgs.Instance; the component declares the control login on every other one.
type Cell struct {
	// Host is the instance's private IP (postgres.PrivateIP); ServerCA the PEM of its server CA (postgres.ServerCA).
	Host, ServerCA pulumi.StringInput
	// Instance is the instance's name (postgres.InstanceName), where the control login is declared.
	Instance pulumi.StringInput
	// Accounts are the ids of the accounts of DatabaseArgs.Accounts whose databases the cell holds.
	Accounts []string
}

// CellCAFile is where every pod of the oms image finds a cell's server CA, beside DatabaseCAFile (the control
// database's instance).
func CellCAFile(cell string) string { return path.Join(path.Dir(DatabaseCAFile), cellCAKey(cell)) }

func cellCAKey(cell string) string { return "server-ca-" + cell + ".pem" }

// caKeyChars are what a ConfigMap key (server-ca-<cell>.pem) may hold.
var caKeyChars = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

// validateCells checks that the cells name valid instances and hold every account exactly once.
func (d *DatabaseArgs) validateCells(add func(string, ...any)) {
	if len(d.Cells) == 0 {
		if d.DefaultCell != "" {
			add("Database.DefaultCell %q is set without Database.Cells: one instance takes every account; remove it", d.DefaultCell)
		}
		return
	}
	if _, ok := d.Cells[runtimepg.MainCell]; !ok {
		add("Database.Cells %v has no cell %q: add the control database's instance (Database.Host) under it",
			slices.Sorted(maps.Keys(d.Cells)), runtimepg.MainCell)
	}
	if _, ok := d.Cells[d.DefaultCell]; !ok {
		add("Database.DefaultCell %q is not one of Database.Cells %v: name the cell of the accounts the runtime creates", d.DefaultCell, slices.Sorted(maps.Keys(d.Cells)))
	}
	cellOf := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(d.Cells)) {
		c := d.Cells[name]
		if !caKeyChars.MatchString(name) {
			add("Database.Cells[%q]: a cell name is letters, digits, '-', '_' and '.' (it names the cell's CA file)", name)
		}
		if c.Host == nil || c.ServerCA == nil || c.Instance == nil {
			add("Database.Cells[%q]: Host, ServerCA and Instance are required (postgres.PrivateIP, postgres.ServerCA, postgres.InstanceName)", name)
		}
		for _, id := range c.Accounts {
			switch {
			case cellOf[id] != "":
				add("Database.Cells[%q]: account %q is also in cell %q: an account's database is on one cell", name, id, cellOf[id])
			case d.Accounts[id] == nil:
				add("Database.Cells[%q]: account %q is not in Database.Accounts", name, id)
			}
			cellOf[id] = name
		}
	}
	for _, id := range slices.Sorted(maps.Keys(d.Accounts)) {
		if cellOf[id] == "" {
			add("Database.Accounts[%q] is in no cell of Database.Cells: place it on the cell that holds its database", id)
		}
	}
}

// cellsConfig is OMS_DB_CELLS and OMS_DB_DEFAULT_CELL for the ConfigMap, and the CA of each cell by its key in the
// CA ConfigMap; nothing without cells.
func (d *DatabaseArgs) cellsConfig() (config, cas pulumi.StringMap) {
	config, cas = pulumi.StringMap{}, pulumi.StringMap{}
	if len(d.Cells) == 0 {
		return config, cas
	}
	names := slices.Sorted(maps.Keys(d.Cells))
	hosts := make([]any, len(names))
	for i, name := range names {
		hosts[i] = d.Cells[name].Host
		cas[cellCAKey(name)] = d.Cells[name].ServerCA
	}
	config[EnvDatabaseCells] = pulumi.All(hosts...).ApplyT(func(hosts []any) (string, error) {
		cells := runtimepg.Cells{}
		for i, name := range names {
			// No Port: Cloud SQL's, the runtime's default.
			cells[name] = runtimepg.Cell{Host: hosts[i].(string), CAFile: CellCAFile(name)}
		}
		b, err := json.Marshal(cells)
		return string(b), err
	}).(pulumi.StringOutput)
	config[EnvDefaultCell] = pulumi.String(d.DefaultCell)
	return config, cas
}

// accountCells is OMS_ACCOUNT_CELLS, "" without cells.
func (d *DatabaseArgs) accountCells() string {
	if len(d.Cells) == 0 {
		return ""
	}
	placement := map[string]string{}
	for name, c := range d.Cells {
		for _, id := range c.Accounts {
			placement[id] = name
		}
	}
	b, _ := json.Marshal(placement) // a map of strings always marshals
	return string(b)
}

// CellLoginName is the logical name of the control login on a cell other than runtimepg.MainCell,
// "<name>-db-user-<cell>", beside the main one's "<name>-db-user" (name is the component's).
func CellLoginName(name, cell string) string { return name + "-db-user-" + cell }

// cellLogins declares the control login (Database.Name, with the control password) on every cell but
// runtimepg.MainCell, whose login controlDatabase declares: the runtime connects as it to database "postgres" on such
// a cell to create, adopt, back up, restore and drop the accounts' databases there. The login is the main one's
// again: same password output (a rotation updates every cell's in place), ABANDON, protected as the main one is.
// Cloud SQL makes it a member of cloudsqlsuperuser on its instance, as on main.
func (d *deployer) cellLogins(password pulumi.StringOutput, opts ...pulumi.ResourceOption) ([]*sql.User, error) {
	var users []*sql.User
	for _, cell := range slices.Sorted(maps.Keys(d.a.Database.Cells)) {
		if cell == runtimepg.MainCell {
			continue
		}
		user, err := sql.NewUser(d.ctx, CellLoginName(d.name, cell), &sql.UserArgs{
			Project:        pulumi.String(d.a.Project),
			Instance:       d.a.Database.Cells[cell].Instance,
			Name:           pulumi.String(d.a.Database.Name),
			Type:           pulumi.String("BUILT_IN"),
			Password:       password,
			DeletionPolicy: pulumi.String("ABANDON"),
		}, d.opts(opts...)...)
		if err != nil {
			return nil, fmt.Errorf("database user on cell %s: %w", cell, err)
		}
		users = append(users, user)
	}
	return users, nil
}
