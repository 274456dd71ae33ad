package stacks

import (
	"fmt"
	"net/netip"
	"strings"
)

// Sample values look real enough to validate, but deploy something that cannot work: a control plane nobody can
// reach, an image that was never built, another account's zone. Production stacks must replace them; sandbox stacks
// (examples, offline plans, tests) may keep them.
const sandboxMayKeep = "only sandbox stacks may keep sample values"

// documentationRanges are RFC 5737's TEST-NET-1, -2 and -3: reserved for examples, so never anyone's egress.
var documentationRanges = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
}

// validatePlaceholders refuses sample values in a production stack, each naming its key and the fix.
func (c *Config) validatePlaceholders(v *validator) {
	if c.Environment != Production {
		return
	}
	for i, n := range c.GKE.MasterAuthorizedNetworks {
		if doc, ok := documentationRange(n.CIDR); ok {
			v.add(fmt.Sprintf("gke.masterAuthorizedNetworks[%d].cidr", i), "%s is documentation address space (RFC 5737, %s) that no runner egresses from: list the fixed egress range of the deployer runners (see the README, \"Reaching the cluster from CI\"); %s",
				n.CIDR, doc, sandboxMayKeep)
		}
	}
	for _, img := range c.Runtime.images() {
		if _, digest, ok := strings.Cut(img.image, "@sha256:"); ok && sampleHex(digest) {
			v.add(img.key, "%q has a sample digest, a pattern rather than a build: pin the digest of the tested release (`gcloud artifacts docker images describe <image>:<tag> --format='value(image_summary.digest)'`); %s",
				img.image, sandboxMayKeep)
		}
	}
	for _, id := range []struct{ key, value string }{
		{"edge.cloudflare.accountId", c.Edge.Cloudflare.AccountID}, {"edge.cloudflare.zoneId", c.Edge.Cloudflare.ZoneID},
	} {
		if sampleHex(id.value) {
			v.add(id.key, "%q is a sample id: copy the real one from the zone's Overview page in the Cloudflare dashboard (API section); %s",
				id.value, sandboxMayKeep)
		}
	}
}

// documentationRange returns the RFC 5737 range a CIDR lies in, if any.
func documentationRange(cidr string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return netip.Prefix{}, false
	}
	for _, doc := range documentationRanges {
		if p.Bits() >= doc.Bits() && doc.Contains(p.Addr()) {
			return doc, true
		}
	}
	return netip.Prefix{}, false
}

// Thresholds of sampleHex. A character is predictable when it equals the one `stride` places before it or differs
// from it by one (mod 16): true of 3 in 16 characters of a random string. Runs like 0123…, fedc…, abab…, deadbeef…
// and the interleaved 4f2b8c1d9e7a… are mostly predictable at some stride from 1 to 8. Of 2 million random strings
// of 32 and 2 million of 64 characters, none reached either threshold.
const (
	sampleMinLength  = 32 // shorter strings say too little to tell
	sampleMaxStride  = 8
	samplePredictive = 0.7
	sampleRun        = 14
)

// sampleHex reports whether a hex string (a digest, a Cloudflare id) is a typed pattern rather than a random value:
// at some stride, at least 70% of its characters are predictable, or 14 in a row are.
func sampleHex(s string) bool {
	if len(s) < sampleMinLength {
		return false
	}
	digits := make([]int, len(s))
	for i, r := range strings.ToLower(s) {
		switch {
		case r >= '0' && r <= '9':
			digits[i] = int(r - '0')
		case r >= 'a' && r <= 'f':
			digits[i] = int(r-'a') + 10
		default:
			return false // not hex: other checks say what is wrong with it
		}
	}
	for stride := 1; stride <= sampleMaxStride && stride < len(digits); stride++ {
		predictable, run := 0, 0
		for i := stride; i < len(digits); i++ {
			if d := (digits[i] - digits[i-stride] + 16) % 16; d == 0 || d == 1 || d == 15 {
				predictable++
				run++
				if run >= sampleRun {
					return true
				}
			} else {
				run = 0
			}
		}
		if float64(predictable) >= samplePredictive*float64(len(digits)-stride) {
			return true
		}
	}
	return false
}
