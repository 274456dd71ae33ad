package http_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	omshttp "github.com/omscloud/omscloud/runtime/http"
	"github.com/omscloud/omscloud/runtime/mock"
)

const key = "oms_valid"

func newServer(t *testing.T, store *mock.Store, checks map[string]func(context.Context) error) *omshttp.Server {
	accounts := &mock.AccountService{
		AuthenticateFn: func(_ context.Context, k string) (*oms.Account, error) {
			if k != key {
				return nil, oms.Errorf(oms.EUNAUTHORIZED, "Authorization", "unknown API key")
			}
			return &oms.Account{ID: "acme"}, nil
		},
		StoreFn: func(context.Context, string) (oms.Store, error) { return store, nil },
		CreateAccountFn: func(_ context.Context, a *oms.Account) (string, error) {
			if err := a.Validate(); err != nil {
				return "", err
			}
			return "oms_new", nil
		},
		IssueKeyFn: func(_ context.Context, id string) (string, error) {
			if id != "acme" {
				return "", oms.Errorf(oms.ENOTFOUND, "id", "account %q not found", id)
			}
			return "oms_issued", nil
		},
	}
	return omshttp.New(omshttp.Options{Accounts: accounts, AdminToken: "admin", Checks: checks, MaxBodyBytes: 256,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func do(h http.Handler, method, path, token, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestErrorCodesMapToStatusesAndInternalsStayHidden(t *testing.T) {
	tests := []struct {
		err    error
		status int
		body   string
	}{
		{oms.Invalid("items[0].qty", "must be greater than 0"), 400, `"field":"items[0].qty"`},
		{oms.Errorf(oms.ENOTFOUND, "id", "order x not found"), 404, `"code":"not_found"`},
		{oms.Errorf(oms.ECONFLICT, "status", "already cancelled"), 409, `already cancelled`},
		{oms.Errorf(oms.EUNAVAILABLE, "", "draining"), 503, `"code":"unavailable"`},
		{errors.New("pq: password=secret connection refused"), 500, `"message":"internal error"`},
	}
	for _, tc := range tests {
		t.Run(tc.err.Error(), func(t *testing.T) {
			srv := newServer(t, &mock.Store{OrderFn: func(context.Context, string) (*oms.Order, error) { return nil, tc.err }}, nil)
			w := do(srv, "GET", "/v1/orders/x", key, "")
			assert.Equal(t, tc.status, w.Code)
			assert.Contains(t, w.Body.String(), tc.body)
			assert.NotContains(t, w.Body.String(), "secret")
		})
	}
}

func TestAuthentication(t *testing.T) {
	srv := newServer(t, &mock.Store{OrdersFn: func(context.Context, oms.OrderFilter) (*oms.OrderPage, error) {
		return &oms.OrderPage{Orders: []*oms.Order{}}, nil
	}}, nil)
	tests := []struct {
		name, method, path, token, body string
		status                          int
	}{
		{"api key on data", "GET", "/v1/orders", key, "", 200},
		{"no key", "GET", "/v1/orders", "", "", 401},
		{"unknown key", "GET", "/v1/orders", "oms_other", "", 401},
		{"admin token on data", "GET", "/v1/orders", "admin", "", 401},
		{"admin token on accounts", "POST", "/v1/accounts", "admin", `{"id":"acme","name":"Acme"}`, 201},
		{"api key on accounts", "POST", "/v1/accounts", key, `{"id":"acme","name":"Acme"}`, 403},
		{"no token on accounts", "POST", "/v1/accounts", "", `{"id":"acme","name":"Acme"}`, 401},
		{"invalid account id", "POST", "/v1/accounts", "admin", `{"id":"A","name":"Acme"}`, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := do(srv, tc.method, tc.path, tc.token, tc.body)
			assert.Equal(t, tc.status, w.Code, w.Body.String())
		})
	}
}

func TestStrictBodies(t *testing.T) {
	called := false
	srv := newServer(t, &mock.Store{AvailabilityJSONFn: func(context.Context, *oms.AvailabilityRequest) ([]byte, error) {
		called = true
		return []byte(`{"options":[]}`), nil
	}}, nil)
	tests := []struct {
		body, field string
		status      int
	}{
		{`{"items":[{"sku":"A","qty":1}],"near":{"lat":1,"lon":1},"x":1}`, "x", 400},
		{`{"items":[{"sku":"A","qty":1}],"near":{"lat":"1","lon":1}}`, "near.lat", 400},
		{`{"items":[{"sku":"A","qty":1}],"near":{"lat":1,"lon":1}} []`, "body", 400},
		{`{"items":[{"sku":"A","qty":1}],"near":{"lat":1,"lon":1},"pad":"` + strings.Repeat("x", 300) + `"}`, "body", 413},
	}
	for _, tc := range tests {
		w := do(srv, "POST", "/v1/availability", key, tc.body)
		assert.Equal(t, tc.status, w.Code, w.Body.String())
		assert.Contains(t, w.Body.String(), `"field":"`+tc.field+`"`)
	}
	assert.False(t, called, "no invalid body reaches the store")
}

func TestReadinessFollowsDependenciesAndDraining(t *testing.T) {
	healthy := true
	srv := newServer(t, &mock.Store{}, map[string]func(context.Context) error{"postgres": func(context.Context) error {
		if healthy {
			return nil
		}
		return errors.New("down")
	}})
	require.Equal(t, 200, do(srv, "GET", "/readyz", "", "").Code)
	healthy = false
	w := do(srv, "GET", "/readyz", "", "")
	assert.Equal(t, 503, w.Code)
	assert.Contains(t, w.Body.String(), "postgres")
	healthy = true
	srv.Drain()
	assert.Equal(t, 503, do(srv, "GET", "/readyz", "", "").Code)
	assert.Equal(t, 200, do(srv, "GET", "/healthz", "", "").Code, "draining is not dead")
	m := do(srv.Ops(), "GET", "/metrics", "", "")
	assert.Contains(t, m.Body.String(), `oms_http_request_duration_seconds_count{code="503",method="GET",route="/readyz"} 2`)
}

// TestTheAPIServesNoMetrics: /metrics tells who calls what and how often, so the API port (which the edge routes)
// answers 404 for it; the ops handler (serve's --metrics-listen, the worker's port) serves it and the health checks.
func TestTheAPIServesNoMetrics(t *testing.T) {
	srv := newServer(t, &mock.Store{}, nil)
	assert.Equal(t, http.StatusNotFound, do(srv, "GET", "/metrics", "", "").Code)
	assert.Equal(t, http.StatusNotFound, do(srv, "GET", "/metrics", key, "").Code, "not for an account either")
	ops := srv.Ops()
	assert.Equal(t, http.StatusOK, do(ops, "GET", "/metrics", "", "").Code)
	assert.Equal(t, http.StatusOK, do(ops, "GET", "/healthz", "", "").Code)
	assert.Equal(t, http.StatusNotFound, do(ops, "GET", "/v1/orders", key, "").Code, "the ops handler serves no API")
}

// TestProfilesOnlyWhenAskedAndNeverOnTheAPI: Go's profiles show the process's internals, so they are served on the
// ops handler only with Options.Pprof (the bench's profiling), and never on the API port.
func TestProfilesOnlyWhenAskedAndNeverOnTheAPI(t *testing.T) {
	off := newServer(t, &mock.Store{}, nil)
	assert.Equal(t, http.StatusNotFound, do(off.Ops(), "GET", "/debug/pprof/", "", "").Code)
	on := omshttp.New(omshttp.Options{Accounts: &mock.AccountService{}, Pprof: true})
	assert.Equal(t, http.StatusNotFound, do(on, "GET", "/debug/pprof/", "", "").Code, "the API port")
	w := do(on.Ops(), "GET", "/debug/pprof/", "", "")
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, w.Body.String(), "goroutine")
	assert.Equal(t, http.StatusOK, do(on.Ops(), "GET", "/debug/pprof/goroutine?debug=1", "", "").Code)
	worker := omshttp.New(omshttp.Options{Pprof: true})
	assert.Equal(t, http.StatusOK, do(worker, "GET", "/debug/pprof/heap", "", "").Code, "the worker's port")
}

func TestIssueKeyIsAdminOnly(t *testing.T) {
	srv := newServer(t, &mock.Store{}, nil)
	w := do(srv, "POST", "/v1/accounts/acme/keys", "admin", "")
	assert.Equal(t, http.StatusCreated, w.Code)
	assert.JSONEq(t, `{"id":"acme","apiKey":"oms_issued"}`, w.Body.String())

	assert.Equal(t, http.StatusForbidden, do(srv, "POST", "/v1/accounts/acme/keys", key, "").Code, "an account key is not the admin token")
	assert.Equal(t, http.StatusUnauthorized, do(srv, "POST", "/v1/accounts/acme/keys", "", "").Code)
	assert.Equal(t, http.StatusNotFound, do(srv, "POST", "/v1/accounts/nobody/keys", "admin", "").Code)
	w = do(srv, "POST", "/v1/accounts/Bad%20Id/keys", "admin", "")
	assert.Equal(t, http.StatusBadRequest, w.Code)
	assert.Contains(t, w.Body.String(), `"field":"id"`)
}

// TestRequestsAreCountedPerRoutePattern: the SLO counters carry the route pattern, never an id from the path, so
// their label sets stay bounded whatever the accounts and orders.
func TestRequestsAreCountedPerRoutePattern(t *testing.T) {
	srv := newServer(t, &mock.Store{}, nil)
	for _, id := range []string{"o-1", "o-2", "o-3"} {
		do(srv, "GET", "/v1/orders/"+id, "wrong", "")
	}
	body := do(srv.Ops(), "GET", "/metrics", "", "").Body.String()
	assert.Contains(t, body, `oms_http_requests_total{code="401",method="GET",route="/v1/orders/{id}"} 3`)
	assert.NotContains(t, body, "o-1")
}
