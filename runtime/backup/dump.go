package backup

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"gocloud.dev/blob"

	"github.com/omscloud/omscloud/runtime/postgres"
)

// Options configures Backup and Restore.
type Options struct {
	// DatabaseURL is the control database (the registry); its user must be able
	// to create databases and roles (restore) and read the registry.
	DatabaseURL string
	// Cells are the database servers of the accounts (OMS_DB_CELLS; empty: all on the control database's). The
	// control login reaches each; an account is dumped from its cell and restored onto it.
	Cells postgres.Cells
	// NamePrefix of account databases for accounts restore has to create (default: the control database name).
	NamePrefix string
	// Bucket holds the archives (file:///dir or gs://bucket).
	Bucket string
	// MediaURL is the media bucket copied into the archive (and back on restore); empty skips media.
	MediaURL string
	// Key wraps each archive's data key.
	Key KeyWrapper
	// Release identifies the running release (the image reference).
	Release string
	// PGBinDir holds pg_dump and pg_restore (default: PATH, else the newest /usr/lib/postgresql/*/bin).
	PGBinDir string
	// Force restores over account databases that have taken writes since their restore baseline
	// (postgres.WrittenSince); without it Restore refuses and changes nothing.
	Force  bool
	Logger *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// pgTool finds a PostgreSQL client program.
func pgTool(dir, name string) (string, error) {
	if dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s not found in %s", name, dir)
		}
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) == 0 {
		return "", fmt.Errorf("%s not found on PATH nor in /usr/lib/postgresql/*/bin: install the PostgreSQL client (postgresql-client)", name)
	}
	sort.Slice(matches, func(i, j int) bool { return pgMajor(matches[i]) > pgMajor(matches[j]) })
	return matches[0], nil
}

func pgMajor(path string) int {
	var n int
	fmt.Sscanf(filepath.Base(filepath.Dir(filepath.Dir(path))), "%d", &n)
	return n
}

// accountRow is a registry row; the archive keeps the role's password (it is
// encrypted there) so a DR restore into an empty cluster can recreate the role.
type accountRow struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	DBName     string `json:"dbName"`
	DBRole     string `json:"dbRole"`
	DBPassword string `json:"dbPassword"`
	// Cell holds the database ("" in archives from before cells: postgres.MainCell).
	Cell      string    `json:"cell,omitempty"`
	Ready     bool      `json:"ready"`
	CreatedAt time.Time `json:"createdAt"`
}

// apiKeyRow is an API key hash: restoring it keeps customers' integrations working after DR.
type apiKeyRow struct {
	Hash      []byte    `json:"hash"`
	AccountID string    `json:"accountId"`
	CreatedAt time.Time `json:"createdAt"`
}

type registryDump struct {
	Accounts []accountRow `json:"accounts"`
	APIKeys  []apiKeyRow  `json:"apiKeys"`
}

const registryEntry = "registry.json"

func readRegistry(ctx context.Context, conn *pgx.Conn) (*registryDump, error) {
	rows, err := conn.Query(ctx, `SELECT id, name, db_name, db_role, db_password, cell, ready, created_at FROM accounts
		WHERE ready ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	accts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (accountRow, error) {
		var a accountRow
		return a, r.Scan(&a.ID, &a.Name, &a.DBName, &a.DBRole, &a.DBPassword, &a.Cell, &a.Ready, &a.CreatedAt)
	})
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	rows, err = conn.Query(ctx, `SELECT k.key_hash, k.account_id, k.created_at FROM api_keys k
		JOIN accounts a ON a.id = k.account_id WHERE a.ready ORDER BY k.account_id, k.created_at, k.key_hash`)
	if err != nil {
		return nil, fmt.Errorf("read api keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (apiKeyRow, error) {
		var k apiKeyRow
		return k, r.Scan(&k.Hash, &k.AccountID, &k.CreatedAt)
	})
	if err != nil {
		return nil, fmt.Errorf("read api keys: %w", err)
	}
	return &registryDump{Accounts: accts, APIKeys: keys}, nil
}

// cellOf is the cell of a registry row.
func (a accountRow) cellOf() string { return cmp.Or(a.Cell, postgres.MainCell) }

// Result summarises a backup.
type Result struct {
	Key      string
	Manifest *Manifest
	Bytes    int64
	Elapsed  time.Duration
}

// countingWriter counts what goes to the bucket.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Backup writes one archive of tier to the bucket: the registry, every ready
// account's database (pg_dump custom format), the media objects and the release.
func Backup(ctx context.Context, tier string, o Options) (*Result, error) {
	o.defaults()
	if _, ok := Retention[tier]; !ok {
		return nil, fmt.Errorf("--tier %q: use hourly, weekly or monthly", tier)
	}
	if o.Key == nil {
		return nil, errors.New("backup: no key")
	}
	begin := o.Now()
	pgDump, err := pgTool(o.PGBinDir, "pg_dump")
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, o.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect to the control database: %w", err)
	}
	defer conn.Close(ctx)
	reg, err := readRegistry(ctx, conn)
	if err != nil {
		return nil, err
	}
	bucket, err := OpenBucket(ctx, o.Bucket)
	if err != nil {
		return nil, err
	}
	defer bucket.Close()
	var media *blob.Bucket
	if o.MediaURL != "" {
		if media, err = OpenBucket(ctx, o.MediaURL); err != nil {
			return nil, fmt.Errorf("--media-url: %w", err)
		}
		defer media.Close()
	}

	id, key := NewID(tier, begin)
	// Cancelling wctx before Close aborts the upload: a failed backup leaves no object.
	wctx, abort := context.WithCancel(ctx)
	defer abort()
	bw, err := bucket.NewWriter(wctx, key, &blob.WriterOptions{ContentType: "application/octet-stream",
		Metadata: map[string]string{"tier": tier, "release": o.Release}})
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", key, err)
	}
	cw := &countingWriter{w: bw}
	fail := func(err error) (*Result, error) {
		abort()
		_ = bw.Close()
		return nil, err
	}
	aw, err := NewWriter(cw, Header{ID: id, Tier: tier, Created: begin.UTC(), Release: o.Release}, o.Key)
	if err != nil {
		return fail(err)
	}
	regJSON, err := json.Marshal(reg)
	if err != nil {
		return fail(err)
	}
	if err := aw.Create(registryEntry); err != nil {
		return fail(err)
	}
	if _, err := aw.Write(regJSON); err != nil {
		return fail(err)
	}
	var accounts []AccountEntry
	for _, a := range reg.Accounts {
		entry := "accounts/" + a.ID + ".pgdump"
		rows, err := dumpAccount(ctx, o, pgDump, a, aw, entry)
		if err != nil {
			return fail(fmt.Errorf("account %s: %w", a.ID, err))
		}
		accounts = append(accounts, AccountEntry{ID: a.ID, DBName: a.DBName, Entry: entry, Rows: rows})
		o.Logger.Info("account dumped", "account", a.ID)
	}
	var mi *MediaInfo
	if media != nil {
		if mi, err = copyMedia(ctx, media, aw); err != nil {
			return fail(err)
		}
		mi.URL = o.MediaURL
	}
	m, err := aw.Close(accounts, mi)
	if err != nil {
		return fail(err)
	}
	if err := bw.Close(); err != nil {
		return nil, fmt.Errorf("upload %s: %w", key, err)
	}
	return &Result{Key: key, Manifest: m, Bytes: cw.n, Elapsed: o.Now().Sub(begin)}, nil
}

// dumpAccount streams pg_dump of one account database into entry. pg_dump runs
// as the account's own role (the owner of everything in it) in a snapshot
// exported by a transaction that also counts every table, so the counts match
// the dump exactly and restore can check them.
func dumpAccount(ctx context.Context, o Options, pgDump string, a accountRow, aw *Writer, entry string) (map[string]int64, error) {
	// The password goes to PGPASSWORD, never into argv.
	u, err := o.Cells.URL(o.DatabaseURL, a.cellOf(), a.DBName, a.DBRole)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		return nil, errors.New("account database URL: invalid")
	}
	cfg.Password = a.DBPassword
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", a.DBName, err)
	}
	defer conn.Close(ctx)
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin snapshot: %w", err)
	}
	defer tx.Rollback(ctx)
	var snapshot string
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&snapshot); err != nil {
		return nil, fmt.Errorf("export snapshot: %w", err)
	}
	rows, err := postgres.CountRows(ctx, tx)
	if err != nil {
		return nil, err
	}
	if err := aw.Create(entry); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, pgDump, "--format=custom", "--no-owner", "--no-acl", "--snapshot="+snapshot,
		"--dbname="+u)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+a.DBPassword)
	cmd.Stdout = aw
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("pg_dump %s: %w: %s", a.DBName, err, strings.TrimSpace(stderr.String()))
	}
	return rows, nil
}

// copyMedia streams every media object into the archive under media/<key>.
// Media go into the archive (not a list of object generations) so that one
// archive restores on its own, in a DR region, even if the media bucket is lost.
func copyMedia(ctx context.Context, media *blob.Bucket, aw *Writer) (*MediaInfo, error) {
	mi := &MediaInfo{}
	it := media.List(nil)
	for {
		lo, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list media: %w", err)
		}
		if lo.IsDir {
			continue
		}
		r, err := media.NewReader(ctx, lo.Key, nil)
		if err != nil {
			return nil, fmt.Errorf("read media %s: %w", lo.Key, err)
		}
		if err := aw.Create("media/" + lo.Key); err != nil {
			r.Close()
			return nil, err
		}
		n, err := io.Copy(aw, r)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("copy media %s: %w", lo.Key, err)
		}
		mi.Objects++
		mi.Bytes += n
	}
	return mi, nil
}
