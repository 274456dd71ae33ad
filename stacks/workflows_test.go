package stacks

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// TestWorkflowsReachTheClusters: every CI job that runs Pulumi against GCP must be able to reach the control plane
// (a runner whose fixed egress is in gke.masterAuthorizedNetworks), authenticate to it (gke-gcloud-auth-plugin) and,
// for the Cloudflare edge, to Cloudflare (a token from a secret).
func TestWorkflowsReachTheClusters(t *testing.T) {
	type step struct {
		Uses string            `yaml:"uses"`
		With map[string]string `yaml:"with"`
		Env  map[string]string `yaml:"env"`
	}
	type job struct {
		RunsOn any    `yaml:"runs-on"`
		Steps  []step `yaml:"steps"`
	}
	files, err := filepath.Glob(filepath.Join("..", ".github", "workflows", "*.yml"))
	require.NoError(t, err)
	pulumiJobs := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		var wf struct {
			Jobs map[string]job `yaml:"jobs"`
		}
		require.NoError(t, yaml.Unmarshal(data, &wf), f)
		for name, j := range wf.Jobs {
			pulumi := slices.IndexFunc(j.Steps, func(s step) bool { return strings.HasPrefix(s.Uses, "pulumi/actions@") })
			if pulumi < 0 {
				continue
			}
			pulumiJobs++
			where := filepath.Base(f) + " " + name
			labels, _ := j.RunsOn.([]any)
			assert.Contains(t, labels, "self-hosted", "%s: GitHub-hosted runners have no fixed egress to authorize", where)
			assert.Contains(t, labels, "omscloud-deployer", "%s: runs on the deployer runners", where)
			gcloud := slices.IndexFunc(j.Steps, func(s step) bool { return strings.HasPrefix(s.Uses, "google-github-actions/setup-gcloud@") })
			if assert.True(t, gcloud >= 0 && gcloud < pulumi, "%s: set up gcloud before Pulumi", where) {
				assert.Contains(t, j.Steps[gcloud].With["install_components"], "gke-gcloud-auth-plugin", "%s: the kubeconfig runs the plugin", where)
			}
			assert.Contains(t, j.Steps[pulumi].Env["CLOUDFLARE_API_TOKEN"], "secrets.", "%s: the Cloudflare token comes from a secret", where)
		}
	}
	assert.Equal(t, 3, pulumiJobs, "preview, sandbox and production deployments")
}
