package main

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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/localenv/localenvtest"
	"github.com/omscloud/omscloud/runtime/rabbitmq"
)

func TestMain(m *testing.M) {
	code := localenvtest.RunTests(m)
	omstest.Stop()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// instance is an oms command running in this test process.
type instance struct {
	addr   string
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
	logs   bytes.Buffer
}

// startOMS runs `oms args...` in-process with the given environment and waits
// until it listens. It is stopped (as by SIGTERM) at cleanup.
func startOMS(t *testing.T, env map[string]string, args ...string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{cancel: cancel, done: make(chan error, 1)}
	pr, pw := io.Pipe()
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			in.mu.Lock()
			in.logs.Write(line)
			in.logs.WriteByte('\n')
			in.mu.Unlock()
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" {
				addrc <- rec.Addr
			}
		}
	}()
	getenv := func(k string) string { return env[k] }
	go func() {
		err := run(ctx, args, io.Discard, pw, getenv)
		pw.Close()
		in.done <- err
	}()
	select {
	case in.addr = <-addrc:
	case err := <-in.done:
		t.Fatalf("oms %v exited: %v\n%s", args, err, in.Logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("oms %v did not listen\n%s", args, in.Logs())
	}
	t.Cleanup(func() {
		in.Stop(t)
		if t.Failed() {
			t.Logf("oms %v logs:\n%s", args, in.Logs())
		}
	})
	return in
}

func (in *instance) Logs() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.logs.String()
}

// Stop cancels the instance and waits for it to return.
func (in *instance) Stop(t *testing.T) {
	in.cancel()
	select {
	case err, ok := <-in.done:
		if ok && err != nil {
			t.Errorf("oms exited with %v", err)
		}
		close(in.done)
	case <-time.After(30 * time.Second):
		t.Errorf("oms did not stop within 30s")
	}
}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// omsBinary builds the oms binary once per test run.
func omsBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "oms-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "oms")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// client talks to the API.
type client struct {
	t    *testing.T
	base string
	key  string
}

func (c *client) do(method, path string, body any, header ...string) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(c.t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	require.NoError(c.t, err)
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return resp.StatusCode, out
}

// json does a request expecting status and decodes the answer into v.
func (c *client) json(method, path string, body any, status int, v any, header ...string) {
	c.t.Helper()
	got, out := c.do(method, path, body, header...)
	require.Equal(c.t, status, got, "%s %s: %s", method, path, out)
	if v != nil {
		require.NoError(c.t, json.Unmarshal(out, v), string(out))
	}
}

// tap collects the ids of every message published to the exchange.
type tap struct {
	mu  sync.Mutex
	ids map[string]int
}

func startTap(t *testing.T, amqpURL string) *tap {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := rabbitmq.Dial(ctx, rabbitmq.Options{URL: amqpURL, Logger: localenvtest.TestLogger(t)})
	require.NoError(t, err)
	require.NoError(t, b.DeclareQueue(ctx, "test.tap", []string{"#"}))
	tp := &tap{ids: map[string]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Consume(ctx, "test.tap", 100, func(ctx context.Context, d rabbitmq.Delivery) error {
			tp.mu.Lock()
			tp.ids[d.ID]++
			tp.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done; _ = b.Close() })
	return tp
}

func (tp *tap) has(id string) bool {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.ids[id] > 0
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
