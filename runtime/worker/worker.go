// Package worker moves events: the relay publishes each account's outbox, and
// the processor applies delivered events to the account they belong to.
package worker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/peraccount"
	"github.com/omscloud/omscloud/runtime/metrics"
)

// Processor applies delivered events. Handlers are idempotent (see
// oms.EventService.ApplyEvent), so at-least-once delivery yields exactly-once effects.
type Processor struct {
	Accounts oms.AccountService
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
}

// Handle applies one event. An error means "try again later"; events that can
// never apply (unknown account, malformed) are logged and dropped.
func (p *Processor) Handle(ctx context.Context, e *oms.Event) error {
	store, err := p.Accounts.Store(ctx, e.Account)
	if oms.ErrorCode(err) == oms.ENOTFOUND {
		p.Logger.Warn("dropping event of unknown account", "account", e.Account, "event", e.ID, "type", e.Type)
		p.Metrics.EventsApplied.WithLabelValues(e.Type, "dropped").Inc()
		return nil
	}
	if err != nil {
		return fmt.Errorf("handle event %s: %w", e.ID, err)
	}
	applied, err := store.ApplyEvent(ctx, e)
	switch {
	case oms.ErrorCode(err) == oms.EINVALID:
		p.Logger.Error("dropping malformed event", "account", e.Account, "event", e.ID, "type", e.Type, "err", err)
		p.Metrics.EventsApplied.WithLabelValues(e.Type, "dropped").Inc()
		return nil
	case err != nil:
		p.Metrics.EventsApplied.WithLabelValues(e.Type, "error").Inc()
		return fmt.Errorf("handle event %s: %w", e.ID, err)
	case applied:
		p.Metrics.EventsApplied.WithLabelValues(e.Type, "applied").Inc()
		if !e.At.IsZero() {
			p.Metrics.DeliveryDelay.Observe(time.Since(e.At).Seconds())
		}
	default:
		p.Metrics.EventsApplied.WithLabelValues(e.Type, "duplicate").Inc()
	}
	return nil
}

// Local is the publisher of `oms dev` and of deployments without a broker: the
// relay hands events straight to the processor while it holds their outbox
// rows, so the worker consumes the outbox from Postgres with the same handlers.
type Local struct {
	Processor *Processor
}

// Bindings are the routing-key patterns the worker's queue is bound to: the
// events workflows react to, and the stock events that wake orders awaiting stock.
var Bindings = []string{"order.#", "fulfilment.#", "inventory.#"}

// Consumes reports whether an event type matches Bindings.
func Consumes(eventType string) bool {
	kind, _, _ := strings.Cut(eventType, ".")
	return kind == "order" || kind == "fulfilment" || kind == "inventory"
}

// Publish implements oms.Publisher.
func (l *Local) Publish(ctx context.Context, events []*oms.Event) error {
	for _, e := range events {
		if Consumes(e.Type) {
			if err := l.Processor.Handle(ctx, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// RelayOptions configures a Relay.
type RelayOptions struct {
	Accounts  oms.AccountService
	Publisher oms.Publisher
	Metrics   *metrics.Metrics
	Logger    *slog.Logger
	// BatchSize is the most events published at once (default 200).
	BatchSize int
	// MaxIdle is the longest pause between polls of an idle outbox (default 200ms).
	MaxIdle time.Duration
	// AccountRefresh is how often new accounts are picked up (default 2s).
	AccountRefresh time.Duration
	// ProcessedRetention is how long consumed message ids are kept to spot
	// redeliveries (default 7 days); they are pruned every PruneEvery (default 10m).
	ProcessedRetention time.Duration
	PruneEvery         time.Duration
}

// Relay publishes every account's outbox. Rows are removed only after the
// publisher confirmed them, so a crash republishes rather than loses events.
type Relay struct{ o RelayOptions }

// NewRelay applies defaults.
func NewRelay(o RelayOptions) *Relay {
	if o.BatchSize <= 0 {
		o.BatchSize = 200
	}
	if o.MaxIdle <= 0 {
		o.MaxIdle = 200 * time.Millisecond
	}
	if o.AccountRefresh <= 0 {
		o.AccountRefresh = 2 * time.Second
	}
	if o.ProcessedRetention <= 0 {
		o.ProcessedRetention = 7 * 24 * time.Hour
	}
	if o.PruneEvery <= 0 {
		o.PruneEvery = 10 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	return &Relay{o: o}
}

// Run relays until ctx is done; one loop per account, started as accounts
// appear and ended when they are dropped.
func (r *Relay) Run(ctx context.Context) error {
	return peraccount.Run(ctx, r.o.Accounts, r.o.AccountRefresh, r.o.Logger.With("job", "relay"), r.relayAccount)
}

func (r *Relay) relayAccount(ctx context.Context, account string) {
	log := r.o.Logger.With("account", account)
	idle := time.Millisecond
	lastLag := time.Time{}
	lastPrune := time.Now().Add(-r.o.PruneEvery + 10*time.Second) // first prune shortly after start
	for ctx.Err() == nil {
		store, err := r.o.Accounts.Store(ctx, account)
		if oms.ErrorCode(err) == oms.ENOTFOUND {
			return // account dropped
		}
		n := 0
		if err == nil {
			n, err = store.RelayOutbox(ctx, r.o.BatchSize, r.publish)
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("relay failed, retrying", "err", err)
			idle = r.o.MaxIdle * 5 // back off while the database or broker is down
		}
		if time.Since(lastLag) > 5*time.Second && err == nil {
			if lag, lerr := store.OutboxLag(ctx); lerr == nil {
				r.o.Metrics.OutboxLag.WithLabelValues(account).Set(lag.Seconds())
			}
			lastLag = time.Now()
		}
		if time.Since(lastPrune) > r.o.PruneEvery && err == nil {
			// Bounded batches: a backlog is worked off over several rounds without long locks.
			if n, perr := store.PruneProcessed(ctx, r.o.ProcessedRetention, 10_000); perr != nil {
				log.Warn("prune processed message ids", "err", perr)
			} else if n > 0 {
				log.Info("pruned processed message ids", "count", n)
			}
			lastPrune = time.Now()
		}
		if n == r.o.BatchSize {
			continue // more waiting
		}
		if n > 0 {
			idle = time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-time.After(idle):
		}
		idle = min(idle*2, r.o.MaxIdle)
		if err != nil {
			idle = r.o.MaxIdle
		}
	}
}

func (r *Relay) publish(ctx context.Context, events []*oms.Event) error {
	if err := r.o.Publisher.Publish(ctx, events); err != nil {
		return err
	}
	r.o.Metrics.EventsRelayed.Add(float64(len(events)))
	for _, e := range events {
		switch e.Type {
		case oms.EventOrderAllocated:
			r.o.Metrics.OrdersProcessed.WithLabelValues(oms.StatusAllocated).Inc()
		case oms.EventOrderPendingStock:
			r.o.Metrics.OrdersProcessed.WithLabelValues(oms.StatusPendingStock).Inc()
		}
	}
	return nil
}
