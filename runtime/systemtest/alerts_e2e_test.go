package systemtest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/localenv"
	"github.com/omscloud/omscloud/runtime/localenv/localenvtest"
	"github.com/omscloud/omscloud/runtime/postgres"
)

// TestPrometheusAlertsOnTheLiveRuntime: a real Prometheus (Debian's) scrapes real `oms serve` and `oms worker`
// processes under order load and evaluates the production alert rules — rendered from
// components/observability/rules, the source Cloud Monitoring's alert policies are declared from, with every `for`
// shortened to 3s and a 1s evaluation interval; the expressions are the production ones. Killing the worker fires
// OMSWorkerDown while the API's availability alert stays quiet; restarting it resolves the alert.
func TestPrometheusAlertsOnTheLiveRuntime(t *testing.T) {
	localenvtest.RequireBinaries(t, "prometheus")
	promBin, err := exec.LookPath("prometheus")
	require.NoError(t, err)
	reg, dbURL := omstest.Registry(t, nil)
	start := time.Now()

	key := orderingAccount(t, reg)

	webPort, workerPort, promPort := loopbackPort(t), loopbackPort(t), loopbackPort(t)
	base := map[string]string{"OMS_DATABASE_URL": dbURL, "OMS_LOG_LEVEL": "info", "OMS_DRAIN_DELAY": "0s"}
	web := Start(t, "serve", with(base, "OMS_LISTEN", fmt.Sprintf("127.0.0.1:%d", webPort)), "serve")
	workerEnv := with(base, "OMS_LISTEN", fmt.Sprintf("127.0.0.1:%d", workerPort), "OMS_BACKUP_URL", "file://"+t.TempDir())
	worker := Start(t, "worker-1", workerEnv, "worker")
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", webPort))
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", workerPort))

	prom := startPrometheus(t, promBin, promPort, web.MetricsAddr, fmt.Sprintf("127.0.0.1:%d", workerPort))

	// Order load for the whole test: the SLO series are live, as in production.
	load := startOrderLoad(t, fmt.Sprintf("http://127.0.0.1:%d", webPort), key)

	eventually(t, 60*time.Second, "Prometheus scraping orders from serve and the worker running", func() bool {
		return prom.value(t, `sum(rate(oms_http_requests_total{job="web",route="/v1/orders",code="201"}[15s]))`) > 0 &&
			prom.value(t, `sum(oms_worker_running{job="worker"})`) == 1
	})
	// Before the first scrape the worker's series were absent: the alert may have fired; a running worker clears it.
	eventually(t, 30*time.Second, "no OMSWorkerDown while the worker runs", func() bool { return prom.alerts(t, "OMSWorkerDown") == "" })

	killed := time.Now()
	require.NoError(t, worker.Kill()) // SIGKILL, as a crash or an OOM kill
	eventually(t, 60*time.Second, "OMSWorkerDown firing after the kill", func() bool { return prom.alerts(t, "OMSWorkerDown") == "firing" })
	firedAfter := time.Since(killed)
	assert.Empty(t, prom.alerts(t, "OMSAvailabilityBudgetBurnFast"), "the API kept answering: the availability SLO does not page")

	restarted := time.Now()
	Start(t, "worker-2", workerEnv, "worker")
	eventually(t, 60*time.Second, "OMSWorkerDown resolved after the restart", func() bool { return prom.alerts(t, "OMSWorkerDown") == "" })
	resolvedAfter := time.Since(restarted)

	load.stop()
	t.Logf("orders sent %d (%d not 201); OMSWorkerDown fired %s after the kill, resolved %s after the restart; test %s",
		load.sent.Load(), load.failed.Load(), firedAfter.Round(100*time.Millisecond), resolvedAfter.Round(100*time.Millisecond),
		time.Since(start).Round(time.Second))
	assert.Zero(t, load.failed.Load(), "every order was accepted while the worker was down")
}

// TestPrometheusPagesWhenTheDatabaseIsLost: with its own PostgreSQL (a primary and a streaming standby), `oms
// serve` under load loses the primary; its 5xx answers burn the availability budget and OMSAvailabilityBudgetBurnFast
// fires. Promoting the standby restores the orders. The alert then stays on until its 5-minute and 30-minute windows
// are clean (the promtool case "5% errors page within minutes and resolve once the 30m window is clean" proves the
// reset), so this test stops at the recovery of the service.
func TestPrometheusPagesWhenTheDatabaseIsLost(t *testing.T) {
	localenvtest.RequireBinaries(t, append([]string{"prometheus"}, localenvtest.PostgresBinaries...)...)
	promBin, err := exec.LookPath("prometheus")
	require.NoError(t, err)
	ctx := context.Background()
	start := time.Now()
	pg, err := localenv.StartPostgres(ctx, localenv.PostgresOptions{Dir: t.TempDir(), Standby: true,
		Settings: localenvtest.TestPostgresSettings, Logger: localenvtest.TestLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Stop() })
	conn, err := pgx.Connect(ctx, pg.PrimaryURL("postgres"))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE DATABASE oms")
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	dbURL := pg.URL("oms")
	reg, err := postgres.Open(ctx, postgres.Options{URL: dbURL})
	require.NoError(t, err)
	t.Cleanup(reg.Close)
	require.NoError(t, reg.Migrate(ctx))
	require.NoError(t, pg.WaitStreaming(ctx))
	key := orderingAccount(t, reg)

	webPort, workerPort, promPort := loopbackPort(t), loopbackPort(t), loopbackPort(t)
	base := map[string]string{"OMS_DATABASE_URL": dbURL, "OMS_LOG_LEVEL": "info", "OMS_DRAIN_DELAY": "0s"}
	web := Start(t, "serve", with(base, "OMS_LISTEN", fmt.Sprintf("127.0.0.1:%d", webPort)), "serve")
	Start(t, "worker", with(base, "OMS_LISTEN", fmt.Sprintf("127.0.0.1:%d", workerPort)), "worker")
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", webPort))
	prom := startPrometheus(t, promBin, promPort, web.MetricsAddr, fmt.Sprintf("127.0.0.1:%d", workerPort))
	load := startOrderLoad(t, fmt.Sprintf("http://127.0.0.1:%d", webPort), key)
	eventually(t, 60*time.Second, "Prometheus scraping accepted orders", func() bool {
		return prom.value(t, `sum(rate(oms_http_requests_total{job="web",route="/v1/orders",code="201"}[15s]))`) > 0
	})
	require.Empty(t, prom.alerts(t, "OMSAvailabilityBudgetBurnFast"), "no budget burns while every order is accepted")

	lost := time.Now()
	require.NoError(t, pg.KillPrimary())
	eventually(t, 60*time.Second, "OMSAvailabilityBudgetBurnFast firing after the primary is lost", func() bool {
		return prom.alerts(t, "OMSAvailabilityBudgetBurnFast") == "firing"
	})
	firedAfter := time.Since(lost)
	failedAtFire := load.failed.Load()

	require.NoError(t, pg.Promote(ctx))
	promoted := time.Now()
	okBefore := load.ok.Load()
	eventually(t, 60*time.Second, "orders accepted again after the standby's promotion", func() bool { return load.ok.Load() > okBefore+20 })
	t.Logf("orders sent %d, %d failed by the time the page fired %s after the primary was lost; accepted again %s after the promotion; test %s",
		load.sent.Load(), failedAtFire, firedAfter.Round(100*time.Millisecond), time.Since(promoted).Round(100*time.Millisecond),
		time.Since(start).Round(time.Second))
	assert.Equal(t, "firing", prom.alerts(t, "OMSAvailabilityBudgetBurnFast"), "the page holds until its short window is clean")
}

// orderingAccount creates account acme with a warehouse stocked for the load and returns its API key.
func orderingAccount(t *testing.T, reg *postgres.Registry) string {
	t.Helper()
	key, _ := stockedAccount(t, reg, "SKU", 1000000)
	return key
}

// orderLoad creates orders from 4 clients, each about every 20 ms, until stopped.
type orderLoad struct {
	sent, ok, failed atomic.Int64
	cancel           context.CancelFunc
	wg               sync.WaitGroup
}

func startOrderLoad(t *testing.T, api, key string) *orderLoad {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &orderLoad{cancel: cancel}
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 4 {
		l.wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				body := fmt.Sprintf(`{"ref":"o-%d-%d","items":[{"sku":"SKU","qty":1}],"delivery":{"type":"HD","address":{"lat":52,"lon":4}}}`, w, i)
				req, _ := http.NewRequestWithContext(ctx, "POST", api+"/v1/orders", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Idempotency-Key", fmt.Sprintf("k-%d-%d", w, i))
				resp, err := client.Do(req)
				if err == nil {
					resp.Body.Close()
					l.sent.Add(1)
					if resp.StatusCode == http.StatusCreated {
						l.ok.Add(1)
					} else {
						l.failed.Add(1)
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	t.Cleanup(l.stop)
	return l
}

func (l *orderLoad) stop() { l.cancel(); l.wg.Wait() }

// loopbackPort is a free TCP port on 127.0.0.1.
func loopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	eventually(t, 60*time.Second, url, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// with is env with more name, value pairs.
func with(env map[string]string, kv ...string) map[string]string {
	out := maps.Clone(env)
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// promServer is a Prometheus server this test started.
type promServer struct{ base string }

// startPrometheus scrapes serve's metrics listener and the worker's port every second under the jobs the rules
// select (web, worker), as the PodMonitorings name them, and evaluates the rules every second.
func startPrometheus(t *testing.T, bin string, port int, webTarget, workerTarget string) *promServer {
	t.Helper()
	dir := t.TempDir()
	gen := exec.Command("go", "run", "./components/observability/rules/cmd/promrules",
		"-web", `job="web"`, "-worker", `job="worker"`, "-for", "3s", "-interval", "1s")
	gen.Dir = filepath.Join("..", "..") // the repository root: the rules' module
	rulesYAML, err := gen.Output()
	require.NoError(t, err, "render the rules from components/observability/rules")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.yaml"), rulesYAML, 0o644))
	config := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [rules.yaml]
scrape_configs:
  - job_name: web
    static_configs: [{targets: [%q]}]
  - job_name: worker
    static_configs: [{targets: [%q]}]
`, webTarget, workerTarget)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644))
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	require.NoError(t, err)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus.log:\n%s", b)
		}
	})
	p := &promServer{base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	waitHTTP(t, p.base+"/-/ready")
	return p
}

func (p *promServer) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(p.base + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, path)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}

// value is the first sample of an instant query (0 when empty).
func (p *promServer) value(t *testing.T, query string) float64 {
	t.Helper()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/query?query="+url.QueryEscape(query), &r)
	if len(r.Data.Result) == 0 {
		return 0
	}
	var f float64
	_, _ = fmt.Sscan(fmt.Sprint(r.Data.Result[0].Value[1]), &f)
	return f
}

// alerts is the state of the named alert: "firing", "pending" or "" (inactive).
func (p *promServer) alerts(t *testing.T, name string) string {
	t.Helper()
	var r struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/alerts", &r)
	state := ""
	for _, a := range r.Data.Alerts {
		if a.Labels["alertname"] == name && (state == "" || a.State == "firing") {
			state = a.State
		}
	}
	return state
}
