package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"

	oms "github.com/omscloud/omscloud/runtime"
)

// MainCell is the cell of the control database. Without Cells every account is on it.
const MainCell = "main"

// cellAdminDatabase is the database the control login connects to on a cell other than MainCell, to create, adopt,
// rename and drop the accounts' databases there. Every Cloud SQL instance has it.
const cellAdminDatabase = "postgres"

// Cell is how the runtime reaches one database server ("cell") holding accounts' databases: a value of
// OMS_DB_CELLS (the omsruntime component renders it; components/omsruntime/README.md, "Database cells"). The
// control login exists on every cell with the control database's password.
type Cell struct {
	Host string `json:"host"`
	// Port defaults to 5432, Cloud SQL's.
	Port int `json:"port,omitempty"`
	// CAFile is the PEM of the cell's server CA: its connections verify the server against it (sslmode=verify-ca).
	CAFile string `json:"caFile"`
}

// Cells are the cells of an environment by name. Empty means one server: every account is on the control
// database's, MainCell.
type Cells map[string]Cell

// ParseCells reads OMS_DB_CELLS (field names the option in errors).
func ParseCells(field, s string) (Cells, error) {
	if s == "" {
		return nil, nil
	}
	var cells Cells
	if err := json.Unmarshal([]byte(s), &cells); err != nil {
		return nil, fmt.Errorf(`%s: not a JSON object of cell name → {"host": …, "caFile": …}: %w`, field, err)
	}
	if _, ok := cells[MainCell]; !ok {
		return nil, fmt.Errorf("%s: has no cell %q, the control database's: add it", field, MainCell)
	}
	for _, name := range slices.Sorted(maps.Keys(cells)) {
		c := cells[name]
		switch {
		case c.Host == "":
			return nil, fmt.Errorf("%s: cell %q has no host", field, name)
		case c.Port < 0 || c.Port > 65535:
			return nil, fmt.Errorf("%s: cell %q: port %d is not a TCP port", field, name, c.Port)
		case c.CAFile == "":
			return nil, fmt.Errorf("%s: cell %q has no caFile: give the PEM of its server CA", field, name)
		}
	}
	return cells, nil
}

// Names lists the cells, sorted; MainCell alone without cells.
func (cs Cells) Names() []string {
	if len(cs) == 0 {
		return []string{MainCell}
	}
	return slices.Sorted(maps.Keys(cs))
}

// Has reports whether cell is one of cs (MainCell always is).
func (cs Cells) Has(cell string) bool {
	_, ok := cs[cell]
	return ok || cell == MainCell && len(cs) == 0
}

// Check reports an error naming field unless cs has cell.
func (cs Cells) Check(field, cell string) error {
	if !cs.Has(cell) {
		return fmt.Errorf("%s: cell %q is not one of OMS_DB_CELLS %v", field, cell, cs.Names())
	}
	return nil
}

// invalid is the 4xx error for a cell the registry's Cells lack.
func (cs Cells) invalid(field, cell string) error {
	if cs.Has(cell) {
		return nil
	}
	return oms.Invalid(field, "%q is not one of the cells %v", cell, cs.Names())
}

// URL is the control URL pointed at database db on cell's server, as role (the control login if role is ""),
// verifying the server against the cell's CA. MainCell's server is the control URL's own (its hosts, its CA): the
// control database is on it, and a standby the URL lists is found after a failover.
// The password, if any, stays the control URL's: give the account's with the connection config, never in a URL
// passed to a program (argv shows in ps).
func (cs Cells) URL(control, cell, db, role string) (string, error) {
	if err := cs.Check("cell", cell); err != nil {
		return "", err
	}
	u, err := url.Parse(control)
	if err != nil {
		return "", errors.New("database URL: not a valid URL") // it may hold a password: don't echo it
	}
	u.Path = "/" + db
	if role != "" {
		u.User = url.User(role)
	}
	c, ok := cs[cell]
	if !ok || cell == MainCell {
		return u.String(), nil
	}
	u.Host = net.JoinHostPort(c.Host, strconv.Itoa(cmpPort(c.Port)))
	return VerifyServerCA(u.String(), c.CAFile)
}

// AdminURL is the control login's URL on cell: the control URL itself on MainCell, database cellAdminDatabase on
// another cell.
func (cs Cells) AdminURL(control, cell string) (string, error) {
	if cell == MainCell {
		if err := cs.Check("cell", cell); err != nil {
			return "", err
		}
		return control, nil
	}
	return cs.URL(control, cell, cellAdminDatabase, "")
}

func cmpPort(p int) int {
	if p == 0 {
		return 5432
	}
	return p
}
