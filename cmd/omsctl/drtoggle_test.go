package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/omscloud/omscloud/stacks"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDRDisableNeedsTheSiteReleasedThenPinsTheBucket(t *testing.T) {
	dir := project(t)
	path := filepath.Join(dir, "Pulumi.prod.yaml")
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	_, _, err = runOmsctl("dr", "disable", "--stack", "prod", "--dir", dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "re-run with --release-dr-site")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "nothing written")

	out, _, err := runOmsctl("dr", "disable", "--stack", "prod", "--dir", dir, "--release-dr-site")
	require.NoError(t, err)
	assert.Contains(t, out, "the backup bucket stays in us-east4: pinned with backup.location")
	assert.Regexp(t, `pulumi state unprotect -s prod 'urn:pulumi:prod::omscloud::.*\$omscloud:dr:DR\$gcp:compute/globalAddress:GlobalAddress::oms-prod-us-dr-ip'`, out)
	cfg, err := stacksConfig(dir, "prod")
	require.NoError(t, err)
	assert.False(t, cfg.DR.Enabled)
	assert.Equal(t, "us-east4", cfg.Backup.Location)

	out, _, err = runOmsctl("dr", "enable", "--stack", "prod", "--dir", dir)
	require.NoError(t, err)
	assert.NotContains(t, out, "pinned", "already pinned")
	cfg2, err := stacksConfig(dir, "prod")
	require.NoError(t, err)
	assert.True(t, cfg2.DR.Enabled)
	assert.Equal(t, "us-east4", cfg2.Backup.Location, "where it has always been")
}

func stacksConfig(dir, stack string) (*stacks.Config, error) {
	sf, err := stacks.LoadStackFile(dir, stack)
	if err != nil {
		return nil, err
	}
	return sf.Config()
}
