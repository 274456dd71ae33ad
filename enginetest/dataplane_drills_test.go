package enginetest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/enginetest"
	oms "github.com/omscloud/omscloud/runtime"
	"github.com/stretchr/testify/require"
)

// drillSKUs is how many SKUs the drill account stocks; every order takes one unit of one of them.
const drillSKUs = 20

// omsAPI calls the runtime through a forwarded address, as a client outside the cluster would.
type omsAPI struct {
	base string
	http *http.Client
}

func newOMSAPI(addr string) *omsAPI {
	// No client-side retries beyond what net/http does for a request carrying an Idempotency-Key (resent once when
	// a kept-alive connection turns out closed before the request was written).
	return &omsAPI{base: "http://" + addr, http: &http.Client{Timeout: 15 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 16, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}}
}

// call does one request and returns the status (0 for a transport error) and body.
func (a *omsAPI) call(ctx context.Context, method, path, token string, body any, header ...string) (int, []byte, error) {
	var r io.Reader
	contentType := "application/json"
	switch b := body.(type) {
	case nil:
	case string:
		r, contentType = strings.NewReader(b), "text/csv"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// must does a request that has to answer want, decoding the answer into v (if not nil).
func (a *omsAPI) must(ctx context.Context, t *testing.T, method, path, token string, body any, want int, v any, header ...string) {
	t.Helper()
	code, b, err := a.call(ctx, method, path, token, body, header...)
	require.NoError(t, err, "%s %s", method, path)
	require.Equal(t, want, code, "%s %s: %s", method, path, b)
	if v != nil {
		require.NoError(t, json.Unmarshal(b, v), "%s %s", method, path)
	}
}

// orderLoad places orders continuously, each with its own idempotency key, each followed by an availability
// question, and records every outcome.
type orderLoad struct {
	api  *omsAPI
	key  string
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	seq      int
	ids      []string
	failures []string
	byPhase  map[string]int
	phase    string
}

func startOrderLoad(api *omsAPI, apiKey string, clients int) *orderLoad {
	l := &orderLoad{api: api, key: apiKey, stop: make(chan struct{}), byPhase: map[string]int{}, phase: "start"}
	for range clients {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.mu.Lock()
				seq := l.seq
				l.seq++
				l.mu.Unlock()
				l.place(seq)
				l.ask(seq)
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	return l
}

func (l *orderLoad) place(seq int) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ref := fmt.Sprintf("drill-%06d", seq)
	body := map[string]any{"ref": ref, "items": []map[string]any{{"sku": fmt.Sprintf("SKU-%03d", seq%drillSKUs), "qty": 1}},
		"delivery": map[string]any{"type": "HD", "address": map[string]any{"lat": 50.2, "lon": 4.2}}}
	code, b, err := l.api.call(ctx, http.MethodPost, "/v1/orders", l.key, body, "Idempotency-Key", ref)
	if code == 0 {
		// What the idempotency key is for: a client resends after a transport error (a kept-alive connection that a
		// terminating pod closed as the request went out), and gets the one order either way.
		l.retried()
		code, b, err = l.api.call(ctx, http.MethodPost, "/v1/orders", l.key, body, "Idempotency-Key", ref)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byPhase[l.phase]++
	if code != http.StatusCreated {
		l.failures = append(l.failures, fmt.Sprintf("%s [%s]: %d %v %.200s", ref, l.phase, code, err, b))
		return
	}
	var o oms.Order
	if err := json.Unmarshal(b, &o); err != nil || o.Ref != ref {
		l.failures = append(l.failures, fmt.Sprintf("%s [%s]: 201 with %.200s", ref, l.phase, b))
		return
	}
	l.ids = append(l.ids, o.ID)
}

// ask asks for the availability of the SKU order seq takes: the cache (Redis through the sentinels) answers, or
// PostgreSQL when the cache cannot; either way 200.
func (l *orderLoad) ask(seq int) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	body := map[string]any{"items": []map[string]any{{"sku": fmt.Sprintf("SKU-%03d", seq%drillSKUs), "qty": 1}},
		"near": map[string]float64{"lat": 50.1, "lon": 4.1}}
	code, b, err := l.api.call(ctx, http.MethodPost, "/v1/availability", l.key, body)
	if code == 0 {
		l.retried() // a read: resent after a transport error, as any client does
		code, b, err = l.api.call(ctx, http.MethodPost, "/v1/availability", l.key, body)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byPhase[l.phase]++
	if code != http.StatusOK {
		l.failures = append(l.failures, fmt.Sprintf("availability %d [%s]: %d %v %.200s", seq, l.phase, code, err, b))
	}
}

// retried counts a request resent once after a transport error (reported, never hidden).
func (l *orderLoad) retried() {
	l.mu.Lock()
	l.byPhase["resent after a transport error"]++
	l.mu.Unlock()
}

// Phase names the requests that start from now on (for the report).
func (l *orderLoad) Phase(p string) {
	l.mu.Lock()
	l.phase = p
	l.mu.Unlock()
}

// Stop ends the load and returns the acknowledged order ids and the failed requests.
func (l *orderLoad) Stop() (ids, failures []string, byPhase map[string]int) {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ids), slices.Clone(l.failures), l.byPhase
}

// drillEnv is what every drill uses: the public Service through a web node, the admin token, a seeded account.
type drillEnv struct {
	api    *omsAPI
	apiKey string
	prefix string
	ns     string
	d      *enginetest.DataPlane
	// secrets and config are the runtime's Secret and ConfigMap as deployed.
	secrets, config map[string]string
}

func newDrillEnv(ctx context.Context, t *testing.T, d *enginetest.DataPlane, prefix, namespace string) *drillEnv {
	t.Helper()
	svc, err := d.Get(ctx, "service", "-n", namespace, omsruntime.ServiceName(prefix))
	require.NoError(t, err)
	ip := svc["spec"].(map[string]any)["clusterIP"].(string)
	// Through a web node's kube-proxy: a drained node keeps it, and the cache drill cuts a stateful node (cutting the
	// client's own route is not what any drill is about).
	var via enginetest.DataPlaneNode
	for _, n := range d.Nodes {
		if n.Labels["omscloud.io/pool"] == "web" {
			via = n
		}
	}
	require.NotEmpty(t, via.Netns, "a web node")
	addr, err := d.Forward(ctx, via.Netns, net.JoinHostPort(ip, "80"))
	require.NoError(t, err)
	sec, err := d.Get(ctx, "secret", "-n", namespace, prefix+"-runtime")
	require.NoError(t, err)
	secrets := map[string]string{}
	for k, v := range sec["data"].(map[string]any) {
		b, err := base64.StdEncoding.DecodeString(v.(string))
		require.NoError(t, err)
		secrets[k] = string(b)
	}
	cm, err := d.Get(ctx, "configmap", "-n", namespace, prefix+"-runtime")
	require.NoError(t, err)
	config := map[string]string{}
	for k, v := range cm["data"].(map[string]any) {
		config[k] = fmt.Sprint(v)
	}
	e := &drillEnv{api: newOMSAPI(addr), prefix: prefix, ns: namespace, d: d, secrets: secrets, config: config}
	var acct struct{ APIKey string }
	e.api.must(ctx, t, http.MethodPost, "/v1/accounts", secrets["OMS_ADMIN_TOKEN"], map[string]string{"id": "drill", "name": "Drill"}, http.StatusCreated, &acct)
	e.apiKey = acct.APIKey
	for i := range 2 {
		e.api.must(ctx, t, http.MethodPut, fmt.Sprintf("/v1/locations/loc-%02d", i), e.apiKey, map[string]any{"name": fmt.Sprintf("Location %d", i),
			"type": "warehouse", "lat": 50 + float64(i)*0.1, "lon": 4 + float64(i)*0.1}, http.StatusCreated, nil)
	}
	var csv strings.Builder
	csv.WriteString("sku,location,on_hand\n")
	for s := range drillSKUs {
		for l := range 2 {
			fmt.Fprintf(&csv, "SKU-%03d,loc-%02d,%d\n", s, l, 100000)
		}
	}
	e.api.must(ctx, t, http.MethodPost, "/v1/inventory/batches", e.apiKey, csv.String(), http.StatusOK, nil)
	return e
}

// checkOrders waits until the worker has processed every acknowledged order (none left CREATED) and asserts that
// each is there with exactly one order.created event and one outcome event: nothing lost, nothing twice.
func (e *drillEnv) checkOrders(ctx context.Context, t *testing.T, ids []string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var page oms.OrderPage
		e.api.must(ctx, t, http.MethodGet, "/v1/orders?limit=200&status=CREATED", e.apiKey, nil, http.StatusOK, &page)
		if len(page.Orders) == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "%d orders still CREATED after 3 minutes", len(page.Orders))
		time.Sleep(time.Second)
	}
	byOrder := map[string][]string{}
	after := int64(0)
	for {
		var page struct{ Events []oms.Event }
		e.api.must(ctx, t, http.MethodGet, fmt.Sprintf("/v1/events?limit=1000&after=%d", after), e.apiKey, nil, http.StatusOK, &page)
		for _, ev := range page.Events {
			if id, ok := strings.CutPrefix(ev.Entity, "order:"); ok {
				byOrder[id] = append(byOrder[id], ev.Type)
			}
		}
		if len(page.Events) < 1000 {
			break
		}
		after = page.Events[len(page.Events)-1].Seq
	}
	bad := []string{}
	for _, id := range ids {
		evs := byOrder[id]
		created, outcomes := 0, 0
		for _, typ := range evs {
			switch typ {
			case oms.EventOrderCreated:
				created++
			case oms.EventOrderAllocated, oms.EventOrderPendingStock:
				outcomes++
			}
		}
		if created != 1 || outcomes != 1 {
			bad = append(bad, fmt.Sprintf("%s: %v", id, evs))
		}
	}
	require.Empty(t, bad, "acknowledged orders without exactly one order.created and one outcome event (%d of %d)", len(bad), len(ids))
}

// nodeOfColor is the node of a running web pod of color.
func nodeOfColor(ctx context.Context, t *testing.T, d *enginetest.DataPlane, namespace, prefix, color string) string {
	t.Helper()
	pods, err := d.Get(ctx, "pods", "-n", namespace, "-l", omsruntime.ColorLabel+"="+color)
	require.NoError(t, err)
	for _, p := range pods["items"].([]any) {
		spec := p.(map[string]any)["spec"].(map[string]any)
		if n, _ := spec["nodeName"].(string); n != "" {
			return n
		}
	}
	t.Fatalf("no %s pod of %s is scheduled", color, prefix)
	return ""
}

// redisMaster is the current master (a pod name) as the sentinels see it, and its node.
func redisMaster(ctx context.Context, t *testing.T, d *enginetest.DataPlane, e *drillEnv, prefix string) (string, string) {
	t.Helper()
	seen, err := redisMastersSeen(ctx, d, e, prefix)
	require.NoError(t, err)
	var m string
	for _, master := range seen {
		require.True(t, m == "" || m == master, "the sentinels disagree on the master before the drill: %v", seen)
		m = master
	}
	pod, err := d.Get(ctx, "pod", "-n", e.ns, m)
	require.NoError(t, err)
	return m, pod["spec"].(map[string]any)["nodeName"].(string)
}

// redisMastersSeen asks every sentinel it can reach which pod is the master, and returns the answers by the
// sentinel's node. A sentinel that was cut off answers what it saw last until it hears the others' newer
// configuration, so a drill asks each one rather than the first that answers.
func redisMastersSeen(ctx context.Context, d *enginetest.DataPlane, e *drillEnv, prefix string) (map[string]string, error) {
	pods, err := d.Get(ctx, "pods", "-n", e.ns, "-l", "app.kubernetes.io/component=cache")
	if err != nil {
		return nil, err
	}
	seen := map[string]string{}
	var lastErr error
	for _, p := range pods["items"].([]any) {
		pm := p.(map[string]any)
		node, _ := pm["spec"].(map[string]any)["nodeName"].(string)
		name := pm["metadata"].(map[string]any)["name"].(string)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := d.Kubectl(cctx, nil, "-n", e.ns, "exec", name, "-c", "sentinel", "--", "redis-cli", "-p", "26379", "--no-auth-warning",
			"-a", e.secrets["OMS_REDIS_SENTINEL_PASSWORD"], "SENTINEL", "get-master-addr-by-name", e.config["OMS_REDIS_MASTER"])
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		// Sentinels announce hostnames: <pod>.<headless service>.<namespace>.svc.cluster.local.
		host, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
		if pod, _, ok := strings.Cut(host, "."); ok && strings.HasPrefix(pod, prefix+"-redis-") {
			seen[node] = pod
			continue
		}
		lastErr = fmt.Errorf("sentinel on %s answered %q", name, out)
	}
	if len(seen) == 0 {
		return nil, lastErr
	}
	return seen, nil
}
