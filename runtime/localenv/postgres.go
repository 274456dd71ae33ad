package localenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresOptions configure StartPostgres.
type PostgresOptions struct {
	// Dir is the data root (created): data directories, logs, sockets and the superuser password live
	// under it. If it already holds a cluster started by this package, that cluster is reused.
	Dir string
	// Standby adds a streaming standby (pg_basebackup, with a physical replication slot).
	Standby bool
	// Async makes replication asynchronous. By default a standby is synchronous
	// (synchronous_standby_names='*'): a commit is acknowledged only after the standby has flushed it, so
	// promoting the standby after KillPrimary loses no acknowledged transaction — what fault drills assert.
	Async bool
	// Settings are extra server settings passed as -c name=value to every node, e.g. {"fsync": "off"}.
	Settings map[string]string
	// TLS, if set, makes every node serve TLS with this certificate and refuse connections without TLS over TCP,
	// like Cloud SQL (ENCRYPTED_ONLY), so clients can verify the server as they verify Cloud SQL. The URLs then
	// carry sslmode=require.
	TLS *PostgresTLS
	// BinDir is where the server binaries are; default: the newest /usr/lib/postgresql/*/bin, else PATH.
	BinDir string
	// Logger receives start-up timings and events; default slog.Default().
	Logger *slog.Logger
}

// PostgresTLS is a server certificate chain and its private key, in PEM.
type PostgresTLS struct {
	CertPEM, KeyPEM []byte
}

const (
	pgSuperuser = "postgres"
	pgSlot      = "localenv_standby"
)

// Postgres is a local PostgreSQL cluster: a primary and optionally a streaming standby, each a process
// group this package started.
type Postgres struct {
	opts     PostgresOptions
	dir      string
	log      *slog.Logger
	bin      string
	user     *osUser
	password string
	sockDir  string
	tlsDir   string // server.crt and server.key, when serving TLS

	mu       sync.Mutex
	primary  *pgNode
	standby  *pgNode
	promoted bool
}

type pgNode struct {
	role string // "primary" or "standby": the role it was started in
	data string
	port int
	proc *process
}

// StartPostgres starts a primary (and a standby if asked) on free loopback ports and returns once every node
// accepts connections and the standby streams. A cluster already initialised under opts.Dir is reused with its
// data (the persistent dev cluster); a standby is always rebuilt from the primary.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	if opts.Dir == "" {
		return nil, errors.New("localenv: PostgresOptions.Dir is required (the data root, e.g. t.TempDir())")
	}
	begin := time.Now()
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("localenv: postgres dir: %w", err)
	}
	bin, err := findPostgresBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	u, err := serviceUser("postgres")
	if err != nil {
		return nil, fmt.Errorf("localenv: postgres: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("localenv: postgres dir: %w", err)
	}
	if err := ensureReachable(dir, u, log); err != nil {
		return nil, fmt.Errorf("localenv: postgres dir: %w", err)
	}
	p := &Postgres{opts: opts, dir: dir, log: log, bin: bin, user: u}

	// Unix sockets only when the path fits (sun_path is 108 bytes); TCP on loopback is always there.
	if sock := filepath.Join(dir, "sock"); len(sock)+len("/.s.PGSQL.65535.lock") < 100 {
		if err := u.mkdir(sock); err != nil {
			return nil, fmt.Errorf("localenv: postgres socket dir: %w", err)
		}
		p.sockDir = sock
	}

	reused, err := p.initPrimary(ctx)
	if err != nil {
		return nil, err
	}
	if opts.TLS != nil {
		// The server refuses a key readable by others, or not owned by the user it runs as.
		tlsDir := filepath.Join(dir, "tls")
		err := p.user.mkdir(tlsDir)
		if err == nil {
			err = p.user.writeFile(filepath.Join(tlsDir, "server.crt"), opts.TLS.CertPEM, 0o600)
		}
		if err == nil {
			err = p.user.writeFile(filepath.Join(tlsDir, "server.key"), opts.TLS.KeyPEM, 0o600)
		}
		if err == nil {
			err = hostSSLOnly(filepath.Join(dir, "primary", "pg_hba.conf"))
		}
		if err != nil {
			return nil, fmt.Errorf("localenv: postgres TLS: %w", err)
		}
		p.tlsDir = tlsDir
	}
	p.primary = &pgNode{role: "primary", data: filepath.Join(dir, "primary")}
	if err := p.startNode(ctx, p.primary); err != nil {
		return nil, err
	}
	if opts.Standby {
		if err := p.startStandby(ctx); err != nil {
			_ = p.Stop()
			return nil, err
		}
	}
	log.Info("localenv: postgres ready", "dir", dir, "primary_port", p.primary.port, "standby_port", p.StandbyPort(),
		"reused", reused, "bin", bin, "elapsed", time.Since(begin).Round(time.Millisecond))
	return p, nil
}

// findPostgresBinDir picks the server binaries: an explicit dir, else the newest Debian-style
// /usr/lib/postgresql/<version>/bin, else the directory of `postgres` on PATH.
func findPostgresBinDir(override string) (string, error) {
	if override != "" {
		if _, err := os.Stat(filepath.Join(override, "postgres")); err != nil {
			return "", fmt.Errorf("localenv: PostgresOptions.BinDir %q has no postgres binary: %w", override, err)
		}
		return override, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	sort.Slice(matches, func(i, j int) bool { return pgDirVersion(matches[i]) > pgDirVersion(matches[j]) })
	if len(matches) > 0 {
		return filepath.Dir(matches[0]), nil
	}
	if path, err := exec.LookPath("postgres"); err == nil {
		return filepath.Dir(path), nil
	}
	return "", errors.New("localenv: PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin or on PATH; install them with scripts/install-services.sh")
}

// pgDirVersion turns /usr/lib/postgresql/15/bin/postgres into 15000 (and 9.6 into 9006) for sorting.
func pgDirVersion(path string) int {
	v := filepath.Base(filepath.Dir(filepath.Dir(path)))
	major, minor, _ := strings.Cut(v, ".")
	a, _ := strconv.Atoi(major)
	b, _ := strconv.Atoi(minor)
	return a*1000 + b
}

var pgVersionRe = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

func (p *Postgres) serverMajor(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(p.bin, "postgres"), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("localenv: postgres --version: %w", err)
	}
	m := pgVersionRe.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("localenv: unexpected postgres --version output %q", out)
	}
	return string(m[1]), nil
}

func (p *Postgres) passwordFile() string { return filepath.Join(p.dir, "superuser-password") }

// initPrimary runs initdb unless dir/primary already holds a cluster of the same major version.
func (p *Postgres) initPrimary(ctx context.Context) (reused bool, err error) {
	data := filepath.Join(p.dir, "primary")
	major, err := p.serverMajor(ctx)
	if err != nil {
		return false, err
	}
	if v, err := os.ReadFile(filepath.Join(data, "PG_VERSION")); err == nil {
		if strings.TrimSpace(string(v)) != major {
			return false, fmt.Errorf("localenv: %s holds a PostgreSQL %s cluster but the binaries in %s are version %s; remove the directory to start afresh",
				data, strings.TrimSpace(string(v)), p.bin, major)
		}
		pw, err := os.ReadFile(p.passwordFile())
		if err != nil {
			return false, fmt.Errorf("localenv: %s holds a cluster but its password file is unreadable (%w); remove the directory to start afresh", data, err)
		}
		p.password = strings.TrimSpace(string(pw))
		return true, nil
	}
	if entries, err := os.ReadDir(data); err == nil && len(entries) > 0 {
		return false, fmt.Errorf("localenv: %s is not empty but holds no cluster (no PG_VERSION); remove it to start afresh", data)
	}

	begin := time.Now()
	p.password = randomToken(24)
	if err := p.user.mkdir(data); err != nil {
		return false, fmt.Errorf("localenv: postgres data dir: %w", err)
	}
	pwfile := filepath.Join(p.dir, ".initdb-password")
	if err := p.user.writeFile(pwfile, []byte(p.password+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("localenv: initdb password file: %w", err)
	}
	defer os.Remove(pwfile)
	// Password (SCRAM) on TCP, so per-account roles and their passwords are real; trust on the private
	// unix socket only.
	if err := runCmd(ctx, p.user, nil, filepath.Join(p.bin, "initdb"), "-D", data, "-U", pgSuperuser, "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"); err != nil {
		return false, fmt.Errorf("localenv: initdb: %w", err)
	}
	if err := os.WriteFile(p.passwordFile(), []byte(p.password+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("localenv: save superuser password: %w", err)
	}
	p.log.Info("localenv: postgres initdb", "dir", data, "elapsed", time.Since(begin).Round(time.Millisecond))
	return false, nil
}

// hostSSLOnly turns the TCP ("host") lines of a pg_hba.conf into "hostssl" lines: no TLS, no connection.
func hostSSLOnly(hba string) error {
	b, err := os.ReadFile(hba)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if rest, ok := strings.CutPrefix(l, "host "); ok {
			lines[i] = "hostssl " + rest
		}
	}
	return os.WriteFile(hba, []byte(strings.Join(lines, "\n")), 0o600)
}

// serverArgs are the command-line settings of a node; ports and settings on the command line, not in
// postgresql.conf, so a copied data directory (the standby) does not inherit the primary's.
func (p *Postgres) serverArgs(n *pgNode) []string {
	set := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": p.sockDir,
		"wal_level":               "replica",
		"hot_standby":             "on",
		"wal_log_hints":           "on", // lets pg_rewind re-attach a failed primary
		"max_wal_senders":         "10",
		"max_replication_slots":   "10",
		"max_connections":         "200",
		"cluster_name":            "localenv_" + n.role, // also the standby's application_name
	}
	if n.role == "primary" && p.opts.Standby && !p.opts.Async {
		set["synchronous_standby_names"] = "*"
	}
	if p.tlsDir != "" {
		set["ssl"] = "on"
		set["ssl_cert_file"] = filepath.Join(p.tlsDir, "server.crt")
		set["ssl_key_file"] = filepath.Join(p.tlsDir, "server.key")
	}
	for k, v := range p.opts.Settings {
		set[k] = v
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := []string{"-D", n.data, "-p", strconv.Itoa(n.port)}
	for _, k := range keys {
		args = append(args, "-c", k+"="+set[k])
	}
	return args
}

// startNode starts a node on a fresh port (retrying on a port collision) and waits until it accepts
// connections.
func (p *Postgres) startNode(ctx context.Context, n *pgNode) error {
	begin := time.Now()
	err := withPortRetry(func(int) error {
		port, err := freePort()
		if err != nil {
			return err
		}
		n.port = port
		proc, err := startProcess(procSpec{
			name: "postgres " + n.role, path: filepath.Join(p.bin, "postgres"), args: p.serverArgs(n),
			dir: n.data, logPath: filepath.Join(p.dir, n.role+".log"), user: p.user,
		})
		if err != nil {
			return fmt.Errorf("localenv: %w", err)
		}
		if err := waitUntil(ctx, proc, func(ctx context.Context) error { return p.ping(ctx, n) }); err != nil {
			proc.kill()
			return fmt.Errorf("localenv: postgres %s not ready: %w", n.role, err)
		}
		p.mu.Lock()
		n.proc = proc
		p.mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	p.log.Info("localenv: postgres node accepting connections", "role", n.role, "port", n.port, "pid", n.proc.pid,
		"elapsed", time.Since(begin).Round(time.Millisecond))
	return nil
}

func (p *Postgres) ping(ctx context.Context, n *pgNode) error {
	conn, err := pgx.Connect(ctx, p.nodeURL(n.port, "postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// startStandby clones the primary with pg_basebackup (creating the replication slot), starts it and waits
// until it streams.
func (p *Postgres) startStandby(ctx context.Context) error {
	begin := time.Now()
	data := filepath.Join(p.dir, "standby")
	if err := os.RemoveAll(data); err != nil {
		return fmt.Errorf("localenv: remove old standby: %w", err)
	}
	if err := p.user.mkdir(data); err != nil {
		return fmt.Errorf("localenv: standby dir: %w", err)
	}
	// A reused cluster may still hold the slot of its previous standby.
	if err := p.Exec(ctx, p.nodeURL(p.primary.port, "postgres"),
		`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, pgSlot); err != nil {
		return fmt.Errorf("localenv: drop old replication slot: %w", err)
	}
	if err := runCmd(ctx, p.user, []string{"PGPASSWORD=" + p.password}, filepath.Join(p.bin, "pg_basebackup"),
		"-D", data, "-R", "-X", "stream", "-C", "-S", pgSlot, "-c", "fast", "--no-sync",
		"-h", "127.0.0.1", "-p", strconv.Itoa(p.primary.port), "-U", pgSuperuser); err != nil {
		return fmt.Errorf("localenv: pg_basebackup: %w", err)
	}
	p.log.Info("localenv: postgres base backup taken", "elapsed", time.Since(begin).Round(time.Millisecond))
	p.standby = &pgNode{role: "standby", data: data}
	if err := p.startNode(ctx, p.standby); err != nil {
		return err
	}
	return p.WaitStreaming(ctx)
}

// WaitStreaming waits until the primary reports the standby as streaming (and, unless Async, as its
// synchronous standby).
func (p *Postgres) WaitStreaming(ctx context.Context) error {
	if p.standby == nil {
		return errors.New("localenv: WaitStreaming: the cluster has no standby (PostgresOptions.Standby)")
	}
	q := `SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'`
	if !p.opts.Async {
		q += ` AND sync_state IN ('sync', 'quorum')`
	}
	url := p.PrimaryURL("postgres")
	err := waitUntil(ctx, p.primary.proc, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			return err
		}
		if n < 1 {
			return errors.New("standby not streaming yet")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("localenv: wait for the standby to stream: %w", err)
	}
	return nil
}

// Exec runs one statement on a new connection to url (a URL of this cluster, e.g. PrimaryURL("postgres")).
func (p *Postgres) Exec(ctx context.Context, url, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

func (p *Postgres) nodeURL(port int, db string) string {
	return p.buildURL([]int{port}, db)
}

func (p *Postgres) buildURL(ports []int, db string) string {
	hosts := make([]string, len(ports))
	for i, port := range ports {
		hosts[i] = "127.0.0.1:" + strconv.Itoa(port)
	}
	sslmode := "disable"
	if p.tlsDir != "" {
		sslmode = "require"
	}
	q := url.Values{"sslmode": {sslmode}, "connect_timeout": {"5"}}
	if len(ports) > 1 {
		q.Set("target_session_attrs", "read-write")
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(pgSuperuser, p.password), Host: strings.Join(hosts, ","),
		Path: "/" + db, RawQuery: q.Encode()}
	return u.String()
}

// URL is a superuser connection URL for database db over every node (primary first) with
// target_session_attrs=read-write, so a new connection finds whichever node currently accepts writes —
// the promoted standby after a failover.
func (p *Postgres) URL(db string) string {
	ports := []int{p.primary.port}
	if p.standby != nil {
		ports = append(ports, p.standby.port)
	}
	return p.buildURL(ports, db)
}

// PrimaryURL is a superuser URL for database db on the node started as the primary only.
func (p *Postgres) PrimaryURL(db string) string { return p.nodeURL(p.primary.port, db) }

// StandbyURL is a superuser URL for database db on the node started as the standby ("" without one).
func (p *Postgres) StandbyURL(db string) string {
	if p.standby == nil {
		return ""
	}
	return p.nodeURL(p.standby.port, db)
}

// PrimaryPort is the port of the node started as the primary.
func (p *Postgres) PrimaryPort() int { return p.primary.port }

// StandbyPort is the port of the node started as the standby, 0 without one.
func (p *Postgres) StandbyPort() int {
	if p.standby == nil {
		return 0
	}
	return p.standby.port
}

// Password is the generated superuser password (user "postgres").
func (p *Postgres) Password() string { return p.password }

// BinDir is the directory of the PostgreSQL binaries in use (pgbench, pg_dump, psql, ...).
func (p *Postgres) BinDir() string { return p.bin }

// Dir is the data root.
func (p *Postgres) Dir() string { return p.dir }

// KillPrimary SIGKILLs the primary's whole process group (postmaster and backends), as when its machine
// is lost, and returns once it is gone.
func (p *Postgres) KillPrimary() error {
	p.mu.Lock()
	proc := p.primary.proc
	p.mu.Unlock()
	if proc == nil || proc.exited() {
		return errors.New("localenv: KillPrimary: the primary is not running")
	}
	begin := time.Now()
	proc.kill()
	p.log.Info("localenv: postgres primary killed", "pid", proc.pid, "elapsed", time.Since(begin).Round(time.Millisecond))
	return nil
}

// Promote promotes the standby (pg_ctl promote -w) and returns once it accepts writes.
func (p *Postgres) Promote(ctx context.Context) error {
	if p.standby == nil {
		return errors.New("localenv: Promote: the cluster has no standby (PostgresOptions.Standby)")
	}
	begin := time.Now()
	if err := runCmd(ctx, p.user, nil, filepath.Join(p.bin, "pg_ctl"), "promote", "-w", "-t", "60", "-D", p.standby.data); err != nil {
		return fmt.Errorf("localenv: promote standby: %w", err)
	}
	p.mu.Lock()
	p.promoted = true
	p.mu.Unlock()
	p.log.Info("localenv: postgres standby promoted", "port", p.standby.port, "elapsed", time.Since(begin).Round(time.Millisecond))
	return nil
}

// ReplicationLag measures how long the standby takes to replay everything the primary had flushed when
// called (one round trip included): a few milliseconds when idle and caught up.
func (p *Postgres) ReplicationLag(ctx context.Context) (time.Duration, error) {
	if p.standby == nil {
		return 0, errors.New("localenv: ReplicationLag: the cluster has no standby (PostgresOptions.Standby)")
	}
	primary, err := pgx.Connect(ctx, p.PrimaryURL("postgres"))
	if err != nil {
		return 0, fmt.Errorf("localenv: replication lag: connect primary: %w", err)
	}
	defer primary.Close(ctx)
	standby, err := pgx.Connect(ctx, p.StandbyURL("postgres"))
	if err != nil {
		return 0, fmt.Errorf("localenv: replication lag: connect standby: %w", err)
	}
	defer standby.Close(ctx)

	begin := time.Now()
	var lsn string
	if err := primary.QueryRow(ctx, `SELECT pg_current_wal_flush_lsn()::text`).Scan(&lsn); err != nil {
		return 0, fmt.Errorf("localenv: replication lag: primary position: %w", err)
	}
	for {
		var replayed bool
		if err := standby.QueryRow(ctx, `SELECT COALESCE(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)`, lsn).Scan(&replayed); err != nil {
			return 0, fmt.Errorf("localenv: replication lag: standby position: %w", err)
		}
		if replayed {
			return time.Since(begin), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("localenv: replication lag: standby has not replayed %s: %w", lsn, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Stop shuts every node down (fast shutdown, then SIGKILL after 20s) and waits for their processes to
// exit. It only signals the process groups it started and is safe to call more than once.
func (p *Postgres) Stop() error {
	begin := time.Now()
	p.mu.Lock()
	var running []*process
	for _, n := range []*pgNode{p.primary, p.standby} { // primary first: a synchronous primary waits for its standby
		if n != nil && n.proc != nil && !n.proc.exited() {
			running = append(running, n.proc)
		}
	}
	p.mu.Unlock()
	if len(running) == 0 {
		return nil
	}
	for _, proc := range running {
		proc.stop(syscall.SIGINT, 20*time.Second) // fast shutdown
	}
	p.log.Info("localenv: postgres stopped", "dir", p.dir, "elapsed", time.Since(begin).Round(time.Millisecond))
	return nil
}

// Processes lists the PIDs of every running process (tests prove Stop leaves none; omsbench reads their CPU).
func (p *Postgres) Processes() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for _, n := range []*pgNode{p.primary, p.standby} {
		if n != nil && n.proc != nil {
			out = append(out, n.proc.tree()...)
		}
	}
	return out
}

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}
