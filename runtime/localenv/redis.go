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

	"github.com/omscloud/omscloud/redisconf"
)

// RedisOptions configure StartRedis.
type RedisOptions struct {
	// Dir is the root for configs, logs and working directories (created).
	Dir string
	// MasterName is the name sentinels monitor the master under; default redisconf.DefaultMasterName ("oms").
	MasterName string
	// Password is the pods' own AUTH password (components/redis' internal password): replication, the sentinels
	// among themselves, the scripts; generated when empty. Redis and the sentinels accept it from clients too.
	Password string
	// ClientPassword and PreviousClientPassword, when set, are accepted as well: the clients' current and previous
	// passwords as components/redis renders them (Rotate moves a pod to new ones).
	ClientPassword, PreviousClientPassword string
	// Logger receives start-up timings and events; default slog.Default().
	Logger *slog.Logger
}

// Redis runs what components/redis deploys, from the same scripts and templates (module redisconf): pods each
// running a Redis server and a Sentinel, one the master and the others its replicas, configured by init.sh.
// Every process is a process group this package started.
type Redis struct {
	opts RedisOptions
	dir  string
	log  *slog.Logger
	bin  string // redis-server; sentinels run it with --sentinel

	mu     sync.Mutex
	pods   []*redisPod // pods[0] is the initial master
	master string      // last known master address
}

// redisPods is the component's default StatefulSet: a master and two replicas, a sentinel in each pod (quorum 2),
// so that a failover leaves the new master the replica that min-replicas-to-write requires.
const redisPods = 3

// redisSettings are the component's templates with the fastest failover its validation allows
// (Sentinel.DownAfterMs >= 1000, FailoverTimeoutMs >= 3 x DownAfterMs), so drills are quick, and a small maxmemory.
// A short failover timeout matters: when the sentinels' votes split, the next election waits twice as long.
func redisSettings(masterName string) redisconf.Settings {
	const downAfterMs = 1000
	return redisconf.Settings{Replicas: redisPods, MasterName: masterName, MaxMemoryBytes: 256 << 20,
		MaxMemoryPolicy: redisconf.DefaultMaxMemoryPolicy, DownAfterMs: downAfterMs, FailoverTimeoutMs: 3 * downAfterMs}
}

// redisPod is one pod of the StatefulSet: its own loopback address (pods share the port numbers, as in a
// cluster), its config and data directories, and its two servers.
type redisPod struct {
	name     string // redis-<ordinal>, as the StatefulSet names its pods
	host     string
	dir      string
	server   *process
	sentinel *process
}

func (p *redisPod) addr() string { return net.JoinHostPort(p.host, strconv.Itoa(redisconf.RedisPort)) }
func (p *redisPod) sentinelAddr() string {
	return net.JoinHostPort(p.host, strconv.Itoa(redisconf.SentinelPort))
}
func (p *redisPod) confDir() string { return filepath.Join(p.dir, "conf") }
func (p *redisPod) dataDir() string { return filepath.Join(p.dir, "data") }

// StartRedis renders the component's files into Dir, runs init.sh for every pod and starts each pod's Redis server
// and Sentinel, every pod on its own loopback address. It returns once the replicas are in sync and every sentinel
// agrees on the master and knows the other sentinels and the replicas.
func StartRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	if opts.Dir == "" {
		return nil, errors.New("localenv: RedisOptions.Dir is required (e.g. t.TempDir())")
	}
	if opts.MasterName == "" {
		opts.MasterName = redisconf.DefaultMasterName
	}
	if opts.Password == "" {
		opts.Password = randomToken(20) // the component generates one too: its init.sh requires a password
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
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return nil, errors.New("localenv: redis-cli (init.sh uses it) not found on PATH; install it with scripts/install-services.sh")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("localenv: redis dir: %w", err)
	}
	files, err := redisconf.Files(redisSettings(opts.MasterName))
	if err != nil {
		return nil, fmt.Errorf("localenv: %w", err)
	}
	// The ConfigMap mounted at /scripts in the pods.
	scripts := filepath.Join(dir, "scripts")
	if err := os.RemoveAll(scripts); err != nil {
		return nil, fmt.Errorf("localenv: redis scripts: %w", err)
	}
	if err := os.MkdirAll(scripts, 0o755); err != nil {
		return nil, fmt.Errorf("localenv: redis scripts: %w", err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(scripts, name), []byte(content), 0o644); err != nil {
			return nil, fmt.Errorf("localenv: redis scripts: %w", err)
		}
	}
	r := &Redis{opts: opts, dir: dir, log: log, bin: bin}
	err = withPortRetry(func(attempt int) error {
		if attempt > 1 {
			r.stopAll()
		}
		return r.start(ctx, scripts)
	})
	if err != nil {
		r.stopAll()
		return nil, err
	}
	log.Info("localenv: redis ready", "master", r.master, "pods", redisPods, "sentinels", r.SentinelAddrs(),
		"elapsed", time.Since(begin).Round(time.Millisecond))
	return r, nil
}

func (r *Redis) start(ctx context.Context, scripts string) error {
	hosts, err := loopbackHosts(redisPods, redisconf.RedisPort, redisconf.SentinelPort)
	if err != nil {
		return err
	}
	pods := make([]*redisPod, redisPods)
	for i := range pods {
		name := "redis-" + strconv.Itoa(i)
		pods[i] = &redisPod{name: name, host: hosts[i], dir: filepath.Join(r.dir, name)}
	}
	r.mu.Lock()
	r.pods = pods
	r.master = pods[0].addr()
	r.mu.Unlock()

	begin := time.Now()
	for _, p := range pods {
		if err := os.RemoveAll(p.dir); err != nil {
			return fmt.Errorf("localenv: %s dir: %w", p.name, err)
		}
		if err := r.initPod(ctx, p, scripts, hosts, r.opts.ClientPassword, r.opts.PreviousClientPassword); err != nil {
			return err
		}
	}
	for _, p := range pods {
		if err := r.startContainer(p, false); err != nil {
			return err
		}
	}
	for _, p := range pods {
		if err := waitUntil(ctx, p.server, func(ctx context.Context) error { return r.ping(ctx, p) }); err != nil {
			return fmt.Errorf("localenv: %s not ready: %w", p.name, err)
		}
	}
	if err := r.waitReplicasOnline(ctx, pods[0]); err != nil {
		return err
	}
	r.log.Info("localenv: redis data nodes in sync", "elapsed", time.Since(begin).Round(time.Millisecond))
	// The sentinels start once the replicas are in sync (in a cluster both containers start together): their
	// first INFO then lists every replica, instead of the next one 10 s later.
	begin = time.Now()
	for _, p := range pods {
		if err := r.startContainer(p, true); err != nil {
			return err
		}
	}
	if err := r.waitSentinelsAgree(ctx); err != nil {
		return err
	}
	r.log.Info("localenv: redis sentinels agree", "elapsed", time.Since(begin).Round(time.Millisecond))
	return nil
}

// initPod runs the init container's script for p: it finds the master and renders p's redis.conf and
// sentinel.conf, with the passwords from the environment as in the pod (never on a command line).
func (r *Redis) initPod(ctx context.Context, p *redisPod, scripts string, hosts []string, client, previous string) error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return fmt.Errorf("localenv: %s dir: %w", p.name, err)
	}
	proc, err := startProcess(procSpec{name: p.name + " init.sh", path: "/bin/sh", args: []string{filepath.Join(scripts, "init.sh")},
		dir: p.dir, logPath: r.logPath(p, "redis"), env: []string{
			"POD_NAME=" + p.name, "REPLICAS=" + strconv.Itoa(len(hosts)), "MASTER_NAME=" + r.opts.MasterName,
			"REDISCLI_AUTH=" + r.opts.Password, "POD_ADDRESSES=" + strings.Join(hosts, " "),
			"REDIS_CLIENT_PASSWORD=" + client, "REDIS_PREVIOUS_CLIENT_PASSWORD=" + previous,
			"TEMPLATES=" + scripts, "CONF_DIR=" + p.confDir(), "DATA_DIR=" + p.dataDir(),
			"DNS_WAIT_SECONDS=0", // addresses, not names: no DNS record to wait for
		}})
	if err != nil {
		return fmt.Errorf("localenv: %w", err)
	}
	select {
	case <-proc.done:
	case <-ctx.Done():
		proc.kill()
		return fmt.Errorf("localenv: %s init.sh: %w", p.name, ctx.Err())
	}
	if proc.exitErr != nil {
		return fmt.Errorf("localenv: %s init.sh failed (%v); log %s:\n%s", p.name, proc.exitErr, proc.logPath, logTail(proc.logPath, 25))
	}
	return nil
}

// startContainer starts p's redis or sentinel container on the files init.sh rendered. Only what differs on a
// shared machine is set on the command line: the pod's own address instead of every interface, and (Redis) no
// diskless-sync delay, as replicas of an empty data set need not wait 5 s for each other.
func (r *Redis) startContainer(p *redisPod, sentinel bool) error {
	container, args := "redis", []string{filepath.Join(p.confDir(), "redis.conf"), "--repl-diskless-sync-delay", "0"}
	if sentinel {
		container, args = "sentinel", []string{filepath.Join(p.dataDir(), "sentinel", "sentinel.conf"), "--sentinel"}
	}
	proc, err := startProcess(procSpec{name: p.name + " " + container, path: r.bin, dir: p.dir,
		logPath: r.logPath(p, container), args: append(args, "--bind", p.host)})
	if err != nil {
		return fmt.Errorf("localenv: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if sentinel {
		p.sentinel = proc
	} else {
		p.server = proc
	}
	return nil
}

func (r *Redis) logPath(p *redisPod, container string) string {
	return filepath.Join(r.dir, p.name+"-"+container+".log")
}

// LogTail is the last lines of each pod's logs (init.sh and Redis, then Sentinel), for a failed test's output.
func (r *Redis) LogTail(lines int) string {
	r.mu.Lock()
	pods := append([]*redisPod(nil), r.pods...)
	r.mu.Unlock()
	var b strings.Builder
	for _, p := range pods {
		for _, f := range []string{r.logPath(p, "redis"), r.logPath(p, "sentinel")} {
			fmt.Fprintf(&b, "==> %s <==\n%s\n", filepath.Base(f), logTail(f, lines))
		}
	}
	return b.String()
}

func (r *Redis) client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: r.opts.Password, DialTimeout: time.Second,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1, PoolSize: 1})
}

// sentinelClient authenticates: the sentinels require the password, as components/redis renders them.
func (r *Redis) sentinelClient(addr string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: addr, Password: r.opts.Password, DialTimeout: time.Second,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1, PoolSize: 1})
}

func (r *Redis) ping(ctx context.Context, p *redisPod) error {
	c := r.client(p.addr())
	defer c.Close()
	return c.Ping(ctx).Err()
}

// waitReplicasOnline waits until the master reports every other pod as an online replica.
func (r *Redis) waitReplicasOnline(ctx context.Context, master *redisPod) error {
	want := redisPods - 1
	err := waitUntil(ctx, master.server, func(ctx context.Context) error {
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
	pods := append([]*redisPod(nil), r.pods...)
	want := r.master
	r.mu.Unlock()
	for _, p := range pods {
		err := waitUntil(ctx, p.sentinel, func(ctx context.Context) error {
			c := r.sentinelClient(p.sentinelAddr())
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
			case others != len(pods)-1:
				return fmt.Errorf("knows %d other sentinels, want %d", others, len(pods)-1)
			case replicas < len(pods)-1:
				return fmt.Errorf("knows %d replicas, want %d", replicas, len(pods)-1)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("localenv: %s sentinel: %w", p.name, err)
		}
	}
	return nil
}

// SentinelAddrs are the sentinels' host:port addresses.
func (r *Redis) SentinelAddrs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.pods))
	for i, p := range r.pods {
		out[i] = p.sentinelAddr()
	}
	return out
}

// MasterName is the name the sentinels monitor the master under.
func (r *Redis) MasterName() string { return r.opts.MasterName }

// Password is the AUTH password of the Redis servers and of the sentinels.
func (r *Redis) Password() string { return r.opts.Password }

// MasterAddr is the current master's host:port as the sentinels report it (the last known one if no
// sentinel answers within a second).
func (r *Redis) MasterAddr() string {
	r.mu.Lock()
	last := r.master
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, p := range r.liveSentinels() {
		c := r.sentinelClient(p.sentinelAddr())
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

// liveSentinels are the pods whose sentinel runs.
func (r *Redis) liveSentinels() []*redisPod {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*redisPod
	for _, p := range r.pods {
		if p.sentinel != nil && !p.sentinel.exited() {
			out = append(out, p)
		}
	}
	return out
}

func (r *Redis) podAt(addr string) *redisPod {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pods {
		if p.addr() == addr {
			return p
		}
	}
	return nil
}

// KillMaster SIGKILLs the current master's Redis server, like a crashed redis container, and returns once its
// process is gone. It stays down; the pod's sentinel keeps running.
func (r *Redis) KillMaster() error {
	addr := r.MasterAddr()
	p := r.podAt(addr)
	if p == nil || p.server == nil || p.server.exited() {
		return fmt.Errorf("localenv: KillMaster: master %s is not a running server of this harness", addr)
	}
	p.server.kill()
	r.log.Info("localenv: redis master killed", "addr", addr, "pid", p.server.pid)
	return nil
}

// WaitFailover waits until every running sentinel names a new master other than oldMaster, that server reports
// itself as master and it takes writes again (min-replicas-to-write: a replica has attached to it), and returns
// its address.
func (r *Redis) WaitFailover(ctx context.Context, oldMaster string) (string, error) {
	begin := time.Now()
	var newMaster string
	err := waitUntil(ctx, nil, func(ctx context.Context) error {
		seen := ""
		for _, p := range r.liveSentinels() {
			c := r.sentinelClient(p.sentinelAddr())
			addr, err := c.GetMasterAddrByName(ctx, r.opts.MasterName).Result()
			c.Close()
			if err != nil {
				return fmt.Errorf("%s sentinel: %w", p.name, err)
			}
			cur := net.JoinHostPort(addr[0], addr[1])
			if cur == oldMaster {
				return fmt.Errorf("%s sentinel still names %s", p.name, oldMaster)
			}
			if seen != "" && cur != seen {
				return fmt.Errorf("sentinels disagree: %s vs %s", seen, cur)
			}
			seen = cur
		}
		if seen == "" {
			return errors.New("no sentinel running")
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
		if strings.Contains(info, "min_slaves_good_slaves:0") {
			return fmt.Errorf("%s has no replica yet and refuses writes (min-replicas-to-write)", seen)
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

// Rotate restarts pod i as the StatefulSet's rolling update does after components/redis rotated the clients'
// password: a master first hands its role to a replica (its preStop), then the pod stops, init.sh renders its
// configs on the same volume with the new client passwords, and it starts again. It returns once every pod is in
// sync with the master and every sentinel agrees on it again.
func (r *Redis) Rotate(ctx context.Context, i int, client, previous string) error {
	r.mu.Lock()
	p := r.pods[i]
	hosts := make([]string, len(r.pods))
	for j, q := range r.pods {
		hosts[j] = q.host
	}
	r.mu.Unlock()
	if old := r.MasterAddr(); old == p.addr() {
		c := r.sentinelClient(r.liveSentinels()[0].sentinelAddr())
		err := c.Failover(ctx, r.opts.MasterName).Err()
		c.Close()
		if err != nil {
			return fmt.Errorf("localenv: %s: hand the master role over: %w", p.name, err)
		}
		if _, err := r.WaitFailover(ctx, old); err != nil {
			return err
		}
	}
	stopAll([]*process{p.sentinel, p.server}, syscall.SIGTERM, 10*time.Second)
	if err := r.initPod(ctx, p, filepath.Join(r.dir, "scripts"), hosts, client, previous); err != nil {
		return err
	}
	if err := r.startContainer(p, false); err != nil {
		return err
	}
	if err := waitUntil(ctx, p.server, func(ctx context.Context) error { return r.ping(ctx, p) }); err != nil {
		return fmt.Errorf("localenv: %s not ready after its restart: %w", p.name, err)
	}
	if err := r.startContainer(p, true); err != nil {
		return err
	}
	master := r.podAt(r.MasterAddr())
	if master == nil {
		return fmt.Errorf("localenv: no master among the pods after %s restarted", p.name)
	}
	if err := r.waitReplicasOnline(ctx, master); err != nil {
		return err
	}
	return r.waitSentinelsAgree(ctx)
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

// procs are every server and sentinel process started (nil for those not started).
func (r *Redis) procs() []*process {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*process
	for _, p := range r.pods {
		out = append(out, p.sentinel, p.server)
	}
	return out
}

// stopAll stops every running server and sentinel and returns how many there were.
func (r *Redis) stopAll() int {
	return stopAll(r.procs(), syscall.SIGTERM, 10*time.Second)
}

// Processes lists the PIDs of every running process (tests prove Stop leaves none; omsbench reads their CPU).
func (r *Redis) Processes() []int {
	var out []int
	for _, p := range r.procs() {
		if p != nil {
			out = append(out, p.tree()...)
		}
	}
	return out
}
