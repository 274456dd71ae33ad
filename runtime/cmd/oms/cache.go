package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/omscloud/omscloud/runtime/redis"
)

// cache adapts the redis package (Sentinel client or in-process memory) to oms.Cache.
type cache struct {
	c      redis.Cache
	log    *slog.Logger
	logged atomic.Int64
}

func (a *cache) Fetch(ctx context.Context, account, key string, ttl time.Duration, compute func(context.Context) ([]byte, error)) ([]byte, error) {
	return a.c.Namespace(account).Fetch(ctx, key, ttl, compute)
}

// Invalidate bumps the account's namespace version. A failed bump is logged
// (at most every 10s); the TTL bounds how long stale answers can live.
func (a *cache) Invalidate(ctx context.Context, account string) {
	if err := a.c.Namespace(account).Bump(ctx); err != nil {
		now, last := time.Now().UnixNano(), a.logged.Load()
		if now-last > int64(10*time.Second) && a.logged.CompareAndSwap(last, now) {
			a.log.Warn("cache invalidation failed", "account", account, "err", err)
		}
	}
}

// register exports the cache's hit, miss and error counts.
func (a *cache) register(reg prometheus.Registerer) {
	for name, get := range map[string]func(redis.Stats) uint64{
		"hits": func(s redis.Stats) uint64 { return s.Hits }, "misses": func(s redis.Stats) uint64 { return s.Misses },
		"errors": func(s redis.Stats) uint64 { return s.Errors },
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "oms_cache_" + name + "_total", Help: "Availability cache " + name + ".",
		}, func() float64 { return float64(get(a.c.Stats())) }))
	}
}

// openCache returns the availability cache (Redis through Sentinel, or in process) and a close function. It has
// no readiness check: a cache error reads as a miss, so Redis never gates /readyz.
func openCache(ctx context.Context, cfg *config, log *slog.Logger) (*cache, func(), error) {
	if cfg.RedisSentinels == "" {
		log.Info("no --redis-sentinels: caching in process")
		return &cache{c: redis.NewMemory(redis.MemoryOptions{}), log: log}, func() {}, nil
	}
	var sentinels []string
	for _, s := range strings.Split(cfg.RedisSentinels, ",") {
		if s = strings.TrimSpace(s); s != "" {
			sentinels = append(sentinels, s)
		}
	}
	c, err := redis.Open(ctx, redis.Options{Sentinels: sentinels, MasterName: cfg.RedisMaster, Password: cfg.RedisPassword,
		SentinelPassword: cfg.RedisSentinelPassword, KeyPrefix: cfg.RedisKeyPrefix, Logger: log})
	if errors.Is(err, redis.ErrAuth) {
		return nil, nil, fmt.Errorf("%w; set --redis-password/OMS_REDIS_PASSWORD to the password of Redis and its sentinels "+
			"(--redis-sentinel-password/OMS_REDIS_SENTINEL_PASSWORD if the sentinels have another one)", err)
	}
	if err != nil {
		return nil, nil, err
	}
	return &cache{c: c, log: log}, func() { _ = c.Close() }, nil
}
