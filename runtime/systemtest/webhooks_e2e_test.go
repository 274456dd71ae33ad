package systemtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/webhook"
)

// TestWebhookReceiverGetsSignedOrderEventsThroughServeAndWorker runs `oms
// serve` and `oms worker` (outbox consumed from PostgreSQL): an order created
// through the API reaches a receiver as signed order.created and
// order.allocated deliveries, the first after a retry.
func TestWebhookReceiverGetsSignedOrderEventsThroughServeAndWorker(t *testing.T) {
	const secret = "e2e-webhook-secret-never-shown"
	dbURL := omstest.ControlDB(t)
	t.Cleanup(func() { omstest.DropAccounts(t, dbURL) })
	env := map[string]string{"OMS_DATABASE_URL": dbURL, "OMS_ADMIN_TOKEN": adminToken, "OMS_LISTEN": "127.0.0.1:0",
		"OMS_DRAIN_DELAY": "0s", "OMS_LOG_LEVEL": "debug", "OMS_WEBHOOK_BASE_DELAY": "100ms",
		"OMS_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}
	MustRun(t, env, "migrate")
	api := Start(t, "serve", env, "serve")
	wrk := Start(t, "worker", env, "worker")

	type got struct {
		delivery, typ string
		body          []byte
		sigOK         bool
	}
	var mu sync.Mutex
	var reqs []got
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		reqs = append(reqs, got{r.Header.Get(webhook.HeaderDelivery), r.Header.Get(webhook.HeaderEventType), body,
			webhook.Verify(secret, r.Header.Get(webhook.HeaderSignature), body, time.Minute) == nil})
		if len(reqs) == 1 {
			w.WriteHeader(http.StatusInternalServerError) // the first attempt fails
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()

	var acct struct{ ID, APIKey string }
	(&Client{T: t, Base: "http://" + api.Addr, Key: adminToken}).JSON("POST", "/v1/accounts",
		map[string]string{"id": "shop", "name": "Shop"}, http.StatusCreated, &acct)
	c := &Client{T: t, Base: "http://" + api.Addr, Key: acct.APIKey}
	var wh map[string]any
	c.JSON("PUT", "/v1/webhooks/orders", map[string]any{"url": rcv.URL + "/oms", "events": []string{"order.*"}, "secret": secret},
		http.StatusCreated, &wh)
	assert.NotContains(t, wh, "secret")
	c.JSON("PUT", "/v1/locations/st-1", map[string]any{"name": "Store", "type": "store", "lat": 52.37, "lon": 4.89}, http.StatusCreated, nil)
	c.JSON("POST", "/v1/inventory/batches", "sku,location,on_hand\nA,st-1,5\n", http.StatusOK, nil, "Content-Type", "text/csv")
	var o oms.Order
	c.JSON("POST", "/v1/orders", map[string]any{"ref": "wh-1", "items": []map[string]any{{"sku": "A", "qty": 2}},
		"delivery": map[string]any{"type": "CC", "location": "st-1"}}, http.StatusCreated, &o, "Idempotency-Key", "wh-1")

	eventually(t, 20*time.Second, "order.created and order.allocated delivered", func() bool {
		var out struct{ Deliveries []oms.WebhookDelivery }
		c.JSON("GET", "/v1/webhooks/orders/deliveries?status=delivered", nil, http.StatusOK, &out)
		return len(out.Deliveries) == 2
	})
	mu.Lock()
	byType := map[string][]got{}
	for _, r := range reqs {
		assert.True(t, r.sigOK, "every delivery verifies with the secret")
		byType[r.typ] = append(byType[r.typ], r)
	}
	mu.Unlock()
	require.Len(t, byType, 2, "only order.* events: %v", byType)
	require.Len(t, byType[oms.EventOrderCreated], 2, "order.created retried once after the 500")
	assert.Equal(t, byType[oms.EventOrderCreated][0].delivery, byType[oms.EventOrderCreated][1].delivery, "same idempotency key")
	require.Len(t, byType[oms.EventOrderAllocated], 1)
	var p oms.WebhookPayload
	require.NoError(t, json.Unmarshal(byType[oms.EventOrderAllocated][0].body, &p))
	assert.Equal(t, "shop", p.Account)
	assert.Equal(t, "order:"+o.ID, p.Entity)

	var out struct{ Deliveries []oms.WebhookDelivery }
	c.JSON("GET", "/v1/webhooks/orders/deliveries", nil, http.StatusOK, &out)
	require.Len(t, out.Deliveries, 2)
	created := out.Deliveries[1] // newest first
	assert.Equal(t, oms.EventOrderCreated, created.EventType)
	require.Len(t, created.Attempts, 2)
	assert.Equal(t, []int{500, 204}, []int{created.Attempts[0].StatusCode, created.Attempts[1].StatusCode})

	_, body := c.Do("GET", "/v1/webhooks", nil)
	assert.NotContains(t, string(body), secret)
	assert.NotContains(t, api.Logs(), secret, "the secret is never logged")
	assert.NotContains(t, wrk.Logs(), secret, "the secret is never logged")
	assert.Contains(t, wrk.Logs(), "attempt failed, will retry")
}

// TestServeRefusesPrivateWebhookURLsAtRegistration: serve, as deployed (no --webhook-allow-private-networks),
// refuses a webhook URL that reaches this machine when it is registered, by the rule the worker applies at delivery;
// with the flag, as in dev, it is accepted.
func TestServeRefusesPrivateWebhookURLsAtRegistration(t *testing.T) {
	dbURL := omstest.ControlDB(t)
	t.Cleanup(func() { omstest.DropAccounts(t, dbURL) })
	env := map[string]string{"OMS_DATABASE_URL": dbURL, "OMS_ADMIN_TOKEN": adminToken, "OMS_LISTEN": "127.0.0.1:0",
		"OMS_DRAIN_DELAY": "0s"}
	MustRun(t, env, "migrate")
	for _, allow := range []string{"", "true"} {
		t.Run("allow private networks="+allow, func(t *testing.T) {
			api := Start(t, "serve", with(env, "OMS_WEBHOOK_ALLOW_PRIVATE_NETWORKS", allow), "serve")
			var acct struct{ ID, APIKey string }
			(&Client{T: t, Base: api.URL(), Key: adminToken}).JSON("POST", "/v1/accounts",
				map[string]string{"id": "wh-private" + allow, "name": "Shop"}, http.StatusCreated, &acct)
			c := &Client{T: t, Base: api.URL(), Key: acct.APIKey}
			status, body := c.Do("PUT", "/v1/webhooks/orders", map[string]any{"url": "http://127.0.0.1:9/oms", "events": []string{"order.*"},
				"secret": "a-secret-of-enough-length"})
			if allow == "" {
				assert.Equal(t, http.StatusBadRequest, status, string(body))
				assert.Contains(t, string(body), `"field":"url"`)
			} else {
				assert.Equal(t, http.StatusCreated, status, string(body))
			}
		})
	}
}
