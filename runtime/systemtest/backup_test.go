package systemtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/backup"
	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/postgres"
)

// backupEnv is a control database with two accounts full of data, a media
// bucket, a backup bucket and a key file, all fresh for the test.
type backupEnv struct {
	controlURL, adminURL string
	env                  map[string]string
	bucketDir, mediaDir  string
	keys                 map[string]string // account → API key
	prefix               string
}

func newBackupEnv(t *testing.T) *backupEnv {
	t.Helper()
	reg, url := omstest.Registry(t, nil)
	pg := omstest.Postgres(t)
	e := &backupEnv{controlURL: url, adminURL: pg.PrimaryURL("postgres"), keys: map[string]string{},
		bucketDir: t.TempDir(), mediaDir: t.TempDir()}
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	e.prefix = cfg.Database
	for i, id := range []string{"alpha", "bravo-2"} {
		e.keys[id] = fillAccount(t, reg, &oms.Account{ID: id, Name: "Account " + id}, i)
	}
	require.NoError(t, os.WriteFile(filepath.Join(e.mediaDir, "logo.png"), []byte("not really a png"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(e.mediaDir, "labels"), 0o755))
	big := make([]byte, 3<<20+17) // spans chunks
	_, _ = rand.Read(big)
	require.NoError(t, os.WriteFile(filepath.Join(e.mediaDir, "labels", "big.bin"), big, 0o644))
	e.env = map[string]string{
		"OMS_DATABASE_URL":    url,
		"OMS_BACKUP_KEY_FILE": writeKey(t),
		"OMS_MEDIA_URL":       "file://" + e.mediaDir,
		"OMS_RELEASE":         "europe-docker.pkg.dev/p/oms/runtime@sha256:1234",
		"OMS_PG_BIN_DIR":      pg.BinDir(),
	}
	return e
}

// fillAccount creates an account and gives it two locations, 600 stock lines, 40 orders (some cancelled) and
// their events; it returns the account's API key.
func fillAccount(t *testing.T, reg *postgres.Registry, a *oms.Account, i int) string {
	t.Helper()
	ctx := context.Background()
	key, err := reg.CreateAccount(ctx, a)
	require.NoError(t, err)
	s, err := reg.Store(ctx, a.ID)
	require.NoError(t, err)
	lat, lon := 52.0+float64(i), 4.0
	for _, loc := range []string{"store-1", "dc-1"} {
		_, err := s.PutLocation(ctx, &oms.Location{Ref: loc, Name: loc, Type: "store", Lat: &lat, Lon: &lon})
		require.NoError(t, err)
	}
	var csv strings.Builder
	csv.WriteString("sku,location,on_hand\n")
	for n := range 300 {
		fmt.Fprintf(&csv, "SKU-%d,store-1,%d\nSKU-%d,dc-1,%d\n", n, n+5, n, n+7)
	}
	_, err = s.LoadInventory(ctx, oms.NewCSVReader(strings.NewReader(csv.String())))
	require.NoError(t, err)
	for n := range 40 {
		o, _, err := s.CreateOrder(ctx, fmt.Sprintf("k-%d", n), &oms.OrderRequest{Ref: fmt.Sprintf("o-%d", n),
			Items:    []oms.Item{{SKU: fmt.Sprintf("SKU-%d", n), Qty: 2}},
			Delivery: oms.Delivery{Type: "CC", Location: "store-1"}})
		require.NoError(t, err)
		if n%7 == 0 {
			_, err = s.CancelOrder(ctx, o.ID)
			require.NoError(t, err)
		}
	}
	return key
}

func writeKey(t *testing.T) string {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	p := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o400))
	return p
}

func (e *backupEnv) bucket() string { return "file://" + e.bucketDir }

func (e *backupEnv) oms(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	merged := map[string]string{}
	for k, v := range e.env {
		merged[k] = v
	}
	for k, v := range env {
		merged[k] = v
	}
	out, logs, err := Run(t, merged, args...)
	if err != nil {
		t.Logf("oms %v: %v\n%s", args, err, logs)
	}
	return out, err
}

// listed is one line of `oms backup list --json`, as a reader of its output sees it.
type listed struct {
	backup.Object
	Release  string   `json:"release"`
	Accounts []string `json:"accounts"`
}

// snapshot is everything the API can read of an account.
type snapshot struct {
	Orders []*oms.Order
	Stock  []*oms.StockLevel
	Events []*oms.Event
}

func takeSnapshot(t *testing.T, controlURL, id string) snapshot {
	t.Helper()
	return takeSnapshotWith(t, postgres.Options{URL: controlURL}, id)
}

// takeSnapshotWith is takeSnapshot through a registry opened with opts (its cells).
func takeSnapshotWith(t *testing.T, opts postgres.Options, id string) snapshot {
	t.Helper()
	ctx := context.Background()
	reg, err := postgres.Open(ctx, opts)
	require.NoError(t, err)
	defer reg.Close()
	s, err := reg.Store(ctx, id)
	require.NoError(t, err)
	var snap snapshot
	for cursor := ""; ; {
		page, err := s.Orders(ctx, oms.OrderFilter{Limit: 200, Cursor: cursor})
		require.NoError(t, err)
		snap.Orders = append(snap.Orders, page.Orders...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	for n := range 300 {
		for _, loc := range []string{"store-1", "dc-1"} {
			st, err := s.Stock(ctx, loc, fmt.Sprintf("SKU-%d", n))
			require.NoError(t, err)
			snap.Stock = append(snap.Stock, st)
		}
	}
	for after := int64(0); ; {
		evs, err := s.Events(ctx, oms.EventFilter{After: after, Limit: 1000})
		require.NoError(t, err)
		if len(evs) == 0 {
			break
		}
		snap.Events = append(snap.Events, evs...)
		after = evs[len(evs)-1].Seq
	}
	return snap
}

// databases lists the cluster's databases of this test (by the account prefix).
func (e *backupEnv) databases(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.adminURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1 || '\_%' ORDER BY 1`, e.prefix)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	t.Cleanup(func() { // restores rename replaced databases to <name>_old_<ts>: drop those too
		conn, err := pgx.Connect(ctx, e.adminURL)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		rows, _ := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1 || '\_%\_old\_%'`, e.prefix)
		olds, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, n := range olds {
			_, _ = conn.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{n}.Sanitize()+` WITH (FORCE)`)
		}
	})
	return names
}

func (e *backupEnv) exec(t *testing.T, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}

func TestBackupRestoreAfterLosingEverything(t *testing.T) {
	e := newBackupEnv(t)
	ids := []string{"alpha", "bravo-2"}
	before := map[string]snapshot{}
	for _, id := range ids {
		before[id] = takeSnapshot(t, e.controlURL, id)
		require.Len(t, before[id].Orders, 40)
		require.NotEmpty(t, before[id].Events)
	}
	out, err := e.oms(t, nil, "backup", "--tier", "hourly", "--to", e.bucket())
	require.NoError(t, err)
	var written struct {
		Key      string
		Accounts []string
		Rows     int64
	}
	require.NoError(t, json.Unmarshal([]byte(out), &written), out)
	assert.Equal(t, ids, written.Accounts)
	assert.Greater(t, written.Rows, int64(2*(40+600)))
	assert.Regexp(t, `^hourly/\d{8}T\d{6}Z-[0-9a-f]{8}\.omsbak$`, written.Key)

	// The archive is encrypted: no SKU, order ref nor media byte appears in it.
	raw, err := os.ReadFile(filepath.Join(e.bucketDir, written.Key))
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "SKU-1")
	assert.NotContains(t, string(raw), "not really a png")

	// list: the table and JSON name the archive, its tier, release and accounts.
	out, err = e.oms(t, nil, "backup", "list", "--to", e.bucket())
	require.NoError(t, err)
	assert.Contains(t, out, "ID  ")
	assert.Regexp(t, `\d{8}T\d{6}Z-[0-9a-f]{8}\s+hourly\s+\S+\s+[\d.]+ MiB\s+europe-docker.pkg.dev/p/oms/runtime@sha256:1234\s+alpha,bravo-2`, out)
	out, err = e.oms(t, nil, "backup", "list", "--to", e.bucket(), "--json")
	require.NoError(t, err)
	var listedOut []listed
	require.NoError(t, json.Unmarshal([]byte(out), &listedOut))
	require.Len(t, listedOut, 1)
	assert.Equal(t, "hourly", listedOut[0].Tier)
	assert.Equal(t, ids, listedOut[0].Accounts)
	assert.Equal(t, int64(len(raw)), listedOut[0].Size)

	// Lose every account database, the registry rows and the media.
	for _, id := range ids {
		e.exec(t, e.adminURL, `DROP DATABASE `+pgx.Identifier{e.prefix + "_" + strings.ReplaceAll(id, "-", "_")}.Sanitize()+` WITH (FORCE)`)
	}
	e.exec(t, e.controlURL, `DELETE FROM accounts`)
	require.NoError(t, os.RemoveAll(e.mediaDir))
	require.NoError(t, os.MkdirAll(e.mediaDir, 0o755))
	require.Empty(t, e.databases(t))

	out, err = e.oms(t, nil, "restore", "--from", e.bucket(), "--latest")
	require.NoError(t, err)
	assert.Regexp(t, `restored \S+ \(release europe-docker.pkg.dev/p/oms/runtime@sha256:1234\): 2 accounts, \d+ rows, 2 media objects`, out)

	for _, id := range ids {
		assert.Equal(t, before[id], takeSnapshot(t, e.controlURL, id), "account %s", id)
	}
	assert.Equal(t, []string{e.prefix + "_alpha", e.prefix + "_bravo_2"}, e.databases(t), "no restore database left over")
	// The API keys survived: customers' integrations keep working.
	reg, err := postgres.Open(context.Background(), postgres.Options{URL: e.controlURL})
	require.NoError(t, err)
	defer reg.Close()
	for _, id := range ids {
		a, err := reg.Authenticate(context.Background(), e.keys[id])
		require.NoError(t, err)
		assert.Equal(t, id, a.ID)
	}
	got, err := os.ReadFile(filepath.Join(e.mediaDir, "logo.png"))
	require.NoError(t, err)
	assert.Equal(t, "not really a png", string(got))
	fi, err := os.Stat(filepath.Join(e.mediaDir, "labels", "big.bin"))
	require.NoError(t, err)
	assert.Equal(t, int64(3<<20+17), fi.Size())
}

func TestBackupRestoreRefusesWrongKeyAndDamageThenSwitches(t *testing.T) {
	e := newBackupEnv(t)
	out, err := e.oms(t, nil, "backup", "--tier", "weekly", "--to", e.bucket())
	require.NoError(t, err)
	var written struct{ Key, ID string }
	require.NoError(t, json.Unmarshal([]byte(out), &written))

	// A change after the backup: a restore that touched the target would lose it.
	ctx := context.Background()
	reg, err := postgres.Open(ctx, postgres.Options{URL: e.controlURL})
	require.NoError(t, err)
	s, err := reg.Store(ctx, "alpha")
	require.NoError(t, err)
	late, _, err := s.CreateOrder(ctx, "late", &oms.OrderRequest{Ref: "late", Items: []oms.Item{{SKU: "SKU-1", Qty: 1}},
		Delivery: oms.Delivery{Type: "CC", Location: "store-1"}})
	require.NoError(t, err)
	reg.Close()
	dbs := e.databases(t)
	current := takeSnapshot(t, e.controlURL, "alpha")

	// A damaged copy: one byte flipped in the middle of the body.
	raw, err := os.ReadFile(filepath.Join(e.bucketDir, written.Key))
	require.NoError(t, err)
	damaged := bytes.Clone(raw)
	damaged[len(damaged)/2] ^= 0x01
	damagedID := strings.Replace(written.ID, written.ID[len(written.ID)-8:], "0badf00d", 1)
	require.NoError(t, os.WriteFile(filepath.Join(e.bucketDir, "weekly", damagedID+".omsbak"), damaged, 0o644))

	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"wrong key", map[string]string{"OMS_BACKUP_KEY_FILE": writeKey(t)}, []string{"--id", written.ID}, "wrong backup key"},
		{"wrong key from the variable", map[string]string{"OMS_BACKUP_KEY_FILE": "", "OMS_BACKUP_KEY": base64.StdEncoding.EncodeToString(make([]byte, 32))},
			[]string{"--latest"}, "wrong backup key"},
		{"flipped byte", nil, []string{"--id", damagedID, "--force"}, "damaged"},
		{"unknown id", nil, []string{"--id", "20200101T000000Z-00000000"}, "no such backup"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.oms(t, tc.env, append([]string{"restore", "--from", e.bucket()}, tc.args...)...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, dbs, e.databases(t), "databases unchanged, no restore database left")
			assert.Equal(t, current, takeSnapshot(t, e.controlURL, "alpha"), "target untouched")
		})
	}

	// The good archive would replace the order taken since: refused, nothing touched, until forced.
	_, err = e.oms(t, nil, "restore", "--from", e.bucket(), "--id", written.ID)
	require.ErrorContains(t, err, backup.ErrWritten.Error()) // backup.ErrWritten, as the process reports it
	assert.Contains(t, err.Error(), "account alpha (database "+e.prefix+"_alpha): table ")
	assert.Contains(t, err.Error(), "nothing was changed")
	assert.Equal(t, dbs, e.databases(t))
	assert.Equal(t, current, takeSnapshot(t, e.controlURL, "alpha"))

	// Forced, the good archive replaces the live databases; the previous ones are kept aside.
	out, err = e.oms(t, nil, "restore", "--from", e.bucket(), "--id", written.ID, "--force")
	require.NoError(t, err)
	assert.Contains(t, out, "kept as "+e.prefix+"_alpha_old_")
	after := takeSnapshot(t, e.controlURL, "alpha")
	require.Len(t, after.Orders, 40)
	for _, o := range after.Orders {
		assert.NotEqual(t, late.ID, o.ID, "the order taken after the backup is gone")
	}
	names := e.databases(t)
	assert.Len(t, names, 4)
	assert.Contains(t, names, e.prefix+"_alpha")
	assert.Contains(t, names, e.prefix+"_bravo_2")
}

func TestBackupPruneCommandKeepsGFS(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		pruneCommand(t, "file://"+dir, func(key string) {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(key)), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, key), nil, 0o644))
		}, func() []string { return files(t, dir) })
	})
	t.Run("gs", func(t *testing.T) {
		gcs := omstest.GCS(t, "oms-backups")
		pruneCommand(t, "gs://oms-backups", func(key string) {
			gcs.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "oms-backups", Name: key}})
		}, func() []string {
			objs, _, err := gcs.ListObjectsWithOptions("oms-backups", fakestorage.ListOptions{})
			require.NoError(t, err)
			var out []string
			for _, o := range objs {
				out = append(out, o.Name)
			}
			sort.Strings(out)
			return out
		})
	})
}

// pruneCommand runs `oms backup prune` on bucketURL, whose objects store writes and list lists.
func pruneCommand(t *testing.T, bucketURL string, store func(key string), list func() []string) {
	now := time.Date(2026, 11, 21, 14, 30, 0, 0, time.UTC)
	put := func(tier string, at time.Time) string {
		_, key := backup.NewID(tier, at)
		store(key)
		return key
	}
	var want, gone []string
	for h := 1; h <= 10*24; h++ { // hourly for 10 days
		k := put("hourly", now.Add(-time.Duration(h)*time.Hour))
		if h < 7*24 {
			want = append(want, k)
		} else {
			gone = append(gone, k)
		}
	}
	want = append(want, put("weekly", now.AddDate(0, 0, -27)))
	gone = append(gone, put("weekly", now.AddDate(0, 0, -29)))
	want = append(want, put("monthly", now.AddDate(-2, 0, 0))) // the only monthly: kept although old
	store("hourly/notes.txt")

	out := MustRun(t, nil, "backup", "prune", "--to", bucketURL, "--now", now.Format(time.RFC3339), "--dry-run")
	assert.Contains(t, out, fmt.Sprintf("would delete %d, kept %d", len(gone), len(want)))
	require.Len(t, list(), len(want)+len(gone)+1, "dry run deletes nothing")

	MustRun(t, nil, "backup", "prune", "--to", bucketURL, "--now", now.Format(time.RFC3339))
	want = append(want, "hourly/notes.txt") // not an archive name: never pruned
	sort.Strings(want)
	assert.Equal(t, want, list())
}

func files(t *testing.T, dir string) []string {
	var out []string
	require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return err
	}))
	sort.Strings(out)
	return out
}

func TestBackupRestoreFinishesAnInterruptedSwitch(t *testing.T) {
	e := newBackupEnv(t)
	out, err := e.oms(t, nil, "backup", "--tier", "monthly", "--to", e.bucket())
	require.NoError(t, err)
	var written struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(out), &written))
	before := takeSnapshot(t, e.controlURL, "alpha")

	// A restore that crashed mid-switch: alpha's live database already renamed away, its verified copy not yet
	// renamed in; and a restore database of bravo-2 that was still loading.
	alpha, bravo := e.prefix+"_alpha", e.prefix+"_bravo_2"
	id := func(s string) string { return pgx.Identifier{s}.Sanitize() }
	e.exec(t, e.adminURL, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '`+alpha+`'`)
	e.exec(t, e.adminURL, `CREATE DATABASE `+id(alpha+"_restore_1")+` TEMPLATE `+id(alpha))
	e.exec(t, e.adminURL, `COMMENT ON DATABASE `+id(alpha+"_restore_1")+` IS 'omsbak verified for `+alpha+`'`)
	e.exec(t, e.adminURL, `ALTER DATABASE `+id(alpha)+` RENAME TO `+id(alpha+"_old_1"))
	e.exec(t, e.adminURL, `CREATE DATABASE `+id(bravo+"_restore_1"))
	e.exec(t, e.adminURL, `COMMENT ON DATABASE `+id(bravo+"_restore_1")+` IS 'omsbak restoring'`)

	// Both accounts hold written data (and alpha's database is a copy): only a forced restore replaces them.
	_, err = e.oms(t, nil, "restore", "--from", e.bucket(), "--id", written.ID, "--force")
	require.NoError(t, err)
	names := e.databases(t)
	assert.Contains(t, names, alpha)
	assert.Contains(t, names, alpha+"_old_1", "the database renamed away before the crash is kept")
	for _, n := range names {
		assert.NotContains(t, n, "_restore_", "no restore database left")
	}
	assert.Equal(t, before, takeSnapshot(t, e.controlURL, "alpha"))
}

// `oms backup --to gs://…` and `oms restore --from gs://…` on the GCS emulator: back up to the primary region's
// bucket, copy the archives to the DR region's bucket (as bucket replication does), lose everything, and restore
// from the DR bucket alone.
func TestBackupToGCSRestoreFromTheDRBucket(t *testing.T) {
	gcs := omstest.GCS(t, "oms-prod-eu-backups", "oms-prod-eu-dr-backups")
	e := newBackupEnv(t)
	ids := []string{"alpha", "bravo-2"}
	before := map[string]snapshot{}
	for _, id := range ids {
		before[id] = takeSnapshot(t, e.controlURL, id)
	}
	out, err := e.oms(t, nil, "backup", "--tier", "weekly", "--to", "gs://oms-prod-eu-backups")
	require.NoError(t, err)
	var written struct{ Key string }
	require.NoError(t, json.Unmarshal([]byte(out), &written), out)
	assert.Regexp(t, `^weekly/\d{8}T\d{6}Z-[0-9a-f]{8}\.omsbak$`, written.Key)

	obj, err := gcs.GetObject("oms-prod-eu-backups", written.Key)
	require.NoError(t, err, "the archive is in the bucket")
	assert.NotContains(t, string(obj.Content), "SKU-1", "encrypted")
	gcs.CreateObject(fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "oms-prod-eu-dr-backups", Name: written.Key},
		Content:     obj.Content,
	})

	out, err = e.oms(t, nil, "backup", "list", "--to", "gs://oms-prod-eu-dr-backups", "--json")
	require.NoError(t, err)
	var listedOut []listed
	require.NoError(t, json.Unmarshal([]byte(out), &listedOut))
	require.Len(t, listedOut, 1)
	assert.Equal(t, ids, listedOut[0].Accounts)

	for _, id := range ids {
		e.exec(t, e.adminURL, `DROP DATABASE `+pgx.Identifier{e.prefix + "_" + strings.ReplaceAll(id, "-", "_")}.Sanitize()+` WITH (FORCE)`)
	}
	e.exec(t, e.controlURL, `DELETE FROM accounts`)
	require.NoError(t, os.RemoveAll(e.mediaDir))
	require.NoError(t, os.MkdirAll(e.mediaDir, 0o755))

	out, err = e.oms(t, nil, "restore", "--from", "gs://oms-prod-eu-dr-backups", "--latest")
	require.NoError(t, err)
	assert.Regexp(t, `restored \S+ \(release europe-docker.pkg.dev/p/oms/runtime@sha256:1234\): 2 accounts, \d+ rows, 2 media objects`, out)
	for _, id := range ids {
		assert.Equal(t, before[id], takeSnapshot(t, e.controlURL, id), "account %s", id)
	}
	fi, err := os.Stat(filepath.Join(e.mediaDir, "labels", "big.bin"))
	require.NoError(t, err)
	assert.Equal(t, int64(3<<20+17), fi.Size(), "a multi-chunk object came back whole")

	_, err = e.oms(t, nil, "restore", "--from", "gs://no-such-bucket", "--latest")
	assert.Error(t, err, "a missing bucket is an error, not an empty restore")
}

// A DR restore: the primary's archive goes into a second registry whose account databases were created empty (as the
// DR environment's are), then again only until the DR databases take a write — an INSERT, an UPDATE or a DELETE —
// unless forced.
func TestRestoreReplacesOnlyWhatHasNotBeenWrittenSince(t *testing.T) {
	e := newBackupEnv(t)
	out, err := e.oms(t, nil, "backup", "--tier", "hourly", "--to", e.bucket())
	require.NoError(t, err)
	var written struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(out), &written))
	primary := takeSnapshot(t, e.controlURL, "alpha")

	ctx := context.Background()
	dr, drURL := omstest.Registry(t, nil)
	for _, id := range []string{"alpha", "bravo-2"} {
		_, err := dr.CreateAccount(ctx, &oms.Account{ID: id, Name: "Account " + id})
		require.NoError(t, err)
	}
	cfg, err := pgx.ParseConfig(drURL)
	require.NoError(t, err)
	alphaDB := cfg.Database + "_alpha"
	t.Cleanup(func() { // forced restores keep the replaced databases as <name>_old_<time>, owned by the accounts' roles
		conn, err := pgx.Connect(ctx, e.adminURL)
		require.NoError(t, err)
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1 || '\_%\_old\_%'`, cfg.Database)
		require.NoError(t, err)
		olds, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		for _, n := range olds {
			e.exec(t, e.adminURL, `DROP DATABASE `+pgx.Identifier{n}.Sanitize()+` WITH (FORCE)`)
		}
	})
	dbURL := func(db string) string { // as the cluster's superuser
		u, err := url.Parse(e.adminURL)
		require.NoError(t, err)
		u.Path = "/" + db
		return u.String()
	}
	restore := func(extra ...string) error {
		_, err := e.oms(t, map[string]string{"OMS_DATABASE_URL": drURL}, append([]string{"restore", "--from", e.bucket(), "--latest"}, extra...)...)
		return err
	}
	refused := func(want string) {
		t.Helper()
		before := takeSnapshot(t, drURL, "alpha")
		err := restore()
		require.ErrorContains(t, err, backup.ErrWritten.Error()) // backup.ErrWritten, as the process reports it
		assert.Contains(t, err.Error(), "account alpha (database "+alphaDB+"): "+want)
		assert.NotContains(t, err.Error(), "bravo-2", "bravo-2 has taken no write")
		assert.Equal(t, before, takeSnapshot(t, drURL, "alpha"), "nothing changed")
	}

	// As in the DR stack, the runtime starts after the restore: a pool opened before it holds connections the
	// restore terminated (57P01), which is why the order below goes through a registry opened afterwards.
	dr.Close()
	require.NoError(t, restore(), "databases created empty by oms migrate take the restore")
	assert.Equal(t, primary, takeSnapshot(t, drURL, "alpha"))
	require.NoError(t, restore(), "a restore over a restored copy that took no write")

	started, err := postgres.Open(ctx, postgres.Options{URL: drURL})
	require.NoError(t, err)
	s, err := started.Store(ctx, "alpha")
	require.NoError(t, err)
	_, _, err = s.CreateOrder(ctx, "dr-1", &oms.OrderRequest{Ref: "dr-1", Items: []oms.Item{{SKU: "SKU-1", Qty: 1}},
		Delivery: oms.Delivery{Type: "CC", Location: "store-1"}})
	require.NoError(t, err)
	started.Close()
	refused("table events has 1 rows written since its baseline (restored from " + written.ID)

	require.NoError(t, restore("--force"))
	assert.Equal(t, primary, takeSnapshot(t, drURL, "alpha"), "forced: the archive again")

	// A delete leaves no row behind: the counts tell.
	e.exec(t, dbURL(alphaDB), `DELETE FROM outbox WHERE event_seq = (SELECT min(event_seq) FROM outbox)`)
	refused("table outbox has ")
	require.NoError(t, restore("--force"))

	// An update is a new row version.
	e.exec(t, dbURL(alphaDB), `UPDATE locations SET name = 'renamed' WHERE ref = 'store-1'`)
	refused("table locations has 1 rows written since its baseline")
	require.NoError(t, restore("--force"))

	// Without a baseline (a database from before this release) nothing can be ruled out.
	e.exec(t, drURL, `DELETE FROM restore_baselines WHERE database = '`+alphaDB+`'`)
	refused("it has no restore baseline")
}
