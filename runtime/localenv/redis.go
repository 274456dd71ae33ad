package localenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configure StartRedis.
type RedisOptions struct {
	// Dir is the root for configs, logs and working directories (created).
	Dir string
	// Replicas is the number of replicas of the master: 0 means 1, negative means none.
	Replicas int
	// Sentinels is the number of sentinels: 0 means 3, negative means none. The quorum is 2 (1 with a single
	// sentinel); down-after-milliseconds is 1000.
	Sentinels int
	// MasterName is the name sentinels monitor the master under; default "oms".
	MasterName string
	// Password, when set, is required by the data nodes (requirepass/masterauth; sentinels use auth-pass).
	Password string
	// Logger receives start-up timings and events; default slog.Default().
	Logger *slog.Logger
}

// Redis is a local Redis master with replicas, monitored by sentinels; every server is a process group
// this package started.
type Redis struct {
	opts RedisOptions
	dir  string
	log  *slog.Logger
	bin  string // redis-server; sentinels run it with --sentinel

	mu        sync.Mutex
	servers   []*redisNode // servers[0] is the initial master
	sentinels []*redisNode
	master    string // last known master address
}

type redisNode struct {
	name string
	port int
	dir  string
	proc *process
}

func (n *redisNode) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

// StartRedis starts the master, its replicas and the sentinels on free loopback ports. It returns once every
// replica is in sync and every sentinel agrees on the master and knows the other sentinels and the replicas.
func StartRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	if opts.Dir == "" {
		return nil, errors.New("localenv: RedisOptions.Dir is required (e.g. t.TempDir())")
	}
	switch {
	case opts.Replicas == 0:
		opts.Replicas = 1
	case opts.Replicas < 0:
		opts.Replicas = 0
	}
	switch {
	case opts.Sentinels == 0:
		opts.Sentinels = 3
	case opts.Sentinels < 0:
		opts.Sentinels = 0
	}
	if opts.MasterName == "" {
		opts.MasterName = "oms"
	}
	begin := time.Now()
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("localenv: redis dir: %w", err)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("localenv: redis-server not found on PATH; install it with scripts/install-services.sh")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("localenv: redis dir: %w", err)
	}
	r := &Redis{opts: opts, dir: dir, log: log, bin: bin}
	err = withPortRetry(func(attempt int) error {
		if attempt > 1 {
			r.stopAll()
		}
		return r.start(ctx)
	})
	if err != nil {
		r.stopAll()
		return nil, err
	}
	log.Info("localenv: redis ready", "master", r.master, "replicas", opts.Replicas, "sentinels", r.SentinelAddrs(),
		"elapsed", time.Since(begin).Round(time.Millisecond))
	return r, nil
}

func (r *Redis) start(ctx context.Context) error {
	n := 1 + r.opts.Replicas + r.opts.Sentinels
	ports, err := freePorts(n)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.servers, r.sentinels = nil, nil
	for i := 0; i < 1+r.opts.Replicas; i++ {
		name := "redis-master"
		if i > 0 {
			name = fmt.Sprintf("redis-replica%d", i)
		}
		r.servers = append(r.servers, &redisNode{name: name, port: ports[i], dir: filepath.Join(r.dir, name)})
	}
	for i := 0; i < r.opts.Sentinels; i++ {
		name := fmt.Sprintf("sentinel%d", i+1)
		r.sentinels = append(r.sentinels, &redisNode{name: name, port: ports[1+r.opts.Replicas+i], dir: filepath.Join(r.dir, name)})
	}
	master := r.servers[0]
	r.master = master.addr()
	r.mu.Unlock()

	begin := time.Now()
	for i, s := range r.servers {
		conf := r.serverConf(s, i > 0, master)
		if err := r.startNode(s, conf, false); err != nil {
			return err
		}
	}
	for _, s := range r.servers {
		if err := waitUntil(ctx, s.proc, func(ctx context.Context) error { return r.ping(ctx, s) }); err != nil {
			return fmt.Errorf("localenv: %s not ready: %w", s.name, err)
		}
	}
	if err := r.waitReplicasOnline(ctx, master); err != nil {
		return err
	}
	r.log.Info("localenv: redis data nodes in sync", "elapsed", time.Since(begin).Round(time.Millisecond))
	if r.opts.Sentinels == 0 {
		return nil
	}
	begin = time.Now()
	for _, s := range r.sentinels {
		if err := r.startNode(s, r.sentinelConf(s, master), true); err != nil {
			return err
		}
	}
	if err := r.waitSentinelsAgree(ctx); err != nil {
		return err
	}
	r.log.Info("localenv: redis sentinels agree", "elapsed", time.Since(begin).Round(time.Millisecond))
	return nil
}

func (r *Redis) serverConf(n *redisNode, replica bool, master *redisNode) string {
	var b strings.Builder
	fmt.Fprintf(&b, "bind 127.0.0.1\nport %d\ndir %s\ndaemonize no\nlogfile \"\"\n", n.port, n.dir)
	// In-memory cache: no snapshots, no AOF; replicas sync straight from memory.
	b.WriteString("save \"\"\nappendonly no\nrepl-diskless-sync yes\nrepl-diskless-sync-delay 0\n")
	if r.opts.Password != "" {
		fmt.Fprintf(&b, "requirepass %s\nmasterauth %s\n", r.opts.Password, r.opts.Password)
	}
	if replica {
		fmt.Fprintf(&b, "replicaof 127.0.0.1 %d\n", master.port)
	}
	return b.String()
}

func (r *Redis) sentinelConf(n *redisNode, master *redisNode) string {
	quorum := 2
	if r.opts.Sentinels < 2 {
		quorum = 1
	}
	name := r.opts.MasterName
	var b strings.Builder
	fmt.Fprintf(&b, "bind 127.0.0.1\nport %d\ndir %s\ndaemonize no\nlogfile \"\"\n", n.port, n.dir)
	fmt.Fprintf(&b, "sentinel monitor %s 127.0.0.1 %d %d\n", name, master.port, quorum)
	fmt.Fprintf(&b, "sentinel down-after-milliseconds %s 1000\n", name)
	fmt.Fprintf(&b, "sentinel failover-timeout %s 10000\n", name)
	fmt.Fprintf(&b, "sentinel parallel-syncs %s 1\n", name)
	if r.opts.Password != "" {
		fmt.Fprintf(&b, "sentinel auth-pass %s %s\n", name, r.opts.Password)
	}
	return b.String()
}

func (r *Redis) startNode(n *redisNode, conf string, sentinel bool) error {
	if err := os.RemoveAll(n.dir); err != nil {
		return fmt.Errorf("localenv: %s dir: %w", n.name, err)
	}
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		return fmt.Errorf("localenv: %s dir: %w", n.name, err)
	}
	// Sentinels rewrite their config file, so it lives in their own directory.
	confPath := filepath.Join(n.dir, n.name+".conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("localenv: %s config: %w", n.name, err)
	}
	args := []string{confPath}
	if sentinel {
		args = append(args, "--sentinel")
	}
	proc, err := startProcess(procSpec{name: n.name, path: r.bin, args: args, dir: n.dir,
		logPath: filepath.Join(r.dir, n.name+".log")})
	if err != nil {
		return fmt.Errorf("localenv: %w", err)
	}
	r.mu.Lock()
	n.proc = proc
	r.mu.Unlock()
	return nil
}

func (r *Redis) client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: r.opts.Password, DialTimeout: time.Second,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1, PoolSize: 1})
}

func (r *Redis) sentinelClient(addr string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: addr, DialTimeout: time.Second,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1, PoolSize: 1})
}

func (r *Redis) ping(ctx context.Context, n *redisNode) error {
	c := r.client(n.addr())
	defer c.Close()
	return c.Ping(ctx).Err()
}

// waitReplicasOnline waits until the master reports every replica online.
func (r *Redis) waitReplicasOnline(ctx context.Context, master *redisNode) error {
	want := len(r.servers) - 1
	err := waitUntil(ctx, master.proc, func(ctx context.Context) error {
		c := r.client(master.addr())
		defer c.Close()
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		online := strings.Count(info, ",state=online,")
		if online < want {
			return fmt.Errorf("%d of %d replicas online", online, want)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("localenv: redis replicas not in sync: %w", err)
	}
	return nil
}

// waitSentinelsAgree waits until every sentinel names the same master, sees every replica and knows every
// other sentinel — only then can a failover be authorised.
func (r *Redis) waitSentinelsAgree(ctx context.Context) error {
	r.mu.Lock()
	sentinels := append([]*redisNode(nil), r.sentinels...)
	want := r.master
	r.mu.Unlock()
	for _, s := range sentinels {
		err := waitUntil(ctx, s.proc, func(ctx context.Context) error {
			c := r.sentinelClient(s.addr())
			defer c.Close()
			m, err := c.Master(ctx, r.opts.MasterName).Result()
			if err != nil {
				return err
			}
			addr := net.JoinHostPort(m["ip"], m["port"])
			others, _ := strconv.Atoi(m["num-other-sentinels"])
			replicas, _ := strconv.Atoi(m["num-slaves"])
			switch {
			case m["flags"] != "master":
				return fmt.Errorf("master flags %q", m["flags"])
			case addr != want:
				return fmt.Errorf("sentinel names master %s, expected %s", addr, want)
			case others != len(sentinels)-1:
				return fmt.Errorf("knows %d other sentinels, want %d", others, len(sentinels)-1)
			case replicas < r.opts.Replicas:
				return fmt.Errorf("knows %d replicas, want %d", replicas, r.opts.Replicas)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("localenv: %s: %w", s.name, err)
		}
	}
	return nil
}

// SentinelAddrs are the sentinels' host:port addresses.
func (r *Redis) SentinelAddrs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.sentinels))
	for i, s := range r.sentinels {
		out[i] = s.addr()
	}
	return out
}

// MasterName is the name the sentinels monitor the master under.
func (r *Redis) MasterName() string { return r.opts.MasterName }

// Password is the AUTH password of the data nodes ("" for none).
func (r *Redis) Password() string { return r.opts.Password }

// MasterAddr is the current master's host:port as the sentinels report it (the last known one if no
// sentinel answers within a second).
func (r *Redis) MasterAddr() string {
	r.mu.Lock()
	last := r.master
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, s := range r.liveSentinels() {
		c := r.sentinelClient(s.addr())
		addr, err := c.GetMasterAddrByName(ctx, r.opts.MasterName).Result()
		c.Close()
		if err == nil && len(addr) == 2 {
			cur := net.JoinHostPort(addr[0], addr[1])
			r.mu.Lock()
			r.master = cur
			r.mu.Unlock()
			return cur
		}
	}
	return last
}

func (r *Redis) liveSentinels() []*redisNode {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*redisNode
	for _, s := range r.sentinels {
		if s.proc != nil && !s.proc.exited() {
			out = append(out, s)
		}
	}
	return out
}

func (r *Redis) serverAt(addr string) *redisNode {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.servers {
		if s.addr() == addr {
			return s
		}
	}
	return nil
}

// KillMaster SIGKILLs the current master and returns once its process is gone. It stays down.
func (r *Redis) KillMaster() error {
	addr := r.MasterAddr()
	n := r.serverAt(addr)
	if n == nil || n.proc == nil || n.proc.exited() {
		return fmt.Errorf("localenv: KillMaster: master %s is not a running server of this harness", addr)
	}
	n.proc.kill()
	r.log.Info("localenv: redis master killed", "addr", addr, "pid", n.proc.pid)
	return nil
}

// WaitFailover waits until every running sentinel names a new master other than oldMaster and that server
// reports itself as master, and returns its address.
func (r *Redis) WaitFailover(ctx context.Context, oldMaster string) (string, error) {
	if len(r.sentinels) == 0 {
		return "", errors.New("localenv: WaitFailover: no sentinels (RedisOptions.Sentinels)")
	}
	begin := time.Now()
	var newMaster string
	err := waitUntil(ctx, nil, func(ctx context.Context) error {
		seen := ""
		for _, s := range r.liveSentinels() {
			c := r.sentinelClient(s.addr())
			addr, err := c.GetMasterAddrByName(ctx, r.opts.MasterName).Result()
			c.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			cur := net.JoinHostPort(addr[0], addr[1])
			if cur == oldMaster {
				return fmt.Errorf("%s still names %s", s.name, oldMaster)
			}
			if seen != "" && cur != seen {
				return fmt.Errorf("sentinels disagree: %s vs %s", seen, cur)
			}
			seen = cur
		}
		c := r.client(seen)
		defer c.Close()
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "role:master") {
			return fmt.Errorf("%s is not master yet", seen)
		}
		newMaster = seen
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("localenv: wait for redis failover from %s: %w", oldMaster, err)
	}
	r.mu.Lock()
	r.master = newMaster
	r.mu.Unlock()
	r.log.Info("localenv: redis failover observed", "old", oldMaster, "new", newMaster, "waited", time.Since(begin).Round(time.Millisecond))
	return newMaster, nil
}

// Stop shuts every server and sentinel down and waits for their processes to exit. It only signals the
// process groups it started and is safe to call more than once.
func (r *Redis) Stop() error {
	begin := time.Now()
	if r.stopAll() > 0 {
		r.log.Info("localenv: redis stopped", "dir", r.dir, "elapsed", time.Since(begin).Round(time.Millisecond))
	}
	return nil
}

// stopAll stops every running server and sentinel and returns how many there were.
func (r *Redis) stopAll() int {
	r.mu.Lock()
	var procs []*process
	for _, n := range append(append([]*redisNode(nil), r.sentinels...), r.servers...) {
		procs = append(procs, n.proc)
	}
	r.mu.Unlock()
	return stopAll(procs, syscall.SIGTERM, 10*time.Second)
}

func (r *Redis) processes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, n := range append(append([]*redisNode(nil), r.sentinels...), r.servers...) {
		if n.proc != nil {
			out = append(out, n.proc.tree()...)
		}
	}
	return out
}
