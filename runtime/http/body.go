package http

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	oms "github.com/omscloud/omscloud/runtime"
)

// Body read limits (Options.BodyIdleTimeout, MinBodyRate, BodyRateGrace).
const (
	defaultBodyIdleTimeout = 10 * time.Second
	defaultMinBodyRate     = 4 << 10 // bytes per second, averaged
	defaultBodyRateGrace   = 10 * time.Second
)

// slowBody enforces the read limits of a request body: each read gets a
// connection deadline of the idle timeout, and of the moment the body's average
// rate since the grace period would fall under the minimum. A client that
// stops sending or trickles costs only its own request: it ends with 408.
// Errors of the body itself (the client closed the connection, cut the body
// short) are the client's too: they are EABORTED, never an internal error.
type slowBody struct {
	io.ReadCloser
	ctl     *http.ResponseController
	start   time.Time
	n       int64
	idle    time.Duration
	minRate int64
	grace   time.Duration
}

func (s *Server) limitBody(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	r.Body = &slowBody{ReadCloser: r.Body, ctl: http.NewResponseController(w), start: time.Now(),
		idle: s.opts.BodyIdleTimeout, minRate: s.opts.MinBodyRate, grace: s.opts.BodyRateGrace}
}

func (b *slowBody) deadline(now time.Time) time.Time {
	d := now.Add(b.idle)
	if b.minRate > 0 {
		if rd := b.start.Add(b.grace + time.Duration(b.n)*time.Second/time.Duration(b.minRate)); rd.Before(d) {
			d = rd
		}
	}
	return d
}

func (b *slowBody) Read(p []byte) (int, error) {
	now := time.Now()
	d := b.deadline(now)
	if !d.After(now) {
		return 0, b.tooSlow()
	}
	_ = b.ctl.SetReadDeadline(d) // unsupported (a recorder in tests): the checks after the read still apply
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	switch {
	case err == nil || errors.Is(err, io.EOF):
		return n, err
	case errors.As(err, new(*http.MaxBytesError)):
		return n, err
	case errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err):
		return n, b.tooSlow()
	}
	return n, oms.Errorf(oms.EABORTED, "body", "the request body ended early after %d bytes (%v)", b.n, err)
}

func (b *slowBody) tooSlow() error {
	return oms.Errorf(oms.ETIMEOUT, "body", "sent too slowly: no byte for %s, or under %d bytes/s on average after the first %s",
		b.idle, b.minRate, b.grace)
}

// Close clears the connection's read deadline for its next request.
func (b *slowBody) Close() error {
	_ = b.ctl.SetReadDeadline(time.Time{})
	return b.ReadCloser.Close()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
