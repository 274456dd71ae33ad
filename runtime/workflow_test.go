package oms_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
)

func validWorkflow() *oms.Workflow {
	return &oms.Workflow{
		Name:      "home-delivery",
		AppliesTo: oms.WorkflowScope{DeliveryType: oms.DeliveryHD},
		Rules: []oms.Rule{
			{Name: "allocate", On: "order.created", When: oms.Condition{Status: []string{"CREATED"}},
				Actions: []oms.Action{{Allocate: &oms.AllocateAction{Strategy: oms.StrategyNearest, Split: true}}}},
			{Name: "shipped", On: "fulfilment.shipped", When: oms.Condition{Status: []string{"CREATED"}},
				Actions: []oms.Action{
					{Release: &oms.ReleaseAction{Consume: true}},
					{SetStatus: &oms.SetStatusAction{Status: "SHIPPED"}},
					{SetStatus: &oms.SetStatusAction{Entity: "order", Status: "SHIPPED", IfAllFulfilments: []string{"SHIPPED"}}},
					{Emit: &oms.EmitAction{Type: "order.shipped"}},
				}},
		},
	}
}

func TestWorkflowValidateNamesTheRuleAndTheField(t *testing.T) {
	require.NoError(t, validWorkflow().Validate())
	for _, tc := range []struct {
		name  string
		edit  func(w *oms.Workflow)
		field string
		msg   string
	}{
		{"bad name", func(w *oms.Workflow) { w.Name = "Home Delivery" }, "name", "lowercase"},
		{"no delivery type", func(w *oms.Workflow) { w.AppliesTo.DeliveryType = "" }, "appliesTo.deliveryType", "required"},
		{"no rules", func(w *oms.Workflow) { w.Rules = nil }, "rules", "at least one rule"},
		{"nothing on order.created", func(w *oms.Workflow) { w.Rules = w.Rules[1:] }, "rules", "never leave CREATED"},
		{"duplicate rule", func(w *oms.Workflow) { w.Rules[1].Name = "allocate" }, "rules[1].name", `rule "allocate": same name as rules[0]`},
		{"bad event", func(w *oms.Workflow) { w.Rules[1].On = "shipment.done" }, "rules[1].on", `rule "shipped"`},
		{"status notification as trigger", func(w *oms.Workflow) { w.Rules[1].On = "order.status_changed" }, "rules[1].on", "notification"},
		{"stock notification as trigger", func(w *oms.Workflow) { w.Rules[1].On = "fulfilment.stock_released" }, "rules[1].on", "notification"},
		{"cancellation as trigger", func(w *oms.Workflow) { w.Rules[1].On = "order.cancelled" }, "rules[1].on", "notification"},
		{"bad when status", func(w *oms.Workflow) { w.Rules[1].When.Status = []string{"shipped"} }, "rules[1].when.status[0]", "A-Z"},
		{"no actions", func(w *oms.Workflow) { w.Rules[1].Actions = nil }, "rules[1].actions", "at least one action"},
		{"two kinds in one action", func(w *oms.Workflow) {
			w.Rules[1].Actions[0].Emit = &oms.EmitAction{Type: "order.x"}
		}, "rules[1].actions[0]", "exactly one of"},
		{"empty action", func(w *oms.Workflow) { w.Rules[1].Actions[0] = oms.Action{} }, "rules[1].actions[0]", "exactly one of"},
		{"fulfilment status on an order rule", func(w *oms.Workflow) {
			w.Rules[0].Actions = append(w.Rules[0].Actions, oms.Action{SetStatus: &oms.SetStatusAction{Entity: "fulfilment", Status: "X"}})
		}, "rules[0].actions[1].setStatus.entity", "no fulfilment"},
		{"ifAllFulfilments on a fulfilment", func(w *oms.Workflow) {
			w.Rules[1].Actions[1].SetStatus.IfAllFulfilments = []string{"SHIPPED"}
		}, "rules[1].actions[1].setStatus.ifAllFulfilments", "only for entity"},
		{"bad strategy", func(w *oms.Workflow) { w.Rules[0].Actions[0].Allocate.Strategy = "cheapest" }, "rules[0].actions[0].allocate.strategy", "must be"},
		{"deliveryLocation for HD", func(w *oms.Workflow) {
			w.Rules[0].Actions[0].Allocate = &oms.AllocateAction{Strategy: oms.StrategyDeliveryLocation}
		}, "rules[0].actions[0].allocate.strategy", "needs click & collect"},
		{"nearest for CC", func(w *oms.Workflow) { w.AppliesTo.DeliveryType = oms.DeliveryCC }, "rules[0].actions[0].allocate.strategy", "collected at their store"},
		{"too many fulfilments", func(w *oms.Workflow) { w.Rules[0].Actions[0].Allocate.MaxFulfilments = 11 }, "rules[0].actions[0].allocate.maxFulfilments", "between 1 and 10"},
		{"maxFulfilments without split", func(w *oms.Workflow) {
			w.Rules[0].Actions[0].Allocate.Split = false
			w.Rules[0].Actions[0].Allocate.MaxFulfilments = 2
		}, "rules[0].actions[0].allocate.maxFulfilments", "only with split"},
		{"emit an engine event", func(w *oms.Workflow) { w.Rules[1].Actions[3].Emit.Type = "order.allocated" }, "rules[1].actions[3].emit.type", "written by the OMS"},
		{"webhook name", func(w *oms.Workflow) {
			w.Rules[1].Actions = append(w.Rules[1].Actions, oms.Action{Webhook: &oms.WebhookAction{Name: "ERP"}})
		}, "rules[1].actions[4].webhook.name", "lowercase"},
		{"a rule that re-triggers itself", func(w *oms.Workflow) {
			w.Rules = append(w.Rules, oms.Rule{Name: "ping", On: "order.ping", Actions: []oms.Action{{Emit: &oms.EmitAction{Type: "order.pong"}}}},
				oms.Rule{Name: "pong", On: "order.pong", Actions: []oms.Action{{Emit: &oms.EmitAction{Type: "order.ping"}}}})
		}, "rules[2]", `rule "ping" can trigger itself again (through "order.ping" written by rule "pong")`},
		{"allocating on order.allocated loops", func(w *oms.Workflow) {
			w.Rules = append(w.Rules, oms.Rule{Name: "again", On: "order.allocated",
				Actions: []oms.Action{{Allocate: &oms.AllocateAction{Strategy: oms.StrategyNearest}}}})
		}, "rules[2]", "can trigger itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := validWorkflow()
			tc.edit(w)
			err := w.Validate()
			require.Error(t, err)
			assert.Equal(t, tc.field, oms.ErrorField(err), err.Error())
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestRuleForTakesTheFirstMatchingRule(t *testing.T) {
	w := validWorkflow()
	w.Rules = append(w.Rules, oms.Rule{Name: "shipped-any", On: "fulfilment.shipped",
		Actions: []oms.Action{{SetStatus: &oms.SetStatusAction{Status: "ODD"}}}})
	assert.Equal(t, "shipped", w.RuleFor("fulfilment.shipped", "CREATED").Name)
	assert.Equal(t, "shipped-any", w.RuleFor("fulfilment.shipped", "PICKED").Name, "an empty when matches any status")
	assert.Nil(t, w.RuleFor("fulfilment.lost", "CREATED"))
}
