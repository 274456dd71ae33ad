// Package postgres implements the oms services on PostgreSQL: a control
// database holding the account registry, and one database per account, owned
// by its own role, holding that account's inventory, orders and event log.
package postgres

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	oms "github.com/omscloud/omscloud/runtime"
)

// Options configures a Registry.
type Options struct {
	// URL of the control database, e.g. postgres://oms@h1,h2/oms?target_session_attrs=read-write.
	// Its user must be able to create roles and databases. Account pools reuse its
	// hosts and settings with the account's own database, role and password.
	URL string
	// NamePrefix prefixes account database and role names (default: the control
	// database name), so that several registries can share one cluster.
	NamePrefix string
	// MaxConnsPerAccount bounds each account's pool (default 8).
	MaxConnsPerAccount int32
	// MaxBatchConnsPerAccount bounds each account's second pool, which only
	// inventory batches use (default 2): a batch streams from its client for as
	// long as the client takes, and must not hold a connection the account's
	// other requests need. Batches beyond it wait for one of these.
	MaxBatchConnsPerAccount int32
	// Cache holds availability answers; nil disables caching.
	Cache oms.Cache
	// KeyCacheTTL is how long an authenticated API key is remembered (default 30s).
	KeyCacheTTL time.Duration
	// Cells are the database servers holding the accounts' databases (OMS_DB_CELLS); empty: every account is on
	// the control database's server, MainCell. The control login exists on every cell with URL's password.
	Cells Cells
	// DefaultCell is the cell of an account created without one (default MainCell).
	DefaultCell string
	// ApplicationName is every connection's application_name (pg_stat_activity, the server's logs), unless the URL
	// sets one: which process holds a session, a lock or the CPU ("oms serve", "oms worker").
	ApplicationName string
	Logger          *slog.Logger
}

var prefixPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,23}$`)

// Registry implements oms.AccountService.
type Registry struct {
	opts    Options
	base    *pgxpool.Config
	control *pgxpool.Pool
	log     *slog.Logger

	mu     sync.Mutex
	stores map[string]*Store
	keys   map[[32]byte]keyEntry
	// admins are the control login's pools on the cells other than MainCell, opened on first use.
	admins map[string]*pgxpool.Pool
}

type keyEntry struct {
	account *oms.Account
	expires time.Time
}

var _ oms.AccountService = (*Registry)(nil)

// Open connects to the control database. Call Migrate before first use.
func Open(ctx context.Context, opts Options) (*Registry, error) {
	if opts.URL == "" {
		return nil, oms.Invalid("database-url", "required")
	}
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		// The parse error may echo the URL and its password: don't wrap it.
		return nil, oms.Invalid("database-url", "not a valid PostgreSQL URL")
	}
	if opts.NamePrefix == "" {
		opts.NamePrefix = strings.ReplaceAll(cfg.ConnConfig.Database, "-", "_")
	}
	if !prefixPattern.MatchString(opts.NamePrefix) {
		return nil, oms.Invalid("account-db-prefix", "must match [a-z_][a-z0-9_]{0,23} (defaults to the control database name)")
	}
	if opts.MaxConnsPerAccount <= 0 {
		opts.MaxConnsPerAccount = 8
	}
	if opts.MaxBatchConnsPerAccount <= 0 {
		opts.MaxBatchConnsPerAccount = 2
	}
	if opts.KeyCacheTTL <= 0 {
		opts.KeyCacheTTL = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.DefaultCell = cmp.Or(opts.DefaultCell, MainCell)
	if err := opts.Cells.invalid("default-cell", opts.DefaultCell); err != nil {
		return nil, err
	}
	named(cfg, opts.ApplicationName)
	base := cfg.Copy()
	control, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open control database: %w", err)
	}
	return &Registry{
		opts: opts, base: base, control: control, log: opts.Logger,
		stores: map[string]*Store{}, keys: map[[32]byte]keyEntry{}, admins: map[string]*pgxpool.Pool{},
	}, nil
}

// Close closes every pool.
func (r *Registry) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, s := range r.stores {
		s.close()
		delete(r.stores, id)
	}
	for cell, p := range r.admins {
		p.Close()
		delete(r.admins, cell)
	}
	r.control.Close()
}

// admin is the control login's pool on a cell: the control pool on MainCell, a small pool on database
// cellAdminDatabase elsewhere. Accounts' roles and databases are created, adopted and dropped through it.
func (r *Registry) admin(ctx context.Context, cell string) (*pgxpool.Pool, error) {
	if cell == MainCell {
		return r.control, nil
	}
	r.mu.Lock()
	p := r.admins[cell]
	r.mu.Unlock()
	if p != nil {
		return p, nil
	}
	u, err := r.opts.Cells.AdminURL(r.opts.URL, cell)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		return nil, oms.Invalid("database-url", "not a valid PostgreSQL URL")
	}
	named(cfg, r.opts.ApplicationName)
	cfg.MaxConns, cfg.MinConns = 2, 0
	p, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open cell %s: %w", cell, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if q := r.admins[cell]; q != nil { // another caller opened it meanwhile
		p.Close()
		return q, nil
	}
	r.admins[cell] = p
	return p, nil
}

// accountConfig is the pool config of an account's database on its cell, as its own role.
func (r *Registry) accountConfig(cell, db, role, password string) (*pgxpool.Config, error) {
	var cfg *pgxpool.Config
	if cell == MainCell {
		cfg = r.base.Copy()
	} else {
		u, err := r.opts.Cells.URL(r.opts.URL, cell, db, role)
		if err != nil {
			return nil, err
		}
		if cfg, err = pgxpool.ParseConfig(u); err != nil {
			return nil, oms.Invalid("database-url", "not a valid PostgreSQL URL")
		}
		named(cfg, r.opts.ApplicationName)
	}
	cfg.ConnConfig.Database, cfg.ConnConfig.User, cfg.ConnConfig.Password = db, role, password
	return cfg, nil
}

// named sets a pool's application_name to name, unless its URL set one.
func named(cfg *pgxpool.Config, name string) {
	if _, set := cfg.ConnConfig.RuntimeParams["application_name"]; name != "" && !set {
		cfg.ConnConfig.RuntimeParams["application_name"] = name
	}
}

// cellOf is the registered cell of an account; ENOTFOUND if it is not registered.
func (r *Registry) cellOf(ctx context.Context, id string) (string, error) {
	var cell string
	err := r.control.QueryRow(ctx, `SELECT cell FROM accounts WHERE id = $1`, id).Scan(&cell)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", oms.Errorf(oms.ENOTFOUND, "account", "account %q not found", id)
	}
	if err != nil {
		return "", fmt.Errorf("look up account %s: %w", id, err)
	}
	return cell, nil
}

// Ping checks the control database.
func (r *Registry) Ping(ctx context.Context) error {
	if err := r.control.Ping(ctx); err != nil {
		return fmt.Errorf("ping control database: %w", err)
	}
	return nil
}

// Migrate brings the control database and every account database to the latest schema.
func (r *Registry) Migrate(ctx context.Context) error {
	if _, err := migrate(ctx, r.control, "control"); err != nil {
		return fmt.Errorf("migrate control database: %w", err)
	}
	accounts, err := r.Accounts(ctx)
	if err != nil {
		return err
	}
	for _, a := range accounts {
		s, err := r.Store(ctx, a.ID)
		if err != nil {
			return err
		}
		if err := r.migrateAccount(ctx, s.(*Store).pool); err != nil {
			return fmt.Errorf("migrate account %s: %w", a.ID, err)
		}
	}
	return nil
}

// migrateAccount migrates an account database; one that had never been migrated gets its restore baseline (an empty
// schema and the default workflows), so that a restore may replace it until it takes its first write.
func (r *Registry) migrateAccount(ctx context.Context, pool *pgxpool.Pool) error {
	fresh, err := accountSchemaFresh(ctx, pool)
	if err != nil {
		return err
	}
	if _, err := migrateAccount(ctx, pool); err != nil {
		return err
	}
	if fresh {
		return SaveBaseline(ctx, r.control, pool, BaselineCreated)
	}
	return nil
}

// CheckMigrated fails unless the control database has every migration, so a
// server started before `oms migrate` says so instead of failing requests.
func (r *Registry) CheckMigrated(ctx context.Context) error {
	ms, err := loadMigrations("control")
	if err != nil {
		return err
	}
	var have int
	err = r.control.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM schema_migrations`).Scan(&have)
	if err != nil && pgCode(err) != "42P01" { // undefined_table: never migrated
		return fmt.Errorf("check control database schema: %w", err)
	}
	if want := ms[len(ms)-1].version; have < want {
		return fmt.Errorf("control database is at schema version %d, want %d: run `oms migrate` first", have, want)
	}
	return nil
}

func (r *Registry) names(id string) (db, role string) {
	n := r.opts.NamePrefix + "_" + strings.ReplaceAll(id, "-", "_")
	return n, n
}

// CreateAccount creates the account's role and database, migrates it, and
// returns a new API key. On failure nothing is left behind.
func (r *Registry) CreateAccount(ctx context.Context, a *oms.Account) (string, error) {
	if err := a.Validate(); err != nil {
		return "", err
	}
	cell := cmp.Or(a.Cell, r.opts.DefaultCell)
	if err := r.opts.Cells.invalid("cell", cell); err != nil {
		return "", err
	}
	dbName, role := r.names(a.ID)
	password := randomHex(24)
	tag, err := r.control.Exec(ctx, `INSERT INTO accounts (id, name, db_name, db_role, db_password, cell)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, a.ID, a.Name, dbName, role, password, cell)
	if err != nil {
		return "", fmt.Errorf("create account %s: %w", a.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return "", oms.Errorf(oms.ECONFLICT, "id", "account %q already exists", a.ID)
	}
	key, err := r.provision(ctx, a, cell, dbName, role, password)
	if err != nil {
		// Undo with a fresh context: the caller's may be what failed.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := r.DropAccount(cctx, a.ID); derr != nil {
			r.log.Error("clean up failed account", "account", a.ID, "err", derr)
		}
		return "", fmt.Errorf("create account %s: %w", a.ID, err)
	}
	r.log.Info("account created", "account", a.ID, "cell", cell, "database", dbName)
	return key, nil
}

func (r *Registry) provision(ctx context.Context, a *oms.Account, cell, dbName, role, password string) (string, error) {
	admin, err := r.admin(ctx, cell)
	if err != nil {
		return "", err
	}
	qRole, qDB := pgx.Identifier{role}.Sanitize(), pgx.Identifier{dbName}.Sanitize()
	// The password is hex, so quoting it as a literal is safe; DDL takes no parameters.
	stmts := []string{
		fmt.Sprintf(`CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '%s'`, qRole, password),
	}
	var super bool
	if err := admin.QueryRow(ctx, `SELECT current_setting('is_superuser') = 'on'`).Scan(&super); err != nil {
		return "", fmt.Errorf("check privileges: %w", err)
	}
	if !super {
		// PostgreSQL 15 requires membership to create a database owned by the role.
		stmts = append(stmts, fmt.Sprintf(`GRANT %s TO CURRENT_USER`, qRole))
	}
	stmts = append(stmts,
		fmt.Sprintf(`CREATE DATABASE %s OWNER %s`, qDB, qRole),
		// Only the owner (and the admin) may connect: no other account's role can reach it.
		fmt.Sprintf(`REVOKE ALL ON DATABASE %s FROM PUBLIC`, qDB),
	)
	for _, s := range stmts {
		if _, err := admin.Exec(ctx, s); err != nil {
			return "", fmt.Errorf("provision database on cell %s: %s: %w", cell, strings.SplitN(s, " PASSWORD", 2)[0], err)
		}
	}
	store, err := r.Store(ctx, a.ID)
	if err != nil {
		return "", err
	}
	if err := r.migrateAccount(ctx, store.(*Store).pool); err != nil {
		return "", fmt.Errorf("migrate: %w", err)
	}
	key, hash := newAPIKey()
	err = pgx.BeginFunc(ctx, r.control, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO api_keys (key_hash, account_id) VALUES ($1, $2)`, hash[:], a.ID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE accounts SET ready = true WHERE id = $1`, a.ID)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("store api key: %w", err)
	}
	return key, nil
}

// AdoptAccount registers an account whose role and database were provisioned outside the runtime — in the cloud,
// Cloud SQL users and databases declared by omscloud — with that role's password. It makes the role the owner of its
// database, restricts the role (restrictRole), closes the database to every other role, and migrates it. It issues no API key (IssueKey does), so
// nothing secret is printed by the deploy job that calls it. It reports false for an account already registered.
//
// a.Cell is the cell that holds the database (MainCell if ""). For an account already registered on another cell
// the registry wins: that is a move the stack has not recorded yet, or a wrong placement. AdoptAccount then changes
// nothing and returns an ECONFLICT error on "cell" that says which.
func (r *Registry) AdoptAccount(ctx context.Context, a *oms.Account, password string) (bool, error) {
	if err := a.Validate(); err != nil {
		return false, err
	}
	if password == "" {
		return false, oms.Invalid("password", "the provisioned database's password is required")
	}
	cell := cmp.Or(a.Cell, MainCell)
	if err := r.opts.Cells.invalid("cell", cell); err != nil {
		return false, err
	}
	registered, err := r.cellOf(ctx, a.ID)
	switch {
	case err == nil && registered != cell:
		return false, oms.Errorf(oms.ECONFLICT, "cell", "account %q is on cell %q in the registry, not %q: "+
			"if it was moved, record the move in the stack's database.placement; changed nothing", a.ID, registered, cell)
	case err == nil:
		admin, err := r.admin(ctx, cell)
		if err != nil {
			return false, err
		}
		// Already registered: restrict again, for accounts adopted before roles were restricted or changed since.
		_, role := r.names(a.ID)
		if err := restrictRole(ctx, admin, r.log, role); err != nil {
			return false, fmt.Errorf("adopt account %s: %w", a.ID, err)
		}
		return false, nil
	case oms.ErrorCode(err) != oms.ENOTFOUND:
		return false, err
	}
	admin, err := r.admin(ctx, cell)
	if err != nil {
		return false, err
	}
	dbName, role := r.names(a.ID)
	var roleExists, dbExists bool
	err = admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1),
		EXISTS (SELECT 1 FROM pg_database WHERE datname = $2)`, role, dbName).Scan(&roleExists, &dbExists)
	if err != nil {
		return false, fmt.Errorf("adopt account %s: %w", a.ID, err)
	}
	if !roleExists || !dbExists {
		return false, oms.Errorf(oms.ENOTFOUND, "id", "account %q: role %s and database %s must be provisioned on cell %s first (add the account to the stack's omscloud:accounts and run pulumi up)", a.ID, role, dbName, cell)
	}
	tag, err := r.control.Exec(ctx, `INSERT INTO accounts (id, name, db_name, db_role, db_password, cell)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, a.ID, a.Name, dbName, role, password, cell)
	if err != nil {
		return false, fmt.Errorf("adopt account %s: %w", a.ID, err)
	}
	if tag.RowsAffected() == 0 { // registered meanwhile: the next run restricts it
		return false, nil
	}
	if err := r.adopt(ctx, admin, a.ID, dbName, role); err != nil {
		// Forget the registration only: the database is the customer's and stays.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		r.forget(a.ID)
		if _, derr := r.control.Exec(cctx, `DELETE FROM accounts WHERE id = $1`, a.ID); derr != nil {
			r.log.Error("forget failed adoption", "account", a.ID, "err", derr)
		}
		return false, fmt.Errorf("adopt account %s: %w", a.ID, err)
	}
	r.log.Info("account adopted", "account", a.ID, "cell", cell, "database", dbName)
	return true, nil
}

func (r *Registry) adopt(ctx context.Context, admin *pgxpool.Pool, id, dbName, role string) error {
	qRole, qDB := pgx.Identifier{role}.Sanitize(), pgx.Identifier{dbName}.Sanitize()
	var super bool
	if err := admin.QueryRow(ctx, `SELECT current_setting('is_superuser') = 'on'`).Scan(&super); err != nil {
		return fmt.Errorf("check privileges: %w", err)
	}
	var stmts []string
	if !super {
		// Handing a database to a role requires membership in it (Cloud SQL's admin is no superuser).
		stmts = append(stmts, fmt.Sprintf(`GRANT %s TO CURRENT_USER`, qRole))
	}
	stmts = append(stmts,
		fmt.Sprintf(`ALTER DATABASE %s OWNER TO %s`, qDB, qRole),
		fmt.Sprintf(`REVOKE ALL ON DATABASE %s FROM PUBLIC`, qDB),
	)
	for _, s := range stmts {
		if _, err := admin.Exec(ctx, s); err != nil {
			return fmt.Errorf("take over database: %s: %w", s, err)
		}
	}
	if err := restrictRole(ctx, admin, r.log, role); err != nil {
		return err
	}
	// Opening the account's pool proves the password; migrating runs as the account's own role.
	store, err := r.Store(ctx, id)
	if err != nil {
		return err
	}
	if err := r.migrateAccount(ctx, store.(*Store).pool); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	_, err = r.control.Exec(ctx, `UPDATE accounts SET ready = true WHERE id = $1`, id)
	return err
}

// restrictRole takes from an adopted role what Cloud SQL gives every user created through its API: CREATEROLE,
// CREATEDB and membership in cloudsqlsuperuser (https://cloud.google.com/sql/docs/postgres/users), so that an
// account's own credentials can create neither roles nor databases. It is idempotent. admin is the control login
// on the role's cell.
func restrictRole(ctx context.Context, admin *pgxpool.Pool, log *slog.Logger, role string) error {
	qRole := pgx.Identifier{role}.Sanitize()
	if _, err := admin.Exec(ctx, fmt.Sprintf(`ALTER ROLE %s NOCREATEDB NOCREATEROLE`, qRole)); err != nil {
		return fmt.Errorf("restrict role %s: %w", role, err)
	}
	member := func() (bool, error) {
		var m bool
		err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_auth_members m
			JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
			WHERE g.rolname = 'cloudsqlsuperuser' AND u.rolname = $1)`, role).Scan(&m)
		return m, err
	}
	m, err := member()
	if err != nil {
		return fmt.Errorf("restrict role %s: %w", role, err)
	}
	if !m {
		return nil
	}
	// SET ROLE cloudsqlsuperuser would give back CREATEROLE and CREATEDB. A control login that may not revoke
	// (PostgreSQL 16 only lets the grantor revoke, and warns instead of failing) leaves it: say so, don't fail.
	_, err = admin.Exec(ctx, fmt.Sprintf(`REVOKE cloudsqlsuperuser FROM %s`, qRole))
	if err == nil {
		m, err = member()
	}
	if err != nil || m {
		log.Warn("account role is still a member of cloudsqlsuperuser: revoke it as the instance's admin",
			"role", role, "err", err)
	}
	return nil
}

// forget closes an account's pool and drops its cached keys.
func (r *Registry) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.stores[id]; ok {
		s.close()
		delete(r.stores, id)
	}
	for h, e := range r.keys {
		if e.account.ID == id {
			delete(r.keys, h)
		}
	}
}

func newAPIKey() (string, [32]byte) {
	key := "oms_" + base64.RawURLEncoding.EncodeToString(randomBytes(32))
	return key, sha256.Sum256([]byte(key))
}

// IssueKey adds a new API key to an existing account and returns it; existing keys stay valid.
func (r *Registry) IssueKey(ctx context.Context, accountID string) (string, error) {
	key, hash := newAPIKey()
	tag, err := r.control.Exec(ctx, `INSERT INTO api_keys (key_hash, account_id)
		SELECT $1, id FROM accounts WHERE id = $2 AND ready`, hash[:], accountID)
	if err != nil {
		return "", fmt.Errorf("issue key for %s: %w", accountID, err)
	}
	if tag.RowsAffected() == 0 {
		return "", oms.Errorf(oms.ENOTFOUND, "id", "account %q not found", accountID)
	}
	return key, nil
}

// DropAccount deletes an account, its database and its role. It is for
// operators and tests; the API offers no way to call it.
func (r *Registry) DropAccount(ctx context.Context, id string) error {
	if err := oms.ValidateAccountID(id); err != nil {
		return err
	}
	r.forget(id)
	cell, err := r.cellOf(ctx, id)
	if oms.ErrorCode(err) == oms.ENOTFOUND {
		cell, err = r.opts.DefaultCell, nil // never registered: where CreateAccount would have put it
	}
	if err != nil {
		return err
	}
	admin, err := r.admin(ctx, cell)
	if err != nil {
		return err
	}
	dbName, role := r.names(id)
	qRole, qDB := pgx.Identifier{role}.Sanitize(), pgx.Identifier{dbName}.Sanitize()
	for _, s := range []string{
		fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, qDB),
		fmt.Sprintf(`DROP ROLE IF EXISTS %s`, qRole),
	} {
		if _, err := admin.Exec(ctx, s); err != nil {
			return fmt.Errorf("drop account %s: %w", id, err)
		}
	}
	if _, err := r.control.Exec(ctx, `DELETE FROM accounts WHERE id = $1`, id); err != nil {
		return fmt.Errorf("drop account %s: %w", id, err)
	}
	return nil
}

// Authenticate resolves an API key. Keys are compared by their SHA-256 hash only.
func (r *Registry) Authenticate(ctx context.Context, apiKey string) (*oms.Account, error) {
	if apiKey == "" {
		return nil, oms.Errorf(oms.EUNAUTHORIZED, "Authorization", "missing bearer API key")
	}
	hash := sha256.Sum256([]byte(apiKey))
	now := time.Now()
	r.mu.Lock()
	e, ok := r.keys[hash]
	r.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.account, nil
	}
	var a oms.Account
	err := r.control.QueryRow(ctx, `SELECT a.id, a.name, a.cell, a.created_at FROM api_keys k
		JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = $1 AND a.ready`, hash[:]).Scan(&a.ID, &a.Name, &a.Cell, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, oms.Errorf(oms.EUNAUTHORIZED, "Authorization", "unknown API key")
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	r.mu.Lock()
	r.keys[hash] = keyEntry{account: &a, expires: now.Add(r.opts.KeyCacheTTL)}
	r.mu.Unlock()
	return &a, nil
}

// Accounts lists the ready accounts.
func (r *Registry) Accounts(ctx context.Context) ([]*oms.Account, error) {
	rows, err := r.control.Query(ctx, `SELECT id, name, cell, created_at FROM accounts WHERE ready ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	accounts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*oms.Account, error) {
		var a oms.Account
		return &a, row.Scan(&a.ID, &a.Name, &a.Cell, &a.CreatedAt)
	})
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return accounts, nil
}

// AllAccountIDs lists every account id, including ones whose creation did not finish.
func (r *Registry) AllAccountIDs(ctx context.Context) ([]string, error) {
	rows, err := r.control.Query(ctx, `SELECT id FROM accounts ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return ids, nil
}

// Store returns the account's store, opening its pool on first use. The pool
// logs in as the account's own role to the account's own database.
func (r *Registry) Store(ctx context.Context, accountID string) (oms.Store, error) {
	r.mu.Lock()
	s, ok := r.stores[accountID]
	r.mu.Unlock()
	if ok {
		return s, nil
	}
	var cell, dbName, role, password string
	err := r.control.QueryRow(ctx, `SELECT cell, db_name, db_role, db_password FROM accounts WHERE id = $1`, accountID).
		Scan(&cell, &dbName, &role, &password)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, oms.Errorf(oms.ENOTFOUND, "account", "account %q not found", accountID)
	}
	if err != nil {
		return nil, fmt.Errorf("look up account %s: %w", accountID, err)
	}
	cfg, err := r.accountConfig(cell, dbName, role, password)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", accountID, err)
	}
	var opened *Store // the store these pools serve, once made
	if len(r.opts.Cells) > 0 {
		// A move (MoveAccount, maybe in another process) switches the registry, then closes the source database and
		// ends its sessions: a pool reconnecting is how a pool learns. Checking the registry then costs one control
		// query per new connection, and only with cells.
		cfg.BeforeConnect = func(ctx context.Context, _ *pgx.ConnConfig) error {
			var now string
			if err := r.control.QueryRow(ctx, `SELECT cell FROM accounts WHERE id = $1`, accountID).Scan(&now); err != nil {
				return fmt.Errorf("look up account %s: %w", accountID, err)
			}
			if now != cell {
				r.drop(accountID, opened)
				return fmt.Errorf("account %s, cell %s: %w", accountID, cell, ErrAccountMoved)
			}
			return nil
		}
	}
	cfg.MaxConns = r.opts.MaxConnsPerAccount
	cfg.MinConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open account %s database: %w", accountID, err)
	}
	bcfg := cfg.Copy()
	bcfg.MaxConns = r.opts.MaxBatchConnsPerAccount
	bcfg.MaxConnIdleTime = time.Minute // batches are occasional: do not keep their connections
	// Inventory batches stage in a temp table; local buffers are allocated only when used.
	bcfg.ConnConfig.RuntimeParams["temp_buffers"] = "64MB"
	batch, err := pgxpool.NewWithConfig(ctx, bcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open account %s database: %w", accountID, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.stores[accountID]; ok { // another request opened it meanwhile
		pool.Close()
		batch.Close()
		return s, nil
	}
	s = &Store{account: accountID, pool: pool, batch: batch, cache: r.opts.Cache, log: r.log.With("account", accountID)}
	opened = s
	r.stores[accountID] = s
	return s, nil
}

// movedPoolGrace is how long the pools of an account that moved stay open after the registry forgot them: requests
// that took the store before still get ErrAccountMoved (retry) from them, not a closed pool (a failure). Their
// connections to the source are gone already: the move ended them.
const movedPoolGrace = time.Minute

// drop forgets a store whose account moved, if it is still the registry's, and closes its pools after
// movedPoolGrace. It is called from inside one of them (BeforeConnect), whose Close would wait for the connection
// being made.
func (r *Registry) drop(id string, s *Store) {
	if s == nil {
		return
	}
	r.mu.Lock()
	if r.stores[id] == s {
		delete(r.stores, id)
		time.AfterFunc(movedPoolGrace, s.close)
	}
	r.mu.Unlock()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥1.24)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	b := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// pgCode returns the SQLSTATE of a PostgreSQL error, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
