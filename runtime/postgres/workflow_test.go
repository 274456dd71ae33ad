package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/postgres"
	"github.com/omscloud/omscloud/runtime/worker"
	"github.com/omscloud/omscloud/runtime/workflow"
)

// drain plays the worker: it relays the outbox and applies what the worker
// consumes until nothing is left, and returns how many events it applied.
func drain(t *testing.T, s *postgres.Store) int {
	t.Helper()
	ctx := context.Background()
	applied := 0
	for range 100 {
		var batch []*oms.Event
		n, err := s.RelayOutbox(ctx, 1000, func(_ context.Context, evs []*oms.Event) error {
			batch = append(batch, evs...)
			return nil
		})
		require.NoError(t, err)
		if n == 0 {
			return applied
		}
		for _, e := range batch {
			if worker.Consumes(e.Type) {
				ok, err := s.ApplyEvent(ctx, e)
				require.NoError(t, err, "%s on %s", e.Type, e.Entity)
				if ok {
					applied++
				}
			}
		}
	}
	t.Fatal("the outbox never drained: a workflow loops")
	return 0
}

func post(t *testing.T, s *postgres.Store, typ, entity string) *oms.Event {
	t.Helper()
	e, replayed, err := s.PostEvent(context.Background(), &oms.EventRequest{Type: typ, Entity: entity})
	require.NoError(t, err, "%s on %s", typ, entity)
	require.False(t, replayed)
	return e
}

// oneWarehouse is an account with one warehouse "wh" holding 10 of SKU A.
func oneWarehouse(t *testing.T) *postgres.Store {
	t.Helper()
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	putLocation(t, s, "wh", oms.LocationWarehouse, 52.0, 4.0)
	load(t, s, "sku,location,on_hand\nA,wh,10\n")
	return s
}

// postAndDrain posts an external event and lets the worker apply it.
func postAndDrain(t *testing.T, s *postgres.Store, typ, entity string) {
	t.Helper()
	post(t, s, typ, entity)
	drain(t, s)
}

func order(t *testing.T, s *postgres.Store, id string) *oms.Order {
	t.Helper()
	o, err := s.Order(context.Background(), id)
	require.NoError(t, err)
	return o
}

func eventTypes(t *testing.T, s *postgres.Store, entity string) []string {
	t.Helper()
	evs, err := s.Events(context.Background(), oms.EventFilter{Entity: entity, Limit: 1000})
	require.NoError(t, err)
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func stockOf(t *testing.T, s *postgres.Store, loc, sku string) (onHand, reserved int64) {
	t.Helper()
	lv, err := s.Stock(context.Background(), loc, sku)
	require.NoError(t, err)
	return lv.OnHand, lv.Reserved
}

func createOrder(t *testing.T, s *postgres.Store, r *oms.OrderRequest) *oms.Order {
	t.Helper()
	o, _, err := s.CreateOrder(context.Background(), "key-"+r.Ref, r)
	require.NoError(t, err)
	return o
}

func cc(ref, store string, items ...oms.Item) *oms.OrderRequest {
	return &oms.OrderRequest{Ref: ref, Items: items, Delivery: oms.Delivery{Type: oms.DeliveryCC, Location: store}}
}

func TestHomeDeliveryRunsTheDefaultWorkflowToDeliveredAndLogsEveryStep(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	putLocation(t, s, "near", oms.LocationWarehouse, 52.0, 4.0)
	putLocation(t, s, "far", oms.LocationWarehouse, 40.0, -3.0)
	load(t, s, "sku,location,on_hand\nA,near,5\nB,near,5\nA,far,5\nB,far,5\n")

	o := createOrder(t, s, hd("hd-1", 52.1, 4.1, oms.Item{SKU: "A", Qty: 2}, oms.Item{SKU: "B", Qty: 1}))
	assert.Equal(t, "home-delivery", o.Workflow)
	assert.Equal(t, 1, o.WorkflowVersion)
	drain(t, s)
	o = order(t, s, o.ID)
	require.Equal(t, oms.StatusAllocated, o.Status)
	require.Len(t, o.Fulfilments, 1)
	f := o.Fulfilments[0]
	assert.Equal(t, "near", f.Location, "nearest location holding every line")
	assert.Equal(t, oms.StockReserved, f.Stock)

	for _, typ := range []string{"fulfilment.picked", "fulfilment.shipped", "fulfilment.delivered"} {
		postAndDrain(t, s, typ, "fulfilment:"+f.ID)
	}
	o = order(t, s, o.ID)
	assert.Equal(t, "DELIVERED", o.Status)
	assert.Equal(t, "DELIVERED", o.Fulfilments[0].Status)
	assert.Equal(t, oms.StockConsumed, o.Fulfilments[0].Stock)
	onHand, reserved := stockOf(t, s, "near", "A")
	assert.Equal(t, [2]int64{3, 0}, [2]int64{onHand, reserved}, "shipping took the goods off on-hand and the reservation")

	assert.Equal(t, []string{
		oms.EventOrderCreated, oms.EventWorkflowRuleApplied, oms.EventOrderAllocated,
		oms.EventOrderStatusChanged, // SHIPPED, by the fulfilment's shipped rule
		oms.EventOrderStatusChanged, // DELIVERED
	}, eventTypes(t, s, "order:"+o.ID))
	assert.Equal(t, []string{
		oms.EventFulfilmentCreated,
		"fulfilment.picked", oms.EventWorkflowRuleApplied, oms.EventFulfilmentStatusChanged,
		"fulfilment.shipped", oms.EventWorkflowRuleApplied, oms.EventFulfilmentStockConsumed, oms.EventFulfilmentStatusChanged,
		"fulfilment.delivered", oms.EventWorkflowRuleApplied, oms.EventFulfilmentStatusChanged,
	}, eventTypes(t, s, "fulfilment:"+f.ID))
}

func TestRejectedFulfilmentIsReallocatedToAnotherLocation(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	ctx := context.Background()
	putLocation(t, s, "near", oms.LocationWarehouse, 52.0, 4.0)
	putLocation(t, s, "far", oms.LocationWarehouse, 40.0, -3.0)
	load(t, s, "sku,location,on_hand\nA,near,5\nA,far,5\n")

	o := createOrder(t, s, hd("hd-1", 52.1, 4.1, oms.Item{SKU: "A", Qty: 2}))
	drain(t, s)
	first := order(t, s, o.ID).Fulfilments[0]
	require.Equal(t, "near", first.Location)
	postAndDrain(t, s, "fulfilment.picked", "fulfilment:"+first.ID)
	postAndDrain(t, s, "fulfilment.rejected", "fulfilment:"+first.ID)

	o = order(t, s, o.ID)
	assert.Equal(t, oms.StatusAllocated, o.Status)
	assert.Equal(t, "far", o.Location)
	require.Len(t, o.Fulfilments, 2)
	assert.Equal(t, []string{"near", "REJECTED", oms.StockReleased}, []string{o.Fulfilments[0].Location, o.Fulfilments[0].Status, o.Fulfilments[0].Stock})
	assert.Equal(t, []string{"far", "CREATED", oms.StockReserved}, []string{o.Fulfilments[1].Location, o.Fulfilments[1].Status, o.Fulfilments[1].Stock})
	_, nearReserved := stockOf(t, s, "near", "A")
	_, farReserved := stockOf(t, s, "far", "A")
	assert.Equal(t, [2]int64{0, 2}, [2]int64{nearReserved, farReserved})
	assert.Equal(t, []string{
		oms.EventFulfilmentCreated,
		"fulfilment.picked", oms.EventWorkflowRuleApplied, oms.EventFulfilmentStatusChanged,
		"fulfilment.rejected", oms.EventWorkflowRuleApplied, oms.EventFulfilmentStockReleased, oms.EventFulfilmentStatusChanged,
	}, eventTypes(t, s, "fulfilment:"+first.ID))

	// The rejected fulfilment is closed to further events: clear 409, nothing logged.
	_, _, err := s.PostEvent(ctx, &oms.EventRequest{Type: "fulfilment.shipped", Entity: "fulfilment:" + first.ID})
	assert.Equal(t, oms.ECONFLICT, oms.ErrorCode(err), "%v", err)
	assert.Contains(t, err.Error(), "is REJECTED")

	// Rejected at the second location as well: no third location, so the order waits for stock.
	postAndDrain(t, s, "fulfilment.rejected", "fulfilment:"+o.Fulfilments[1].ID)
	o = order(t, s, o.ID)
	assert.Equal(t, oms.StatusPendingStock, o.Status)
	assert.Empty(t, o.Location)

	// Stock arrives at a new location: the waiting order is allocated there.
	putLocation(t, s, "new", oms.LocationWarehouse, 50.0, 5.0)
	load(t, s, "sku,location,on_hand\nA,new,2\n")
	drain(t, s)
	o = order(t, s, o.ID)
	assert.Equal(t, oms.StatusAllocated, o.Status)
	assert.Equal(t, "new", o.Location)
}

func TestSplitAllocationAcrossLocationsAndOrderShipsWhenEveryPartHas(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	putLocation(t, s, "a", oms.LocationWarehouse, 52.0, 4.0)
	putLocation(t, s, "b", oms.LocationWarehouse, 51.0, 4.0)
	putLocation(t, s, "c", oms.LocationWarehouse, 50.0, 4.0)
	// Nobody holds everything: a has X, b has Y and some X, c has the rest of X.
	load(t, s, "sku,location,on_hand\nX,a,6\nY,b,4\nX,b,3\nX,c,10\n")

	o := createOrder(t, s, hd("split-1", 52.0, 4.0, oms.Item{SKU: "X", Qty: 8}, oms.Item{SKU: "Y", Qty: 4}))
	drain(t, s)
	o = order(t, s, o.ID)
	require.Equal(t, oms.StatusAllocated, o.Status)
	assert.Empty(t, o.Location, "split: no single location")
	got := map[string][]oms.Item{}
	for _, f := range o.Fulfilments {
		got[f.Location] = f.Items
	}
	// Greedy by units covered: c covers 8 X; then b covers 4 Y. Two fulfilments, not three.
	assert.Equal(t, map[string][]oms.Item{"c": {{SKU: "X", Qty: 8}}, "b": {{SKU: "Y", Qty: 4}}}, got)
	var reserved int64
	require.NoError(t, s.Pool().QueryRow(context.Background(), `SELECT sum(reserved) FROM stock`).Scan(&reserved))
	assert.EqualValues(t, 12, reserved)

	postAndDrain(t, s, "fulfilment.shipped", "fulfilment:"+o.Fulfilments[0].ID)
	assert.Equal(t, oms.StatusAllocated, order(t, s, o.ID).Status, "one of two parts shipped")
	postAndDrain(t, s, "fulfilment.shipped", "fulfilment:"+o.Fulfilments[1].ID)
	assert.Equal(t, "SHIPPED", order(t, s, o.ID).Status)
}

func TestClickAndCollectRunsToCollectedAndARejectionCancels(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	putLocation(t, s, "store-1", oms.LocationStore, 52.0, 4.0)
	load(t, s, "sku,location,on_hand\nA,store-1,3\n")

	o := createOrder(t, s, cc("cc-1", "store-1", oms.Item{SKU: "A", Qty: 1}))
	assert.Equal(t, "click-and-collect", o.Workflow)
	drain(t, s)
	f := order(t, s, o.ID).Fulfilments[0]
	postAndDrain(t, s, "fulfilment.picked", "fulfilment:"+f.ID)
	assert.Equal(t, "READY_FOR_COLLECTION", order(t, s, o.ID).Status)
	assert.Contains(t, eventTypes(t, s, "order:"+o.ID), "order.ready_for_collection", "the emit action notifies the customer")
	postAndDrain(t, s, "fulfilment.collected", "fulfilment:"+f.ID)
	o = order(t, s, o.ID)
	assert.Equal(t, "COLLECTED", o.Status)
	onHand, reserved := stockOf(t, s, "store-1", "A")
	assert.Equal(t, [2]int64{2, 0}, [2]int64{onHand, reserved})

	o2 := createOrder(t, s, cc("cc-2", "store-1", oms.Item{SKU: "A", Qty: 2}))
	drain(t, s)
	postAndDrain(t, s, "fulfilment.rejected", "fulfilment:"+order(t, s, o2.ID).Fulfilments[0].ID)
	assert.Equal(t, oms.StatusCancelled, order(t, s, o2.ID).Status)
	onHand, reserved = stockOf(t, s, "store-1", "A")
	assert.Equal(t, [2]int64{2, 0}, [2]int64{onHand, reserved}, "the rejected reservation went back")
}

func TestWorkflowVersionsPinOrdersAndConflictsAreNamed(t *testing.T) {
	s := oneWarehouse(t)
	ctx := context.Background()
	old := createOrder(t, s, hd("old", 52, 4, oms.Item{SKU: "A", Qty: 1}))
	drain(t, s)

	ws, err := s.Workflows(ctx)
	require.NoError(t, err)
	require.Len(t, ws, 2, "the defaults")

	// v2 of home-delivery: picking is skipped, shipping goes straight to SHIPPED without consuming twice.
	def := `
appliesTo: {deliveryType: HD}
rules:
  - name: allocate
    on: order.created
    actions: [{allocate: {strategy: nearest, status: RESERVED}}]
  - name: dispatched
    on: fulfilment.dispatched
    when: {status: [CREATED]}
    actions:
      - release: {consume: true}
      - setStatus: {status: DISPATCHED}
      - setStatus: {entity: order, status: DISPATCHED, ifAllFulfilments: [DISPATCHED]}
`
	w, err := workflow.Decode([]byte(def), "application/yaml")
	require.NoError(t, err)
	w.Name = "home-delivery"
	stored, created, err := s.PutWorkflow(ctx, w)
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, 2, stored.Version)
	again, created, err := s.PutWorkflow(ctx, w)
	require.NoError(t, err)
	assert.False(t, created, "the same definition is not a new version")
	assert.Equal(t, 2, again.Version)

	fresh := createOrder(t, s, hd("new", 52, 4, oms.Item{SKU: "A", Qty: 1}))
	drain(t, s)
	assert.Equal(t, 2, order(t, s, fresh.ID).WorkflowVersion)
	assert.Equal(t, "RESERVED", order(t, s, fresh.ID).Status)
	postAndDrain(t, s, "fulfilment.dispatched", "fulfilment:"+order(t, s, fresh.ID).Fulfilments[0].ID)
	assert.Equal(t, "DISPATCHED", order(t, s, fresh.ID).Status)

	// The old order still runs v1: dispatched means nothing to it, shipped does.
	oldF := order(t, s, old.ID).Fulfilments[0]
	_, _, err = s.PostEvent(ctx, &oms.EventRequest{Type: "fulfilment.dispatched", Entity: "fulfilment:" + oldF.ID})
	require.Error(t, err)
	assert.Equal(t, "type", oms.ErrorField(err))
	assert.Contains(t, err.Error(), "home-delivery v1 has no rule on fulfilment.dispatched")
	postAndDrain(t, s, "fulfilment.shipped", "fulfilment:"+oldF.ID)
	assert.Equal(t, "SHIPPED", order(t, s, old.ID).Status)

	// A second workflow for HD orders is refused, naming the one to change.
	w.Name = "express"
	_, _, err = s.PutWorkflow(ctx, w)
	assert.Equal(t, oms.ECONFLICT, oms.ErrorCode(err))
	assert.Contains(t, err.Error(), `PUT /v1/workflows/home-delivery`)
	v1, err := s.Workflow(ctx, "home-delivery", 1)
	require.NoError(t, err)
	assert.True(t, v1.Handles("fulfilment.picked"))
}

func TestPostEventChecksAndReplays(t *testing.T) {
	s := oneWarehouse(t)
	ctx := context.Background()
	o := createOrder(t, s, hd("o", 52, 4, oms.Item{SKU: "A", Qty: 1}))
	drain(t, s)
	f := order(t, s, o.ID).Fulfilments[0]

	id := "8b0f5a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
	req := &oms.EventRequest{ID: id, Type: "fulfilment.picked", Entity: "fulfilment:" + f.ID, Data: json.RawMessage(`{"picker":"p7"}`)}
	e1, replayed, err := s.PostEvent(ctx, req)
	require.NoError(t, err)
	assert.False(t, replayed)
	e2, replayed, err := s.PostEvent(ctx, req)
	require.NoError(t, err)
	assert.True(t, replayed, "same id: the first event, not a second one")
	assert.Equal(t, e1.Seq, e2.Seq)
	drain(t, s)
	assert.Equal(t, "PICKED", order(t, s, o.ID).Fulfilments[0].Status)

	for _, tc := range []struct {
		name  string
		req   oms.EventRequest
		code  string
		field string
		msg   string
	}{
		{"id reused for another event", oms.EventRequest{ID: id, Type: "fulfilment.shipped", Entity: "fulfilment:" + f.ID}, oms.ECONFLICT, "id", "already used"},
		{"engine event", oms.EventRequest{Type: "order.created", Entity: "order:" + o.ID}, oms.EINVALID, "type", "written by the OMS"},
		{"entity kind mismatch", oms.EventRequest{Type: "fulfilment.picked", Entity: "order:" + o.ID}, oms.EINVALID, "entity", "use fulfilment:<id>"},
		{"unknown fulfilment", oms.EventRequest{Type: "fulfilment.picked", Entity: "fulfilment:" + id}, oms.ENOTFOUND, "entity", "not found"},
		{"no rule for it", oms.EventRequest{Type: "fulfilment.teleported", Entity: "fulfilment:" + f.ID}, oms.EINVALID, "type", "listens to fulfilment.picked"},
		{"wrong status", oms.EventRequest{Type: "fulfilment.delivered", Entity: "fulfilment:" + f.ID}, oms.ECONFLICT, "type", "only in status SHIPPED"},
		{"data not an object", oms.EventRequest{Type: "fulfilment.shipped", Entity: "fulfilment:" + f.ID, Data: json.RawMessage(`[1]`)}, oms.EINVALID, "data", "JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.PostEvent(ctx, &tc.req)
			require.Error(t, err)
			assert.Equal(t, tc.code, oms.ErrorCode(err), err.Error())
			assert.Equal(t, tc.field, oms.ErrorField(err), err.Error())
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
	// A posted event that arrives after the status moved on is logged as ignored, not applied.
	post(t, s, "fulfilment.shipped", "fulfilment:"+f.ID)
	late := post(t, s, "fulfilment.rejected", "fulfilment:"+f.ID) // accepted: still PICKED when posted
	drain(t, s)
	types := eventTypes(t, s, "fulfilment:"+f.ID)
	assert.Equal(t, oms.EventWorkflowEventIgnored, types[len(types)-1], strings.Join(types, " "))
	assert.Equal(t, "SHIPPED", order(t, s, o.ID).Status, "the late rejection changed nothing (%s)", late.ID)
}

func TestCancelReleasesEveryFulfilmentButNotAfterShipping(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	ctx := context.Background()
	putLocation(t, s, "a", oms.LocationWarehouse, 52.0, 4.0)
	putLocation(t, s, "b", oms.LocationWarehouse, 51.0, 4.0)
	load(t, s, "sku,location,on_hand\nX,a,1\nX,b,1\n")
	o := createOrder(t, s, hd("o", 52, 4, oms.Item{SKU: "X", Qty: 2}))
	drain(t, s)
	require.Len(t, order(t, s, o.ID).Fulfilments, 2)
	_, err := s.CancelOrder(ctx, o.ID)
	require.NoError(t, err)
	o = order(t, s, o.ID)
	for _, f := range o.Fulfilments {
		assert.Equal(t, []string{"CANCELLED", oms.StockReleased}, []string{f.Status, f.Stock})
	}
	var reserved int64
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT sum(reserved) FROM stock`).Scan(&reserved))
	assert.Zero(t, reserved)

	// A pending order wakes when the cancellation frees stock.
	load(t, s, "sku,location,on_hand\nX,a,1\nX,b,0\n")
	shipped := createOrder(t, s, hd("o2", 52, 4, oms.Item{SKU: "X", Qty: 1}))
	waiting := createOrder(t, s, hd("o3", 52, 4, oms.Item{SKU: "X", Qty: 1}))
	drain(t, s)
	require.Equal(t, oms.StatusPendingStock, order(t, s, waiting.ID).Status)
	postAndDrain(t, s, "fulfilment.shipped", "fulfilment:"+order(t, s, shipped.ID).Fulfilments[0].ID)
	_, err = s.CancelOrder(ctx, shipped.ID)
	assert.Equal(t, oms.ECONFLICT, oms.ErrorCode(err), "goods that left cannot be un-shipped by a cancel")
	load(t, s, "sku,location,on_hand\nX,b,1\n")
	drain(t, s)
	assert.Equal(t, oms.StatusAllocated, order(t, s, waiting.ID).Status)
}

func TestPruneProcessedForgetsOnlyOldMessageIDs(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	ctx := context.Background()
	_, err := s.Pool().Exec(ctx, `INSERT INTO processed_messages (id, processed_at)
		SELECT gen_random_uuid(), now() - make_interval(days => g % 10) FROM generate_series(0, 99) g`)
	require.NoError(t, err)
	// 20 rows are 8 or 9 days old.
	n, err := s.PruneProcessed(ctx, 7*24*time.Hour+time.Minute, 15)
	require.NoError(t, err)
	assert.Equal(t, 15, n, "bounded batch")
	n, err = s.PruneProcessed(ctx, 7*24*time.Hour+time.Minute, 1000)
	require.NoError(t, err)
	assert.Equal(t, 5, n, "the rest of the old ones, none of the recent")
	var left int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM processed_messages`).Scan(&left))
	assert.Equal(t, 80, left)
}

func TestWebhookActionSendsTheTriggerOnceAndAMissingWebhookIsLogged(t *testing.T) {
	s := oneWarehouse(t)
	ctx := context.Background()
	// The ERP also subscribes to fulfilment.shipped: the rule's call must not send it twice.
	_, _, err := s.PutWebhook(ctx, "erp", &oms.WebhookInput{URL: "https://erp.example.com/hook",
		Events: []string{"fulfilment.shipped"}, Secret: "0123456789abcdef0123"})
	require.NoError(t, err)
	w, err := workflow.Decode([]byte(`
appliesTo: {deliveryType: HD}
rules:
  - name: allocate
    on: order.created
    actions: [{allocate: {strategy: nearest}}]
  - name: shipped
    on: fulfilment.shipped
    actions:
      - release: {consume: true}
      - setStatus: {status: SHIPPED}
      - webhook: {name: erp}
      - webhook: {name: wms}
`), "application/yaml")
	require.NoError(t, err)
	w.Name = "home-delivery"
	_, _, err = s.PutWorkflow(ctx, w)
	require.NoError(t, err)

	o := createOrder(t, s, hd("o", 52, 4, oms.Item{SKU: "A", Qty: 1}))
	drain(t, s)
	f := order(t, s, o.ID).Fulfilments[0]
	shipped := post(t, s, "fulfilment.shipped", "fulfilment:"+f.ID)
	drain(t, s)

	ds, err := s.WebhookDeliveries(ctx, "erp", oms.DeliveryFilter{})
	require.NoError(t, err)
	require.Len(t, ds, 1, "one delivery of the trigger, though both the subscription and the rule asked")
	assert.Equal(t, shipped.ID, ds[0].EventID)
	types := eventTypes(t, s, "fulfilment:"+f.ID)
	assert.Equal(t, oms.EventWorkflowWebhookNotFound, types[len(types)-1], "wms does not exist: logged, the rule still completed")
	assert.Equal(t, "SHIPPED", order(t, s, o.ID).Fulfilments[0].Status)
}

// A split order whose rejected part waits for stock does not count as shipped
// when its other part ships; it ships once the waiting part has.
func TestAnOrderWithALineWaitingForStockIsNotShippedByItsOtherParts(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	putLocation(t, s, "a", oms.LocationWarehouse, 52.0, 4.0)
	putLocation(t, s, "b", oms.LocationWarehouse, 51.0, 4.0)
	load(t, s, "sku,location,on_hand\nX,a,1\nY,b,1\n")
	o := createOrder(t, s, hd("o", 52, 4, oms.Item{SKU: "X", Qty: 1}, oms.Item{SKU: "Y", Qty: 1}))
	drain(t, s)
	fs := order(t, s, o.ID).Fulfilments
	require.Len(t, fs, 2)
	post(t, s, "fulfilment.rejected", "fulfilment:"+fs[1].ID) // Y at b: nowhere else to go
	drain(t, s)
	require.Equal(t, oms.StatusPendingStock, order(t, s, o.ID).Status)
	postAndDrain(t, s, "fulfilment.shipped", "fulfilment:"+fs[0].ID)
	assert.Equal(t, oms.StatusPendingStock, order(t, s, o.ID).Status, "Y has not shipped: the order is not SHIPPED")

	putLocation(t, s, "c", oms.LocationWarehouse, 50.0, 4.0)
	load(t, s, "sku,location,on_hand\nY,c,1\n")
	drain(t, s)
	o2 := order(t, s, o.ID)
	require.Equal(t, oms.StatusAllocated, o2.Status)
	postAndDrain(t, s, "fulfilment.shipped", "fulfilment:"+o2.Fulfilments[2].ID)
	assert.Equal(t, "SHIPPED", order(t, s, o.ID).Status)
}

// Waking is bounded per event and continues past the bound; orders whose
// remaining lines the stock cannot cover (here: a click & collect store without
// it) are not woken, so they cannot hold back the others.
func TestWakingWaitingOrdersContinuesPastTheBatchAndSkipsOrdersItCannotServe(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	postgres.SetMaxWake(t, 3)
	putLocation(t, s, "wh", oms.LocationWarehouse, 52.0, 4.0)
	putLocation(t, s, "store", oms.LocationStore, 52.0, 4.0)
	load(t, s, "sku,location,on_hand\nX,wh,0\nX,store,0\n")
	var waiting []string
	for i := range 2 {
		waiting = append(waiting, createOrder(t, s, cc(fmt.Sprintf("cc-%d", i), "store", oms.Item{SKU: "X", Qty: 1})).ID)
	}
	for i := range 7 {
		waiting = append(waiting, createOrder(t, s, hd(fmt.Sprintf("hd-%d", i), 52, 4, oms.Item{SKU: "X", Qty: 1})).ID)
	}
	drain(t, s)
	load(t, s, "sku,location,on_hand\nX,wh,100\n")
	drain(t, s)
	for i, id := range waiting {
		want := oms.StatusAllocated
		if i < 2 {
			want = oms.StatusPendingStock // their store still has none
		}
		assert.Equal(t, want, order(t, s, id).Status, "order %d", i)
	}
	var continued int
	require.NoError(t, s.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM events WHERE type = 'inventory.wake_continued'`).Scan(&continued))
	assert.Equal(t, 2, continued, "7 orders in batches of 3")
}

func TestPostingTheSameEventIDConcurrentlyRecordsItOnce(t *testing.T) {
	s := oneWarehouse(t)
	ctx := context.Background()
	o := createOrder(t, s, hd("o", 52, 4, oms.Item{SKU: "A", Qty: 1}))
	drain(t, s)
	req := &oms.EventRequest{ID: "0b0f5a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", Type: "fulfilment.picked",
		Entity: "fulfilment:" + order(t, s, o.ID).Fulfilments[0].ID}
	var wg sync.WaitGroup
	replays := make(chan bool, 8)
	for range 8 {
		wg.Go(func() {
			_, replayed, err := s.PostEvent(ctx, req)
			assert.NoError(t, err)
			replays <- replayed
		})
	}
	wg.Wait()
	close(replays)
	first := 0
	for r := range replays {
		if !r {
			first++
		}
	}
	assert.Equal(t, 1, first, "one post recorded it, the others replayed it")
	other := *req
	other.Data = json.RawMessage(`{"picker":"someone else"}`)
	_, _, err := s.PostEvent(ctx, &other)
	assert.Equal(t, oms.ECONFLICT, oms.ErrorCode(err), "same id, other data")
}

func TestFulfilmentsListALocationsQueueByStatusInPages(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	ctx := context.Background()
	putLocation(t, s, "a", oms.LocationWarehouse, 52.0, 4.0)
	putLocation(t, s, "b", oms.LocationWarehouse, 40.0, 4.0)
	load(t, s, "sku,location,on_hand\nA,a,5\nB,b,5\n")
	var atA []string
	for i := range 5 {
		o := createOrder(t, s, hd(fmt.Sprintf("a-%d", i), 52, 4, oms.Item{SKU: "A", Qty: 1}))
		createOrder(t, s, hd(fmt.Sprintf("b-%d", i), 52, 4, oms.Item{SKU: "B", Qty: 1}))
		drain(t, s)
		atA = append(atA, order(t, s, o.ID).Fulfilments[0].ID)
	}
	postAndDrain(t, s, "fulfilment.picked", "fulfilment:"+atA[1])

	var got []string
	cursor := ""
	for {
		page, err := s.Fulfilments(ctx, oms.FulfilmentFilter{Location: "a", Status: "CREATED", Limit: 2, Cursor: cursor})
		require.NoError(t, err)
		for _, f := range page.Fulfilments {
			assert.Equal(t, "a", f.Location)
			got = append(got, f.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	assert.Equal(t, []string{atA[0], atA[2], atA[3], atA[4]}, got, "a's CREATED fulfilments, oldest first, across pages")
	_, err := s.Fulfilments(ctx, oms.FulfilmentFilter{Status: "picked"})
	assert.Equal(t, "status", oms.ErrorField(err))
	_, err = s.Fulfilments(ctx, oms.FulfilmentFilter{Cursor: "nope"})
	assert.Equal(t, "cursor", oms.ErrorField(err))
}
