package oms_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
)

func TestEventRequestValidate(t *testing.T) {
	id := "fulfilment:8b0f5a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
	require.NoError(t, (&oms.EventRequest{Type: "fulfilment.picked", Entity: id, Data: json.RawMessage(` {"a":1}`)}).Validate())
	for _, tc := range []struct {
		req   oms.EventRequest
		field string
	}{
		{oms.EventRequest{ID: "nope", Type: "fulfilment.picked", Entity: id}, "id"},
		{oms.EventRequest{Type: "Fulfilment.Picked", Entity: id}, "type"},
		{oms.EventRequest{Type: "fulfilment.created", Entity: id}, "type"},
		{oms.EventRequest{Type: "fulfilment.picked", Entity: "fulfilment:12"}, "entity"},
		{oms.EventRequest{Type: "order.picked", Entity: id}, "entity"},
		{oms.EventRequest{Type: "fulfilment.picked", Entity: id, Data: json.RawMessage(`"x"`)}, "data"},
	} {
		err := tc.req.Validate()
		require.Error(t, err, "%+v", tc.req)
		assert.Equal(t, tc.field, oms.ErrorField(err), err.Error())
	}
}
