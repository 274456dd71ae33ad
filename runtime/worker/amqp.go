package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/metrics"
	"github.com/omscloud/omscloud/runtime/rabbitmq"
)

// Queue is the worker's queue; it receives the events matching Bindings.
const Queue = "oms.worker"

// AMQPPublisher publishes events to the broker's topic exchange, routed by type.
type AMQPPublisher struct{ Broker *rabbitmq.Broker }

// Publish implements oms.Publisher; it returns once the broker confirmed every event.
func (p *AMQPPublisher) Publish(ctx context.Context, events []*oms.Event) error {
	msgs := make([]rabbitmq.Message, len(events))
	for i, e := range events {
		body, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode event %s: %w", e.ID, err)
		}
		msgs[i] = rabbitmq.Message{ID: e.ID, RoutingKey: e.Type, Body: body, Timestamp: e.At,
			Headers: map[string]any{"account": e.Account, "entity": e.Entity}}
	}
	return p.Broker.Publish(ctx, msgs)
}

// ConsumeOptions configures Consume.
type ConsumeOptions struct {
	Broker    *rabbitmq.Broker
	Processor *Processor
	// Concurrency is the number of parallel consumers (default 4); Prefetch per consumer (default 16).
	Concurrency int
	Prefetch    int
	Metrics     *metrics.Metrics
	Logger      *slog.Logger
}

// Consume declares the worker queue and processes it until ctx is done.
func Consume(ctx context.Context, o ConsumeOptions) error {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Prefetch <= 0 {
		o.Prefetch = 16
	}
	if err := o.Broker.DeclareQueue(ctx, Queue, Bindings); err != nil {
		return fmt.Errorf("declare worker queue: %w", err)
	}
	handle := func(ctx context.Context, d rabbitmq.Delivery) error {
		var e oms.Event
		if err := json.Unmarshal(d.Body, &e); err != nil || e.Account == "" || e.ID != d.ID {
			o.Logger.Error("dropping undecodable message", "message_id", d.ID, "routing_key", d.RoutingKey)
			return nil
		}
		return o.Processor.Handle(ctx, &e)
	}
	errs := make(chan error, o.Concurrency)
	for range o.Concurrency {
		go func() { errs <- o.Broker.Consume(ctx, Queue, o.Prefetch, handle) }()
	}
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			if n, err := o.Broker.QueueDepth(ctx, Queue); err == nil {
				o.Metrics.QueueDepth.WithLabelValues(Queue).Set(float64(n))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	var first error
	for range o.Concurrency {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
