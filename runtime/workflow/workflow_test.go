package workflow_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/workflow"
)

func TestDefaultsAreValidAndCoverBothDeliveryTypes(t *testing.T) {
	ws, err := workflow.Defaults()
	require.NoError(t, err)
	types := map[string]string{}
	for _, w := range ws {
		types[w.AppliesTo.DeliveryType] = w.Name
		assert.True(t, w.Handles(oms.EventOrderCreated), w.Name)
		assert.True(t, w.Handles(oms.EventOrderStockArrived), "%s must retry pending orders when stock arrives", w.Name)
		assert.True(t, w.Handles("fulfilment.rejected"), w.Name)
	}
	assert.Equal(t, map[string]string{"HD": "home-delivery", "CC": "click-and-collect"}, types)
}

func TestParseYAMLAndJSONAgree(t *testing.T) {
	y := `
name: express
appliesTo: {deliveryType: HD}
rules:
  - name: allocate
    on: order.created
    actions: [{allocate: {strategy: nearest}}]
`
	j := `{"name":"express","appliesTo":{"deliveryType":"HD"},"rules":[{"name":"allocate","on":"order.created","actions":[{"allocate":{"strategy":"nearest"}}]}]}`
	wy, err := workflow.Parse([]byte(y), "application/yaml")
	require.NoError(t, err)
	wj, err := workflow.Parse([]byte(j), "application/json; charset=utf-8")
	require.NoError(t, err)
	assert.Equal(t, wj, wy)
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		name, body, ctype, field, msg string
	}{
		{"unknown key in YAML", "name: x\nappliesTo: {deliveryType: HD}\nrulez: []\n", "application/yaml", "rulez", "unknown"},
		{"two documents", "name: a\n---\nname: b\n", "text/yaml", "body", "more than one"},
		{"bad YAML", "name: [", "application/yaml", "body", "malformed YAML"},
		{"version given", `{"name":"x","version":3,"appliesTo":{"deliveryType":"HD"},"rules":[]}`, "", "version", "assigned by the OMS"},
		{"createdAt given", `{"name":"x","createdAt":"2026-01-01T00:00:00Z","appliesTo":{"deliveryType":"HD"},"rules":[]}`, "", "createdAt", "set by the OMS"},
		{"xml", "<w/>", "application/xml", "Content-Type", "not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := workflow.Parse([]byte(tc.body), tc.ctype)
			require.Error(t, err)
			assert.Equal(t, tc.field, oms.ErrorField(err), err.Error())
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}
