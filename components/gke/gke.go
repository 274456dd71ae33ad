// Package gke declares a regional GKE Standard cluster for one environment: private nodes, Workload Identity,
// Dataplane V2, shielded nodes, a release channel and maintenance window, the default node pool removed, and
// autoscaled node pools spread over the environment's zones, run by a least-privilege node service account.
// It exposes the kubeconfig (secret) and a Kubernetes provider for the components that deploy into the cluster.
package gke

import (
	"fmt"
	"github.com/omscloud/omscloud/components/internal/child"
	"github.com/omscloud/omscloud/components/internal/cmek"
	"strings"
	"time"

	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/artifactregistry"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/container"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/kms"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/projects"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/serviceaccount"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Cluster is the component.
type Cluster struct {
	pulumi.ResourceState

	ClusterName pulumi.StringOutput `pulumi:"clusterName"`
	Endpoint    pulumi.StringOutput `pulumi:"endpoint"`
	// Kubeconfig authenticates with gke-gcloud-auth-plugin; it is a secret.
	Kubeconfig pulumi.StringOutput `pulumi:"kubeconfig"`
	// WorkloadPool is the Workload Identity pool ("<project>.svc.id.goog").
	WorkloadPool string
	// NodeServiceAccount is the email of the nodes' service account.
	NodeServiceAccount pulumi.StringOutput `pulumi:"nodeServiceAccount"`
	// Provider deploys into this cluster; it waits for the node pools.
	Provider *kubernetes.Provider
}

// nodeRoles is all a node needs project-wide: the role GKE documents for a custom node service account (write logs
// and metrics, read metadata, report autoscaling metrics:
// https://cloud.google.com/kubernetes-engine/docs/how-to/service-accounts#default-gke-service-agent). Image pulls
// are granted per repository (Images); workloads get their own identities.
var nodeRoles = []string{
	"roles/container.defaultNodeServiceAccount",
}

var byDay = map[string]string{
	"monday": "MO", "tuesday": "TU", "wednesday": "WE", "thursday": "TH", "friday": "FR", "saturday": "SA", "sunday": "SU",
}

// New declares the cluster.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Cluster, error) {
	if err := args.Validate(); err != nil {
		return nil, err
	}
	c := &Cluster{WorkloadPool: args.Project + ".svc.id.goog"}
	if err := ctx.RegisterComponentResource("omscloud:gke:Cluster", name, c, opts...); err != nil {
		return nil, err
	}
	inherited, err := child.Options(c, opts)
	if err != nil {
		return nil, fmt.Errorf("gke: %w", err)
	}
	parent := pulumi.Composite(inherited...)

	sa, err := serviceaccount.NewAccount(ctx, name+"-nodes", &serviceaccount.AccountArgs{
		Project:     pulumi.String(args.Project),
		AccountId:   pulumi.String(serviceAccountID(args.Name + "-nodes")),
		DisplayName: pulumi.String("GKE nodes of " + args.Name),
	}, parent)
	if err != nil {
		return nil, err
	}
	for _, role := range nodeRoles {
		short := role[strings.LastIndex(role, "/")+1:]
		if _, err := projects.NewIAMMember(ctx, name+"-nodes-"+short, &projects.IAMMemberArgs{
			Project: pulumi.String(args.Project),
			Role:    pulumi.String(role),
			Member:  pulumi.Sprintf("serviceAccount:%s", sa.Email),
		}, parent); err != nil {
			return nil, err
		}
	}
	if err := grantPulls(ctx, name+"-nodes-pull", args.Images, sa, parent); err != nil {
		return nil, err
	}

	clusterArgs := &container.ClusterArgs{
		Project:  pulumi.String(args.Project),
		Name:     pulumi.String(args.Name),
		Location: pulumi.String(args.Region),
		// The cluster's nodes live only in the pools below.
		NodeLocations:         pulumi.ToStringArray(args.Zones),
		RemoveDefaultNodePool: pulumi.Bool(true),
		InitialNodeCount:      pulumi.Int(1),
		Network:               args.Network,
		Subnetwork:            args.Subnetwork,
		NetworkingMode:        pulumi.String("VPC_NATIVE"),
		IpAllocationPolicy: container.ClusterIpAllocationPolicyArgs{
			ClusterSecondaryRangeName:  pulumi.String(args.PodsRangeName),
			ServicesSecondaryRangeName: pulumi.String(args.ServicesRangeName),
		},
		PrivateClusterConfig: container.ClusterPrivateClusterConfigArgs{
			EnablePrivateNodes:    pulumi.Bool(true),
			EnablePrivateEndpoint: pulumi.Bool(false),
			MasterIpv4CidrBlock:   pulumi.String(args.MasterCIDR),
			MasterGlobalAccessConfig: container.ClusterPrivateClusterConfigMasterGlobalAccessConfigArgs{
				Enabled: pulumi.Bool(true),
			},
		},
		MasterAuthorizedNetworksConfig: container.ClusterMasterAuthorizedNetworksConfigArgs{
			CidrBlocks:                  authorizedNetworks(args.MasterAuthorizedNetworks),
			GcpPublicCidrsAccessEnabled: pulumi.Bool(false),
		},
		WorkloadIdentityConfig: container.ClusterWorkloadIdentityConfigArgs{
			WorkloadPool: pulumi.String(c.WorkloadPool),
		},
		DatapathProvider:    pulumi.String("ADVANCED_DATAPATH"),
		EnableShieldedNodes: pulumi.Bool(true),
		ReleaseChannel:      container.ClusterReleaseChannelArgs{Channel: pulumi.String(args.ReleaseChannel)},
		MaintenancePolicy: container.ClusterMaintenancePolicyArgs{
			RecurringWindow: recurringWindow(args.Maintenance),
		},
		AddonsConfig: container.ClusterAddonsConfigArgs{
			HttpLoadBalancing:                container.ClusterAddonsConfigHttpLoadBalancingArgs{Disabled: pulumi.Bool(false)},
			HorizontalPodAutoscaling:         container.ClusterAddonsConfigHorizontalPodAutoscalingArgs{Disabled: pulumi.Bool(false)},
			GcePersistentDiskCsiDriverConfig: container.ClusterAddonsConfigGcePersistentDiskCsiDriverConfigArgs{Enabled: pulumi.Bool(true)},
		},
		SecurityPostureConfig: container.ClusterSecurityPostureConfigArgs{
			Mode:              pulumi.String("BASIC"),
			VulnerabilityMode: pulumi.String("VULNERABILITY_BASIC"),
		},
		// Managed Prometheus runs the collectors the runtime's metrics NetworkPolicy admits; the system
		// components are GKE's default, stated so that the provider sees no drift.
		MonitoringConfig: container.ClusterMonitoringConfigArgs{
			EnableComponents:  pulumi.StringArray{pulumi.String("SYSTEM_COMPONENTS")},
			ManagedPrometheus: container.ClusterMonitoringConfigManagedPrometheusArgs{Enabled: pulumi.Bool(true)},
		},
		DeletionProtection: pulumi.Bool(args.DeletionProtection),
		ResourceLabels:     pulumi.ToStringMap(args.Labels),
	}
	key, grant, err := secretsKey(ctx, name, args, c, parent)
	if err != nil {
		return nil, err
	}
	clusterArgs.DatabaseEncryption = container.ClusterDatabaseEncryptionArgs{State: pulumi.String("ENCRYPTED"), KeyName: key.ID()}
	// Protected as well as GKE's own deletionProtection: a change that would replace the cluster fails the preview
	// rather than the update, when GKE refuses the delete.
	cluster, err := container.NewCluster(ctx, name, clusterArgs, parent, pulumi.IgnoreChanges([]string{"initialNodeCount"}),
		pulumi.DependsOn([]pulumi.Resource{grant}), pulumi.Protect(args.DeletionProtection))
	if err != nil {
		return nil, err
	}

	var pools []pulumi.Resource
	for _, p := range args.Pools {
		pool, err := container.NewNodePool(ctx, name+"-"+p.Name, &container.NodePoolArgs{
			Project:       pulumi.String(args.Project),
			Location:      pulumi.String(args.Region),
			Cluster:       cluster.Name,
			Name:          pulumi.String(p.Name),
			NodeLocations: pulumi.ToStringArray(args.Zones),
			Autoscaling: container.NodePoolAutoscalingArgs{
				MinNodeCount:   pulumi.Int(p.MinNodesPerZone),
				MaxNodeCount:   pulumi.Int(p.MaxNodesPerZone),
				LocationPolicy: pulumi.String("BALANCED"),
			},
			Management: container.NodePoolManagementArgs{AutoRepair: pulumi.Bool(true), AutoUpgrade: pulumi.Bool(true)},
			// Surge one node at a time, never take one away first: capacity never drops during upgrades.
			UpgradeSettings: container.NodePoolUpgradeSettingsArgs{
				Strategy:       pulumi.String("SURGE"),
				MaxSurge:       pulumi.Int(1),
				MaxUnavailable: pulumi.Int(0),
			},
			NodeConfig: container.NodePoolNodeConfigArgs{
				MachineType:    pulumi.String(p.MachineType),
				DiskSizeGb:     pulumi.Int(p.DiskSizeGB),
				DiskType:       pulumi.String("pd-balanced"),
				ImageType:      pulumi.String("COS_CONTAINERD"),
				ServiceAccount: sa.Email,
				OauthScopes:    pulumi.StringArray{pulumi.String("https://www.googleapis.com/auth/cloud-platform")},
				ShieldedInstanceConfig: container.NodePoolNodeConfigShieldedInstanceConfigArgs{
					EnableSecureBoot:          pulumi.Bool(true),
					EnableIntegrityMonitoring: pulumi.Bool(true),
				},
				WorkloadMetadataConfig: container.NodePoolNodeConfigWorkloadMetadataConfigArgs{Mode: pulumi.String("GKE_METADATA")},
				Labels:                 pulumi.ToStringMap(p.Labels),
				ResourceLabels:         pulumi.ToStringMap(args.Labels),
				Taints:                 taints(p.Taints),
				Metadata:               pulumi.StringMap{"disable-legacy-endpoints": pulumi.String("true")},
			},
			// Per zone. Without it a pool may start with no node in a zone, and GKE's NEG controller creates the
			// edge's NEG only in zones where the cluster has nodes
			// (https://cloud.google.com/kubernetes-engine/docs/how-to/standalone-neg).
			InitialNodeCount: pulumi.Int(p.MinNodesPerZone),
			// A change to initialNodeCount forces a new pool (see its doc comment), and the autoscaler moves the size
			// anyway: it matters only at creation, so later changes, and its absence from pools created before it was
			// set, must not replace a pool.
		}, parent, pulumi.IgnoreChanges([]string{"initialNodeCount"}))
		if err != nil {
			return nil, err
		}
		pools = append(pools, pool)
	}

	kubeconfig := pulumi.ToSecret(pulumi.All(cluster.Name, cluster.Endpoint, cluster.MasterAuth.ClusterCaCertificate().Elem()).
		ApplyT(func(v []any) string {
			return Kubeconfig(v[0].(string), v[1].(string), v[2].(string))
		})).(pulumi.StringOutput)
	provider, err := kubernetes.NewProvider(ctx, name+"-k8s", &kubernetes.ProviderArgs{
		Kubeconfig:            kubeconfig,
		EnableServerSideApply: pulumi.Bool(true),
		DeleteUnreachable:     pulumi.Bool(false),
		// Update Secrets and ConfigMaps in place: otherwise a new value (a rotated password, a new account) replaces
		// the named object delete-first, and with it every object whose spec quotes it (the Redis and RabbitMQ
		// StatefulSets, the runtime's Deployments). Provider options enableSecretMutable / enableConfigMapMutable
		// (https://www.pulumi.com/registry/packages/kubernetes/api-docs/provider/#inputs). Pods that read a changed
		// value must be rolled by a checksum annotation (config) or the consumer.
		EnableSecretMutable:    pulumi.Bool(true),
		EnableConfigMapMutable: pulumi.Bool(true),
	}, parent, pulumi.DependsOn(pools))
	if err != nil {
		return nil, err
	}

	c.ClusterName = cluster.Name
	c.Endpoint = cluster.Endpoint
	c.Kubeconfig = kubeconfig
	c.NodeServiceAccount = sa.Email
	c.Provider = provider
	return c, ctx.RegisterResourceOutputs(c, pulumi.Map{
		"clusterName":        cluster.Name,
		"endpoint":           cluster.Endpoint,
		"kubeconfig":         kubeconfig,
		"nodeServiceAccount": sa.Email,
	})
}

// secretsKey is the CMEK key that encrypts Kubernetes Secrets in etcd (application-layer secrets encryption): in the
// cluster's region, as GKE requires, usable by the Kubernetes Engine service agent before the cluster is created
// (https://cloud.google.com/kubernetes-engine/docs/how-to/encrypting-secrets). Protected like the cluster: a lost
// key makes every Secret unreadable.
func secretsKey(ctx *pulumi.Context, name string, args *Args, c *Cluster, parent pulumi.ResourceOption) (*kms.CryptoKey, *kms.CryptoKeyIAMMember, error) {
	k, err := cmek.New(ctx, cmek.Args{
		RingLogical: name + "-keyring", KeyLogical: name + "-secrets-key", GrantLogical: name + "-secrets-key-gke-agent",
		Project: args.Project, Location: args.Region, Name: args.Name + "-gke-secrets", RotationDays: args.KeyRotationDays,
		Labels: args.Labels, Agent: args.ServiceAgent, Protect: args.DeletionProtection, Adopt: args.AdoptKeys, Parent: c,
	}, parent)
	if err != nil {
		return nil, nil, err
	}
	return k.Key, k.Grant, nil
}

// Kubeconfig renders a kubeconfig for a GKE cluster that authenticates through gke-gcloud-auth-plugin, so it holds no
// long-lived credential.
func Kubeconfig(name, endpoint, caCertificate string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: https://%[2]s
    certificate-authority-data: %[3]s
contexts:
- name: %[1]s
  context:
    cluster: %[1]s
    user: %[1]s
current-context: %[1]s
users:
- name: %[1]s
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: gke-gcloud-auth-plugin
      installHint: Install gke-gcloud-auth-plugin (gcloud components install gke-gcloud-auth-plugin)
      provideClusterInfo: true
`, name, endpoint, caCertificate)
}

// grantPulls lets the nodes read each repository the images name: the release usually lives in another project's
// registry, where a project-wide role on the stack's own project would not reach.
func grantPulls(ctx *pulumi.Context, name string, images []string, sa *serviceaccount.Account, parent pulumi.ResourceOption) error {
	repos := map[Repository]bool{}
	for _, image := range images {
		repo, err := ImageRepository(image)
		if err != nil {
			return err
		}
		if repos[repo] {
			continue
		}
		repos[repo] = true
		if _, err := artifactregistry.NewRepositoryIamMember(ctx, name+"-"+repo.Location+"-"+repo.Project+"-"+repo.Name, &artifactregistry.RepositoryIamMemberArgs{
			Project:    pulumi.String(repo.Project),
			Location:   pulumi.String(repo.Location),
			Repository: pulumi.String(repo.Name),
			Role:       pulumi.String("roles/artifactregistry.reader"),
			Member:     pulumi.Sprintf("serviceAccount:%s", sa.Email),
		}, parent); err != nil {
			return err
		}
	}
	return nil
}

func authorizedNetworks(nets []AuthorizedNetwork) container.ClusterMasterAuthorizedNetworksConfigCidrBlockArray {
	out := container.ClusterMasterAuthorizedNetworksConfigCidrBlockArray{}
	for _, n := range nets {
		out = append(out, container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs{
			CidrBlock: pulumi.String(n.CIDR), DisplayName: pulumi.String(n.Name),
		})
	}
	return out
}

// recurringWindow anchors the weekly window on a fixed Saturday; GKE uses only its time of day and length.
func recurringWindow(m MaintenanceWindow) container.ClusterMaintenancePolicyRecurringWindowArgs {
	start := time.Date(2025, time.January, 4, m.StartHourUTC, 0, 0, 0, time.UTC)
	days := make([]string, len(m.Days))
	for i, d := range m.Days {
		days[i] = byDay[d]
	}
	return container.ClusterMaintenancePolicyRecurringWindowArgs{
		StartTime:  pulumi.String(start.Format(time.RFC3339)),
		EndTime:    pulumi.String(start.Add(time.Duration(m.DurationHours) * time.Hour).Format(time.RFC3339)),
		Recurrence: pulumi.String("FREQ=WEEKLY;BYDAY=" + strings.Join(days, ",")),
	}
}

func taints(ts []Taint) container.NodePoolNodeConfigTaintArray {
	out := container.NodePoolNodeConfigTaintArray{}
	for _, t := range ts {
		out = append(out, container.NodePoolNodeConfigTaintArgs{
			Key: pulumi.String(t.Key), Value: pulumi.String(t.Value), Effect: pulumi.String(t.Effect),
		})
	}
	return out
}

// serviceAccountID fits a name into GCP's 6-30 character service account id.
func serviceAccountID(name string) string {
	if len(name) > 30 {
		name = strings.TrimRight(name[:30], "-")
	}
	return name
}
