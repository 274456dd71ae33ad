package stacks

import "github.com/omscloud/omscloud/inventory"

// Plan validates a stack's config and, only if it is valid, evaluates the program under mocks: nothing is declared
// for a config with problems.
func Plan(sf *StackFile) (*Config, *inventory.Inventory, error) {
	cfg, err := sf.Config()
	if err != nil {
		return nil, nil, err
	}
	inv, err := inventory.Evaluate(Program, Project, sf.Stack, sf.Values, sf.SecretKeys)
	if err != nil {
		return cfg, nil, err
	}
	return cfg, inv, nil
}
