package oms

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// A workflow is an account's versioned set of rules for the orders of one
// delivery type. Each order runs the version that was current when it was
// created, so changing a workflow never changes an order already in flight.
//
// A rule fires when an event arrives for an order or fulfilment (`on`) whose
// status is listed in `when.status` (any status when empty); the first rule
// that matches runs its actions in one transaction, in order. Events the
// actions write (order.allocated, fulfilment.created, *.status_changed, emit)
// can fire further rules; the validator rejects definitions that could loop.

// notifications are engine events no rule can listen to: they report a
// rule's own change (status, stock) or are handled by the engine itself
// (order.cancelled wakes orders waiting for the stock it frees).
var notifications = []string{EventOrderStatusChanged, EventFulfilmentStatusChanged,
	EventFulfilmentStockReleased, EventFulfilmentStockConsumed, EventOrderCancelled}

// Allocation strategies.
const (
	// StrategyNearest ships from the nearest location holding every remaining
	// line, else (with split) from several locations.
	StrategyNearest = "nearest"
	// StrategyDeliveryLocation reserves at the order's click & collect store only.
	StrategyDeliveryLocation = "deliveryLocation"
)

// Entities a rule can act on.
const (
	EntityOrder      = "order"
	EntityFulfilment = "fulfilment"
)

// Limits of a definition: generous for real flows, small enough to evaluate per event.
const (
	MaxWorkflowRules    = 100
	MaxRuleActions      = 20
	MaxFulfilmentsLimit = 10
	MaxWorkflowVersions = 10_000
)

var (
	workflowNamePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	statusPattern       = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,39}$`)
	// Workflow events are about an order or a fulfilment; the prefix routes them.
	workflowEventPattern = regexp.MustCompile(`^(order|fulfilment)\.[a-z][a-z0-9_]{0,62}$`)
)

// Workflow is one version of a workflow definition.
type Workflow struct {
	Name        string        `json:"name"`
	Version     int           `json:"version,omitempty"` // assigned when stored
	Description string        `json:"description,omitempty"`
	AppliesTo   WorkflowScope `json:"appliesTo"`
	Rules       []Rule        `json:"rules"`
	CreatedAt   *time.Time    `json:"createdAt,omitempty"`
}

// WorkflowScope says which orders run the workflow.
type WorkflowScope struct {
	DeliveryType string `json:"deliveryType"`
}

// Rule runs its actions when an event for an entity in one of the statuses arrives.
type Rule struct {
	Name    string    `json:"name"`
	On      string    `json:"on"`
	When    Condition `json:"when,omitzero"`
	Actions []Action  `json:"actions"`
}

// Condition restricts a rule to entities in the given statuses.
type Condition struct {
	Status []string `json:"status,omitempty"`
}

// Action is exactly one of its fields.
type Action struct {
	SetStatus *SetStatusAction `json:"setStatus,omitempty"`
	Allocate  *AllocateAction  `json:"allocate,omitempty"`
	Release   *ReleaseAction   `json:"release,omitempty"`
	Emit      *EmitAction      `json:"emit,omitempty"`
	Webhook   *WebhookAction   `json:"webhook,omitempty"`
}

// SetStatusAction sets the status of the order or of the event's fulfilment.
type SetStatusAction struct {
	// Entity is "order" or "fulfilment"; default: the entity of the event.
	Entity string `json:"entity,omitempty"`
	Status string `json:"status"`
	// IfAllFulfilments applies the change only when every active fulfilment of
	// the order (not rejected) is in one of these statuses.
	IfAllFulfilments []string `json:"ifAllFulfilments,omitempty"`
}

// AllocateAction chooses the fulfilment location(s) for the order's lines not
// yet in an active fulfilment, reserves the stock and creates the fulfilments,
// all or nothing. Locations of the order's rejected fulfilments are skipped.
type AllocateAction struct {
	Strategy string `json:"strategy"`
	// Split allows several locations when none holds every line.
	Split bool `json:"split,omitempty"`
	// MaxFulfilments bounds a split (default DefaultMaxFulfilments).
	MaxFulfilments int `json:"maxFulfilments,omitempty"`
	// Status is the order's status once allocated (default ALLOCATED);
	// PendingStatus when the stock is not there (default PENDING_STOCK).
	Status        string `json:"status,omitempty"`
	PendingStatus string `json:"pendingStatus,omitempty"`
}

// ReleaseAction gives back the reservations of the event's fulfilment (or of
// every active fulfilment on an order event). Consume says the goods left the
// location (shipped, collected): on-hand stock drops with the reservation.
type ReleaseAction struct {
	Consume bool `json:"consume,omitempty"`
}

// EmitAction writes an event; its prefix says whether it is about the order or the fulfilment.
type EmitAction struct {
	Type string `json:"type"`
}

// WebhookAction sends the triggering event to a named webhook, whatever events it subscribes to.
type WebhookAction struct {
	Name string `json:"name"`
}

// Kind names the action's type, for errors and the event log.
func (a *Action) Kind() string {
	switch {
	case a.SetStatus != nil:
		return "setStatus"
	case a.Allocate != nil:
		return "allocate"
	case a.Release != nil:
		return "release"
	case a.Emit != nil:
		return "emit"
	case a.Webhook != nil:
		return "webhook"
	}
	return ""
}

func (a *Action) count() int {
	n := 0
	for _, set := range []bool{a.SetStatus != nil, a.Allocate != nil, a.Release != nil, a.Emit != nil, a.Webhook != nil} {
		if set {
			n++
		}
	}
	return n
}

// EventEntity returns the entity kind a workflow event type is about ("order" or "fulfilment").
func EventEntity(eventType string) string {
	kind, _, _ := strings.Cut(eventType, ".")
	return kind
}

// ValidateWorkflowName checks a workflow name (it appears in URL paths).
func ValidateWorkflowName(field, name string) error {
	if !workflowNamePattern.MatchString(name) {
		return Invalid(field, "must be 1-63 lowercase letters, digits or '-', starting with a letter")
	}
	return nil
}

// ValidateStatus checks a status name.
func ValidateStatus(field, s string) error {
	if !statusPattern.MatchString(s) {
		return Invalid(field, "%q: a status is 1-40 characters of A-Z, 0-9 or '_', starting with a letter (e.g. SHIPPED)", s)
	}
	return nil
}

// ValidateWorkflowEventType checks the type of an event a rule listens to or emits.
func ValidateWorkflowEventType(field, t string) error {
	if !workflowEventPattern.MatchString(t) {
		return Invalid(field, "%q: must be order.<name> or fulfilment.<name> in lowercase (e.g. fulfilment.picked)", t)
	}
	return nil
}

// Validate checks a definition; errors name the JSON path and the rule.
func (w *Workflow) Validate() error {
	if err := ValidateWorkflowName("name", w.Name); err != nil {
		return err
	}
	if len(w.Description) > 1000 {
		return Invalid("description", "at most 1000 characters")
	}
	switch w.AppliesTo.DeliveryType {
	case DeliveryHD, DeliveryCC:
	case "":
		return Invalid("appliesTo.deliveryType", "required: %q or %q", DeliveryHD, DeliveryCC)
	default:
		return Invalid("appliesTo.deliveryType", "must be %q or %q", DeliveryHD, DeliveryCC)
	}
	if len(w.Rules) == 0 {
		return Invalid("rules", "at least one rule required")
	}
	if len(w.Rules) > MaxWorkflowRules {
		return Invalid("rules", "at most %d rules", MaxWorkflowRules)
	}
	names := map[string]int{}
	handlesCreated := false
	for i := range w.Rules {
		r := &w.Rules[i]
		if err := w.validateRule(i, r); err != nil {
			return err
		}
		if j, dup := names[r.Name]; dup {
			return Invalid(fmt.Sprintf("rules[%d].name", i), "rule %q: same name as rules[%d]", r.Name, j)
		}
		names[r.Name] = i
		if r.On == EventOrderCreated {
			handlesCreated = true
		}
	}
	if !handlesCreated {
		return Invalid("rules", "no rule is on %q: new orders would never leave CREATED", EventOrderCreated)
	}
	return w.checkLoops()
}

func (w *Workflow) validateRule(i int, r *Rule) error {
	at := fmt.Sprintf("rules[%d]", i)
	if err := ValidateWorkflowName(at+".name", r.Name); err != nil {
		return err
	}
	in := func(field, format string, args ...any) error {
		return Invalid(at+field, "rule %q: %s", r.Name, fmt.Sprintf(format, args...))
	}
	if err := ValidateWorkflowEventType(at+".on", r.On); err != nil {
		return in(".on", "%s", ErrorMessage(err))
	}
	if slices.Contains(notifications, r.On) {
		return in(".on", "%q is a notification the workflow engine writes, not a trigger: use the event that caused it", r.On)
	}
	for j, s := range r.When.Status {
		if err := ValidateStatus("", s); err != nil {
			return in(fmt.Sprintf(".when.status[%d]", j), "%s", ErrorMessage(err))
		}
	}
	if len(r.Actions) == 0 {
		return in(".actions", "at least one action required")
	}
	if len(r.Actions) > MaxRuleActions {
		return in(".actions", "at most %d actions", MaxRuleActions)
	}
	entity := EventEntity(r.On)
	for j := range r.Actions {
		a := &r.Actions[j]
		f := fmt.Sprintf(".actions[%d]", j)
		if a.count() != 1 {
			return in(f, "give exactly one of setStatus, allocate, release, emit, webhook")
		}
		f += "." + a.Kind()
		switch {
		case a.SetStatus != nil:
			s := a.SetStatus
			target := s.Entity
			if target == "" {
				target = entity
			}
			switch {
			case s.Entity != "" && s.Entity != EntityOrder && s.Entity != EntityFulfilment:
				return in(f+".entity", "must be %q or %q", EntityOrder, EntityFulfilment)
			case target == EntityFulfilment && entity != EntityFulfilment:
				return in(f+".entity", "a rule on an order event has no fulfilment to set: use entity %q", EntityOrder)
			}
			if err := ValidateStatus("", s.Status); err != nil {
				return in(f+".status", "%s", ErrorMessage(err))
			}
			if len(s.IfAllFulfilments) > 0 && target != EntityOrder {
				return in(f+".ifAllFulfilments", "only for entity %q", EntityOrder)
			}
			for k, st := range s.IfAllFulfilments {
				if err := ValidateStatus("", st); err != nil {
					return in(fmt.Sprintf("%s.ifAllFulfilments[%d]", f, k), "%s", ErrorMessage(err))
				}
			}
		case a.Allocate != nil:
			al := a.Allocate
			switch al.Strategy {
			case StrategyNearest:
				if w.AppliesTo.DeliveryType == DeliveryCC {
					return in(f+".strategy", "click & collect orders are collected at their store: use %q", StrategyDeliveryLocation)
				}
			case StrategyDeliveryLocation:
				if w.AppliesTo.DeliveryType != DeliveryCC {
					return in(f+".strategy", "%q needs click & collect orders (appliesTo.deliveryType CC)", StrategyDeliveryLocation)
				}
				if al.Split {
					return in(f+".split", "a click & collect order is collected at one store: remove split")
				}
			case "":
				return in(f+".strategy", "required: %q or %q", StrategyNearest, StrategyDeliveryLocation)
			default:
				return in(f+".strategy", "must be %q or %q", StrategyNearest, StrategyDeliveryLocation)
			}
			if al.MaxFulfilments < 0 || al.MaxFulfilments > MaxFulfilmentsLimit {
				return in(f+".maxFulfilments", "must be between 1 and %d (0: default %d)", MaxFulfilmentsLimit, DefaultMaxFulfilments)
			}
			if al.MaxFulfilments > 0 && !al.Split {
				return in(f+".maxFulfilments", "only with split: true")
			}
			for _, st := range []struct{ field, value string }{{".status", al.Status}, {".pendingStatus", al.PendingStatus}} {
				if st.value != "" {
					if err := ValidateStatus("", st.value); err != nil {
						return in(f+st.field, "%s", ErrorMessage(err))
					}
				}
			}
		case a.Release != nil:
		case a.Emit != nil:
			t := a.Emit.Type
			if err := ValidateWorkflowEventType("", t); err != nil {
				return in(f+".type", "%s", ErrorMessage(err))
			}
			if slices.Contains(EngineEventTypes, t) {
				return in(f+".type", "%q is written by the OMS itself; emit an event of your own", t)
			}
			if EventEntity(t) == EntityFulfilment && entity != EntityFulfilment {
				return in(f+".type", "a rule on an order event has no fulfilment: emit an order.* event")
			}
		case a.Webhook != nil:
			if err := ValidateWorkflowName("", a.Webhook.Name); err != nil {
				return in(f+".name", "%s", ErrorMessage(err))
			}
		}
	}
	return nil
}

// emits lists the event types a rule's actions can write.
func (r *Rule) emits() []string {
	var out []string
	for _, a := range r.Actions {
		switch {
		case a.Allocate != nil:
			out = append(out, EventOrderAllocated, EventOrderPendingStock, EventFulfilmentCreated)
		case a.Emit != nil:
			out = append(out, a.Emit.Type)
		}
	}
	return out
}

// checkLoops rejects rules that could trigger each other forever: an event
// type a rule listens to must not be reachable from what that rule writes.
func (w *Workflow) checkLoops() error {
	byType := map[string][]int{}
	for i, r := range w.Rules {
		byType[r.On] = append(byType[r.On], i)
	}
	for i, r := range w.Rules {
		seen := map[string]bool{}
		queue := r.emits()
		path := map[string]int{} // event type -> rule that reached it
		for _, t := range queue {
			path[t] = i
		}
		for len(queue) > 0 {
			t := queue[0]
			queue = queue[1:]
			if seen[t] {
				continue
			}
			seen[t] = true
			if t == r.On {
				return Invalid(fmt.Sprintf("rules[%d]", i), "rule %q can trigger itself again (through %q written by rule %q): workflows must not loop",
					r.Name, t, w.Rules[path[t]].Name)
			}
			for _, j := range byType[t] {
				for _, next := range w.Rules[j].emits() {
					if _, ok := path[next]; !ok {
						path[next] = j
					}
					queue = append(queue, next)
				}
			}
		}
	}
	return nil
}

// RuleFor returns the first rule on eventType whose condition matches status, or nil.
func (w *Workflow) RuleFor(eventType, status string) *Rule {
	for i := range w.Rules {
		r := &w.Rules[i]
		if r.On == eventType && (len(r.When.Status) == 0 || slices.Contains(r.When.Status, status)) {
			return r
		}
	}
	return nil
}

// Handles reports whether any rule listens to eventType.
func (w *Workflow) Handles(eventType string) bool {
	for i := range w.Rules {
		if w.Rules[i].On == eventType {
			return true
		}
	}
	return false
}

// WorkflowService stores an account's workflows.
type WorkflowService interface {
	// PutWorkflow stores w as a new version, or returns the latest version
	// unchanged (created=false) when the definition is the same.
	PutWorkflow(ctx context.Context, w *Workflow) (stored *Workflow, created bool, err error)
	// Workflow returns a version (0: the latest).
	Workflow(ctx context.Context, name string, version int) (*Workflow, error)
	// Workflows returns the latest version of each workflow.
	Workflows(ctx context.Context) ([]*Workflow, error)
}
