package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/omscloud/omscloud/stacks"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/spf13/cobra"
)

func newDRCmd() *cobra.Command {
	dr := &cobra.Command{
		Use:   "dr",
		Short: "Cold disaster recovery: spin a production stack up in its DR region from backups",
	}
	f := &drFlags{}
	var doSwitch, forceRestore bool
	var readyTimeout time.Duration
	activate := &cobra.Command{
		Use:   "activate --stack NAME [--backend URL] [--yes] [--switch]",
		Short: "Create or update <stack>-dr: provision, restore the latest backup, health-check, switch traffic",
		Long: `activate declares the stack's full environment in its DR region (stack <stack>-dr), sized like production, from
the primary's config and its last state (backup bucket, accounts, release, reserved DR address, read through a
StackReference). It runs in steps and prints how long each took:

  provision     pulumi up of <stack>-dr: network, cluster, database, data tier, runtime, edge in the DR region
  restore       pulumi up again with the restore Job (oms restore --from gs://<backup bucket> --latest), once per
                DR generation: a re-run restores nothing over the live DR database unless --force-restore (and oms
                restore itself refuses a database that has taken writes since its last restore unless forced)
  health check  GET https://<domain>/readyz sent to the reserved DR address until it answers 200
  switch        only with --switch: a pulumi up of the primary stack with omscloud:dr.active=true, targeted at its DR
                component and what depends on it. Cloudflare edge: it enables the DR pool. GCP edge: it points the
                hostnames' A records at the reserved DR address. Without --switch the run is a drill.

The primary stack is never modified without --switch. The health check needs network access to the DR address.
Activation repeats: after dr deactivate, the next activation adopts the KMS keys (which GCP never deletes) and names
its Cloud SQL instance for a new generation (a deleted instance's name stays taken for up to a week).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.runSteps(cmd, "activate creates a full production environment (billed) in the DR region of %s: re-run with --yes",
				func(o drOptions) (*Timeline, error) {
					o.Switch, o.ForceRestore, o.ReadyTimeout = doSwitch, forceRestore, readyTimeout
					return activateDR(cmd.Context(), o)
				})
		},
	}
	f.register(activate, "the primary production stack to recover, e.g. prod-eu", "confirm: provision the DR environment")
	activate.Flags().BoolVar(&doSwitch, "switch", false, "after the health check, move traffic to the DR site (without it: a drill)")
	activate.Flags().BoolVar(&forceRestore, "force-restore", false, "restore the primary's latest backup again over a live DR database, even one that has taken writes since its last restore (the replaced databases are kept as <name>_old_<time>)")
	activate.Flags().DurationVar(&readyTimeout, "ready-timeout", 20*time.Minute, "how long the health check waits for /readyz")

	status := &cobra.Command{
		Use:   "status --stack NAME [--backend URL]",
		Short: "Show whether <stack>-dr exists, its last update and size, and the primary's state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := f.options(cmd)
			if err != nil {
				return err
			}
			if o.Command, err = pulumiCommand(o.PulumiRoot); err != nil {
				return err
			}
			return drStatus(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f.register(status, "the primary production stack, e.g. prod-eu", "")

	deactivate := &cobra.Command{
		Use:   "deactivate --stack NAME [--backend URL] [--yes]",
		Short: "Fail back from <stack>-dr: a fresh backup into the primary's bucket, then tear <stack>-dr down",
		Long: `deactivate ends a DR generation in steps and prints how long each took:

  backup    pulumi up of <stack>-dr with a failback Job: oms backup --tier monthly --to gs://<primary's backup bucket>,
            with the primary's archive key, so the primary restores it with oms restore --latest after the DR stack
            is gone
  teardown  refused while traffic is on the DR site (omscloud:dr.active on the primary: restore the primary from the
            failback archive, switch back, then run deactivate again). Otherwise a pulumi up that releases what
            production protects (Pulumi protect, Cloud SQL and GKE deletion protection; the DR buckets, whose
            archives the failback archive supersedes, are emptied on delete), then pulumi destroy of <stack>-dr.
            The KMS key rings and keys stay in GCP, which never deletes them: the next activation adopts them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.runSteps(cmd, "deactivate deletes the DR environment of %s and its databases (after a failback backup): re-run with --yes",
				func(o drOptions) (*Timeline, error) { return deactivateDR(cmd.Context(), o) })
		},
	}
	f.register(deactivate, "the primary production stack whose DR environment ends, e.g. prod-eu", "confirm: back up and delete the DR environment")

	dr.AddCommand(activate, deactivate, status, newDRToggleCmd(true), newDRToggleCmd(false))
	return dr
}

// drFlags are the flags the dr commands share, bound once for all of them.
type drFlags struct {
	stack, backend, pulumiRoot, primaryRef string
	yes                                    bool
}

// register adds the shared flags to c: --stack (required), the engine's (--backend, --pulumi-root) and, for the
// commands that change the DR stack (yesUsage not empty), --yes and --primary-ref.
func (f *drFlags) register(c *cobra.Command, stackUsage, yesUsage string) {
	c.Flags().StringVarP(&f.stack, "stack", "s", "", stackUsage)
	if yesUsage != "" {
		c.Flags().BoolVar(&f.yes, "yes", false, yesUsage)
		c.Flags().StringVar(&f.primaryRef, "primary-ref", "", "the primary's fully qualified stack name (default organization/omscloud/<stack>, a self-managed backend's)")
	}
	c.Flags().StringVar(&f.backend, "backend", os.Getenv("PULUMI_BACKEND_URL"), "the Pulumi backend holding the stacks' state (default: $PULUMI_BACKEND_URL, else the CLI's login)")
	c.Flags().StringVar(&f.pulumiRoot, "pulumi-root", os.Getenv("OMSCLOUD_PULUMI_ROOT"), "directory whose bin/pulumi is the Pulumi CLI (default: $OMSCLOUD_PULUMI_ROOT, else pulumi on PATH)")
	_ = c.MarkFlagRequired("stack")
}

// options are the drOptions the shared flags give, the engine's output going to stderr.
func (f *drFlags) options(cmd *cobra.Command) (drOptions, error) {
	projectDir, err := projectDirOf(cmd)
	if err != nil {
		return drOptions{}, err
	}
	return drOptions{Primary: f.stack, PrimaryRef: f.primaryRef, ProjectDir: projectDir, Backend: f.backend,
		PulumiRoot: f.pulumiRoot, Progress: cmd.ErrOrStderr()}, nil
}

// runSteps runs a DR action once --yes confirms it (unconfirmed is the refusal, formatted with the stack) and prints
// its timeline, complete up to the step that failed.
func (f *drFlags) runSteps(cmd *cobra.Command, unconfirmed string, action func(drOptions) (*Timeline, error)) error {
	o, err := f.options(cmd)
	if err != nil {
		return err
	}
	if !f.yes {
		return fmt.Errorf(unconfirmed, f.stack)
	}
	tl, err := action(o)
	if tl != nil {
		tl.Print(cmd.OutOrStdout())
	}
	return err
}

func pulumiCommand(root string) (auto.PulumiCommand, error) {
	pc, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{Root: root})
	if err != nil {
		return nil, fmt.Errorf("find the Pulumi CLI (put pulumi on PATH, or build one with testtools/pulumi-build.sh and pass --pulumi-root): %w", err)
	}
	return pc, nil
}

// drStatus prints whether the DR stack exists, its last update and size, and the primary's.
func drStatus(ctx context.Context, w io.Writer, o drOptions) error {
	if o.Primary == "" {
		return errors.New("--stack is required")
	}
	wsOpts, cleanup, err := o.workspace()
	if err != nil {
		return err
	}
	defer cleanup()
	ws, err := auto.NewLocalWorkspace(ctx, wsOpts...)
	if err != nil {
		return err
	}
	summaries, err := ws.ListStacks(ctx)
	if err != nil {
		return fmt.Errorf("list stacks in %s: %w", o.backendName(), err)
	}
	byName := map[string]auto.StackSummary{}
	for _, s := range summaries {
		byName[s.Name] = s
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STACK\tROLE\tSTATE\tLAST UPDATE\tRESOURCES")
	for _, row := range []struct{ name, role string }{{o.Primary, "primary"}, {stacks.DRStackName(o.Primary), "DR"}} {
		s, ok := byName[row.name]
		if !ok {
			state := "absent"
			if row.role == "DR" {
				state = "not activated"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\n", row.name, row.role, state)
			continue
		}
		state := lastResult(ctx, ws, row.name)
		count := "-"
		if s.ResourceCount != nil {
			count = fmt.Sprint(*s.ResourceCount)
		}
		last := s.LastUpdate
		if last == "" {
			last = "never"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", row.name, row.role, state, last, count)
	}
	return tw.Flush()
}

// lastResult describes a stack's last update ("update succeeded"), or why it cannot be read.
func lastResult(ctx context.Context, ws auto.Workspace, name string) string {
	s, err := auto.SelectStack(ctx, name, ws)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	h, err := s.History(ctx, 1, 1)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	if len(h) == 0 {
		return "empty"
	}
	return h[0].Kind + " " + h[0].Result
}
