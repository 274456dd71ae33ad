// Package components_test checks the shape every component shares (README "Adding a component").
package components_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEveryComponentHasTheSameFiles: one folder per service with the same files, as Fabric's modules have: the
// README, the typed Args (args.go), New (<name>.go) and a plan-based test. environment is the exception: its Args
// are the other components' Args, and it is tested through the stacks' golden inventories.
func TestEveryComponentHasTheSameFiles(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	for _, name := range components(t) {
		t.Run(name, func(t *testing.T) {
			want := []string{"README.md", name + ".go"}
			if name != "environment" {
				want = append(want, "args.go", name+"_test.go")
			}
			for _, f := range want {
				assert.FileExists(t, filepath.Join(name, f))
			}
			assert.True(t, strings.Contains(string(readme), "`"+name+"`"), "the README's layout table lists components/%s", name)
		})
	}
}

// components are the component packages: every folder here but internal.
func components(t *testing.T) []string {
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "internal" && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	require.NotEmpty(t, out)
	return out
}
