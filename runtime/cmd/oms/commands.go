package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	oms "github.com/omscloud/omscloud/runtime"
	omshttp "github.com/omscloud/omscloud/runtime/http"
	"github.com/omscloud/omscloud/runtime/metrics"
	"github.com/omscloud/omscloud/runtime/postgres"
	"github.com/omscloud/omscloud/runtime/rabbitmq"
	"github.com/omscloud/omscloud/runtime/webhook"
	"github.com/omscloud/omscloud/runtime/worker"
)

func openRegistry(ctx context.Context, cfg *config, log *slog.Logger, cache oms.Cache) (*postgres.Registry, error) {
	log.Info("connecting to postgres", "url", redactURL(cfg.DatabaseURL))
	reg, err := postgres.Open(ctx, postgres.Options{URL: cfg.DatabaseURL, NamePrefix: cfg.AccountDBPrefix,
		MaxConnsPerAccount: int32(cfg.MaxConns), Cells: cfg.Cells, DefaultCell: cfg.DefaultCell, Cache: cache, Logger: log,
		ApplicationName: "oms " + cfg.command})
	if err != nil {
		return nil, err
	}
	return reg, nil
}

// openMigratedRegistry is openRegistry for serve and worker, which never migrate by themselves.
func openMigratedRegistry(ctx context.Context, cfg *config, log *slog.Logger, cache oms.Cache) (*postgres.Registry, error) {
	reg, err := openRegistry(ctx, cfg, log, cache)
	if err != nil {
		return nil, err
	}
	if err := reg.CheckMigrated(ctx); err != nil {
		reg.Close()
		return nil, err
	}
	return reg, nil
}

func serve(ctx context.Context, cfg *config, log *slog.Logger) error {
	cache, closeCache, err := openCache(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeCache()
	reg, err := openMigratedRegistry(ctx, cfg, log, cache)
	if err != nil {
		return err
	}
	defer reg.Close()
	// Redis is a cache whose errors read as misses: its failover must not pull every web pod out of the load
	// balancer at once (the fault drill saw /readyz 503 for ~3 s). Its health shows in the cache metrics.
	checks := map[string]func(context.Context) error{"postgres": reg.Ping}
	m := metrics.New()
	cache.register(m.Registry)
	h := omshttp.New(omshttp.Options{Accounts: reg, AdminToken: cfg.AdminToken, Metrics: m,
		Checks: checks, Logger: log, Unavailable: postgres.IsUnavailable, DenyPrivateWebhooks: !cfg.Webhooks.AllowPrivate, Pprof: cfg.Pprof})
	stopMetrics, err := serveMetrics(cfg, log, h)
	if err != nil {
		return err
	}
	defer stopMetrics()
	return listenAndServe(ctx, cfg, log, h, nil, nil)
}

// newHTTPServer is the server of every listener: the API's and the metrics'.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 90 * time.Second}
}

// serveMetrics serves h.Ops() (/metrics and the probes) on --metrics-listen until stop; the metrics outlive the
// API's drain, so the last scrapes see it.
func serveMetrics(cfg *config, log *slog.Logger, h *omshttp.Server) (stop func(), err error) {
	if cfg.MetricsListen == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (--metrics-listen): %w", cfg.MetricsListen, err)
	}
	srv := newHTTPServer(h.Ops())
	log.Info("metrics listening", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	return func() { _ = srv.Close() }, nil
}

func work(ctx context.Context, cfg *config, log *slog.Logger) error {
	cache, closeCache, err := openCache(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeCache()
	reg, err := openMigratedRegistry(ctx, cfg, log, cache)
	if err != nil {
		return err
	}
	defer reg.Close()
	m := metrics.New()
	cache.register(m.Registry)
	checks := map[string]func(context.Context) error{"postgres": reg.Ping}
	proc := &worker.Processor{Accounts: reg, Metrics: m, Logger: log}
	var publisher oms.Publisher
	var broker *rabbitmq.Broker
	if cfg.AMQPURL != "" {
		broker, err = rabbitmq.Dial(ctx, rabbitmq.Options{URL: cfg.AMQPURL, Logger: log})
		if err != nil {
			return fmt.Errorf("connect to rabbitmq: %w", err)
		}
		defer broker.Close()
		checks["rabbitmq"] = broker.Ping
		publisher = &worker.AMQPPublisher{Broker: broker}
	} else {
		log.Info("no --amqp-url: consuming the outbox straight from postgres")
		publisher = &worker.Local{Processor: proc}
	}
	h := omshttp.New(omshttp.Options{Metrics: m, Checks: checks, Logger: log, Pprof: cfg.Pprof})
	return listenAndServe(ctx, cfg, log, h, nil, func(ctx context.Context) error {
		if cfg.BackupURL != "" {
			go func() {
				_ = worker.WatchBackups(ctx, worker.BackupWatchOptions{URL: cfg.BackupURL, Metrics: m, Logger: log})
			}()
		}
		return runWorker(ctx, log, reg, m, publisher, broker, proc, cfg.Concurrency, cfg.Webhooks.dispatcher(reg, m, log))
	})
}

// runWorker runs the relay, the webhook dispatcher and, with a broker, the consumers until ctx is done.
func runWorker(ctx context.Context, log *slog.Logger, reg oms.AccountService, m *metrics.Metrics, publisher oms.Publisher,
	broker *rabbitmq.Broker, proc *worker.Processor, concurrency int, webhooks *webhook.Dispatcher) error {
	if broker != nil {
		// Declare before the relay publishes, so no event routes to nowhere.
		if err := broker.DeclareQueue(ctx, worker.Queue, worker.Bindings); err != nil {
			return fmt.Errorf("declare worker queue: %w", err)
		}
	}
	relay := worker.NewRelay(worker.RelayOptions{Accounts: reg, Publisher: publisher, Metrics: m, Logger: log})
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Go(func() { errc <- relay.Run(ctx) })
	wg.Go(func() { errc <- webhooks.Run(ctx) })
	if broker != nil {
		wg.Go(func() {
			errc <- worker.Consume(ctx, worker.ConsumeOptions{Broker: broker, Processor: proc, Concurrency: concurrency,
				Metrics: m, Logger: log})
		})
	}
	log.Info("worker started", "broker", broker != nil)
	m.WorkerRunning.Set(1)
	wg.Wait()
	m.WorkerRunning.Set(0)
	close(errc)
	for err := range errc {
		if err != nil {
			return err
		}
	}
	return nil
}

// listenAndServe serves h until ctx is done, running background work beside
// it. On cancellation (SIGTERM) it reports not-ready, waits the drain delay,
// stops accepting, and waits for in-flight requests and background work for
// at most the shutdown grace.
func listenAndServe(ctx context.Context, cfg *config, log *slog.Logger, h *omshttp.Server, onListen func(addr string),
	background func(context.Context) error) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	srv := newHTTPServer(h)
	log.Info("listening", "addr", ln.Addr().String())
	if onListen != nil {
		onListen(ln.Addr().String())
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	// Background work gets its own context: it stops after the listener, so
	// requests still in flight have their events relayed.
	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBg()
	bgErr := make(chan error, 1)
	if background != nil {
		go func() { bgErr <- background(bgCtx) }()
	}
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case err := <-bgErr:
		if err == nil {
			err = errors.New("background work stopped")
		}
		return err
	case <-ctx.Done():
	}
	begin := time.Now()
	log.Info("shutting down: draining", "drain_delay", cfg.DrainDelay, "grace", cfg.ShutdownGrace)
	h.Drain()
	select {
	case <-time.After(cfg.DrainDelay):
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), max(cfg.ShutdownGrace-time.Since(begin), time.Second))
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("shutdown: requests still in flight at the end of the grace period", "err", err)
	}
	stopBg()
	if background != nil {
		select {
		case err := <-bgErr:
			if err != nil {
				log.Error("background work failed during shutdown", "err", err)
			}
		case <-sctx.Done():
			log.Error("shutdown: background work did not stop within the grace period")
		}
	}
	log.Info("stopped", "elapsed", time.Since(begin).Round(time.Millisecond))
	return nil
}

func migrateAll(ctx context.Context, cfg *config, log *slog.Logger) error {
	reg, err := openRegistry(ctx, cfg, log, nil)
	if err != nil {
		return err
	}
	defer reg.Close()
	if err := reg.Migrate(ctx); err != nil {
		return err
	}
	log.Info("migrated")
	if cfg.AdoptAccounts == "" {
		return nil
	}
	for _, id := range strings.Split(cfg.AdoptAccounts, ",") {
		id = strings.TrimSpace(id)
		pw, err := os.ReadFile(filepath.Join(cfg.AccountPasswordsDir, id))
		if err != nil {
			return fmt.Errorf("account %s: read its database password: %w", id, err)
		}
		adopted, err := reg.AdoptAccount(ctx, &oms.Account{ID: id, Name: id, Cell: cfg.AccountCell[id]}, strings.TrimSpace(string(pw)))
		if oms.ErrorCode(err) == oms.ECONFLICT && oms.ErrorField(err) == "cell" {
			// The registry has the account elsewhere (an online move the stack has not recorded): not this job's
			// to undo, and no reason to fail the deployment.
			log.Warn("account placement differs from the registry's; changed nothing", "account", id, "err", err)
			continue
		}
		if err != nil {
			return err
		}
		if adopted {
			log.Info("account registered; issue its API key with POST /v1/accounts/{id}/keys (admin token)", "account", id)
		}
	}
	return nil
}

func createAccount(ctx context.Context, cfg *config, log *slog.Logger, stdout io.Writer) error {
	reg, err := openRegistry(ctx, cfg, log, nil)
	if err != nil {
		return err
	}
	defer reg.Close()
	if err := reg.Migrate(ctx); err != nil {
		return err
	}
	key, err := reg.CreateAccount(ctx, &oms.Account{ID: cfg.AccountID, Name: cfg.AccountName})
	if err != nil {
		return err
	}
	// The key goes to stdout only, once: it is stored hashed and never logged.
	return json.NewEncoder(stdout).Encode(map[string]string{"id": cfg.AccountID, "apiKey": key})
}

func moveAccount(ctx context.Context, cfg *config, log *slog.Logger, stdout io.Writer) error {
	reg, err := openRegistry(ctx, cfg, log, nil)
	if err != nil {
		return err
	}
	defer reg.Close()
	if err := reg.CheckMigrated(ctx); err != nil {
		return err
	}
	o := postgres.MoveOptions{PauseTimeout: cfg.MoveMaxPause, CatchUpTimeout: cfg.MoveMaxCatchUp}
	if cfg.MovePasswordFile != "" {
		pw, err := os.ReadFile(cfg.MovePasswordFile)
		if err != nil {
			return fmt.Errorf("--password-file: %w", err)
		}
		o.TargetPassword = strings.TrimSpace(string(pw))
	}
	res, err := reg.MoveAccount(ctx, cfg.AccountID, cfg.MoveTo, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "moved account %s from cell %s to %s: %d bytes, copy %s, catch-up %s, writes paused %s, %s in all\n"+
		"record it in the stack: database.placement.%s gets %s, then pulumi up\n",
		res.Account, res.From, res.To, res.Bytes, res.Copy.Round(time.Millisecond), res.CatchUp.Round(time.Millisecond),
		res.Pause.Round(time.Millisecond), res.Elapsed.Round(time.Millisecond), res.To, res.Account)
	return nil
}
