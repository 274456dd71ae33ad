package main

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/localenv/localenvtest"
	"github.com/omscloud/omscloud/runtime/redis"
	"github.com/omscloud/omscloud/runtime/systemtest"
)

// openCacheWith parses env as `oms serve` does and opens the cache as serve and worker do first thing.
func openCacheWith(t *testing.T, env map[string]string) (*cache, error) {
	t.Helper()
	env["OMS_DATABASE_URL"] = "postgres://unused/oms" // required by serve, not used by the cache
	cfg := parse(t, env, "serve")
	c, closeCache, err := openCache(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Cleanup(closeCache)
	}
	return c, err
}

// TestCacheAuthenticatesToSentinels: the sentinels require the Redis password, as components/redis renders them
// (localenv runs its files); configured as the Deployment configures it, the cache connects through them.
func TestMain(m *testing.M) { os.Exit(localenvtest.RunTests(m)) } // stops the shared Redis

func TestCacheAuthenticatesToSentinels(t *testing.T) {
	localenvtest.RequireBinaries(t, localenvtest.RedisBinaries...)
	rds := localenvtest.SharedRedis(t)
	for name, unset := range map[string]string{
		"as deployed: the sentinel password from the same Secret": "",
		"default: the Redis password":                             "OMS_REDIS_SENTINEL_PASSWORD",
	} {
		t.Run(name, func(t *testing.T) {
			env := systemtest.RedisEnv(rds, localenvtest.NewKeyPrefix(t, rds))
			delete(env, unset)
			c, err := openCacheWith(t, env)
			require.NoError(t, err, "oms serve and oms worker open the cache at start and exit on this error")
			computed := 0
			compute := func(ctx context.Context) ([]byte, error) { computed++; return []byte("42"), nil }
			for range 2 {
				v, err := c.Fetch(t.Context(), "acme", "avail", time.Minute, compute)
				require.NoError(t, err)
				assert.Equal(t, "42", string(v))
			}
			assert.Equal(t, 1, computed, "the second fetch is served from Redis")
		})
	}

	t.Run("a wrong password names the settings, not the password", func(t *testing.T) {
		for _, wrong := range []map[string]string{
			{"OMS_REDIS_SENTINEL_PASSWORD": "not-the-password"},
			{"OMS_REDIS_SENTINEL_PASSWORD": "", "OMS_REDIS_PASSWORD": "not-the-password"}, // the default: both wrong
			{"OMS_REDIS_PASSWORD": "not-the-password"},                                    // the master refuses
		} {
			env := systemtest.RedisEnv(rds, "unused:")
			maps.Copy(env, wrong)
			_, err := openCacheWith(t, env)
			require.ErrorIs(t, err, redis.ErrAuth, "%v", wrong)
			assert.Contains(t, err.Error(), "--redis-password/OMS_REDIS_PASSWORD")
			assert.Contains(t, err.Error(), "--redis-sentinel-password/OMS_REDIS_SENTINEL_PASSWORD")
			assert.NotContains(t, err.Error(), "not-the-password")
			assert.NotContains(t, err.Error(), rds.Password())
		}
	})
}
