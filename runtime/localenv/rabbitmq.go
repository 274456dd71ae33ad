package localenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrNoNodeRunning is returned by the management calls when every node is stopped or killed.
var ErrNoNodeRunning = errors.New("localenv: no RabbitMQ node is running")

// RabbitMQOptions configure StartRabbitMQ.
type RabbitMQOptions struct {
	// Dir is the root for node data, configs and logs (created).
	Dir string
	// Nodes is the number of nodes: 0 or 1 means a single node; more form one cluster.
	Nodes int
	// Logger receives start-up timings and events; default slog.Default().
	Logger *slog.Logger
}

// RabbitMQ is a local RabbitMQ node or cluster with the management API, its own epmd and a generated
// administrator (not guest); every node is a process group this package started.
type RabbitMQ struct {
	opts     RabbitMQOptions
	dir      string
	log      *slog.Logger
	user     *osUser
	server   string // rabbitmq-server script
	username string
	password string
	epmdPort int
	epmd     *process
	http     *http.Client

	mu    sync.Mutex
	nodes []*rmqNode
}

type rmqNode struct {
	index    int
	name     string // Erlang node name
	dir      string
	amqpPort int
	distPort int
	mgmtPort int
	proc     *process
}

// StartRabbitMQ starts the node(s) on free loopback ports and returns once every node accepts AMQP
// connections and its management API answers (and, for a cluster, every node runs in one cluster).
func StartRabbitMQ(ctx context.Context, opts RabbitMQOptions) (*RabbitMQ, error) {
	if opts.Dir == "" {
		return nil, errors.New("localenv: RabbitMQOptions.Dir is required (e.g. t.TempDir())")
	}
	if opts.Nodes < 1 {
		opts.Nodes = 1
	}
	begin := time.Now()
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("localenv: rabbitmq dir: %w", err)
	}
	server, err := LookBinary("rabbitmq-server")
	if err != nil {
		return nil, err
	}
	epmd, err := LookBinary("epmd")
	if err != nil {
		return nil, err
	}
	u, err := serviceUser("rabbitmq")
	if err != nil {
		return nil, fmt.Errorf("localenv: rabbitmq: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("localenv: rabbitmq dir: %w", err)
	}
	if err := ensureReachable(dir, u, log); err != nil {
		return nil, fmt.Errorf("localenv: rabbitmq dir: %w", err)
	}
	r := &RabbitMQ{opts: opts, dir: dir, log: log, user: u, server: server,
		username: "oms-" + randomToken(4), password: randomToken(16), http: &http.Client{Timeout: 10 * time.Second}}

	// The nodes share an Erlang cookie through their HOME.
	home := filepath.Join(dir, "home")
	if err := u.mkdir(home); err != nil {
		return nil, fmt.Errorf("localenv: rabbitmq home: %w", err)
	}
	if err := u.writeFile(filepath.Join(home, ".erlang.cookie"), []byte(strings.ToUpper(randomToken(16))), 0o400); err != nil {
		return nil, fmt.Errorf("localenv: erlang cookie: %w", err)
	}

	// A private epmd, so node names and ports never meet other RabbitMQ instances on this machine.
	err = withPortRetry(func(int) error {
		port, err := freePort()
		if err != nil {
			return err
		}
		proc, err := startProcess(procSpec{name: "epmd", path: epmd, args: []string{"-port", strconv.Itoa(port), "-address", "127.0.0.1"},
			dir: dir, logPath: filepath.Join(dir, "epmd.log"), user: u})
		if err != nil {
			return fmt.Errorf("localenv: %w", err)
		}
		if err := waitUntil(ctx, proc, func(ctx context.Context) error { return dialTCP(ctx, port) }); err != nil {
			proc.kill()
			return fmt.Errorf("localenv: epmd not ready: %w", err)
		}
		r.epmdPort, r.epmd = port, proc
		return nil
	})
	if err != nil {
		return nil, err
	}

	suffix := randomToken(3)
	for i := 0; i < opts.Nodes; i++ {
		ports, err := freePorts(3)
		if err != nil {
			_ = r.Stop()
			return nil, err
		}
		r.nodes = append(r.nodes, &rmqNode{index: i, name: fmt.Sprintf("rabbit%d-%s@localhost", i+1, suffix),
			dir: filepath.Join(dir, fmt.Sprintf("node%d", i+1)), amqpPort: ports[0], distPort: ports[1], mgmtPort: ports[2]})
	}
	for _, n := range r.nodes {
		if err := r.writeNodeConfig(n); err != nil {
			_ = r.Stop()
			return nil, err
		}
	}
	// The first node forms the cluster; the others then join it together.
	if err := r.startNode(ctx, r.nodes[0]); err != nil {
		_ = r.Stop()
		return nil, err
	}
	errs := make(chan error, len(r.nodes))
	for _, n := range r.nodes[1:] {
		go func() { errs <- r.startNode(ctx, n) }()
	}
	for range r.nodes[1:] {
		err = errors.Join(err, <-errs)
	}
	if err == nil && len(r.nodes) > 1 {
		err = r.waitClustered(ctx)
	}
	if err != nil {
		_ = r.Stop()
		return nil, err
	}
	log.Info("localenv: rabbitmq ready", "nodes", len(r.nodes), "amqp_port", r.nodes[0].amqpPort,
		"management_port", r.nodes[0].mgmtPort, "elapsed", time.Since(begin).Round(time.Millisecond))
	return r, nil
}

func dialTCP(ctx context.Context, port int) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return c.Close()
}

func (r *RabbitMQ) writeNodeConfig(n *rmqNode) error {
	if err := r.user.mkdir(n.dir); err != nil {
		return fmt.Errorf("localenv: rabbitmq node dir: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "listeners.tcp.1 = 127.0.0.1:%d\n", n.amqpPort)
	fmt.Fprintf(&b, "management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %d\n", n.mgmtPort)
	fmt.Fprintf(&b, "default_user = %s\ndefault_pass = %s\ndefault_user_tags.administrator = true\n", r.username, r.password)
	b.WriteString("loopback_users = none\nlog.console = true\nlog.console.level = info\nlog.file = false\n")
	if len(r.nodes) > 1 {
		b.WriteString("cluster_formation.peer_discovery_backend = classic_config\n")
		for i, m := range r.nodes {
			fmt.Fprintf(&b, "cluster_formation.classic_config.nodes.%d = %s\n", i+1, m.name)
		}
	}
	if err := r.user.writeFile(filepath.Join(n.dir, "rabbitmq.conf"), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("localenv: rabbitmq config: %w", err)
	}
	if err := r.user.writeFile(filepath.Join(n.dir, "enabled_plugins"), []byte("[rabbitmq_management].\n"), 0o600); err != nil {
		return fmt.Errorf("localenv: rabbitmq plugins file: %w", err)
	}
	return nil
}

func (r *RabbitMQ) nodeEnv(n *rmqNode) []string {
	return []string{
		"HOME=" + filepath.Join(r.dir, "home"),
		// With NOTIFY_SOCKET set the start script execs the Erlang VM instead of running it as a child of a
		// shell, so the VM is the process this package started (and Pdeathsig reaches it). Nothing listens
		// there; the notification is dropped.
		"NOTIFY_SOCKET=" + filepath.Join(n.dir, "notify"),
		"ERL_EPMD_PORT=" + strconv.Itoa(r.epmdPort),
		"RABBITMQ_NODENAME=" + n.name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(n.amqpPort),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(n.distPort),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(n.dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(n.dir, "log"),
		"RABBITMQ_LOGS=-",
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(n.dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + filepath.Join(n.dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(n.dir, "enabled_plugins"),
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(n.dir, "rabbitmq-env.conf"),
		"RABBITMQ_PID_FILE=" + filepath.Join(n.dir, "pid"),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
	}
}

// startNode starts node n and waits until it accepts AMQP connections and its management API answers.
func (r *RabbitMQ) startNode(ctx context.Context, n *rmqNode) error {
	begin := time.Now()
	proc, err := startProcess(procSpec{name: "rabbitmq " + n.name, path: r.server, env: r.nodeEnv(n), dir: n.dir,
		logPath: filepath.Join(r.dir, fmt.Sprintf("node%d.log", n.index+1)), user: r.user})
	if err != nil {
		return fmt.Errorf("localenv: %w", err)
	}
	r.mu.Lock()
	n.proc = proc
	r.mu.Unlock()
	if err := waitUntil(ctx, proc, func(ctx context.Context) error { return r.nodeReady(ctx, n) }); err != nil {
		proc.kill()
		return fmt.Errorf("localenv: rabbitmq node %s not ready: %w", n.name, err)
	}
	r.log.Info("localenv: rabbitmq node ready", "node", n.name, "amqp_port", n.amqpPort, "pid", proc.pid,
		"elapsed", time.Since(begin).Round(time.Millisecond))
	return nil
}

func (r *RabbitMQ) nodeReady(ctx context.Context, n *rmqNode) error {
	conn, err := amqp.DialConfig(r.nodeURL(n, "/"), amqp.Config{Dial: amqp.DefaultDial(time.Second)})
	if err != nil {
		return err
	}
	_ = conn.Close()
	_, err = r.api(ctx, n, http.MethodGet, "/api/overview", nil)
	return err
}

// waitClustered waits until the management API lists every node as running.
func (r *RabbitMQ) waitClustered(ctx context.Context) error {
	err := waitUntil(ctx, nil, func(ctx context.Context) error {
		body, err := r.api(ctx, r.nodes[0], http.MethodGet, "/api/nodes", nil)
		if err != nil {
			return err
		}
		var nodes []struct {
			Name    string `json:"name"`
			Running bool   `json:"running"`
		}
		if err := json.Unmarshal(body, &nodes); err != nil {
			return err
		}
		running := 0
		for _, n := range nodes {
			if n.Running {
				running++
			}
		}
		if running != len(r.nodes) {
			return fmt.Errorf("%d of %d nodes running in the cluster", running, len(r.nodes))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("localenv: rabbitmq cluster: %w", err)
	}
	return nil
}

// api calls the management HTTP API of node n.
func (r *RabbitMQ) api(ctx context.Context, n *rmqNode, method, path string, body any) ([]byte, error) {
	var rd *bytes.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, fmt.Sprintf("http://127.0.0.1:%d%s", n.mgmtPort, path), rd)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(r.username, r.password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	if resp.StatusCode >= 300 {
		return out.Bytes(), &apiError{method: method, path: path, status: resp.StatusCode, body: strings.TrimSpace(out.String())}
	}
	return out.Bytes(), nil
}

type apiError struct {
	method, path string
	status       int
	body         string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("management API %s %s: HTTP %d: %s", e.method, e.path, e.status, e.body)
}

// liveNode is a running node to send management calls to.
func (r *RabbitMQ) liveNode() (*rmqNode, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.nodes {
		if n.proc != nil && !n.proc.exited() {
			return n, nil
		}
	}
	return nil, ErrNoNodeRunning
}

func (r *RabbitMQ) nodeURL(n *rmqNode, vhost string) string {
	u := url.URL{Scheme: "amqp", User: url.UserPassword(r.username, r.password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(n.amqpPort)), Path: "/"}
	if vhost != "/" {
		u.Path = "/" + vhost
		u.RawPath = "/" + url.PathEscape(vhost)
	}
	return u.String()
}

// URL is the AMQP URL of the first node for the default vhost, with the generated administrator.
func (r *RabbitMQ) URL() string { return r.nodeURL(r.nodes[0], "/") }

// URLForVhost is the AMQP URL of the first node for vhost.
func (r *RabbitMQ) URLForVhost(vhost string) string { return r.nodeURL(r.nodes[0], vhost) }

// URLs are the AMQP URLs of every node (default vhost), for clients that fail over between nodes.
func (r *RabbitMQ) URLs() []string {
	out := make([]string, len(r.nodes))
	for i, n := range r.nodes {
		out[i] = r.nodeURL(n, "/")
	}
	return out
}

// ManagementURL is the management HTTP API base URL of the first node (basic auth: Username/Password).
func (r *RabbitMQ) ManagementURL() string {
	return fmt.Sprintf("http://127.0.0.1:%d", r.nodes[0].mgmtPort)
}

// Username is the generated administrator's name (see Password).
func (r *RabbitMQ) Username() string { return r.username }

// Password is the generated administrator's password.
func (r *RabbitMQ) Password() string { return r.password }

// AddVhost creates vhost (idempotent) and gives the administrator full permissions on it.
func (r *RabbitMQ) AddVhost(ctx context.Context, name string) error {
	n, err := r.liveNode()
	if err != nil {
		return err
	}
	esc := url.PathEscape(name)
	if _, err := r.api(ctx, n, http.MethodPut, "/api/vhosts/"+esc, nil); err != nil {
		return fmt.Errorf("localenv: add vhost %q: %w", name, err)
	}
	perms := map[string]string{"configure": ".*", "write": ".*", "read": ".*"}
	if _, err := r.api(ctx, n, http.MethodPut, "/api/permissions/"+esc+"/"+url.PathEscape(r.username), perms); err != nil {
		return fmt.Errorf("localenv: grant vhost %q: %w", name, err)
	}
	return nil
}

// DeleteVhost deletes vhost and everything in it; deleting a missing vhost is not an error.
func (r *RabbitMQ) DeleteVhost(ctx context.Context, name string) error {
	n, err := r.liveNode()
	if err != nil {
		return err
	}
	_, err = r.api(ctx, n, http.MethodDelete, "/api/vhosts/"+url.PathEscape(name), nil)
	var apiErr *apiError
	if errors.As(err, &apiErr) && apiErr.status == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("localenv: delete vhost %q: %w", name, err)
	}
	return nil
}

func (r *RabbitMQ) node(i int) (*rmqNode, error) {
	if i < 0 || i >= len(r.nodes) {
		return nil, fmt.Errorf("localenv: no RabbitMQ node %d (nodes 0..%d)", i, len(r.nodes)-1)
	}
	return r.nodes[i], nil
}

// Kill SIGKILLs node i (0-based) and returns once its processes are gone.
func (r *RabbitMQ) Kill(i int) error {
	n, err := r.node(i)
	if err != nil {
		return err
	}
	r.mu.Lock()
	proc := n.proc
	r.mu.Unlock()
	if proc == nil || proc.exited() {
		return fmt.Errorf("localenv: Kill: RabbitMQ node %d is not running", i)
	}
	proc.kill()
	r.log.Info("localenv: rabbitmq node killed", "node", n.name, "pid", proc.pid)
	return nil
}

// Restart starts node i again with its data and ports, and returns once it is ready.
func (r *RabbitMQ) Restart(ctx context.Context, i int) error {
	n, err := r.node(i)
	if err != nil {
		return err
	}
	r.mu.Lock()
	proc := n.proc
	r.mu.Unlock()
	if proc != nil && !proc.exited() {
		proc.stop(syscall.SIGTERM, 30*time.Second)
	}
	return r.startNode(ctx, n)
}

// WaitReady waits until node i accepts AMQP connections and its management API answers.
func (r *RabbitMQ) WaitReady(ctx context.Context, i int) error {
	n, err := r.node(i)
	if err != nil {
		return err
	}
	return waitUntil(ctx, n.proc, func(ctx context.Context) error { return r.nodeReady(ctx, n) })
}

// WaitQueueRegistered waits until node i has written quorum queue (vhost, queue)'s Ra registration to disk.
// RabbitMQ 3.10 (Ra 2.2) writes it lazily, about a second after the declare: a node killed before then
// restarts without the queue's Raft member and the queue never gets a leader. Fault drills that declare a
// queue and kill the node right away call this in between; long-lived queues never need it.
func (r *RabbitMQ) WaitQueueRegistered(ctx context.Context, i int, vhost, queue string) error {
	n, err := r.node(i)
	if err != nil {
		return err
	}
	// Ra names the queue's cluster <url-encoded vhost>_<queue>.
	want := []byte(url.PathEscape(vhost) + "_" + queue)
	file := filepath.Join(n.dir, "mnesia", n.name, "quorum", n.name, "names.dets")
	err = waitUntil(ctx, n.proc, func(context.Context) error {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if !bytes.Contains(data, want) {
			return fmt.Errorf("%s not in %s yet", want, file)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("localenv: wait for quorum queue %q in vhost %q to be registered on disk: %w", queue, vhost, err)
	}
	return nil
}

// Stop shuts every node down (SIGTERM: a clean broker stop, SIGKILL after 30s), then epmd, and waits for
// their processes to exit. It only signals the process groups it started and is safe to call more than once.
func (r *RabbitMQ) Stop() error {
	begin := time.Now()
	r.mu.Lock()
	var procs []*process
	for _, n := range r.nodes {
		procs = append(procs, n.proc)
	}
	r.mu.Unlock()
	running := stopAll(procs, syscall.SIGTERM, 30*time.Second)
	if r.epmd != nil && !r.epmd.exited() {
		running++
		r.epmd.stop(syscall.SIGTERM, 5*time.Second)
	}
	if running > 0 {
		r.log.Info("localenv: rabbitmq stopped", "dir", r.dir, "elapsed", time.Since(begin).Round(time.Millisecond))
	}
	return nil
}

// Processes lists the PIDs of every running process (tests prove Stop leaves none; omsbench reads their CPU).
func (r *RabbitMQ) Processes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, n := range r.nodes {
		if n.proc != nil {
			out = append(out, n.proc.tree()...)
		}
	}
	if r.epmd != nil {
		out = append(out, r.epmd.tree()...)
	}
	return out
}

// LookBinary finds a service binary: PostgreSQL tools in the PostgreSQL bin dir, RabbitMQ's scripts in
// /usr/lib/rabbitmq/bin, anything else (and fallbacks) on PATH.
func LookBinary(name string) (string, error) {
	var candidates []string
	switch name {
	case "rabbitmq-server", "rabbitmqctl", "rabbitmq-diagnostics", "rabbitmq-plugins", "rabbitmq-queues":
		candidates = append(candidates, filepath.Join("/usr/lib/rabbitmq/bin", name))
	case "epmd":
		erts, _ := filepath.Glob("/usr/lib/erlang/erts-*/bin/epmd")
		candidates = append(candidates, erts...)
	case "postgres", "initdb", "pg_ctl", "pg_basebackup", "pgbench", "pg_dump", "pg_restore", "pg_dumpall", "psql", "pg_rewind":
		if dir, err := findPostgresBinDir(""); err == nil {
			candidates = append(candidates, filepath.Join(dir, name))
		}
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("localenv: %s not found; install the services with scripts/install-services.sh", name)
}
