package edge

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/compute"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// negPolling bounds the wait for a NEG. GKE's NEG controller creates the standalone NEGs asynchronously, from the
// Service's annotation, once the Service has ready pods, and only in zones where the cluster has nodes
// (https://cloud.google.com/kubernetes-engine/docs/how-to/standalone-neg).
var negPolling = polling{First: time.Second, Max: 15 * time.Second, Total: 5 * time.Minute, Now: time.Now, Sleep: sleep}

// polling is a bounded exponential backoff; Now and Sleep are replaceable for tests.
type polling struct {
	First, Max, Total time.Duration
	Now               func() time.Time
	Sleep             func(context.Context, time.Duration) error
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// canonicalNEGSelfLink is where GKE creates a zone's NEG: only the fallback of a lookup while the load balancer
// serves nobody (see lookupNEGs).
func canonicalNEGSelfLink(project, zone, neg string) string {
	return fmt.Sprintf("https://www.googleapis.com/compute/v1/projects/%s/zones/%s/networkEndpointGroups/%s", project, zone, neg)
}

// lookupNEGs returns the self link of one color's NEG in every zone, as Compute Engine reports it. Each lookup
// waits for the color's ServiceReady, so it runs after the Kubernetes provider has awaited the Service and stays
// unknown in a preview that creates it; then it polls until the NEG exists.
//
// While GCP.DNS.Target points the hostnames elsewhere (DR declared), this load balancer serves nobody and its region
// may be lost: a failed lookup then falls back to the canonical self link at once, so that the lost region's API
// cannot block the DR switch, an update of the records that leaves the backends as they are.
func lookupNEGs(ctx *pulumi.Context, a *Args, color string, parent pulumi.Resource) []pulumi.StringOutput {
	standby := a.GCP.DNS.Target != nil
	c := a.Backend.Colors[color]
	links := make([]pulumi.StringOutput, len(a.Zones))
	for i, zone := range a.Zones {
		links[i] = c.ServiceReady.ToStringOutput().ApplyT(func(string) (pulumi.StringOutput, error) {
			link, missing, err := lookupNEG(ctx, a, c.NEG, zone, parent, ctx.DryRun() || standby)
			switch {
			case err == nil:
				return pulumi.String(link).ToStringOutput(), nil
			case standby:
				_ = ctx.Log.Warn(fmt.Sprintf("%v: DR is declared, so the backends keep the NEG's canonical self link", err), &pulumi.LogArgs{Resource: parent})
				return pulumi.String(canonicalNEGSelfLink(a.Project, zone, c.NEG)).ToStringOutput(), nil
			case ctx.DryRun() && missing:
				// GKE creates it during the update (e.g. a new zone's nodes come up first): unknown until then.
				_ = ctx.Log.Info(fmt.Sprintf("%v: `pulumi up` waits for it", err), &pulumi.LogArgs{Resource: parent})
				return pulumi.UnsafeUnknownOutput(nil).ApplyT(func(any) string { return "" }).(pulumi.StringOutput), nil
			default:
				return pulumi.StringOutput{}, err
			}
		}).(pulumi.StringOutput)
	}
	return links
}

// lookupNEG polls Compute Engine for the NEG of one zone (once if only once) and returns its self link, or whether
// it is missing (rather than denied) with the error.
func lookupNEG(ctx *pulumi.Context, a *Args, name, zone string, parent pulumi.Resource, once bool) (link string, missing bool, err error) {
	p := negPolling
	deadline := p.Now().Add(p.Total)
	wait := p.First
	for {
		neg, err := compute.LookupNetworkEndpointGroup(ctx, &compute.LookupNetworkEndpointGroupArgs{
			Project: pulumi.StringRef(a.Project),
			Zone:    pulumi.StringRef(zone),
			Name:    pulumi.StringRef(name),
		}, pulumi.Parent(parent))
		if err == nil && neg.SelfLink != nil && *neg.SelfLink != "" {
			return *neg.SelfLink, false, nil
		}
		if err == nil {
			err = fmt.Errorf("the lookup returned no self link")
		}
		// A denied lookup will not succeed by waiting: the Compute Engine API or the deployer's role is missing.
		if strings.Contains(err.Error(), "Error 403") {
			return "", false, fmt.Errorf("look up NEG %s in zone %s of project %s: %w (enable compute.googleapis.com and grant the deployer compute.networkEndpointGroups.get)",
				name, zone, a.Project, err)
		}
		if once {
			return "", true, fmt.Errorf("NEG %s is not in zone %s yet (%v)", name, zone, err)
		}
		if p.Now().Add(wait).After(deadline) {
			return "", true, fmt.Errorf("NEG %s did not appear in zone %s of project %s within %s (last lookup: %v). GKE's NEG controller creates it "+
				"from the cloud.google.com/neg annotation of the runtime's color Service in namespace %s once it has ready pods and the cluster has nodes in %s: "+
				"check its events (kubectl describe service -n %s) and the node pools' nodes in that zone",
				name, zone, a.Project, p.Total, err, a.Backend.Namespace, zone, a.Backend.Namespace)
		}
		if err := p.Sleep(ctx.Context(), wait); err != nil {
			return "", false, fmt.Errorf("look up NEG %s in zone %s: %w", name, zone, err)
		}
		wait = min(2*wait, p.Max)
	}
}
