package oms

import (
	"context"
	"encoding/json"
	"regexp"
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

// EventService reads an account's event log and applies events delivered by the broker.
type EventService interface {
	Events(ctx context.Context, f EventFilter) ([]*Event, error)
	// ApplyEvent runs the account's consumer logic for a delivered event exactly
	// once per event id: a redelivery has no further effect (applied=false).
	ApplyEvent(ctx context.Context, e *Event) (applied bool, err error)
}

// Store is everything one account can do, bound to that account's database.
type Store interface {
	InventoryService
	AvailabilityService
	OrderService
	EventService
	WorkflowService
	WebhookService
	Outbox
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

// Cache holds derived answers (availability) per account. Cache failures are
// misses, never request failures: the cache is not the truth.
type Cache interface {
	// Fetch returns the cached value of key, or computes, caches (for ttl) and
	// returns it. A value computed while an Invalidate ran is not served after it.
	Fetch(ctx context.Context, account, key string, ttl time.Duration, compute func(context.Context) ([]byte, error)) ([]byte, error)
	// Invalidate drops every entry of the account; call it after committing a change they derive from.
	Invalidate(ctx context.Context, account string)
}
