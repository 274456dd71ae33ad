package apis

import (
	"fmt"
	"slices"
	"strings"
)

// byModule is the API each pulumi-gcp module calls: the provider calls the service the resource belongs to (the
// REST reference of each, https://cloud.google.com/<service>/docs/reference/rest).
var byModule = map[string]string{
	"artifactregistry":   "artifactregistry.googleapis.com",
	"certificatemanager": "certificatemanager.googleapis.com",
	"compute":            "compute.googleapis.com",
	"container":          "container.googleapis.com",
	"dns":                "dns.googleapis.com",
	"kms":                "cloudkms.googleapis.com",
	"logging":            "logging.googleapis.com",
	"monitoring":         "monitoring.googleapis.com",
	"organizations":      "cloudresourcemanager.googleapis.com",
	"secretmanager":      "secretmanager.googleapis.com",
	"serviceaccount":     "iam.googleapis.com",
	"servicenetworking":  "servicenetworking.googleapis.com",
	"sql":                "sqladmin.googleapis.com",
	"storage":            "storage.googleapis.com",
}

// ServiceUsage is on in every project: it is the API that switches the others on
// (https://cloud.google.com/service-usage/docs/enabled-service#default).
const ServiceUsage = "serviceusage.googleapis.com"

// ServiceType is the type token of an enabled API.
const ServiceType = "gcp:projects/service:Service"

// For is the API a pulumi-gcp resource type or function token calls; "" for tokens of other packages and for
// enabling an API itself.
func For(token string) (string, error) {
	rest, ok := strings.CutPrefix(token, "gcp:")
	if !ok {
		return "", nil
	}
	module, member, _ := strings.Cut(rest, "/")
	switch {
	case token == ServiceType:
		return "", nil
	case module == "projects" && strings.HasPrefix(member, "serviceIdentity:"):
		return ServiceUsage, nil // services.generateServiceIdentity
	case module == "projects":
		return "cloudresourcemanager.googleapis.com", nil // projects.setIamPolicy
	}
	api, known := byModule[module]
	if !known {
		return "", fmt.Errorf("no Google API is known for %s: add its module to apis.byModule with its source", token)
	}
	return api, nil
}

// Node is one resource of a plan or a state, as far as API dependencies go.
type Node struct {
	URN, Type, Parent string
	// Dependencies are the URNs the resource waits for; a component stands for its descendants.
	Dependencies []string
	// Project is the project input ("" when the resource takes the provider's); Service the API a
	// projects.Service enables.
	Project, Service string
}

// Missing is a resource that may start before the API it calls is on.
type Missing struct {
	URN, Type string
	// Problem says what it does not wait for (or why its API is unknown).
	Problem string
}

func (m Missing) String() string { return m.URN + " (" + m.Type + ") " + m.Problem }

// MissingDependencies lists the GCP resources that do not wait, directly or through other resources, for the
// projects.Service of the API they call: in a first `pulumi up` they may start while the API is still off. Resources
// of another project (a shared DNS zone's) are that project's business, and a plan that enables no API at all leaves
// them to whoever manages the project.
func MissingDependencies(nodes []Node) []Missing {
	byURN := map[string]Node{}
	children := map[string][]string{}
	stackProjects := map[string]bool{}
	for _, n := range nodes {
		byURN[n.URN] = n
		if n.Parent != "" {
			children[n.Parent] = append(children[n.Parent], n.URN)
		}
		if n.Type == ServiceType {
			stackProjects[n.Project] = true
		}
	}
	if len(stackProjects) == 0 {
		return nil // the plan enables no API: they are managed outside it (a component planned on its own)
	}
	// waitsFor is every URN reachable from urn through dependencies, a component standing for its descendants.
	waitsFor := func(urn string) map[string]bool {
		seen := map[string]bool{}
		queue := slices.Clone(byURN[urn].Dependencies)
		for len(queue) > 0 {
			u := queue[0]
			queue = queue[1:]
			if seen[u] {
				continue
			}
			seen[u] = true
			queue = append(queue, children[u]...)
			queue = append(queue, byURN[u].Dependencies...)
		}
		return seen
	}
	var missing []Missing
	for _, n := range nodes {
		api, err := For(n.Type)
		if err != nil {
			missing = append(missing, Missing{URN: n.URN, Type: n.Type, Problem: err.Error()})
			continue
		}
		if api == "" || api == ServiceUsage || (n.Project != "" && !stackProjects[n.Project]) {
			continue
		}
		found := false
		for u := range waitsFor(n.URN) {
			if d := byURN[u]; d.Type == ServiceType && d.Service == api {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, Missing{URN: n.URN, Type: n.Type, Problem: "does not wait for the projects.Service of " + api})
		}
	}
	slices.SortFunc(missing, func(a, b Missing) int { return strings.Compare(a.URN, b.URN) })
	return missing
}
