package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Options configures Open.
type Options struct {
	// Sentinels are the Sentinel addresses (host:port). Required.
	Sentinels []string
	// MasterName is the name the sentinels monitor. Required.
	MasterName string
	// Password authenticates to the Redis servers (requirepass). Optional.
	Password string
	// SentinelPassword authenticates to the sentinels (their requirepass). Default: Password, because
	// components/redis gives the sentinels the Redis password, and a sentinel without requirepass accepts any.
	SentinelPassword string
	DB               int
	// KeyPrefix starts every namespace key. Default DefaultKeyPrefix ("oms:").
	KeyPrefix string
	// Timeout bounds every operation, so a dead master costs a request at most this much before it is
	// served without cache. Default 500ms.
	Timeout time.Duration
	// WaitReplicas makes Incr (and so Namespace.Bump) wait until this many replicas acknowledged the
	// increment (Redis WAIT, bounded by Timeout), so an invalidation survives a failover to a replica;
	// fewer acknowledgements is an error. Default 0: replication is asynchronous and a Bump acknowledged
	// just before the master dies may be lost, leaving stale values readable until their TTL.
	WaitReplicas int
	// Logger receives cache errors (rate-limited). Default slog.Default().
	Logger *slog.Logger
}

// ErrAuth marks an Open that failed because a Redis server or a sentinel refused the password (or wanted one).
var ErrAuth = errors.New("a Redis server or sentinel refused the password")

// Client is a Redis cache behind Sentinel. It asks the sentinels for the master on every new connection,
// so after a failover it reaches the promoted replica without a restart. Safe for concurrent use.
type Client struct {
	rdb    *goredis.Client
	opts   Options
	stats  stats
	logged atomic.Int64
}

var _ Cache = (*Client)(nil)

// Open connects through the sentinels and checks that the master answers.
func Open(ctx context.Context, opts Options) (*Client, error) {
	if len(opts.Sentinels) == 0 {
		return nil, errors.New("redis: Options.Sentinels is empty: list the sentinel addresses, e.g. 10.0.0.5:26379")
	}
	if opts.MasterName == "" {
		return nil, errors.New("redis: Options.MasterName is empty: set it to the name the sentinels monitor (sentinel monitor <name> ...)")
	}
	if opts.DB < 0 {
		return nil, fmt.Errorf("redis: Options.DB is %d: use 0-15", opts.DB)
	}
	if opts.WaitReplicas < 0 {
		return nil, fmt.Errorf("redis: Options.WaitReplicas is %d: use 0 or more", opts.WaitReplicas)
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = DefaultKeyPrefix
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 500 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SentinelPassword == "" {
		opts.SentinelPassword = opts.Password
	}
	opts.Logger = opts.Logger.With("component", "redis", "master", opts.MasterName)
	c := &Client{opts: opts}
	c.rdb = goredis.NewFailoverClient(&goredis.FailoverOptions{
		MasterName:       opts.MasterName,
		SentinelAddrs:    opts.Sentinels,
		Password:         opts.Password,
		SentinelPassword: opts.SentinelPassword,
		DB:               opts.DB,
		DialTimeout:      opts.Timeout,
		ReadTimeout:      opts.Timeout,
		WriteTimeout:     opts.Timeout,
		// One retry rides over a pooled connection to a master that just died; more would spend a
		// request's whole latency budget on a cache.
		MaxRetries:            1,
		ContextTimeoutEnabled: true,
		// RESP2: the cache uses no RESP3 feature, and under RESP3 go-redis checks every reply for pending push
		// notifications (a peek of the socket per command): 9% of oms serve's CPU in the bench's cached mix.
		Protocol: 2,
	})
	if err := c.Ping(ctx); err != nil {
		_ = c.rdb.Close()
		if goredis.IsAuthError(err) {
			err = fmt.Errorf("%w: %w", ErrAuth, err)
		}
		return nil, fmt.Errorf("redis: open (master %q via %d sentinels): %w", opts.MasterName, len(opts.Sentinels), err)
	}
	return c, nil
}

func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.Timeout)
}

func (c *Client) Get(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	val, err := c.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, goredis.Nil) {
		c.stats.countGet(false, nil)
		return nil, false, nil
	}
	if err != nil {
		err = fmt.Errorf("redis: get: %w", err)
	}
	c.stats.countGet(err == nil, err)
	return val, err == nil, err
}

func (c *Client) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return c.stats.countErr(ErrInvalidTTL)
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if err := c.rdb.Set(ctx, key, val, ttl).Err(); err != nil {
		return c.stats.countErr(fmt.Errorf("redis: set: %w", err))
	}
	return nil
}

func (c *Client) Counter(ctx context.Context, key string) (int64, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	init := initialCounter()
	// SET NX GET: one round trip that creates the counter if absent and returns the previous value.
	prev, err := c.rdb.SetArgs(ctx, key, init, goredis.SetArgs{Mode: "NX", Get: true}).Result()
	if errors.Is(err, goredis.Nil) {
		return init, nil
	}
	if err != nil {
		return 0, c.stats.countErr(fmt.Errorf("redis: counter: %w", err))
	}
	n, err := strconv.ParseInt(prev, 10, 64)
	if err != nil {
		return 0, c.stats.countErr(fmt.Errorf("redis: counter %s holds %q, not an integer", key, prev))
	}
	return n, nil
}

func (c *Client) Incr(ctx context.Context, key string) (int64, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	var incr *goredis.IntCmd
	var wait *goredis.Cmd
	_, err := c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.SetNX(ctx, key, initialCounter(), 0)
		incr = p.Incr(ctx, key)
		if c.opts.WaitReplicas > 0 {
			// Leave headroom inside Timeout for the reply.
			wait = p.Do(ctx, "wait", c.opts.WaitReplicas, (c.opts.Timeout * 3 / 4).Milliseconds())
		}
		return nil
	})
	if err != nil {
		return 0, c.stats.countErr(fmt.Errorf("redis: incr: %w", err))
	}
	if wait != nil {
		if acked, _ := wait.Int64(); acked < int64(c.opts.WaitReplicas) {
			return incr.Val(), c.stats.countErr(fmt.Errorf("redis: incr: %d of %d replicas acknowledged within %s", acked, c.opts.WaitReplicas, c.opts.Timeout*3/4))
		}
	}
	return incr.Val(), nil
}

// versionedGet reads a namespace's version (creating it like Counter) and the key under it atomically, in
// one round trip. The data key depends on the version, so it cannot be declared in KEYS; it shares the
// version key's hash tag ({account}), so it lives in the same slot.
var versionedGet = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  v = ARGV[1]
  redis.call('SET', KEYS[1], v)
end
return {v, redis.call('GET', ARGV[2] .. v .. ':' .. ARGV[3])}
`)

func (c *Client) getVersioned(ctx context.Context, verKey, base, key string) (int64, []byte, bool, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	res, err := versionedGet.Run(ctx, c.rdb, []string{verKey}, initialCounter(), base, key).Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("unexpected script reply %v", res)
	}
	if err != nil {
		c.stats.countGet(false, err)
		return 0, nil, false, fmt.Errorf("redis: versioned get: %w", err)
	}
	vs, _ := res[0].(string)
	v, err := strconv.ParseInt(vs, 10, 64)
	if err != nil {
		err = fmt.Errorf("redis: counter %s holds %q, not an integer", verKey, vs)
		c.stats.countGet(false, err)
		return 0, nil, false, err
	}
	val, ok := res[1].(string)
	c.stats.countGet(ok, nil)
	if !ok {
		return v, nil, false, nil
	}
	return v, []byte(val), true, nil
}

func (c *Client) Namespace(account string) Namespace {
	return newNamespace(c, c.opts.KeyPrefix, account, c.opts.Logger, &c.logged)
}

func (c *Client) Stats() Stats { return c.stats.snapshot() }

// Ping checks that the current master answers, for readiness.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: ping: %w", err)
	}
	return nil
}

func (c *Client) Close() error {
	if err := c.rdb.Close(); err != nil {
		return fmt.Errorf("redis: close: %w", err)
	}
	return nil
}
