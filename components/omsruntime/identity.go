package omsruntime

import (
	"fmt"
	"maps"
	"slices"

	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/secretmanager"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/serviceaccount"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// identity is the runtime's Kubernetes service account bound to its GCP service account.
type identity struct {
	ksa, email pulumi.StringOutput
}

func (d *deployer) identity() (*identity, error) {
	a := d.a
	ksaName := a.Name + "-runtime"
	gsa, err := serviceaccount.NewAccount(d.ctx, d.name+"-gsa", &serviceaccount.AccountArgs{
		Project:     pulumi.String(a.Project),
		AccountId:   pulumi.String(a.Name + "-runtime"),
		DisplayName: pulumi.String("OMS runtime " + a.Name),
		Description: pulumi.String("Workload Identity of the OMS runtime pods in " + a.Namespace + "/" + ksaName),
	}, d.opts()...)
	if err != nil {
		return nil, fmt.Errorf("gcp service account: %w", err)
	}
	// Only this namespace's service account may act as the GCP service account.
	if _, err := serviceaccount.NewIAMMember(d.ctx, d.name+"-workload-identity", &serviceaccount.IAMMemberArgs{
		ServiceAccountId: gsa.Name,
		Role:             pulumi.String("roles/iam.workloadIdentityUser"),
		Member:           pulumi.String(WorkloadIdentityMember(a.Project, a.Namespace, ksaName)),
	}, d.opts()...); err != nil {
		return nil, fmt.Errorf("workload identity binding: %w", err)
	}
	member := pulumi.Sprintf("serviceAccount:%s", gsa.Email)
	for _, acct := range slices.Sorted(maps.Keys(a.Database.AccountSecrets)) {
		if _, err := secretmanager.NewSecretIamMember(d.ctx, d.name+"-secret-"+acct, &secretmanager.SecretIamMemberArgs{
			Project:  pulumi.String(a.Project),
			SecretId: a.Database.AccountSecrets[acct],
			Role:     pulumi.String("roles/secretmanager.secretAccessor"),
			Member:   member,
		}, d.opts()...); err != nil {
			return nil, fmt.Errorf("secret access %s: %w", acct, err)
		}
	}
	_, labels := d.labels("runtime", "", "")
	ksa, err := corev1.NewServiceAccount(d.ctx, d.name+"-ksa", &corev1.ServiceAccountArgs{
		Metadata: metav1.ObjectMetaArgs{
			Name:        pulumi.String(ksaName),
			Namespace:   pulumi.String(a.Namespace),
			Labels:      pulumi.ToStringMap(labels),
			Annotations: pulumi.StringMap{"iam.gke.io/gcp-service-account": gsa.Email},
		},
		// The runtime never calls the Kubernetes API; GKE's metadata server identifies pods without the token.
		AutomountServiceAccountToken: pulumi.Bool(false),
	}, d.opts()...)
	if err != nil {
		return nil, fmt.Errorf("kubernetes service account: %w", err)
	}
	return &identity{ksa: ksa.Metadata.Name().Elem(), email: gsa.Email}, nil
}

// WorkloadIdentityMember is the IAM member of a Kubernetes service account under GKE Workload Identity.
func WorkloadIdentityMember(project, namespace, ksa string) string {
	return fmt.Sprintf("serviceAccount:%s.svc.id.goog[%s/%s]", project, namespace, ksa)
}
