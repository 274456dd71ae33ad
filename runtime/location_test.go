package oms

import (
	"regexp"
	"strings"
	"testing"
)

// refRule is the rule isRef implements, as the regexp it replaced: the test's oracle.
var refRule = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$`)

func TestIsRefIsTheRule(t *testing.T) {
	for _, v := range []string{"", "a", "A1", "9", "SKU-0001", "loc.1_b:c-d", "-a", ".a", "_a", ":a", "a b", "a/b", "é",
		"a\x00", strings.Repeat("x", 100), strings.Repeat("x", 101), "x" + strings.Repeat("-", 99)} {
		if got, want := isRef(v), refRule.MatchString(v); got != want {
			t.Errorf("isRef(%q) = %v, the rule says %v", v, got, want)
		}
	}
}

func FuzzIsRefIsTheRule(f *testing.F) {
	for _, v := range []string{"SKU-1", "-x", "a:b", "\xff"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if got, want := isRef(v), refRule.MatchString(v); got != want {
			t.Errorf("isRef(%q) = %v, the rule says %v", v, got, want)
		}
	})
}

func BenchmarkValidateRef(b *testing.B) {
	for b.Loop() {
		_ = ValidateRef("sku", "SKU-000123")
	}
}

// BenchmarkValidateRefRegexp is what ValidateRef cost before, for comparison.
func BenchmarkValidateRefRegexp(b *testing.B) {
	for b.Loop() {
		_ = refRule.MatchString("SKU-000123")
	}
}
