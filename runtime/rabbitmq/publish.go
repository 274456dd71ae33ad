package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Message is one event on the exchange.
type Message struct {
	// ID becomes the AMQP message-id; consumers deduplicate on it. Required.
	ID string
	// RoutingKey selects the queues through their bindings, e.g. "order.created". Required.
	RoutingKey string
	Body       []byte
	// Headers must hold AMQP table types (string, int*, float*, bool, time.Time, []byte, nested tables).
	Headers map[string]any
	// Timestamp defaults to the time of publishing.
	Timestamp time.Time
}

// Publish sends msgs as persistent messages and returns nil only when the broker has confirmed every one
// of them, i.e. they are durably enqueued in every queue they route to. Any nack, lost connection or
// timeout is an error: the caller (the outbox relay) must keep the rows and retry, and consumers
// deduplicate the resulting repeats by ID. A message that routes to no queue is confirmed and dropped, as
// topic exchanges do; declare queues before publishing.
func (b *Broker) Publish(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	for i, m := range msgs {
		if m.ID == "" {
			return fmt.Errorf("rabbitmq: publish: message %d: ID is empty: set it to the event id, consumers deduplicate on it", i)
		}
		if m.RoutingKey == "" {
			return fmt.Errorf("rabbitmq: publish: message %d (%s): RoutingKey is empty: set it to the event type, e.g. order.created", i, m.ID)
		}
		if err := amqp.Table(m.Headers).Validate(); err != nil {
			return fmt.Errorf("rabbitmq: publish: message %d (%s): Headers: %w (use strings, numbers, bools, time.Time or []byte)", i, m.ID, err)
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.opts.PublishTimeout)
		defer cancel()
	}
	conn, err := b.connection(ctx)
	if err != nil {
		return fmt.Errorf("rabbitmq: publish: %w", err)
	}
	ch, err := b.acquire(conn)
	if err != nil {
		return fmt.Errorf("rabbitmq: publish: %w", err)
	}
	now := time.Now()
	pending := make([]*amqp.DeferredConfirmation, 0, len(msgs))
	for _, m := range msgs {
		ts := m.Timestamp
		if ts.IsZero() {
			ts = now
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, b.opts.Exchange, m.RoutingKey, false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent,
			MessageId:    m.ID,
			Timestamp:    ts,
			Headers:      amqp.Table(m.Headers),
			Body:         m.Body,
		})
		if err != nil {
			_ = ch.Close()
			return fmt.Errorf("rabbitmq: publish %s: %w", m.ID, err)
		}
		pending = append(pending, dc)
	}
	var nacked []string
	for i, dc := range pending {
		ack, err := dc.WaitContext(ctx)
		if err != nil {
			// Late confirms would land on a channel nobody waits on; drop it rather than reuse it.
			_ = ch.Close()
			return fmt.Errorf("rabbitmq: publish: waiting for confirm of %s (%d of %d unconfirmed): %w", msgs[i].ID, len(msgs)-i, len(msgs), err)
		}
		if !ack {
			nacked = append(nacked, msgs[i].ID)
		}
	}
	b.release(conn, ch)
	if len(nacked) > 0 && ch.IsClosed() {
		// The driver nacks everything outstanding when the channel dies.
		return fmt.Errorf("rabbitmq: publish: channel closed before %d of %d messages were confirmed (first %s): %w", len(nacked), len(msgs), nacked[0], ErrNotConnected)
	}
	if len(nacked) > 0 {
		return fmt.Errorf("rabbitmq: publish: broker rejected %d of %d messages (first %s): %w", len(nacked), len(msgs), nacked[0], ErrNacked)
	}
	return nil
}

// ErrNacked is wrapped by Publish when the broker refused to take responsibility for a message.
var ErrNacked = errors.New("rabbitmq: message nacked by broker")

// acquire takes an idle confirm-mode channel of conn, or opens one. Channels are reused because opening
// one and enabling confirms costs two round trips per Publish otherwise.
func (b *Broker) acquire(conn *amqp.Connection) (*amqp.Channel, error) {
	b.mu.Lock()
	for len(b.idle) > 0 && b.conn == conn {
		ch := b.idle[len(b.idle)-1]
		b.idle = b.idle[:len(b.idle)-1]
		if !ch.IsClosed() {
			b.mu.Unlock()
			return ch, nil
		}
	}
	b.mu.Unlock()
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("enable confirms: %w", err)
	}
	return ch, nil
}

func (b *Broker) release(conn *amqp.Connection, ch *amqp.Channel) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == conn && !ch.IsClosed() && len(b.idle) < maxIdleChannels {
		b.idle = append(b.idle, ch)
		return
	}
	_ = ch.Close()
}

const maxIdleChannels = 16
