// Package mock implements the oms service interfaces with function fields,
// for unit tests of the packages that consume them (http, worker).
package mock

import (
	"context"
	"time"

	oms "github.com/omscloud/omscloud/runtime"
)

// AccountService is an oms.AccountService whose methods call the function fields.
type AccountService struct {
	CreateAccountFn func(ctx context.Context, a *oms.Account) (string, error)
	IssueKeyFn      func(ctx context.Context, id string) (string, error)
	AuthenticateFn  func(ctx context.Context, key string) (*oms.Account, error)
	AccountsFn      func(ctx context.Context) ([]*oms.Account, error)
	StoreFn         func(ctx context.Context, id string) (oms.Store, error)
}

var _ oms.AccountService = (*AccountService)(nil)

func (s *AccountService) CreateAccount(ctx context.Context, a *oms.Account) (string, error) {
	return s.CreateAccountFn(ctx, a)
}
func (s *AccountService) IssueKey(ctx context.Context, id string) (string, error) {
	return s.IssueKeyFn(ctx, id)
}

func (s *AccountService) Authenticate(ctx context.Context, key string) (*oms.Account, error) {
	return s.AuthenticateFn(ctx, key)
}
func (s *AccountService) Accounts(ctx context.Context) ([]*oms.Account, error) {
	return s.AccountsFn(ctx)
}
func (s *AccountService) Store(ctx context.Context, id string) (oms.Store, error) {
	return s.StoreFn(ctx, id)
}

// Store is an oms.Store whose methods call the function fields.
type Store struct {
	PutLocationFn            func(ctx context.Context, l *oms.Location) (bool, error)
	LoadInventoryFn          func(ctx context.Context, r oms.LineReader) (*oms.BatchResult, error)
	StockFn                  func(ctx context.Context, location, sku string) (*oms.StockLevel, error)
	AvailabilityFn           func(ctx context.Context, r *oms.AvailabilityRequest) (*oms.Availability, error)
	AvailabilityJSONFn       func(ctx context.Context, r *oms.AvailabilityRequest) ([]byte, error)
	CreateOrderFn            func(ctx context.Context, key string, r *oms.OrderRequest) (*oms.Order, bool, error)
	OrderFn                  func(ctx context.Context, id string) (*oms.Order, error)
	OrdersFn                 func(ctx context.Context, f oms.OrderFilter) (*oms.OrderPage, error)
	CancelOrderFn            func(ctx context.Context, id string) (*oms.Order, error)
	EventsFn                 func(ctx context.Context, f oms.EventFilter) ([]*oms.Event, error)
	ApplyEventFn             func(ctx context.Context, e *oms.Event) (bool, error)
	RelayOutboxFn            func(ctx context.Context, limit int, publish func(context.Context, []*oms.Event) error) (int, error)
	OutboxLagFn              func(ctx context.Context) (time.Duration, error)
	PutWorkflowFn            func(ctx context.Context, w *oms.Workflow) (*oms.Workflow, bool, error)
	WorkflowFn               func(ctx context.Context, name string, version int) (*oms.Workflow, error)
	WorkflowsFn              func(ctx context.Context) ([]*oms.Workflow, error)
	FulfilmentFn             func(ctx context.Context, id string) (*oms.Fulfilment, error)
	FulfilmentsFn            func(ctx context.Context, f oms.FulfilmentFilter) (*oms.FulfilmentPage, error)
	PostEventFn              func(ctx context.Context, r *oms.EventRequest) (*oms.Event, bool, error)
	PruneProcessedFn         func(ctx context.Context, retention time.Duration, limit int) (int, error)
	PutWebhookFn             func(ctx context.Context, name string, in *oms.WebhookInput) (*oms.Webhook, bool, error)
	WebhookFn                func(ctx context.Context, name string) (*oms.Webhook, error)
	WebhooksFn               func(ctx context.Context) ([]*oms.Webhook, error)
	DeleteWebhookFn          func(ctx context.Context, name string) error
	WebhookDeliveriesFn      func(ctx context.Context, name string, f oms.DeliveryFilter) ([]*oms.WebhookDelivery, error)
	RedeliverFn              func(ctx context.Context, name, id string) (*oms.WebhookDelivery, error)
	ClaimWebhookJobsFn       func(ctx context.Context, limit int, lease time.Duration) ([]*oms.WebhookJob, error)
	RecordWebhookResultFn    func(ctx context.Context, job *oms.WebhookJob, r *oms.WebhookResult) error
	PruneWebhookDeliveriesFn func(ctx context.Context, before time.Time, limit int) (int, error)
}

var _ oms.Store = (*Store)(nil)

func (s *Store) PutLocation(ctx context.Context, l *oms.Location) (bool, error) {
	return s.PutLocationFn(ctx, l)
}
func (s *Store) LoadInventory(ctx context.Context, r oms.LineReader) (*oms.BatchResult, error) {
	return s.LoadInventoryFn(ctx, r)
}
func (s *Store) Stock(ctx context.Context, location, sku string) (*oms.StockLevel, error) {
	return s.StockFn(ctx, location, sku)
}
func (s *Store) Availability(ctx context.Context, r *oms.AvailabilityRequest) (*oms.Availability, error) {
	return s.AvailabilityFn(ctx, r)
}
func (s *Store) AvailabilityJSON(ctx context.Context, r *oms.AvailabilityRequest) ([]byte, error) {
	return s.AvailabilityJSONFn(ctx, r)
}
func (s *Store) CreateOrder(ctx context.Context, key string, r *oms.OrderRequest) (*oms.Order, bool, error) {
	return s.CreateOrderFn(ctx, key, r)
}
func (s *Store) Order(ctx context.Context, id string) (*oms.Order, error) { return s.OrderFn(ctx, id) }
func (s *Store) Orders(ctx context.Context, f oms.OrderFilter) (*oms.OrderPage, error) {
	return s.OrdersFn(ctx, f)
}
func (s *Store) CancelOrder(ctx context.Context, id string) (*oms.Order, error) {
	return s.CancelOrderFn(ctx, id)
}
func (s *Store) Events(ctx context.Context, f oms.EventFilter) ([]*oms.Event, error) {
	return s.EventsFn(ctx, f)
}
func (s *Store) ApplyEvent(ctx context.Context, e *oms.Event) (bool, error) {
	return s.ApplyEventFn(ctx, e)
}
func (s *Store) RelayOutbox(ctx context.Context, limit int, publish func(context.Context, []*oms.Event) error) (int, error) {
	return s.RelayOutboxFn(ctx, limit, publish)
}
func (s *Store) OutboxLag(ctx context.Context) (time.Duration, error) { return s.OutboxLagFn(ctx) }
func (s *Store) PutWorkflow(ctx context.Context, w *oms.Workflow) (*oms.Workflow, bool, error) {
	return s.PutWorkflowFn(ctx, w)
}
func (s *Store) Workflow(ctx context.Context, name string, version int) (*oms.Workflow, error) {
	return s.WorkflowFn(ctx, name, version)
}
func (s *Store) Workflows(ctx context.Context) ([]*oms.Workflow, error) { return s.WorkflowsFn(ctx) }
func (s *Store) Fulfilment(ctx context.Context, id string) (*oms.Fulfilment, error) {
	return s.FulfilmentFn(ctx, id)
}
func (s *Store) Fulfilments(ctx context.Context, f oms.FulfilmentFilter) (*oms.FulfilmentPage, error) {
	return s.FulfilmentsFn(ctx, f)
}
func (s *Store) PostEvent(ctx context.Context, r *oms.EventRequest) (*oms.Event, bool, error) {
	return s.PostEventFn(ctx, r)
}
func (s *Store) PruneProcessed(ctx context.Context, retention time.Duration, limit int) (int, error) {
	return s.PruneProcessedFn(ctx, retention, limit)
}
func (s *Store) PutWebhook(ctx context.Context, name string, in *oms.WebhookInput) (*oms.Webhook, bool, error) {
	return s.PutWebhookFn(ctx, name, in)
}
func (s *Store) Webhook(ctx context.Context, name string) (*oms.Webhook, error) {
	return s.WebhookFn(ctx, name)
}
func (s *Store) Webhooks(ctx context.Context) ([]*oms.Webhook, error) { return s.WebhooksFn(ctx) }
func (s *Store) DeleteWebhook(ctx context.Context, name string) error {
	return s.DeleteWebhookFn(ctx, name)
}
func (s *Store) WebhookDeliveries(ctx context.Context, name string, f oms.DeliveryFilter) ([]*oms.WebhookDelivery, error) {
	return s.WebhookDeliveriesFn(ctx, name, f)
}
func (s *Store) Redeliver(ctx context.Context, name, id string) (*oms.WebhookDelivery, error) {
	return s.RedeliverFn(ctx, name, id)
}
func (s *Store) ClaimWebhookJobs(ctx context.Context, limit int, lease time.Duration) ([]*oms.WebhookJob, error) {
	return s.ClaimWebhookJobsFn(ctx, limit, lease)
}
func (s *Store) RecordWebhookResult(ctx context.Context, job *oms.WebhookJob, r *oms.WebhookResult) error {
	return s.RecordWebhookResultFn(ctx, job, r)
}
func (s *Store) PruneWebhookDeliveries(ctx context.Context, before time.Time, limit int) (int, error) {
	return s.PruneWebhookDeliveriesFn(ctx, before, limit)
}
