package systemtest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
)

func TestAccountKeyCannotReachAnotherAccount(t *testing.T) {
	s := startStack(t)
	alpha := s.createAccount(t, "alpha")
	bravo := s.createAccount(t, "bravo")
	for _, c := range []*Client{alpha, bravo} {
		c.JSON("PUT", "/v1/locations/shared-ref", map[string]any{"name": "S", "type": "store", "lat": 1, "lon": 1}, http.StatusCreated, nil)
	}
	bravo.JSON("PUT", "/v1/locations/bravo-only", map[string]any{"name": "B", "type": "store", "lat": 1, "lon": 1}, http.StatusCreated, nil)
	bravo.JSON("POST", "/v1/inventory/batches", "sku,location,on_hand\nB-SKU,bravo-only,9\nB-SKU,shared-ref,4\n", http.StatusOK, nil,
		"Content-Type", "text/csv")
	var bo oms.Order
	bravo.JSON("POST", "/v1/orders", map[string]any{"ref": "b-1", "items": []map[string]any{{"sku": "B-SKU", "qty": 1}},
		"delivery": map[string]any{"type": "CC", "location": "bravo-only"}}, http.StatusCreated, &bo, "Idempotency-Key", "b-1")
	eventually(t, 30*time.Second, "bravo's order allocated", func() bool {
		var o oms.Order
		bravo.JSON("GET", "/v1/orders/"+bo.ID, nil, http.StatusOK, &o)
		return o.Status == oms.StatusAllocated
	})

	// Alpha sees none of it and can change none of it.
	tests := []struct {
		method, path string
		body         any
		status       int
	}{
		{"GET", "/v1/orders/" + bo.ID, nil, http.StatusNotFound},
		{"POST", "/v1/orders/" + bo.ID + "/cancel", nil, http.StatusNotFound},
		{"GET", "/v1/events?entity=order:" + bo.ID, nil, http.StatusNotFound},
		{"GET", "/v1/inventory/bravo-only/B-SKU", nil, http.StatusNotFound},
		{"GET", "/v1/inventory/shared-ref/B-SKU", nil, http.StatusNotFound},
		{"POST", "/v1/availability", map[string]any{"items": []map[string]any{{"sku": "B-SKU", "qty": 1}},
			"near": map[string]float64{"lat": 1, "lon": 1}}, http.StatusBadRequest}, // unknown SKU in alpha
		{"POST", "/v1/orders", map[string]any{"ref": "a-1", "items": []map[string]any{{"sku": "B-SKU", "qty": 1}},
			"delivery": map[string]any{"type": "CC", "location": "bravo-only"}}, http.StatusBadRequest},
		{"POST", "/v1/accounts", map[string]string{"id": "charlie", "name": "C"}, http.StatusForbidden}, // API keys are not admin
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			code, out := alpha.Do(tc.method, tc.path, tc.body, "Idempotency-Key", "a-1")
			assert.Equal(t, tc.status, code, string(out))
			assert.NotContains(t, string(out), "bravo-only\",\"name") // no data of bravo's in any answer
		})
	}
	// Alpha's stock batch for the same refs changes only alpha's database.
	var res oms.BatchResult
	alpha.JSON("POST", "/v1/inventory/batches", "sku,location,on_hand\nB-SKU,shared-ref,0\nB-SKU,bravo-only,0\n", http.StatusOK, &res,
		"Content-Type", "text/csv")
	assert.EqualValues(t, 1, res.Accepted)
	require.Len(t, res.Rejected, 1)
	assert.Contains(t, res.Rejected[0].Message, "unknown location")
	var lv oms.StockLevel
	bravo.JSON("GET", "/v1/inventory/shared-ref/B-SKU", nil, http.StatusOK, &lv)
	assert.EqualValues(t, 4, lv.OnHand)
	var page oms.OrderPage
	alpha.JSON("GET", "/v1/orders", nil, http.StatusOK, &page)
	assert.Empty(t, page.Orders)
	var evs struct{ Events []oms.Event }
	alpha.JSON("GET", "/v1/events?limit=1000", nil, http.StatusOK, &evs)
	for _, e := range evs.Events {
		assert.Equal(t, "alpha", e.Account)
		assert.NotEqual(t, "order:"+bo.ID, e.Entity)
	}
	var o oms.Order
	bravo.JSON("GET", "/v1/orders/"+bo.ID, nil, http.StatusOK, &o)
	assert.Equal(t, oms.StatusAllocated, o.Status, "alpha's cancel attempt changed nothing")

	// No key, a wrong key, or the admin token on data endpoints: 401.
	for _, key := range []string{"", "oms_not-a-key", adminToken} {
		code, out := s.client(t, key).Do("GET", "/v1/orders", nil)
		assert.Equal(t, http.StatusUnauthorized, code, string(out))
	}
}

func TestBadInputIsRejectedNamingTheFieldAndChangesNothing(t *testing.T) {
	s := startStack(t)
	c := s.createAccount(t, "acme")
	c.JSON("PUT", "/v1/locations/st-1", map[string]any{"name": "S", "type": "store", "lat": 52, "lon": 4}, http.StatusCreated, nil)
	c.JSON("POST", "/v1/inventory/batches", "sku,location,on_hand\nA,st-1,5\n", http.StatusOK, nil, "Content-Type", "text/csv")
	order := func(mut string) string {
		return `{"ref":"o-1","items":[{"sku":"A","qty":1}],"delivery":{"type":"CC","location":"st-1"}` + mut + `}`
	}
	tests := []struct {
		name, method, path, body string
		header                   []string
		status                   int
		field                    string
	}{
		{"malformed json", "POST", "/v1/orders", `{"ref":"o-1",`, nil, 400, "body"},
		{"unknown field", "POST", "/v1/orders", order(`,"priority":1`), nil, 400, "priority"},
		{"wrong type", "POST", "/v1/orders", `{"ref":"o-1","items":[{"sku":"A","qty":"one"}]}`, nil, 400, "items[0].qty"},
		{"zero qty", "POST", "/v1/orders", `{"ref":"o-1","items":[{"sku":"A","qty":0}],"delivery":{"type":"CC","location":"st-1"}}`, nil, 400, "items[0].qty"},
		{"negative qty", "POST", "/v1/orders", `{"ref":"o-1","items":[{"sku":"A","qty":-1}],"delivery":{"type":"CC","location":"st-1"}}`, nil, 400, "items[0].qty"},
		{"unknown sku", "POST", "/v1/orders", `{"ref":"o-1","items":[{"sku":"A","qty":1},{"sku":"ZZ","qty":1}],"delivery":{"type":"CC","location":"st-1"}}`, nil, 400, "items[1].sku"},
		{"unknown location", "POST", "/v1/orders", `{"ref":"o-1","items":[{"sku":"A","qty":1}],"delivery":{"type":"CC","location":"nowhere"}}`, nil, 400, "delivery.location"},
		{"bad delivery type", "POST", "/v1/orders", `{"ref":"o-1","items":[{"sku":"A","qty":1}],"delivery":{"type":"DRONE"}}`, nil, 400, "delivery.type"},
		{"trailing data", "POST", "/v1/orders", order("") + `{}`, nil, 400, "body"},
		{"no idempotency key", "POST", "/v1/orders", order(""), []string{"Idempotency-Key", ""}, 400, "Idempotency-Key"},
		{"location bad type", "PUT", "/v1/locations/st-2", `{"name":"S","type":"shop","lat":1,"lon":1}`, nil, 400, "type"},
		{"location missing lat", "PUT", "/v1/locations/st-2", `{"name":"S","type":"store","lon":1}`, nil, 400, "lat"},
		{"location lat out of range", "PUT", "/v1/locations/st-2", `{"name":"S","type":"store","lat":91,"lon":1}`, nil, 400, "lat"},
		{"location bad ref", "PUT", "/v1/locations/bad%20ref", `{"name":"S","type":"store","lat":1,"lon":1}`, nil, 400, "ref"},
		{"availability no near", "POST", "/v1/availability", `{"items":[{"sku":"A","qty":1}]}`, nil, 400, "near"},
		{"availability unknown sku", "POST", "/v1/availability", `{"items":[{"sku":"Q","qty":1}],"near":{"lat":1,"lon":1}}`, nil, 400, "items[0].sku"},
		{"batch bad header", "POST", "/v1/inventory/batches", "sku,loc,on_hand\nA,st-1,99\n", []string{"Content-Type", "text/csv"}, 400, "header"},
		{"batch bad media type", "POST", "/v1/inventory/batches", "A,st-1,99\n", []string{"Content-Type", "text/plain"}, 415, "Content-Type"},
		{"list bad status", "GET", "/v1/orders?status=shipped", "", nil, 400, "status"},
		{"list bad limit", "GET", "/v1/orders?limit=0", "", nil, 400, "limit"},
		{"list bad cursor", "GET", "/v1/orders?cursor=bm90LWEtbnVtYmVy", "", nil, 400, "cursor"},
		{"events bad entity", "GET", "/v1/events?entity=customer:1", "", nil, 400, "entity"},
		{"account bad id", "POST", "/v1/accounts", `{"id":"A_b","name":"x"}`, []string{"Authorization", "Bearer " + adminToken}, 400, "id"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := append([]string{"Idempotency-Key", fmt.Sprintf("k-%d", i)}, tc.header...)
			code, out := c.Do(tc.method, tc.path, tc.body, h...)
			assert.Equal(t, tc.status, code, string(out))
			assert.Contains(t, string(out), `"field":"`+tc.field+`"`, string(out))
		})
	}
	// Nothing was applied by any of them.
	var page oms.OrderPage
	c.JSON("GET", "/v1/orders", nil, http.StatusOK, &page)
	assert.Empty(t, page.Orders)
	var lv oms.StockLevel
	c.JSON("GET", "/v1/inventory/st-1/A", nil, http.StatusOK, &lv)
	assert.EqualValues(t, 5, lv.OnHand, "the rejected batch applied nothing")
	code, _ := c.Do("PUT", "/v1/locations/st-2", nil)
	assert.Equal(t, http.StatusBadRequest, code)
	code, _ = c.Do("GET", "/v1/inventory/st-2/A", nil)
	assert.Equal(t, http.StatusNotFound, code)
	assert.False(t, strings.Contains(s.api.Logs(), `"level":"ERROR"`), "no bad input reached an internal error:\n%s", s.api.Logs())
}
