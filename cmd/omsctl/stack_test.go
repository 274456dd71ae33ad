package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUpAndActivateNeedConfirmation(t *testing.T) {
	_, _, err := omsctl(t, "up", "--stack", "prod")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--yes")
	assert.Contains(t, err.Error(), "omsctl preview --stack prod")

	_, _, err = omsctl(t, "dr", "activate", "--stack", "prod-eu")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--yes")
}

func TestPreviewValidatesBeforeTouchingTheEngine(t *testing.T) {
	dir := t.TempDir()
	root, err := os.ReadFile(filepath.Join("..", "..", "Pulumi.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.yaml"), root, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.bad.yaml"), []byte("config:\n  omscloud:environment: production\n  omscloud:region: mars\n"), 0o644))

	// No Pulumi CLI is needed to reject a bad config: --pulumi-root points nowhere.
	_, stderr, err := omsctl(t, "preview", "--stack", "bad", "--dir", dir, "--pulumi-root", filepath.Join(dir, "nowhere"))
	require.Error(t, err)
	assert.Contains(t, stderr, "omscloud:region")
	assert.Contains(t, stderr, "omscloud:project")
}

func TestDRActivateRefusesStacksWithoutDR(t *testing.T) {
	_, _, err := omsctl(t, "dr", "activate", "--stack", "sandbox", "--yes", "--dir", filepath.Join("..", ".."), "--pulumi-root", t.TempDir())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no cold DR site")
}
