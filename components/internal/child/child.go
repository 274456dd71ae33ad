// Package child gives a component's children the options they must inherit from the component. Pulumi passes a
// parent's providers on to its children but not its explicit dependencies: a component declared with
// pulumi.DependsOn (on the project's enabled APIs, on a namespace) would otherwise let its children start first.
package child

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Options are the options of every child of component: the component as parent, and every explicit dependency the
// component was declared with (opts).
func Options(component pulumi.Resource, opts []pulumi.ResourceOption) ([]pulumi.ResourceOption, error) {
	ro, err := pulumi.NewResourceOptions(opts...)
	if err != nil {
		return nil, fmt.Errorf("read resource options: %w", err)
	}
	out := []pulumi.ResourceOption{pulumi.Parent(component)}
	if len(ro.DependsOn) > 0 {
		out = append(out, pulumi.DependsOn(ro.DependsOn))
	}
	for _, in := range ro.DependsOnInputs {
		out = append(out, pulumi.DependsOnInputs(in))
	}
	return out, nil
}
