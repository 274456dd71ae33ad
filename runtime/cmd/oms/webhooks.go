package main

import (
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
