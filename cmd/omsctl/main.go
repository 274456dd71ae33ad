// Command omsctl is the operator CLI of omscloud: plan a stack offline, and (as they land) preview/up stacks, activate
// DR and onboard tenants.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		var quiet *reportedError
		if !errors.As(err, &quiet) {
			fmt.Fprintln(os.Stderr, "omsctl:", err)
		}
		os.Exit(1)
	}
}

// reportedError has already been printed in full; main only sets the exit code.
type reportedError struct{ err error }

func (e *reportedError) Error() string { return e.err.Error() }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "omsctl",
		Short:         "Operate omscloud stacks: plan offline, preview and deploy, disaster recovery, tenants",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("dir", ".", "the omscloud project directory (the one holding Pulumi.yaml), or a directory below it")
	root.AddCommand(newPlanCmd())
	root.AddCommand(newTenantCmd())
	root.AddCommand(newDRCmd())
	root.AddCommand(newStackCmds()...)
	root.AddCommand(newStatusCmd())
	return root
}
