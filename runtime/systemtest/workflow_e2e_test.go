package systemtest

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
)

// waitOrder polls an order until cond holds, through the API.
func waitOrder(t *testing.T, c *Client, id, what string, cond func(*oms.Order) bool) *oms.Order {
	t.Helper()
	var o oms.Order
	eventually(t, 30*time.Second, what, func() bool {
		c.JSON("GET", "/v1/orders/"+id, nil, http.StatusOK, &o)
		return cond(&o)
	})
	return &o
}

func postEvent(t *testing.T, c *Client, typ, fulfilment string) {
	t.Helper()
	c.JSON("POST", "/v1/events", map[string]string{"type": typ, "entity": "fulfilment:" + fulfilment}, http.StatusAccepted, nil)
}

func logTypes(t *testing.T, c *Client, entity string) []string {
	t.Helper()
	var evs struct{ Events []oms.Event }
	c.JSON("GET", "/v1/events?entity="+entity, nil, http.StatusOK, &evs)
	var out []string
	for _, e := range evs.Events {
		out = append(out, e.Type)
	}
	return out
}

// The default workflows, end to end through the serve and worker binaries and
// RabbitMQ: external events posted to the API reach the worker through the
// broker and move HD and CC orders to their final status; a rejection is
// reallocated; the event log shows each step.
func TestEndToEndDefaultWorkflowsThroughExternalEvents(t *testing.T) {
	s := startStack(t)
	c := s.createAccount(t, "retail")
	for i, loc := range []struct {
		ref, typ string
		lat, lon float64
	}{{"wh-near", "warehouse", 52.0, 4.0}, {"wh-far", "warehouse", 48.0, 2.0}, {"store-1", "store", 52.1, 4.1}} {
		c.JSON("PUT", "/v1/locations/"+loc.ref, map[string]any{"name": fmt.Sprintf("L%d", i), "type": loc.typ,
			"lat": loc.lat, "lon": loc.lon}, http.StatusCreated, nil)
	}
	c.JSON("POST", "/v1/inventory/batches", "sku,location,on_hand\nTEE,wh-near,5\nTEE,wh-far,5\nMUG,store-1,2\n",
		http.StatusOK, nil, "Content-Type", "text/csv")

	var ws struct{ Workflows []oms.Workflow }
	c.JSON("GET", "/v1/workflows", nil, http.StatusOK, &ws)
	require.Len(t, ws.Workflows, 2, "every account starts with the defaults")
	def, err := os.ReadFile("../workflow/defaults/click-and-collect.yaml")
	require.NoError(t, err)
	var same oms.Workflow
	c.JSON("PUT", "/v1/workflows/click-and-collect", def, http.StatusOK, &same, "Content-Type", "application/yaml")
	assert.Equal(t, 1, same.Version, "the shipped definition again is not a new version")

	var hd, cc oms.Order
	c.JSON("POST", "/v1/orders", map[string]any{"ref": "hd-1", "items": []map[string]any{{"sku": "TEE", "qty": 2}},
		"delivery": map[string]any{"type": "HD", "address": map[string]any{"lat": 52.2, "lon": 4.2}}}, http.StatusCreated, &hd,
		"Idempotency-Key", "hd-1")
	c.JSON("POST", "/v1/orders", map[string]any{"ref": "cc-1", "items": []map[string]any{{"sku": "MUG", "qty": 1}},
		"delivery": map[string]any{"type": "CC", "location": "store-1"}}, http.StatusCreated, &cc, "Idempotency-Key", "cc-1")

	// HD: allocated at the nearest warehouse, rejected there, reallocated to the other, then shipped and delivered.
	o := waitOrder(t, c, hd.ID, "HD order allocated", func(o *oms.Order) bool { return o.Status == oms.StatusAllocated })
	require.Equal(t, "wh-near", o.Location)
	rejected := o.Fulfilments[0].ID
	postEvent(t, c, "fulfilment.rejected", rejected)
	o = waitOrder(t, c, hd.ID, "HD order reallocated", func(o *oms.Order) bool { return len(o.Fulfilments) == 2 })
	assert.Equal(t, "wh-far", o.Location)
	second := o.Fulfilments[1].ID
	postEvent(t, c, "fulfilment.picked", second)
	waitOrder(t, c, hd.ID, "picked", func(o *oms.Order) bool { return o.Fulfilments[1].Status == "PICKED" })
	postEvent(t, c, "fulfilment.shipped", second)
	waitOrder(t, c, hd.ID, "HD order shipped", func(o *oms.Order) bool { return o.Status == "SHIPPED" })
	postEvent(t, c, "fulfilment.delivered", second)
	o = waitOrder(t, c, hd.ID, "HD order delivered", func(o *oms.Order) bool { return o.Status == "DELIVERED" })

	var near, far oms.StockLevel
	c.JSON("GET", "/v1/inventory/wh-near/TEE", nil, http.StatusOK, &near)
	c.JSON("GET", "/v1/inventory/wh-far/TEE", nil, http.StatusOK, &far)
	assert.Equal(t, [2]int64{5, 0}, [2]int64{near.OnHand, near.Reserved}, "the rejection gave the reservation back")
	assert.Equal(t, [2]int64{3, 0}, [2]int64{far.OnHand, far.Reserved}, "shipping took 2 off on-hand")

	assert.Equal(t, "order.created workflow.rule_applied order.allocated order.allocated order.status_changed order.status_changed",
		strings.Join(logTypes(t, c, "order:"+hd.ID), " "), "creation, allocation, reallocation, SHIPPED, DELIVERED")
	assert.Equal(t, "fulfilment.created fulfilment.rejected workflow.rule_applied fulfilment.stock_released fulfilment.status_changed",
		strings.Join(logTypes(t, c, "fulfilment:"+rejected), " "))
	assert.Equal(t, "fulfilment.created fulfilment.picked workflow.rule_applied fulfilment.status_changed "+
		"fulfilment.shipped workflow.rule_applied fulfilment.stock_consumed fulfilment.status_changed "+
		"fulfilment.delivered workflow.rule_applied fulfilment.status_changed",
		strings.Join(logTypes(t, c, "fulfilment:"+second), " "))

	// CC: ready for collection once picked, then collected.
	o = waitOrder(t, c, cc.ID, "CC order allocated", func(o *oms.Order) bool { return o.Status == oms.StatusAllocated })
	require.Equal(t, "store-1", o.Location)
	var pickList oms.FulfilmentPage
	c.JSON("GET", "/v1/fulfilments?location=store-1&status=CREATED", nil, http.StatusOK, &pickList)
	require.Len(t, pickList.Fulfilments, 1, "the store's pick list")
	assert.Equal(t, o.Fulfilments[0].ID, pickList.Fulfilments[0].ID)
	postEvent(t, c, "fulfilment.picked", o.Fulfilments[0].ID)
	waitOrder(t, c, cc.ID, "CC ready", func(o *oms.Order) bool { return o.Status == "READY_FOR_COLLECTION" })
	postEvent(t, c, "fulfilment.collected", o.Fulfilments[0].ID)
	waitOrder(t, c, cc.ID, "CC collected", func(o *oms.Order) bool { return o.Status == "COLLECTED" })
	assert.Contains(t, logTypes(t, c, "order:"+cc.ID), "order.ready_for_collection")

	// An event the order's workflow cannot take now is refused with the reason.
	code, body := c.Do("POST", "/v1/events", map[string]string{"type": "fulfilment.picked", "entity": "fulfilment:" + second})
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, string(body), "is DELIVERED")
}
