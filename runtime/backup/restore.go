package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"gocloud.dev/blob"

	"github.com/omscloud/omscloud/runtime/postgres"
)

// RestoreResult summarises a restore.
type RestoreResult struct {
	ID       string            `json:"id"`
	Key      string            `json:"key"`
	Release  string            `json:"release"`
	Accounts int               `json:"accounts"`
	Rows     int64             `json:"rows"`
	Media    int               `json:"media"`
	Bytes    int64             `json:"bytes"`
	Replaced map[string]string `json:"replaced"` // database → the name its previous copy was renamed to
	Elapsed  time.Duration     `json:"-"`
}

// Comments on databases journal a restore, so a crash can be resumed or undone.
const (
	commentRestoring = "omsbak restoring"
	commentVerified  = "omsbak verified for "
)

var hexPassword = regexp.MustCompile(`^[0-9a-f]{16,128}$`)

// restoreTarget is where one account is restored.
type restoreTarget struct {
	id, dbName, role, password string
	cell                       string
	admin                      *pgx.Conn // the control login on cell
	tmp                        string    // the fresh database
	rows                       map[string]int64
}

// cellConns are the control login's connections to the cells, opened on first use; MainCell's is the control
// database's own.
type cellConns struct {
	o       Options
	control *pgx.Conn
	open    map[string]*pgx.Conn
}

func (c *cellConns) get(ctx context.Context, cell string) (*pgx.Conn, error) {
	if cell == postgres.MainCell {
		return c.control, nil
	}
	if conn := c.open[cell]; conn != nil {
		return conn, nil
	}
	u, err := c.o.Cells.AdminURL(c.o.DatabaseURL, cell)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("connect to cell %s: %w", cell, err)
	}
	c.open[cell] = conn
	return conn, nil
}

func (c *cellConns) close(ctx context.Context) {
	for _, conn := range c.open {
		conn.Close(ctx)
	}
}

// Restore restores archive id (the newest when empty) from the bucket. It
// checks the archive's key and trailer before touching anything, restores every
// account into a fresh database (<name>_restore_<n>) while checking each
// entry's checksum, re-counts every table, and only then switches: the current
// database is renamed <name>_old_<unix time> and the restored one takes its
// name; the registry rows (accounts, API key hashes) are upserted last. Any
// failure before the switch drops the fresh databases and leaves the target as it was.
func Restore(ctx context.Context, id string, o Options) (*RestoreResult, error) {
	o.defaults()
	begin := o.Now()
	if o.Key == nil {
		return nil, errors.New("restore: no key")
	}
	pgRestore, err := pgTool(o.PGBinDir, "pg_restore")
	if err != nil {
		return nil, err
	}
	bucket, err := OpenBucket(ctx, o.Bucket)
	if err != nil {
		return nil, err
	}
	defer bucket.Close()
	objs, err := List(ctx, bucket)
	if err != nil {
		return nil, err
	}
	obj, err := Find(objs, id)
	if err != nil {
		return nil, err
	}
	trailer, raw, mac, err := ReadManifest(ctx, bucket, obj)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body, err := bucket.NewReader(rctx, obj.Key, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", obj.Key, err)
	}
	defer body.Close()
	ar, err := NewReader(body, o.Key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", obj.Key, err)
	}
	if err := ar.Authenticate(trailer, raw, mac); err != nil {
		return nil, fmt.Errorf("%s: %w", obj.Key, err)
	}
	// A valid signature proves who wrote the archive, not that its names are safe to use.
	if err := trailer.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", obj.Key, err)
	}
	o.Logger.Info("restoring", "key", obj.Key, "release", trailer.Release, "accounts", len(trailer.Accounts))

	conn, err := pgx.Connect(ctx, o.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect to the control database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := ensureControlSchema(ctx, o); err != nil {
		return nil, err
	}
	if o.NamePrefix == "" {
		o.NamePrefix = strings.ReplaceAll(conn.Config().Database, "-", "_")
	}
	cells := &cellConns{o: o, control: conn, open: map[string]*pgx.Conn{}}
	defer cells.close(context.WithoutCancel(ctx))
	if err := resumeSwitch(ctx, cells, o); err != nil {
		return nil, err
	}
	if err := refuseWritten(ctx, conn, cells, o, trailer.Accounts); err != nil {
		return nil, err
	}

	var targets []*restoreTarget
	undo := func(cause error) (*RestoreResult, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for _, t := range targets {
			if _, err := t.admin.Exec(cctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{t.tmp}.Sanitize()+` WITH (FORCE)`); err != nil {
				o.Logger.Error("drop unfinished restore database", "database", t.tmp, "err", err)
			}
		}
		return nil, cause
	}
	var reg *registryDump
	expect := map[string]AccountEntry{}
	for _, a := range trailer.Accounts {
		expect[a.Entry] = a
	}
	for {
		name, err := ar.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return undo(fmt.Errorf("%s: %w", obj.Key, err))
		}
		if _, ok := trailer.Entry(name); !ok && name != manifestEntry {
			return undo(fmt.Errorf("%s: %w: entry %q is not in the manifest", obj.Key, ErrCorrupt, name))
		}
		switch {
		case name == registryEntry:
			reg = &registryDump{}
			if err := json.NewDecoder(io.LimitReader(ar, maxManifestSize)).Decode(reg); err != nil {
				return undo(fmt.Errorf("%s: %w: registry: %v", obj.Key, ErrCorrupt, err))
			}
			if _, err := io.Copy(io.Discard, ar); err != nil { // ends the entry: checks its checksum
				return undo(fmt.Errorf("%s: %w", obj.Key, err))
			}
			if err := reg.validate(); err != nil {
				return undo(fmt.Errorf("%s: %w", obj.Key, err))
			}
			if err := checkCells(ctx, conn, o, reg); err != nil {
				return undo(err)
			}
		case strings.HasPrefix(name, "accounts/"):
			ae, ok := expect[name]
			if !ok || reg == nil {
				return undo(fmt.Errorf("%s: %w: unexpected entry %s", obj.Key, ErrCorrupt, name))
			}
			t, err := prepareTarget(ctx, conn, cells, o, reg, ae)
			if t != nil {
				targets = append(targets, t)
			}
			if err != nil {
				return undo(fmt.Errorf("account %s: %w", ae.ID, err))
			}
			if err := runRestore(ctx, o, pgRestore, t, ar); err != nil {
				return undo(fmt.Errorf("account %s: %w", ae.ID, err))
			}
		}
	}
	m := ar.Manifest()
	if reg == nil || len(targets) != len(m.Accounts) {
		return undo(fmt.Errorf("%s: %w: %d of %d accounts in the body", obj.Key, ErrCorrupt, len(targets), len(m.Accounts)))
	}
	// Every byte is authenticated and every checksum matched; now prove the databases hold what was dumped.
	var rows int64
	for _, t := range targets {
		n, err := verifyTarget(ctx, o, t)
		if err != nil {
			return undo(fmt.Errorf("account %s: verify restored database: %w", t.id, err))
		}
		rows += n
	}
	for _, t := range targets {
		if err := comment(ctx, t.admin, t.tmp, commentVerified+t.dbName); err != nil {
			return undo(err)
		}
	}
	res := &RestoreResult{ID: obj.ID, Key: obj.Key, Release: m.Release, Accounts: len(targets), Rows: rows,
		Bytes: obj.Size, Replaced: map[string]string{}}
	// The switch. From here a crash leaves verified databases that the next run finishes switching.
	stamp := strconv.FormatInt(o.Now().Unix(), 10)
	for _, t := range targets {
		old, err := switchDatabase(ctx, t.admin, t.tmp, t.dbName, stamp)
		if err != nil {
			return nil, fmt.Errorf("account %s: switch: %w (run oms restore again to finish)", t.id, err)
		}
		if old != "" {
			res.Replaced[t.dbName] = old
		}
	}
	if err := restoreRegistry(ctx, conn, reg, targets); err != nil {
		return nil, err
	}
	// Bring the restored databases to this release's schema; it also proves every role's password.
	pg, err := postgres.Open(ctx, postgres.Options{URL: o.DatabaseURL, NamePrefix: o.NamePrefix, Cells: o.Cells, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	err = pg.Migrate(ctx)
	pg.Close()
	if err != nil {
		return nil, fmt.Errorf("migrate restored accounts: %w", err)
	}
	// The restored databases are the new baselines: the next restore replaces them only until they take a write.
	for _, t := range targets {
		if err := withAccountDB(ctx, o, t.cell, t.dbName, func(acct *pgx.Conn) error {
			return postgres.SaveBaseline(ctx, conn, acct, postgres.BaselineRestored+obj.ID)
		}); err != nil {
			return nil, fmt.Errorf("account %s: %w", t.id, err)
		}
	}
	if o.MediaURL != "" && m.Media != nil && m.Media.Objects > 0 {
		if res.Media, err = restoreMedia(ctx, bucket, obj, trailer, o); err != nil {
			return nil, err
		}
	}
	res.Elapsed = o.Now().Sub(begin)
	return res, nil
}

// ErrWritten is returned when a restore would replace account databases that have taken writes since their restore
// baseline; nothing was changed.
var ErrWritten = errors.New("refused: restoring would replace writes made since the last restore")

// refuseWritten fails with ErrWritten, before anything is touched, when an account database the archive would replace
// has taken writes since its restore baseline. With o.Force it checks nothing (the check reads every table).
func refuseWritten(ctx context.Context, conn *pgx.Conn, cells *cellConns, o Options, accounts []AccountEntry) error {
	if o.Force {
		return nil
	}
	var written []string
	for _, a := range accounts {
		db := o.NamePrefix + "_" + strings.ReplaceAll(a.ID, "-", "_")
		// A registered account is restored on its cell; a new one on the archive's, not known yet: look on every cell.
		on := o.Cells.Names()
		var cell string
		err := conn.QueryRow(ctx, `SELECT db_name, cell FROM accounts WHERE id = $1`, a.ID).Scan(&db, &cell)
		switch {
		case err == nil:
			on = []string{cell}
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("look up account %s: %w", a.ID, err)
		}
		for _, cell := range on {
			admin, err := cells.get(ctx, cell)
			if err != nil {
				return fmt.Errorf("account %s: %w", a.ID, err)
			}
			exists, err := databaseExists(ctx, admin, db)
			if err != nil {
				return err
			}
			if !exists {
				continue // nothing to replace
			}
			var why string
			if err := withAccountDB(ctx, o, cell, db, func(acct *pgx.Conn) error {
				why, err = postgres.WrittenSince(ctx, conn, acct)
				return err
			}); err != nil {
				return fmt.Errorf("account %s: %w", a.ID, err)
			}
			if why != "" {
				where := db
				if len(o.Cells) > 0 {
					where += " on cell " + cell
				}
				written = append(written, fmt.Sprintf("account %s (database %s): %s", a.ID, where, why))
			}
		}
	}
	if len(written) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s. Restore with --force (OMS_RESTORE_FORCE=true) to replace them anyway: the replaced databases are kept as <name>_old_<time>",
		ErrWritten, strings.Join(written, "; "))
}

// checkCells refuses, before anything is created, an archive that has an account the target does not know on a
// cell the target lacks (a known account is restored on its registered cell).
func checkCells(ctx context.Context, conn *pgx.Conn, o Options, reg *registryDump) error {
	for _, a := range reg.Accounts {
		if o.Cells.Has(a.cellOf()) {
			continue
		}
		var known bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE id = $1)`, a.ID).Scan(&known); err != nil {
			return fmt.Errorf("look up account %s: %w", a.ID, err)
		}
		if !known {
			return fmt.Errorf("account %s: the archive has it on cell %q, which --db-cells/OMS_DB_CELLS lacks %v: declare the cell (a DR stack declares the primary's)",
				a.ID, a.cellOf(), o.Cells.Names())
		}
	}
	return nil
}

// withAccountDB runs f on a connection to an account database on its cell as the control database's user (the
// owner's member, or superuser).
func withAccountDB(ctx context.Context, o Options, cell, db string, f func(*pgx.Conn) error) error {
	u, err := o.Cells.URL(o.DatabaseURL, cell, db, "")
	if err != nil {
		return err
	}
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		return errors.New("database URL: invalid")
	}
	acct, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", db, err)
	}
	defer acct.Close(context.WithoutCancel(ctx))
	return f(acct)
}

// ensureControlSchema migrates a control database that has never been migrated (a DR spin-up's).
func ensureControlSchema(ctx context.Context, o Options) error {
	pg, err := postgres.Open(ctx, postgres.Options{URL: o.DatabaseURL, NamePrefix: o.NamePrefix, Cells: o.Cells, Logger: o.Logger})
	if err != nil {
		return err
	}
	defer pg.Close()
	if pg.CheckMigrated(ctx) == nil {
		return nil
	}
	ids, err := pg.AllAccountIDs(ctx)
	if err == nil && len(ids) > 0 {
		return errors.New("the control database is behind this release: run oms migrate first")
	}
	return pg.Migrate(ctx)
}

// restoreName is <name><suffix>, shortened with a hash when PostgreSQL's 63-byte limit would cut it.
func restoreName(name, suffix string) string {
	if len(name)+len(suffix) <= 63 {
		return name + suffix
	}
	h := sha256.Sum256([]byte(name))
	return name[:63-len(suffix)-9] + "_" + hex.EncodeToString(h[:4]) + suffix
}

func databaseExists(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&ok)
	return ok, err
}

func comment(ctx context.Context, conn *pgx.Conn, db, text string) error {
	// COMMENT takes no parameters; text is ours (names match [a-z0-9_]).
	_, err := conn.Exec(ctx, fmt.Sprintf(`COMMENT ON DATABASE %s IS '%s'`, pgx.Identifier{db}.Sanitize(),
		strings.ReplaceAll(text, "'", "''")))
	if err != nil {
		return fmt.Errorf("mark %s: %w", db, err)
	}
	return nil
}

// prepareTarget creates the account's role if missing and a fresh, empty database owned by it.
func prepareTarget(ctx context.Context, conn *pgx.Conn, cells *cellConns, o Options, reg *registryDump, ae AccountEntry) (*restoreTarget, error) {
	var src *accountRow
	for i := range reg.Accounts {
		if reg.Accounts[i].ID == ae.ID {
			src = &reg.Accounts[i]
		}
	}
	if src == nil {
		return nil, fmt.Errorf("%w: account %s is not in the registry entry", ErrCorrupt, ae.ID)
	}
	t := &restoreTarget{id: ae.ID, rows: ae.Rows}
	// An account the target already knows keeps its names, password and cell (the infrastructure may have
	// provisioned them); a new one gets this registry's names on the archive's cell.
	err := conn.QueryRow(ctx, `SELECT db_name, db_role, db_password, cell FROM accounts WHERE id = $1`, ae.ID).
		Scan(&t.dbName, &t.role, &t.password, &t.cell)
	if errors.Is(err, pgx.ErrNoRows) {
		n := o.NamePrefix + "_" + strings.ReplaceAll(ae.ID, "-", "_")
		t.dbName, t.role, t.password, t.cell = n, n, src.DBPassword, src.cellOf()
	} else if err != nil {
		return nil, fmt.Errorf("look up account: %w", err)
	}
	if t.admin, err = cells.get(ctx, t.cell); err != nil {
		return nil, err
	}
	conn = t.admin // the role and the database are made on the account's cell
	qRole := pgx.Identifier{t.role}.Sanitize()
	var roleExists, super bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1), current_setting('is_superuser') = 'on'`,
		t.role).Scan(&roleExists, &super); err != nil {
		return nil, fmt.Errorf("look up role: %w", err)
	}
	if !roleExists {
		if !hexPassword.MatchString(t.password) {
			return nil, fmt.Errorf("role %s is missing and the archived password is not a generated one: create the role first", t.role)
		}
		if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '%s'`,
			qRole, t.password)); err != nil {
			return nil, fmt.Errorf("create role %s: %w", t.role, err)
		}
	}
	if !super {
		if _, err := conn.Exec(ctx, `GRANT `+qRole+` TO CURRENT_USER`); err != nil {
			return nil, fmt.Errorf("grant %s: %w", t.role, err)
		}
	}
	for n := 1; ; n++ {
		t.tmp = restoreName(t.dbName, "_restore_"+strconv.Itoa(n))
		exists, err := databaseExists(ctx, conn, t.tmp)
		if err != nil {
			return nil, err
		}
		if !exists {
			break
		}
	}
	qTmp := pgx.Identifier{t.tmp}.Sanitize()
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s OWNER %s`, qTmp, qRole)); err != nil {
		t.tmp = ""
		return nil, fmt.Errorf("create %s: %w", t.tmp, err)
	}
	if _, err := conn.Exec(ctx, `REVOKE ALL ON DATABASE `+qTmp+` FROM PUBLIC`); err != nil {
		return t, fmt.Errorf("revoke public on %s: %w", t.tmp, err)
	}
	return t, comment(ctx, conn, t.tmp, commentRestoring)
}

// entryReader remembers the archive reader's error, which exec would otherwise hide behind a broken pipe.
type entryReader struct {
	r   io.Reader
	err error
}

func (e *entryReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		e.err = err
	}
	return n, err
}

// runRestore feeds the current entry to pg_restore, as the account's role, into the fresh database.
func runRestore(ctx context.Context, o Options, pgRestore string, t *restoreTarget, ar *Reader) error {
	u, err := o.Cells.URL(o.DatabaseURL, t.cell, t.tmp, t.role)
	if err != nil {
		return err
	}
	er := &entryReader{r: ar}
	cmd := exec.CommandContext(ctx, pgRestore, "--no-owner", "--no-acl", "--exit-on-error", "--single-transaction",
		"--dbname="+u)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+t.password)
	cmd.Stdin = er
	var stderr strings.Builder
	cmd.Stderr = &stderr
	runErr := cmd.Run()
	if er.err != nil {
		return er.err
	}
	if runErr != nil {
		return fmt.Errorf("pg_restore: %w: %s", runErr, strings.TrimSpace(stderr.String()))
	}
	// pg_restore may stop before the entry's end; reading the rest checks its checksum.
	if _, err := io.Copy(io.Discard, ar); err != nil {
		return err
	}
	return nil
}

// verifyTarget re-counts every table of the restored database against the dump's own counts.
func verifyTarget(ctx context.Context, o Options, t *restoreTarget) (int64, error) {
	u, err := o.Cells.URL(o.DatabaseURL, t.cell, t.tmp, t.role)
	if err != nil {
		return 0, err
	}
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		return 0, errors.New("account database URL: invalid")
	}
	cfg.Password = t.password
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("connect to %s as %s: %w", t.tmp, t.role, err)
	}
	defer conn.Close(ctx)
	got, err := postgres.CountRows(ctx, conn)
	if err != nil {
		return 0, err
	}
	if !maps.Equal(got, t.rows) {
		return 0, fmt.Errorf("row counts %v, the dump had %v", got, t.rows)
	}
	var n int64
	for _, c := range got {
		n += c
	}
	return n, nil
}

// switchDatabase renames name (if it exists) to name_old_<stamp> and tmp to name.
func switchDatabase(ctx context.Context, conn *pgx.Conn, tmp, name, stamp string) (string, error) {
	exists, err := databaseExists(ctx, conn, name)
	if err != nil {
		return "", err
	}
	old := ""
	if exists {
		// Two restores within one second share a stamp: the second keeps its replaced copy under the next free name.
		old = restoreName(name, "_old_"+stamp)
		for i := 2; ; i++ {
			taken, err := databaseExists(ctx, conn, old)
			if err != nil {
				return "", err
			}
			if !taken {
				break
			}
			old = restoreName(name, fmt.Sprintf("_old_%s_%d", stamp, i))
		}
		if err := renameDatabase(ctx, conn, name, old); err != nil {
			return "", err
		}
	}
	if err := renameDatabase(ctx, conn, tmp, name); err != nil {
		return old, err
	}
	_, err = conn.Exec(ctx, `COMMENT ON DATABASE `+pgx.Identifier{name}.Sanitize()+` IS NULL`)
	return old, err
}

// renameDatabase closes the database's sessions (the runtime's pools reconnect, by name, to the new one) and renames it.
func renameDatabase(ctx context.Context, conn *pgx.Conn, from, to string) error {
	var err error
	for range 10 {
		if _, err = conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = $1 AND pid <> pg_backend_pid()`, from); err != nil {
			return fmt.Errorf("close sessions of %s: %w", from, err)
		}
		_, err = conn.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s RENAME TO %s`, pgx.Identifier{from}.Sanitize(),
			pgx.Identifier{to}.Sanitize()))
		if err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond) // a pool reconnected in between
	}
	return fmt.Errorf("rename %s to %s: %w", from, to, err)
}

// restoreRegistry upserts the accounts and their API key hashes in one transaction.
func restoreRegistry(ctx context.Context, conn *pgx.Conn, reg *registryDump, targets []*restoreTarget) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, t := range targets {
			var name string
			var created time.Time
			for _, a := range reg.Accounts {
				if a.ID == t.id {
					name, created = a.Name, a.CreatedAt
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO accounts (id, name, db_name, db_role, db_password, cell, ready, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, true, $7)
				ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, ready = true`,
				t.id, name, t.dbName, t.role, t.password, t.cell, created); err != nil {
				return fmt.Errorf("restore account row %s: %w", t.id, err)
			}
		}
		for _, k := range reg.APIKeys {
			if _, err := tx.Exec(ctx, `INSERT INTO api_keys (key_hash, account_id, created_at) VALUES ($1, $2, $3)
				ON CONFLICT DO NOTHING`, k.Hash, k.AccountID, k.CreatedAt); err != nil {
				return fmt.Errorf("restore API keys of %s: %w", k.AccountID, err)
			}
		}
		return nil
	})
}

// resumeSwitch finishes what a crashed restore left: a verified database whose
// target name is free takes it; a database still being restored is dropped.
// Only this registry's databases (by name prefix) are considered.
func resumeSwitch(ctx context.Context, cells *cellConns, o Options) error {
	for _, cell := range o.Cells.Names() {
		conn, err := cells.get(ctx, cell)
		if err != nil {
			return err
		}
		if err := resumeSwitchOn(ctx, conn, o); err != nil {
			return fmt.Errorf("cell %s: %w", cell, err)
		}
	}
	return nil
}

func resumeSwitchOn(ctx context.Context, conn *pgx.Conn, o Options) error {
	rows, err := conn.Query(ctx, `SELECT d.datname, shobj_description(d.oid, 'pg_database') FROM pg_database d
		WHERE shobj_description(d.oid, 'pg_database') LIKE 'omsbak %' AND starts_with(d.datname, $1)`, o.NamePrefix+"_")
	if err != nil {
		return fmt.Errorf("look for an interrupted restore: %w", err)
	}
	type marked struct{ name, note string }
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (marked, error) {
		var m marked
		return m, r.Scan(&m.name, &m.note)
	})
	if err != nil {
		return fmt.Errorf("look for an interrupted restore: %w", err)
	}
	for _, m := range found {
		if target, ok := strings.CutPrefix(m.note, commentVerified); ok && strings.HasPrefix(target, o.NamePrefix+"_") {
			exists, err := databaseExists(ctx, conn, target)
			if err != nil {
				return err
			}
			if !exists {
				o.Logger.Warn("finishing an interrupted restore", "database", m.name, "to", target)
				if _, err := switchDatabase(ctx, conn, m.name, target, ""); err != nil {
					return err
				}
				continue
			}
		}
		o.Logger.Warn("dropping a restore database left by an interrupted run", "database", m.name)
		if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{m.name}.Sanitize()+` WITH (FORCE)`); err != nil {
			return fmt.Errorf("drop %s: %w", m.name, err)
		}
	}
	return nil
}

// restoreMedia writes the archive's media objects back, in a second pass after the switch.
func restoreMedia(ctx context.Context, bucket *blob.Bucket, obj Object, m *Manifest, o Options) (int, error) {
	media, err := OpenBucket(ctx, o.MediaURL)
	if err != nil {
		return 0, fmt.Errorf("--media-url: %w", err)
	}
	defer media.Close()
	r, err := bucket.NewReader(ctx, obj.Key, nil)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	ar, err := NewReader(r, o.Key)
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		name, err := ar.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		key, ok := strings.CutPrefix(name, "media/")
		if !ok {
			continue
		}
		if _, listed := m.Entry(name); !listed || ValidateEntryName(name) != nil {
			return n, fmt.Errorf("%w: media entry %q is not in the manifest or not a plain key", ErrCorrupt, name)
		}
		wctx, abort := context.WithCancel(ctx)
		w, err := media.NewWriter(wctx, key, nil)
		if err != nil {
			abort()
			return n, fmt.Errorf("write media %s: %w", key, err)
		}
		if _, err := io.Copy(w, ar); err != nil {
			abort()
			_ = w.Close()
			return n, fmt.Errorf("restore media %s: %w", key, err)
		}
		err = w.Close()
		abort()
		if err != nil {
			return n, fmt.Errorf("write media %s: %w", key, err)
		}
		n++
	}
}
