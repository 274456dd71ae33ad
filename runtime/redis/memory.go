package redis

import (
	"container/list"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// MemoryOptions bound a Memory cache.
type MemoryOptions struct {
	// MaxEntries caps the number of keys. Default 10,000.
	MaxEntries int
	// MaxBytes caps the sum of key and value sizes. Default 64 MiB.
	MaxBytes int64
}

// Memory is the in-process Cache used when no Redis is configured: least-recently-used eviction within
// MaxEntries and MaxBytes, TTLs honoured on read, safe for concurrent use. It is per process, so it only
// suits a single instance (oms dev).
type Memory struct {
	opts  MemoryOptions
	stats stats

	mu    sync.Mutex
	lru   *list.List // front = most recently used; values are *memEntry
	items map[string]*list.Element
	bytes int64
}

type memEntry struct {
	key     string
	val     []byte
	expires time.Time // zero: no expiry (counters)
}

var _ Cache = (*Memory)(nil)

// NewMemory returns an empty in-process cache.
func NewMemory(opts MemoryOptions) *Memory {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 10_000
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 64 << 20
	}
	return &Memory{opts: opts, lru: list.New(), items: map[string]*list.Element{}}
}

func (m *Memory) Get(_ context.Context, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.live(key)
	if e == nil {
		m.stats.countGet(false, nil)
		return nil, false, nil
	}
	m.stats.countGet(true, nil)
	// A copy: the caller may modify what it gets.
	return append([]byte(nil), e.val...), true, nil
}

// live returns key's unexpired entry and marks it used; an expired entry is removed. Requires m.mu.
func (m *Memory) live(key string) *memEntry {
	el, ok := m.items[key]
	if !ok {
		return nil
	}
	e := el.Value.(*memEntry)
	if !e.expires.IsZero() && !time.Now().Before(e.expires) {
		m.remove(el)
		return nil
	}
	m.lru.MoveToFront(el)
	return e
}

func (m *Memory) Set(_ context.Context, key string, val []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return m.stats.countErr(ErrInvalidTTL)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats.countErr(m.put(key, append([]byte(nil), val...), time.Now().Add(ttl)))
}

// put stores an entry and evicts least-recently-used ones until the bounds hold. Requires m.mu.
func (m *Memory) put(key string, val []byte, expires time.Time) error {
	size := entrySize(key, val)
	if size > m.opts.MaxBytes {
		return fmt.Errorf("redis: memory cache: value of %d bytes exceeds MaxBytes %d", size, m.opts.MaxBytes)
	}
	if el, ok := m.items[key]; ok {
		m.remove(el)
	}
	m.items[key] = m.lru.PushFront(&memEntry{key: key, val: val, expires: expires})
	m.bytes += size
	for len(m.items) > m.opts.MaxEntries || m.bytes > m.opts.MaxBytes {
		m.remove(m.lru.Back())
	}
	return nil
}

func (m *Memory) remove(el *list.Element) {
	e := m.lru.Remove(el).(*memEntry)
	delete(m.items, e.key)
	m.bytes -= entrySize(e.key, e.val)
}

func entrySize(key string, val []byte) int64 { return int64(len(key) + len(val)) }

func (m *Memory) Counter(_ context.Context, key string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.counter(key)
	return n, m.stats.countErr(err)
}

// counter reads (creating if absent) the counter at key. Requires m.mu.
func (m *Memory) counter(key string) (int64, error) {
	if e := m.live(key); e != nil {
		n, err := strconv.ParseInt(string(e.val), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("redis: memory cache: counter %s holds %q, not an integer", key, e.val)
		}
		return n, nil
	}
	n := initialCounter()
	return n, m.put(key, strconv.AppendInt(nil, n, 10), time.Time{})
}

func (m *Memory) Incr(_ context.Context, key string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.counter(key)
	if err != nil {
		return 0, m.stats.countErr(err)
	}
	n++
	return n, m.stats.countErr(m.put(key, strconv.AppendInt(nil, n, 10), time.Time{}))
}

func (m *Memory) getVersioned(_ context.Context, verKey, base, key string) (int64, []byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, err := m.counter(verKey)
	if err != nil {
		m.stats.countGet(false, err)
		return 0, nil, false, err
	}
	e := m.live(base + strconv.FormatInt(v, 10) + ":" + key)
	m.stats.countGet(e != nil, nil)
	if e == nil {
		return v, nil, false, nil
	}
	return v, append([]byte(nil), e.val...), true, nil
}

func (m *Memory) Namespace(account string) Namespace {
	return newNamespace(m, DefaultKeyPrefix, account, nil, nil)
}

func (m *Memory) Stats() Stats { return m.stats.snapshot() }

// Len returns the number of entries held, expired ones not yet evicted included.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}

func (m *Memory) Ping(context.Context) error { return nil }

// Close drops every entry.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lru.Init()
	m.items = map[string]*list.Element{}
	m.bytes = 0
	return nil
}
