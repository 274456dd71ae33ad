// Package webhook delivers queued webhook deliveries: signed POSTs of events
// to the URLs accounts registered, retried with exponential backoff and
// dead-lettered after a bound. Deliveries are queued by the store in the
// transaction that writes each event; the Dispatcher only sends them.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/peraccount"
	"github.com/omscloud/omscloud/runtime/metrics"
)

// Request headers of every attempt.
const (
	HeaderWebhook   = "OMS-Webhook"
	HeaderDelivery  = "OMS-Delivery" // the same on every attempt: the receiver's idempotency key
	HeaderEventType = "OMS-Event-Type"
	HeaderTimestamp = "OMS-Timestamp"
	HeaderSignature = "OMS-Signature"
)

// Options configures a Dispatcher; zero values take the defaults.
type Options struct {
	Accounts oms.AccountService
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	// Concurrency bounds the attempts in flight per account (default 8).
	Concurrency int
	// Timeout bounds one attempt, connection to response headers and body (default 10s).
	Timeout time.Duration
	// BaseDelay is the wait after the first failed attempt; it doubles per
	// attempt up to MaxDelay, less up to 25% jitter (defaults 5s and 1h).
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MaxAttempts is the number of attempts before a delivery is dead (default 10).
	MaxAttempts int
	// Retention is how long delivered deliveries and their attempts are kept (default 30 days).
	Retention time.Duration
	// PruneEvery is how often each account's delivered deliveries are pruned (default 1m), PruneBatch rows at a time (default 1000).
	PruneEvery time.Duration
	PruneBatch int
	// MaxIdle is the longest pause between polls of an idle queue (default 1s).
	MaxIdle time.Duration
	// AccountRefresh is how often new accounts are picked up (default 2s).
	AccountRefresh time.Duration
	// DenyPrivateNetworks refuses connections to loopback, private, link-local
	// and other non-public addresses (checked after DNS resolution), so a
	// webhook URL cannot reach the cluster's internals. Off for dev and tests.
	DenyPrivateNetworks bool
	// Transport overrides the HTTP transport (tests); redirects are never followed.
	Transport http.RoundTripper
}

// Dispatcher sends every account's due deliveries.
type Dispatcher struct {
	o      Options
	client *http.Client
}

// NewDispatcher applies defaults.
func NewDispatcher(o Options) *Dispatcher {
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = 5 * time.Second
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = time.Hour
	}
	o.MaxDelay = max(o.MaxDelay, o.BaseDelay)
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.Retention <= 0 {
		o.Retention = 30 * 24 * time.Hour
	}
	if o.PruneEvery <= 0 {
		o.PruneEvery = time.Minute
	}
	if o.PruneBatch <= 0 {
		o.PruneBatch = 1000
	}
	if o.MaxIdle <= 0 {
		o.MaxIdle = time.Second
	}
	if o.AccountRefresh <= 0 {
		o.AccountRefresh = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	rt := o.Transport
	if rt == nil {
		d := &net.Dialer{Timeout: o.Timeout}
		if o.DenyPrivateNetworks {
			d.Control = denyPrivate
		}
		rt = &http.Transport{DialContext: d.DialContext, TLSHandshakeTimeout: o.Timeout, MaxIdleConnsPerHost: 4,
			IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true}
	}
	client := &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a 3xx is a failed attempt: the registered URL is the only target
	}}
	return &Dispatcher{o: o, client: client}
}

// lease is how long a claimed delivery stays out of the queue: the attempt's
// timeout plus room to record its result. Another dispatcher takes it over
// only after that (the first one crashed), never while it is being sent.
func (d *Dispatcher) lease() time.Duration { return 2*d.o.Timeout + 30*time.Second }

// Run dispatches until ctx is done, one loop per account, started as accounts
// appear and ended when they are dropped. Attempts in flight finish (within
// Timeout) and are recorded before Run returns.
func (d *Dispatcher) Run(ctx context.Context) error {
	return peraccount.Run(ctx, d.o.Accounts, d.o.AccountRefresh, d.o.Logger.With("job", "webhooks"), d.runAccount)
}

func (d *Dispatcher) runAccount(ctx context.Context, account string) {
	log := d.o.Logger.With("account", account)
	slots := make(chan struct{}, d.o.Concurrency)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	idle := time.Millisecond
	var lastPrune time.Time
	for ctx.Err() == nil {
		store, err := d.o.Accounts.Store(ctx, account)
		if oms.ErrorCode(err) == oms.ENOTFOUND {
			return // account dropped
		}
		// Claim no more than there are free slots: a claimed delivery is sent at once.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		free := 1
	fill:
		for free < cap(slots) {
			select {
			case slots <- struct{}{}:
				free++
			default:
				break fill
			}
		}
		var jobs []*oms.WebhookJob
		if err == nil {
			jobs, err = store.ClaimWebhookJobs(ctx, free, d.lease())
		}
		for range free - len(jobs) {
			<-slots
		}
		for _, j := range jobs {
			inflight.Go(func() {
				defer func() { <-slots }()
				d.attempt(ctx, store, log, j)
			})
		}
		if err == nil && time.Since(lastPrune) >= d.o.PruneEvery {
			n, perr := store.PruneWebhookDeliveries(ctx, time.Now().Add(-d.o.Retention), d.o.PruneBatch)
			if perr != nil && ctx.Err() == nil {
				log.Warn("webhooks: prune delivered deliveries", "err", perr)
			}
			if n > 0 {
				log.Info("webhooks: pruned delivered deliveries", "deliveries", n)
			}
			if n < d.o.PruneBatch { // else more are due: prune again on the next pass
				lastPrune = time.Now()
			}
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("webhooks: claim deliveries failed, retrying", "err", err)
			idle = d.o.MaxIdle
		}
		if err == nil && len(jobs) == free {
			idle = time.Millisecond
			continue // maybe more due: wait for a slot and claim again
		}
		if len(jobs) > 0 {
			idle = time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-time.After(idle):
		}
		idle = min(idle*2, d.o.MaxIdle)
	}
}

// attempt sends one delivery and records the outcome. It outlives ctx by at
// most Timeout, so a shutdown records what it sent instead of resending it.
func (d *Dispatcher) attempt(ctx context.Context, store oms.WebhookService, log *slog.Logger, j *oms.WebhookJob) {
	log = log.With("webhook", j.Webhook, "delivery", j.DeliveryID, "event_type", j.Event.Type, "attempt", j.N)
	e := j.Event
	body, err := json.Marshal(oms.WebhookPayload{ID: e.ID, Account: e.Account, Entity: e.Entity, Type: e.Type, Data: e.Data, At: e.At})
	if err != nil { // the data is JSON from the event log: cannot happen
		log.Error("webhooks: encode payload", "err", err)
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.o.Timeout)
	defer cancel()
	start := time.Now()
	status, retryAfter, sendErr := d.send(actx, j, body, start)
	elapsed := time.Since(start)
	r := d.outcome(j, status, retryAfter, sendErr)
	r.Attempt = oms.WebhookAttempt{N: j.N, At: start, DurationMS: elapsed.Milliseconds(), StatusCode: status}
	if sendErr != nil {
		r.Attempt.Error = describe(sendErr, d.o.Timeout)
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer rcancel()
	if err := store.RecordWebhookResult(rctx, j, r); err != nil {
		// The lease runs out and the delivery is attempted again: at least once.
		log.Warn("webhooks: record attempt failed", "err", err)
	}
	outcome := map[string]string{oms.DeliveryDelivered: "delivered", oms.DeliveryPending: "retry", oms.DeliveryDead: "dead"}[r.Status]
	d.o.Metrics.WebhookAttempts.WithLabelValues(outcome).Inc()
	d.o.Metrics.WebhookAttemptDuration.Observe(elapsed.Seconds())
	switch r.Status {
	case oms.DeliveryDead:
		log.Warn("webhooks: delivery dead-lettered", "status", status, "err", r.Attempt.Error)
	case oms.DeliveryPending:
		log.Info("webhooks: attempt failed, will retry", "status", status, "err", r.Attempt.Error, "retry_in", r.RetryIn)
	default:
		log.Debug("webhooks: delivered", "status", status, "duration", elapsed)
	}
}

// send POSTs the signed body; it returns the status (0 without an answer) and any Retry-After.
func (d *Dispatcher) send(ctx context.Context, j *oms.WebhookJob, body []byte, now time.Time) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "omscloud-webhooks/1")
	req.Header.Set(HeaderWebhook, j.Webhook)
	req.Header.Set(HeaderDelivery, j.DeliveryID)
	req.Header.Set(HeaderEventType, j.Event.Type)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(j.Secret, now, body))
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	// Read (a bounded part of) the answer so the connection can be reused; its content is not kept.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	var retryAfter time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	return resp.StatusCode, retryAfter, nil
}

// outcome decides what happens to the delivery after an attempt.
func (d *Dispatcher) outcome(j *oms.WebhookJob, status int, retryAfter time.Duration, err error) *oms.WebhookResult {
	switch {
	case err == nil && status >= 200 && status < 300:
		return &oms.WebhookResult{Status: oms.DeliveryDelivered}
	case err == nil && status == http.StatusGone: // the receiver says the endpoint is gone for good
		return &oms.WebhookResult{Status: oms.DeliveryDead}
	case j.Attempt >= d.o.MaxAttempts:
		return &oms.WebhookResult{Status: oms.DeliveryDead}
	}
	delay := Backoff(j.Attempt, d.o.BaseDelay, d.o.MaxDelay)
	if retryAfter > delay && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
		delay = min(retryAfter, d.o.MaxDelay)
	}
	return &oms.WebhookResult{Status: oms.DeliveryPending, RetryIn: delay}
}

// Backoff is the wait after failed attempt n (1-based): base·2^(n-1), capped
// at maxDelay, less a random jitter of up to 25% so that deliveries failing
// together (a receiver's outage) do not all come back at once. Each delay is
// still longer than the previous one until the cap.
func Backoff(n int, base, maxDelay time.Duration) time.Duration {
	d := maxDelay
	if n-1 < 62 && base<<(n-1) > 0 && base<<(n-1) < maxDelay {
		d = base << (n - 1)
	}
	return d - time.Duration(rand.Int64N(int64(d/4)+1))
}

// describe is the attempt's error as the delivery log shows it, without the
// URL (which the log's reader knows) and with timeouts named as such.
func describe(err error, timeout time.Duration) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Sprintf("timeout: no answer within %s", timeout)
		}
		err = ue.Err
	}
	return err.Error()
}

// denyPrivate is a dialer Control refusing non-public addresses. It runs on
// the resolved address, so a public name resolving to a private IP (DNS
// rebinding) is refused too.
func denyPrivate(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if err := CheckAddress(net.ParseIP(host)); err != nil {
		return fmt.Errorf("refusing to connect to %w", err)
	}
	return nil
}

// CheckAddress is the one rule of which addresses a webhook may reach when
// private networks are denied: public unicast only, not loopback, private,
// link-local, multicast, unspecified or carrier-grade NAT (RFC 6598).
// Deliveries apply it to every connection; registration (CheckURL) to every
// address the URL's host resolves to.
func CheckAddress(ip net.IP) error {
	if ip == nil || !ip.IsGlobalUnicast() || ip.IsPrivate() || sharedAddressSpace.Contains(ip) {
		return fmt.Errorf("non-public address %s", ip)
	}
	return nil
}

var _, sharedAddressSpace, _ = net.ParseCIDR("100.64.0.0/10") // carrier-grade NAT (RFC 6598)

// CheckURL checks at registration what a delivery checks at every attempt:
// the URL's form and scheme (oms.WebhookInput's rules) and, with denyPrivate,
// every address its host resolves to now. Deliveries still check each
// connection, since DNS answers change.
func CheckURL(ctx context.Context, raw string, denyPrivate bool) error {
	if err := (&oms.WebhookInput{URL: raw, Events: []string{"*"}, Secret: strings.Repeat("x", oms.MinWebhookSecret)}).Validate(); err != nil {
		return err
	}
	if !denyPrivate {
		return nil
	}
	u, _ := url.Parse(raw) // parsed by Validate
	host := u.Hostname()
	ips := []net.IP{net.ParseIP(host)}
	if ips[0] == nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			return oms.Invalid("url", "host %q does not resolve", host)
		case err != nil:
			return oms.Errorf(oms.EUNAVAILABLE, "url", "could not resolve %q now: retry shortly", host)
		}
		ips = ips[:0]
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	for _, ip := range ips {
		if err := CheckAddress(ip); err != nil {
			return oms.Invalid("url", "host %q is a %v: webhooks reach public addresses only", host, err)
		}
	}
	return nil
}
