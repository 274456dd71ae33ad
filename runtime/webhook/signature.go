package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Signature errors, for receivers that want to tell them apart.
var (
	ErrNoSignature      = errors.New("webhook: no t= timestamp or v1= signature in the OMS-Signature header")
	ErrSignatureExpired = errors.New("webhook: signature timestamp outside the tolerance (replayed or clock skew)")
	ErrBadSignature     = errors.New("webhook: no v1 signature matches the body and secret")
)

// Sign returns the OMS-Signature header for body sent at ts:
// t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>. Signing the
// timestamp with the body lets receivers reject replays of old deliveries.
func Sign(secret string, ts time.Time, body []byte) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	return "t=" + t + ",v1=" + hex.EncodeToString(mac(secret, t, body))
}

func mac(secret, t string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(t))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks an OMS-Signature header against the raw request body: one v1
// signature must match (several may be present while a secret is rotated),
// and with tolerance > 0 the timestamp must be within tolerance of now.
func Verify(secret, header string, body []byte, tolerance time.Duration) error {
	var t string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			t = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	ts, err := strconv.ParseInt(t, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	if tolerance > 0 {
		if d := time.Since(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
			return ErrSignatureExpired
		}
	}
	want := mac(secret, t, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrBadSignature
}
