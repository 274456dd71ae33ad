package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	oms "github.com/omscloud/omscloud/runtime"
)

// ErrAccountMoved is what an account's pool answers once its database has moved to another cell: the registry drops
// the pool, and the request, retried, opens one on the new cell. IsUnavailable reports it.
var ErrAccountMoved = errors.New("the account's database moved to another cell: retry")

// MoveOptions configures MoveAccount.
type MoveOptions struct {
	// CatchUpBytes is how far (bytes of WAL) the copy may trail the source before writes pause (default 1 MiB).
	CatchUpBytes int64
	// PauseTimeout bounds the pause: if the copy has not caught up within it, writes resume on the source, the copy
	// is dropped and the move fails, changing nothing (default 10s).
	PauseTimeout time.Duration
	// CatchUpTimeout bounds the wait for the copy to come within CatchUpBytes of the source before the pause: an
	// account that writes faster than the target applies is never caught up, and the move fails, changing nothing
	// (default 5 minutes).
	CatchUpTimeout time.Duration
	// TargetPassword is the password of the account's role on the target cell when the stack provisioned it there
	// (database.moving); the registry takes it at the switch. Empty: the role is created with the current password.
	TargetPassword string
}

// MoveResult reports a move.
type MoveResult struct {
	Account string `json:"account"`
	From    string `json:"from"`
	To      string `json:"to"`
	// Bytes is the source database's size.
	Bytes int64 `json:"bytes"`
	// Copy is the initial copy of every table; CatchUp the wait until the copy trailed by CatchUpBytes at most.
	Copy    time.Duration `json:"copyNs"`
	CatchUp time.Duration `json:"catchUpNs"`
	// Pause is how long the account's writes were blocked: from the lock on the source to the registry's switch
	// and the source's close.
	Pause   time.Duration `json:"pauseNs"`
	Elapsed time.Duration `json:"elapsedNs"`
}

// MoveAccount moves an account's database to another cell while the account keeps taking writes. PostgreSQL's
// logical replication copies it (a publication of the account's tables on the source, a subscription on the target)
// and streams what is written meanwhile; then, for a bounded moment, the account's tables on the source are locked
// against writes (reads go on), the copy catches up to the last commit, the sequences are carried over, the registry
// switches the account to the target, and the source database stops taking connections. Sessions still on the
// source are ended: their uncommitted requests fail as unavailable (a client retries), and the runtime's pools find
// the account on its new cell (ErrAccountMoved). Other accounts never wait.
//
// The source database stays, closed to connections and commented, for the operator to drop. The source cell must
// run with wal_level=logical (Cloud SQL: the flag cloudsql.logical_decoding=on); the control login must be allowed
// to publish and subscribe (superuser, or on Cloud SQL cloudsqlsuperuser with the REPLICATION attribute).
func (r *Registry) MoveAccount(ctx context.Context, id, to string, o MoveOptions) (*MoveResult, error) {
	begin := time.Now()
	if o.CatchUpBytes <= 0 {
		o.CatchUpBytes = 1 << 20
	}
	if o.PauseTimeout <= 0 {
		o.PauseTimeout = 10 * time.Second
	}
	if o.CatchUpTimeout <= 0 {
		o.CatchUpTimeout = 5 * time.Minute
	}
	if err := r.opts.Cells.invalid("to", to); err != nil {
		return nil, err
	}
	var from, db, role, password string
	err := r.control.QueryRow(ctx, `SELECT cell, db_name, db_role, db_password FROM accounts WHERE id = $1 AND ready`, id).
		Scan(&from, &db, &role, &password)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, oms.Errorf(oms.ENOTFOUND, "id", "account %q not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("look up account %s: %w", id, err)
	}
	if from == to {
		return nil, oms.Errorf(oms.ECONFLICT, "to", "account %q is already on cell %q", id, to)
	}
	m := &mover{r: r, id: id, from: from, to: to, db: db, role: role, password: password, newPassword: password, o: o,
		res: &MoveResult{Account: id, From: from, To: to}, log: r.log.With("account", id, "from", from, "to", to)}
	defer m.close(ctx)
	if err := m.prepare(ctx); err != nil {
		return nil, m.undo(ctx, err)
	}
	if err := m.copy(ctx); err != nil {
		return nil, m.undo(ctx, err)
	}
	if err := m.switchOver(ctx); err != nil {
		return nil, m.undo(ctx, err)
	}
	m.finish(ctx)
	m.res.Elapsed = time.Since(begin)
	m.log.Info("account moved", "bytes", m.res.Bytes, "copy", m.res.Copy, "pause", m.res.Pause, "elapsed", m.res.Elapsed)
	return m.res, nil
}

// mover holds one move's connections and what it has created, to undo it.
type mover struct {
	r                      *Registry
	id, from, to           string
	db, role, password     string
	o                      MoveOptions
	res                    *MoveResult
	log                    *slog.Logger
	srcAdmin, dstAdmin     *pgxpool.Pool
	src, dst               *pgx.Conn // the account's database on each cell, as the control login
	tables                 []string
	createdRole, createdDB bool
	tookOver               bool   // the target database was the stack's, empty: undo empties it again
	newPassword            string // the account role's password on the target
	published, subscribed  bool
	switched               bool
	closed                 bool // the source takes no new connections
}

func (m *mover) name() string { return "mv_" + m.db } // publication, subscription and slot: ≤ 63 bytes

func (m *mover) connect(ctx context.Context, cell string) (*pgx.Conn, error) {
	u, err := m.r.opts.Cells.URL(m.r.opts.URL, cell, m.db, "")
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		return nil, oms.Invalid("database-url", "not a valid PostgreSQL URL")
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s on cell %s: %w", m.db, cell, err)
	}
	return conn, nil
}

// prepare checks both cells and creates the account's role (if missing) and an empty database with the source's
// schema on the target.
func (m *mover) prepare(ctx context.Context) error {
	var err error
	if m.srcAdmin, err = m.r.admin(ctx, m.from); err != nil {
		return err
	}
	if m.dstAdmin, err = m.r.admin(ctx, m.to); err != nil {
		return err
	}
	var wal string
	if err := m.srcAdmin.QueryRow(ctx, `SHOW wal_level`).Scan(&wal); err != nil {
		return fmt.Errorf("cell %s: %w", m.from, err)
	}
	if wal != "logical" {
		return fmt.Errorf("cell %s runs with wal_level=%s: a move copies with logical replication, which needs wal_level=logical "+
			"(Cloud SQL: set the database flag cloudsql.logical_decoding=on on the cell's instance)", m.from, wal)
	}
	// The target's server reaches the source as the control login, which needs the REPLICATION attribute
	// (https://cloud.google.com/datastream/docs/configure-cloudsql-psql: "ALTER USER … WITH REPLICATION", which
	// Cloud SQL lets cloudsqlsuperuser members run).
	var replication bool
	if err := m.srcAdmin.QueryRow(ctx, `SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user`).Scan(&replication); err != nil {
		return fmt.Errorf("cell %s: %w", m.from, err)
	}
	if !replication {
		if _, err := m.srcAdmin.Exec(ctx, `ALTER ROLE CURRENT_USER WITH REPLICATION`); err != nil {
			return fmt.Errorf("cell %s: the control login needs the REPLICATION attribute to stream the copy, and could not take it "+
				"(%v): run ALTER ROLE <login> WITH REPLICATION as the instance's admin", m.from, err)
		}
	}
	var dbExists, roleExists, super bool
	if err := m.dstAdmin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1),
		EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2), current_setting('is_superuser') = 'on'`,
		m.db, m.role).Scan(&dbExists, &roleExists, &super); err != nil {
		return fmt.Errorf("cell %s: %w", m.to, err)
	}
	// The stack may have provisioned the role (with its own password) and an empty database on the target
	// (database.moving): the move takes them over, as migrate adopts; anything else there is refused.
	// A role already there (the stack's, or left by an earlier move away) is used with TargetPassword, else with the
	// account's current one; migrating the copy as the role proves which.
	if m.o.TargetPassword != "" {
		m.newPassword = m.o.TargetPassword
	}
	if dbExists {
		empty, err := m.emptyOnTarget(ctx)
		if err != nil {
			return err
		}
		if !empty {
			return oms.Errorf(oms.ECONFLICT, "to", "cell %q already has a database %s with tables: drop it if it holds nothing of the account's, then move again", m.to, m.db)
		}
	}
	// The source's schema must be this release's, which the target gets by migrating.
	store, err := m.r.Store(ctx, m.id)
	if err != nil {
		return err
	}
	if _, err := migrateAccount(ctx, store.(*Store).pool); err != nil {
		return fmt.Errorf("migrate the source: %w", err)
	}
	if err := m.srcAdmin.QueryRow(ctx, `SELECT pg_database_size($1)`, m.db).Scan(&m.res.Bytes); err != nil {
		return fmt.Errorf("cell %s: %w", m.from, err)
	}

	qRole, qDB := pgx.Identifier{m.role}.Sanitize(), pgx.Identifier{m.db}.Sanitize()
	if !roleExists {
		// DDL takes no parameters: the password is quoted as a literal.
		if _, err := m.dstAdmin.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '%s'`,
			qRole, strings.ReplaceAll(m.newPassword, "'", "''"))); err != nil {
			return fmt.Errorf("cell %s: create role %s: %w", m.to, m.role, err)
		}
		m.createdRole = true
	}
	if !super {
		// Creating or handing over a database owned by the role requires membership in it.
		if _, err := m.dstAdmin.Exec(ctx, fmt.Sprintf(`GRANT %s TO CURRENT_USER`, qRole)); err != nil {
			return fmt.Errorf("cell %s: grant %s: %w", m.to, m.role, err)
		}
	}
	if dbExists {
		m.tookOver = true
		if _, err := m.dstAdmin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s OWNER TO %s`, qDB, qRole)); err != nil {
			return fmt.Errorf("cell %s: take over %s: %w", m.to, m.db, err)
		}
	} else {
		if _, err := m.dstAdmin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s OWNER %s`, qDB, qRole)); err != nil {
			return fmt.Errorf("cell %s: create %s: %w", m.to, m.db, err)
		}
		m.createdDB = true
	}
	if _, err := m.dstAdmin.Exec(ctx, fmt.Sprintf(`REVOKE ALL ON DATABASE %s FROM PUBLIC`, qDB)); err != nil {
		return fmt.Errorf("cell %s: close %s to other roles: %w", m.to, m.db, err)
	}
	if err := restrictRole(ctx, m.dstAdmin, m.r.log, m.role); err != nil {
		return err
	}
	// The schema, as the account's own role (which proves its password); then empty, for the copy to fill
	// (migrations insert defaults).
	cfg, err := m.r.accountConfig(m.to, m.db, m.role, m.newPassword)
	if err != nil {
		return err
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("cell %s: %w", m.to, err)
	}
	_, err = migrateAccount(ctx, pool)
	pool.Close()
	if pgCode(err) == "28P01" && roleExists {
		return oms.Errorf(oms.EINVALID, "password", "cell %q has the role %s with another password (the stack's database.moving "+
			"provisions it with its own): give it with --password-file, from the role's Secret Manager secret", m.to, m.role)
	}
	if err != nil {
		return fmt.Errorf("cell %s: migrate the copy: %w", m.to, err)
	}
	if m.src, err = m.connect(ctx, m.from); err != nil {
		return err
	}
	if m.dst, err = m.connect(ctx, m.to); err != nil {
		return err
	}
	if m.tables, err = publicTables(ctx, m.src); err != nil {
		return err
	}
	if len(m.tables) == 0 {
		return fmt.Errorf("the account's database %s has no table", m.db)
	}
	if _, err := m.dst.Exec(ctx, `TRUNCATE `+m.tableList()); err != nil {
		return fmt.Errorf("cell %s: empty the copy: %w", m.to, err)
	}
	return nil
}

// emptyOnTarget reports whether the account's database on the target has no table: as the stack provisions it.
func (m *mover) emptyOnTarget(ctx context.Context) (bool, error) {
	conn, err := m.connect(ctx, m.to)
	if err != nil {
		return false, err
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n); err != nil {
		return false, fmt.Errorf("cell %s: %w", m.to, err)
	}
	return n == 0, nil
}

// emptyTarget drops what the move created in the stack's database on the target: every object of the account's role.
func (m *mover) emptyTarget(ctx context.Context) error {
	conn := m.dst
	if conn == nil {
		c, err := m.connect(ctx, m.to)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		conn = c
	}
	_, err := conn.Exec(ctx, `DROP OWNED BY `+pgx.Identifier{m.role}.Sanitize())
	return err
}

func (m *mover) tableList() string {
	q := make([]string, len(m.tables))
	for i, t := range m.tables {
		q[i] = pgx.Identifier{"public", t}.Sanitize()
	}
	return strings.Join(q, ", ")
}

// conninfo is how the target's server reaches the source: the control login, TLS if the runtime uses TLS to that
// cell. The target's server cannot read the runtime's CA file, so it encrypts without verifying.
func (m *mover) conninfo() string {
	cfg := m.src.Config()
	ssl := "disable"
	if cfg.TLSConfig != nil {
		ssl = "require"
	}
	quote := func(v string) string {
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
	}
	return fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=%s sslmode=%s", quote(cfg.Host), cfg.Port,
		quote(m.db), quote(cfg.User), quote(cfg.Password), ssl)
}

// copy publishes the account's tables on the source, subscribes on the target, and waits until every table is
// copied and the stream trails by CatchUpBytes at most.
func (m *mover) copy(ctx context.Context) error {
	name := pgx.Identifier{m.name()}.Sanitize()
	if _, err := m.src.Exec(ctx, `CREATE PUBLICATION `+name+` FOR TABLE `+m.tableList()); err != nil {
		return fmt.Errorf("cell %s: publish: %w", m.from, err)
	}
	m.published = true
	ci := m.conninfo()
	begin := time.Now()
	// CREATE SUBSCRIPTION takes no parameters: conninfo's values are quoted.
	if _, err := m.dst.Exec(ctx, fmt.Sprintf(`CREATE SUBSCRIPTION %s CONNECTION '%s' PUBLICATION %s`,
		name, strings.ReplaceAll(ci, "'", "''"), name)); err != nil {
		return fmt.Errorf("cell %s: subscribe: %w", m.to, err)
	}
	m.subscribed = true
	for {
		var pending, total int
		if err := m.dst.QueryRow(ctx, `SELECT count(*) FILTER (WHERE r.srsubstate <> 'r'), count(*) FROM pg_subscription_rel r
			JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1`, m.name()).Scan(&pending, &total); err != nil {
			return fmt.Errorf("cell %s: copy progress: %w", m.to, err)
		}
		if total == len(m.tables) && pending == 0 {
			break
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	m.res.Copy = time.Since(begin)
	// The copy brings rows, not the planner's statistics: without them the first queries on the new cell may
	// choose plans that make the account slow until autovacuum analyzes it.
	if _, err := m.dst.Exec(ctx, `ANALYZE`); err != nil {
		return fmt.Errorf("cell %s: analyze the copy: %w", m.to, err)
	}
	begin = time.Now()
	for {
		lag, err := m.lag(ctx, "pg_current_wal_lsn()")
		if err != nil {
			return err
		}
		if lag <= m.o.CatchUpBytes {
			break
		}
		if time.Since(begin) > m.o.CatchUpTimeout {
			return fmt.Errorf("the copy still trails cell %s by %d bytes of WAL after %s: the account writes faster than cell %s "+
				"applies; move it at a quieter time (or allow more: --max-catch-up)", m.from, lag, m.o.CatchUpTimeout, m.to)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	m.res.CatchUp = time.Since(begin)
	return nil
}

// lag is how far, in bytes of WAL, the copy's confirmed position trails target (an LSN expression).
func (m *mover) lag(ctx context.Context, target string) (int64, error) {
	var lag *int64
	err := m.srcAdmin.QueryRow(ctx, `SELECT pg_wal_lsn_diff(`+target+`, confirmed_flush_lsn)::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, m.name()).Scan(&lag)
	if err != nil {
		return 0, fmt.Errorf("cell %s: replication slot %s: %w", m.from, m.name(), err)
	}
	if lag == nil {
		return 1 << 62, nil // not confirmed anything yet
	}
	return *lag, nil
}

// switchOver is the pause: close the source database to new connections and end the sessions on it (a request
// in flight fails without committing, as unavailable, and its client retries); then, with no writer left to queue
// behind or deadlock with, lock the account's tables against writes, which holds off a session that connected as
// the database closed and escaped the sweep; let the copy reach the WAL's end, carry the sequences over, switch the
// registry, and end every session again before the locks go.
func (m *mover) switchOver(ctx context.Context) error {
	begin := time.Now()
	deadline := begin.Add(m.o.PauseTimeout)
	qDB := pgx.Identifier{m.db}.Sanitize()
	if _, err := m.srcAdmin.Exec(ctx, `ALTER DATABASE `+qDB+` ALLOW_CONNECTIONS false`); err != nil {
		return fmt.Errorf("cell %s: close %s to new connections: %w", m.from, m.db, err)
	}
	m.closed = true
	if err := m.endSessions(ctx, deadline); err != nil {
		return err
	}
	fence, err := m.src.Begin(ctx)
	if err != nil {
		return fmt.Errorf("cell %s: %w", m.from, err)
	}
	defer fence.Rollback(context.WithoutCancel(ctx))
	if _, err := fence.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, max(1, time.Until(deadline).Milliseconds()))); err != nil {
		return err
	}
	if _, err := fence.Exec(ctx, `LOCK TABLE `+m.tableList()+` IN EXCLUSIVE MODE`); err != nil {
		return fmt.Errorf("cell %s: lock the account's tables: %w", m.from, err)
	}
	// Nothing of the account can commit on the source any more: the copy must reach the WAL's end.
	var lsn string
	if err := m.srcAdmin.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		return fmt.Errorf("cell %s: %w", m.from, err)
	}
	for {
		lag, err := m.lag(ctx, fmt.Sprintf("'%s'::pg_lsn", lsn))
		if err != nil {
			return err
		}
		if lag <= 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the copy did not catch up within %s (%d bytes behind)", m.o.PauseTimeout, lag)
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
	// Logical replication carries rows, not sequences.
	rows, err := fence.Query(ctx, `SELECT format('%I.%I', schemaname, sequencename), last_value FROM pg_sequences
		WHERE schemaname = 'public' AND last_value IS NOT NULL`)
	if err != nil {
		return fmt.Errorf("cell %s: read sequences: %w", m.from, err)
	}
	type seq struct {
		name string
		last int64
	}
	seqs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (seq, error) {
		var s seq
		return s, r.Scan(&s.name, &s.last)
	})
	if err != nil {
		return fmt.Errorf("cell %s: read sequences: %w", m.from, err)
	}
	for _, s := range seqs {
		if _, err := m.dst.Exec(ctx, `SELECT setval($1::regclass, $2, true)`, s.name, s.last); err != nil {
			return fmt.Errorf("cell %s: set sequence %s: %w", m.to, s.name, err)
		}
	}
	tag, err := m.r.control.Exec(ctx, `UPDATE accounts SET cell = $1, db_password = $4 WHERE id = $2 AND cell = $3`,
		m.to, m.id, m.from, m.newPassword)
	if err != nil {
		return fmt.Errorf("switch the registry: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("switch the registry: account %s is no longer on cell %s", m.id, m.from)
	}
	m.switched = true
	// A session that escaped the sweep waits on the locks: end it before they go, so nothing commits on the source.
	if err := m.endSessions(ctx, time.Now().Add(m.o.PauseTimeout)); err != nil {
		return err
	}
	if err := fence.Commit(ctx); err != nil {
		return fmt.Errorf("cell %s: release the locks: %w", m.from, err)
	}
	m.res.Pause = time.Since(begin)
	m.r.forget(m.id)
	return nil
}

// endSessions ends every client session of the account's database on the source but the mover's own (the copy's
// walsender stays), and returns once none is left.
func (m *mover) endSessions(ctx context.Context, deadline time.Time) error {
	for {
		var left int
		if err := m.srcAdmin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = $1 AND backend_type = 'client backend' AND pid <> $2`, m.db, m.src.PgConn().PID()).Scan(&left); err != nil {
			return fmt.Errorf("cell %s: end the sessions of %s: %w", m.from, m.db, err)
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cell %s: %d sessions of %s did not end within %s", m.from, left, m.db, m.o.PauseTimeout)
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
}

// finish drops the replication: the subscription (detached from its slot, as the source takes no more connections)
// and the slot; the source database is left closed and commented.
func (m *mover) finish(ctx context.Context) {
	name := pgx.Identifier{m.name()}.Sanitize()
	for _, s := range []string{`ALTER SUBSCRIPTION ` + name + ` DISABLE`, `ALTER SUBSCRIPTION ` + name + ` SET (slot_name = NONE)`,
		`DROP SUBSCRIPTION ` + name} {
		if _, err := m.dst.Exec(ctx, s); err != nil {
			m.r.log.Error("move: drop the subscription", "account", m.id, "cell", m.to, "err", err)
			return
		}
	}
	m.subscribed = false
	var err error
	for range 50 { // the slot is released when the terminated walsender exits
		if _, err = m.srcAdmin.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, m.name()); err == nil || pgCode(err) == "42704" {
			break
		}
		_ = sleep(ctx, 100*time.Millisecond)
	}
	if err != nil && pgCode(err) != "42704" {
		m.r.log.Error("move: drop the replication slot", "account", m.id, "cell", m.from, "slot", m.name(), "err", err)
	}
	if err := m.srcCloseComment(ctx); err != nil {
		m.r.log.Error("move: comment the source database", "account", m.id, "cell", m.from, "err", err)
	}
}

func (m *mover) srcCloseComment(ctx context.Context) error {
	_, err := m.srcAdmin.Exec(ctx, fmt.Sprintf(`COMMENT ON DATABASE %s IS 'omsmove: account %s moved to cell %s at %s; closed to connections, drop it when no longer needed'`,
		pgx.Identifier{m.db}.Sanitize(), m.id, m.to, time.Now().UTC().Format(time.RFC3339)))
	return err
}

// undo removes what a failed move created, unless the registry had switched (then the move stands).
func (m *mover) undo(ctx context.Context, cause error) error {
	if m.switched {
		m.finish(ctx)
		return fmt.Errorf("account %s is on cell %s now (the registry switched), but closing cell %s's copy failed: %w", m.id, m.to, m.from, cause)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if m.closed { // writes resume on the source
		if _, err := m.srcAdmin.Exec(cctx, `ALTER DATABASE `+pgx.Identifier{m.db}.Sanitize()+` ALLOW_CONNECTIONS true`); err != nil {
			m.r.log.Error("undo move: reopen the source: run ALTER DATABASE … ALLOW_CONNECTIONS true", "account", m.id, "cell", m.from, "err", err)
		}
	}
	name := pgx.Identifier{m.name()}.Sanitize()
	if m.subscribed && m.dst != nil {
		if _, err := m.dst.Exec(cctx, `DROP SUBSCRIPTION IF EXISTS `+name); err != nil {
			m.r.log.Error("undo move: drop the subscription", "account", m.id, "err", err)
		}
	}
	if m.published && m.src != nil {
		if _, err := m.src.Exec(cctx, `DROP PUBLICATION IF EXISTS `+name); err != nil {
			m.r.log.Error("undo move: drop the publication", "account", m.id, "err", err)
		}
	}
	if m.dst != nil && !m.tookOver {
		m.dst.Close(cctx)
		m.dst = nil
	}
	if m.createdDB {
		if _, err := m.dstAdmin.Exec(cctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{m.db}.Sanitize()+` WITH (FORCE)`); err != nil {
			m.r.log.Error("undo move: drop the copy", "account", m.id, "err", err)
		}
	}
	if m.tookOver { // the stack's database: leave it as empty as it was, for the next attempt
		if err := m.emptyTarget(cctx); err != nil {
			m.r.log.Error("undo move: empty the stack's database", "account", m.id, "err", err)
		}
	}
	if m.createdRole {
		if _, err := m.dstAdmin.Exec(cctx, `DROP ROLE IF EXISTS `+pgx.Identifier{m.role}.Sanitize()); err != nil {
			m.r.log.Error("undo move: drop the role", "account", m.id, "err", err)
		}
	}
	return fmt.Errorf("move account %s from cell %s to %s (nothing changed): %w", m.id, m.from, m.to, cause)
}

func (m *mover) close(ctx context.Context) {
	for _, c := range []*pgx.Conn{m.src, m.dst} {
		if c != nil {
			c.Close(context.WithoutCancel(ctx))
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
