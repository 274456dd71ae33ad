package http_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/mock"
)

func TestPostEventAnswers202AndMarksReplays(t *testing.T) {
	replay := false
	store := &mock.Store{PostEventFn: func(_ context.Context, r *oms.EventRequest) (*oms.Event, bool, error) {
		return &oms.Event{ID: "e1", Entity: r.Entity, Type: r.Type}, replay, nil
	}}
	h := workflowServer(store)
	body := `{"type":"fulfilment.picked","entity":"fulfilment:8b0f5a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"}`
	w := send(h, "POST", "/v1/events", "application/json", body)
	assert.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	assert.Empty(t, w.Header().Get("Idempotent-Replayed"))
	replay = true
	w = send(h, "POST", "/v1/events", "application/json", body)
	assert.Equal(t, "true", w.Header().Get("Idempotent-Replayed"))
	w = send(h, "POST", "/v1/events", "application/json", `{"type":"fulfilment.picked","entity":"x","extra":1}`)
	assert.Equal(t, http.StatusBadRequest, w.Code, "unknown fields are rejected")
}
