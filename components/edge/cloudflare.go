package edge

import (
	"fmt"

	"github.com/omscloud/omscloud/components/internal/cftunnel"
	"github.com/omscloud/omscloud/components/internal/kube"
	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/pulumi/pulumi-cloudflare/sdk/v5/go/cloudflare"
	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// cloudflared settings.
const (
	// MetricsPort serves cloudflared's /ready (200 once it holds a connection to Cloudflare's edge).
	MetricsPort = 2000
	// TunnelPort is where cloudflared reaches Cloudflare's edge (QUIC over UDP, HTTP/2 over TCP).
	TunnelPort = 7844
	// TokenKey is the key of the tunnel token in the connector's Secret.
	TokenKey = "token"
	// TunnelIDAnnotation on the pod template rolls cloudflared when the tunnel (and so its token) is replaced.
	TunnelIDAnnotation = "omscloud.io/tunnel-id"
	// cloudflaredUser is the distroless image's nonroot uid and gid.
	cloudflaredUser = 65532
)

// privateRanges are never Cloudflare's edge: excluding them keeps cloudflared from reaching anything inside the VPC
// or the metadata server except through the rules that name the runtime's pods.
var privateRanges = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"}

func newCloudflare(ctx *pulumi.Context, name string, a *Args, e *Edge, opts []pulumi.ResourceOption) error {
	c := a.Cloudflare
	if c.ConnectorOnly {
		// The tunnel and everything on Cloudflare belong to another stack; only its connector runs here. Without a
		// tunnel id to annotate, a replaced tunnel needs a rollout of cloudflared (kubectl rollout restart).
		return connector(ctx, name, a, c.TunnelToken.ToStringOutput(), nil, opts)
	}
	zone := pulumi.String(c.ZoneID)
	primary := a.Hostnames[0]

	origin := fmt.Sprintf("http://%s:%d", kube.ServiceFQDN(a.Backend.ServiceName, a.Backend.Namespace), omsruntime.ServicePort)
	tunnel, err := cftunnel.NewTunnel(ctx, name, cftunnel.TunnelArgs{
		AccountID: c.AccountID, Name: a.Name, Hostnames: a.Hostnames, Origin: origin,
	}, opts)
	if err != nil {
		return err
	}
	tunnelID, cname := tunnel.ID, tunnel.CNAME

	for _, h := range a.Hostnames {
		if _, err := cloudflare.NewRecord(ctx, name+"-"+h, &cloudflare.RecordArgs{
			ZoneId:  zone,
			Name:    pulumi.String(h),
			Type:    pulumi.String("CNAME"),
			Content: cname,
			// Proxied: clients resolve Cloudflare's anycast addresses, never an origin.
			Proxied: pulumi.Bool(true),
			Ttl:     pulumi.Int(1),
			Comment: pulumi.String("omscloud " + a.Name + " tunnel"),
		}, opts...); err != nil {
			return fmt.Errorf("dns record %s: %w", h, err)
		}
	}

	rollOnNewTunnel := pulumi.StringMap{TunnelIDAnnotation: tunnelID}
	if err := connector(ctx, name, a, tunnel.Token, rollOnNewTunnel, opts); err != nil {
		return err
	}

	pool, err := cftunnel.NewPool(ctx, name, name+"-primary", cftunnel.PoolArgs{
		AccountID: c.AccountID, Name: a.Name + "-primary", OriginName: a.Name + "-tunnel",
		Description:        a.Name + " tunnel in " + a.Region,
		MonitorDescription: a.Name + " runtime /readyz through the tunnel",
		Tunnel:             cname, Host: primary, HealthPath: a.Backend.HealthPath, Enabled: true,
		CheckRegions: c.CheckRegions, NotificationEmail: c.NotificationEmail,
	}, opts)
	if err != nil {
		return fmt.Errorf("primary %w", err)
	}
	poolID := pool.ID
	// Failover order: this region's pool first, then the DR pools.
	pools := pulumi.StringArray{poolID}
	pools = append(pools, c.DRPoolIDs...)
	lb, err := cloudflare.NewLoadBalancer(ctx, name+"-lb", &cloudflare.LoadBalancerArgs{
		ZoneId:         zone,
		Name:           pulumi.String(primary),
		Description:    pulumi.String(a.Name + " failover between the region's tunnel and its DR site"),
		DefaultPoolIds: pools,
		FallbackPoolId: poolID,
		SteeringPolicy: pulumi.String("off"),
		Proxied:        pulumi.Bool(true),
		Enabled:        pulumi.Bool(true),
	}, opts...)
	if err != nil {
		return fmt.Errorf("load balancer: %w", err)
	}

	e.TunnelID = tunnelID
	e.TunnelCNAME = cname
	e.MonitorID = pool.MonitorID
	e.PrimaryPoolID = poolID
	e.LoadBalancerID = lb.ID().ToStringOutput()
	return nil
}

// connector runs cloudflared in the cluster with the tunnel's token: the token Secret, a spread Deployment under the
// restricted Pod Security level, a PDB and a NetworkPolicy that lets it reach only the runtime's pods, DNS and
// Cloudflare's edge. annotations (may be nil) go on the pod template.
func connector(ctx *pulumi.Context, name string, a *Args, token pulumi.StringOutput, annotations pulumi.StringMap, opts []pulumi.ResourceOption) error {
	c := a.Cloudflare
	ns := a.Backend.Namespace
	base := a.Name + "-cloudflared"
	selector, labels := kube.Labels("cloudflared", a.Name, "edge", a.Labels)
	meta := func(objectName string) metav1.ObjectMetaArgs { return kube.Meta(objectName, ns, labels) }

	secret, err := corev1.NewSecret(ctx, name+"-cloudflared-token", &corev1.SecretArgs{
		Metadata:   meta(base + "-token"),
		Type:       pulumi.String("Opaque"),
		StringData: pulumi.StringMap{TokenKey: pulumi.ToSecret(token).(pulumi.StringOutput)},
	}, opts...)
	if err != nil {
		return fmt.Errorf("connector secret: %w", err)
	}
	sa, err := corev1.NewServiceAccount(ctx, name+"-cloudflared", &corev1.ServiceAccountArgs{
		Metadata: meta(base),
		// cloudflared never calls the Kubernetes API.
		AutomountServiceAccountToken: pulumi.Bool(false),
	}, opts...)
	if err != nil {
		return fmt.Errorf("connector service account: %w", err)
	}

	podMeta := metav1.ObjectMetaArgs{Labels: pulumi.ToStringMap(labels)}
	if len(annotations) > 0 {
		podMeta.Annotations = annotations
	}
	metrics := fmt.Sprintf("0.0.0.0:%d", MetricsPort)
	ready := func(failures int) corev1.ProbeArgs {
		return corev1.ProbeArgs{
			HttpGet:             corev1.HTTPGetActionArgs{Path: pulumi.String("/ready"), Port: pulumi.String("metrics")},
			InitialDelaySeconds: pulumi.Int(10),
			PeriodSeconds:       pulumi.Int(10),
			TimeoutSeconds:      pulumi.Int(3),
			FailureThreshold:    pulumi.Int(failures),
		}
	}
	if _, err := appsv1.NewDeployment(ctx, name+"-cloudflared", &appsv1.DeploymentArgs{
		Metadata: meta(base),
		Spec: appsv1.DeploymentSpecArgs{
			Replicas: pulumi.Int(c.Replicas),
			Selector: kube.Selector(selector),
			// One connector at a time, never waiting for spare capacity: the others keep the tunnel up.
			Strategy: appsv1.DeploymentStrategyArgs{
				Type: pulumi.String("RollingUpdate"),
				RollingUpdate: appsv1.RollingUpdateDeploymentArgs{
					MaxUnavailable: pulumi.Int(1),
					MaxSurge:       pulumi.Int(0),
				},
			},
			MinReadySeconds:      pulumi.Int(10),
			RevisionHistoryLimit: pulumi.Int(5),
			Template: corev1.PodTemplateSpecArgs{
				Metadata: podMeta,
				Spec: corev1.PodSpecArgs{
					ServiceAccountName:           sa.Metadata.Name().Elem(),
					AutomountServiceAccountToken: pulumi.Bool(false),
					NodeSelector:                 pulumi.ToStringMap(c.NodeSelector),
					SecurityContext: corev1.PodSecurityContextArgs{
						RunAsNonRoot:   pulumi.Bool(true),
						RunAsUser:      pulumi.Int(cloudflaredUser),
						RunAsGroup:     pulumi.Int(cloudflaredUser),
						FsGroup:        pulumi.Int(cloudflaredUser),
						SeccompProfile: corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
					},
					TopologySpreadConstraints: corev1.TopologySpreadConstraintArray{corev1.TopologySpreadConstraintArgs{
						MaxSkew:           pulumi.Int(1),
						TopologyKey:       pulumi.String(kube.ZoneKey),
						WhenUnsatisfiable: pulumi.String("DoNotSchedule"),
						LabelSelector:     kube.Selector(selector),
					}},
					Affinity: corev1.AffinityArgs{PodAntiAffinity: corev1.PodAntiAffinityArgs{
						RequiredDuringSchedulingIgnoredDuringExecution: corev1.PodAffinityTermArray{corev1.PodAffinityTermArgs{
							LabelSelector: kube.Selector(selector),
							TopologyKey:   pulumi.String(kube.HostnameKey),
						}},
					}},
					// cloudflared's own grace period (30 s) lets in-flight requests finish on shutdown.
					TerminationGracePeriodSeconds: pulumi.Int(45),
					Containers: corev1.ContainerArray{corev1.ContainerArgs{
						Name:  pulumi.String("cloudflared"),
						Image: pulumi.String(c.Image),
						Command: pulumi.StringArray{
							pulumi.String("cloudflared"), pulumi.String("tunnel"), pulumi.String("--no-autoupdate"),
							pulumi.String("--metrics"), pulumi.String(metrics),
							// IPv4 only, matching the NetworkPolicy's egress.
							pulumi.String("--edge-ip-version"), pulumi.String("4"),
							pulumi.String("run"),
						},
						// cloudflared reads the token from TUNNEL_TOKEN, so it is never on a command line.
						Env: corev1.EnvVarArray{kube.SecretEnv("TUNNEL_TOKEN", secret.Metadata.Name().Elem(), TokenKey)},
						Ports: corev1.ContainerPortArray{corev1.ContainerPortArgs{
							Name: pulumi.String("metrics"), ContainerPort: pulumi.Int(MetricsPort), Protocol: pulumi.String("TCP"),
						}},
						LivenessProbe:  ready(3),
						ReadinessProbe: ready(1),
						Resources: corev1.ResourceRequirementsArgs{
							Requests: pulumi.StringMap{"cpu": pulumi.String("100m"), "memory": pulumi.String("128Mi")},
							Limits:   pulumi.StringMap{"cpu": pulumi.String("1"), "memory": pulumi.String("256Mi")},
						},
						SecurityContext: corev1.SecurityContextArgs{
							RunAsNonRoot:             pulumi.Bool(true),
							RunAsUser:                pulumi.Int(cloudflaredUser),
							RunAsGroup:               pulumi.Int(cloudflaredUser),
							AllowPrivilegeEscalation: pulumi.Bool(false),
							ReadOnlyRootFilesystem:   pulumi.Bool(true),
							Privileged:               pulumi.Bool(false),
							Capabilities:             corev1.CapabilitiesArgs{Drop: pulumi.StringArray{pulumi.String("ALL")}},
							SeccompProfile:           corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
						},
					}},
				},
			},
		},
	}, opts...); err != nil {
		return fmt.Errorf("connector deployment: %w", err)
	}

	// One connector at a time: a drain never leaves the tunnel with a single connection.
	if _, err := kube.NewPDB(ctx, name+"-cloudflared", meta(base), selector, opts...); err != nil {
		return fmt.Errorf("connector pod disruption budget: %w", err)
	}

	port := func(n int, protocol string) networkingv1.NetworkPolicyPortArgs {
		return networkingv1.NetworkPolicyPortArgs{Port: pulumi.Int(n), Protocol: pulumi.String(protocol)}
	}
	if _, err := networkingv1.NewNetworkPolicy(ctx, name+"-cloudflared", &networkingv1.NetworkPolicyArgs{
		Metadata: meta(base),
		Spec: networkingv1.NetworkPolicySpecArgs{
			PodSelector: kube.Selector(selector),
			// No ingress rule: nothing connects to a tunnel connector (kubelet probes are not subject to policy).
			PolicyTypes: pulumi.StringArray{pulumi.String("Ingress"), pulumi.String("Egress")},
			Egress: networkingv1.NetworkPolicyEgressRuleArray{
				networkingv1.NetworkPolicyEgressRuleArgs{
					To:    networkingv1.NetworkPolicyPeerArray{kube.PodPeer(a.Backend.PodSelector)},
					Ports: networkingv1.NetworkPolicyPortArray{port(a.Backend.TargetPort, "TCP")},
				},
				// DNS goes to kube-dns or, with Cloud DNS for GKE, to the metadata server: allow the port, anywhere.
				networkingv1.NetworkPolicyEgressRuleArgs{
					Ports: networkingv1.NetworkPolicyPortArray{port(53, "UDP"), port(53, "TCP")},
				},
				networkingv1.NetworkPolicyEgressRuleArgs{
					To: networkingv1.NetworkPolicyPeerArray{networkingv1.NetworkPolicyPeerArgs{
						IpBlock: networkingv1.IPBlockArgs{Cidr: pulumi.String("0.0.0.0/0"), Except: pulumi.ToStringArray(privateRanges)},
					}},
					Ports: networkingv1.NetworkPolicyPortArray{port(TunnelPort, "UDP"), port(TunnelPort, "TCP"), port(443, "TCP")},
				},
			},
		},
	}, opts...); err != nil {
		return fmt.Errorf("connector network policy: %w", err)
	}
	return nil
}
