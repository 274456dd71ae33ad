package stacks

import (
	"maps"
	"regexp"
	"strings"
)

var envShort = map[string]string{Production: "prod", Sandbox: "sbx"}

// NamePrefix names the environment's resources: "oms-prod-us" for a shared stack, "acme-prod-eu" for a dedicated
// one. It is at most 20 characters, which keeps every derived GCP name within its limit.
func (c *Config) NamePrefix() string {
	owner := "oms"
	if c.Tenancy == Dedicated {
		owner = c.Tenant
	}
	return owner + "-" + envShort[c.Environment] + "-" + c.RegionID
}

var labelUnsafe = regexp.MustCompile(`[^a-z0-9_-]`)

// ResourceLabels are the stack's labels plus omscloud's own, applied to every GCP resource that takes labels.
func (c *Config) ResourceLabels() map[string]string {
	labels := map[string]string{
		"app":         "omscloud",
		"environment": c.Environment,
		"region":      c.RegionID,
		"tenancy":     c.Tenancy,
		"stack":       labelUnsafe.ReplaceAllString(strings.ToLower(c.Stack), "-"),
	}
	if c.Tenant != "" {
		labels["tenant"] = c.Tenant
	}
	maps.Copy(labels, c.Labels)
	return labels
}
