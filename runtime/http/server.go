// Package http serves the OMS API (/v1), health endpoints and, on a handler of their own, metrics.
package http

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/metrics"
)

// Options configures a Server.
type Options struct {
	// Accounts serves the /v1 API (and no /metrics: see Ops); nil serves health and metrics (the worker's port).
	Accounts oms.AccountService
	// AdminToken authorizes the account endpoints; empty disables them.
	AdminToken string
	Metrics    *metrics.Metrics
	// Checks are the dependencies /readyz probes, by name.
	Checks map[string]func(context.Context) error
	// MaxBodyBytes bounds JSON bodies (default 1 MiB); MaxBatchBytes bounds inventory batches (default 4 GiB).
	MaxBodyBytes  int64
	MaxBatchBytes int64
	// A body must send a byte at least every BodyIdleTimeout (default 10s) and, after BodyRateGrace
	// (default 10s), average MinBodyRate bytes per second (default 4 KiB/s); else the request ends with 408.
	BodyIdleTimeout time.Duration
	MinBodyRate     int64
	BodyRateGrace   time.Duration
	// DenyPrivateWebhooks refuses webhook URLs whose host resolves to a loopback,
	// private or otherwise non-public address at registration, with the rule the
	// dispatcher applies at delivery (webhook.CheckURL); set it as the worker's
	// webhook.Options.DenyPrivateNetworks is set.
	DenyPrivateWebhooks bool
	Logger              *slog.Logger
	// Unavailable classifies internal errors that mean a dependency is down
	// (e.g. a database failover): they answer 503 with Retry-After, not 500.
	Unavailable func(error) bool
	// Pprof adds Go's profiles (/debug/pprof/) to the operations handler: Ops, or the worker's port.
	Pprof bool
}

// Server is the HTTP handler of the runtime.
type Server struct {
	opts     Options
	log      *slog.Logger
	m        *metrics.Metrics
	draining atomic.Bool
	router   chi.Router
}

// New builds the router.
func New(opts Options) *Server {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = 4 << 30
	}
	if opts.BodyIdleTimeout <= 0 {
		opts.BodyIdleTimeout = defaultBodyIdleTimeout
	}
	if opts.MinBodyRate <= 0 {
		opts.MinBodyRate = defaultMinBodyRate
	}
	if opts.BodyRateGrace <= 0 {
		opts.BodyRateGrace = defaultBodyRateGrace
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	s := &Server{opts: opts, log: opts.Logger, m: opts.Metrics}
	r := chi.NewRouter()
	r.Use(s.observe)
	s.routeHealth(r)
	if opts.Accounts != nil {
		s.routeAPI(r)
	} else {
		s.routeOps(r)
	}
	s.router = r
	return s
}

// Ops serves /metrics beside /healthz and /readyz, for a listener of its own (serve's --metrics-listen). The API
// never serves /metrics: the edge routes the API port, and the metrics tell who calls what, and how often.
// Scrapes are not counted in the request metrics.
func (s *Server) Ops() http.Handler {
	r := chi.NewRouter()
	s.routeHealth(r)
	s.routeOps(r)
	return r
}

// routeOps adds /metrics and, with Options.Pprof, the profiles.
func (s *Server) routeOps(r chi.Router) {
	r.Handle("/metrics", s.metrics())
	if s.opts.Pprof {
		r.HandleFunc("/debug/pprof/*", pprof.Index)
		r.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		r.HandleFunc("/debug/pprof/profile", pprof.Profile)
		r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
}

func (s *Server) metrics() http.Handler {
	return promhttp.HandlerFor(s.m.Registry, promhttp.HandlerOpts{})
}

// routeHealth adds the probes and the answers to unknown routes and methods.
func (s *Server) routeHealth(r chi.Router) {
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	r.Get("/readyz", s.readyz)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, oms.Errorf(oms.ENOTFOUND, "path", "no route %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, oms.Errorf("method_not_allowed", "method", "%s not allowed on %s", r.Method, r.URL.Path))
	})
}

func (s *Server) routeAPI(r chi.Router) {
	r.Route("/v1", func(r chi.Router) {
		r.With(s.admin).Post("/accounts", s.createAccount)
		r.With(s.admin).Post("/accounts/{id}/keys", s.issueKey)
		r.Group(func(r chi.Router) {
			r.Use(s.authenticate)
			r.Put("/locations/{ref}", s.putLocation)
			r.Post("/inventory/batches", s.loadInventory)
			r.Get("/inventory/{location}/{sku}", s.stock)
			r.Post("/availability", s.availability)
			s.routeOrders(r)
			s.routeFulfilments(r)
			s.routeEvents(r)
			s.routeWorkflows(r)
			s.routeWebhooks(r)
		})
	})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// Drain makes /readyz answer 503 so load balancers stop sending new requests
// while in-flight ones finish.
func (s *Server) Drain() { s.draining.Store(true) }

// statusClientClosed is nginx's "client closed request": the client went away
// before its answer, so nobody reads it; it shows in the metrics as what it is.
const statusClientClosed = 499

// statusByCode is the one table mapping error codes to HTTP statuses.
var statusByCode = map[string]int{
	oms.EINVALID:         http.StatusBadRequest,
	oms.ENOTFOUND:        http.StatusNotFound,
	oms.ECONFLICT:        http.StatusConflict,
	oms.EUNAUTHORIZED:    http.StatusUnauthorized,
	oms.EFORBIDDEN:       http.StatusForbidden,
	oms.ETOOLARGE:        http.StatusRequestEntityTooLarge,
	oms.EUNSUPPORTED:     http.StatusUnsupportedMediaType,
	oms.EUNAVAILABLE:     http.StatusServiceUnavailable,
	oms.ETIMEOUT:         http.StatusRequestTimeout,
	oms.EABORTED:         statusClientClosed,
	oms.EINTERNAL:        http.StatusInternalServerError,
	"method_not_allowed": http.StatusMethodNotAllowed,
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Field   string `json:"field,omitempty"`
		Message string `json:"message"`
	} `json:"error"`
}

// fail writes err as JSON; internal errors are logged and never shown.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		err = oms.Errorf(oms.ETOOLARGE, "body", "larger than %d bytes", tooLarge.Limit)
	}
	code := oms.ErrorCode(err)
	if code == oms.EINTERNAL && r.Context().Err() != nil {
		// The client went away (its context ended): whatever failed after that is not a dependency outage.
		s.log.InfoContext(r.Context(), "client gone", "method", r.Method, "path", r.URL.Path, "err", err)
		err = oms.Errorf(oms.EABORTED, "", "the client closed the connection")
		code = oms.EABORTED
	}
	if code == oms.EINTERNAL && s.opts.Unavailable != nil && s.opts.Unavailable(err) {
		s.log.WarnContext(r.Context(), "dependency unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		err = oms.Errorf(oms.EUNAVAILABLE, "", "temporarily unavailable: retry shortly (with the same Idempotency-Key for orders)")
		code = oms.EUNAVAILABLE
	}
	status, ok := statusByCode[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if code == oms.EINTERNAL {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if code == oms.EUNAVAILABLE {
		w.Header().Set("Retry-After", "1")
	}
	if code == oms.ETIMEOUT || code == oms.EABORTED {
		s.log.InfoContext(r.Context(), "client too slow or gone", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Connection", "close") // the rest of its body is not read
	}
	var b errorBody
	b.Error.Code, b.Error.Field, b.Error.Message = code, oms.ErrorField(err), oms.ErrorMessage(err)
	writeJSON(w, status, b)
}

// writePut answers a PUT: 201 when it created the resource, 200 when it replaced or kept it.
func writePut(w http.ResponseWriter, created bool, v any) {
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// statusRecorder captures the status for metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		s.limitBody(w, r)
		next.ServeHTTP(rec, r)
		route := chi.RouteContext(r.Context()).RoutePattern()
		if route == "" {
			route = "unmatched"
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		code := strconv.Itoa(rec.status)
		s.m.RequestDuration.WithLabelValues(r.Method, route, code).Observe(time.Since(start).Seconds())
		s.m.Requests.WithLabelValues(r.Method, route, code).Inc()
	})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "draining"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	failed := map[string]string{}
	for name, check := range s.opts.Checks {
		if err := check(ctx); err != nil {
			failed[name] = "unreachable"
			s.log.Warn("readiness check failed", "dependency", name, "err", err)
		}
	}
	if len(failed) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "failed": failed})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func (s *Server) admin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		if s.opts.AdminToken == "" {
			s.fail(w, r, oms.Errorf(oms.EFORBIDDEN, "Authorization", "account endpoints are disabled: no admin token configured"))
			return
		}
		if tok == "" {
			s.fail(w, r, oms.Errorf(oms.EUNAUTHORIZED, "Authorization", "missing bearer admin token"))
			return
		}
		if subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.AdminToken)) != 1 {
			s.fail(w, r, oms.Errorf(oms.EFORBIDDEN, "Authorization", "account endpoints need the admin token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

type ctxKey struct{}

type tenant struct {
	account *oms.Account
	store   oms.Store
}

// authenticate resolves the API key to its account and binds the request to
// that account's store (its own database): handlers cannot reach another one.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := s.opts.Accounts.Authenticate(r.Context(), bearer(r))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		st, err := s.opts.Accounts.Store(r.Context(), a.ID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, &tenant{account: a, store: st})))
	})
}

func storeOf(r *http.Request) oms.Store { return r.Context().Value(ctxKey{}).(*tenant).store }

// Ranges of the numeric query parameters. Each endpoint checks its own tighter
// limit range (orders 1–200, ...); these keep every value inside what the
// database columns hold, so no number reaches a query that cannot take it.
const (
	maxLimitParam   = 1 << 20
	maxVersionParam = math.MaxInt32 // workflow versions are int columns
)

// intParam parses an optional integer query parameter within [lo, hi]; absent is 0.
func intParam(r *http.Request, name string, lo, hi int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, oms.Invalid(name, "must be a whole number from %d to %d", lo, hi)
	}
	return n, nil
}

// decode reads a strict JSON body into v. The Content-Type is not checked:
// the body must be valid JSON whatever a client labels it.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	return oms.DecodeStrict(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes), v)
}
