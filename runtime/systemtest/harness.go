// Package systemtest runs the real oms binary against real PostgreSQL, Redis and RabbitMQ (localenv): the end-to-end
// tests and the fault drills. This file is the one way they start oms (Binary, Start, Run) and the one API client
// (Client); the tests are the package's _test files.
//
//	go test ./systemtest/ -p 1
package systemtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/localenv"
)

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Binary builds cmd/oms once per test binary and returns its path; Cleanup removes it. OMS_BINARY runs the tests
// against another build instead (a previous commit's, to measure a change before and after).
func Binary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("OMS_BINARY"); bin != "" {
		return bin
	}
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "oms-bin-")
		if build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "oms")
		cmd := exec.Command("go", "build", "-o", build.path, "github.com/omscloud/omscloud/runtime/cmd/oms")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, build.err)
	return build.path
}

// Cleanup removes the binary Binary built (TestMain calls it).
func Cleanup() {
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
}

// Env is the environment of an oms process: exactly PATH, HOME, STORAGE_EMULATOR_HOST (when a test runs the GCS
// emulator), OMS_METRICS_LISTEN on a free port (serve's default port would collide between processes) and env,
// which wins.
func Env(env map[string]string) []string {
	all := map[string]string{"PATH": os.Getenv("PATH"), "HOME": os.Getenv("HOME"), "OMS_METRICS_LISTEN": "127.0.0.1:0"}
	if h := os.Getenv("STORAGE_EMULATOR_HOST"); h != "" {
		all["STORAGE_EMULATOR_HOST"] = h
	}
	for k, v := range env {
		all[k] = v
	}
	out := make([]string, 0, len(all))
	for k, v := range all {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// RedisEnv is the Redis environment components/omsruntime gives the serve and worker pods: the sentinel Service
// and master name from the ConfigMap, the Redis and sentinel passwords from the Secret (one password, as
// components/redis has it), and the key prefix.
func RedisEnv(rds *localenv.Redis, prefix string) map[string]string {
	return map[string]string{"OMS_REDIS_SENTINELS": strings.Join(rds.SentinelAddrs(), ","), "OMS_REDIS_MASTER": rds.MasterName(),
		"OMS_REDIS_PASSWORD": rds.Password(), "OMS_REDIS_SENTINEL_PASSWORD": rds.Password(), "OMS_REDIS_KEY_PREFIX": prefix}
}

// Proc is a long-running oms process (serve, worker, dev).
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Addr string // the HTTP listen address it logged
	// MetricsAddr is where it serves /metrics: serve's --metrics-listen, else (the worker) Addr.
	MetricsAddr string
	LogPath     string // its stderr (JSON logs)
	Exited      chan struct{}
	ExitErr     error // valid once Exited is closed

	mu     sync.Mutex
	stdout bytes.Buffer
}

// Start runs the oms binary with Env(env) and args, and waits until it logs its listen address. At cleanup it gets
// SIGTERM, then SIGKILL after 30s; its log tail is printed if the test failed.
func Start(t testing.TB, name string, env map[string]string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, LogPath: filepath.Join(t.TempDir(), name+".log"), Exited: make(chan struct{})}
	logf, err := os.Create(p.LogPath)
	require.NoError(t, err)
	p.Cmd = exec.Command(Binary(t), args...)
	p.Cmd.Env = Env(env)
	p.Cmd.Stdout = &lockedWriter{mu: &p.mu, w: &p.stdout}
	stderr, err := p.Cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, p.Cmd.Start())
	addrc := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = logf.Write(append(line, '\n'))
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(line, &rec) != nil {
				continue
			}
			switch rec.Msg {
			case "metrics listening":
				p.MetricsAddr = rec.Addr // logged before "listening": read once Start returns
			case "listening":
				select {
				case addrc <- rec.Addr:
				default:
				}
			}
		}
	}()
	go func() {
		<-scanned // Wait closes the pipe: read it to the end first
		p.ExitErr = p.Cmd.Wait()
		_ = logf.Close()
		close(p.Exited)
	}()
	t.Cleanup(func() {
		p.Stop(30 * time.Second)
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", name, TailFile(p.LogPath, 40))
			if errs := ErrorLines(p.LogPath, 20); errs != "" {
				t.Logf("%s log (its first errors):\n%s", name, errs)
			}
		}
	})
	select {
	case p.Addr = <-addrc:
	case <-p.Exited:
		t.Fatalf("oms %s exited during start-up (%v):\n%s", name, p.ExitErr, TailFile(p.LogPath, 40))
	case <-time.After(90 * time.Second): // oms dev creates its PostgreSQL cluster first
		t.Fatalf("oms %s did not listen within 90s:\n%s", name, TailFile(p.LogPath, 40))
	}
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

// URL is the process's base URL.
func (p *Proc) URL() string { return "http://" + p.Addr }

// MetricsURL is the base URL of its /metrics.
func (p *Proc) MetricsURL() string {
	if p.MetricsAddr != "" {
		return "http://" + p.MetricsAddr
	}
	return p.URL()
}

// Stdout is what the process printed on stdout so far.
func (p *Proc) Stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

// Logs is the process's log so far.
func (p *Proc) Logs() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Stop sends SIGTERM and waits up to grace before SIGKILL. Idempotent.
func (p *Proc) Stop(grace time.Duration) {
	select {
	case <-p.Exited:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.Exited:
	case <-time.After(grace):
		_ = p.Cmd.Process.Kill()
		<-p.Exited
	}
}

// Kill sends SIGKILL (no chance to finish anything) and waits until the process is reaped.
func (p *Proc) Kill() error {
	err := p.Cmd.Process.Kill()
	<-p.Exited
	return err
}

// Run runs a one-shot oms command (migrate, account create, backup, restore) with Env(env) and returns its stdout
// and stderr. A non-zero exit is an error whose message is what oms printed after "oms: ".
func Run(t testing.TB, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = Env(env)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := errb.String()
		if i := strings.LastIndex(msg, "\noms: "); i >= 0 {
			msg = msg[i+1:]
		}
		return out.String(), errb.String(), fmt.Errorf("%s (%w)", strings.TrimSpace(strings.TrimPrefix(msg, "oms: ")), err)
	}
	return out.String(), errb.String(), nil
}

// MustRun is Run failing the test on a non-zero exit.
func MustRun(t testing.TB, env map[string]string, args ...string) string {
	t.Helper()
	out, stderr, err := Run(t, env, args...)
	require.NoError(t, err, "oms %v: %s", args, stderr)
	return out
}

// ErrorLines is the first n lines of a JSON log at level ERROR: what failed first, which a tail may not reach.
func ErrorLines(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, `"level":"ERROR"`) && len(out) < n {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TailFile is the last lines of a file.
func TailFile(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// Client is the API client of every system test. Requests have no retries; Call records a failure instead of
// failing the test (load goroutines), Do and JSON fail the test.
type Client struct {
	T    testing.TB
	Base string // prepended to every path ("" for full URLs)
	Key  string // bearer token: an API key or the admin token
	HTTP *http.Client
}

// Reply is one request's outcome; Status 0 means a transport error (Err).
type Reply struct {
	Start, End time.Time
	Status     int
	Body       []byte
	Err        error
	Replayed   bool   // Idempotent-Replayed: true
	RetryAfter string // Retry-After
}

// Call does one request without failing the test. body is nil, a string, bytes, an io.Reader or a value sent as
// JSON; header holds name, value pairs.
func (c *Client) Call(ctx context.Context, method, path string, body any, header ...string) Reply {
	r := Reply{Start: time.Now()}
	defer func() { r.End = time.Now() }()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			r.Err = err
			return r
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		r.Err = err
		return r
	}
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		r.Err = err
		r.End = time.Now()
		return r
	}
	defer resp.Body.Close()
	r.Body, r.Err = io.ReadAll(resp.Body)
	r.Status = resp.StatusCode
	r.Replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	r.RetryAfter = resp.Header.Get("Retry-After")
	r.End = time.Now()
	return r
}

// Do does a request and returns its status and body, failing the test on a transport error.
func (c *Client) Do(method, path string, body any, header ...string) (int, []byte) {
	c.T.Helper()
	r := c.Call(context.Background(), method, path, body, header...)
	require.NoError(c.T, r.Err, "%s %s", method, path)
	return r.Status, r.Body
}

// JSON does a request that must answer status, decoding the answer into v (unless nil).
func (c *Client) JSON(method, path string, body any, status int, v any, header ...string) {
	c.T.Helper()
	got, out := c.Do(method, path, body, header...)
	require.Equal(c.T, status, got, "%s %s: %s", method, path, out)
	if v != nil {
		require.NoError(c.T, json.Unmarshal(out, v), string(out))
	}
}
