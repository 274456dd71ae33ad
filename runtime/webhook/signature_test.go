package webhook_test

import (
	"encoding/hex"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/omscloud/omscloud/runtime/webhook"
)

func TestVerifyAcceptsOnlyTheSecretsSignatureWithinTheTolerance(t *testing.T) {
	body := []byte(`{"id":"e1","type":"order.created"}`)
	now := time.Now()
	sig := webhook.Sign(secret, now, body)
	old := webhook.Sign(secret, now.Add(-10*time.Minute), body)
	ts := strconv.FormatInt(now.Unix(), 10)
	tests := []struct {
		name, secret, header string
		body                 []byte
		want                 error
	}{
		{"valid", secret, sig, body, nil},
		{"rotation: any v1 may match", secret, sig + ",v1=" + hex.EncodeToString(make([]byte, 32)), body, nil},
		{"wrong secret", "another-secret-0123", sig, body, webhook.ErrBadSignature},
		{"changed body", secret, sig, append(body, ' '), webhook.ErrBadSignature},
		{"timestamp changed", secret, "t=" + strconv.FormatInt(now.Unix()+1, 10) + sig[len("t=")+len(ts):], body, webhook.ErrBadSignature},
		{"too old", secret, old, body, webhook.ErrSignatureExpired},
		{"no signature", secret, "t=" + ts, body, webhook.ErrNoSignature},
		{"empty header", secret, "", body, webhook.ErrNoSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.ErrorIs(t, webhook.Verify(tc.secret, tc.header, tc.body, 5*time.Minute), tc.want)
			if tc.want == nil {
				assert.NoError(t, webhook.Verify(tc.secret, tc.header, tc.body, 5*time.Minute))
			}
		})
	}
	assert.NoError(t, webhook.Verify(secret, old, body, 0), "tolerance 0 skips the age check")
}

func TestBackoffDoublesWithJitterUpToTheCap(t *testing.T) {
	base, maxDelay := time.Second, 20*time.Second
	for range 200 {
		prev := time.Duration(0)
		for n := 1; n <= 12; n++ {
			d := webhook.Backoff(n, base, maxDelay)
			nominal := min(base<<(n-1), maxDelay)
			assert.LessOrEqual(t, d, nominal, "attempt %d", n)
			assert.GreaterOrEqual(t, d, nominal*3/4, "attempt %d: at most 25%% jitter", n)
			if nominal < maxDelay {
				assert.Greater(t, d, prev, "attempt %d waits longer than attempt %d", n, n-1)
			}
			prev = d
		}
	}
	assert.LessOrEqual(t, webhook.Backoff(500, base, time.Hour), time.Hour, "no overflow for huge attempt numbers")
}
