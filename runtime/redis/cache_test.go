package redis_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/localenv"
	"github.com/omscloud/omscloud/runtime/localenv/localenvtest"
	"github.com/omscloud/omscloud/runtime/redis"
)

func TestMain(m *testing.M) { os.Exit(localenvtest.RunTests(m)) }

// impl is one Cache implementation under the shared contract; prefix isolates the test's raw keys.
type impl struct {
	name string
	open func(t testing.TB) (c redis.Cache, prefix string)
}

var impls = []impl{
	{"memory", func(t testing.TB) (redis.Cache, string) {
		c := redis.NewMemory(redis.MemoryOptions{})
		t.Cleanup(func() { _ = c.Close() })
		return c, ""
	}},
	{"redis", func(t testing.TB) (redis.Cache, string) {
		r := localenvtest.SharedRedis(t)
		prefix := localenvtest.NewKeyPrefix(t, r)
		return openClient(t, r, func(o *redis.Options) { o.KeyPrefix = prefix }), prefix
	}},
}

func openClient(t testing.TB, r *localenv.Redis, mod ...func(*redis.Options)) *redis.Client {
	t.Helper()
	opts := redis.Options{Sentinels: r.SentinelAddrs(), MasterName: r.MasterName(), Password: r.Password()}
	for _, m := range mod {
		m(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := redis.Open(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// eachImpl runs the contract test f against every implementation.
func eachImpl(t *testing.T, f func(t *testing.T, c redis.Cache, prefix string)) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			c, prefix := im.open(t)
			f(t, c, prefix)
		})
	}
}

func TestGetSet(t *testing.T) {
	eachImpl(t, func(t *testing.T, c redis.Cache, p string) {
		ctx := context.Background()
		_, ok, err := c.Get(ctx, p+"k")
		require.NoError(t, err)
		assert.False(t, ok, "absent key is a miss")

		val := []byte("v1")
		require.NoError(t, c.Set(ctx, p+"k", val, time.Minute))
		val[0] = 'X' // the cache holds its own copy
		got, ok, err := c.Get(ctx, p+"k")
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, "v1", string(got))
		got[0] = 'Y'
		got, _, _ = c.Get(ctx, p+"k")
		assert.Equal(t, "v1", string(got))

		require.NoError(t, c.Set(ctx, p+"k", []byte("v2"), time.Minute))
		got, _, _ = c.Get(ctx, p+"k")
		assert.Equal(t, "v2", string(got), "Set overwrites")

		require.NoError(t, c.Set(ctx, p+"empty", []byte{}, time.Minute))
		got, ok, _ = c.Get(ctx, p+"empty")
		assert.True(t, ok, "an empty value is a hit")
		assert.Empty(t, got)

		assert.Equal(t, redis.Stats{Hits: 4, Misses: 1}, c.Stats())
		assert.ErrorIs(t, c.Set(ctx, p+"k", []byte("v"), 0), redis.ErrInvalidTTL)
		assert.Equal(t, uint64(1), c.Stats().Errors)
		require.NoError(t, c.Ping(ctx))
	})
}

func TestTTL(t *testing.T) {
	eachImpl(t, func(t *testing.T, c redis.Cache, p string) {
		ctx := context.Background()
		require.NoError(t, c.Set(ctx, p+"short", []byte("x"), 300*time.Millisecond))
		require.NoError(t, c.Set(ctx, p+"long", []byte("y"), time.Minute))
		_, ok, _ := c.Get(ctx, p+"short")
		require.True(t, ok)
		time.Sleep(450 * time.Millisecond)
		_, ok, err := c.Get(ctx, p+"short")
		require.NoError(t, err)
		assert.False(t, ok, "expired after its TTL")
		_, ok, _ = c.Get(ctx, p+"long")
		assert.True(t, ok)
	})
}

func TestCounter(t *testing.T) {
	eachImpl(t, func(t *testing.T, c redis.Cache, p string) {
		ctx := context.Background()
		before := time.Now().UnixMicro()
		n, err := c.Counter(ctx, p+"ctr")
		require.NoError(t, err)
		// A new counter starts at the current time in microseconds, above any value a lost counter had.
		assert.GreaterOrEqual(t, n, before)
		assert.LessOrEqual(t, n, time.Now().UnixMicro())
		again, err := c.Counter(ctx, p+"ctr")
		require.NoError(t, err)
		assert.Equal(t, n, again, "Counter does not change the counter")

		const workers, each = 8, 25
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range each {
					_, err := c.Incr(ctx, p+"ctr")
					assert.NoError(t, err)
				}
			})
		}
		wg.Wait()
		final, err := c.Counter(ctx, p+"ctr")
		require.NoError(t, err)
		assert.Equal(t, n+workers*each, final, "concurrent increments are not lost")

		fresh, err := c.Incr(ctx, p+"fresh")
		require.NoError(t, err)
		assert.GreaterOrEqual(t, fresh, before+1, "Incr of an absent counter starts from the time too")
	})
}

func TestNamespacesAreIsolated(t *testing.T) {
	eachImpl(t, func(t *testing.T, c redis.Cache, _ string) {
		ctx := context.Background()
		acme, globex := c.Namespace(t.Name()+"acme"), c.Namespace(t.Name()+"globex")
		require.NoError(t, acme.Set(ctx, "avail:sku1", []byte("acme-1"), time.Minute))
		require.NoError(t, globex.Set(ctx, "avail:sku1", []byte("globex-1"), time.Minute))
		require.NoError(t, globex.Set(ctx, "avail:sku2", []byte("globex-2"), time.Minute))

		get := func(ns redis.Namespace, key string) string {
			v, ok, err := ns.Get(ctx, key)
			require.NoError(t, err)
			if !ok {
				return "<miss>"
			}
			return string(v)
		}
		assert.Equal(t, "acme-1", get(acme, "avail:sku1"))
		assert.Equal(t, "globex-1", get(globex, "avail:sku1"), "same key, other account, other value")
		assert.Equal(t, "<miss>", get(acme, "avail:sku2"), "an account never sees another's keys")

		require.NoError(t, acme.Bump(ctx))
		assert.Equal(t, "<miss>", get(acme, "avail:sku1"), "Bump invalidates the account")
		assert.Equal(t, "globex-1", get(globex, "avail:sku1"), "and only that account")
		assert.Equal(t, "globex-2", get(globex, "avail:sku2"))
		require.NoError(t, acme.Set(ctx, "avail:sku1", []byte("acme-2"), time.Minute))
		assert.Equal(t, "acme-2", get(acme, "avail:sku1"), "the new version is usable at once")

		// Account ids cannot forge another account's key prefix.
		av, err := c.Namespace("a").View(ctx)
		require.NoError(t, err)
		bv, err := c.Namespace("a}:v1").View(ctx)
		require.NoError(t, err)
		assert.Contains(t, av.Key("k"), "{a}:v")
		assert.Contains(t, bv.Key("k"), "{a%7D:v1}:v")
	})
}

func TestFetchDoesNotCacheAcrossABump(t *testing.T) {
	eachImpl(t, func(t *testing.T, c redis.Cache, _ string) {
		ctx := context.Background()
		ns := c.Namespace(t.Name() + "acme")
		calls := 0
		stock := "10"
		compute := func(context.Context) ([]byte, error) { calls++; return []byte(stock), nil }

		v, err := ns.Fetch(ctx, "avail", time.Minute, compute)
		require.NoError(t, err)
		assert.Equal(t, "10", string(v))
		v, err = ns.Fetch(ctx, "avail", time.Minute, compute)
		require.NoError(t, err)
		assert.Equal(t, "10", string(v))
		assert.Equal(t, 1, calls, "second Fetch is served from cache")

		// A reader computes from old data while a writer commits and bumps: the reader's late Set lands
		// under the retired version and is never served.
		view, err := ns.View(ctx)
		require.NoError(t, err)
		stale := []byte("10")
		stock = "3"
		require.NoError(t, ns.Bump(ctx))
		require.NoError(t, view.Set(ctx, "avail", stale, time.Minute))
		v, err = ns.Fetch(ctx, "avail", time.Minute, compute)
		require.NoError(t, err)
		assert.Equal(t, "3", string(v), "the value computed before the Bump is not served after it")
		assert.Equal(t, 2, calls)

		boom := errors.New("db down")
		_, err = ns.Fetch(ctx, "other", time.Minute, func(context.Context) ([]byte, error) { return nil, boom })
		assert.ErrorIs(t, err, boom, "compute errors are returned")
		_, ok, err := ns.Get(ctx, "other")
		require.NoError(t, err)
		assert.False(t, ok, "and nothing is cached for them")
	})
}

func TestMemoryIsBounded(t *testing.T) {
	ctx := context.Background()
	m := redis.NewMemory(redis.MemoryOptions{MaxEntries: 100})
	for i := range 1000 {
		require.NoError(t, m.Set(ctx, fmt.Sprint("k", i), []byte("v"), time.Minute))
		// Keep k0 recently used: least-recently-used eviction must spare it.
		_, ok, _ := m.Get(ctx, "k0")
		require.True(t, ok, "k0 evicted at i=%d", i)
	}
	assert.Equal(t, 100, m.Len())
	_, ok, _ := m.Get(ctx, "k999")
	assert.True(t, ok, "newest entry kept")
	_, ok, _ = m.Get(ctx, "k500")
	assert.False(t, ok, "old entries evicted")

	b := redis.NewMemory(redis.MemoryOptions{MaxBytes: 1000})
	for i := range 100 {
		require.NoError(t, b.Set(ctx, fmt.Sprintf("k%02d", i), make([]byte, 97), time.Minute)) // 100 bytes each
	}
	assert.Equal(t, 10, b.Len(), "MaxBytes bounds the total size")
	assert.Error(t, b.Set(ctx, "huge", make([]byte, 2000), time.Minute), "a value above MaxBytes is refused")
}

func TestMemoryConcurrentUse(t *testing.T) {
	ctx := context.Background()
	m := redis.NewMemory(redis.MemoryOptions{MaxEntries: 50})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			ns := m.Namespace(fmt.Sprint("acct", w%2))
			for i := range 500 {
				key := fmt.Sprint("k", i%80)
				_, _ = ns.Fetch(ctx, key, time.Minute, func(context.Context) ([]byte, error) { return []byte(key), nil })
				if i%50 == 0 {
					assert.NoError(t, ns.Bump(ctx))
				}
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, m.Len(), 50)
	s := m.Stats()
	assert.Equal(t, uint64(8*500), s.Hits+s.Misses)
}

func TestCacheErrorsNeverFailARequest(t *testing.T) {
	r := localenvtest.SharedRedis(t)
	c := openClient(t, r, func(o *redis.Options) { o.KeyPrefix = localenvtest.NewKeyPrefix(t, r) })
	ns := c.Namespace("acme")
	require.NoError(t, c.Close()) // every cache operation fails from now on

	ctx := context.Background()
	v, err := ns.Fetch(ctx, "avail", time.Minute, func(context.Context) ([]byte, error) { return []byte("fresh"), nil })
	require.NoError(t, err, "a broken cache degrades to computing")
	assert.Equal(t, "fresh", string(v))
	assert.Positive(t, c.Stats().Errors, "and the failure is counted for metrics")
	_, ok, err := ns.Get(ctx, "avail")
	assert.Error(t, err)
	assert.False(t, ok)
	assert.Error(t, c.Ping(ctx))
}

func TestOpenRejectsBadOptions(t *testing.T) {
	ctx := context.Background()
	_, err := redis.Open(ctx, redis.Options{MasterName: "oms"})
	assert.ErrorContains(t, err, "Options.Sentinels")
	_, err = redis.Open(ctx, redis.Options{Sentinels: []string{"127.0.0.1:1"}})
	assert.ErrorContains(t, err, "Options.MasterName")
	_, err = redis.Open(ctx, redis.Options{Sentinels: []string{"127.0.0.1:1"}, MasterName: "oms", WaitReplicas: -1})
	assert.ErrorContains(t, err, "Options.WaitReplicas")

	start := time.Now()
	_, err = redis.Open(ctx, redis.Options{Sentinels: []string{"127.0.0.1:1"}, MasterName: "oms", Password: "s3cret"})
	require.Error(t, err, "nothing listens on port 1")
	assert.NotContains(t, err.Error(), "s3cret")
	assert.Less(t, time.Since(start), 5*time.Second, "an unreachable Redis fails fast")
}

// TestOpenAuthenticatesToSentinels: the sentinels require the password, as components/redis renders them.
// SentinelPassword defaults to Password; a wrong one is ErrAuth.
func TestOpenAuthenticatesToSentinels(t *testing.T) {
	r := localenvtest.SharedRedis(t)
	openClient(t, r) // Password only
	_, err := redis.Open(t.Context(), redis.Options{Sentinels: r.SentinelAddrs(), MasterName: r.MasterName(),
		Password: r.Password(), SentinelPassword: "wrong-sentinel-password"})
	require.ErrorIs(t, err, redis.ErrAuth)
	assert.NotContains(t, err.Error(), "wrong-sentinel-password")
}

func TestFollowsSentinelFailover(t *testing.T) {
	localenvtest.RequireBinaries(t, localenvtest.RedisBinaries...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := localenv.StartRedis(ctx, localenv.RedisOptions{Dir: t.TempDir(), MasterName: "oms-failover",
		Password: "failover-test-pw", Logger: localenvtest.TestLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("redis logs (tail):\n%s", r.LogTail(40))
		}
		_ = r.Stop()
	})

	// WaitReplicas: the Bump below is on the replica before Set returns, so it survives the failover.
	c := openClient(t, r, func(o *redis.Options) { o.WaitReplicas = 1 })
	ns := c.Namespace("acme")
	require.NoError(t, ns.Set(ctx, "avail", []byte("before"), time.Minute))
	require.NoError(t, ns.Bump(ctx))
	view, err := ns.View(ctx)
	require.NoError(t, err)

	old := r.MasterAddr()
	require.NoError(t, r.KillMaster())
	killed := time.Now()

	// Keep using the same client, as a serving process would, until a write and a read succeed.
	var firstOK time.Duration
	failures := 0
	for i := 0; ; i++ {
		key := fmt.Sprint("probe", i)
		err := c.Set(ctx, key, []byte("x"), time.Minute)
		if err == nil {
			var ok bool
			_, ok, err = c.Get(ctx, key)
			if err == nil && !ok {
				err = errors.New("written key not readable")
			}
		}
		if err == nil {
			firstOK = time.Since(killed)
			break
		}
		failures++
		require.Less(t, time.Since(killed), 30*time.Second, "client still failing after 30s: %v", err)
		time.Sleep(50 * time.Millisecond)
	}
	promoted, err := r.WaitFailover(ctx, old)
	require.NoError(t, err)
	t.Logf("redis failover: client writing again %s after kill -9 of the master (%d failed attempts); sentinels agree on %s at %s",
		firstOK.Round(time.Millisecond), failures, promoted, time.Since(killed).Round(time.Millisecond))
	assert.NotEqual(t, old, promoted)
	assert.Less(t, firstOK, 10*time.Second, "failover followed within a few seconds")

	after, err := ns.View(ctx)
	require.NoError(t, err)
	assert.Equal(t, view.Version(), after.Version(), "the acknowledged Bump survived the failover")
	_, ok, err := ns.Get(ctx, "avail")
	require.NoError(t, err)
	assert.False(t, ok, "the value invalidated before the failover stays invalid")
	require.NoError(t, c.Ping(ctx))
}
