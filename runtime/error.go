// Package oms holds the domain types and service interfaces of the OMS runtime.
// It has no dependencies beyond the standard library; adapters (postgres, redis,
// rabbitmq, http) implement or consume what is declared here.
package oms

import (
	"errors"
	"fmt"
)

// Error codes. The http package maps each one to a status code; anything that
// is not an *Error is internal and its text is never shown to a client.
const (
	EINVALID      = "invalid"      // the request is malformed or breaks a rule
	ENOTFOUND     = "not_found"    // the entity does not exist (in this account)
	ECONFLICT     = "conflict"     // the state does not allow it (exists, already cancelled, key reuse)
	EUNAUTHORIZED = "unauthorized" // no or unknown credentials
	EFORBIDDEN    = "forbidden"    // credentials valid but not for this endpoint
	ETOOLARGE     = "too_large"    // the body exceeds a limit
	EUNSUPPORTED  = "unsupported"  // unsupported media type
	EUNAVAILABLE  = "unavailable"  // a dependency is down or the process is draining
	ETIMEOUT      = "timeout"      // the client sent its body too slowly
	EABORTED      = "aborted"      // the client closed the connection or cut its body short
	EINTERNAL     = "internal"
)

// Error is the one error type that crosses the API boundary. Field names the
// offending input (JSON path, header or query parameter) so the client can fix it.
type Error struct {
	Code    string
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Message)
	}
	return e.Message
}

// Errorf returns an *Error with the given code and field.
func Errorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Invalid is shorthand for an EINVALID error on field.
func Invalid(field, format string, args ...any) *Error {
	return Errorf(EINVALID, field, format, args...)
}

// ErrorCode returns the code of the first *Error in err's chain, or EINTERNAL.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	}
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorField returns the field of the first *Error in err's chain.
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// ErrorMessage returns a client-safe message: the *Error's message, or a
// generic text for internal errors (whose details are only logged).
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
