package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/rabbitmq"
)

func dial(t testing.TB, url string, mod ...func(*rabbitmq.Options)) *rabbitmq.Broker {
	t.Helper()
	opts := rabbitmq.Options{URL: url}
	for _, m := range mod {
		m(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	b, err := rabbitmq.Dial(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func messages(prefix string, n int) []rabbitmq.Message {
	msgs := make([]rabbitmq.Message, n)
	for i := range msgs {
		msgs[i] = rabbitmq.Message{
			ID:         fmt.Sprintf("%s-%04d", prefix, i),
			RoutingKey: "order.created",
			Body:       fmt.Appendf(nil, `{"n":%d}`, i),
			Headers:    map[string]any{"account": "acme"},
		}
	}
	return msgs
}

// collector records deliveries by message ID.
type collector struct {
	mu    sync.Mutex
	seen  map[string][]rabbitmq.Delivery
	count int
	more  chan struct{}
}

func newCollector() *collector {
	return &collector{seen: map[string][]rabbitmq.Delivery{}, more: make(chan struct{}, 1)}
}

func (c *collector) add(d rabbitmq.Delivery) {
	c.mu.Lock()
	c.seen[d.ID] = append(c.seen[d.ID], d)
	c.count++
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// waitIDs waits until every id was seen at least once.
func (c *collector) waitIDs(t *testing.T, ids []string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		missing := 0
		for _, id := range ids {
			if len(c.seen[id]) == 0 {
				missing++
			}
		}
		c.mu.Unlock()
		if missing == 0 {
			return
		}
		select {
		case <-c.more:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%d of %d messages not delivered within %s", missing, len(ids), timeout)
		}
	}
}

func ids(msgs []rabbitmq.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// consume runs Consume in the background. stop cancels it and returns its result; finished is closed when
// Consume has returned, with its result in *result.
func consume(t *testing.T, b *rabbitmq.Broker, queue string, h rabbitmq.Handler) (stop func() error, finished <-chan struct{}, result *error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	fin := make(chan struct{})
	var err error
	go func() { defer close(fin); err = b.Consume(ctx, queue, 10, h) }()
	stop = func() error {
		cancel()
		select {
		case <-fin:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("Consume did not return after cancel")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return stop, fin, &err
}

func waitDepth(t *testing.T, b *rabbitmq.Broker, queue string, want int) {
	t.Helper()
	ctx := context.Background()
	var got int
	var err error
	require.Eventually(t, func() bool {
		got, err = b.QueueDepth(ctx, queue)
		return err == nil && got == want
	}, 15*time.Second, 100*time.Millisecond, "queue %s depth: got %d (err %v), want %d", queue, got, err, want)
}

func TestConfirmedPublishSurvivesBrokerRestart(t *testing.T) {
	env := rabbitCluster(t)
	b := dial(t, env.vhostURL(t))
	ctx := context.Background()
	require.NoError(t, b.DeclareQueue(ctx, "orders", []string{"order.*"}))

	msgs := messages("durable", 200)
	require.NoError(t, b.Publish(ctx, msgs))
	// Routed elsewhere: must not show up in "orders".
	require.NoError(t, b.Publish(ctx, []rabbitmq.Message{{ID: "x", RoutingKey: "stock.changed", Body: []byte("{}")}}))
	waitDepth(t, b, "orders", len(msgs))

	env.kill(t)
	require.Eventually(t, func() bool { return b.Ping(ctx) != nil }, 10*time.Second, 50*time.Millisecond,
		"Ping must fail while the broker is down")
	env.restart(t)

	// The same Broker reconnects by itself; everything confirmed before the crash is still there.
	c := newCollector()
	_, _, _ = consume(t, b, "orders", func(_ context.Context, d rabbitmq.Delivery) error { c.add(d); return nil })
	c.waitIDs(t, ids(msgs), 30*time.Second)
	require.NoError(t, b.Ping(ctx))

	c.mu.Lock()
	defer c.mu.Unlock()
	assert.Len(t, c.seen, len(msgs), "only order.* messages, each once")
	d := c.seen["durable-0007"][0]
	assert.Equal(t, `{"n":7}`, string(d.Body))
	assert.Equal(t, "order.created", d.RoutingKey)
	assert.Equal(t, "acme", d.Headers["account"])
	assert.False(t, d.Timestamp.IsZero())
}

func TestPublishFailsWhenBrokerIsDown(t *testing.T) {
	env := rabbitCluster(t)
	b := dial(t, env.vhostURL(t))
	ctx := context.Background()
	require.NoError(t, b.DeclareQueue(ctx, "orders", []string{"#"}))

	env.kill(t)
	t.Cleanup(func() { env.restart(t) })
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	err := b.Publish(pctx, messages("down", 3))
	require.Error(t, err)
	assert.ErrorIs(t, err, rabbitmq.ErrNotConnected)
	assert.Less(t, time.Since(start), 5*time.Second, "Publish must honour the context deadline")
	assert.ErrorIs(t, b.Ping(ctx), rabbitmq.ErrNotConnected)
}

func TestPublishNackedIsError(t *testing.T) {
	env := rabbit(t)
	url := env.vhostURL(t)
	b := dial(t, url)
	ctx := context.Background()

	// A queue that holds one message and rejects (nacks) further publishes: the broker's way of refusing
	// responsibility, which Publish must report instead of treating as delivered.
	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDeclare("full", true, false, false, false, amqp.Table{
		"x-queue-type": "classic", "x-max-length": int64(1), "x-overflow": "reject-publish"})
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind("full", "full.#", "oms.events", false, nil))

	require.NoError(t, b.Publish(ctx, []rabbitmq.Message{{ID: "a", RoutingKey: "full.x"}}))
	waitDepth(t, b, "full", 1)
	err = b.Publish(ctx, []rabbitmq.Message{{ID: "b", RoutingKey: "full.x"}, {ID: "c", RoutingKey: "full.x"}})
	require.ErrorIs(t, err, rabbitmq.ErrNacked)
	assert.Contains(t, err.Error(), "rejected 2 of 2")

	// The channel stays usable for the next batch.
	require.NoError(t, b.Publish(ctx, []rabbitmq.Message{{ID: "d", RoutingKey: "other"}}))
}

func TestHandlerErrorRedeliversAndSuccessAcksOnce(t *testing.T) {
	env := rabbit(t)
	b := dial(t, env.vhostURL(t))
	ctx := context.Background()
	require.NoError(t, b.DeclareQueue(ctx, "work", []string{"order.*"}))
	msgs := messages("ack", 20)
	require.NoError(t, b.Publish(ctx, msgs))

	var mu sync.Mutex
	calls := map[string][]bool{} // per ID: Redelivered flag of each call
	okCalls := map[string]int{}
	c := newCollector()
	stop, _, _ := consume(t, b, "work", func(_ context.Context, d rabbitmq.Delivery) error {
		mu.Lock()
		calls[d.ID] = append(calls[d.ID], d.Redelivered)
		n := len(calls[d.ID])
		failFirst := d.ID == "ack-0003" || d.ID == "ack-0011"
		if failFirst && n == 1 {
			mu.Unlock()
			return errors.New("transient failure")
		}
		okCalls[d.ID]++
		mu.Unlock()
		c.add(d)
		return nil
	})
	c.waitIDs(t, ids(msgs), 20*time.Second)
	// Give a wrongly unacked or double-delivered message time to show up.
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, stop())

	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids(msgs) {
		assert.Equal(t, 1, okCalls[id], "message %s handled successfully exactly once", id)
	}
	assert.Equal(t, []bool{false, true}, calls["ack-0003"], "failed message redelivered with Redelivered set")
	assert.Equal(t, []bool{false, true}, calls["ack-0011"])
	assert.Equal(t, []bool{false}, calls["ack-0000"])
	// The consumer's channel is closed now: anything not acked would be back in the queue.
	waitDepth(t, b, "work", 0)
}

func TestPoisonMessageIsDeadLettered(t *testing.T) {
	env := rabbit(t)
	b := dial(t, env.vhostURL(t), func(o *rabbitmq.Options) { o.DeliveryLimit = 2 })
	ctx := context.Background()
	require.NoError(t, b.DeclareQueue(ctx, "work", []string{"order.*"}))
	require.NoError(t, b.Publish(ctx, []rabbitmq.Message{
		{ID: "poison", RoutingKey: "order.created", Body: []byte("garbage")},
		{ID: "fine", RoutingKey: "order.created", Body: []byte("{}")},
	}))

	var mu sync.Mutex
	attempts := map[string]int{}
	_, _, _ = consume(t, b, "work", func(_ context.Context, d rabbitmq.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[d.ID]++
		if d.ID == "poison" {
			return errors.New("cannot parse")
		}
		return nil
	})
	waitDepth(t, b, rabbitmq.DeadLetterQueue("work"), 1)
	waitDepth(t, b, "work", 0)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 1, attempts["fine"])
	assert.GreaterOrEqual(t, attempts["poison"], 2)
	assert.LessOrEqual(t, attempts["poison"], 3, "delivery limit 2 stops the loop")
}

func TestConsumerResumesAfterBrokerRestart(t *testing.T) {
	env := rabbitCluster(t)
	b := dial(t, env.vhostURL(t))
	ctx := context.Background()
	require.NoError(t, b.DeclareQueue(ctx, "work", []string{"order.*"}))

	c := newCollector()
	stop, finished, result := consume(t, b, "work", func(_ context.Context, d rabbitmq.Delivery) error { c.add(d); return nil })
	before := messages("before", 50)
	require.NoError(t, b.Publish(ctx, before))
	c.waitIDs(t, ids(before), 15*time.Second)

	env.kill(t)
	env.restart(t)
	restarted := time.Now()

	after := messages("after", 50)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, b.Publish(pctx, after), "Publish waits for the reconnect")
	c.waitIDs(t, ids(after), 30*time.Second)
	t.Logf("consumer resumed %s after the broker was back", time.Since(restarted).Round(time.Millisecond))
	select {
	case <-finished:
		t.Fatalf("Consume returned during the outage: %v", *result)
	default:
	}
	require.NoError(t, stop(), "Consume returns nil when its context ends")
}

func TestCloseEndsEverything(t *testing.T) {
	env := rabbit(t)
	b := dial(t, env.vhostURL(t))
	ctx := context.Background()
	require.NoError(t, b.DeclareQueue(ctx, "work", []string{"#"}))
	_, finished, result := consume(t, b, "work", func(context.Context, rabbitmq.Delivery) error { return nil })
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, b.Close())
	select {
	case <-finished:
		assert.ErrorIs(t, *result, rabbitmq.ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Consume still running after Close")
	}
	assert.ErrorIs(t, b.Publish(ctx, messages("closed", 1)), rabbitmq.ErrClosed)
	assert.ErrorIs(t, b.Ping(ctx), rabbitmq.ErrClosed)
}

func TestConsumeUnknownQueueFails(t *testing.T) {
	env := rabbit(t)
	b := dial(t, env.vhostURL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := b.Consume(ctx, "nope", 1, func(context.Context, rabbitmq.Delivery) error { return nil })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "NOT_FOUND")
}

func TestBadInputIsRejected(t *testing.T) {
	ctx := context.Background()
	_, err := rabbitmq.Dial(ctx, rabbitmq.Options{})
	assert.ErrorContains(t, err, "Options.URL is empty")
	_, err = rabbitmq.Dial(ctx, rabbitmq.Options{URL: "http://u:s3cret@host/"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Options.URL")
	assert.NotContains(t, err.Error(), "s3cret")
	_, err = rabbitmq.Dial(ctx, rabbitmq.Options{URL: "amqp://u:s3cret@127.0.0.1:1/", DeliveryLimit: -1})
	assert.ErrorContains(t, err, "DeliveryLimit")
	// Nothing listens on port 1: the dial error names the host but not the password.
	_, err = rabbitmq.Dial(ctx, rabbitmq.Options{URL: "amqp://u:s3cret@127.0.0.1:1/"})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")

	env := rabbit(t)
	b := dial(t, env.vhostURL(t))
	assert.ErrorContains(t, b.Publish(ctx, []rabbitmq.Message{{RoutingKey: "a"}}), "ID is empty")
	assert.ErrorContains(t, b.Publish(ctx, []rabbitmq.Message{{ID: "a"}}), "RoutingKey is empty")
	assert.ErrorContains(t, b.Publish(ctx, []rabbitmq.Message{{ID: "a", RoutingKey: "k", Headers: map[string]any{"bad": struct{}{}}}}), "Headers")
	assert.ErrorContains(t, b.DeclareQueue(ctx, "q", nil), "bindings is empty")
	assert.ErrorContains(t, b.Consume(ctx, "q", 0, func(context.Context, rabbitmq.Delivery) error { return nil }), "prefetch")
}
