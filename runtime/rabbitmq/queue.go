package rabbitmq

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DeadLetterQueue names the queue that receives name's poison messages.
func DeadLetterQueue(name string) string { return name + ".dead" }

// DeadLetterExchange names the exchange dead-lettered messages pass through.
func (b *Broker) DeadLetterExchange() string { return b.opts.Exchange + ".dlx" }

// DeclareQueue declares a durable quorum queue bound to the exchange with each binding key (topic
// patterns such as "order.*"). A message that fails DeliveryLimit times is dead-lettered to
// DeadLetterQueue(name) instead of looping forever. Declaring is idempotent; declaring an existing queue
// with different settings fails with PRECONDITION_FAILED.
func (b *Broker) DeclareQueue(ctx context.Context, name string, bindings []string) error {
	if name == "" {
		return errors.New("rabbitmq: declare queue: name is empty")
	}
	if len(bindings) == 0 {
		return fmt.Errorf("rabbitmq: declare queue %q: bindings is empty: a queue with no binding receives no events; pass routing-key patterns such as \"order.*\"", name)
	}
	ch, err := b.channel(ctx)
	if err != nil {
		return fmt.Errorf("rabbitmq: declare queue %q: %w", name, err)
	}
	defer func() { _ = ch.Close() }()

	dlx, dlq := b.DeadLetterExchange(), DeadLetterQueue(name)
	if err := ch.ExchangeDeclare(dlx, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return fmt.Errorf("rabbitmq: declare dead-letter exchange %q: %w", dlx, err)
	}
	if _, err := ch.QueueDeclare(dlq, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		return fmt.Errorf("rabbitmq: declare dead-letter queue %q: %w", dlq, err)
	}
	if err := ch.QueueBind(dlq, name, dlx, false, nil); err != nil {
		return fmt.Errorf("rabbitmq: bind dead-letter queue %q: %w", dlq, err)
	}
	args := amqp.Table{
		"x-queue-type":              "quorum",
		"x-delivery-limit":          int64(b.opts.DeliveryLimit),
		"x-dead-letter-exchange":    dlx,
		"x-dead-letter-routing-key": name,
		// at-least-once dead-lettering keeps a poison message until the dead-letter queue has it; the
		// default (at-most-once) may drop it. RabbitMQ requires reject-publish overflow for it.
		"x-dead-letter-strategy": "at-least-once",
		"x-overflow":             "reject-publish",
	}
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		return fmt.Errorf("rabbitmq: declare queue %q: %w", name, err)
	}
	for _, key := range bindings {
		if key == "" {
			return fmt.Errorf("rabbitmq: declare queue %q: empty binding key: use \"#\" to receive every event", name)
		}
		if err := ch.QueueBind(name, key, b.opts.Exchange, false, nil); err != nil {
			return fmt.Errorf("rabbitmq: bind queue %q to %q with %q: %w", name, b.opts.Exchange, key, err)
		}
	}
	return nil
}

// QueueDepth returns the number of messages ready for delivery in queue (not counting those delivered
// and awaiting an ack), for metrics and autoscaling.
func (b *Broker) QueueDepth(ctx context.Context, queue string) (int, error) {
	ch, err := b.channel(ctx)
	if err != nil {
		return 0, fmt.Errorf("rabbitmq: queue depth %q: %w", queue, err)
	}
	defer func() { _ = ch.Close() }()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("rabbitmq: queue depth %q: %w", queue, err)
	}
	return q.Messages, nil
}
