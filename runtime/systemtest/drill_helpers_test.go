package systemtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
)

// drillHTTP is the drills' HTTP client: no retries, bounded, many connections.
var drillHTTP = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// call does one request without failing the test (load goroutines record outcomes instead).
func call(ctx context.Context, method, url, key string, body any, header ...string) Reply {
	return (&Client{Key: key, HTTP: drillHTTP}).Call(ctx, method, url, body, header...)
}

// mustCall does a request that must answer want, decoding the answer into v.
func mustCall(t *testing.T, method, url, key string, body any, want int, v any, header ...string) {
	t.Helper()
	(&Client{T: t, Key: key, HTTP: drillHTTP}).JSON(method, url, body, want, v, header...)
}

// load runs clients goroutines calling fn with a global sequence number until stopped or max calls.
type load struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	seq  int
	max  int
}

func startLoad(clients, max int, fn func(seq int)) *load {
	l := &load{stop: make(chan struct{}), max: max}
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
				if seq >= l.max {
					return
				}
				fn(seq)
			}
		})
	}
	return l
}

// Stop ends the load and waits for every client's last request.
func (l *load) Stop() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// drillAccount creates an account through the admin endpoint and returns its API key.
func drillAccount(t *testing.T, base, id string) string {
	t.Helper()
	var out struct{ ID, APIKey string }
	mustCall(t, "POST", base+"/v1/accounts", adminToken, map[string]string{"id": id, "name": "Drill " + id}, http.StatusCreated, &out)
	require.NotEmpty(t, out.APIKey)
	return out.APIKey
}

// seedDrill puts locations loc-00..loc-(n-1) with plenty of stock of SKU-000..SKU-(skus-1).
func seedDrill(t *testing.T, base, key string, locations, skus, onHand int) {
	t.Helper()
	for i := range locations {
		mustCall(t, "PUT", fmt.Sprintf("%s/v1/locations/loc-%02d", base, i), key, map[string]any{"name": fmt.Sprintf("Location %d", i),
			"type": []string{"warehouse", "store"}[i%2], "lat": 50 + float64(i)*0.1, "lon": 4 + float64(i)*0.1}, http.StatusCreated, nil)
	}
	var b strings.Builder
	b.WriteString("sku,location,on_hand\n")
	for s := range skus {
		for l := range locations {
			fmt.Fprintf(&b, "SKU-%03d,loc-%02d,%d\n", s, l, onHand)
		}
	}
	var res oms.BatchResult
	mustCall(t, "POST", base+"/v1/inventory/batches", key, b.String(), http.StatusOK, &res, "Content-Type", "text/csv")
	require.EqualValues(t, locations*skus, res.Accepted, "rejected: %v", res.Rejected)
}

// orderBody is the body of drill order i: one unit of one SKU, home delivery near the locations.
func orderBody(ref string, i, skus int) map[string]any {
	return map[string]any{"ref": ref, "items": []map[string]any{{"sku": fmt.Sprintf("SKU-%03d", i%skus), "qty": 1}},
		"delivery": map[string]any{"type": "HD", "address": map[string]any{"lat": 50.2, "lon": 4.2}}}
}

// ordersPlaced is the load side of the order drills: every attempt by idempotency key.
type ordersPlaced struct {
	mu       sync.Mutex
	attempts []orderAttempt
}

type orderAttempt struct {
	Key, Ref string
	Seq      int
	Reply
	Order oms.Order
}

// place posts order seq with its own idempotency key and records the outcome.
func (o *ordersPlaced) place(ctx context.Context, base, apiKey string, seq, skus int) orderAttempt {
	a := orderAttempt{Key: fmt.Sprintf("drill-%06d", seq), Ref: fmt.Sprintf("ref-%06d", seq), Seq: seq}
	a.Reply = call(ctx, "POST", base+"/v1/orders", apiKey, orderBody(a.Ref, seq, skus), "Idempotency-Key", a.Key)
	if a.Status == http.StatusCreated {
		if err := json.Unmarshal(a.Body, &a.Order); err != nil {
			a.Err = fmt.Errorf("decode 201 body: %w", err)
		}
	}
	o.mu.Lock()
	o.attempts = append(o.attempts, a)
	o.mu.Unlock()
	return a
}

func (o *ordersPlaced) snapshot() []orderAttempt {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]orderAttempt(nil), o.attempts...)
}

// checkAcknowledged asserts that a 201 answer is the order that was asked for.
func checkAcknowledged(t *testing.T, a orderAttempt) {
	t.Helper()
	require.NoError(t, a.Err, "order %s: 201 with an unreadable body", a.Ref)
	require.NotEmpty(t, a.Order.ID, "order %s: 201 without an id", a.Ref)
	require.Equal(t, a.Ref, a.Order.Ref, "order %s: 201 answered another order", a.Ref)
	require.Len(t, a.Order.Items, 1, "order %s", a.Ref)
}

// retryOrder resends a failed attempt with its idempotency key until it is acknowledged (5 s at most), as a client
// does, and returns the order and whether it was a replay (the failed request had committed).
func retryOrder(ctx context.Context, t *testing.T, base, key string, a orderAttempt) (oms.Order, bool) {
	t.Helper()
	var r Reply
	for range 50 {
		if r = call(ctx, "POST", base+"/v1/orders", key, orderBody(a.Ref, a.Seq, drillSKUs), "Idempotency-Key", a.Key); r.Status == http.StatusCreated {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, http.StatusCreated, r.Status, "retry of order %s: %v %s", a.Ref, r.Err, r.Body)
	var o oms.Order
	require.NoError(t, json.Unmarshal(r.Body, &o))
	require.Equal(t, a.Ref, o.Ref)
	return o, r.Replayed
}

// retryFailed retries every failed attempt (retryOrder), records each one's order in orderOf, and returns how many
// had committed before their answer was lost.
func retryFailed(ctx context.Context, t *testing.T, base, key string, failed []orderAttempt, orderOf map[string]string) int {
	t.Helper()
	ambiguous := 0
	for _, a := range failed {
		o, replayed := retryOrder(ctx, t, base, key, a)
		if replayed {
			ambiguous++
		}
		orderOf[a.Key] = o.ID
	}
	return ambiguous
}

// allOrders lists every order of the account through the API.
func allOrders(t *testing.T, base, key string) map[string]oms.Order {
	t.Helper()
	out := map[string]oms.Order{}
	cursor := ""
	for {
		var page oms.OrderPage
		mustCall(t, "GET", base+"/v1/orders?limit=200&cursor="+cursor, key, nil, http.StatusOK, &page)
		for _, o := range page.Orders {
			out[o.ID] = *o
		}
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

// allEvents reads the account's whole event log through the API.
func allEvents(t *testing.T, base, key string) []oms.Event {
	t.Helper()
	var out []oms.Event
	after := int64(0)
	for {
		var page struct{ Events []oms.Event }
		mustCall(t, "GET", fmt.Sprintf("%s/v1/events?limit=1000&after=%d", base, after), key, nil, http.StatusOK, &page)
		out = append(out, page.Events...)
		if len(page.Events) < 1000 {
			return out
		}
		after = page.Events[len(page.Events)-1].Seq
	}
}

// countCreated is the number of orders still waiting for the worker.
func countCreated(t *testing.T, base, key string) int {
	t.Helper()
	var page oms.OrderPage
	mustCall(t, "GET", base+"/v1/orders?limit=200&status=CREATED", key, nil, http.StatusOK, &page)
	return len(page.Orders)
}

// checkOrderEvents asserts that every order in ids has exactly its order.created event and one outcome
// event in the log, and returns the log's events by order id.
func checkOrderEvents(t *testing.T, events []oms.Event, ids map[string]bool) map[string][]oms.Event {
	t.Helper()
	byOrder := map[string][]oms.Event{}
	for _, e := range events {
		if id, ok := strings.CutPrefix(e.Entity, "order:"); ok {
			byOrder[id] = append(byOrder[id], e)
		}
	}
	bad := 0
	for id := range ids {
		evs := byOrder[id]
		types := make([]string, len(evs))
		for i, e := range evs {
			types[i] = e.Type
		}
		ok := len(evs) == 3 && evs[0].Type == oms.EventOrderCreated && evs[1].Type == oms.EventWorkflowRuleApplied &&
			(evs[2].Type == oms.EventOrderAllocated || evs[2].Type == oms.EventOrderPendingStock)
		if !ok {
			if bad < 5 {
				t.Errorf("order %s: events %v, want [order.created workflow.rule_applied order.allocated|order.pending_stock]", id, types)
			}
			bad++
		}
	}
	require.Zero(t, bad, "orders with a wrong event history")
	return byOrder
}

var metricLine = regexp.MustCompile(`(?m)^(oms_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$`)

// scrape reads the process's counters (label-less ones, and labelled ones summed by name).
func scrape(ctx context.Context, base string) (map[string]float64, error) {
	r := call(ctx, "GET", base+"/metrics", "", nil)
	if r.Err != nil {
		return nil, r.Err
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %d", r.Status)
	}
	out := map[string]float64{}
	for _, m := range metricLine.FindAllStringSubmatch(string(r.Body), -1) {
		v, err := strconv.ParseFloat(m[3], 64)
		if err == nil {
			out[m[1]] += v
		}
	}
	return out, nil
}

// percentile of durations (p in 0..100).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// isTransportErr tells a refused/reset/timed-out connection apart from an answer.
func isTransportErr(r Reply) bool {
	return r.Status == 0 && r.Err != nil && !errors.Is(r.Err, context.Canceled)
}
