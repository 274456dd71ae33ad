package oms

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Event types. The routing key of a published event is its type.
const (
	EventOrderCreated      = "order.created"
	EventOrderAllocated    = "order.allocated"
	EventOrderPendingStock = "order.pending_stock"
	EventOrderCancelled    = "order.cancelled"
	EventLocationUpserted  = "location.upserted"
	EventInventoryLoaded   = "inventory.batch_loaded"
)

// Engine event types, written by the OMS itself; clients cannot post them.
const (
	EventOrderStockArrived       = "order.stock_arrived"
	EventOrderStatusChanged      = "order.status_changed"
	EventFulfilmentCreated       = "fulfilment.created"
	EventFulfilmentStatusChanged = "fulfilment.status_changed"
	EventFulfilmentStockReleased = "fulfilment.stock_released"
	EventFulfilmentStockConsumed = "fulfilment.stock_consumed"
	EventWorkflowRuleApplied     = "workflow.rule_applied"
	EventWorkflowEventIgnored    = "workflow.event_ignored"
	EventWorkflowWebhookNotFound = "workflow.webhook_not_found"
	// EventWakeContinued carries a wake-up of waiting orders past its first batch.
	EventWakeContinued = "inventory.wake_continued"
)

// EngineEventTypes are the event types only the OMS writes.
var EngineEventTypes = []string{
	EventOrderCreated, EventOrderAllocated, EventOrderPendingStock, EventOrderCancelled,
	EventOrderStockArrived, EventOrderStatusChanged,
	EventFulfilmentCreated, EventFulfilmentStatusChanged, EventFulfilmentStockReleased, EventFulfilmentStockConsumed,
}

// Event is an entry of an account's event log: every state change and action,
// written in the transaction that made it and published through the outbox.
type Event struct {
	ID      string          `json:"id"`      // unique; the message id when published
	Seq     int64           `json:"seq"`     // order within the account
	Account string          `json:"account"` // set on published events
	Entity  string          `json:"entity"`  // "order:<id>", "fulfilment:<id>", "location:<ref>", "batch:<id>"
	Type    string          `json:"type"`
	Data    json.RawMessage `json:"data"`
	At      time.Time       `json:"at"`
}

var entityPattern = regexp.MustCompile(`^(order|fulfilment|location|batch):[A-Za-z0-9._:-]{1,100}$`)

// EventFilter selects events: one entity, after a sequence number.
type EventFilter struct {
	Entity string
	After  int64
	Limit  int
}

// Validate checks the filter and sets the default limit.
func (f *EventFilter) Validate() error {
	if f.Entity != "" && !entityPattern.MatchString(f.Entity) {
		return Invalid("entity", "must be <kind>:<id> with kind order, fulfilment, location or batch (e.g. order:123)")
	}
	if f.After < 0 {
		return Invalid("after", "must be 0 or more")
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	if f.Limit < 0 || f.Limit > 1000 {
		return Invalid("limit", "must be between 1 and 1000")
	}
	return nil
}

// EventRequest is the body of POST /v1/events: an external system reports
// something that happened to an order or a fulfilment.
type EventRequest struct {
	// ID makes the post idempotent: the same id again returns the first event.
	ID     string          `json:"id,omitempty"`
	Type   string          `json:"type"`
	Entity string          `json:"entity"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// MaxEventDataBytes bounds the data of a posted event.
const MaxEventDataBytes = 64 << 10

// Validate checks the request's shape; the store checks that the entity exists
// and that its workflow has a rule for the event.
func (r *EventRequest) Validate() error {
	if r.ID != "" && !uuidPattern.MatchString(r.ID) {
		return Invalid("id", "must be a lowercase UUID (or omitted)")
	}
	if err := ValidateWorkflowEventType("type", r.Type); err != nil {
		return err
	}
	if slices.Contains(EngineEventTypes, r.Type) {
		return Invalid("type", "%q is written by the OMS itself and cannot be posted", r.Type)
	}
	kind, id, ok := strings.Cut(r.Entity, ":")
	if !ok || (kind != EntityOrder && kind != EntityFulfilment) || !uuidPattern.MatchString(id) {
		return Invalid("entity", "must be order:<order id> or fulfilment:<fulfilment id>")
	}
	if kind != EventEntity(r.Type) {
		return Invalid("entity", "a %s event is about a %s: use %s:<id>", r.Type, EventEntity(r.Type), EventEntity(r.Type))
	}
	if len(r.Data) > MaxEventDataBytes {
		return Invalid("data", "at most %d bytes", MaxEventDataBytes)
	}
	if d := bytes.TrimSpace(r.Data); len(d) > 0 && d[0] != '{' && string(d) != "null" {
		return Invalid("data", "must be a JSON object")
	}
	return nil
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// IsUUID reports whether s is a UUID in the lowercase form the OMS writes.
func IsUUID(s string) bool { return uuidPattern.MatchString(s) }

// EventService reads an account's event log, takes external events and
// applies events delivered by the broker.
type EventService interface {
	Events(ctx context.Context, f EventFilter) ([]*Event, error)
	// PostEvent records an external event; the worker applies it. The same id
	// with the same request replays the recorded event (replayed=true).
	PostEvent(ctx context.Context, r *EventRequest) (e *Event, replayed bool, err error)
	// ApplyEvent runs the account's consumer logic for a delivered event exactly
	// once per event id: a redelivery has no further effect (applied=false).
	ApplyEvent(ctx context.Context, e *Event) (applied bool, err error)
}

// Outbox is the account's queue of events not yet published.
type Outbox interface {
	// RelayOutbox hands up to limit unpublished events, oldest first, to publish;
	// they are removed only if publish returns nil. Concurrent relays skip each
	// other's rows. It returns how many events were relayed.
	RelayOutbox(ctx context.Context, limit int, publish func(context.Context, []*Event) error) (int, error)
	// OutboxLag is the age of the oldest unpublished event (0 when empty).
	OutboxLag(ctx context.Context) (time.Duration, error)
	// PruneProcessed forgets up to limit ids of messages consumed longer ago
	// than retention: a redelivery can only come while a message is in flight.
	PruneProcessed(ctx context.Context, retention time.Duration, limit int) (int, error)
}

// Publisher sends events to consumers (RabbitMQ, or in-process in dev mode).
type Publisher interface {
	Publish(ctx context.Context, events []*Event) error
}
