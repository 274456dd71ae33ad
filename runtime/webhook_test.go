package oms_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	oms "github.com/omscloud/omscloud/runtime"
)

func TestWebhookInputValidationNamesTheField(t *testing.T) {
	valid := func() oms.WebhookInput {
		return oms.WebhookInput{URL: "https://hooks.example.com/oms", Events: []string{"order.allocated", "fulfilment.*", "*"},
			Secret: "0123456789abcdef"}
	}
	tests := []struct {
		name   string
		change func(*oms.WebhookInput)
		field  string
	}{
		{"valid", func(*oms.WebhookInput) {}, ""},
		{"http on localhost", func(w *oms.WebhookInput) { w.URL = "http://localhost:8080/h" }, ""},
		{"http on 127.0.0.2", func(w *oms.WebhookInput) { w.URL = "http://127.0.0.2/h" }, ""},
		{"http on ::1", func(w *oms.WebhookInput) { w.URL = "http://[::1]:9000/h" }, ""},
		{"nested prefix", func(w *oms.WebhookInput) { w.Events = []string{"inventory.batch.*", "inventory.batch_loaded"} }, ""},
		{"no url", func(w *oms.WebhookInput) { w.URL = "" }, "url"},
		{"relative url", func(w *oms.WebhookInput) { w.URL = "/hooks" }, "url"},
		{"plain http elsewhere", func(w *oms.WebhookInput) { w.URL = "http://hooks.example.com/oms" }, "url"},
		{"http on a lookalike host", func(w *oms.WebhookInput) { w.URL = "http://localhost.example.com/oms" }, "url"},
		{"ftp", func(w *oms.WebhookInput) { w.URL = "ftp://hooks.example.com/oms" }, "url"},
		{"credentials in url", func(w *oms.WebhookInput) { w.URL = "https://u:p@hooks.example.com/oms" }, "url"},
		{"fragment", func(w *oms.WebhookInput) { w.URL = "https://hooks.example.com/oms#x" }, "url"},
		{"url too long", func(w *oms.WebhookInput) { w.URL = "https://h.example.com/" + strings.Repeat("a", 2048) }, "url"},
		{"no events", func(w *oms.WebhookInput) { w.Events = nil }, "events"},
		{"too many events", func(w *oms.WebhookInput) {
			w.Events = nil
			for i := range 51 {
				w.Events = append(w.Events, "order.t"+strings.Repeat("x", i))
			}
		}, "events"},
		{"bare word", func(w *oms.WebhookInput) { w.Events = []string{"order.created", "order"} }, "events[1]"},
		{"uppercase", func(w *oms.WebhookInput) { w.Events = []string{"Order.Created"} }, "events[0]"},
		{"wildcard inside", func(w *oms.WebhookInput) { w.Events = []string{"order.*.x"} }, "events[0]"},
		{"suffix wildcard", func(w *oms.WebhookInput) { w.Events = []string{"order.created*"} }, "events[0]"},
		{"duplicate", func(w *oms.WebhookInput) { w.Events = []string{"*", "*"} }, "events[1]"},
		{"secret too short", func(w *oms.WebhookInput) { w.Secret = "short-secret-15" }, "secret"},
		{"secret too long", func(w *oms.WebhookInput) { w.Secret = strings.Repeat("s", 257) }, "secret"},
		{"no secret", func(w *oms.WebhookInput) { w.Secret = "" }, "secret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := valid()
			tc.change(&in)
			err := in.Validate()
			if tc.field == "" {
				assert.NoError(t, err)
				return
			}
			assert.Equal(t, oms.EINVALID, oms.ErrorCode(err), "%v", err)
			assert.Equal(t, tc.field, oms.ErrorField(err), "%v", err)
			if in.Secret != "" {
				assert.NotContains(t, err.Error(), in.Secret, "the secret is never echoed")
			}
		})
	}
}

func TestWebhookNameAndDeliveryFilter(t *testing.T) {
	for _, ok := range []string{"a", "orders", "erp-sync-2", "a" + strings.Repeat("b", 62)} {
		assert.NoError(t, oms.ValidateWebhookName(ok), ok)
	}
	for _, bad := range []string{"", "Orders", "1st", "-x", "a_b", "a" + strings.Repeat("b", 63), "a/b"} {
		assert.Equal(t, "name", oms.ErrorField(oms.ValidateWebhookName(bad)), bad)
	}
	f := oms.DeliveryFilter{}
	assert.NoError(t, f.Validate())
	assert.Equal(t, 50, f.Limit)
	assert.Equal(t, "status", oms.ErrorField((&oms.DeliveryFilter{Status: "failed"}).Validate()))
	assert.Equal(t, "limit", oms.ErrorField((&oms.DeliveryFilter{Limit: 501}).Validate()))
	assert.Equal(t, "id", oms.ErrorField(oms.ValidateDeliveryID("42")))
}

func TestMatchingEventPatterns(t *testing.T) {
	assert.Equal(t, []string{"*", "order.*", "order.allocated"}, oms.MatchingEventPatterns("order.allocated"))
	assert.Equal(t, []string{"*", "a.*", "a.b.*", "a.b.c"}, oms.MatchingEventPatterns("a.b.c"))
}
