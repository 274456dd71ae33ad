package inventory

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Evaluate runs program under mocks with the given config (flat "namespace:key" values, as Pulumi hands them to a
// program) and returns the inventory of what it declares.
func Evaluate(program pulumi.RunFunc, project, stack string, config map[string]string, secretKeys []string) (*Inventory, error) {
	mocks := &Mocks{Project: project, Stack: stack}
	withConfig := func(info *pulumi.RunInfo) {
		info.Config = config
		info.ConfigSecretKeys = secretKeys
	}
	if err := pulumi.RunErr(program, pulumi.WithMocks(project, stack, mocks), withConfig); err != nil {
		return nil, fmt.Errorf("evaluate stack %s: %w", stack, err)
	}
	return New(stack, mocks.Resources()), nil
}
