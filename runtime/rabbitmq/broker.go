// Package rabbitmq publishes and consumes OMS events on RabbitMQ: a durable topic exchange, quorum queues
// with dead-lettering, publisher confirms, manual acks, and a connection that heals itself after a broker
// restart. It depends only on the standard library and the AMQP driver, so the domain adapters can wrap it.
package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("rabbitmq: broker closed")

// ErrNotConnected is returned when the connection is down and being re-established.
var ErrNotConnected = errors.New("rabbitmq: not connected")

// Options configures Dial.
type Options struct {
	// URL is the AMQP URI, e.g. amqp://user:pass@127.0.0.1:5672/vhost. Required.
	URL string
	// Exchange is the durable topic exchange events are published to. Default "oms.events".
	Exchange string
	// DeliveryLimit is how often a message is delivered before the quorum queue dead-letters it.
	// Default 5.
	DeliveryLimit int
	// PublishTimeout bounds a Publish (waiting for a connection and for every confirm) when the
	// caller's context has no deadline. Default 15s.
	PublishTimeout time.Duration
	// Logger receives reconnects and handler failures. Default slog.Default().
	Logger *slog.Logger
}

const (
	defaultExchange       = "oms.events"
	defaultDeliveryLimit  = 5
	defaultPublishTimeout = 15 * time.Second
	dialTimeout           = 5 * time.Second
	minBackoff            = 100 * time.Millisecond
	maxBackoff            = 5 * time.Second
)

func (o *Options) setDefaults() error {
	if o.URL == "" {
		return errors.New("rabbitmq: Options.URL is empty: set it to amqp://user:pass@host:5672/vhost")
	}
	if _, err := amqp.ParseURI(o.URL); err != nil {
		// The parse error may echo the URL, password included; say only what is wrong with it.
		return fmt.Errorf("rabbitmq: Options.URL is not a valid AMQP URI (want amqp://user:pass@host:5672/vhost): %s", redactErr(err, o.URL))
	}
	if o.Exchange == "" {
		o.Exchange = defaultExchange
	}
	if o.DeliveryLimit < 0 {
		return fmt.Errorf("rabbitmq: Options.DeliveryLimit is %d: use a positive number (0 means %d)", o.DeliveryLimit, defaultDeliveryLimit)
	}
	if o.DeliveryLimit == 0 {
		o.DeliveryLimit = defaultDeliveryLimit
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = defaultPublishTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Broker is a self-healing AMQP connection plus the operations OMS needs. Safe for concurrent use.
type Broker struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	conn   *amqp.Connection // nil while reconnecting
	ready  chan struct{}    // closed while conn is usable; replaced when the connection is lost
	idle   []*amqp.Channel  // confirm-mode channels of conn, ready for the next Publish
	closed bool

	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

// Dial connects to the broker and declares the exchange. It fails if the first connection cannot be made
// (wrong URL, credentials or vhost should stop a process at start); later losses are healed in the
// background with exponential backoff.
func Dial(ctx context.Context, opts Options) (*Broker, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	b := &Broker{
		opts:  opts,
		log:   opts.Logger.With("component", "rabbitmq", "broker", redactURL(opts.URL)),
		ready: make(chan struct{}),
		done:  make(chan struct{}),
	}
	conn, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	b.install(conn)
	b.wg.Add(1)
	go b.supervise(conn)
	return b, nil
}

// connect dials and declares the exchange; the exchange is redeclared on every connect so a broker that
// lost its definitions (fresh node) is usable again without a restart.
func (b *Broker) connect(ctx context.Context) (*amqp.Connection, error) {
	cfg := amqp.Config{
		Heartbeat: 10 * time.Second,
		Locale:    "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: dialTimeout}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Handshake deadline; the driver clears it once the connection is open.
			return c, c.SetDeadline(time.Now().Add(dialTimeout))
		},
	}
	conn, err := amqp.DialConfig(b.opts.URL, cfg)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: dial %s: %s", redactURL(b.opts.URL), redactErr(err, b.opts.URL))
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.ExchangeDeclare(b.opts.Exchange, amqp.ExchangeTopic, true, false, false, false, nil)
		if err == nil {
			_ = ch.Close()
		}
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("rabbitmq: declare exchange %q: %w", b.opts.Exchange, err)
	}
	return conn, nil
}

func (b *Broker) install(conn *amqp.Connection) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conn = conn
	b.idle = nil
	close(b.ready)
}

// supervise waits for the connection to drop and replaces it, until Close.
func (b *Broker) supervise(conn *amqp.Connection) {
	defer b.wg.Done()
	for {
		lost := conn.NotifyClose(make(chan *amqp.Error, 1))
		var cause *amqp.Error
		select {
		case <-b.done:
			return
		case cause = <-lost:
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return
		}
		b.conn, b.idle = nil, nil
		b.ready = make(chan struct{})
		b.mu.Unlock()
		b.log.Warn("connection lost, reconnecting", "cause", errString(cause))

		start := time.Now()
		for attempt := 0; ; attempt++ {
			if !sleep(b.done, backoff(attempt)) {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*dialTimeout)
			c, err := b.connect(ctx)
			cancel()
			if err == nil {
				conn = c
				break
			}
			b.log.Debug("reconnect failed", "attempt", attempt+1, "err", err)
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			_ = conn.Close()
			return
		}
		b.mu.Unlock()
		b.install(conn)
		b.log.Info("reconnected", "after", time.Since(start).Round(time.Millisecond))
	}
}

// connection returns the live connection, waiting for a reconnect until ctx is done.
func (b *Broker) connection(ctx context.Context) (*amqp.Connection, error) {
	for {
		b.mu.Lock()
		closed, conn, ready := b.closed, b.conn, b.ready
		b.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		wait := ready
		if conn != nil {
			// Closed but not yet noticed by supervise: poll briefly instead of spinning.
			wait = nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
		case <-b.done:
			return nil, ErrClosed
		case <-wait:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// channel opens a short-lived channel for topology operations; the caller closes it.
func (b *Broker) channel(ctx context.Context) (*amqp.Channel, error) {
	conn, err := b.connection(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: open channel: %w", err)
	}
	return ch, nil
}

// Ping reports whether the broker is connected and answering; it does not wait for a reconnect, so a
// readiness probe sees an outage at once.
func (b *Broker) Ping(ctx context.Context) error {
	b.mu.Lock()
	closed, conn := b.closed, b.conn
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if conn == nil || conn.IsClosed() {
		return ErrNotConnected
	}
	// Opening a channel is a round trip: it proves the broker answers, not just that the socket is open.
	errc := make(chan error, 1)
	go func() {
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Close()
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("rabbitmq: ping: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("rabbitmq: ping: %w", ctx.Err())
	}
}

// Close stops reconnecting and closes the connection; in-flight deliveries that were not acked are
// returned to their queues by the broker.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	conn := b.conn
	b.conn, b.idle = nil, nil
	close(b.done)
	b.mu.Unlock()
	var err error
	if conn != nil && !conn.IsClosed() {
		err = conn.Close()
	}
	b.wg.Wait()
	if err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("rabbitmq: close: %w", err)
	}
	return nil
}

// backoff is exponential from minBackoff to maxBackoff with ±25% jitter, so many clients reconnecting to a
// restarted broker do not arrive in lockstep.
func backoff(attempt int) time.Duration {
	d := minBackoff << min(attempt, 6)
	d = min(d, maxBackoff)
	return d - d/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// sleep waits d or until done is closed; it reports whether the full wait elapsed.
func sleep(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
		return true
	}
}

func errString(err *amqp.Error) string {
	if err == nil {
		return "closed"
	}
	return err.Error()
}

// redactURL drops the password so URLs can be logged.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid url>"
	}
	return u.Redacted()
}

// redactErr renders err without the password the URL may contain.
func redactErr(err error, raw string) string {
	s := err.Error()
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			s = strings.ReplaceAll(s, p, "xxxxx")
		}
	}
	return s
}
