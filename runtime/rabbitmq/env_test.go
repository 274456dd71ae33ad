package rabbitmq_test

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omscloud/omscloud/runtime/localenv"
	"github.com/omscloud/omscloud/runtime/localenv/localenvtest"
)

func TestMain(m *testing.M) {
	code := localenvtest.RunTests(m)
	stopCluster()
	os.Exit(code)
}

// rabbit gives the test its own vhost, either on the shared single node or — for tests that kill a node —
// on a 3-node cluster. Kill tests use a cluster because that is the production topology and because a
// single-node RabbitMQ 3.10 sometimes leaves its most recently declared quorum queue without a leader after
// kill -9 (rabbitmq-server#10070), which would test the broker's recovery bug, not this package.
type env struct {
	r   *localenv.RabbitMQ
	url string
}

func rabbit(tb testing.TB) *env {
	tb.Helper()
	r := localenvtest.SharedRabbitMQ(tb)
	return &env{r: r, url: localenvtest.NewVhost(tb, r)}
}

var clusterOnce struct {
	sync.Once
	r    *localenv.RabbitMQ
	dir  string
	err  error
	warm atomic.Bool
}

func rabbitCluster(tb testing.TB) *env {
	tb.Helper()
	if testing.Short() {
		tb.Skip("starting a 3-node RabbitMQ cluster takes ~30s")
	}
	localenvtest.RequireBinaries(tb, localenvtest.RabbitMQBinaries...)
	c := &clusterOnce
	c.Do(func() {
		c.dir, c.err = os.MkdirTemp("", "rabbitmq-test-cluster-")
		if c.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		c.r, c.err = localenv.StartRabbitMQ(ctx, localenv.RabbitMQOptions{Dir: c.dir, Nodes: 3})
	})
	if c.err != nil {
		tb.Fatalf("rabbitmq cluster: %v", c.err)
	}
	if c.warm.CompareAndSwap(false, true) {
		// The first vhost on a freshly formed cluster can take longer than the management client's 10s
		// timeout; PUT is idempotent, so retry it once here before the tests use NewVhost.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for {
			err := c.r.AddVhost(ctx, "warmup")
			if err == nil {
				_ = c.r.DeleteVhost(ctx, "warmup")
				break
			}
			if ctx.Err() != nil {
				tb.Fatalf("rabbitmq cluster: first vhost: %v", err)
			}
			time.Sleep(time.Second)
		}
	}
	return &env{r: c.r, url: localenvtest.NewVhost(tb, c.r)}
}

func stopCluster() {
	if clusterOnce.r != nil {
		_ = clusterOnce.r.Stop()
	}
	if clusterOnce.dir != "" {
		_ = os.RemoveAll(clusterOnce.dir)
	}
}

func (e *env) vhostURL(testing.TB) string { return e.url }

// kill SIGKILLs node 0, the node every test connects to.
func (e *env) kill(tb testing.TB) {
	tb.Helper()
	if err := e.r.Kill(0); err != nil {
		tb.Fatal(err)
	}
}

func (e *env) restart(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.r.Restart(ctx, 0); err != nil {
		tb.Fatal(err)
	}
}
