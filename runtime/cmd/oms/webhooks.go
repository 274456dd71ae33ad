package main

import (
	"flag"
	"log/slog"
	"time"

	"github.com/omscloud/omscloud/runtime/metrics"
	"github.com/omscloud/omscloud/runtime/postgres"
	"github.com/omscloud/omscloud/runtime/webhook"
)

// webhookConfig holds the dispatcher settings of worker and dev.
type webhookConfig struct {
	Concurrency  int
	Timeout      time.Duration
	BaseDelay    time.Duration
	MaxDelay     time.Duration
	MaxAttempts  int
	Retention    time.Duration
	AllowPrivate bool
}

func (c *config) webhookFlags(fs *flag.FlagSet, getenv func(string) string, worker bool) {
	w := &c.Webhooks
	c.int(fs, getenv, &w.Concurrency, "webhook-concurrency", "OMS_WEBHOOK_CONCURRENCY", 8, "webhook attempts in flight per account")
	c.dur(fs, getenv, &w.Timeout, "webhook-timeout", "OMS_WEBHOOK_TIMEOUT", 10*time.Second, "timeout of one webhook attempt")
	c.dur(fs, getenv, &w.BaseDelay, "webhook-base-delay", "OMS_WEBHOOK_BASE_DELAY", 5*time.Second,
		"wait after a webhook's first failed attempt; doubles per attempt (with jitter) up to --webhook-max-delay")
	c.dur(fs, getenv, &w.MaxDelay, "webhook-max-delay", "OMS_WEBHOOK_MAX_DELAY", time.Hour, "longest wait between webhook attempts")
	c.int(fs, getenv, &w.MaxAttempts, "webhook-max-attempts", "OMS_WEBHOOK_MAX_ATTEMPTS", 10, "attempts before a webhook delivery is dead-lettered")
	c.dur(fs, getenv, &w.Retention, "webhook-retention", "OMS_WEBHOOK_RETENTION", 30*24*time.Hour, "how long delivered webhook deliveries are kept")
	if worker {
		c.boolean(fs, getenv, &w.AllowPrivate, "webhook-allow-private-networks", "OMS_WEBHOOK_ALLOW_PRIVATE_NETWORKS",
			"let webhooks reach loopback and private addresses (off: a webhook URL cannot reach the cluster's internals)")
	} else {
		w.AllowPrivate = true // dev: receivers run on this machine
	}
}

func (w *webhookConfig) validate() []string {
	var errs []string
	if w.Concurrency < 1 {
		errs = append(errs, "--webhook-concurrency/OMS_WEBHOOK_CONCURRENCY must be at least 1")
	}
	if w.MaxAttempts < 1 {
		errs = append(errs, "--webhook-max-attempts/OMS_WEBHOOK_MAX_ATTEMPTS must be at least 1")
	}
	if w.Timeout <= 0 || w.BaseDelay <= 0 || w.MaxDelay <= 0 || w.Retention <= 0 {
		errs = append(errs, "--webhook-timeout, --webhook-base-delay, --webhook-max-delay and --webhook-retention must be positive")
	}
	if w.MaxDelay < w.BaseDelay {
		errs = append(errs, "--webhook-max-delay/OMS_WEBHOOK_MAX_DELAY must not be shorter than --webhook-base-delay/OMS_WEBHOOK_BASE_DELAY")
	}
	return errs
}

func (w *webhookConfig) dispatcher(reg *postgres.Registry, m *metrics.Metrics, log *slog.Logger) *webhook.Dispatcher {
	return webhook.NewDispatcher(webhook.Options{Accounts: reg, Metrics: m, Logger: log, Concurrency: w.Concurrency,
		Timeout: w.Timeout, BaseDelay: w.BaseDelay, MaxDelay: w.MaxDelay, MaxAttempts: w.MaxAttempts,
		Retention: w.Retention, DenyPrivateNetworks: !w.AllowPrivate})
}
