package systemtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/localenv/localenvtest"
	"github.com/omscloud/omscloud/runtime/postgres"
)

func ptr(f float64) *float64 { return &f }

// stockedAccount creates account acme with one warehouse, wh, holding onHand units of sku; it returns the account's
// API key and its store.
func stockedAccount(t *testing.T, reg *postgres.Registry, sku string, onHand int) (string, *postgres.Store) {
	t.Helper()
	ctx := context.Background()
	key, err := reg.CreateAccount(ctx, &oms.Account{ID: "acme", Name: "Acme"})
	require.NoError(t, err)
	st, err := reg.Store(ctx, "acme")
	require.NoError(t, err)
	store := st.(*postgres.Store)
	_, err = store.PutLocation(ctx, &oms.Location{Ref: "wh", Name: "WH", Type: oms.LocationWarehouse, Lat: ptr(52), Lon: ptr(4)})
	require.NoError(t, err)
	_, err = store.LoadInventory(ctx, oms.NewCSVReader(stringsReader(fmt.Sprintf("sku,location,on_hand\n%s,wh,%d\n", sku, onHand))))
	require.NoError(t, err)
	return key, store
}

func TestKillingTheWorkerMidStreamLosesNoEventAndAppliesNoneTwice(t *testing.T) {
	localenvtest.RequireBinaries(t, localenvtest.RabbitMQBinaries...)
	reg, dbURL := omstest.Registry(t, nil)
	amqpURL := localenvtest.NewVhost(t, localenvtest.SharedRabbitMQ(t))
	tp := startTap(t, amqpURL)
	ctx := context.Background()

	_, store := stockedAccount(t, reg, "HOT", 600)

	const orders = 1000
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < orders; i += 8 {
				_, _, err := store.CreateOrder(ctx, fmt.Sprintf("k-%d", i), &oms.OrderRequest{Ref: fmt.Sprintf("o-%d", i),
					Items:    []oms.Item{{SKU: "HOT", Qty: 1}},
					Delivery: oms.Delivery{Type: oms.DeliveryHD, Address: &oms.Address{Lat: ptr(52), Lon: ptr(4)}}})
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()

	count := func(q string) int {
		var n int
		require.NoError(t, store.Pool().QueryRow(ctx, q).Scan(&n))
		return n
	}
	processed := func() int { return count(`SELECT count(*) FROM orders WHERE status <> 'CREATED'`) }

	env := map[string]string{"OMS_DATABASE_URL": dbURL, "OMS_AMQP_URL": amqpURL, "OMS_LISTEN": "127.0.0.1:0", "OMS_LOG_LEVEL": "info",
		"OMS_DRAIN_DELAY": "0s"}
	first := Start(t, "worker-1", env, "worker")
	deadline := time.Now().Add(60 * time.Second)
	for processed() < orders/20 {
		require.True(t, time.Now().Before(deadline), "the worker did not get going")
		time.Sleep(2 * time.Millisecond)
	}
	require.NoError(t, first.Kill()) // SIGKILL: no chance to finish anything
	// A COMMIT the worker sent just before dying still completes on the server.
	time.Sleep(300 * time.Millisecond)
	atKill := processed()
	t.Logf("killed the worker with %d of %d orders processed, %d events still in the outbox", atKill, orders,
		count(`SELECT count(*) FROM outbox`))
	require.Less(t, atKill, orders, "the kill must land mid-stream for this test to mean anything")
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, atKill, processed(), "nothing moves while no worker runs")

	Start(t, "worker-2", env, "worker")
	eventually(t, 90*time.Second, "every order processed after the restart", func() bool { return processed() == orders })
	eventually(t, 30*time.Second, "the outbox drained", func() bool { return count(`SELECT count(*) FROM outbox`) == 0 })

	// Applied exactly once: one outcome per order, one processed message per
	// order.created (plus the stock batch, which wakes waiting orders), and
	// reservations that add up to the units on hand.
	assert.Equal(t, orders+1, count(`SELECT count(*) FROM processed_messages`))
	assert.Equal(t, 0, count(`SELECT count(*) FROM (SELECT entity FROM events WHERE type IN ('order.allocated','order.pending_stock')
		GROUP BY entity HAVING count(*) <> 1) dup`))
	assert.Equal(t, orders, count(`SELECT count(*) FROM events WHERE type IN ('order.allocated','order.pending_stock')`))
	assert.Equal(t, 600, count(`SELECT count(*) FROM orders WHERE status = 'ALLOCATED'`))
	assert.Equal(t, 400, count(`SELECT count(*) FROM orders WHERE status = 'PENDING_STOCK'`))
	assert.Equal(t, 600, count(`SELECT reserved FROM stock WHERE sku = 'HOT'`))
	assert.Equal(t, 600, count(`SELECT sum(qty) FROM reservations`))

	// Lost nothing: every event in the log reached the broker.
	rows, err := store.Pool().Query(ctx, `SELECT id::text FROM events`)
	require.NoError(t, err)
	var ids []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	eventually(t, 30*time.Second, "every event on the broker", func() bool {
		for _, id := range ids {
			if !tp.has(id) {
				return false
			}
		}
		return true
	})
}
