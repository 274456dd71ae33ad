package systemtest

import (
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/localenv/localenvtest"
	"github.com/omscloud/omscloud/runtime/rabbitmq"
)

func TestMain(m *testing.M) {
	code := localenvtest.RunTests(m)
	omstest.Stop()
	Cleanup()
	os.Exit(code)
}

// tap collects the ids of every message published to the exchange.
type tap struct {
	mu  sync.Mutex
	ids map[string]int
}

func startTap(t *testing.T, amqpURL string) *tap {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := rabbitmq.Dial(ctx, rabbitmq.Options{URL: amqpURL, Logger: localenvtest.TestLogger(t)})
	require.NoError(t, err)
	require.NoError(t, b.DeclareQueue(ctx, "test.tap", []string{"#"}))
	tp := &tap{ids: map[string]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Consume(ctx, "test.tap", 100, func(ctx context.Context, d rabbitmq.Delivery) error {
			tp.mu.Lock()
			tp.ids[d.ID]++
			tp.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done; _ = b.Close() })
	return tp
}

func (tp *tap) has(id string) bool {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.ids[id] > 0
}

// eventually polls cond every 20ms until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
