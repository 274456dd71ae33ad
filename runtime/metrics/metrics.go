// Package metrics declares the runtime's Prometheus collectors in one place, so
// the API and the worker export the same names whichever process they run in.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector.
type Metrics struct {
	Registry        *prometheus.Registry
	RequestDuration *prometheus.HistogramVec // by method, route, status code
	OrdersCreated   prometheus.Counter
	OrdersProcessed *prometheus.CounterVec // by resulting status
	EventsRelayed   prometheus.Counter
	EventsApplied   *prometheus.CounterVec // by type and result (applied, duplicate, error)
	OutboxLag       *prometheus.GaugeVec   // seconds, by account
	QueueDepth      *prometheus.GaugeVec   // messages ready, by queue
	// Webhook attempts by outcome (delivered, retry, dead) and their duration.
	WebhookAttempts        *prometheus.CounterVec
	WebhookAttemptDuration prometheus.Histogram
	// Requests counts API requests by method, route pattern and status code: the availability SLO's good/total
	// ratio (Cloud Monitoring's request-based SLIs read counters, not histograms). Route is the router's pattern,
	// never the path, so account and order ids never become labels.
	Requests *prometheus.CounterVec
	// DeliveryDelay is how long after it happened a worker handled an event: consumer lag as it is felt.
	DeliveryDelay prometheus.Histogram
	// WorkerRunning is 1 while a worker's relay and consumers run: its absence is the dead-worker alert.
	WorkerRunning prometheus.Gauge
	// BackupLastSuccess is the creation time of the newest archive per tier the worker lists in the backup bucket
	// (or, while a tier has none, when the worker started watching); BackupStoreUp is 1 while that listing works.
	BackupLastSuccess *prometheus.GaugeVec
	BackupStoreUp     prometheus.Gauge
}

// New creates the collectors on a fresh registry (with Go and process collectors).
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "oms_http_request_duration_seconds",
			Help:    "HTTP request latency by method, route pattern and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route", "code"}),
		OrdersCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oms_orders_created_total", Help: "Orders accepted by the API (replays excluded).",
		}),
		OrdersProcessed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oms_orders_processed_total", Help: "Orders allocated by the worker, by resulting status.",
		}, []string{"status"}),
		EventsRelayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oms_outbox_events_relayed_total", Help: "Events published from the outbox and confirmed.",
		}),
		EventsApplied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oms_events_consumed_total", Help: "Events handled by the worker, by type and result.",
		}, []string{"type", "result"}),
		OutboxLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "oms_outbox_lag_seconds", Help: "Age of the oldest unpublished event, by account.",
		}, []string{"account"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "oms_queue_depth", Help: "Messages ready in a broker queue.",
		}, []string{"queue"}),
		WebhookAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oms_webhook_attempts_total", Help: "Webhook delivery attempts by outcome: delivered, retry (failed, will retry) or dead (dead-lettered).",
		}, []string{"outcome"}),
		WebhookAttemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "oms_webhook_attempt_duration_seconds", Help: "Duration of webhook delivery attempts (request to response or error).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oms_http_requests_total", Help: "HTTP requests by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		DeliveryDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "oms_event_delivery_delay_seconds", Help: "Time from an event to its handling by the worker.",
			Buckets: []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 120, 300, 600, 1800},
		}),
		WorkerRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "oms_worker_running", Help: "1 while the worker's relay and consumers run.",
		}),
		BackupLastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "oms_backup_last_success_timestamp_seconds",
			Help: "Creation time of the newest backup per tier in the backup bucket (while a tier has none: when the worker started watching).",
		}, []string{"tier"}),
		BackupStoreUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "oms_backup_store_up", Help: "1 while the worker can list the backup bucket, 0 when the last listing failed.",
		}),
	}
	reg.MustRegister(m.Requests, m.DeliveryDelay, m.WorkerRunning, m.BackupLastSuccess, m.BackupStoreUp)
	reg.MustRegister(m.RequestDuration, m.OrdersCreated, m.OrdersProcessed, m.EventsRelayed, m.EventsApplied,
		m.OutboxLag, m.QueueDepth, m.WebhookAttempts, m.WebhookAttemptDuration, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
