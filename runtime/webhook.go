package oms

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Webhook delivery statuses: pending until a 2xx answer (delivered) or until
// the attempts are exhausted or the receiver answers 410 Gone (dead).
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryDead      = "dead"
)

// Webhook limits.
const (
	MinWebhookSecret = 16
	MaxWebhookSecret = 256
	MaxWebhookEvents = 50
	MaxWebhookURL    = 2048
)

var (
	webhookNamePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	// An event type is dot-separated lowercase segments (order.allocated,
	// inventory.batch_loaded); a pattern may end in ".*" or be "*".
	eventTypePattern    = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)
	eventPrefixPattern  = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.\*$`)
	deliveryStatusNames = map[string]bool{DeliveryPending: true, DeliveryDelivered: true, DeliveryDead: true}
)

// Webhook is an account's subscription of a URL to event types. Its secret
// signs every delivery; it is write-only and never leaves the store again.
type Webhook struct {
	Name      string    `json:"name"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	Secret    string    `json:"-"`
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// WebhookInput is the body of PUT /v1/webhooks/{name}; Enabled defaults to true.
type WebhookInput struct {
	URL     string   `json:"url"`
	Events  []string `json:"events"`
	Secret  string   `json:"secret"`
	Enabled *bool    `json:"enabled"`
}

// ValidateWebhookName checks a webhook name (a path segment).
func ValidateWebhookName(name string) error {
	if !webhookNamePattern.MatchString(name) {
		return Invalid("name", "must match [a-z][a-z0-9-]{0,62} (lowercase letter first, then letters, digits or '-')")
	}
	return nil
}

// Validate checks a webhook definition; errors name the JSON field.
func (in *WebhookInput) Validate() error {
	if err := validateWebhookURL(in.URL); err != nil {
		return err
	}
	if len(in.Events) == 0 {
		return Invalid("events", "required: a list of event types (order.allocated), prefixes (fulfilment.*) or \"*\"")
	}
	if len(in.Events) > MaxWebhookEvents {
		return Invalid("events", "at most %d entries", MaxWebhookEvents)
	}
	seen := map[string]bool{}
	for i, e := range in.Events {
		field := "events[" + strconv.Itoa(i) + "]"
		if e != "*" && !eventTypePattern.MatchString(e) && !eventPrefixPattern.MatchString(e) {
			return Invalid(field, "%q is not an event type (order.allocated), a prefix (fulfilment.*) or \"*\"", e)
		}
		if seen[e] {
			return Invalid(field, "%q is listed twice", e)
		}
		seen[e] = true
	}
	if n := utf8.RuneCountInString(in.Secret); n < MinWebhookSecret || n > MaxWebhookSecret {
		// Never echo the secret, not even in an error.
		return Invalid("secret", "must be %d to %d characters (generate one, e.g. openssl rand -hex 32)", MinWebhookSecret, MaxWebhookSecret)
	}
	return nil
}

func validateWebhookURL(raw string) error {
	if raw == "" {
		return Invalid("url", "required: an absolute https:// URL")
	}
	if len(raw) > MaxWebhookURL {
		return Invalid("url", "at most %d characters", MaxWebhookURL)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return Invalid("url", "must be an absolute URL such as https://example.com/hooks/oms")
	}
	if u.User != nil {
		// It would be shown by GET: credentials belong in the secret, which signs each delivery.
		return Invalid("url", "must not carry credentials (user:password@); receivers authenticate deliveries by their signature")
	}
	if u.Fragment != "" {
		return Invalid("url", "must not have a #fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return Invalid("url", "must use https (plain http only for localhost, 127.0.0.0/8 or ::1)")
		}
	default:
		return Invalid("url", "scheme %q not supported: use https", u.Scheme)
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// MatchingEventPatterns lists every subscription pattern that selects an event
// type: "*", each dotted prefix with ".*", and the type itself. A webhook
// receives the event if its events share one entry with this list.
func MatchingEventPatterns(eventType string) []string {
	ps := []string{"*"}
	for i := 0; i < len(eventType); i++ {
		if eventType[i] == '.' {
			ps = append(ps, eventType[:i]+".*")
		}
	}
	return append(ps, eventType)
}

// WebhookAttempt is one POST of a delivery, as the delivery log shows it.
type WebhookAttempt struct {
	N          int       `json:"n"`
	At         time.Time `json:"at"`
	DurationMS int64     `json:"durationMs"`
	// StatusCode is the receiver's HTTP status; 0 when no answer came (Error says why).
	StatusCode    int        `json:"statusCode,omitempty"`
	Error         string     `json:"error,omitempty"`
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
}

// WebhookDelivery is one event queued for one webhook. Its ID is sent as the
// OMS-Delivery header of every attempt: the receiver's idempotency key.
type WebhookDelivery struct {
	ID            string           `json:"id"`
	Webhook       string           `json:"webhook"`
	EventID       string           `json:"eventId"`
	EventType     string           `json:"eventType"`
	EventSeq      int64            `json:"eventSeq"`
	Status        string           `json:"status"`
	NextAttemptAt *time.Time       `json:"nextAttemptAt,omitempty"`
	CreatedAt     time.Time        `json:"createdAt"`
	UpdatedAt     time.Time        `json:"updatedAt"`
	Attempts      []WebhookAttempt `json:"attempts"`
}

// DeliveryFilter selects a webhook's deliveries, newest first.
type DeliveryFilter struct {
	Status string
	Limit  int
}

// Validate checks the filter and sets the default limit.
func (f *DeliveryFilter) Validate() error {
	if f.Status != "" && !deliveryStatusNames[f.Status] {
		return Invalid("status", "must be pending, delivered or dead")
	}
	if f.Limit == 0 {
		f.Limit = 50
	}
	if f.Limit < 0 || f.Limit > 500 {
		return Invalid("limit", "must be between 1 and 500")
	}
	return nil
}

// ValidateDeliveryID checks a delivery id (a UUID).
func ValidateDeliveryID(id string) error {
	if !IsUUID(id) {
		return Invalid("id", "must be a delivery id (a lowercase UUID)")
	}
	return nil
}

// WebhookJob is a claimed delivery: everything the dispatcher needs to send
// one attempt. Claim is the lease token that must match to record the result.
type WebhookJob struct {
	DeliveryID string
	Claim      string
	Webhook    string
	URL        string
	Secret     string
	Event      *Event
	// Attempt is the number of this attempt within the current round (1 first;
	// a redelivery starts a new round), which sets the backoff and the bound.
	Attempt int
	// N is the attempt's number in the delivery log (counts every round).
	N int
}

// WebhookResult is the outcome of an attempt the dispatcher records.
type WebhookResult struct {
	Attempt WebhookAttempt // N, At, DurationMS, StatusCode, Error
	// Status is the delivery's new status; RetryIn the delay before the next
	// attempt when it stays pending.
	Status  string
	RetryIn time.Duration
}

// WebhookPayload is the JSON body of a delivery: the event as the account sees it.
type WebhookPayload struct {
	ID      string          `json:"id"`
	Account string          `json:"account"`
	Entity  string          `json:"entity"`
	Type    string          `json:"type"`
	Data    json.RawMessage `json:"data"`
	At      time.Time       `json:"at"`
}

// WebhookService manages an account's webhooks and their delivery queue.
type WebhookService interface {
	// PutWebhook creates (created=true) or replaces the webhook name. New
	// events matching its Events are queued for it from the next commit on.
	PutWebhook(ctx context.Context, name string, in *WebhookInput) (w *Webhook, created bool, err error)
	Webhook(ctx context.Context, name string) (*Webhook, error)
	Webhooks(ctx context.Context) ([]*Webhook, error)
	// DeleteWebhook removes the webhook with its deliveries: pending ones are not attempted any more.
	DeleteWebhook(ctx context.Context, name string) error
	// WebhookDeliveries is the delivery log of a webhook, newest first, each with its attempts.
	WebhookDeliveries(ctx context.Context, name string, f DeliveryFilter) ([]*WebhookDelivery, error)
	// Redeliver re-queues a dead or delivered delivery for a new round of attempts (ECONFLICT if pending).
	Redeliver(ctx context.Context, name, id string) (*WebhookDelivery, error)

	// ClaimWebhookJobs leases up to limit due deliveries of enabled webhooks
	// for lease; concurrent claimers skip each other's rows, and a leased
	// delivery is not due again until its lease ends.
	ClaimWebhookJobs(ctx context.Context, limit int, lease time.Duration) ([]*WebhookJob, error)
	// RecordWebhookResult logs the attempt and, if the job still holds its
	// lease, sets the delivery's status and next attempt.
	RecordWebhookResult(ctx context.Context, job *WebhookJob, r *WebhookResult) error
	// PruneWebhookDeliveries deletes up to limit deliveries delivered before
	// the cutoff, with their attempts; it returns how many it deleted.
	PruneWebhookDeliveries(ctx context.Context, before time.Time, limit int) (int, error)
}
