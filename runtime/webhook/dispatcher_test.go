package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/metrics"
	"github.com/omscloud/omscloud/runtime/postgres"
	"github.com/omscloud/omscloud/runtime/webhook"
)

func TestMain(m *testing.M) {
	code := m.Run()
	omstest.Stop()
	os.Exit(code)
}

const secret = "whsec_0123456789abcdef"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// request is what a receiver saw.
type request struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is an httptest server answering with statuses in turn (the last one repeats).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	got      []request
	delay    time.Duration
	// statusFor, when set, answers instead of statuses, by OMS-Delivery and the how-manieth request of it.
	statusFor func(delivery string, n int) int
	perID     map[string]int
	inflight  map[string]int // by OMS-Delivery
	overlap   int            // times a delivery arrived while another attempt of it was in flight
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses, inflight: map[string]int{}, perID: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		id := req.Header.Get(webhook.HeaderDelivery)
		r.mu.Lock()
		r.got = append(r.got, request{header: req.Header.Clone(), body: body, at: time.Now()})
		if r.inflight[id] > 0 {
			r.overlap++
		}
		r.inflight[id]++
		r.perID[id]++
		status := r.statuses[0]
		if len(r.statuses) > 1 {
			r.statuses = r.statuses[1:]
		}
		if r.statusFor != nil {
			status = r.statusFor(id, r.perID[id])
		}
		delay := r.delay
		r.mu.Unlock()
		time.Sleep(delay)
		r.mu.Lock()
		r.inflight[id]--
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

func (r *receiver) answer(statuses ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = statuses
}

func newAccount(t *testing.T, reg *postgres.Registry, id string) *postgres.Store {
	t.Helper()
	ctx := context.Background()
	_, err := reg.CreateAccount(ctx, &oms.Account{ID: id, Name: "Test " + id})
	require.NoError(t, err)
	s, err := reg.Store(ctx, id)
	require.NoError(t, err)
	return s.(*postgres.Store)
}

func putWebhook(t *testing.T, s *postgres.Store, name, url string, enabled bool, events ...string) {
	t.Helper()
	_, _, err := s.PutWebhook(context.Background(), name, &oms.WebhookInput{URL: url, Events: events, Secret: secret, Enabled: &enabled})
	require.NoError(t, err)
}

// emit writes a location.upserted event to the account's log.
func emit(t *testing.T, s *postgres.Store, ref string) {
	t.Helper()
	lat, lon := 52.0, 4.0
	_, err := s.PutLocation(context.Background(), &oms.Location{Ref: ref, Name: ref, Type: oms.LocationStore, Lat: &lat, Lon: &lon})
	require.NoError(t, err)
}

// start runs a dispatcher with small delays until the test ends.
func start(t *testing.T, reg oms.AccountService, m *metrics.Metrics, tweak ...func(*webhook.Options)) {
	o := webhook.Options{Accounts: reg, Metrics: m, Logger: quiet, Timeout: 2 * time.Second, BaseDelay: 150 * time.Millisecond,
		MaxDelay: 10 * time.Second, MaxAttempts: 3, MaxIdle: 10 * time.Millisecond, AccountRefresh: 50 * time.Millisecond}
	for _, f := range tweak {
		f(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- webhook.NewDispatcher(o).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})
}

func deliveries(t *testing.T, s *postgres.Store, name string) []*oms.WebhookDelivery {
	t.Helper()
	ds, err := s.WebhookDeliveries(context.Background(), name, oms.DeliveryFilter{})
	require.NoError(t, err)
	return ds
}

func waitStatus(t *testing.T, s *postgres.Store, name string, n int, status string) []*oms.WebhookDelivery {
	t.Helper()
	var ds []*oms.WebhookDelivery
	require.Eventually(t, func() bool {
		ds = deliveries(t, s, name)
		if len(ds) != n {
			return false
		}
		for _, d := range ds {
			if d.Status != status {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "%d deliveries of %s %s", n, name, status)
	return ds
}

func TestReceiverFailingTwiceGetsThreeSignedAttemptsOfOneDeliveryWithGrowingBackoff(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	rcv := newReceiver(t, 500, 500, 200)
	putWebhook(t, s, "locations", rcv.URL+"/hooks", true, "location.*")
	emit(t, s, "st-1")
	m := metrics.New()
	start(t, reg, m)

	ds := waitStatus(t, s, "locations", 1, oms.DeliveryDelivered)
	d := ds[0]
	reqs := rcv.requests()
	require.Len(t, reqs, 3)
	for i, r := range reqs {
		assert.Equal(t, d.ID, r.header.Get(webhook.HeaderDelivery), "attempt %d: the same idempotency key", i+1)
		assert.Equal(t, "locations", r.header.Get(webhook.HeaderWebhook))
		assert.Equal(t, oms.EventLocationUpserted, r.header.Get(webhook.HeaderEventType))
		assert.Equal(t, "application/json", r.header.Get("Content-Type"))
		sig := r.header.Get(webhook.HeaderSignature)
		assert.Contains(t, sig, "t="+r.header.Get(webhook.HeaderTimestamp)+",v1=")
		assert.NoError(t, webhook.Verify(secret, sig, r.body, 5*time.Minute), "attempt %d verifies with the secret", i+1)
		assert.ErrorIs(t, webhook.Verify("whsec_wrong_secret_123", sig, r.body, 5*time.Minute), webhook.ErrBadSignature)
		assert.ErrorIs(t, webhook.Verify(secret, sig, append([]byte(" "), r.body...), 5*time.Minute), webhook.ErrBadSignature, "a changed body fails")
		var p map[string]any
		require.NoError(t, json.Unmarshal(r.body, &p))
		assert.Equal(t, d.EventID, p["id"])
		assert.Equal(t, "acme", p["account"])
		assert.Equal(t, "location:st-1", p["entity"])
		assert.Equal(t, oms.EventLocationUpserted, p["type"])
		assert.Equal(t, "st-1", p["data"].(map[string]any)["ref"])
		assert.NotEmpty(t, p["at"])
	}

	// The delivery log: three attempts with their answers and growing delays.
	require.Len(t, d.Attempts, 3)
	var codes []int
	for _, a := range d.Attempts {
		codes = append(codes, a.StatusCode)
		assert.Empty(t, a.Error)
	}
	assert.Equal(t, []int{500, 500, 200}, codes)
	a1, a2, a3 := d.Attempts[0], d.Attempts[1], d.Attempts[2]
	require.NotNil(t, a1.NextAttemptAt)
	require.NotNil(t, a2.NextAttemptAt)
	assert.Nil(t, a3.NextAttemptAt, "delivered: no next attempt")
	delay1, delay2 := a1.NextAttemptAt.Sub(a1.At), a2.NextAttemptAt.Sub(a2.At)
	assert.GreaterOrEqual(t, delay1, 150*3/4*time.Millisecond, "first delay ≥ base less 25%% jitter")
	assert.Greater(t, delay2, delay1, "backoff grows")
	assert.GreaterOrEqual(t, delay2, 2*150*3/4*time.Millisecond)
	assert.False(t, a2.At.Before(a1.NextAttemptAt.Add(-5*time.Millisecond)), "no retry before its time")
	assert.False(t, a3.At.Before(a2.NextAttemptAt.Add(-5*time.Millisecond)), "no retry before its time")
	assert.Equal(t, []int{1, 2, 3}, []int{a1.N, a2.N, a3.N})
	assert.Equal(t, 2.0, attempts(t, m, "retry"))
	assert.Equal(t, 1.0, attempts(t, m, "delivered"))
}

func TestAlwaysFailingReceiverIsDeadLetteredAndRedeliverDelivers(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	failing := newReceiver(t, 503)
	gone := newReceiver(t, 410)
	putWebhook(t, s, "flaky", failing.URL, true, "*")
	putWebhook(t, s, "gone", gone.URL, true, "*")
	emit(t, s, "st-1")
	m := metrics.New()
	start(t, reg, m)

	d := waitStatus(t, s, "flaky", 1, oms.DeliveryDead)[0]
	require.Len(t, d.Attempts, 3, "dead after MaxAttempts")
	assert.Nil(t, d.Attempts[2].NextAttemptAt)
	assert.Len(t, failing.requests(), 3)
	g := waitStatus(t, s, "gone", 1, oms.DeliveryDead)[0]
	assert.Len(t, g.Attempts, 1, "410 Gone dead-letters at once")
	assert.Equal(t, 410, g.Attempts[0].StatusCode)

	failing.answer(204)
	re, err := s.Redeliver(context.Background(), "flaky", d.ID)
	require.NoError(t, err)
	assert.Equal(t, d.ID, re.ID)
	d = waitStatus(t, s, "flaky", 1, oms.DeliveryDelivered)[0]
	require.Len(t, d.Attempts, 4, "the log keeps the dead round's attempts")
	assert.Equal(t, 204, d.Attempts[3].StatusCode)
	assert.Equal(t, 4, d.Attempts[3].N)
	reqs := failing.requests()
	require.Len(t, reqs, 4)
	for _, r := range reqs {
		assert.Equal(t, d.ID, r.header.Get(webhook.HeaderDelivery))
	}
	assert.Equal(t, 2.0, attempts(t, m, "dead"))
}

func TestEventsReachOnlyTheirAccountsEnabledWebhooks(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	acme, other := newAccount(t, reg, "acme"), newAccount(t, reg, "other")
	rAcme, rOther, rOff, rDeleted := newReceiver(t, 200), newReceiver(t, 200), newReceiver(t, 200), newReceiver(t, 200)
	putWebhook(t, acme, "all", rAcme.URL, true, "*")
	putWebhook(t, other, "all", rOther.URL, true, "*")
	putWebhook(t, acme, "off", rOff.URL, false, "*")
	putWebhook(t, acme, "deleted", rDeleted.URL, true, "*")
	putWebhook(t, acme, "paused", rOff.URL, true, "*")
	emit(t, acme, "a-1") // queued for all, deleted and paused
	require.NoError(t, acme.DeleteWebhook(context.Background(), "deleted"))
	putWebhook(t, acme, "paused", rOff.URL, false, "*") // disabled while its delivery is pending
	emit(t, other, "o-1")
	start(t, reg, metrics.New())

	waitStatus(t, acme, "all", 1, oms.DeliveryDelivered)
	waitStatus(t, other, "all", 1, oms.DeliveryDelivered)
	time.Sleep(300 * time.Millisecond) // 30 idle polls: time enough for a wrong delivery to show
	for _, r := range rAcme.requests() {
		var p oms.WebhookPayload
		require.NoError(t, json.Unmarshal(r.body, &p))
		assert.Equal(t, "acme", p.Account)
		assert.Equal(t, "location:a-1", p.Entity)
	}
	assert.Len(t, rAcme.requests(), 1)
	require.Len(t, rOther.requests(), 1)
	assert.Contains(t, string(rOther.requests()[0].body), `"account":"other"`)
	assert.Empty(t, rOff.requests(), "a disabled webhook gets nothing")
	assert.Empty(t, rDeleted.requests(), "a deleted webhook's pending delivery is not attempted")
	assert.Empty(t, deliveries(t, acme, "off"), "nothing queued for a disabled webhook")
	paused := deliveries(t, acme, "paused")
	require.Len(t, paused, 1)
	assert.Equal(t, oms.DeliveryPending, paused[0].Status)
	assert.Empty(t, paused[0].Attempts)

	putWebhook(t, acme, "paused", rOff.URL, true, "*") // re-enabled: the held delivery goes out
	waitStatus(t, acme, "paused", 1, oms.DeliveryDelivered)
}

func TestTwoDispatchersNeverSendTheSameAttemptTwice(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	rcv := newReceiver(t, 200)
	rcv.delay = 30 * time.Millisecond
	// The first attempt of each delivery fails, so every delivery is claimed twice.
	rcv.statusFor = func(_ string, n int) int { return map[bool]int{true: 500, false: 200}[n == 1] }
	putWebhook(t, s, "hook", rcv.URL, true, "*")
	const n = 40
	for i := range n {
		emit(t, s, fmt.Sprintf("st-%d", i))
	}
	m1, m2 := metrics.New(), metrics.New()
	fast := func(o *webhook.Options) { o.BaseDelay, o.Concurrency = 20*time.Millisecond, 4 }
	start(t, reg, m1, fast)
	start(t, reg, m2, fast)

	ds := waitStatus(t, s, "hook", n, oms.DeliveryDelivered)
	perDelivery := map[string]int{}
	for _, r := range rcv.requests() {
		perDelivery[r.header.Get(webhook.HeaderDelivery)]++
	}
	assert.Len(t, perDelivery, n)
	for id, c := range perDelivery {
		assert.Equal(t, 2, c, "delivery %s: one failed attempt and one success, no duplicate", id)
	}
	for _, d := range ds {
		require.Len(t, d.Attempts, 2)
		assert.Equal(t, []int{500, 200}, []int{d.Attempts[0].StatusCode, d.Attempts[1].StatusCode})
	}
	rcv.mu.Lock()
	assert.Zero(t, rcv.overlap, "no delivery was in flight twice at once")
	rcv.mu.Unlock()
	total := attempts(t, m1, "delivered") + attempts(t, m2, "delivered")
	assert.Equal(t, float64(n), total)
	t.Logf("dispatcher 1 delivered %v, dispatcher 2 %v", attempts(t, m1, "delivered"),
		attempts(t, m2, "delivered"))
}

func TestPrivateNetworksAreRefusedWhenDenied(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	rcv := newReceiver(t, 200)
	putWebhook(t, s, "internal", rcv.URL, true, "*")
	emit(t, s, "st-1")
	start(t, reg, metrics.New(), func(o *webhook.Options) { o.DenyPrivateNetworks, o.MaxAttempts = true, 1 })

	d := waitStatus(t, s, "internal", 1, oms.DeliveryDead)[0]
	require.Len(t, d.Attempts, 1)
	assert.Zero(t, d.Attempts[0].StatusCode)
	assert.Contains(t, d.Attempts[0].Error, "non-public address 127.0.0.1")
	assert.NotContains(t, d.Attempts[0].Error, rcv.URL, "the log names the failure, not the URL")
	assert.Empty(t, rcv.requests())
}

func TestTimeoutIsAFailedAttemptAndDeliveredOnesArePrunedAfterRetention(t *testing.T) {
	reg, _ := omstest.Registry(t, nil)
	s := newAccount(t, reg, "acme")
	slow := newReceiver(t, 200)
	slow.delay = 500 * time.Millisecond
	ok := newReceiver(t, 200)
	putWebhook(t, s, "slow", slow.URL, true, "*")
	putWebhook(t, s, "ok", ok.URL, true, "*")
	emit(t, s, "st-1")
	start(t, reg, metrics.New(), func(o *webhook.Options) {
		o.Timeout, o.MaxAttempts, o.Retention, o.PruneEvery = 100*time.Millisecond, 1, 300*time.Millisecond, 20*time.Millisecond
	})

	d := waitStatus(t, s, "slow", 1, oms.DeliveryDead)[0]
	require.Len(t, d.Attempts, 1)
	assert.Contains(t, d.Attempts[0].Error, "timeout")
	assert.Zero(t, d.Attempts[0].StatusCode)
	assert.Less(t, d.Attempts[0].DurationMS, int64(450), "the attempt was cut at its timeout")
	require.Len(t, ok.requests(), 1)
	require.Eventually(t, func() bool { return len(deliveries(t, s, "ok")) == 0 }, 10*time.Second, 20*time.Millisecond,
		"the delivered delivery is pruned after the retention")
	var attempts int
	require.NoError(t, s.Pool().QueryRow(context.Background(), `SELECT count(*) FROM webhook_attempts a
		JOIN webhook_deliveries d ON d.id = a.delivery_id JOIN webhooks w ON w.id = d.webhook_id WHERE w.name = 'ok'`).Scan(&attempts))
	assert.Zero(t, attempts)
	assert.Len(t, deliveries(t, s, "slow"), 1, "dead deliveries are kept for redelivery")
}

// attempts reads the webhook attempt counter of an outcome.
func attempts(t *testing.T, m *metrics.Metrics, outcome string) float64 {
	var out dto.Metric
	require.NoError(t, m.WebhookAttempts.WithLabelValues(outcome).Write(&out))
	return out.GetCounter().GetValue()
}
