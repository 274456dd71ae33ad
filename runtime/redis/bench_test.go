package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/localenv/localenvtest"
	"github.com/omscloud/omscloud/runtime/redis"
)

// BenchmarkCache measures one goroutine's get/set rate per implementation. The raw/* sub-benchmarks are the
// baseline: go-redis straight to the master on the same server, so redis/get ÷ raw/get is this package's
// overhead (timeouts, stats, the sentinel-aware client), and namespace-fetch-hit shows the price of the
// version lookup (two round trips per hit).
func BenchmarkCache(b *testing.B) {
	ctx := context.Background()
	val := make([]byte, 1024)
	r := localenvtest.SharedRedis(b)
	prefix := localenvtest.NewKeyPrefix(b, r)

	raw := goredis.NewClient(&goredis.Options{Addr: r.MasterAddr(), Password: r.Password()})
	b.Cleanup(func() { _ = raw.Close() })
	b.Run("raw/set", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			require.NoError(b, raw.Set(ctx, fmt.Sprint(prefix, "raw", i%1000), val, time.Minute).Err())
		}
		report(b)
	})
	b.Run("raw/get", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			require.NoError(b, raw.Get(ctx, fmt.Sprint(prefix, "raw", i%1000)).Err())
		}
		report(b)
	})

	caches := []struct {
		name string
		c    redis.Cache
	}{
		{"memory", redis.NewMemory(redis.MemoryOptions{})},
		{"redis", openClient(b, r, func(o *redis.Options) { o.KeyPrefix = prefix })},
	}
	for _, c := range caches {
		b.Run(c.name+"/set", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				require.NoError(b, c.c.Set(ctx, fmt.Sprint(prefix, "k", i%1000), val, time.Minute))
			}
			report(b)
		})
		b.Run(c.name+"/get", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				_, ok, err := c.c.Get(ctx, fmt.Sprint(prefix, "k", i%1000))
				require.NoError(b, err)
				require.True(b, ok)
			}
			report(b)
		})
		b.Run(c.name+"/namespace-fetch-hit", func(b *testing.B) {
			ns := c.c.Namespace("bench")
			compute := func(context.Context) ([]byte, error) { return val, nil }
			for i := 0; b.Loop(); i++ {
				_, err := ns.Fetch(ctx, fmt.Sprint("k", i%1000), time.Minute, compute)
				require.NoError(b, err)
			}
			report(b)
		})
	}
}

func report(b *testing.B) { b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s") }
