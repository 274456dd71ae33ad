package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/omscloud/omscloud/components/edge"
	"github.com/omscloud/omscloud/stacks"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// templateStack is the stack a new tenant takes its release and operator networks from.
const templateStack = "prod"

type tenantOptions struct {
	name, region, environment, domain, edge string
	accounts                                []string
	cloudflareAccount, cloudflareZone       string
	dnsZone, dnsProject                     string
	acknowledgeCrossBorder, force           bool
}

func newTenantCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tenant",
		Short: "Onboard dedicated single-tenant customers",
	}
	cmd.AddCommand(newTenantNewCmd())
	return cmd
}

func newTenantNewCmd() *cobra.Command {
	var o tenantOptions
	cmd := &cobra.Command{
		Use:   "new NAME --region ID [--environment production|sandbox] [--accounts a,b] [--edge gcp|cloudflare] [--dns-zone ZONE]",
		Short: "Write a validated stack file for a dedicated single-tenant customer",
		Long: `tenant new writes Pulumi.<name>-<prod|sbx>-<region>.yaml: a dedicated environment (its own cluster, database
instance and accounts) for customer NAME in region ID, in project <name>-oms-<prod|sbx>-<region>. The runtime release
and the networks allowed to reach the cluster's control plane are copied from Pulumi.prod.yaml. The file is
validated, and planned offline, before it is written; nothing is written when any check fails.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.name = args[0]
			dir, _ := cmd.Flags().GetString("dir")
			return runTenantNew(cmd.OutOrStdout(), cmd.ErrOrStderr(), dir, &o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.region, "region", "", "the region's catalog id (au, eu, sg, us)")
	f.StringVar(&o.environment, "environment", stacks.Production, "production or sandbox")
	f.StringSliceVar(&o.accounts, "accounts", nil, "the tenant's account ids (default <name>-main)")
	f.StringVar(&o.edge, "edge", edge.GCP, edge.GCP+" (HTTPS load balancer) or "+edge.Cloudflare+" (Zero Trust tunnel)")
	f.StringVar(&o.domain, "domain", "", "the DNS name the tenant's OMS is served on (default oms.<name>.example.com)")
	f.StringVar(&o.dnsZone, "dns-zone", "", "the Cloud DNS managed zone (its name) serving the domain, with --edge gcp: omscloud writes the A records and certificate authorizations there")
	f.StringVar(&o.dnsProject, "dns-project", "", "the project holding --dns-zone, when it is not the tenant's")
	f.StringVar(&o.cloudflareAccount, "cloudflare-account-id", "", "the Cloudflare account id, with --edge cloudflare")
	f.StringVar(&o.cloudflareZone, "cloudflare-zone-id", "", "the Cloudflare zone id, with --edge cloudflare")
	f.BoolVar(&o.acknowledgeCrossBorder, "acknowledge-cross-border", false, "the customer agreed that DR may lie outside the jurisdiction (regions with one GCP region)")
	f.BoolVar(&o.force, "force", false, "overwrite an existing stack file")
	_ = cmd.MarkFlagRequired("region")
	return cmd
}

// tenantFile is the stack file's document; field order is the file's order.
type tenantFile struct {
	Config tenantConfig `yaml:"config"`
}

type tenantConfig struct {
	Environment string        `yaml:"omscloud:environment"`
	Region      string        `yaml:"omscloud:region"`
	Project     string        `yaml:"omscloud:project"`
	Tenancy     string        `yaml:"omscloud:tenancy"`
	Tenant      string        `yaml:"omscloud:tenant"`
	Accounts    []string      `yaml:"omscloud:accounts"`
	Edge        tenantEdge    `yaml:"omscloud:edge"`
	Runtime     tenantRuntime `yaml:"omscloud:runtime"`
	GKE         *tenantGKE    `yaml:"omscloud:gke,omitempty"`
	DR          *tenantDR     `yaml:"omscloud:dr,omitempty"`
	// Observability copies the platform's on-call addresses: production alerts must reach someone.
	Observability *tenantObservability `yaml:"omscloud:observability,omitempty"`
}

type tenantObservability struct {
	Notifications tenantNotifications `yaml:"notifications" json:"notifications"`
}

type tenantNotifications struct {
	Emails []string `yaml:"emails" json:"emails"`
}

type tenantEdge struct {
	Provider   string            `yaml:"provider" json:"provider"`
	Domain     string            `yaml:"domain" json:"domain"`
	Cloudflare *tenantCloudflare `yaml:"cloudflare,omitempty" json:"cloudflare,omitempty"`
	DNS        *tenantDNS        `yaml:"dns,omitempty" json:"dns,omitempty"`
}

type tenantDNS struct {
	ManagedZone string `yaml:"managedZone" json:"managedZone"`
	Project     string `yaml:"project,omitempty" json:"project,omitempty"`
}

type tenantCloudflare struct {
	AccountID string `yaml:"accountId" json:"accountId"`
	ZoneID    string `yaml:"zoneId" json:"zoneId"`
}

type tenantRuntime struct {
	Image string `yaml:"image" json:"image"`
}

type tenantGKE struct {
	MasterAuthorizedNetworks []tenantNetwork `yaml:"masterAuthorizedNetworks" json:"masterAuthorizedNetworks"`
}

type tenantNetwork struct {
	Name string `yaml:"name" json:"name"`
	CIDR string `yaml:"cidr" json:"cidr"`
}

type tenantDR struct {
	AcknowledgeCrossBorder bool `yaml:"acknowledgeCrossBorder" json:"acknowledgeCrossBorder"`
}

func runTenantNew(stdout, stderr io.Writer, dir string, o *tenantOptions) error {
	projectDir, err := stacks.FindProjectDir(dir)
	if err != nil {
		return err
	}
	template, err := stacks.LoadStackFile(projectDir, templateStack)
	if err != nil {
		return fmt.Errorf("tenant new: read the release to copy: %w", err)
	}
	tmpl, err := template.Config()
	if err != nil {
		return fmt.Errorf("tenant new: %s must be valid to copy its release from: %w", filepath.Base(template.Path), err)
	}

	short := map[string]string{stacks.Production: "prod", stacks.Sandbox: "sbx"}[o.environment]
	if short == "" {
		return fmt.Errorf("--environment %q: use production or sandbox", o.environment)
	}
	stack := fmt.Sprintf("%s-%s-%s", o.name, short, o.region)
	doc := tenantFile{Config: tenantConfig{
		Environment: o.environment,
		Region:      o.region,
		Project:     fmt.Sprintf("%s-oms-%s-%s", o.name, short, o.region),
		Tenancy:     stacks.Dedicated,
		Tenant:      o.name,
		Accounts:    o.accounts,
		Edge:        tenantEdge{Provider: o.edge, Domain: o.domain},
		Runtime:     tenantRuntime{Image: tmpl.Runtime.Image},
	}}
	c := &doc.Config
	if len(c.Accounts) == 0 {
		c.Accounts = []string{o.name + "-main"}
	}
	if c.Edge.Domain == "" {
		c.Edge.Domain = "oms." + o.name + ".example.com"
	}
	if o.edge == edge.Cloudflare {
		c.Edge.Cloudflare = &tenantCloudflare{AccountID: o.cloudflareAccount, ZoneID: o.cloudflareZone}
	}
	if o.dnsZone != "" || o.dnsProject != "" {
		c.Edge.DNS = &tenantDNS{ManagedZone: o.dnsZone, Project: o.dnsProject}
	}
	if nets := tmpl.GKE.MasterAuthorizedNetworks; len(nets) > 0 {
		c.GKE = &tenantGKE{}
		for _, n := range nets {
			c.GKE.MasterAuthorizedNetworks = append(c.GKE.MasterAuthorizedNetworks, tenantNetwork{Name: n.Name, CIDR: n.CIDR})
		}
	}
	if o.acknowledgeCrossBorder {
		c.DR = &tenantDR{AcknowledgeCrossBorder: true}
	}
	if emails := tmpl.Observability.Notifications.Emails; len(emails) > 0 {
		c.Observability = &tenantObservability{Notifications: tenantNotifications{Emails: emails}}
	}

	// Validate the settings before a file name is built from them: every problem at once, naming the key.
	values, err := c.flatten()
	if err != nil {
		return err
	}
	if _, err := stacks.ParseConfig(stack, values, nil); err != nil {
		return reportInvalid(stderr, err)
	}

	header := fmt.Sprintf("# Dedicated single-tenant %s for %s in region %s: its own cluster, database instance and accounts.\n"+
		"# Written by `omsctl tenant new`; the runtime release, operator networks and on-call emails are copied from %s.\n",
		o.environment, o.name, o.region, filepath.Base(template.Path))
	var body bytes.Buffer
	body.WriteString(header)
	enc := yaml.NewEncoder(&body)
	enc.SetIndent(2) // as the hand-written stack files
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("tenant new: render %s: %w", stack, err)
	}
	content := body.Bytes()

	// Plan the file exactly as it will be written, in a scratch copy of the project, before touching the real one.
	if err := planScratch(projectDir, stack, content, stderr); err != nil {
		return err
	}
	path := filepath.Join(projectDir, "Pulumi."+stack+".yaml")
	if err := writeAtomic(path, content, o.force); err != nil {
		return err
	}

	pulumiAt, omsAt := "", ""
	if cwd, err := os.Getwd(); err != nil || cwd != projectDir {
		pulumiAt, omsAt = " --cwd "+projectDir, " --dir "+projectDir
	}
	fmt.Fprintf(stdout, "Wrote %s (project %s, region %s, accounts %s).\n\nNext:\n", path, c.Project, o.region, strings.Join(c.Accounts, ", "))
	fmt.Fprintf(stdout, "  pulumi stack init %s%s\n", stack, pulumiAt)
	fmt.Fprintf(stdout, "  omsctl plan --stack %s%s\n", stack, omsAt)
	fmt.Fprintf(stdout, "  pulumi preview -s %s%s\n", stack, pulumiAt)
	return nil
}

// flatten renders the settings the way Pulumi hands them to a program: scalars as text, structures as JSON.
func (c *tenantConfig) flatten() (map[string]string, error) {
	values := map[string]string{}
	put := func(key string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("tenant new: %s: %w", key, err)
		}
		values[stacks.Namespace+":"+key] = string(b)
		return nil
	}
	for k, v := range map[string]string{
		"environment": c.Environment, "region": c.Region, "project": c.Project,
		"tenancy": c.Tenancy, "tenant": c.Tenant,
	} {
		values[stacks.Namespace+":"+k] = v
	}
	structured := map[string]any{"accounts": c.Accounts, "edge": c.Edge, "runtime": c.Runtime}
	if c.GKE != nil {
		structured["gke"] = c.GKE
	}
	if c.DR != nil {
		structured["dr"] = c.DR
	}
	if c.Observability != nil {
		structured["observability"] = c.Observability
	}
	for k, v := range structured {
		if err := put(k, v); err != nil {
			return nil, err
		}
	}
	return values, nil
}

// planScratch writes the stack file into a scratch copy of the project and plans it offline, so that the exact bytes
// to be written — read back with Pulumi.yaml's defaults — validate and evaluate.
func planScratch(projectDir, stack string, content []byte, stderr io.Writer) error {
	scratch, err := os.MkdirTemp("", "omsctl-tenant-")
	if err != nil {
		return fmt.Errorf("tenant new: %w", err)
	}
	defer os.RemoveAll(scratch)
	if err := copyFile(filepath.Join(projectDir, "Pulumi.yaml"), filepath.Join(scratch, "Pulumi.yaml")); err != nil {
		return fmt.Errorf("tenant new: %w", err)
	}
	if err := os.WriteFile(filepath.Join(scratch, "Pulumi."+stack+".yaml"), content, 0o600); err != nil {
		return fmt.Errorf("tenant new: %w", err)
	}
	sf, err := stacks.LoadStackFile(scratch, stack)
	if err != nil {
		return fmt.Errorf("tenant new: read back the generated file: %w", err)
	}
	if _, _, err := stacks.Plan(sf); err != nil {
		if isValidation(err) {
			return reportInvalid(stderr, err)
		}
		return fmt.Errorf("tenant new: the generated stack does not plan: %w", err)
	}
	return nil
}

func isValidation(err error) bool {
	var verr *stacks.ValidationError
	return errors.As(err, &verr)
}

// tenantFlags name the flag that sets each key tenant new writes, so that a refusal says what to pass. The release
// and operator networks are copied from the template stack, which must itself be valid.
var tenantFlags = []struct{ key, flag string }{
	{"omscloud:tenant", "NAME"}, {"omscloud:environment", "--environment"}, {"omscloud:region", "--region"},
	{"omscloud:accounts", "--accounts"}, {"omscloud:edge.provider", "--edge"},
	{"omscloud:edge.domain", "--domain"}, {"omscloud:edge.hostnames", "--domain"},
	{"omscloud:edge.cloudflare.accountId", "--cloudflare-account-id"}, {"omscloud:edge.cloudflare.zoneId", "--cloudflare-zone-id"},
	{"omscloud:dr.acknowledgeCrossBorder", "--acknowledge-cross-border"},
}

// reportInvalid prints every configuration problem and the flag that fixes each; main then exits non-zero without
// repeating them.
func reportInvalid(stderr io.Writer, err error) error {
	var verr *stacks.ValidationError
	if !errors.As(err, &verr) {
		return err
	}
	fmt.Fprintln(stderr, err.Error())
	var fixes []string
	for _, fe := range verr.Errors {
		for _, f := range tenantFlags {
			if fe.Key == f.key || strings.HasPrefix(fe.Key, f.key+"[") {
				if fix := fmt.Sprintf("  %-26s %s", f.flag, fe.Key); !slices.Contains(fixes, fix) {
					fixes = append(fixes, fix)
				}
			}
		}
	}
	if len(fixes) > 0 {
		fmt.Fprintf(stderr, "Set them with:\n%s\n", strings.Join(fixes, "\n"))
	}
	fmt.Fprintln(stderr, "Nothing was written.")
	return &reportedError{err}
}

// writeAtomic writes a temporary file beside path and moves it into place, so that a reader never sees half a file.
// Without force, a hard link publishes it and fails if path exists, even if another writer raced us.
func writeAtomic(path string, content []byte, force bool) error {
	if _, err := os.Stat(path); err == nil && !force {
		return fmt.Errorf("%s already exists: choose another name or region, or pass --force to overwrite it", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("tenant new: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return fmt.Errorf("tenant new: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("tenant new: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("tenant new: write %s: %w", tmp.Name(), err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("tenant new: %w", err)
	}
	if force {
		return os.Rename(tmp.Name(), path)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s already exists: choose another name or region, or pass --force to overwrite it", path)
		}
		return fmt.Errorf("tenant new: %w", err)
	}
	return nil
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o600)
}
