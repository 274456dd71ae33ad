package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omscloud/omscloud/stacks"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requirePrometheus skips without Debian's prometheus, except under CI=true where that is a failure.
func requirePrometheus(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("prometheus")
	if err == nil {
		return path
	}
	msg := "prometheus is not installed (scripts/install-services.sh installs it)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true makes this a failure")
	}
	t.Skip(msg)
	return ""
}

// fakeWorkload serves the runtime's metrics as the prod stack's web and worker pods would, values set by the test.
type fakeWorkload struct {
	mu                      sync.Mutex
	ok, errors              float64
	hourly, weekly, storeUp float64
}

func (f *fakeWorkload) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/web":
		// One request in 10,001 fails: 99.99% availability, 80% of a 99.95% budget left.
		f.ok, f.errors = f.ok+10000, f.errors+1
		fmt.Fprintf(w, "# TYPE oms_http_requests_total counter\n"+
			"oms_http_requests_total{method=\"POST\",route=\"/v1/orders\",code=\"201\"} %g\n"+
			"oms_http_requests_total{method=\"POST\",route=\"/v1/orders\",code=\"500\"} %g\n", f.ok, f.errors)
	case "/worker":
		fmt.Fprintf(w, "# TYPE oms_backup_last_success_timestamp_seconds gauge\n"+
			"oms_backup_last_success_timestamp_seconds{tier=\"hourly\"} %g\n"+
			"oms_backup_last_success_timestamp_seconds{tier=\"weekly\"} %g\n"+
			"# TYPE oms_backup_store_up gauge\noms_backup_store_up %g\n", f.hourly, f.weekly, f.storeUp)
	case "/readyz":
		w.WriteHeader(http.StatusOK)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeWorkload) set(fn func(*fakeWorkload)) { f.mu.Lock(); fn(f); f.mu.Unlock() }

// TestStatusFromALivePrometheus: a real Prometheus scrapes the prod stack's jobs (labelled as Managed Prometheus
// labels them) and status reads the SLO budget, the backups and DR readiness through its HTTP API, the same way it
// reads Managed Prometheus' API in a project.
func TestStatusFromALivePrometheus(t *testing.T) {
	bin := requirePrometheus(t)
	sf, err := stacks.LoadStackFile("../..", "prod")
	require.NoError(t, err)
	cfg, err := sf.Config()
	require.NoError(t, err)
	now := time.Now()
	work := &fakeWorkload{hourly: float64(now.Add(-30 * time.Minute).Unix()), weekly: float64(now.Add(-72 * time.Hour).Unix()), storeUp: 1}
	srv := httptest.NewServer(work)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	dir := t.TempDir()
	prefix := cfg.NamePrefix()
	config := fmt.Sprintf(`global: {scrape_interval: 1s}
scrape_configs:
  - job_name: %[1]s-web
    metrics_path: /web
    static_configs: [{targets: [%[2]q], labels: {cluster: %[1]s, namespace: oms}}]
  - job_name: %[1]s-worker
    metrics_path: /worker
    static_configs: [{targets: [%[2]q], labels: {cluster: %[1]s, namespace: oms}}]
`, prefix, host)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	promAddr := l.Addr().String()
	require.NoError(t, l.Close())
	logs := &bytes.Buffer{}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr)
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // by the PID this test started
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus:\n%s", logs)
		}
	})

	outputs := map[string]any{
		"runtimeImage": "us-docker.pkg.dev/omscloud-release/oms/oms@sha256:abc", "runtimeActiveColor": "green",
		"edgeUrls": []any{srv.URL, "http://127.0.0.1:1"},
	}
	src := StatusSources{HTTP: &http.Client{Timeout: 2 * time.Second}, Prometheus: PrometheusAPI{URL: "http://" + promAddr}, Now: time.Now}
	var st Status
	require.Eventually(t, func() bool {
		st = CollectStatus(context.Background(), cfg, outputs, src)
		return st.BudgetLeft != nil && len(st.Backups) == 2
	}, 60*time.Second, 500*time.Millisecond, "status reads the metrics once Prometheus has two scrapes")

	assert.Equal(t, "us-docker.pkg.dev/omscloud-release/oms/oms@sha256:abc", st.Release)
	assert.Equal(t, "green", st.Color)
	require.Len(t, st.Endpoints, 2)
	assert.Equal(t, "ready", st.Endpoints[0].State)
	assert.Contains(t, st.Endpoints[1].State, "unreachable")
	assert.InDelta(t, 0.9999, *st.Availability, 0.00002)
	assert.InDelta(t, 0.8, *st.BudgetLeft, 0.05, "one failure in 10,001 spends a fifth of the 0.05% budget")
	assert.Equal(t, time.Unix(int64(work.hourly), 0).UTC(), st.Backups["hourly"])
	assert.Contains(t, st.DR, "ready: a backup from 30m")

	var screen bytes.Buffer
	require.NoError(t, st.Render(&screen))
	for _, want := range []string{"release", "(color green)", "error budget left 80.", "last hourly backup", "last monthly backup  unknown", "DR"} {
		assert.Contains(t, screen.String(), want)
	}
	t.Logf("omsctl status:\n%s", screen.String())

	// The bucket stops answering: DR is no longer ready.
	work.set(func(w *fakeWorkload) { w.storeUp = 0 })
	require.Eventually(t, func() bool {
		return strings.HasPrefix(CollectStatus(context.Background(), cfg, outputs, src).DR, "not ready: the backup bucket")
	}, 30*time.Second, 500*time.Millisecond)

	// No metrics at all: every figure says unknown and the problem is named, nothing fails.
	src.Prometheus.URL = "http://127.0.0.1:1"
	st = CollectStatus(context.Background(), cfg, outputs, src)
	assert.Nil(t, st.BudgetLeft)
	assert.Contains(t, st.DR, "unknown")
	assert.NotEmpty(t, st.Problems)
}
