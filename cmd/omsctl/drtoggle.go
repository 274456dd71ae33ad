package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/omscloud/omscloud/stacks"
	"github.com/spf13/cobra"
)

// newDRToggleCmd is `omsctl dr enable|disable`: the reviewed way to change omscloud:dr.enabled on a production stack
// (stacks.ToggleDR), since a plain edit would move the backup bucket, whose location is immutable.
func newDRToggleCmd(enable bool) *cobra.Command {
	verb, effect := "disable", "deletes the DR site the stack declares in advance"
	if enable {
		verb, effect = "enable", "declares the DR site in advance (a reserved DR address, or a DR tunnel and pool)"
	}
	var stack string
	var releaseSite bool
	c := &cobra.Command{
		Use:   verb + " --stack NAME",
		Short: "Set omscloud:dr.enabled in Pulumi.<stack>.yaml without moving the backup bucket (pinned with backup.location)",
		Long: `dr ` + verb + ` rewrites Pulumi.<stack>.yaml: dr.enabled, and backup.location when the new default would move the
backup bucket (the DR region with DR on, the jurisdiction's multi-region without): a bucket's location can never
change, and the bucket and its archives stay where they are. The new file is validated and planned offline before it
is written. The next pulumi up ` + effect + `; no bucket, key, secret or database changes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			projectDir, err := projectDirOf(cmd)
			if err != nil {
				return err
			}
			t, err := stacks.ToggleDR(projectDir, stack, enable)
			if err != nil {
				return err
			}
			if len(t.Released) > 0 && !releaseSite {
				return fmt.Errorf("disabling DR on %s deletes its DR site, which customers may whitelist and which is protected (%d resources, e.g. %s): re-run with --release-dr-site once they no longer depend on it",
					stack, len(t.Released), t.Released[0])
			}
			path := filepath.Join(projectDir, "Pulumi."+stack+".yaml")
			if err := os.WriteFile(path, t.File, 0o644); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote %s: dr.enabled %t\n", filepath.Base(path), enable)
			if t.Pinned {
				fmt.Fprintf(w, "the backup bucket stays in %s: pinned with backup.location\n", t.Bucket.Location)
			}
			fmt.Fprintf(w, "next:\n  git diff %s   # review, then commit\n", filepath.Base(path))
			for _, urn := range t.Released {
				fmt.Fprintf(w, "  pulumi state unprotect -s %s '%s'\n", stack, urn)
			}
			fmt.Fprintf(w, "  omsctl plan --stack %s && pulumi preview -s %s   # nothing stateful is replaced\n  pulumi up -s %s\n", stack, stack, stack)
			return nil
		},
	}
	c.Flags().StringVarP(&stack, "stack", "s", "", "the production stack, e.g. prod-eu")
	if !enable {
		c.Flags().BoolVar(&releaseSite, "release-dr-site", false, "confirm that the reserved DR address (or DR tunnel and pool) may be deleted")
	}
	_ = c.MarkFlagRequired("stack")
	return c
}
