// Package apis enables the Google APIs an environment uses and materialises the Google-managed service agents it
// grants roles to, so that a first `pulumi up` on a new project neither calls a disabled API nor grants a role to an
// agent that does not exist yet.
//
// Every other component of the environment is declared with a dependency on this one: its resources start only
// once every API is on. APIs are never disabled on destroy: other stacks of the project (its DR stack) and people
// use them too.
package apis

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/organizations"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/projects"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/storage"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// APIs is the component.
type APIs struct {
	pulumi.ResourceState

	// ProjectNumber is the project's number, looked up once Cloud Resource Manager is on.
	ProjectNumber pulumi.StringOutput `pulumi:"projectNumber"`
	// StorageAgent is the Cloud Storage service agent's email. Cloud Storage creates the agent on the first call
	// that asks for it, which the look-up is
	// (https://cloud.google.com/storage/docs/projects#service-agents).
	StorageAgent pulumi.StringOutput `pulumi:"storageAgent"`
	// KubernetesAgent is the GKE service agent's email, which exists once the Kubernetes Engine API is on
	// (https://cloud.google.com/kubernetes-engine/docs/how-to/encrypting-secrets).
	KubernetesAgent pulumi.StringOutput `pulumi:"kubernetesAgent"`

	services map[string]*projects.Service
}

// New enables the APIs. Pass the project's GCP provider (pulumi.Provider or through the parent).
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*APIs, error) {
	if args == nil {
		return nil, fmt.Errorf("apis: Args are required")
	}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	a := *args
	c := &APIs{services: map[string]*projects.Service{}}
	if err := ctx.RegisterComponentResource("omscloud:apis:APIs", name, c, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(c)
	for _, s := range Services {
		svc, err := projects.NewService(ctx, name+"-"+strings.TrimSuffix(s, ".googleapis.com"), &projects.ServiceArgs{
			Project: pulumi.String(a.Project),
			Service: pulumi.String(s),
			// Removing an API from the stack, or the stack itself, must not switch the API off for everything
			// else in the project.
			DisableOnDestroy:         pulumi.Bool(false),
			DisableDependentServices: pulumi.Bool(false),
		}, parent)
		if err != nil {
			return nil, fmt.Errorf("apis: %s: %w", s, err)
		}
		c.services[s] = svc
	}

	// Look-ups wait for the API they call: they take the Service's id, which is unknown until it is enabled, so
	// a first preview never calls a disabled API, and every resource that uses a result depends on the Service.
	c.ProjectNumber = c.after("cloudresourcemanager.googleapis.com", func(string) (string, error) {
		project, err := organizations.LookupProject(ctx, &organizations.LookupProjectArgs{ProjectId: &a.Project}, parent)
		if err != nil {
			return "", fmt.Errorf("apis: look up the number of project %s: %w", a.Project, err)
		}
		return project.Number, nil
	})
	c.StorageAgent = c.after("storage.googleapis.com", func(string) (string, error) {
		sa, err := storage.GetProjectServiceAccount(ctx, &storage.GetProjectServiceAccountArgs{Project: &a.Project}, parent)
		if err != nil {
			return "", fmt.Errorf("apis: look up the Cloud Storage service agent of project %s: %w", a.Project, err)
		}
		return sa.EmailAddress, nil
	})
	c.KubernetesAgent = pulumi.All(c.dependency("container.googleapis.com"), c.ProjectNumber).ApplyT(func(v []any) string {
		return fmt.Sprintf("service-%s@container-engine-robot.iam.gserviceaccount.com", v[1])
	}).(pulumi.StringOutput)

	return c, ctx.RegisterResourceOutputs(c, pulumi.Map{
		"projectNumber":   c.ProjectNumber,
		"storageAgent":    c.StorageAgent,
		"kubernetesAgent": c.KubernetesAgent,
	})
}

// Enabled are the projects.Service resources, one per API: what other resources wait for. (Waiting for the component
// instead would wait only for the children the SDK has registered by then.)
func (c *APIs) Enabled() []pulumi.Resource {
	out := make([]pulumi.Resource, 0, len(c.services))
	for _, s := range Services {
		out = append(out, c.services[s])
	}
	return out
}

// dependency is the Service's id: an output known only once the API is on.
func (c *APIs) dependency(service string) pulumi.IDOutput {
	return c.services[service].ID() // Services lists every API New looks up through

}

// after runs look once the service is on.
func (c *APIs) after(service string, look func(id string) (string, error)) pulumi.StringOutput {
	return c.dependency(service).ApplyT(func(id pulumi.ID) (string, error) { return look(string(id)) }).(pulumi.StringOutput)
}
