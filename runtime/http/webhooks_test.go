package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	omshttp "github.com/omscloud/omscloud/runtime/http"
	"github.com/omscloud/omscloud/runtime/mock"
)

const whSecret = "s3cr3t-value-that-must-never-leak"

// webhookStore keeps webhooks in memory and validates like the real store
// (the postgres tests cover the store itself); it keeps the secret, so a
// response or log containing it would show here.
func webhookStore() *mock.Store {
	hooks := map[string]*oms.Webhook{}
	return &mock.Store{
		PutWebhookFn: func(_ context.Context, name string, in *oms.WebhookInput) (*oms.Webhook, bool, error) {
			if err := oms.ValidateWebhookName(name); err != nil {
				return nil, false, err
			}
			if err := in.Validate(); err != nil {
				return nil, false, err
			}
			_, existed := hooks[name]
			w := &oms.Webhook{Name: name, URL: in.URL, Events: in.Events, Secret: in.Secret, Enabled: in.Enabled == nil || *in.Enabled,
				CreatedAt: time.Now(), UpdatedAt: time.Now()}
			hooks[name] = w
			return w, !existed, nil
		},
		WebhookFn: func(_ context.Context, name string) (*oms.Webhook, error) {
			if w, ok := hooks[name]; ok {
				return w, nil
			}
			return nil, oms.Errorf(oms.ENOTFOUND, "name", "webhook %q not found", name)
		},
		WebhooksFn: func(context.Context) ([]*oms.Webhook, error) {
			var ws []*oms.Webhook
			for _, w := range hooks {
				ws = append(ws, w)
			}
			return ws, nil
		},
		DeleteWebhookFn: func(_ context.Context, name string) error {
			if _, ok := hooks[name]; !ok {
				return oms.Errorf(oms.ENOTFOUND, "name", "webhook %q not found", name)
			}
			delete(hooks, name)
			return nil
		},
		WebhookDeliveriesFn: func(_ context.Context, name string, f oms.DeliveryFilter) ([]*oms.WebhookDelivery, error) {
			if err := f.Validate(); err != nil {
				return nil, err
			}
			return nil, nil
		},
		RedeliverFn: func(_ context.Context, name, id string) (*oms.WebhookDelivery, error) {
			if err := oms.ValidateDeliveryID(id); err != nil {
				return nil, err
			}
			return nil, oms.Errorf(oms.ECONFLICT, "id", "delivery %s is still pending", id)
		},
	}
}

func TestWebhookAPIRejectsEachBadFieldByNameAndNeverShowsTheSecret(t *testing.T) {
	var logs bytes.Buffer
	store := webhookStore()
	accounts := &mock.AccountService{
		AuthenticateFn: func(context.Context, string) (*oms.Account, error) { return &oms.Account{ID: "acme"}, nil },
		StoreFn:        func(context.Context, string) (oms.Store, error) { return store, nil },
	}
	srv := omshttp.New(omshttp.Options{Accounts: accounts, Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})

	body := func(fields map[string]any) string {
		b := map[string]any{"url": "https://hooks.example.com/oms", "events": []string{"order.*"}, "secret": whSecret}
		for k, v := range fields {
			if v == nil {
				delete(b, k)
			} else {
				b[k] = v
			}
		}
		j, _ := json.Marshal(b)
		return string(j)
	}
	bad := []struct {
		name, path, body, field string
	}{
		{"bad name", "/v1/webhooks/Bad_Name", body(nil), "name"},
		{"no url", "/v1/webhooks/erp", body(map[string]any{"url": nil}), "url"},
		{"http url", "/v1/webhooks/erp", body(map[string]any{"url": "http://hooks.example.com"}), "url"},
		{"url not a string", "/v1/webhooks/erp", body(map[string]any{"url": 42}), "url"},
		{"no events", "/v1/webhooks/erp", body(map[string]any{"events": []string{}}), "events"},
		{"bad event", "/v1/webhooks/erp", body(map[string]any{"events": []string{"order.created", "ORDER"}}), "events[1]"},
		{"short secret", "/v1/webhooks/erp", body(map[string]any{"secret": "short"}), "secret"},
		{"no secret", "/v1/webhooks/erp", body(map[string]any{"secret": nil}), "secret"},
		{"enabled not a bool", "/v1/webhooks/erp", body(map[string]any{"enabled": "yes"}), "enabled"},
		{"unknown field", "/v1/webhooks/erp", body(map[string]any{"headers": map[string]string{}}), "headers"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			w := do(srv, "PUT", tc.path, key, tc.body)
			require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
			var e struct {
				Error struct{ Code, Field, Message string }
			}
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e))
			assert.Equal(t, tc.field, e.Error.Field, e.Error.Message)
			assert.NotEmpty(t, e.Error.Message)
			assert.NotContains(t, w.Body.String(), whSecret)
		})
	}

	w := do(srv, "PUT", "/v1/webhooks/erp", key, body(nil))
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	w = do(srv, "PUT", "/v1/webhooks/erp", key, body(map[string]any{"enabled": false}))
	require.Equal(t, http.StatusOK, w.Code, "replaced")
	var got oms.Webhook
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
	assert.False(t, got.Enabled)
	responses := []string{w.Body.String()}
	for _, path := range []string{"/v1/webhooks", "/v1/webhooks/erp"} {
		w := do(srv, "GET", path, key, "")
		require.Equal(t, http.StatusOK, w.Code)
		assert.Contains(t, w.Body.String(), `"url":"https://hooks.example.com/oms"`)
		responses = append(responses, w.Body.String())
	}
	for _, r := range responses {
		assert.NotContains(t, r, whSecret)
		assert.NotContains(t, r, `"secret"`)
	}

	assert.Equal(t, http.StatusBadRequest, do(srv, "GET", "/v1/webhooks/erp/deliveries?status=failed", key, "").Code)
	assert.Equal(t, http.StatusBadRequest, do(srv, "GET", "/v1/webhooks/erp/deliveries?limit=0", key, "").Code)
	w = do(srv, "GET", "/v1/webhooks/erp/deliveries?status=dead", key, "")
	assert.Equal(t, http.StatusOK, w.Code)
	assert.JSONEq(t, `{"deliveries":[]}`, w.Body.String())
	assert.Equal(t, http.StatusBadRequest, do(srv, "POST", "/v1/webhooks/erp/deliveries/42/redeliver", key, "").Code)
	assert.Equal(t, http.StatusConflict, do(srv, "POST", "/v1/webhooks/erp/deliveries/0b0e3a4c-5f1e-4a57-9c3e-6a1d2f3b4c5d/redeliver", key, "").Code)
	assert.Equal(t, http.StatusNoContent, do(srv, "DELETE", "/v1/webhooks/erp", key, "").Code)
	assert.Equal(t, http.StatusNotFound, do(srv, "GET", "/v1/webhooks/erp", key, "").Code)
	assert.Equal(t, http.StatusNotFound, do(srv, "DELETE", "/v1/webhooks/erp", key, "").Code)
	assert.NotContains(t, logs.String(), whSecret, "the secret is never logged")
}
