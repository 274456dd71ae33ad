package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/omscloud/omscloud/inventory"
	"github.com/omscloud/omscloud/policy"
	"github.com/omscloud/omscloud/stacks"
	"github.com/spf13/cobra"
)

func newPlanCmd() *cobra.Command {
	var stack, format string
	cmd := &cobra.Command{
		Use:   "plan --stack NAME [--format text|json]",
		Short: "Show what a stack would create, offline: no credentials, no network",
		Long: `plan validates the stack's config (Pulumi.yaml defaults + Pulumi.<stack>.yaml) and evaluates the real
program under Pulumi mocks. It prints the resource tree, counts per type, a per-zone summary and the policy results;
a policy violation exits non-zero. Encrypted config
values are shown as [secret] and never decrypted. A config with problems exits non-zero after listing every one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("--format %q: use text or json", format)
			}
			projectDir, err := projectDirOf(cmd)
			if err != nil {
				return err
			}
			sf, err := stacks.LoadStackFile(projectDir, stack)
			if err != nil {
				return err
			}
			cfg, inv, err := stacks.Plan(sf)
			var verr *stacks.ValidationError
			if errors.As(err, &verr) {
				fmt.Fprintln(cmd.ErrOrStderr(), verr.Error())
				return &reportedError{err}
			}
			if err != nil {
				return err
			}
			report := policy.Evaluate(cfg.PolicyContext(), inv)
			out := cmd.OutOrStdout()
			if format == "json" {
				b, err := json.MarshalIndent(struct {
					*inventory.Inventory
					Policy policy.Report `json:"policy"`
				}{inv, report}, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintln(out, string(b))
			} else {
				printPlan(out, cfg, inv)
				fmt.Fprintf(out, "\nPolicies:\n%s", report.Text())
			}
			if report.HasErrors() {
				return fmt.Errorf("stack %s violates %d policy rule(s)", inv.Stack, len(report.Errors()))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&stack, "stack", "s", "", "the stack to plan (its Pulumi.<stack>.yaml must exist)")
	cmd.Flags().StringVar(&format, "format", "text", "text for people, json for tools")
	_ = cmd.MarkFlagRequired("stack")
	return cmd
}

func printPlan(w io.Writer, cfg *stacks.Config, inv *inventory.Inventory) {
	tenancy := cfg.Tenancy
	if cfg.Tenant != "" {
		tenancy += " (" + cfg.Tenant + ")"
	}
	fmt.Fprintf(w, "Stack %s: %s, %s, region %s (%s), zones %s\n", inv.Stack, cfg.Environment, tenancy,
		cfg.RegionID, cfg.Region.Primary.GCPRegion, strings.Join(cfg.Zones, ", "))
	if cfg.DR.Enabled {
		fmt.Fprintf(w, "Cold DR site: %s\n", cfg.DR.GCPRegion)
	}
	fmt.Fprintf(w, "\nResources (%d):\n", len(inv.Resources))
	printTree(w, inv, inv.Roots(), "", true)

	fmt.Fprintln(w, "\nCounts per type:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range inv.Types() {
		fmt.Fprintf(tw, "  %s\t%d\n", t, inv.Counts[t])
	}
	tw.Flush()

	fmt.Fprintln(w, "\nPer zone (node pools: min-max nodes):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, z := range inv.Zones() {
		var parts []string
		for _, p := range z.Pools {
			parts = append(parts, p.String())
		}
		parts = append(parts, z.Databases...)
		fmt.Fprintf(tw, "  %s\t%s\n", z.Zone, strings.Join(parts, ", "))
	}
	tw.Flush()
}

func printTree(w io.Writer, inv *inventory.Inventory, nodes []inventory.Resource, indent string, root bool) {
	for i, r := range nodes {
		branch, next := "├─ ", "│  "
		if i == len(nodes)-1 {
			branch, next = "└─ ", "   "
		}
		if root {
			branch, next = "", ""
		}
		fmt.Fprintf(w, "%s%s%s  %s\n", indent, branch, r.Name, r.Type)
		printTree(w, inv, inv.Children(r), indent+next, false)
	}
}
