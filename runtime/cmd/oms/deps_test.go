package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBinaryLinksNoTestTooling: the oms binary ships without package testing and the test libraries. Helpers for
// tests live in packages of their own (localenv/localenvtest, internal/omstest, systemtest) that only tests import.
func TestBinaryLinksNoTestTooling(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, "go list -deps: %s", out)
	var linked []string
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "testing" || strings.HasPrefix(pkg, "testing/") || strings.HasPrefix(pkg, "github.com/stretchr/testify") ||
			strings.HasSuffix(pkg, "/localenvtest") || strings.HasSuffix(pkg, "/omstest") || strings.HasSuffix(pkg, "/systemtest") {
			linked = append(linked, pkg)
		}
	}
	require.Empty(t, linked, "the oms binary links test tooling; see `go list -deps ./cmd/oms`")
}
