package postgres

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// IsUnavailable reports whether err means the database could not be reached
// or is switching over (failover, restart, a read-only standby still in the
// connection) or the request lost a lock race, rather than a bug or a bad
// request: the client should retry.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrAccountMoved) {
		return true
	}
	var pe *pgconn.PgError
	var ce *pgconn.ConnectError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"): // connection exception
			return true
		case pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // admin/crash shutdown, cannot connect now
			return true
		case pe.Code == "25006": // read-only transaction: the old primary came back as a standby
			return true
		case pe.Code == "53300": // too many connections
			return true
		case pe.Code == "55000" && strings.Contains(pe.Message, "not currently accepting connections"):
			return true // closed for an account move's pause (MoveAccount)
		case pe.Code == "40P01", pe.Code == "40001": // lost a deadlock or a serialization race: retry
			return true
		case pe.Code == "3D000" && errors.As(err, &ce):
			// The database went while a connection to it was being opened: an account move finished between the
			// pool's look at the registry (BeforeConnect) and the server's answer. The next attempt looks again.
			return true
		}
		return false
	}
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "conn closed")
}
