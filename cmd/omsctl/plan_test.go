package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omscloud/omscloud/stacks"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// omsctl runs the CLI in-process from the repository root.
func omsctl(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRoot()
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

func TestPlanJSONShape(t *testing.T) {
	stdout, _, err := omsctl(t, "plan", "--dir", "../..", "--stack", "prod", "--format", "json")
	require.NoError(t, err)
	var plan struct {
		Stack     string `json:"stack"`
		Resources []struct {
			Type, Name, Parent string
			Inputs             map[string]any
		} `json:"resources"`
		Counts map[string]int `json:"counts"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &plan))
	assert.Equal(t, "prod", plan.Stack)
	assert.Equal(t, 1, plan.Counts["gcp:container/cluster:Cluster"])
	assert.Equal(t, 1, plan.Counts["gcp:compute/routerNat:RouterNat"])
	var found bool
	for _, r := range plan.Resources {
		if r.Type == "gcp:container/nodePool:NodePool" && r.Inputs["name"] == "web" {
			found = true
			assert.Equal(t, []any{"us-central1-a", "us-central1-b", "us-central1-c"}, r.Inputs["nodeLocations"])
			assert.NotEmpty(t, r.Parent)
		}
	}
	assert.True(t, found, "a web node pool")
}

func TestPlanTextShowsTreeCountsAndZones(t *testing.T) {
	stdout, _, err := omsctl(t, "plan", "--dir", "../..", "--stack", "acme-prod-eu")
	require.NoError(t, err)
	assert.Contains(t, stdout, "Stack acme-prod-eu: production, dedicated (acme), region eu (europe-west1)")
	assert.Regexp(t, `(?m)^[├└]─ acme-prod-eu-network  omscloud:network:Network$`, stdout)
	assert.Regexp(t, `(?m)^│  [├└]─ acme-prod-eu-network-vpc  gcp:compute/network:Network$`, stdout)
	assert.Contains(t, stdout, "Counts per type:")
	assert.Contains(t, stdout, "europe-west1-b  stateful 1-2, web 2-8, acme-prod-eu-pg primary")
	assert.Contains(t, stdout, "europe-west1-c  stateful 1-2, web 2-8, acme-prod-eu-pg secondary")
}

func TestPlanRejectsBadConfigNamingEachKey(t *testing.T) {
	dir := t.TempDir()
	project, err := os.ReadFile("../../Pulumi.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.yaml"), project, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.bad.yaml"), []byte(`config:
  omscloud:environment: production
  omscloud:region: mars
  omscloud:project: omscloud-bad
  omscloud:tenancy: dedicated
  omscloud:edge: {provider: gcp, domain: a.example.com}
  omscloud:runtime: {image: "oms:latest"}
`), 0o644))
	stdout, stderr, err := omsctl(t, "plan", "--dir", dir, "--stack", "bad")
	require.Error(t, err)
	assert.Empty(t, stdout, "nothing is planned for a bad config")
	for _, key := range []string{"omscloud:region", "omscloud:tenant", "omscloud:accounts", "omscloud:runtime.image", "omscloud:edge.dns.managedZone"} {
		assert.Contains(t, stderr, key)
	}

	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.onezone.yaml"), []byte(`config:
  omscloud:environment: production
  omscloud:region: us
  omscloud:project: omscloud-bad
  omscloud:zones: [us-central1-a]
  omscloud:edge: {provider: gcp, domain: a.example.com}
  omscloud:runtime: {image: "oms@sha256:0000000000000000000000000000000000000000000000000000000000000000"}
`), 0o644))
	_, stderr, err = omsctl(t, "plan", "--dir", dir, "--stack", "onezone")
	require.Error(t, err)
	assert.Contains(t, stderr, "omscloud:zones: production needs at least 2 zones")
}

func TestPlanShowsEncryptedValuesAsSecret(t *testing.T) {
	dir := t.TempDir()
	project, err := os.ReadFile("../../Pulumi.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.yaml"), project, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.s.yaml"), []byte(`encryptionsalt: v1:abc
config:
  cloudflare:apiToken:
    secure: v1:AAAABBBBCCCC
  omscloud:environment: sandbox
  omscloud:region: au
  omscloud:project: omscloud-sbx-au
  omscloud:edge: {provider: gcp, domain: a.example.com, dns: {managedZone: example-com}}
  omscloud:runtime: {image: "us-docker.pkg.dev/omscloud-release/oms/oms:1.0.0"}
`), 0o644))
	stdout, stderr, err := omsctl(t, "plan", "--dir", dir, "--stack", "s", "--format", "json")
	require.NoError(t, err, stderr)
	assert.NotContains(t, stdout, "v1:AAAABBBBCCCC")
	assert.Contains(t, stdout, "australia-southeast1")
}

func TestPlanUnknownStackListsKnownOnes(t *testing.T) {
	_, _, err := omsctl(t, "plan", "--dir", "../..", "--stack", "nope")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "known stacks are acme-prod-eu, prod, prod-eu, sandbox")
}

func TestPlanFailsOnPolicyViolation(t *testing.T) {
	dir := t.TempDir()
	project, err := os.ReadFile("../../Pulumi.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.yaml"), project, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.open.yaml"), []byte(`config:
  omscloud:environment: sandbox
  omscloud:region: au
  omscloud:project: omscloud-sbx-au
  omscloud:edge: {provider: gcp, domain: a.example.com, dns: {managedZone: example-com}}
  omscloud:runtime: {image: "us-docker.pkg.dev/omscloud-release/oms/oms:1.0.0"}
  omscloud:gke: {masterAuthorizedNetworks: [{name: everyone, cidr: 0.0.0.0/0}]}
`), 0o644))
	stdout, _, err := omsctl(t, "plan", "--dir", dir, "--stack", "open")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "violates 1 policy rule")
	assert.Contains(t, stdout, "FAIL  gke-private-cluster")
	assert.Contains(t, stdout, "authorizes 0.0.0.0/0")
}

// The two-cell test stack plans with both instances, and a wrong placement change fails the plan naming the key and
// the fix, before anything is declared.
func TestPlanChecksDatabaseCells(t *testing.T) {
	dir := t.TempDir()
	project, err := os.ReadFile("../../Pulumi.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.yaml"), project, 0o644))
	cells, err := os.ReadFile(filepath.Join("../..", stacks.TestStacksDir, "Pulumi.prod-eu-cells.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.cells.yaml"), cells, 0o644))
	stdout, _, err := omsctl(t, "plan", "--dir", dir, "--stack", "cells")
	require.NoError(t, err)
	assert.Contains(t, stdout, "europe-west1-b  stateful 1-2, web 1-5, oms-prod-eu-b-pg primary, oms-prod-eu-pg primary")

	// northwind's cell b dropped from the cells while the placement still holds it.
	wrong := strings.Replace(string(cells), "      - name: b\n        tier: db-custom-8-32768\n        diskSizeGb: 200\n", "", 1)
	require.NotEqual(t, string(cells), wrong)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.wrong.yaml"), []byte(wrong), 0o644))
	stdout, stderr, err := omsctl(t, "plan", "--dir", dir, "--stack", "wrong")
	require.Error(t, err)
	assert.Empty(t, stdout, "nothing is planned for a bad config")
	assert.Contains(t, stderr, `omscloud:database.placement.b: cell "b" is not in database.cells (main). If you removed cell b, its accounts' databases are still on it: put it back in database.cells`)
	assert.Contains(t, stderr, `omscloud:database.defaultCell: "b" is not in database.cells (main)`)
}
