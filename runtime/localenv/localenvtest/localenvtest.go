// Package localenvtest gives tests the services of package localenv: RequireBinaries (a skip, or a failure when
// CI=true), instances shared by every test of a binary (SharedPostgres, SharedRedis, SharedRabbitMQ, stopped by
// RunTests), and a namespace of their own per test (NewDatabase, NewVhost, NewKeyPrefix), dropped in t.Cleanup.
//
// It is a package of its own so that what links localenv (the oms binary, for `oms dev`) does not link testing.
package localenvtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/omscloud/omscloud/runtime/localenv"
)

// Binary name groups for RequireBinaries.
var (
	PostgresBinaries = []string{"postgres", "initdb", "pg_ctl", "pg_basebackup"}
	RedisBinaries    = []string{"redis-server", "redis-cli"} // init.sh runs redis-cli
	RabbitMQBinaries = []string{"rabbitmq-server", "epmd"}
)

// RequireBinaries skips the test when a service binary is missing — or fails it when CI=true, where a missing
// binary means the environment is broken, not that the test does not apply.
func RequireBinaries(t testing.TB, names ...string) {
	t.Helper()
	var missing []string
	for _, n := range names {
		if _, err := localenv.LookBinary(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("service binaries not installed: %s (install them with scripts/install-services.sh)", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true makes this a failure")
		return
	}
	t.Skip(msg)
}

// TestLogger is a slog.Logger writing through t.Log, for instances a test starts and stops itself.
func TestLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Shared instances: started on first use, once per test binary, and stopped by StopShared (RunTests calls
// it). Without a TestMain their processes still die with the test binary (parent-death signal), and the next
// binary that starts a shared instance removes the directories left behind.
var shared struct {
	pg    sharedInstance[*localenv.Postgres]
	redis sharedInstance[*localenv.Redis]
	rmq   sharedInstance[*localenv.RabbitMQ]
}

type sharedInstance[T interface{ Stop() error }] struct {
	once sync.Once
	val  T
	err  error
	dir  string
}

func (s *sharedInstance[T]) get(t testing.TB, kind string, start func(ctx context.Context, dir string) (T, error)) T {
	t.Helper()
	s.once.Do(func() {
		removeAbandonedSharedDirs()
		dir, err := os.MkdirTemp("", "localenv-"+kind+"-")
		if err != nil {
			s.err = err
			return
		}
		s.dir = dir
		// Record the owner, so a later run can remove the directory if this binary exits without StopShared.
		owner := fmt.Sprintf("%d %s\n", os.Getpid(), localenv.ProcessStartTime(os.Getpid()))
		if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(owner), 0o644); err != nil {
			s.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		s.val, s.err = start(ctx, dir)
	})
	if s.err != nil {
		t.Fatalf("shared %s: %v", kind, s.err)
	}
	return s.val
}

func (s *sharedInstance[T]) stop() {
	if s.err == nil && s.dir != "" {
		_ = s.val.Stop()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// removeAbandonedSharedDirs deletes shared-instance directories whose owning test binary has exited (its
// servers died with it); directories of running binaries are left alone.
func removeAbandonedSharedDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "localenv-*-*"))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			continue // not ours, or still being created
		}
		var pid int
		var start string
		if _, err := fmt.Sscan(string(data), &pid, &start); err != nil {
			continue
		}
		if localenv.ProcessStartTime(pid) != start {
			_ = os.RemoveAll(dir)
		}
	}
}

func sharedLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// TestPostgresSettings trade durability against a machine crash (not a process crash) for speed.
var TestPostgresSettings = map[string]string{"fsync": "off", "full_page_writes": "off"}

// SharedPostgres is a primary-only PostgreSQL shared by every test of the binary, started on first use. Give
// each test its own database with NewDatabase. Tests that kill or promote nodes start their own with
// StartPostgres.
func SharedPostgres(t testing.TB) *localenv.Postgres {
	t.Helper()
	RequireBinaries(t, PostgresBinaries...)
	return shared.pg.get(t, "pg", func(ctx context.Context, dir string) (*localenv.Postgres, error) {
		return localenv.StartPostgres(ctx, localenv.PostgresOptions{Dir: dir, Settings: TestPostgresSettings, Logger: sharedLogger()})
	})
}

// SharedRedis is components/redis' StatefulSet as rendered (3 pods: master, 2 replicas, a sentinel in each, all
// requiring Password) shared by every test of the binary, started on first use. Give each test its own key
// prefix with NewKeyPrefix.
func SharedRedis(t testing.TB) *localenv.Redis {
	t.Helper()
	RequireBinaries(t, RedisBinaries...)
	return shared.redis.get(t, "redis", func(ctx context.Context, dir string) (*localenv.Redis, error) {
		return localenv.StartRedis(ctx, localenv.RedisOptions{Dir: dir, Logger: sharedLogger()})
	})
}

// SharedRabbitMQ is a single RabbitMQ node shared by every test of the binary, started on first use. Give
// each test its own vhost with NewVhost.
func SharedRabbitMQ(t testing.TB) *localenv.RabbitMQ {
	t.Helper()
	RequireBinaries(t, RabbitMQBinaries...)
	return shared.rmq.get(t, "rabbitmq", func(ctx context.Context, dir string) (*localenv.RabbitMQ, error) {
		return localenv.StartRabbitMQ(ctx, localenv.RabbitMQOptions{Dir: dir, Logger: sharedLogger()})
	})
}

// StopShared stops the shared instances and removes their directories.
func StopShared() {
	var wg sync.WaitGroup
	for _, stop := range []func(){shared.pg.stop, shared.redis.stop, shared.rmq.stop} {
		wg.Add(1)
		go func() { defer wg.Done(); stop() }()
	}
	wg.Wait()
}

// RunTests runs the tests and then stops the shared instances:
//
//	func TestMain(m *testing.M) { os.Exit(localenvtest.RunTests(m)) }
func RunTests(m *testing.M) int {
	code := m.Run()
	StopShared()
	return code
}

var nonIdent = regexp.MustCompile(`[^a-z0-9]+`)

// uniqueName derives a short identifier from the test name plus a random suffix.
func uniqueName(t testing.TB, prefix string) string {
	base := strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(base) > 40 {
		base = base[:40]
	}
	return prefix + base + "_" + randomSuffix()
}

// NewDatabase creates a fresh database for the test (named after it) and drops it in t.Cleanup. It returns
// the database's URL (pg.URL: every node, read-write target); the name is the URL's path.
func NewDatabase(t testing.TB, pg *localenv.Postgres) string {
	t.Helper()
	name := uniqueName(t, "t_")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pg.Exec(ctx, pg.URL("postgres"), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pg.Exec(ctx, pg.URL("postgres"), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return pg.URL(name)
}

// NewVhost creates a fresh vhost for the test and deletes it in t.Cleanup. It returns the vhost's AMQP URL.
func NewVhost(t testing.TB, r *localenv.RabbitMQ) string {
	t.Helper()
	name := uniqueName(t, "t_")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.AddVhost(ctx, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// A test that stopped the broker itself has nothing left to clean up.
		if err := r.DeleteVhost(ctx, name); err != nil && !errors.Is(err, localenv.ErrNoNodeRunning) {
			t.Errorf("delete vhost: %v", err)
		}
	})
	return r.URLForVhost(name)
}

// NewKeyPrefix returns a key prefix unique to the test ("t:<name>:<random>:"); keys under it on the current
// master are deleted in t.Cleanup.
func NewKeyPrefix(t testing.TB, r *localenv.Redis) string {
	t.Helper()
	prefix := "t:" + uniqueName(t, "") + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := redis.NewClient(&redis.Options{Addr: r.MasterAddr(), Password: r.Password()})
		defer c.Close()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("clean up keys %s*: %v", prefix, err)
			return
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("clean up keys %s*: %v", prefix, err)
			}
		}
	})
	return prefix
}

// randomSuffix is 6 random hex digits.
func randomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}
