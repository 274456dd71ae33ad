package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/omscloud/omscloud/stacks"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/spf13/cobra"
)

// newStackCmds are `omsctl preview` and `omsctl up`: the stack program run inline through the Automation API, so no
// Go language host is needed — only the Pulumi CLI. The config is the repository's Pulumi.<stack>.yaml.
func newStackCmds() []*cobra.Command {
	type flags struct {
		stack, backend, pulumiRoot string
		yes                        bool
	}
	add := func(c *cobra.Command, f *flags) {
		c.Flags().StringVarP(&f.stack, "stack", "s", "", "the stack (its Pulumi.<stack>.yaml must exist)")
		c.Flags().StringVar(&f.backend, "backend", os.Getenv("PULUMI_BACKEND_URL"), "the Pulumi backend (default: $PULUMI_BACKEND_URL, else the CLI's login)")
		c.Flags().StringVar(&f.pulumiRoot, "pulumi-root", os.Getenv("OMSCLOUD_PULUMI_ROOT"), "directory whose bin/pulumi is the Pulumi CLI (default: $OMSCLOUD_PULUMI_ROOT, else pulumi on PATH)")
		_ = c.MarkFlagRequired("stack")
	}
	var pf, uf flags
	preview := &cobra.Command{
		Use:   "preview --stack NAME",
		Short: "pulumi preview of a stack (validates the config first; no changes are made)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := selectStack(cmd, pf.stack, pf.backend, pf.pulumiRoot)
			if err != nil {
				return err
			}
			_, err = s.Preview(cmd.Context(), optpreview.ProgressStreams(cmd.OutOrStdout()), optpreview.Diff())
			return err
		},
	}
	add(preview, &pf)
	up := &cobra.Command{
		Use:   "up --stack NAME --yes",
		Short: "pulumi up of a stack (validates the config first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !uf.yes {
				return fmt.Errorf("up changes stack %s's cloud resources: run `omsctl preview --stack %s` first, then re-run with --yes", uf.stack, uf.stack)
			}
			s, err := selectStack(cmd, uf.stack, uf.backend, uf.pulumiRoot)
			if err != nil {
				return err
			}
			_, err = s.Up(cmd.Context(), optup.ProgressStreams(cmd.OutOrStdout()))
			return err
		},
	}
	add(up, &uf)
	up.Flags().BoolVar(&uf.yes, "yes", false, "confirm the update")
	return []*cobra.Command{preview, up}
}

// selectStack validates the stack's config offline, then creates or selects it with the inline program.
func selectStack(cmd *cobra.Command, stack, backend, pulumiRoot string) (auto.Stack, error) {
	projectDir, err := projectDirOf(cmd)
	if err != nil {
		return auto.Stack{}, err
	}
	sf, err := stacks.LoadStackFile(projectDir, stack)
	if err != nil {
		return auto.Stack{}, err
	}
	if _, err := sf.Config(); err != nil {
		var verr *stacks.ValidationError
		if errors.As(err, &verr) {
			fmt.Fprintln(cmd.ErrOrStderr(), verr.Error())
			return auto.Stack{}, &reportedError{err}
		}
		return auto.Stack{}, err
	}
	pc, err := pulumiCommand(pulumiRoot)
	if err != nil {
		return auto.Stack{}, err
	}
	vars := map[string]string{"PULUMI_SKIP_UPDATE_CHECK": "true"}
	if backend != "" {
		vars["PULUMI_BACKEND_URL"] = backend
	}
	s, err := auto.UpsertStackInlineSource(cmd.Context(), stack, stacks.Project, stacks.Program,
		auto.WorkDir(projectDir), auto.Pulumi(pc), auto.EnvVars(vars))
	if err != nil {
		return auto.Stack{}, fmt.Errorf("stack %s: %w", stack, err)
	}
	return s, nil
}

// projectDirOf is the project directory the command's --dir flag names or lies under.
func projectDirOf(cmd *cobra.Command) (string, error) {
	dir, _ := cmd.Flags().GetString("dir")
	return stacks.FindProjectDir(dir)
}
