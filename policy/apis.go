package policy

import (
	"github.com/omscloud/omscloud/components/apis"
	"github.com/omscloud/omscloud/inventory"
)

// apiDependencies: on a new project every API is off; a resource that does not wait for the projects.Service of
// the API it calls may start first and fail with 403 SERVICE_DISABLED. The engine tests check the same over a real
// state (apis.MissingDependencies is the one implementation).
func apiDependencies() Policy {
	return Policy{
		Name:        "api-dependencies",
		Description: "every GCP resource waits, directly or through other resources, for the projects.Service that enables its API",
		Severity:    Error,
		Check: func(_ Context, inv *inventory.Inventory) []Finding {
			nodes := make([]apis.Node, 0, len(inv.Resources))
			byURN := map[string]inventory.Resource{}
			for _, r := range inv.Resources {
				n := apis.Node{URN: r.URN, Type: r.Type, Parent: r.ParentURN, Dependencies: r.DependsOn}
				n.Project, _ = r.Inputs["project"].(string)
				n.Service, _ = r.Inputs["service"].(string)
				nodes = append(nodes, n)
				byURN[r.URN] = r
			}
			var out []Finding
			for _, m := range apis.MissingDependencies(nodes) {
				out = append(out, Finding{Resource: byURN[m.URN].Name, Type: m.Type, Message: m.Problem})
			}
			return out
		},
	}
}
