package postgres_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/localenv"
	"github.com/omscloud/omscloud/runtime/postgres"
)

// orderLoad places orders on one account through a serving registry, as a client does: each with its own
// Idempotency-Key, resent with the same key while the runtime answers unavailable (503), until acknowledged.
type orderLoad struct {
	reg      *postgres.Registry
	account  string
	acked    sync.Map // key → order id
	resends  atomic.Int64
	maxWait  atomic.Int64 // the longest time to an acknowledgement, resends included (ns)
	failures atomic.Int64
	errs     chan error
}

func (l *orderLoad) run(ctx context.Context, clients int, wg *sync.WaitGroup) {
	l.errs = make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				key := fmt.Sprintf("%s-c%d-%d", l.account, c, n)
				req := &oms.OrderRequest{Ref: key, Items: []oms.Item{{SKU: fmt.Sprintf("SKU-%d", n%50), Qty: 1}},
					Delivery: oms.Delivery{Type: "CC", Location: "store-1"}}
				begin := time.Now()
				for {
					o, err := l.place(key, req)
					if err == nil {
						l.acked.Store(key, o.ID)
						break
					}
					if !postgres.IsUnavailable(err) || time.Since(begin) > 30*time.Second {
						l.failures.Add(1)
						l.errs <- fmt.Errorf("order %s: %w", key, err)
						return
					}
					l.resends.Add(1)
					time.Sleep(20 * time.Millisecond)
				}
				if w := int64(time.Since(begin)); w > l.maxWait.Load() {
					l.maxWait.Store(w) // racy max: good enough for a figure
				}
			}
		}()
	}
}

func (l *orderLoad) place(key string, req *oms.OrderRequest) (*oms.Order, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := l.reg.Store(ctx, l.account)
	if err != nil {
		return nil, err
	}
	o, _, err := s.CreateOrder(ctx, key, req)
	return o, err
}

func (l *orderLoad) keys() map[string]string {
	out := map[string]string{}
	l.acked.Range(func(k, v any) bool { out[k.(string)] = v.(string); return true })
	return out
}

// TestMoveAccountUnderLoad moves an account from cell b to main and back and to main again while four clients place
// its orders and one places another account's: every acknowledged order is on the new cell exactly once, with its
// event, the account's writes pause for a bounded moment, the other account's never, and the copy rate is set
// against pg_dump | pg_restore of the same database in the same run.
func TestMoveAccountUnderLoad(t *testing.T) {
	ctx := context.Background()
	tc := newTwoCells(t)
	prefix := fmt.Sprintf("mv%d", os.Getpid()%100000)
	opts := postgres.Options{NamePrefix: prefix, Cells: tc.cells, DefaultCell: "b"}
	admin := tc.open(t, opts)
	require.NoError(t, admin.Migrate(ctx))
	t.Cleanup(func() {
		for _, id := range []string{"mover", "bystander"} {
			assert.NoError(t, admin.DropAccount(context.Background(), id))
		}
	})
	mover := newAccount(t, admin, "mover")
	_, err := admin.CreateAccount(ctx, &oms.Account{ID: "bystander", Name: "Bystander", Cell: postgres.MainCell})
	require.NoError(t, err)
	bystander, err := admin.Store(ctx, "bystander")
	require.NoError(t, err)
	for _, s := range []*postgres.Store{mover, bystander.(*postgres.Store)} {
		putLocation(t, s, "store-1", oms.LocationStore, 52, 4)
		var csv strings.Builder
		csv.WriteString("sku,location,on_hand\n")
		for n := range 20000 {
			fmt.Fprintf(&csv, "SKU-%d,store-1,%d\n", n, n%97+1)
		}
		load(t, s, csv.String())
	}
	main := omstest.Postgres(t)
	dbOn := map[string]string{"b": tc.URL(t, "postgres"), postgres.MainCell: main.PrimaryURL("postgres")}
	db := prefix + "_mover"

	// The baseline: pg_dump | pg_restore of the same database, now.
	dumpRate := dumpRestoreRate(t, main.BinDir(), tc.URL(t, db), main.PrimaryURL("postgres"), prefix+"_dumpcopy")

	serving := tc.open(t, opts) // the runtime's own registry: its pools are open on the source when the move starts
	loadCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	movers := &orderLoad{reg: serving, account: "mover"}
	others := &orderLoad{reg: serving, account: "bystander"}
	movers.run(loadCtx, 4, &wg)
	others.run(loadCtx, 1, &wg)
	defer func() { stop(); wg.Wait() }()

	var pauses []time.Duration
	from := "b"
	for _, to := range []string{postgres.MainCell, "b", postgres.MainCell} {
		time.Sleep(time.Second) // under load before each move
		res, err := admin.MoveAccount(ctx, "mover", to, postgres.MoveOptions{})
		require.NoError(t, err, "move to %s", to)
		assert.Equal(t, from, res.From)
		t.Logf("move %s→%s: %d bytes, copy %s (%.1f MB/s; pg_dump|pg_restore %.1f MB/s), catch-up %s, pause %s, %s in all",
			res.From, res.To, res.Bytes, res.Copy.Round(time.Millisecond), float64(res.Bytes)/res.Copy.Seconds()/1e6, dumpRate/1e6,
			res.CatchUp.Round(time.Millisecond), res.Pause.Round(time.Millisecond), res.Elapsed.Round(time.Millisecond))
		pauses = append(pauses, res.Pause)
		assert.Less(t, res.Pause, 10*time.Second, "the pause is bounded")

		// The source is closed: no session can write to it any more. The operator drops it once satisfied.
		var allowed bool
		require.NoError(t, pgxQueryRow(t, dbOn[from], fmt.Sprintf(`SELECT datallowconn FROM pg_database WHERE datname = '%s'`, db), &allowed))
		assert.False(t, allowed, "the source database takes no connections")
		require.NoError(t, main.Exec(ctx, dbOn[from], `DROP DATABASE `+pgx.Identifier{db}.Sanitize()+` WITH (FORCE)`))
		from = to
	}
	time.Sleep(time.Second) // the load goes on on the last cell
	stop()
	wg.Wait()
	close(movers.errs)
	close(others.errs)
	for err := range movers.errs {
		t.Error(err)
	}
	for err := range others.errs {
		t.Error(err)
	}

	// Every acknowledged order is on the account's cell now, once, with its order.created event.
	acked := movers.keys()
	require.NotEmpty(t, acked)
	var orders, created int
	require.NoError(t, pgxQueryRow(t, main.PrimaryURL(db), `SELECT count(*) FROM orders`, &orders))
	require.NoError(t, pgxQueryRow(t, main.PrimaryURL(db), `SELECT count(*) FROM events WHERE type = 'order.created'`, &created))
	assert.Equal(t, len(acked), orders, "every acknowledged order, none doubled (orders on the cell vs acknowledged)")
	assert.Equal(t, len(acked), created, "one order.created per acknowledged order")
	s, err := admin.Store(ctx, "mover")
	require.NoError(t, err)
	ids := slices.Sorted(func(yield func(string) bool) {
		for _, id := range acked {
			if !yield(id) {
				return
			}
		}
	})
	for _, id := range ids[:min(len(ids), 200)] {
		_, err := s.Order(ctx, id)
		require.NoError(t, err, "acknowledged order %s", id)
	}
	// New orders get fresh identities on the new cell: the sequences came along.
	_, _, err = s.CreateOrder(ctx, "after-the-moves", &oms.OrderRequest{Ref: "after", Items: []oms.Item{{SKU: "SKU-1", Qty: 1}},
		Delivery: oms.Delivery{Type: "CC", Location: "store-1"}})
	require.NoError(t, err)

	slices.Sort(pauses)
	t.Logf("mover: %d orders acknowledged, %d resends, longest wait %s; writes paused p50 %s, max %s",
		len(acked), movers.resends.Load(), time.Duration(movers.maxWait.Load()).Round(time.Millisecond),
		pauses[len(pauses)/2].Round(time.Millisecond), pauses[len(pauses)-1].Round(time.Millisecond))
	t.Logf("bystander: %d orders acknowledged, %d resends, longest wait %s",
		len(others.keys()), others.resends.Load(), time.Duration(others.maxWait.Load()).Round(time.Millisecond))
	assert.Zero(t, others.resends.Load(), "the other account's writes never failed")
	assert.Zero(t, movers.failures.Load()+others.failures.Load())
}

// dumpRestoreRate is the bytes per second of pg_dump -Fc | pg_restore of src into a scratch database on dst.
func dumpRestoreRate(t *testing.T, bin, src, dstAdmin, scratch string) float64 {
	t.Helper()
	ctx := context.Background()
	var size int64
	require.NoError(t, pgxQueryRow(t, src, `SELECT pg_database_size(current_database())`, &size))
	require.NoError(t, omstest.Postgres(t).Exec(ctx, dstAdmin, `CREATE DATABASE `+scratch))
	t.Cleanup(func() {
		_ = omstest.Postgres(t).Exec(ctx, dstAdmin, `DROP DATABASE IF EXISTS `+scratch+` WITH (FORCE)`)
	})
	dstURL := strings.Replace(dstAdmin, "/postgres?", "/"+scratch+"?", 1)
	begin := time.Now()
	cmd := exec.Command("sh", "-c", `"$1" -Fc --no-owner --no-acl --dbname="$2" | "$3" --no-owner --no-acl --exit-on-error --dbname="$4"`,
		"sh", filepath.Join(bin, "pg_dump"), src, filepath.Join(bin, "pg_restore"), dstURL)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return float64(size) / time.Since(begin).Seconds()
}

func TestMoveRefusesWhatItCannotDoAndChangesNothing(t *testing.T) {
	ctx := context.Background()
	tc := newTwoCells(t)
	prefix := fmt.Sprintf("mvr%d", os.Getpid()%100000)
	reg, s := tc.withAccountOnB(t, prefix)
	main := omstest.Postgres(t)

	_, err := reg.MoveAccount(ctx, "alpha", "b", postgres.MoveOptions{})
	assert.Equal(t, oms.ECONFLICT, oms.ErrorCode(err), "already there: %v", err)
	_, err = reg.MoveAccount(ctx, "alpha", "c", postgres.MoveOptions{})
	assert.Equal(t, oms.EINVALID, oms.ErrorCode(err), "no such cell: %v", err)
	_, err = reg.MoveAccount(ctx, "nobody", postgres.MainCell, postgres.MoveOptions{})
	assert.Equal(t, oms.ENOTFOUND, oms.ErrorCode(err), "no such account: %v", err)

	// A database of that name with tables on the target (an earlier copy, someone's data) is never overwritten.
	db := prefix + "_alpha"
	require.NoError(t, main.Exec(ctx, main.PrimaryURL("postgres"), `CREATE DATABASE `+db))
	t.Cleanup(func() { _ = main.Exec(ctx, main.PrimaryURL("postgres"), `DROP DATABASE IF EXISTS `+db+` WITH (FORCE)`) })
	require.NoError(t, main.Exec(ctx, main.PrimaryURL(db), `CREATE TABLE someones (data text)`))
	_, err = reg.MoveAccount(ctx, "alpha", postgres.MainCell, postgres.MoveOptions{})
	assert.Equal(t, oms.ECONFLICT, oms.ErrorCode(err), "%v", err)
	assert.Contains(t, oms.ErrorMessage(err), `cell "main" already has a database `+db+` with tables`)

	require.NoError(t, main.Exec(ctx, main.PrimaryURL("postgres"), `DROP DATABASE `+db))

	accounts, err := reg.Accounts(ctx)
	require.NoError(t, err)
	require.Len(t, accounts, 1)
	assert.Equal(t, "b", accounts[0].Cell, "still on its cell")
	assert.Empty(t, omstest.Databases(t, main.PrimaryURL("postgres"), prefix), "nothing left on the target")
	_, err = s.PutLocation(ctx, &oms.Location{Ref: "wh-2", Name: "wh-2", Type: oms.LocationWarehouse, Lat: ptr(1), Lon: ptr(1)})
	require.NoError(t, err, "the account works as before")
}

func TestMoveNeedsLogicalDecodingOnTheSource(t *testing.T) {
	ctx := context.Background()
	tc := newTwoCells(t)
	dir := t.TempDir()
	plain, err := localenv.StartPostgres(ctx, localenv.PostgresOptions{Dir: dir, TLS: tc.CA.ServerTLS(t),
		Settings: map[string]string{"wal_level": "replica"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = plain.Stop() })
	require.NoError(t, plain.Exec(ctx, plain.PrimaryURL("postgres"),
		fmt.Sprintf(`ALTER ROLE postgres PASSWORD '%s'`, omstest.Postgres(t).Password())))
	prefix := fmt.Sprintf("mvw%d", os.Getpid()%100000)
	cells := postgres.Cells{postgres.MainCell: tc.cells[postgres.MainCell],
		"c": {Host: "127.0.0.1", Port: plain.PrimaryPort(), CAFile: tc.CA.File}}
	reg := tc.open(t, postgres.Options{NamePrefix: prefix, Cells: cells, DefaultCell: "c"})
	require.NoError(t, reg.Migrate(ctx))
	_, err = reg.MoveAccount(ctx, "nobody", postgres.MainCell, postgres.MoveOptions{})
	require.Equal(t, oms.ENOTFOUND, oms.ErrorCode(err))
	require.NoError(t, omstest.Postgres(t).Exec(ctx, tc.control, `INSERT INTO accounts (id, name, db_name, db_role, db_password, cell, ready)
		VALUES ('alpha', 'Alpha', '`+prefix+`_alpha', '`+prefix+`_alpha', 'pw', 'c', true)`))
	_, err = reg.MoveAccount(ctx, "alpha", postgres.MainCell, postgres.MoveOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cell c runs with wal_level=replica")
	assert.Contains(t, err.Error(), "cloudsql.logical_decoding=on")
	assert.Contains(t, err.Error(), "nothing changed")
	assert.Empty(t, omstest.Databases(t, omstest.Postgres(t).PrimaryURL("postgres"), prefix), "nothing created on the target")
}

// TestMoveIntoTheStacksProvisionedDatabase: with database.moving the stack provisions the account's role (its own
// password) and an empty database on the target, as Cloud SQL does; the move takes them over, and the registry
// takes the target's password.
func TestMoveIntoTheStacksProvisionedDatabase(t *testing.T) {
	ctx := context.Background()
	tc := newTwoCells(t)
	prefix := fmt.Sprintf("mvp%d", os.Getpid()%100000)
	reg, _ := tc.withAccountOnB(t, prefix)
	main := omstest.Postgres(t)
	role := prefix + "_alpha"
	provisionLikeCloudSQL(t, main.PrimaryURL("postgres"), role, "target-pw")

	_, err := reg.MoveAccount(ctx, "alpha", postgres.MainCell, postgres.MoveOptions{})
	assert.Equal(t, oms.EINVALID, oms.ErrorCode(err), "the provisioned role's password is required: %v", err)
	assert.Contains(t, oms.ErrorMessage(err), "give it with --password-file")
	_, err = reg.MoveAccount(ctx, "alpha", postgres.MainCell, postgres.MoveOptions{TargetPassword: "wrong"})
	assert.Equal(t, oms.EINVALID, oms.ErrorCode(err), "a wrong password is refused: %v", err)
	var n int
	require.NoError(t, pgxQueryRow(t, main.PrimaryURL(role), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`, &n))
	assert.Zero(t, n, "the failed attempt left the stack's database empty")

	res, err := reg.MoveAccount(ctx, "alpha", postgres.MainCell, postgres.MoveOptions{TargetPassword: "target-pw"})
	require.NoError(t, err)
	assert.Equal(t, "b", res.From)
	var owner string
	require.NoError(t, pgxQueryRow(t, main.PrimaryURL("postgres"),
		fmt.Sprintf(`SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '%s'`, role), &owner))
	assert.Equal(t, role, owner, "the account's role owns its database on the target")
	fresh := tc.open(t, postgres.Options{NamePrefix: prefix, Cells: tc.cells})
	s2, err := fresh.Store(ctx, "alpha")
	require.NoError(t, err)
	created, err := s2.(*postgres.Store).PutLocation(ctx, &oms.Location{Ref: "wh-1", Name: "wh-1", Type: oms.LocationWarehouse, Lat: ptr(52), Lon: ptr(4)})
	require.NoError(t, err, "the account works on the target, with the target's password from the registry")
	assert.False(t, created, "its location came along")
}

// A connection refused because its database is gone is what a pool meets when an account move finishes between its
// look at the registry and the server's answer: the caller retries (and its next connect sees the new cell). The
// same code from a statement is not a reason to retry.
func TestAConnectToADroppedDatabaseIsRetried(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(omstest.ControlDB(t))
	require.NoError(t, err)
	cfg.Database = "dropped_by_a_move"
	_, err = pgx.ConnectConfig(ctx, cfg)
	require.Error(t, err)
	assert.True(t, postgres.IsUnavailable(err), "%v", err)
	assert.False(t, postgres.IsUnavailable(&pgconn.PgError{Code: "3D000"}))
}
