package rabbitmq_test

import (
	"context"
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/rabbitmq"
)

// BenchmarkPublishConfirm measures confirmed publishes into a quorum queue on the shared node. The
// raw-driver sub-benchmark is the baseline: the same batches through amqp091 directly, so
// broker/batch=N ÷ raw/batch=N is this package's overhead and batch=1 ÷ batch=100 the cost of not batching.
func BenchmarkPublishConfirm(b *testing.B) {
	e := rabbit(b)
	ctx := context.Background()
	br := dial(b, e.url)
	require.NoError(b, br.DeclareQueue(ctx, "bench", []string{"bench.#"}))
	body := make([]byte, 512)
	// Each sub-benchmark starts from an empty queue, so a later one does not pay for a longer queue.
	purge := func(b *testing.B) {
		conn, err := amqp.Dial(e.url)
		require.NoError(b, err)
		defer conn.Close()
		ch, err := conn.Channel()
		require.NoError(b, err)
		_, err = ch.QueuePurge("bench", false)
		require.NoError(b, err)
	}

	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("raw/batch=%d", batch), func(b *testing.B) {
			purge(b)
			conn, err := amqp.Dial(e.url)
			require.NoError(b, err)
			defer conn.Close()
			ch, err := conn.Channel()
			require.NoError(b, err)
			require.NoError(b, ch.Confirm(false))
			b.ResetTimer()
			for sent := 0; sent < b.N; {
				n := min(batch, b.N-sent)
				dcs := make([]*amqp.DeferredConfirmation, n)
				for i := range dcs {
					dcs[i], err = ch.PublishWithDeferredConfirm("oms.events", "bench.raw", false, false,
						amqp.Publishing{DeliveryMode: amqp.Persistent, MessageId: fmt.Sprint(sent + i), Body: body})
					require.NoError(b, err)
				}
				for _, dc := range dcs {
					require.True(b, dc.Wait())
				}
				sent += n
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
		b.Run(fmt.Sprintf("broker/batch=%d", batch), func(b *testing.B) {
			purge(b)
			msgs := make([]rabbitmq.Message, batch)
			b.ResetTimer()
			for sent := 0; sent < b.N; {
				n := min(batch, b.N-sent)
				for i := range msgs[:n] {
					msgs[i] = rabbitmq.Message{ID: fmt.Sprint(sent + i), RoutingKey: "bench.broker", Body: body}
				}
				require.NoError(b, br.Publish(ctx, msgs[:n]))
				sent += n
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
