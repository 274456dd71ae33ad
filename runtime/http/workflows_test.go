package http_test

import (
	"context"
	"encoding/json"
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

var errConnRefused = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

func workflowServer(store *mock.Store) *omshttp.Server {
	accounts := &mock.AccountService{
		AuthenticateFn: func(context.Context, string) (*oms.Account, error) { return &oms.Account{ID: "acme"}, nil },
		StoreFn:        func(context.Context, string) (oms.Store, error) { return store, nil },
	}
	return omshttp.New(omshttp.Options{Accounts: accounts, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Unavailable: func(err error) bool { return errors.Is(err, errConnRefused) }})
}

func send(h http.Handler, method, path, ctype, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

const yamlWorkflow = `
appliesTo: {deliveryType: HD}
rules:
  - name: allocate
    on: order.created
    actions: [{allocate: {strategy: nearest}}]
`

func TestPutWorkflowTakesYAMLAndTheNameFromThePath(t *testing.T) {
	var got *oms.Workflow
	store := &mock.Store{PutWorkflowFn: func(_ context.Context, w *oms.Workflow) (*oms.Workflow, bool, error) {
		got = w
		stored := *w
		stored.Version = 4
		return &stored, true, nil
	}}
	h := workflowServer(store)
	w := send(h, "PUT", "/v1/workflows/express", "application/yaml", yamlWorkflow)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	assert.Equal(t, "express", got.Name)
	assert.Equal(t, oms.StrategyNearest, got.Rules[0].Actions[0].Allocate.Strategy)
	var body oms.Workflow
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
	assert.Equal(t, 4, body.Version)

	for _, tc := range []struct {
		name, path, ctype, body string
		status                  int
		field                   string
	}{
		{"name differs", "/v1/workflows/express", "application/yaml", "name: other\n" + yamlWorkflow, 400, "name"},
		{"bad name in path", "/v1/workflows/Express", "application/yaml", yamlWorkflow, 400, "name"},
		{"unknown key", "/v1/workflows/express", "application/yaml", yamlWorkflow + "priority: 1\n", 400, "priority"},
		{"xml", "/v1/workflows/express", "application/xml", "<x/>", 415, "Content-Type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := send(h, "PUT", tc.path, tc.ctype, tc.body)
			assert.Equal(t, tc.status, w.Code, w.Body.String())
			assert.Contains(t, w.Body.String(), `"field":"`+tc.field+`"`)
		})
	}
}

func TestDependencyOutageAnswers503WithRetryAfter(t *testing.T) {
	store := &mock.Store{OrderFn: func(context.Context, string) (*oms.Order, error) {
		return nil, errConnRefused
	}, FulfilmentFn: func(context.Context, string) (*oms.Fulfilment, error) {
		return nil, errors.New("a bug")
	}}
	h := workflowServer(store)
	w := send(h, "GET", "/v1/orders/x", "", "")
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, "1", w.Header().Get("Retry-After"))
	assert.NotContains(t, w.Body.String(), "5432", "internal details stay in the log")
	w = send(h, "GET", "/v1/fulfilments/x", "", "")
	assert.Equal(t, http.StatusInternalServerError, w.Code, "anything else is still a 500")
	assert.Empty(t, w.Header().Get("Retry-After"))
}
