package postgres_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/postgres"
)

// BenchmarkAllocateOne times the worker's handling of order.created alone (the default HD workflow:
// one rule, two lines reserved at the nearest of 10 locations, 3 events logged):
//
//	go test ./postgres/ -run '^$' -bench AllocateOne -benchtime 3000x
func BenchmarkAllocateOne(b *testing.B) {
	reg, _ := omstest.Registry(b, nil)
	ctx := context.Background()
	st := newAccount(b, reg, "bench")
	var csv strings.Builder
	csv.WriteString("sku,location,on_hand\n")
	for l := range 10 {
		putLocation(b, st, fmt.Sprintf("l%d", l), oms.LocationWarehouse, 50+float64(l)*0.1, 4.0)
		for s := range 50 {
			fmt.Fprintf(&csv, "S%d,l%d,1000000\n", s, l)
		}
	}
	load(b, st, csv.String())
	lat, lon := 50.5, 4.0
	var evs []*oms.Event
	for i := range b.N {
		o, _, err := st.CreateOrder(ctx, fmt.Sprintf("k%d", i), &oms.OrderRequest{Ref: fmt.Sprintf("r%d", i),
			Items:    []oms.Item{{SKU: fmt.Sprintf("S%d", i%50), Qty: 1}, {SKU: fmt.Sprintf("S%d", (i+7)%50), Qty: 2}},
			Delivery: oms.Delivery{Type: "HD", Address: &oms.Address{Lat: &lat, Lon: &lon}}})
		require.NoError(b, err)
		e, err := st.Events(ctx, oms.EventFilter{Entity: "order:" + o.ID, Limit: 1})
		require.NoError(b, err)
		evs = append(evs, e[0])
	}
	b.ResetTimer()
	for _, e := range evs {
		ok, err := st.ApplyEvent(ctx, e)
		require.NoError(b, err)
		require.True(b, ok)
	}
}

// BenchmarkCreateOrder times oms serve's part of an order (POST /v1/orders: the idempotency key, the SKU check,
// the order row and its order.created event with its outbox row, in one transaction), 8 at a time as the bench's
// clients send them, and reports the WAL each order writes:
//
//	go test ./postgres/ -run '^$' -bench CreateOrder -benchtime 4000x -count 5
func BenchmarkCreateOrder(b *testing.B) {
	reg, _ := omstest.Registry(b, nil)
	ctx := context.Background()
	st := newAccount(b, reg, "bench")
	lat, lon := 50.0, 4.0
	putLocation(b, st, "l0", oms.LocationWarehouse, lat, lon)
	var csv strings.Builder
	csv.WriteString("sku,location,on_hand\n")
	for s := range 50 {
		fmt.Fprintf(&csv, "S%d,l0,1000000\n", s)
	}
	load(b, st, csv.String())
	walBefore := walLSN(b, st)
	var next atomic.Int64
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			_, _, err := st.CreateOrder(ctx, fmt.Sprintf("k%d-%d", b.N, i), &oms.OrderRequest{Ref: fmt.Sprintf("r%d-%d", b.N, i),
				Items:    []oms.Item{{SKU: fmt.Sprintf("S%d", i%50), Qty: 1}},
				Delivery: oms.Delivery{Type: "HD", Address: &oms.Address{Lat: &lat, Lon: &lon}}})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(walLSN(b, st)-walBefore)/float64(b.N), "WAL-bytes/order")
}

// walLSN is the server's current WAL position in bytes.
func walLSN(b *testing.B, st *postgres.Store) int64 {
	var lsn int64
	require.NoError(b, st.Pool().QueryRow(context.Background(),
		`SELECT pg_current_wal_lsn() - '0/0'`).Scan(&lsn))
	return lsn
}
