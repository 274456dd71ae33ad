package http_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	omshttp "github.com/omscloud/omscloud/runtime/http"
	"github.com/omscloud/omscloud/runtime/metrics"
	"github.com/omscloud/omscloud/runtime/mock"
)

// boundsServer serves store like workflowServer, with short body limits and every error a dependency outage
// unless classified otherwise (as postgres.IsUnavailable treats io.ErrUnexpectedEOF).
func boundsServer(t *testing.T, store *mock.Store) (*httptest.Server, *metrics.Metrics) {
	m := metrics.New()
	accounts := &mock.AccountService{
		AuthenticateFn: func(context.Context, string) (*oms.Account, error) { return &oms.Account{ID: "acme"}, nil },
		StoreFn:        func(context.Context, string) (oms.Store, error) { return store, nil },
	}
	srv := httptest.NewServer(omshttp.New(omshttp.Options{Accounts: accounts, Metrics: m,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		BodyIdleTimeout: 300 * time.Millisecond, MinBodyRate: 1000, BodyRateGrace: 500 * time.Millisecond,
		Unavailable: func(err error) bool {
			return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.Canceled) || errors.Is(err, errConnRefused)
		}}))
	t.Cleanup(srv.Close)
	return srv, m
}

func loadInventoryStore() *mock.Store {
	return &mock.Store{LoadInventoryFn: func(_ context.Context, r oms.LineReader) (*oms.BatchResult, error) {
		res := &oms.BatchResult{}
		for {
			_, _, err := r.Next()
			if errors.Is(err, io.EOF) {
				return res, nil
			}
			var le *oms.LineError
			if errors.As(err, &le) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("load inventory: copy: %w", err)
			}
			res.Accepted++
		}
	}}
}

// rawRequest writes head and then the body parts with pauses, and returns the status line of the answer.
func rawRequest(t *testing.T, addr, head string, pause time.Duration, parts ...string) string {
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, head)
	require.NoError(t, err)
	for _, p := range parts {
		time.Sleep(pause)
		if _, err := io.WriteString(conn, p); err != nil {
			break // the server gave up on us
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(io.LimitReader(conn, 1<<10))
	line, _, _ := strings.Cut(string(b), "\r\n")
	return line
}

func scrapeText(m *metrics.Metrics) string {
	w := httptest.NewRecorder()
	omshttp.New(omshttp.Options{Metrics: m}).Ops().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	return w.Body.String()
}

// TestSlowBodiesEndWith408: a client that stops sending, or trickles under the minimum rate, gets 408 and costs
// nothing more: before, a body had no deadline at all.
func TestSlowBodiesEndWith408(t *testing.T) {
	srv, _ := boundsServer(t, loadInventoryStore())
	addr := strings.TrimPrefix(srv.URL, "http://")
	head := "POST /v1/inventory/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Type: text/csv\r\nContent-Length: 1000\r\n\r\n"

	start := time.Now()
	assert.Equal(t, "HTTP/1.1 408 Request Timeout", rawRequest(t, addr, head, 0, "sku,location,on_hand\n"), "stops sending")
	assert.Less(t, time.Since(start), 3*time.Second)

	start = time.Now()
	trickle := make([]string, 40)
	for i := range trickle {
		trickle[i] = "A,l1,1\n"
	}
	trickle[0] = "sku,location,on_hand\n"
	assert.Equal(t, "HTTP/1.1 408 Request Timeout", rawRequest(t, addr, head, 100*time.Millisecond, trickle...), "trickles under 1000 B/s")
	assert.Less(t, time.Since(start), 3*time.Second)

	// A JSON body too.
	assert.Equal(t, "HTTP/1.1 408 Request Timeout", rawRequest(t, addr,
		"POST /v1/availability HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Length: 100\r\n\r\n", 0, `{"items":`))
}

// TestClientAbortIsNotADependencyOutage: a client cutting its upload short is counted as 499 (client closed
// request) and logged as such; before, the read error looked like a lost database connection: a 503 that pages.
func TestClientAbortIsNotADependencyOutage(t *testing.T) {
	srv, m := boundsServer(t, loadInventoryStore())
	addr := strings.TrimPrefix(srv.URL, "http://")
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	_, err = io.WriteString(conn, "POST /v1/inventory/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"+
		"Content-Type: text/csv\r\nContent-Length: 100000\r\n\r\nsku,location,on_hand\nA,l1,1\n")
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, conn.Close())
	require.Eventually(t, func() bool {
		return strings.Contains(scrapeText(m), `oms_http_requests_total{code="499",method="POST",route="/v1/inventory/batches"} 1`)
	}, 5*time.Second, 50*time.Millisecond)
	assert.NotContains(t, scrapeText(m), `code="503"`)
}

// TestNumericQueryParametersAreRangeChecked: every numeric parameter is checked against a range the database can
// hold; before, ?version=3000000000 reached an int column and answered 500.
func TestNumericQueryParametersAreRangeChecked(t *testing.T) {
	called := false
	store := &mock.Store{
		WorkflowFn: func(context.Context, string, int) (*oms.Workflow, error) { called = true; return &oms.Workflow{}, nil },
		OrdersFn: func(context.Context, oms.OrderFilter) (*oms.OrderPage, error) {
			called = true
			return &oms.OrderPage{}, nil
		},
		EventsFn: func(context.Context, oms.EventFilter) ([]*oms.Event, error) { called = true; return nil, nil },
		FulfilmentsFn: func(context.Context, oms.FulfilmentFilter) (*oms.FulfilmentPage, error) {
			called = true
			return &oms.FulfilmentPage{}, nil
		},
		WebhookDeliveriesFn: func(context.Context, string, oms.DeliveryFilter) ([]*oms.WebhookDelivery, error) {
			called = true
			return nil, nil
		},
	}
	h := workflowServer(store)
	for _, tc := range []struct{ path, field string }{
		{"/v1/workflows/x?version=3000000000", "version"},
		{"/v1/workflows/x?version=0", "version"},
		{"/v1/orders?limit=0", "limit"},
		{"/v1/orders?limit=99999999999999999999", "limit"},
		{"/v1/orders?limit=-5", "limit"},
		{"/v1/events?after=-1", "after"},
		{"/v1/events?after=1e3", "after"},
		{"/v1/fulfilments?limit=2147483648", "limit"},
		{"/v1/webhooks/w/deliveries?limit=9223372036854775807", "limit"},
	} {
		w := send(h, "GET", tc.path, "", "")
		assert.Equal(t, http.StatusBadRequest, w.Code, tc.path)
		assert.Contains(t, w.Body.String(), `"field":"`+tc.field+`"`, tc.path)
	}
	assert.False(t, called, "no out-of-range number reaches the store")
}

// TestControlCharactersAnswer400NamingTheField: NUL reached PostgreSQL (which cannot store it) and answered 500.
func TestControlCharactersAnswer400NamingTheField(t *testing.T) {
	called := false
	store := &mock.Store{
		PutLocationFn: func(_ context.Context, l *oms.Location) (bool, error) { called = true; return true, l.Validate() },
		PostEventFn: func(context.Context, *oms.EventRequest) (*oms.Event, bool, error) {
			called = true
			return &oms.Event{}, false, nil
		},
		CreateOrderFn: func(_ context.Context, _ string, r *oms.OrderRequest) (*oms.Order, bool, error) {
			called = true
			return &oms.Order{}, false, r.Validate()
		},
	}
	h := workflowServer(store)
	for _, tc := range []struct{ method, path, body, field string }{
		{"PUT", "/v1/locations/s1", `{"name":"Store\u0000","type":"store","lat":1,"lon":1}`, "name"},
		{"PUT", "/v1/locations/s1", `{"name":"Store\n1","type":"store","lat":1,"lon":1}`, "name"},
		{"POST", "/v1/events", `{"type":"fulfilment.picked","entity":"fulfilment:x","data":{"note":"\u0000"}}`, "data.note"},
		{"POST", "/v1/orders", `{"ref":"o1","items":[{"sku":"A","qty":1}],"delivery":{"type":"HD","address":{"line1":"x\u0007","lat":1,"lon":1}}}`, "delivery.address.line1"},
		{"POST", "/v1/orders", `{"ref":"o1","items":[{"sku":"A","qty":1}],"delivery":{"type":"HD","address":{"city":"` + strings.Repeat("x", 201) + `","lat":1,"lon":1}}}`, "delivery.address.city"},
	} {
		called = false
		w := send(h, tc.method, tc.path, "", tc.body)
		assert.Equal(t, http.StatusBadRequest, w.Code, tc.body)
		assert.Contains(t, w.Body.String(), `"field":"`+tc.field+`"`, tc.body)
		if tc.method == "POST" && tc.path == "/v1/events" {
			assert.False(t, called, "refused before the store")
		}
	}
}

// TestPrivateWebhookURLsAreRefusedAtRegistration: with private networks denied, a URL whose host is or resolves to
// a non-public address is refused when it is registered (before, only each delivery failed), by the rule the
// dispatcher applies at delivery (webhook.CheckURL).
func TestPrivateWebhookURLsAreRefusedAtRegistration(t *testing.T) {
	accounts := &mock.AccountService{
		AuthenticateFn: func(context.Context, string) (*oms.Account, error) { return &oms.Account{ID: "acme"}, nil },
		StoreFn:        func(context.Context, string) (oms.Store, error) { return webhookStore(), nil },
	}
	body := func(url string) string { return `{"url":"` + url + `","events":["*"],"secret":"` + whSecret + `"}` }
	deny := omshttp.New(omshttp.Options{Accounts: accounts, DenyPrivateWebhooks: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for _, url := range []string{"https://127.0.0.1/h", "http://localhost:8080/h", "https://10.1.2.3/h", "https://[::1]/h",
		"https://169.254.169.254/latest/meta-data", "https://100.64.0.1/h", "https://192.168.0.10/h", "https://0.0.0.0/h",
		"https://[fd00::1]/h"} {
		w := send(deny, "PUT", "/v1/webhooks/w", "", body(url))
		assert.Equal(t, http.StatusBadRequest, w.Code, url+": "+w.Body.String())
		assert.Contains(t, w.Body.String(), `"field":"url"`, url)
		assert.Contains(t, w.Body.String(), "public addresses only", url)
	}
	w := send(deny, "PUT", "/v1/webhooks/w", "", body("https://no-such-host.invalid/h"))
	assert.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	assert.Contains(t, w.Body.String(), "does not resolve")
	w = send(deny, "PUT", "/v1/webhooks/w", "", body("https://93.184.215.14/h"))
	assert.Equal(t, http.StatusCreated, w.Code, "a public address: %s", w.Body.String())

	allow := workflowServer(webhookStore()) // dev and tests: receivers on this machine
	w = send(allow, "PUT", "/v1/webhooks/w", "", body("http://127.0.0.1:9/h"))
	assert.Equal(t, http.StatusCreated, w.Code, w.Body.String())
}
