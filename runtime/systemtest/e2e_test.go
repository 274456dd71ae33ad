package systemtest

import (
	"fmt"
	"maps"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/localenv/localenvtest"
)

const adminToken = "test-admin-token"

// stack is serve + worker (with RabbitMQ) on a fresh control database and vhost.
type stack struct {
	api     *Proc
	worker  *Proc
	env     map[string]string
	tap     *tap
	dbURL   string
	amqpURL string
}

func startStack(t *testing.T) *stack {
	t.Helper()
	localenvtest.RequireBinaries(t, localenvtest.RabbitMQBinaries...)
	localenvtest.RequireBinaries(t, localenvtest.RedisBinaries...)
	rds := localenvtest.SharedRedis(t)
	dbURL := omstest.ControlDB(t)
	amqpURL := localenvtest.NewVhost(t, localenvtest.SharedRabbitMQ(t))
	t.Cleanup(func() { omstest.DropAccounts(t, dbURL) })
	tp := startTap(t, amqpURL)
	env := map[string]string{"OMS_DATABASE_URL": dbURL, "OMS_ADMIN_TOKEN": adminToken, "OMS_LISTEN": "127.0.0.1:0",
		"OMS_DRAIN_DELAY": "0s", "OMS_AMQP_URL": amqpURL, "OMS_LOG_LEVEL": "info"}
	maps.Copy(env, RedisEnv(rds, localenvtest.NewKeyPrefix(t, rds)))
	s := &stack{env: env, tap: tp, dbURL: dbURL, amqpURL: amqpURL}
	MustRun(t, env, "migrate")
	s.api = Start(t, "serve", env, "serve")
	s.worker = Start(t, "worker", env, "worker")
	return s
}

func (s *stack) client(t *testing.T, key string) *Client {
	return &Client{T: t, Base: s.api.URL(), Key: key}
}

func (s *stack) createAccount(t *testing.T, id string) *Client {
	var out struct{ ID, APIKey string }
	s.client(t, adminToken).JSON("POST", "/v1/accounts", map[string]string{"id": id, "name": "Account " + id}, http.StatusCreated, &out)
	require.Equal(t, id, out.ID)
	require.NotEmpty(t, out.APIKey)
	return s.client(t, out.APIKey)
}

// seed creates 20 locations and loads 10,000 lines (499 regular SKUs plus
// HOT, with 50 units of HOT in total: 30 at loc-00 and 20 at loc-01).
func seed(t *testing.T, c *Client, format string) {
	for i := range 20 {
		c.JSON("PUT", fmt.Sprintf("/v1/locations/loc-%02d", i), map[string]any{"name": fmt.Sprintf("Location %d", i),
			"type": []string{"store", "warehouse"}[i%2], "lat": 50 + float64(i)*0.1, "lon": 4 + float64(i)*0.1}, http.StatusCreated, nil)
	}
	var b strings.Builder
	ct := "text/csv"
	if format == "csv" {
		b.WriteString("sku,location,on_hand\n")
	} else {
		ct = "application/x-ndjson"
	}
	for s := range 500 {
		for l := range 20 {
			sku, qty := fmt.Sprintf("SKU-%04d", s), (s*7+l*3)%40
			if s == 0 {
				sku, qty = "HOT", map[int]int{0: 30, 1: 20}[l]
			}
			if format == "csv" {
				fmt.Fprintf(&b, "%s,loc-%02d,%d\n", sku, l, qty)
			} else {
				fmt.Fprintf(&b, `{"sku":%q,"location":"loc-%02d","onHand":%d}`+"\n", sku, l, qty)
			}
		}
	}
	var res oms.BatchResult
	c.JSON("POST", "/v1/inventory/batches", b.String(), http.StatusOK, &res, "Content-Type", ct)
	require.EqualValues(t, 10000, res.Accepted, "rejected: %v", res.Rejected)
	require.Empty(t, res.Rejected)
}

func TestEndToEndTwoAccountsInventoryAvailabilityAndConcurrentOrders(t *testing.T) {
	s := startStack(t)
	alpha := s.createAccount(t, "alpha")
	bravo := s.createAccount(t, "bravo")
	seed(t, alpha, "csv")
	seed(t, bravo, "ndjson")

	var lv oms.StockLevel
	alpha.JSON("GET", "/v1/inventory/loc-03/SKU-0042", nil, http.StatusOK, &lv)
	assert.Equal(t, oms.StockLevel{SKU: "SKU-0042", Location: "loc-03", OnHand: (42*7 + 3*3) % 40, Available: (42*7 + 3*3) % 40}, lv)

	// Availability: nearest first; complete only where every line fits. Asked
	// twice, so the second answer comes from the cache.
	var av oms.Availability
	alpha.JSON("POST", "/v1/availability", map[string]any{"items": []map[string]any{{"sku": "HOT", "qty": 25}, {"sku": "SKU-0001", "qty": 1}},
		"near": map[string]float64{"lat": 50.05, "lon": 4.05}}, http.StatusOK, &av)
	alpha.JSON("POST", "/v1/availability", map[string]any{"items": []map[string]any{{"sku": "HOT", "qty": 25}, {"sku": "SKU-0001", "qty": 1}},
		"near": map[string]float64{"lat": 50.05, "lon": 4.05}}, http.StatusOK, &av)
	require.Len(t, av.Options, 20)
	assert.True(t, sort.SliceIsSorted(av.Options, func(i, j int) bool { return av.Options[i].DistanceKm < av.Options[j].DistanceKm }))
	for _, o := range av.Options {
		want := o.Location == "loc-00" && o.Lines[1].Available >= 1
		assert.Equal(t, want, o.Complete, "option %s: %+v", o.Location, o.Lines)
	}

	// 100 concurrent orders of one HOT each: 50 units exist.
	ids := make([]string, 100)
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			var o oms.Order
			alpha.JSON("POST", "/v1/orders", map[string]any{"ref": fmt.Sprintf("hot-%03d", i),
				"items":    []map[string]any{{"sku": "HOT", "qty": 1}},
				"delivery": map[string]any{"type": "HD", "address": map[string]any{"lat": 50.3, "lon": 4.3}}},
				http.StatusCreated, &o, "Idempotency-Key", fmt.Sprintf("idem-%03d", i))
			assert.Equal(t, oms.StatusCreated, o.Status)
			ids[i] = o.ID
		})
	}
	wg.Wait()
	require.NotContains(t, ids, "")

	statuses := func() map[string]int {
		counts := map[string]int{}
		cursor := ""
		for {
			var page oms.OrderPage
			alpha.JSON("GET", "/v1/orders?limit=30&cursor="+cursor, nil, http.StatusOK, &page)
			for _, o := range page.Orders {
				counts[o.Status]++
			}
			if page.NextCursor == "" {
				return counts
			}
			cursor = page.NextCursor
		}
	}
	eventually(t, 60*time.Second, "every order processed", func() bool { return statuses()[oms.StatusCreated] == 0 })
	assert.Equal(t, map[string]int{oms.StatusAllocated: 50, oms.StatusPendingStock: 50}, statuses())

	var reserved int64
	for _, loc := range []string{"loc-00", "loc-01"} {
		var lv oms.StockLevel
		alpha.JSON("GET", "/v1/inventory/"+loc+"/HOT", nil, http.StatusOK, &lv)
		assert.Equal(t, lv.OnHand, lv.Reserved, loc)
		assert.Zero(t, lv.Available, loc)
		reserved += lv.Reserved
	}
	assert.EqualValues(t, 50, reserved, "exactly the 50 units on hand are reserved")

	// The availability answered (and cached) before the orders now reflects the
	// reservations: the worker's commits invalidated the account's cache.
	alpha.JSON("POST", "/v1/availability", map[string]any{"items": []map[string]any{{"sku": "HOT", "qty": 25}, {"sku": "SKU-0001", "qty": 1}},
		"near": map[string]float64{"lat": 50.05, "lon": 4.05}}, http.StatusOK, &av)
	for _, o := range av.Options {
		assert.False(t, o.Complete, o.Location)
		assert.Zero(t, o.Lines[0].Available, o.Location)
	}

	status, _ := alpha.Do("GET", "/metrics", nil)
	assert.Equal(t, http.StatusNotFound, status, "the API port serves no metrics")
	_, metricsText := (&Client{T: t, Base: s.api.MetricsURL()}).Do("GET", "/metrics", nil)
	assert.Regexp(t, `(?m)^oms_cache_hits_total [1-9]`, string(metricsText), "the repeated availability query was a cache hit")
	assert.Regexp(t, `(?m)^oms_orders_created_total 100$`, string(metricsText))

	// Every order's events are in the log, in order, and were published.
	var eventIDs []string
	for _, id := range ids {
		var evs struct{ Events []oms.Event }
		alpha.JSON("GET", "/v1/events?entity=order:"+id, nil, http.StatusOK, &evs)
		require.Len(t, evs.Events, 3, "order %s", id)
		assert.Equal(t, oms.EventOrderCreated, evs.Events[0].Type)
		assert.Equal(t, oms.EventWorkflowRuleApplied, evs.Events[1].Type, "the default workflow's allocate rule")
		assert.Contains(t, []string{oms.EventOrderAllocated, oms.EventOrderPendingStock}, evs.Events[2].Type)
		assert.Less(t, evs.Events[0].Seq, evs.Events[2].Seq)
		for _, e := range evs.Events {
			eventIDs = append(eventIDs, e.ID)
		}
	}
	eventually(t, 30*time.Second, "every event published to RabbitMQ", func() bool {
		for _, id := range eventIDs {
			if !s.tap.has(id) {
				return false
			}
		}
		return true
	})

	// Idempotency over HTTP: same key + body → same order; other body → 409.
	body := map[string]any{"ref": "hot-000", "items": []map[string]any{{"sku": "HOT", "qty": 1}},
		"delivery": map[string]any{"type": "HD", "address": map[string]any{"lat": 50.3, "lon": 4.3}}}
	var replay oms.Order
	alpha.JSON("POST", "/v1/orders", body, http.StatusCreated, &replay, "Idempotency-Key", "idem-000")
	assert.Equal(t, ids[0], replay.ID)
	body["ref"] = "other"
	alpha.JSON("POST", "/v1/orders", body, http.StatusConflict, nil, "Idempotency-Key", "idem-000")

	// Cancelling an allocated order releases its unit.
	var allocated oms.OrderPage
	alpha.JSON("GET", "/v1/orders?status=ALLOCATED&limit=1", nil, http.StatusOK, &allocated)
	require.Len(t, allocated.Orders, 1)
	var cancelled oms.Order
	alpha.JSON("POST", "/v1/orders/"+allocated.Orders[0].ID+"/cancel", nil, http.StatusOK, &cancelled)
	assert.Equal(t, oms.StatusCancelled, cancelled.Status)
	var after oms.StockLevel
	alpha.JSON("GET", "/v1/inventory/"+cancelled.Location+"/HOT", nil, http.StatusOK, &after)
	assert.EqualValues(t, 1, after.Available)

	// Bravo's stock was untouched by alpha's orders.
	var bh oms.StockLevel
	bravo.JSON("GET", "/v1/inventory/loc-00/HOT", nil, http.StatusOK, &bh)
	assert.Equal(t, oms.StockLevel{SKU: "HOT", Location: "loc-00", OnHand: 30, Available: 30}, bh)
}
