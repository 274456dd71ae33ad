package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Delivery is a consumed message.
type Delivery struct {
	Message
	// Redelivered is set when the broker delivered this message before without an ack (a handler error,
	// or a consumer that died): the handler must be idempotent.
	Redelivered bool
}

// Handler processes one delivery. Returning nil acks it; an error returns it to the queue for another
// attempt, until the queue's delivery limit dead-letters it.
type Handler func(ctx context.Context, d Delivery) error

// Consume delivers queue's messages to handle, one at a time and in queue order, with up to prefetch
// more in flight from the broker. A delivery is acked once, after handle returns nil; on error it is
// nacked and requeued. Consume re-subscribes by itself when the connection or channel is lost and runs
// until ctx is done, then returns nil (unacked deliveries go back to the queue). It returns an error only
// after Close, or when the queue does not exist on the first attempt. Run several Consume calls (in one
// process or many) to process a queue in parallel.
func (b *Broker) Consume(ctx context.Context, queue string, prefetch int, handle Handler) error {
	if queue == "" {
		return errors.New("rabbitmq: consume: queue is empty")
	}
	if prefetch < 1 {
		return fmt.Errorf("rabbitmq: consume %q: prefetch is %d: use 1 or more", queue, prefetch)
	}
	if handle == nil {
		return fmt.Errorf("rabbitmq: consume %q: handler is nil", queue)
	}
	log := b.log.With("queue", queue)
	subscribedOnce := false
	for attempt := 0; ; attempt++ {
		subscribed, err := b.consumeOnce(ctx, queue, prefetch, handle)
		subscribedOnce = subscribedOnce || subscribed
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrClosed) {
			return err
		}
		var aerr *amqp.Error
		if !subscribedOnce && errors.As(err, &aerr) && aerr.Code == amqp.NotFound {
			return fmt.Errorf("rabbitmq: consume: %w", err)
		}
		if subscribed {
			attempt = 0
		}
		select {
		case <-b.done:
			return ErrClosed
		default:
		}
		log.Warn("consumer interrupted, resubscribing", "err", err)
		t := time.NewTimer(backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-b.done:
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
	}
}

// consumeOnce subscribes on a fresh channel and handles deliveries until the channel dies or ctx is done.
// It reports whether the subscription was established.
func (b *Broker) consumeOnce(ctx context.Context, queue string, prefetch int, handle Handler) (bool, error) {
	ch, err := b.channel(ctx)
	if err != nil {
		return false, err
	}
	// Closing the channel returns every unacked delivery to the queue.
	defer func() { _ = ch.Close() }()
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return false, fmt.Errorf("set prefetch: %w", err)
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return false, fmt.Errorf("subscribe to %q: %w", queue, err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case d, ok := <-deliveries:
			if !ok {
				if cause, ok := <-closed; ok && cause != nil {
					return true, fmt.Errorf("channel closed: %w", cause)
				}
				return true, errors.New("delivery stream ended")
			}
			if err := b.dispatch(ctx, queue, d, handle); err != nil {
				return true, err
			}
		}
	}
}

func (b *Broker) dispatch(ctx context.Context, queue string, d amqp.Delivery, handle Handler) error {
	herr := handle(ctx, Delivery{
		Message: Message{
			ID:         d.MessageId,
			RoutingKey: d.RoutingKey,
			Body:       d.Body,
			Headers:    d.Headers,
			Timestamp:  d.Timestamp,
		},
		Redelivered: d.Redelivered,
	})
	if herr == nil {
		if err := d.Ack(false); err != nil {
			// The broker will redeliver it; the handler's idempotency absorbs the repeat.
			return fmt.Errorf("ack %s: %w", d.MessageId, err)
		}
		return nil
	}
	if ctx.Err() == nil {
		b.log.Warn("handler failed, requeueing", "queue", queue, "message_id", d.MessageId,
			"routing_key", d.RoutingKey, "redelivered", d.Redelivered, "err", herr)
	}
	if err := d.Nack(false, true); err != nil {
		return fmt.Errorf("nack %s: %w", d.MessageId, err)
	}
	return nil
}
