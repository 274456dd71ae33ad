package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/postgres"
)

func TestMain(m *testing.M) {
	code := m.Run()
	omstest.Stop()
	os.Exit(code)
}

func ptr(f float64) *float64 { return &f }

func newAccount(t testing.TB, reg *postgres.Registry, id string) *postgres.Store {
	t.Helper()
	ctx := context.Background()
	key, err := reg.CreateAccount(ctx, &oms.Account{ID: id, Name: "Test " + id})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(key, "oms_"))
	s, err := reg.Store(ctx, id)
	require.NoError(t, err)
	return s.(*postgres.Store)
}

// applyConcurrently applies events from 10 goroutines at once, as a worker's consumers do, and returns how many
// applied (the rest were seen before).
func applyConcurrently(t *testing.T, s *postgres.Store, events []*oms.Event) int {
	t.Helper()
	var wg sync.WaitGroup
	var applied atomic.Int64
	work := make(chan *oms.Event)
	for range 10 {
		wg.Go(func() {
			for e := range work {
				ok, err := s.ApplyEvent(context.Background(), e)
				assert.NoError(t, err)
				if ok {
					applied.Add(1)
				}
			}
		})
	}
	for _, e := range events {
		work <- e
	}
	close(work)
	wg.Wait()
	return int(applied.Load())
}

func putLocation(t testing.TB, s *postgres.Store, ref, typ string, lat, lon float64) {
	t.Helper()
	_, err := s.PutLocation(context.Background(), &oms.Location{Ref: ref, Name: ref, Type: typ, Lat: ptr(lat), Lon: ptr(lon)})
	require.NoError(t, err)
}

func load(t testing.TB, s *postgres.Store, csv string) *oms.BatchResult {
	t.Helper()
	res, err := s.LoadInventory(context.Background(), oms.NewCSVReader(strings.NewReader(csv)))
	require.NoError(t, err)
	return res
}

// warehouseCSV is a batch of n SKUs at location "wh", each with on_hand qty.
func warehouseCSV(n, qty int) string {
	var b strings.Builder
	b.WriteString("sku,location,on_hand\n")
	for i := range n {
		fmt.Fprintf(&b, "sku-%05d,wh,%d\n", i, qty)
	}
	return b.String()
}

func hd(ref string, lat, lon float64, items ...oms.Item) *oms.OrderRequest {
	return &oms.OrderRequest{Ref: ref, Items: items, Delivery: oms.Delivery{Type: oms.DeliveryHD,
		Address: &oms.Address{Lat: ptr(lat), Lon: ptr(lon)}}}
}

// createdEvent returns the order.created event of an order, as the relay would publish it.
func createdEvent(t *testing.T, s *postgres.Store, account, orderID string) *oms.Event {
	t.Helper()
	evs, err := s.Events(context.Background(), oms.EventFilter{Entity: "order:" + orderID})
	require.NoError(t, err)
	require.NotEmpty(t, evs)
	require.Equal(t, oms.EventOrderCreated, evs[0].Type)
	return evs[0]
}

func TestReservationsNeverOversellUnderConcurrencyAndRedelivery(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	ctx := context.Background()
	putLocation(t, s, "wh-1", oms.LocationWarehouse, 52.0, 4.0)
	putLocation(t, s, "wh-2", oms.LocationWarehouse, 48.0, 2.0)
	load(t, s, "sku,location,on_hand\nHOT,wh-1,30\nHOT,wh-2,20\n")

	var events []*oms.Event
	for i := range 100 {
		o, replayed, err := s.CreateOrder(ctx, fmt.Sprintf("key-%d", i), hd(fmt.Sprintf("o-%d", i), 51, 4, oms.Item{SKU: "HOT", Qty: 1}))
		require.NoError(t, err)
		require.False(t, replayed)
		events = append(events, createdEvent(t, s, "acme", o.ID))
	}
	// Every event delivered twice, from 10 goroutines at once.
	applied := applyConcurrently(t, s, append(append([]*oms.Event{}, events...), events...))
	assert.Equal(t, 100, applied, "each event applied exactly once")

	var reserved, resRows int64
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT sum(reserved) FROM stock WHERE sku = 'HOT'`).Scan(&reserved))
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT coalesce(sum(qty),0) FROM reservations`).Scan(&resRows))
	assert.EqualValues(t, 50, reserved)
	assert.EqualValues(t, 50, resRows)
	counts := map[string]int{}
	page, err := s.Orders(ctx, oms.OrderFilter{Limit: 200})
	require.NoError(t, err)
	for _, o := range page.Orders {
		counts[o.Status]++
		evs, err := s.Events(ctx, oms.EventFilter{Entity: "order:" + o.ID})
		require.NoError(t, err)
		var types []string
		for _, e := range evs {
			types = append(types, e.Type)
		}
		outcome := oms.EventOrderAllocated
		if o.Status == oms.StatusPendingStock {
			outcome = oms.EventOrderPendingStock
		}
		require.Equal(t, []string{oms.EventOrderCreated, oms.EventWorkflowRuleApplied, outcome}, types,
			"created, the rule that ran once, one outcome for %s", o.ID)
	}
	assert.Equal(t, map[string]int{oms.StatusAllocated: 50, oms.StatusPendingStock: 50}, counts)
	for _, ref := range []string{"wh-1", "wh-2"} {
		lv, err := s.Stock(ctx, ref, "HOT")
		require.NoError(t, err)
		assert.Zero(t, lv.Available, ref)
		assert.Equal(t, lv.OnHand, lv.Reserved, ref)
	}
}

func TestAllocationPicksNearestCompleteLocationAndCancelReleases(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	ctx := context.Background()
	putLocation(t, s, "near", oms.LocationStore, 52.37, 4.89)    // Amsterdam: has A only
	putLocation(t, s, "mid", oms.LocationWarehouse, 51.92, 4.48) // Rotterdam: has A and B
	putLocation(t, s, "far", oms.LocationWarehouse, 48.85, 2.35) // Paris: has A and B
	load(t, s, "sku,location,on_hand\nA,near,5\nA,mid,5\nB,mid,5\nA,far,5\nB,far,5\n")

	o, _, err := s.CreateOrder(ctx, "k1", hd("o1", 52.37, 4.89, oms.Item{SKU: "A", Qty: 2}, oms.Item{SKU: "B", Qty: 1}))
	require.NoError(t, err)
	_, err = s.ApplyEvent(ctx, createdEvent(t, s, "acme", o.ID))
	require.NoError(t, err)
	got, err := s.Order(ctx, o.ID)
	require.NoError(t, err)
	assert.Equal(t, oms.StatusAllocated, got.Status)
	assert.Equal(t, "mid", got.Location, "nearest location holding every line")
	lv, _ := s.Stock(ctx, "mid", "A")
	assert.EqualValues(t, 2, lv.Reserved)

	// Click & collect at a store missing a line stays pending.
	cc := &oms.OrderRequest{Ref: "o2", Items: []oms.Item{{SKU: "B", Qty: 1}}, Delivery: oms.Delivery{Type: oms.DeliveryCC, Location: "near"}}
	o2, _, err := s.CreateOrder(ctx, "k2", cc)
	require.NoError(t, err)
	_, err = s.ApplyEvent(ctx, createdEvent(t, s, "acme", o2.ID))
	require.NoError(t, err)
	got2, _ := s.Order(ctx, o2.ID)
	assert.Equal(t, oms.StatusPendingStock, got2.Status)

	cancelled, err := s.CancelOrder(ctx, o.ID)
	require.NoError(t, err)
	assert.Equal(t, oms.StatusCancelled, cancelled.Status)
	lv, _ = s.Stock(ctx, "mid", "A")
	assert.EqualValues(t, 0, lv.Reserved, "cancel releases the reservation")
	_, err = s.CancelOrder(ctx, o.ID)
	assert.Equal(t, oms.ECONFLICT, oms.ErrorCode(err))
	evs, _ := s.Events(ctx, oms.EventFilter{Entity: "order:" + o.ID})
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	assert.Equal(t, []string{oms.EventOrderCreated, oms.EventWorkflowRuleApplied, oms.EventOrderAllocated, oms.EventOrderCancelled}, types)
}

// TestMultiLineReservationsAreAllOrNothing: an order's lines are reserved together, and a line that no longer fits
// when its turn comes undoes the lines reserved before it. Two SKUs with little stock at one location each, orders
// wanting both from 10 goroutines at once: every allocated order holds both lines, a waiting order holds none, and
// no SKU is reserved beyond its stock.
func TestMultiLineReservationsAreAllOrNothing(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	ctx := context.Background()
	putLocation(t, s, "wh-1", oms.LocationWarehouse, 52.0, 4.0)
	load(t, s, "sku,location,on_hand\nA,wh-1,40\nB,wh-1,25\n")
	var events []*oms.Event
	for i := range 60 {
		// A wants 1 or 2; B wants 1: B runs out first for most orders, A first for some.
		o, _, err := s.CreateOrder(ctx, fmt.Sprintf("key-%d", i), hd(fmt.Sprintf("o-%d", i), 51, 4,
			oms.Item{SKU: "A", Qty: int64(1 + i%2)}, oms.Item{SKU: "B", Qty: 1}))
		require.NoError(t, err)
		events = append(events, createdEvent(t, s, "acme", o.ID))
	}
	applyConcurrently(t, s, events)

	rows, err := s.Pool().Query(ctx, `SELECT o.status, count(r.sku), coalesce(sum(r.qty) FILTER (WHERE r.sku = 'A'), 0)
		FROM orders o LEFT JOIN reservations r ON r.order_id = o.id GROUP BY o.id, o.status`)
	require.NoError(t, err)
	allocated := 0
	var reservedA int64
	for rows.Next() {
		var status string
		var lines, a int64
		require.NoError(t, rows.Scan(&status, &lines, &a))
		switch status {
		case oms.StatusAllocated:
			allocated++
			assert.EqualValues(t, 2, lines, "an allocated order holds both lines")
		case oms.StatusPendingStock:
			assert.EqualValues(t, 0, lines, "a waiting order holds nothing")
		default:
			t.Errorf("order in status %s", status)
		}
		reservedA += a
	}
	require.NoError(t, rows.Err())
	var stockA, stockB int64
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT sum(reserved) FILTER (WHERE sku = 'A'), sum(reserved) FILTER (WHERE sku = 'B') FROM stock`).Scan(&stockA, &stockB))
	assert.Equal(t, reservedA, stockA, "stock.reserved of A is what the reservations hold")
	assert.EqualValues(t, allocated, stockB, "one B per allocated order")
	assert.LessOrEqual(t, stockA, int64(40))
	assert.LessOrEqual(t, stockB, int64(25))
	assert.GreaterOrEqual(t, allocated, 20, "most of B went out")
}

func TestCreateOrderIdempotencyAndValidation(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	ctx := context.Background()
	putLocation(t, s, "wh", oms.LocationWarehouse, 52, 4)
	load(t, s, "sku,location,on_hand\nA,wh,5\n")

	req := hd("o1", 52, 4, oms.Item{SKU: "A", Qty: 1})
	o1, replayed, err := s.CreateOrder(ctx, "same", req)
	require.NoError(t, err)
	require.False(t, replayed)
	o2, replayed, err := s.CreateOrder(ctx, "same", hd("o1", 52, 4, oms.Item{SKU: "A", Qty: 1}))
	require.NoError(t, err)
	assert.True(t, replayed)
	assert.Equal(t, o1.ID, o2.ID)

	tests := []struct {
		name  string
		key   string
		req   *oms.OrderRequest
		code  string
		field string
	}{
		{"key reused with another body", "same", hd("o1", 52, 4, oms.Item{SKU: "A", Qty: 2}), oms.ECONFLICT, "Idempotency-Key"},
		{"ref reused", "other", hd("o1", 52, 4, oms.Item{SKU: "A", Qty: 1}), oms.ECONFLICT, "ref"},
		{"unknown sku", "k3", hd("o3", 52, 4, oms.Item{SKU: "A", Qty: 1}, oms.Item{SKU: "NOPE", Qty: 1}), oms.EINVALID, "items[1].sku"},
		{"zero qty", "k4", hd("o4", 52, 4, oms.Item{SKU: "A", Qty: 0}), oms.EINVALID, "items[0].qty"},
		{"negative qty", "k5", hd("o5", 52, 4, oms.Item{SKU: "A", Qty: -3}), oms.EINVALID, "items[0].qty"},
		{"unknown CC store", "k6", &oms.OrderRequest{Ref: "o6", Items: []oms.Item{{SKU: "A", Qty: 1}},
			Delivery: oms.Delivery{Type: oms.DeliveryCC, Location: "ghost"}}, oms.EINVALID, "delivery.location"},
		{"CC at a warehouse", "k7", &oms.OrderRequest{Ref: "o7", Items: []oms.Item{{SKU: "A", Qty: 1}},
			Delivery: oms.Delivery{Type: oms.DeliveryCC, Location: "wh"}}, oms.EINVALID, "delivery.location"},
		{"missing key", "", hd("o8", 52, 4, oms.Item{SKU: "A", Qty: 1}), oms.EINVALID, "Idempotency-Key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.CreateOrder(ctx, tc.key, tc.req)
			require.Error(t, err)
			assert.Equal(t, tc.code, oms.ErrorCode(err), err.Error())
			assert.Equal(t, tc.field, oms.ErrorField(err))
		})
	}
	var n int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&n))
	assert.Equal(t, 1, n, "rejected requests leave nothing behind")
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE type = 'order.created'`).Scan(&n))
	assert.Equal(t, 1, n)
}

func TestLoadInventoryReportsBadLinesAndAppliesTheRest(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	ctx := context.Background()
	putLocation(t, s, "wh", oms.LocationWarehouse, 52, 4)
	res := load(t, s, "sku,location,on_hand\nA,wh,5\nB,wh,-1\nC,ghost,3\nD,wh,x\nE,wh\nA,wh,7\n")
	assert.EqualValues(t, 2, res.Accepted)
	var lines []int
	for _, r := range res.Rejected {
		lines = append(lines, r.Line)
	}
	assert.Equal(t, []int{3, 4, 5, 6}, lines)
	assert.Contains(t, res.Rejected[1].Message, "unknown location")
	lv, err := s.Stock(ctx, "wh", "A")
	require.NoError(t, err)
	assert.EqualValues(t, 7, lv.OnHand, "the later line wins")
	_, err = s.Stock(ctx, "wh", "B")
	assert.Equal(t, oms.ENOTFOUND, oms.ErrorCode(err))

	// A bad header fails the whole batch and applies nothing.
	_, err = s.LoadInventory(ctx, oms.NewCSVReader(strings.NewReader("sku,where,on_hand\nZ,wh,1\n")))
	assert.Equal(t, oms.EINVALID, oms.ErrorCode(err))
	assert.Equal(t, "header", oms.ErrorField(err))
	_, err = s.Stock(ctx, "wh", "Z")
	assert.Equal(t, oms.ENOTFOUND, oms.ErrorCode(err))
}

func TestAccountRolesCannotReachOtherAccountDatabases(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	a := newAccount(t, reg, "alpha")
	b := newAccount(t, reg, "bravo")
	ctx := context.Background()
	cfgA := a.Pool().Config().ConnConfig
	cfgB := b.Pool().Config().ConnConfig
	require.NotEqual(t, cfgA.Database, cfgB.Database)
	require.NotEqual(t, cfgA.User, cfgB.User)

	cross := cfgA.Copy()
	cross.Database = cfgB.Database
	conn, err := pgx.ConnectConfig(ctx, cross)
	if err == nil {
		conn.Close(ctx)
	}
	require.Error(t, err, "alpha's role must not connect to bravo's database")
	assert.Contains(t, err.Error(), "permission denied")

	_, err = reg.CreateAccount(ctx, &oms.Account{ID: "alpha", Name: "again"})
	assert.Equal(t, oms.ECONFLICT, oms.ErrorCode(err))
	_, err = reg.CreateAccount(ctx, &oms.Account{ID: "Bad_ID", Name: "x"})
	assert.Equal(t, oms.EINVALID, oms.ErrorCode(err))
	assert.Equal(t, "id", oms.ErrorField(err))
}

func TestConcurrentBatchesWithOverlappingNewKeysBothApply(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	ctx := context.Background()
	putLocation(t, s, "wh", oms.LocationWarehouse, 52, 4)
	var wg sync.WaitGroup
	for _, q := range []int{1, 2} {
		wg.Go(func() {
			res, err := s.LoadInventory(ctx, oms.NewCSVReader(strings.NewReader(warehouseCSV(2000, q))))
			assert.NoError(t, err)
			if err == nil {
				assert.EqualValues(t, 2000, res.Accepted)
			}
		})
	}
	wg.Wait()
	var n, distinct int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*), count(DISTINCT on_hand) FROM stock`).Scan(&n, &distinct))
	assert.Equal(t, 2000, n)
	assert.Equal(t, 1, distinct, "one batch applied after the other, not interleaved")
}

func TestAvailabilityNearestFirstWithCompleteness(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	ctx := context.Background()
	putLocation(t, s, "ams", oms.LocationStore, 52.37, 4.89)
	putLocation(t, s, "rtm", oms.LocationWarehouse, 51.92, 4.48)
	putLocation(t, s, "par", oms.LocationWarehouse, 48.85, 2.35)
	load(t, s, "sku,location,on_hand\nA,ams,1\nA,rtm,5\nB,rtm,5\nA,par,9\nB,par,1\n")
	req := &oms.AvailabilityRequest{Items: []oms.Item{{SKU: "A", Qty: 2}, {SKU: "B", Qty: 1}}, Near: &oms.Point{Lat: ptr(52.37), Lon: ptr(4.89)}}
	a, err := s.Availability(ctx, req)
	require.NoError(t, err)
	var got []string
	for _, o := range a.Options {
		got = append(got, fmt.Sprintf("%s:%v:%d/%d", o.Location, o.Complete, o.Lines[0].Available, o.Lines[1].Available))
	}
	assert.Equal(t, []string{"ams:false:1/0", "rtm:true:5/5", "par:true:9/1"}, got)
	assert.Zero(t, a.Options[0].DistanceKm)

	req.Items = append(req.Items, oms.Item{SKU: "NOPE", Qty: 1})
	_, err = s.Availability(ctx, req)
	assert.Equal(t, "items[2].sku", oms.ErrorField(err))
}

// provisionLikeCloudSQL creates what omscloud's Cloud SQL resources create for an account: a login role with a
// password and a database owned by the admin, not by the role.
func provisionLikeCloudSQL(t *testing.T, url, role, password string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	for _, s := range []string{
		fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s'`, role, password),
		fmt.Sprintf(`CREATE DATABASE %s`, role),
	} {
		_, err := conn.Exec(ctx, s)
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, role))
		_, _ = conn.Exec(ctx, fmt.Sprintf(`DROP ROLE IF EXISTS %s`, role))
	})
}

func TestAdoptProvisionedAccountDatabase(t *testing.T) {
	ctx := context.Background()
	url := omstest.ControlDB(t)
	prefix := fmt.Sprintf("accta%d", os.Getpid()%100000)
	reg, err := postgres.Open(ctx, postgres.Options{URL: url, NamePrefix: prefix})
	require.NoError(t, err)
	t.Cleanup(reg.Close)
	require.NoError(t, reg.Migrate(ctx))

	role := prefix + "_north_wind"
	provisionLikeCloudSQL(t, url, role, "provisioned-pw")

	adopted, err := reg.AdoptAccount(ctx, &oms.Account{ID: "north-wind", Name: "north-wind"}, "provisioned-pw")
	require.NoError(t, err)
	assert.True(t, adopted)

	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var owner string
	require.NoError(t, conn.QueryRow(ctx, `SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1`, role).Scan(&owner))
	assert.Equal(t, role, owner, "the account's own role owns its database")
	var publicConnect bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT has_database_privilege('public', $1, 'CONNECT')`, role).Scan(&publicConnect))
	assert.False(t, publicConnect, "no other role may connect")

	// The adopted account works through the API's own path, with a key issued afterwards.
	s, err := reg.Store(ctx, "north-wind")
	require.NoError(t, err)
	putLocation(t, s.(*postgres.Store), "wh-1", oms.LocationWarehouse, 52, 4)
	key, err := reg.IssueKey(ctx, "north-wind")
	require.NoError(t, err)
	a, err := reg.Authenticate(ctx, key)
	require.NoError(t, err)
	assert.Equal(t, "north-wind", a.ID)

	again, err := reg.AdoptAccount(ctx, &oms.Account{ID: "north-wind", Name: "north-wind"}, "provisioned-pw")
	require.NoError(t, err)
	assert.False(t, again, "adopting twice is a no-op")
}

// Cloud SQL creates API-provisioned (BUILT_IN) users with CREATEROLE and CREATEDB, as members of
// cloudsqlsuperuser (https://cloud.google.com/sql/docs/postgres/users#default-users); its admin login is no
// superuser. Adoption must leave the account's own credentials unable to create roles or databases.
func TestAdoptStripsCloudSQLPrivilegesFromTheAccountRole(t *testing.T) {
	ctx := context.Background()
	url := omstest.ControlDB(t)
	prefix := fmt.Sprintf("acctp%d", os.Getpid()%100000)
	super, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer super.Close(ctx)
	exec := func(conn *pgx.Conn, sql string) {
		t.Helper()
		_, err := conn.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	// Cloud SQL's shape: cloudsqlsuperuser (cluster-wide, so shared by tests and kept) and an admin login in it.
	exec(super, `DO $$ BEGIN CREATE ROLE cloudsqlsuperuser NOLOGIN CREATEROLE CREATEDB;
		EXCEPTION WHEN duplicate_object THEN NULL; END $$`)
	admin, role := prefix+"_admin", prefix+"_north"
	exec(super, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'admin-pw' CREATEROLE CREATEDB IN ROLE cloudsqlsuperuser`, admin))
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		// The control database is dropped after this (omstest); the roles must own nothing by then.
		_, _ = conn.Exec(context.Background(), fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, role))
		_, _ = conn.Exec(context.Background(), fmt.Sprintf(`REASSIGN OWNED BY %s, %s TO postgres`, admin, role))
		_, _ = conn.Exec(context.Background(), fmt.Sprintf(`DROP OWNED BY %s, %s CASCADE`, admin, role))
		_, _ = conn.Exec(context.Background(), fmt.Sprintf(`DROP ROLE IF EXISTS %s, %s`, role, admin))
	})
	// The admin owns the control database, as the runtime's control login does on Cloud SQL.
	var controlDB string
	require.NoError(t, super.QueryRow(ctx, `SELECT current_database()`).Scan(&controlDB))
	exec(super, fmt.Sprintf(`ALTER DATABASE %s OWNER TO %s`, controlDB, admin))
	exec(super, fmt.Sprintf(`ALTER SCHEMA public OWNER TO %s`, admin))
	exec(super, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'provisioned-pw' CREATEROLE CREATEDB IN ROLE cloudsqlsuperuser`, role))
	// Databases created through the Cloud SQL API belong to cloudsqlsuperuser.
	exec(super, fmt.Sprintf(`CREATE DATABASE %s OWNER cloudsqlsuperuser`, role))

	adminURL := strings.Replace(url, "postgres:"+omstest.Postgres(t).Password()+"@", admin+":admin-pw@", 1)
	require.NotEqual(t, url, adminURL)
	reg, err := postgres.Open(ctx, postgres.Options{URL: adminURL, NamePrefix: prefix})
	require.NoError(t, err)
	t.Cleanup(reg.Close)
	require.NoError(t, reg.Migrate(ctx))
	adopted, err := reg.AdoptAccount(ctx, &oms.Account{ID: "north", Name: "north"}, "provisioned-pw")
	require.NoError(t, err)
	require.True(t, adopted)

	var createRole, createDB, member bool
	require.NoError(t, super.QueryRow(ctx, `SELECT rolcreaterole, rolcreatedb,
		pg_has_role(oid, 'cloudsqlsuperuser', 'MEMBER') FROM pg_roles WHERE rolname = $1`, role).Scan(&createRole, &createDB, &member))
	assert.False(t, createRole, "rolcreaterole")
	assert.False(t, createDB, "rolcreatedb")
	assert.False(t, member, "member of cloudsqlsuperuser")

	acct, err := pgx.Connect(ctx, strings.Replace(adminURL, admin+":admin-pw@", role+":provisioned-pw@", 1))
	require.NoError(t, err)
	defer acct.Close(ctx)
	for _, sql := range []string{
		`CREATE DATABASE ` + prefix + `_sneaky`,
		`CREATE ROLE ` + prefix + `_sneaky`,
		`SET ROLE cloudsqlsuperuser`,
	} {
		_, err := acct.Exec(ctx, sql)
		if !assert.Error(t, err, "the account role ran %q", sql) {
			_, _ = super.Exec(ctx, `DROP DATABASE IF EXISTS `+prefix+`_sneaky`)
			_, _ = super.Exec(ctx, `DROP ROLE IF EXISTS `+prefix+`_sneaky`)
			continue
		}
		assert.Equal(t, "42501", pgErrCode(err), "%s: %v", sql, err) // insufficient_privilege
	}

	// Adopting again (every `oms migrate --accounts`) strips again: a role changed since is corrected.
	exec(super, fmt.Sprintf(`ALTER ROLE %s CREATEDB`, role))
	again, err := reg.AdoptAccount(ctx, &oms.Account{ID: "north", Name: "north"}, "provisioned-pw")
	require.NoError(t, err)
	assert.False(t, again)
	require.NoError(t, super.QueryRow(ctx, `SELECT rolcreatedb FROM pg_roles WHERE rolname = $1`, role).Scan(&createDB))
	assert.False(t, createDB, "rolcreatedb after a second adoption")
}

func pgErrCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestAdoptRefusesWhatIsNotProvisionedOrAWrongPassword(t *testing.T) {
	ctx := context.Background()
	url := omstest.ControlDB(t)
	prefix := fmt.Sprintf("acctw%d", os.Getpid()%100000)
	reg, err := postgres.Open(ctx, postgres.Options{URL: url, NamePrefix: prefix})
	require.NoError(t, err)
	t.Cleanup(reg.Close)
	require.NoError(t, reg.Migrate(ctx))

	_, err = reg.AdoptAccount(ctx, &oms.Account{ID: "ghost", Name: "ghost"}, "pw")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "must be provisioned on cell main first")

	provisionLikeCloudSQL(t, url, prefix+"_wrongpw", "right-pw")
	_, err = reg.AdoptAccount(ctx, &oms.Account{ID: "wrongpw", Name: "wrongpw"}, "wrong-pw")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "wrong-pw", "passwords never appear in errors")
	accounts, err := reg.Accounts(ctx)
	require.NoError(t, err)
	assert.Empty(t, accounts, "a failed adoption leaves no registration behind")
}

// TestSessionsNameTheProcess: every session of a registry carries its ApplicationName, so pg_stat_activity tells
// serve's sessions from the worker's (omsbench splits PostgreSQL's CPU by it); a name in the URL wins.
func TestSessionsNameTheProcess(t *testing.T) {
	ctx := context.Background()
	url := omstest.ControlDB(t)
	t.Cleanup(func() { omstest.DropAccounts(t, url) })
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	for id, tc := range map[string]struct{ url, want string }{
		"named":  {url, "oms worker"},
		"custom": {url + sep + "application_name=ops", "ops"},
	} {
		reg, err := postgres.Open(ctx, postgres.Options{URL: tc.url, ApplicationName: "oms worker"})
		require.NoError(t, err)
		require.NoError(t, reg.Migrate(ctx))
		var got string
		err = newAccount(t, reg, id).Pool().QueryRow(ctx, `SELECT current_setting('application_name')`).Scan(&got)
		reg.Close()
		require.NoError(t, err)
		assert.Equal(t, tc.want, got, id)
	}
}
