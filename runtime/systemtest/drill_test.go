package systemtest

// Fault drills (DESIGN.md "Testing layers" 6): the real oms binaries against real PostgreSQL, Redis +
// Sentinel and RabbitMQ processes, a fault injected under load, and the properties that matter asserted
// afterwards — no acknowledged order or event lost, no wrong answer, no failed request where none may
// fail. Each drill prints one "DRILL <name>: ..." line with its timings.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/localenv"
	"github.com/omscloud/omscloud/runtime/localenv/localenvtest"
	"github.com/omscloud/omscloud/runtime/rabbitmq"
	"github.com/omscloud/omscloud/runtime/worker"
)

const drillSKUs = 10

func acknowledged(attempts []orderAttempt) int {
	n := 0
	for _, a := range attempts {
		if a.Status == http.StatusCreated {
			n++
		}
	}
	return n
}

// (a) The PostgreSQL primary dies under order load; the synchronous standby is promoted. Writes resume
// through the multi-host URL, every order that was acknowledged is there with its events, and every
// failed request failed loudly (503 with Retry-After, or a broken connection) — retried with its idempotency key it yields
// exactly one order.
func TestDrillPostgresPrimaryKilledUnderOrderLoad(t *testing.T) {
	localenvtest.RequireBinaries(t, localenvtest.PostgresBinaries...)
	ctx := t.Context()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	pg, err := localenv.StartPostgres(sctx, localenv.PostgresOptions{Dir: t.TempDir(), Standby: true,
		Settings: map[string]string{"fsync": "off", "full_page_writes": "off"}, Logger: localenvtest.TestLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Stop() })
	conn, err := pgx.Connect(sctx, pg.PrimaryURL("postgres"))
	require.NoError(t, err)
	_, err = conn.Exec(sctx, "CREATE DATABASE drill")
	require.NoError(t, err)
	require.NoError(t, conn.Close(sctx))

	env := map[string]string{"OMS_DATABASE_URL": pg.URL("drill"), "OMS_ADMIN_TOKEN": adminToken,
		"OMS_LISTEN": "127.0.0.1:0", "OMS_DRAIN_DELAY": "0s", "OMS_LOG_LEVEL": "info"}
	require.Contains(t, env["OMS_DATABASE_URL"], "target_session_attrs=read-write")
	MustRun(t, env, "migrate")
	api := Start(t, "serve", env, "serve")
	wrk := Start(t, "worker", env, "worker")
	base := api.URL()
	key := drillAccount(t, base, "acme")
	seedDrill(t, base, key, 4, drillSKUs, 100000)

	placed := &ordersPlaced{}
	l := startLoad(8, 6000, func(seq int) {
		if a := placed.place(ctx, base, key, seq, drillSKUs); a.Status != http.StatusCreated {
			time.Sleep(20 * time.Millisecond) // a client backing off, bounding the request count
		}
	})
	defer l.Stop()
	eventually(t, 30*time.Second, "200 orders acknowledged before the kill", func() bool { return acknowledged(placed.snapshot()) >= 200 })

	killAt := time.Now()
	require.NoError(t, pg.KillPrimary())
	killed := time.Now()
	require.NoError(t, pg.Promote(ctx))
	promoted := time.Now()
	var firstWrite time.Time
	eventually(t, 30*time.Second, "an order acknowledged by the promoted standby", func() bool {
		for _, a := range placed.snapshot() {
			if a.Status == http.StatusCreated && a.Start.After(killed) && (firstWrite.IsZero() || a.End.Before(firstWrite)) {
				firstWrite = a.End
			}
		}
		return !firstWrite.IsZero()
	})
	time.Sleep(2 * time.Second) // writes keep going on the new primary
	l.Stop()

	// Every answer is a 201 for the order asked for, a 5xx, or a broken connection — nothing in between.
	attempts := placed.snapshot()
	var failed []orderAttempt
	n5xx, nConn, beforeKill := 0, 0, 0
	codes := map[int]int{}
	var lastFailure time.Time
	orderOf := map[string]string{} // idempotency key -> order id
	for _, a := range attempts {
		switch {
		case a.Status == http.StatusCreated:
			checkAcknowledged(t, a)
			orderOf[a.Key] = a.Order.ID
			if a.End.Before(killAt) {
				beforeKill++
			}
			continue
		case a.Status >= 500:
			n5xx++
			codes[a.Status]++
			// A database failover is an outage to retry, not a server bug: 503 with Retry-After.
			if a.Status != http.StatusServiceUnavailable || a.RetryAfter == "" {
				t.Errorf("order %s: answered %d (Retry-After %q) %s; want 503 with Retry-After", a.Ref, a.Status, a.RetryAfter, a.Body)
			}
		case isTransportErr(a.Reply):
			nConn++
		default:
			t.Errorf("order %s: answered %d %s during the failover; want 201, a 5xx or a connection error", a.Ref, a.Status, a.Body)
		}
		assert.False(t, a.End.Before(killAt), "order %s failed before the kill: %d %v", a.Ref, a.Status, a.Err)
		failed = append(failed, a)
		if a.End.After(lastFailure) {
			lastFailure = a.End
		}
	}
	acked := len(orderOf)

	// A failed request may still have committed (the answer died with the primary). Retried with the same
	// idempotency key it must answer that one order, never a second.
	ambiguous := retryFailed(ctx, t, base, key, failed, orderOf)

	// Nothing lost, nothing doubled: one order per idempotency key, each fully processed by the worker
	// (which rode out the failover too) with its whole event history.
	eventually(t, 60*time.Second, "the worker to process every order", func() bool { return countCreated(t, base, key) == 0 })
	orders := allOrders(t, base, key)
	ids := map[string]bool{}
	lost := 0
	for k, id := range orderOf {
		ids[id] = true
		o, ok := orders[id]
		if !ok {
			lost++
			t.Errorf("order %s (key %s) was acknowledged but is gone", id, k)
			continue
		}
		assert.Contains(t, []string{oms.StatusAllocated, oms.StatusPendingStock}, o.Status, "order %s", id)
	}
	require.Zero(t, lost, "acknowledged orders lost")
	require.Len(t, orders, len(orderOf), "exactly one order per idempotency key")
	checkOrderEvents(t, allEvents(t, base, key), ids)
	for _, p := range []*Proc{api, wrk} {
		select {
		case <-p.Exited:
			t.Fatalf("%s exited during the failover: %v", p.Name, p.ExitErr)
		default:
		}
	}
	require.NotEmpty(t, failed, "the kill must land under load for the drill to mean anything")

	t.Logf("DRILL postgres-failover: kill→first write %s (promote %s), acknowledged %d orders (%d before the kill), "+
		"failed %d (5xx %d %v, connection %d; last failure kill+%s), committed-but-unacknowledged %d (recovered by idempotent retry), lost 0",
		secs(firstWrite.Sub(killAt)), secs(promoted.Sub(killed)), acked, beforeKill, len(failed), n5xx, codes, nConn,
		secs(lastFailure.Sub(killAt)), ambiguous)
}

// (b) The Redis master dies under availability load; Sentinel promotes the replica. The API keeps
// answering — a cache error is a miss — with the same answers as before the drill.
func TestDrillRedisMasterKilledUnderAvailabilityLoad(t *testing.T) {
	localenvtest.RequireBinaries(t, localenvtest.RedisBinaries...)
	ctx := t.Context()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	redisDir := t.TempDir()
	rds, err := localenv.StartRedis(sctx, localenv.RedisOptions{Dir: redisDir, Password: "drill-" + rand.Text(),
		Logger: localenvtest.TestLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = rds.Stop()
		if t.Failed() {
			t.Logf("redis logs (tail):\n%s", rds.LogTail(30))
		}
	})
	dbURL := omstest.ControlDB(t)
	t.Cleanup(func() { omstest.DropAccounts(t, dbURL) })

	env := map[string]string{"OMS_DATABASE_URL": dbURL, "OMS_ADMIN_TOKEN": adminToken, "OMS_LISTEN": "127.0.0.1:0",
		"OMS_DRAIN_DELAY": "0s", "OMS_LOG_LEVEL": "info"}
	maps.Copy(env, RedisEnv(rds, "drill:"))
	MustRun(t, env, "migrate")
	api := Start(t, "serve", env, "serve")
	base := api.URL()
	key := drillAccount(t, base, "acme")
	seedDrill(t, base, key, 20, 20, 50)

	// 16 distinct questions, answered once before the drill: the stock does not change, so every answer
	// during the drill — from the cache, the new master or PostgreSQL — must be the same.
	const questions = 16
	question := func(i int) map[string]any {
		return map[string]any{"items": []map[string]any{{"sku": fmt.Sprintf("SKU-%03d", i%20), "qty": 1 + i%3}},
			"near": map[string]float64{"lat": 50 + float64(i)*0.05, "lon": 4 + float64(i)*0.05}}
	}
	want := make([]any, questions)
	for i := range questions {
		var av oms.Availability
		mustCall(t, "POST", base+"/v1/availability", key, question(i), http.StatusOK, &av)
		require.NotEmpty(t, av.Options)
		r := call(ctx, "POST", base+"/v1/availability", key, question(i))
		require.NoError(t, json.Unmarshal(r.Body, &want[i]))
	}

	type sample struct {
		at                   time.Time
		hits, misses, errors float64
	}
	var (
		mu        sync.Mutex
		replies   []Reply
		wrong     int
		samples   []sample
		notReady  time.Duration
		readyDown time.Time
	)
	stopPoll := make(chan struct{})
	var polls sync.WaitGroup
	polls.Go(func() { // what the app saw: its own cache counters
		for {
			if m, err := scrape(ctx, api.MetricsURL()); err == nil {
				mu.Lock()
				samples = append(samples, sample{time.Now(), m["oms_cache_hits_total"], m["oms_cache_misses_total"], m["oms_cache_errors_total"]})
				mu.Unlock()
			}
			select {
			case <-stopPoll:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	polls.Go(func() { // what a load balancer's readiness probe saw
		for {
			r := call(ctx, "GET", base+"/readyz", "", nil)
			mu.Lock()
			if r.Status != http.StatusOK && readyDown.IsZero() {
				readyDown = r.Start
			} else if r.Status == http.StatusOK && !readyDown.IsZero() {
				notReady += r.End.Sub(readyDown)
				readyDown = time.Time{}
			}
			mu.Unlock()
			select {
			case <-stopPoll:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})

	l := startLoad(8, 40000, func(seq int) {
		q := seq % questions
		r := call(ctx, "POST", base+"/v1/availability", key, question(q))
		var got any
		bad := r.Status == http.StatusOK && (json.Unmarshal(r.Body, &got) != nil || !reflect.DeepEqual(got, want[q]))
		mu.Lock()
		replies = append(replies, r)
		if bad {
			wrong++
		}
		mu.Unlock()
	})
	defer l.Stop()
	time.Sleep(1500 * time.Millisecond)

	oldMaster := rds.MasterAddr()
	killAt := time.Now()
	require.NoError(t, rds.KillMaster())
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
	defer fcancel()
	newMaster, err := rds.WaitFailover(fctx, oldMaster)
	require.NoError(t, err)
	failedOver := time.Now()
	// The app is back on the cache once hits grow again while errors stand still.
	var recovered time.Time
	eventually(t, 30*time.Second, "cache hits through the new master", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := 1; i < len(samples); i++ {
			p, s := samples[i-1], samples[i]
			if p.at.After(failedOver) && s.hits > p.hits && s.errors == p.errors {
				recovered = s.at
				return true
			}
		}
		return false
	})
	time.Sleep(2 * time.Second)
	l.Stop()
	close(stopPoll)
	polls.Wait()

	mu.Lock()
	defer mu.Unlock()
	if !readyDown.IsZero() {
		notReady += time.Since(readyDown)
	}
	var non2xx, connErrs int
	var during []time.Duration
	for _, r := range replies {
		switch {
		case r.Status == 0:
			connErrs++
		case r.Status != http.StatusOK:
			non2xx++
			if non2xx <= 5 {
				t.Errorf("availability answered %d during the Redis failover: %s", r.Status, r.Body)
			}
		}
		if r.Start.After(killAt) && r.Start.Before(recovered) {
			during = append(during, r.End.Sub(r.Start))
		}
	}
	assert.Zero(t, connErrs, "availability requests that got no answer")
	assert.Zero(t, non2xx, "availability answers other than 200")
	assert.Zero(t, wrong, "availability answers that differ from the pre-drill answer")

	// The drill bit (the app saw cache errors after the kill) and healed (hits after the failover).
	var atKill, last sample
	lastErr := killAt
	for i, s := range samples {
		if !s.at.After(killAt) {
			atKill = s
		}
		if i > 0 && s.errors > samples[i-1].errors && s.at.After(killAt) {
			lastErr = s.at
		}
		last = s
	}
	assert.Greater(t, last.errors, atKill.errors, "the kill never reached the app's cache: the drill proved nothing")
	assert.Greater(t, last.hits, atKill.hits, "no cache hits after the failover")
	assert.NotEqual(t, oldMaster, newMaster)

	t.Logf("DRILL redis-failover: sentinel failover %s, app saw cache errors until kill+%s and hits again at kill+%s, "+
		"%d availability requests (%d during the failover, p99 %s), non-2xx 0, wrong answers 0, cache errors served as misses %.0f, "+
		"/readyz 503 for %s",
		secs(failedOver.Sub(killAt)), secs(lastErr.Sub(killAt)), secs(recovered.Sub(killAt)), len(replies), len(during),
		percentile(during, 99).Round(time.Millisecond), last.errors-atKill.errors, secs(notReady))
}

// eventTap records every message on a queue bound to the whole exchange, by message id.
type eventTap struct {
	mu   sync.Mutex
	msgs map[string][]tapMessage
}

type tapMessage struct {
	routingKey string
	event      oms.Event
	account    any
}

func startEventTap(t *testing.T, amqpURL, queue string) *eventTap {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := rabbitmq.Dial(ctx, rabbitmq.Options{URL: amqpURL, Logger: localenvtest.TestLogger(t)})
	require.NoError(t, err)
	require.NoError(t, b.DeclareQueue(ctx, queue, []string{"#"}))
	tp := &eventTap{msgs: map[string][]tapMessage{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Consume(ctx, queue, 200, func(_ context.Context, d rabbitmq.Delivery) error {
			m := tapMessage{routingKey: d.RoutingKey, account: d.Headers["account"]}
			_ = json.Unmarshal(d.Body, &m.event)
			tp.mu.Lock()
			tp.msgs[d.ID] = append(tp.msgs[d.ID], m)
			tp.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done; _ = b.Close() })
	return tp
}

// missing counts the events not (yet) on the tap.
func (tp *eventTap) missing(events []oms.Event) int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	n := 0
	for _, e := range events {
		if len(tp.msgs[e.ID]) == 0 {
			n++
		}
	}
	return n
}

// (c) The RabbitMQ node dies under order load and comes back. Orders keep being accepted (their events
// wait in the outbox); after the restart every event of every order reaches a queue bound to the
// exchange exactly as the log recorded it, and every order reaches its final status.
func TestDrillRabbitMQNodeKilledAndRestartedUnderOrderLoad(t *testing.T) {
	localenvtest.RequireBinaries(t, localenvtest.RabbitMQBinaries...)
	ctx := t.Context()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rmq, err := localenv.StartRabbitMQ(sctx, localenv.RabbitMQOptions{Dir: t.TempDir(), Logger: localenvtest.TestLogger(t)})
	require.NoError(t, err)
	// Killed, not stopped, at the end: a clean broker stop costs ~10s and proves nothing here.
	t.Cleanup(func() { _ = rmq.Kill(0); _ = rmq.Stop() })
	const vhost, tapQueue = "drill", "drill.tap"
	require.NoError(t, rmq.AddVhost(sctx, vhost))
	amqpURL := rmq.URLForVhost(vhost)
	dbURL := omstest.ControlDB(t)
	t.Cleanup(func() { omstest.DropAccounts(t, dbURL) })

	env := map[string]string{"OMS_DATABASE_URL": dbURL, "OMS_ADMIN_TOKEN": adminToken, "OMS_LISTEN": "127.0.0.1:0",
		"OMS_DRAIN_DELAY": "0s", "OMS_LOG_LEVEL": "info", "OMS_AMQP_URL": amqpURL}
	MustRun(t, env, "migrate")
	tp := startEventTap(t, amqpURL, tapQueue)
	api := Start(t, "serve", env, "serve")
	wrk := Start(t, "worker", env, "worker")
	// RabbitMQ 3.10 persists a new quorum queue's Raft state lazily: a single node killed within ~15s of
	// the declaration may restart without a leader for the queue (subscribing then fails with
	// INTERNAL_ERROR after a minute). Long-lived queues never meet this; the drill waits it out.
	for _, q := range []string{worker.Queue, rabbitmq.DeadLetterQueue(worker.Queue), tapQueue, rabbitmq.DeadLetterQueue(tapQueue)} {
		require.NoError(t, rmq.WaitQueueRegistered(sctx, 0, vhost, q))
	}
	declared := time.Now()
	base := api.URL()
	key := drillAccount(t, base, "acme")
	seedDrill(t, base, key, 4, drillSKUs, 100000)
	time.Sleep(time.Until(declared.Add(15 * time.Second)))

	placed := &ordersPlaced{}
	l := startLoad(8, 1500, func(seq int) {
		placed.place(ctx, base, key, seq, drillSKUs)
		time.Sleep(10 * time.Millisecond) // paced: the drain after the restart stays short
	})
	defer l.Stop()
	eventually(t, 30*time.Second, "150 orders acknowledged before the kill", func() bool { return acknowledged(placed.snapshot()) >= 150 })
	ackedAtKill := acknowledged(placed.snapshot())
	killAt := time.Now()
	require.NoError(t, rmq.Kill(0))
	time.Sleep(3 * time.Second) // the broker stays down while orders keep coming
	ackedWhileDown := acknowledged(placed.snapshot()) - ackedAtKill
	restartAt := time.Now()
	require.NoError(t, rmq.Restart(ctx, 0))
	restarted := time.Now()
	time.Sleep(time.Second)
	l.Stop()

	attempts := placed.snapshot()
	ids := map[string]bool{}
	for _, a := range attempts {
		if a.Status != http.StatusCreated {
			t.Errorf("order %s: %d %v %s while the broker was down; the API must not depend on it", a.Ref, a.Status, a.Err, a.Body)
			continue
		}
		checkAcknowledged(t, a)
		ids[a.Order.ID] = true
	}
	require.Len(t, ids, len(attempts), "every order acknowledged")
	require.Positive(t, ackedWhileDown, "no order was taken while the broker was down: the drill proved nothing")

	// Drained: every order processed and every event in the log on the tap.
	var events []oms.Event
	eventually(t, 90*time.Second, "the outbox to drain into the restarted broker", func() bool {
		if countCreated(t, base, key) > 0 {
			return false
		}
		events = allEvents(t, base, key)
		return tp.missing(events) == 0
	})
	drained := time.Now()

	orders := allOrders(t, base, key)
	for id := range ids {
		o, ok := orders[id]
		require.True(t, ok, "acknowledged order %s is gone", id)
		assert.Contains(t, []string{oms.StatusAllocated, oms.StatusPendingStock}, o.Status, "order %s", id)
	}
	require.Len(t, orders, len(ids))
	byOrder := checkOrderEvents(t, events, ids)

	// Exactly as recorded: routing key, account header and the event itself; nothing on the queue that
	// is not in the log. Republishes after a lost confirm are allowed (at least once) and counted.
	logged := map[string]oms.Event{}
	for _, e := range events {
		logged[e.ID] = e
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	dup, orderEvents := 0, 0
	for id, msgs := range tp.msgs {
		e, ok := logged[id]
		require.True(t, ok, "message %s on the queue is not in the event log", id)
		dup += len(msgs) - 1
		for _, m := range msgs {
			assert.Equal(t, e.Type, m.routingKey, "event %s routing key", id)
			assert.Equal(t, "acme", m.account, "event %s account header", id)
			assert.Equal(t, e.ID, m.event.ID)
			assert.Equal(t, e.Seq, m.event.Seq, "event %s", id)
			assert.Equal(t, e.Entity, m.event.Entity, "event %s", id)
			assert.Equal(t, e.Type, m.event.Type, "event %s", id)
			assert.JSONEq(t, string(e.Data), string(m.event.Data), "event %s data", id)
			assert.True(t, e.At.Equal(m.event.At), "event %s time", id)
		}
	}
	for id := range ids {
		orderEvents += len(byOrder[id])
	}
	for _, p := range []*Proc{api, wrk} {
		select {
		case <-p.Exited:
			t.Fatalf("%s exited during the broker outage: %v", p.Name, p.ExitErr)
		default:
		}
	}

	t.Logf("DRILL rabbitmq-restart: broker down %s (restart took %s), drained %s after the restart, acknowledged %d orders "+
		"(%d while the broker was down), %d order events all on the queue as recorded (%d events in the log), lost 0, republished duplicates %d",
		secs(restartAt.Sub(killAt)), secs(restarted.Sub(restartAt)), secs(drained.Sub(restarted)), len(ids), ackedWhileDown,
		orderEvents, len(events), dup)
}

// lb is a round-robin load balancer on 127.0.0.1 that probes each backend's /readyz every 100ms and stops
// routing to one as soon as it answers anything but 200 (three probes without an answer also remove it, two
// 200s bring it back). It never retries a request.
type lb struct {
	url      string
	backends []*lbBackend
	next     atomic.Uint64
	failures atomic.Int64
}

type lbBackend struct {
	name    string
	proxy   *httputil.ReverseProxy
	probe   string
	healthy atomic.Bool
	served  atomic.Int64
	mu      sync.Mutex
	removed time.Time
}

func startLB(t *testing.T, backends ...*Proc) *lb {
	t.Helper()
	l := &lb{}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	for _, p := range backends {
		u, err := url.Parse(p.URL())
		require.NoError(t, err)
		b := &lbBackend{name: p.Name, proxy: httputil.NewSingleHostReverseProxy(u), probe: p.URL() + "/readyz"}
		b.proxy.Transport = tr
		b.proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			l.failures.Add(1)
			t.Errorf("load balancer: %s %s via %s: %v", r.Method, r.URL.Path, b.name, err)
			w.WriteHeader(http.StatusBadGateway)
		}
		b.healthy.Store(true)
		l.backends = append(l.backends, b)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := l.next.Add(1)
		for i := range uint64(len(l.backends)) {
			b := l.backends[(start+i)%uint64(len(l.backends))]
			if b.healthy.Load() {
				b.served.Add(1)
				b.proxy.ServeHTTP(w, r)
				return
			}
		}
		l.failures.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	})}
	go func() { _ = srv.Serve(ln) }()
	stop := make(chan struct{})
	var probes sync.WaitGroup
	for _, b := range l.backends {
		probes.Go(func() { b.probeLoop(stop) })
	}
	t.Cleanup(func() { close(stop); probes.Wait(); _ = srv.Close(); tr.CloseIdleConnections() })
	l.url = "http://" + ln.Addr().String()
	return l
}

func (b *lbBackend) probeLoop(stop <-chan struct{}) {
	probe := &http.Client{Timeout: 2 * time.Second}
	silent, ok := 0, 0
	for {
		resp, err := probe.Get(b.probe)
		healthy := b.healthy.Load()
		switch {
		case err != nil: // no answer: a slow or busy process, or a dead one
			silent, ok = silent+1, 0
			healthy = healthy && silent < 3
		case resp.StatusCode != http.StatusOK: // it says it is not ready: believe it at once
			silent, ok, healthy = 0, 0, false
		default:
			silent, ok = 0, ok+1
			healthy = healthy || ok >= 2
		}
		if resp != nil {
			resp.Body.Close()
		}
		if was := b.healthy.Swap(healthy); was && !healthy {
			b.mu.Lock()
			b.removed = time.Now()
			b.mu.Unlock()
		}
		select {
		case <-stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// (d) One of two web processes gets SIGTERM under load behind a load balancer. It turns not-ready, the
// balancer stops routing to it, it finishes what it has and exits 0 within the grace period — and not
// one request fails.
func TestDrillSIGTERMWebProcessUnderLoadBehindASecond(t *testing.T) {
	ctx := t.Context()
	dbURL := omstest.ControlDB(t)
	t.Cleanup(func() { omstest.DropAccounts(t, dbURL) })
	const grace, drainDelay = 10 * time.Second, 2 * time.Second
	env := map[string]string{"OMS_DATABASE_URL": dbURL, "OMS_ADMIN_TOKEN": adminToken, "OMS_LISTEN": "127.0.0.1:0",
		"OMS_LOG_LEVEL": "info", "OMS_DRAIN_DELAY": drainDelay.String(), "OMS_SHUTDOWN_GRACE": grace.String()}
	MustRun(t, env, "migrate")
	webA := Start(t, "web-a", env, "serve")
	webB := Start(t, "web-b", env, "serve")
	balancer := startLB(t, webA, webB)
	key := drillAccount(t, balancer.url, "acme")
	seedDrill(t, balancer.url, key, 4, drillSKUs, 100000)

	// Half order creation (writes), half availability (reads).
	placed := &ordersPlaced{}
	var mu sync.Mutex
	var reads []Reply
	l := startLoad(8, 20000, func(seq int) {
		if seq%2 == 0 {
			placed.place(ctx, balancer.url, key, seq, drillSKUs)
			return
		}
		r := call(ctx, "POST", balancer.url+"/v1/availability", key, map[string]any{
			"items": []map[string]any{{"sku": fmt.Sprintf("SKU-%03d", seq%drillSKUs), "qty": 1}}, "near": map[string]float64{"lat": 50, "lon": 4}})
		mu.Lock()
		reads = append(reads, r)
		mu.Unlock()
	})
	defer l.Stop()
	eventually(t, 30*time.Second, "both web processes serving", func() bool {
		return balancer.backends[0].served.Load() > 100 && balancer.backends[1].served.Load() > 100
	})

	termAt := time.Now()
	require.NoError(t, webA.Cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-webA.Exited:
	case <-time.After(grace + 5*time.Second):
		t.Fatalf("web-a did not exit within the grace period %s", grace)
	}
	exitedAfter := time.Since(termAt)
	servedByA := balancer.backends[0].served.Load()
	time.Sleep(time.Second) // web-b alone
	l.Stop()

	require.NoError(t, webA.ExitErr, "web-a must exit 0 after SIGTERM")
	assert.LessOrEqual(t, exitedAfter, grace, "web-a exceeded its grace period")
	balancer.backends[0].mu.Lock()
	removedAfter := balancer.backends[0].removed.Sub(termAt)
	balancer.backends[0].mu.Unlock()
	assert.Positive(t, removedAfter, "the load balancer never saw web-a turn not-ready")
	assert.Less(t, removedAfter, drainDelay, "the load balancer saw /readyz turn 503 only after the drain delay")
	assert.Equal(t, servedByA, balancer.backends[0].served.Load(), "requests routed to web-a after it exited")
	assert.Positive(t, balancer.backends[1].served.Load())

	attempts := placed.snapshot()
	mu.Lock()
	defer mu.Unlock()
	failedReqs := balancer.failures.Load()
	ids := map[string]bool{}
	for _, a := range attempts {
		if a.Status != http.StatusCreated {
			failedReqs++
			t.Errorf("order %s: %d %v %s", a.Ref, a.Status, a.Err, a.Body)
			continue
		}
		checkAcknowledged(t, a)
		ids[a.Order.ID] = true
	}
	for _, r := range reads {
		if r.Status != http.StatusOK {
			failedReqs++
			t.Errorf("availability: %d %v %s", r.Status, r.Err, r.Body)
		}
	}
	require.Zero(t, failedReqs, "failed requests")
	orders := allOrders(t, balancer.url, key)
	for id := range ids {
		_, ok := orders[id]
		assert.True(t, ok, "acknowledged order %s is gone", id)
	}
	require.Len(t, orders, len(ids))

	t.Logf("DRILL sigterm-web: SIGTERM→out of the load balancer %s, →exit 0 %s (drain delay %s, grace %s), %d requests "+
		"(%d orders, %d availability; web-a served %d), failed 0",
		secs(removedAfter), secs(exitedAfter), drainDelay, grace, len(attempts)+len(reads), len(attempts), len(reads), servedByA)
}
