package worker_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/metrics"
	"github.com/omscloud/omscloud/runtime/mock"
	"github.com/omscloud/omscloud/runtime/worker"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// outbox is a fake account outbox: rows leave it only when publish succeeds.
type outbox struct {
	mu   sync.Mutex
	rows []*oms.Event
}

func (o *outbox) relay(ctx context.Context, limit int, publish func(context.Context, []*oms.Event) error) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	batch := o.rows[:min(limit, len(o.rows))]
	if len(batch) == 0 {
		return 0, nil
	}
	if err := publish(ctx, batch); err != nil {
		return 0, err
	}
	o.rows = o.rows[len(batch):]
	return len(batch), nil
}

type publisher struct {
	mu        sync.Mutex
	failFirst int
	got       []string
}

func (p *publisher) Publish(_ context.Context, events []*oms.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failFirst > 0 {
		p.failFirst--
		return errors.New("broker down")
	}
	for _, e := range events {
		p.got = append(p.got, e.ID)
	}
	return nil
}

func (p *publisher) ids() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

func TestRelayPublishesEveryEventOnceConfirmedAndRetriesFailures(t *testing.T) {
	ob := &outbox{}
	var want []string
	for i := range 450 {
		e := &oms.Event{ID: string(rune('a'+i%26)) + time.Duration(i).String(), Type: oms.EventOrderCreated}
		ob.rows = append(ob.rows, e)
		want = append(want, e.ID)
	}
	store := &mock.Store{RelayOutboxFn: ob.relay, OutboxLagFn: func(context.Context) (time.Duration, error) { return 0, nil },
		PruneProcessedFn: func(context.Context, time.Duration, int) (int, error) { return 0, nil }}
	accounts := &mock.AccountService{
		AccountsFn: func(context.Context) ([]*oms.Account, error) { return []*oms.Account{{ID: "acme"}}, nil },
		StoreFn:    func(context.Context, string) (oms.Store, error) { return store, nil },
	}
	pub := &publisher{failFirst: 2}
	relay := worker.NewRelay(worker.RelayOptions{Accounts: accounts, Publisher: pub, Logger: quiet, BatchSize: 200,
		MaxIdle: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- relay.Run(ctx) }()
	require.Eventually(t, func() bool { return len(pub.ids()) == len(want) }, 10*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, want, pub.ids(), "in order, none lost, none twice (failed batches stayed in the outbox)")
}

func TestLocalPublisherAppliesOnlyConsumedTypesAndDropsWhatCanNeverApply(t *testing.T) {
	var applied []string
	store := &mock.Store{ApplyEventFn: func(_ context.Context, e *oms.Event) (bool, error) {
		if e.ID == "bad" {
			return false, oms.Invalid("data", "malformed")
		}
		if e.ID == "flaky" {
			return false, errors.New("connection reset")
		}
		applied = append(applied, e.ID)
		return true, nil
	}}
	accounts := &mock.AccountService{StoreFn: func(_ context.Context, id string) (oms.Store, error) {
		if id != "acme" {
			return nil, oms.Errorf(oms.ENOTFOUND, "account", "no such account")
		}
		return store, nil
	}}
	local := &worker.Local{Processor: &worker.Processor{Accounts: accounts, Metrics: metrics.New(), Logger: quiet}}
	ctx := context.Background()
	require.NoError(t, local.Publish(ctx, []*oms.Event{
		{ID: "1", Account: "acme", Type: oms.EventOrderCreated},
		{ID: "2", Account: "acme", Type: oms.EventLocationUpserted},     // not consumed by the worker
		{ID: "wf", Account: "acme", Type: oms.EventWorkflowRuleApplied}, // a log entry, not a trigger
		{ID: "3", Account: "gone", Type: oms.EventOrderCreated},         // account dropped: nothing to do, ever
		{ID: "bad", Account: "acme", Type: oms.EventOrderCreated},       // malformed: dropped, not retried forever
	}))
	assert.Equal(t, []string{"1"}, applied)
	err := local.Publish(ctx, []*oms.Event{{ID: "flaky", Account: "acme", Type: oms.EventOrderCreated}})
	assert.Error(t, err, "a transient failure keeps the events in the outbox")
}
