// Package redis is the OMS cache: a small key-value contract (Cache) with two implementations — Client,
// Redis behind Sentinel that follows a failover by itself, and Memory, a bounded in-process cache for
// `oms dev` — plus per-account namespaces that one counter increment invalidates. A cache is an
// optimisation: callers treat every error as a miss and never fail a request because of it.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Cache is the contract both implementations satisfy. Errors are returned so callers can log and count
// them, but a cache error must only ever turn into a miss. Only this package implements it (see
// getVersioned); use Memory as the test double.
type Cache interface {
	// Get returns the value at key; ok is false when it is absent or expired.
	Get(ctx context.Context, key string) (val []byte, ok bool, err error)
	// Set stores val at key for ttl (which must be positive: nothing is cached forever).
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	// Counter returns the counter at key. An absent counter is first set to the current Unix time in
	// microseconds, so a counter that was lost (evicted, or dropped in a failover) restarts above every
	// value it had before instead of at 0.
	Counter(ctx context.Context, key string) (int64, error)
	// Incr increments the counter at key (initialised like Counter) and returns the new value.
	Incr(ctx context.Context, key string) (int64, error)
	// Namespace returns the key space of one account.
	Namespace(account string) Namespace
	// Stats returns counters for metrics.
	Stats() Stats
	Ping(ctx context.Context) error
	Close() error

	// getVersioned reads a namespace's version counter at verKey (created like Counter) and the key
	// base+version+":"+key under it in one atomic step — one round trip for Redis instead of two.
	getVersioned(ctx context.Context, verKey, base, key string) (version int64, val []byte, ok bool, err error)
}

// Stats counts cache outcomes since start. Errors includes failed writes and counter operations.
type Stats struct {
	Hits, Misses, Errors uint64
}

type stats struct{ hits, misses, errors atomic.Uint64 }

func (s *stats) snapshot() Stats {
	return Stats{Hits: s.hits.Load(), Misses: s.misses.Load(), Errors: s.errors.Load()}
}

// countGet records the outcome of a Get.
func (s *stats) countGet(ok bool, err error) {
	switch {
	case err != nil:
		s.errors.Add(1)
	case ok:
		s.hits.Add(1)
	default:
		s.misses.Add(1)
	}
}

func (s *stats) countErr(err error) error {
	if err != nil {
		s.errors.Add(1)
	}
	return err
}

// ErrInvalidTTL is returned by Set for a ttl that is not positive.
var ErrInvalidTTL = errors.New("redis: ttl must be positive: every cached value needs an expiry")

// DefaultKeyPrefix starts every key of Namespace.
const DefaultKeyPrefix = "oms:"

// Namespace is the key space of one account: keys are "<prefix>{<account>}:v<N>:<key>", where N is the
// account's version counter "<prefix>{<account>}:ver". Bump increments N, which makes every key of the
// account unreachable at once (the old ones expire by their TTL) and touches no other account. The braces
// make the account a Redis Cluster hash tag, so an account's keys share one slot.
type Namespace struct {
	c       Cache
	account string
	base    string // "<prefix>{<escaped account>}:"
	log     *slog.Logger
	logged  *atomic.Int64 // unix nanos of the last logged cache error, shared per cache
}

func newNamespace(c Cache, prefix, account string, log *slog.Logger, logged *atomic.Int64) Namespace {
	return Namespace{c: c, account: account, base: prefix + "{" + escapeAccount(account) + "}:", log: log, logged: logged}
}

// escapeAccount keeps account ids from forging another account's prefix (an id containing "}" or "{").
func escapeAccount(a string) string {
	if !strings.ContainsAny(a, "%{}") {
		return a
	}
	return strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D").Replace(a)
}

// Account returns the account the namespace belongs to.
func (n Namespace) Account() string { return n.account }

// View pins the namespace's current version. Read-through caching must Get and Set through one View taken
// before reading the source of truth: a value computed from data that a concurrent write then changed is
// stored under the version that write's Bump retired, where no reader looks again.
func (n Namespace) View(ctx context.Context) (View, error) {
	v, err := n.c.Counter(ctx, n.base+"ver")
	if err != nil {
		return View{}, fmt.Errorf("redis: namespace %q version: %w", n.account, err)
	}
	return n.view(v), nil
}

// Bump invalidates every key of the account. Call it after committing a change the cached values depend
// on (inventory, reservations).
func (n Namespace) Bump(ctx context.Context) error {
	if _, err := n.c.Incr(ctx, n.base+"ver"); err != nil {
		return fmt.Errorf("redis: namespace %q bump: %w", n.account, err)
	}
	return nil
}

// Get reads key at the current version.
func (n Namespace) Get(ctx context.Context, key string) ([]byte, bool, error) {
	_, val, ok, err := n.lookup(ctx, key)
	return val, ok, err
}

// lookup reads the current version and key under it in one step and returns the view of that version.
func (n Namespace) lookup(ctx context.Context, key string) (View, []byte, bool, error) {
	v, val, hit, err := n.c.getVersioned(ctx, n.base+"ver", n.base+"v", key)
	if err != nil {
		return View{}, nil, false, fmt.Errorf("redis: namespace %q get: %w", n.account, err)
	}
	return n.view(v), val, hit, nil
}

func (n Namespace) view(version int64) View {
	return View{c: n.c, version: version, prefix: n.base + "v" + strconv.FormatInt(version, 10) + ":"}
}

// Set writes key at the current version. For a value derived from data read earlier, use View or Fetch so
// the value cannot outlive a Bump that happened in between.
func (n Namespace) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	v, err := n.View(ctx)
	if err != nil {
		return err
	}
	return v.Set(ctx, key, val, ttl)
}

// Fetch is read-through caching done right: it returns the cached value of key, or calls compute, caches
// its result for ttl under the version read before compute ran, and returns it. Cache errors are never
// returned — they degrade to calling compute — but are counted in Stats and logged at most every 10s.
// compute's error is returned as is and nothing is cached.
func (n Namespace) Fetch(ctx context.Context, key string, ttl time.Duration, compute func(context.Context) ([]byte, error)) ([]byte, error) {
	view, val, ok, err := n.lookup(ctx, key)
	if err != nil {
		n.logErr(err)
	}
	if ok {
		return val, nil
	}
	val, err = compute(ctx)
	if err != nil {
		return nil, err
	}
	if view.c == nil {
		return val, nil // the version could not be read: nothing safe to cache under
	}
	if err := view.Set(ctx, key, val, ttl); err != nil {
		n.logErr(err)
	}
	return val, nil
}

// logErr logs a cache error, at most once per 10s per cache: during an outage every request fails the same
// way, and the Errors counter carries the rate.
func (n Namespace) logErr(err error) {
	if n.log == nil || n.logged == nil {
		return
	}
	now, last := time.Now().UnixNano(), n.logged.Load()
	if now-last < int64(10*time.Second) || !n.logged.CompareAndSwap(last, now) {
		return
	}
	n.log.Warn("cache error, serving without cache", "account", n.account, "err", err)
}

// View is a namespace at one version.
type View struct {
	c       Cache
	version int64
	prefix  string
}

// Version is the namespace version the view reads and writes.
func (v View) Version() int64 { return v.version }

// Key returns the full cache key of key in this view.
func (v View) Key(key string) string { return v.prefix + key }

func (v View) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if v.c == nil {
		return nil, false, errors.New("redis: zero View: take one with Namespace.View")
	}
	return v.c.Get(ctx, v.prefix+key)
}

func (v View) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if v.c == nil {
		return errors.New("redis: zero View: take one with Namespace.View")
	}
	return v.c.Set(ctx, v.prefix+key, val, ttl)
}

// initialCounter is where a new or lost counter starts; see Cache.Counter.
func initialCounter() int64 { return time.Now().UnixMicro() }
