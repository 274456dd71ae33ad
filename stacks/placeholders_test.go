package stacks

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shippedSample is the digest every stack file once pinned: two interleaved sequences, not a build.
const shippedSample = "4f2b8c1d9e7a6b5c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c"

// TestProductionRefusesPlaceholders: each kind of sample value fails a production stack, naming the key and the fix,
// and passes a sandbox stack; a real value of the same kind passes both.
func TestProductionRefusesPlaceholders(t *testing.T) {
	const (
		buildDigest = "dfcf4f49ac135e86c3da70e020820fdca2f4b1114de3b88a4432d45ae45fb379"
		accountID   = "45a5b1a53ad743df3fb503683a5bef80"
		zoneID      = "0414d4c00965cd421f2bca1caf19b62b"
	)
	networks := func(cidr string) map[string]string {
		return map[string]string{"omscloud:gke": `{"masterAuthorizedNetworks":[{"name":"deployers","cidr":"` + cidr + `"}]}`}
	}
	image := func(digest string) map[string]string {
		return map[string]string{"omscloud:runtime": `{"image":"europe-docker.pkg.dev/omscloud-release/oms/oms@sha256:` + digest + `"}`}
	}
	cloudflare := func(account, zone string) map[string]string {
		return map[string]string{"omscloud:edge": `{"provider":"cloudflare","domain":"oms.acme.example.com","cloudflare":{"accountId":"` +
			account + `","zoneId":"` + zone + `"}}`}
	}
	const (
		cidrKey    = "omscloud:gke.masterAuthorizedNetworks[0].cidr"
		imageKey   = "omscloud:runtime.image"
		accountKey = "omscloud:edge.cloudflare.accountId"
		zoneKey    = "omscloud:edge.cloudflare.zoneId"
	)
	for _, tc := range []struct {
		kind, name string
		changes    map[string]string
		key        string // "" for a real value
		fix        string
	}{
		{"documentation range", "TEST-NET-2", networks("198.51.100.0/24"), cidrKey, "egress range of the deployer runners"},
		{"documentation range", "a /29 inside TEST-NET-3", networks("203.0.113.40/29"), cidrKey, "RFC 5737"},
		{"documentation range", "one address of TEST-NET-1", networks("192.0.2.10/32"), cidrKey, "RFC 5737"},
		{"documentation range", "the runners' egress", networks("34.118.26.8/29"), "", ""},
		{"documentation range", "a block around TEST-NET-2", networks("198.51.0.0/16"), "", ""},

		{"sample digest", "the shipped sample", image(shippedSample), imageKey, "pin the digest of the tested release"},
		{"sample digest", "a repeated pair", image(strings.Repeat("ab", 32)), imageKey, "gcloud artifacts docker images describe"},
		{"sample digest", "zeros and a one", image(strings.Repeat("0", 63) + "1"), imageKey, "sample digest"},
		{"sample digest", "a staged color", map[string]string{"omscloud:runtime": `{"image":"` + release +
			`","colorImages":{"green":"europe-docker.pkg.dev/omscloud-release/oms/oms@sha256:` + strings.Repeat("0123456789abcdef", 4) + `"}}`},
			"omscloud:runtime.colorImages.green", "sample digest"},
		{"sample digest", "a build's digest", image(buildDigest), "", ""},

		{"sample Cloudflare id", "account 0123…", cloudflare("0123456789abcdef0123456789abcdef", zoneID), accountKey, "Cloudflare dashboard"},
		{"sample Cloudflare id", "zone fedcba…", cloudflare(accountID, "fedcba9876543210fedcba9876543210"), zoneKey, "Cloudflare dashboard"},
		{"sample Cloudflare id", "one repeated digit", cloudflare(accountID, strings.Repeat("7", 32)), zoneKey, "sample"},
		{"sample Cloudflare id", "the account's own ids", cloudflare(accountID, zoneID), "", ""},
	} {
		t.Run(tc.kind+"/"+tc.name, func(t *testing.T) {
			_, err := ParseConfig("prod", with(tc.changes), nil)
			if tc.key == "" {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
				got := problems(t, err)
				require.Contains(t, got, tc.key, "problems: %v", got)
				assert.Contains(t, got[tc.key], tc.fix)
				assert.Contains(t, got[tc.key], "only sandbox stacks may keep", "the error says where placeholders are allowed")
				assert.Len(t, got, 1, "only the placeholder is wrong: %v", got)
			}

			sandbox := with(tc.changes)
			sandbox["omscloud:environment"] = Sandbox
			_, err = ParseConfig("sandbox", sandbox, nil)
			assert.NoError(t, err, "sandbox stacks may keep sample values")
		})
	}
}

func TestSampleHexFlagsPatternsNotRandomValues(t *testing.T) {
	for _, s := range []string{
		shippedSample,
		"0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210",
		strings.Repeat("deadbeef", 8), strings.Repeat("0", 64),
		"dfcf4f49ac135e86c3da70e020820fdca2f4b1114de3b88a" + strings.Repeat("0", 16), // a real prefix, then a long run
	} {
		assert.True(t, sampleHex(s), s)
	}
	// Random values must pass: a false refusal would block a real digest or account. Seeded, so the test is stable.
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{32, 64} {
		for range 50_000 {
			b := make([]byte, n)
			for i := range b {
				b[i] = "0123456789abcdef"[rng.IntN(16)]
			}
			if sampleHex(string(b)) {
				t.Fatalf("random %d-character value %s flagged as a sample", n, b)
			}
		}
	}
	assert.False(t, sampleHex("0123"), "too short to tell")
	assert.False(t, sampleHex(strings.Repeat("z", 32)), "not hex: other checks report it")
}
