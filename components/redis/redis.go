// Package redis declares Redis with Sentinel on GKE: a StatefulSet whose pods each run a Redis server and a
// Sentinel (one master, the others replicas; a majority quorum; failure detected within 5 s), spread over zones and
// nodes, on SSD volumes, with a generated AUTH password, a PodDisruptionBudget and a NetworkPolicy that admits only
// the runtime's pods. Clients discover the master through the sentinel Service.
package redis

import (
	"fmt"
	"github.com/omscloud/omscloud/components/internal/child"
	"slices"
	"strconv"

	"github.com/omscloud/omscloud/components/internal/kube"
	"github.com/omscloud/omscloud/components/internal/rotate"
	"github.com/omscloud/omscloud/redisconf"
	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Ports.
const (
	RedisPort    = redisconf.RedisPort
	SentinelPort = redisconf.SentinelPort
)

// ConfigChecksumAnnotation on the pod template changes with the ConfigMap, so a config change rolls the pods.
const ConfigChecksumAnnotation = "omscloud.io/config-checksum"

// Keys of the auth Secret.
const (
	// PasswordKey holds the clients' current password.
	PasswordKey = "password"
	// PreviousPasswordKey holds the clients' previous password, which Redis and the sentinels still accept.
	PreviousPasswordKey = "previous-password"
	// InternalPasswordKey holds the pods' own password: replication, the sentinels among themselves and towards
	// Redis, the scripts. It never leaves the Redis pods, and no rotation changes it, so that pods of the old and the
	// new generation always reach each other during a rolling restart.
	InternalPasswordKey = "internal-password"
)

// sentinelCPU and sentinelMemory size the sentinel container; Size applies to the Redis server.
const (
	sentinelCPU    = "100m"
	sentinelMemory = "128Mi"
)

// Redis is the component.
type Redis struct {
	pulumi.ResourceState

	// SentinelAddress is host:port of the sentinel Service ("oms-prod-us-redis-sentinel.oms.svc.cluster.local:26379").
	SentinelAddress pulumi.StringOutput `pulumi:"sentinelAddress"`
	// MasterName is what clients ask the sentinels for.
	MasterName string
	// PasswordSecret names the Secret and key holding the clients' current password.
	PasswordSecret SecretKey
	// Password is the clients' AUTH password of Redis and of the sentinels (secret). It resolves only once the
	// StatefulSet's pods accept it, so clients that consume it restart after Redis has rolled.
	Password pulumi.StringOutput `pulumi:"password"`
	// StatefulSetName is the StatefulSet's name.
	StatefulSetName pulumi.StringOutput `pulumi:"statefulSetName"`
}

const appName, component = "redis", "cache"

// PodSelector are the labels of the Redis pods of the instance named name (Args.Name).
func PodSelector(name string) map[string]string {
	sel, _ := kube.Labels(appName, name, component, nil)
	return sel
}

// SecretKey locates a value in a Kubernetes Secret.
type SecretKey = kube.SecretKey

// names are the physical names of the objects, derived from Args.Name.
type names struct {
	base, headless, sentinel, auth, scripts string
}

func newNames(a *Args) names {
	base := a.Name + "-redis"
	return names{base: base, headless: base + "-headless", sentinel: base + "-sentinel", auth: base + "-auth", scripts: base + "-scripts"}
}

// New declares Redis with Sentinel. Pass the cluster's Kubernetes provider with pulumi.Provider; explicit
// dependencies of the component (pulumi.DependsOn, e.g. on the namespace) are passed on to every object.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Redis, error) {
	if args == nil {
		return nil, fmt.Errorf("redis: Args are required")
	}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	a := args.withDefaults()
	c := &Redis{MasterName: a.Sentinel.MasterName}
	if err := ctx.RegisterComponentResource("omscloud:redis:Redis", name, c, opts...); err != nil {
		return nil, err
	}
	child, err := child.Options(c, opts)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	n := newNames(&a)
	selector, labels := kube.Labels(appName, a.Name, component, a.Labels)
	meta := func(objectName string) metav1.ObjectMetaArgs { return kube.Meta(objectName, a.Namespace, labels) }

	// Alphanumeric: the passwords are written into config files and must need no quoting or escaping.
	alnum := random.RandomPasswordArgs{Length: pulumi.Int(40), Special: pulumi.Bool(false)}
	// The pods' own password keeps the name of the single password there once was: its value carries over.
	pw, err := random.NewRandomPassword(ctx, name+"-password", &alnum, child...)
	if err != nil {
		return nil, fmt.Errorf("redis: password: %w", err)
	}
	clients, err := rotate.Passwords(ctx, name+"-client-password", a.PasswordRotation, alnum, child...)
	if err != nil {
		return nil, fmt.Errorf("redis: client password: %w", err)
	}
	checksumKey, err := random.NewRandomPassword(ctx, name+"-checksum-key", &random.RandomPasswordArgs{Length: pulumi.Int(32)}, child...)
	if err != nil {
		return nil, fmt.Errorf("redis: checksum key: %w", err)
	}
	auth := pulumi.StringMap{
		PasswordKey:         clients.Current,
		PreviousPasswordKey: clients.Previous,
		InternalPasswordKey: pulumi.ToSecret(pw.Result).(pulumi.StringOutput),
	}
	secret, err := corev1.NewSecret(ctx, name+"-auth", &corev1.SecretArgs{
		Metadata:   meta(n.auth),
		Type:       pulumi.String("Opaque"),
		StringData: auth,
	}, child...)
	if err != nil {
		return nil, fmt.Errorf("redis: secret: %w", err)
	}

	files, err := configFiles(&a)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	cm, err := corev1.NewConfigMap(ctx, name+"-scripts", &corev1.ConfigMapArgs{
		Metadata: meta(n.scripts),
		Data:     pulumi.ToStringMap(files),
	}, child...)
	if err != nil {
		return nil, fmt.Errorf("redis: config map: %w", err)
	}

	sa, err := corev1.NewServiceAccount(ctx, name, &corev1.ServiceAccountArgs{
		Metadata: meta(n.base),
		// Redis never calls the Kubernetes API.
		AutomountServiceAccountToken: pulumi.Bool(false),
	}, child...)
	if err != nil {
		return nil, fmt.Errorf("redis: service account: %w", err)
	}

	ports := corev1.ServicePortArray{
		corev1.ServicePortArgs{Name: pulumi.String("redis"), Port: pulumi.Int(RedisPort), TargetPort: pulumi.String("redis")},
		corev1.ServicePortArgs{Name: pulumi.String("sentinel"), Port: pulumi.Int(SentinelPort), TargetPort: pulumi.String("sentinel")},
	}
	headless, err := corev1.NewService(ctx, name+"-headless", &corev1.ServiceArgs{
		Metadata: meta(n.headless),
		Spec: corev1.ServiceSpecArgs{
			ClusterIP: pulumi.String("None"),
			// Peers must resolve each other while starting, before they are ready.
			PublishNotReadyAddresses: pulumi.Bool(true),
			Selector:                 pulumi.ToStringMap(selector),
			Ports:                    ports,
		},
	}, child...)
	if err != nil {
		return nil, fmt.Errorf("redis: headless service: %w", err)
	}
	sentinelSvc, err := corev1.NewService(ctx, name+"-sentinel", &corev1.ServiceArgs{
		Metadata: meta(n.sentinel),
		Spec: corev1.ServiceSpecArgs{
			Type:     pulumi.String("ClusterIP"),
			Selector: pulumi.ToStringMap(selector),
			Ports:    ports[1:],
		},
	}, child...)
	if err != nil {
		return nil, fmt.Errorf("redis: sentinel service: %w", err)
	}

	sts, err := appsv1.NewStatefulSet(ctx, name, &appsv1.StatefulSetArgs{
		Metadata: meta(n.base),
		Spec: statefulSetSpec(&a, selector, labels, refs{
			serviceAccount: sa.Metadata.Name().Elem(),
			headless:       headless.Metadata.Name().Elem(),
			secret:         secret.Metadata.Name().Elem(),
			configMap:      cm.Metadata.Name().Elem(),
			headlessFQDN:   kube.ServiceFQDN(n.headless, a.Namespace),
			statefulSet:    n.base,
			configChecksum: kube.Checksum(files),
			secretChecksum: kube.SecretChecksum(checksumKey.Result, auth),
		}),
	}, slices.Concat(child, kube.StatefulSetOptions(a.DeletionProtection))...)
	if err != nil {
		return nil, fmt.Errorf("redis: statefulset: %w", err)
	}
	if err := kube.ExpandClaims(ctx, name, "data", n.base, a.Namespace, a.Replicas, a.Size.StorageGB, sts, child...); err != nil {
		return nil, fmt.Errorf("redis: volume claims: %w", err)
	}

	if _, err := kube.NewPDB(ctx, name, meta(n.base), selector, child...); err != nil {
		return nil, fmt.Errorf("redis: pod disruption budget: %w", err)
	}
	// Only the runtime and the Redis pods themselves (replication, sentinel gossip) may connect.
	ingress := networkingv1.NetworkPolicyIngressRuleArray{networkingv1.NetworkPolicyIngressRuleArgs{
		From:  networkingv1.NetworkPolicyPeerArray{kube.PodPeer(a.ClientSelector), kube.PodPeer(selector)},
		Ports: networkingv1.NetworkPolicyPortArray{kube.Port(RedisPort), kube.Port(SentinelPort)},
	}}
	if m := a.Metrics; m != nil {
		// The scraper reaches the exporter only: Redis and Sentinel stay closed to it.
		ingress = append(ingress, networkingv1.NetworkPolicyIngressRuleArgs{
			From: networkingv1.NetworkPolicyPeerArray{networkingv1.NetworkPolicyPeerArgs{
				NamespaceSelector: kube.Selector(m.NamespaceLabels),
				PodSelector:       kube.Selector(m.PodLabels),
			}},
			Ports: networkingv1.NetworkPolicyPortArray{kube.Port(ExporterPort)},
		})
	}
	if _, err := networkingv1.NewNetworkPolicy(ctx, name, &networkingv1.NetworkPolicyArgs{
		Metadata: meta(n.base),
		Spec: networkingv1.NetworkPolicySpecArgs{
			PodSelector: kube.Selector(selector),
			PolicyTypes: pulumi.StringArray{pulumi.String("Ingress")},
			Ingress:     ingress,
		},
	}, child...); err != nil {
		return nil, fmt.Errorf("redis: network policy: %w", err)
	}

	c.SentinelAddress = pulumi.Sprintf("%s.%s.%s:%d", sentinelSvc.Metadata.Name().Elem(), a.Namespace, kube.ClusterDomain, SentinelPort)
	c.PasswordSecret = SecretKey{Name: secret.Metadata.Name().Elem(), Key: PasswordKey}
	// Known once the provider has awaited the StatefulSet's rollout: every pod then accepts the new password.
	c.Password = pulumi.ToSecret(pulumi.All(sts.Status, clients.Current).ApplyT(func(v []any) string { return v[1].(string) })).(pulumi.StringOutput)
	c.StatefulSetName = sts.Metadata.Name().Elem()
	return c, ctx.RegisterResourceOutputs(c, pulumi.Map{
		"sentinelAddress":    c.SentinelAddress,
		"masterName":         pulumi.String(c.MasterName),
		"passwordSecretName": c.PasswordSecret.Name,
		"passwordSecretKey":  pulumi.String(PasswordKey),
		"password":           c.Password,
		"statefulSetName":    c.StatefulSetName,
	})
}

// configFiles are the ConfigMap's files: the scripts and the config templates the init container completes with
// this pod's identity, the current master and the password (which never enters the ConfigMap). redisconf holds
// them, so the runtime's local test environment runs the same ones.
func configFiles(a *Args) (map[string]string, error) {
	mem, err := kube.MemoryBytes(a.Size.Memory)
	if err != nil {
		return nil, err
	}
	return redisconf.Files(redisconf.Settings{
		Replicas:   a.Replicas,
		MasterName: a.Sentinel.MasterName,
		// Leave 30% of the container's memory for replication buffers and the copy-on-write of a replica's full sync.
		MaxMemoryBytes:    mem * 7 / 10,
		MaxMemoryPolicy:   a.MaxMemoryPolicy,
		DownAfterMs:       a.Sentinel.DownAfterMs,
		FailoverTimeoutMs: a.Sentinel.FailoverTimeoutMs,
	})
}

// refs are the names the pod spec refers to; outputs, so that the pods wait for the objects they use.
type refs struct {
	serviceAccount, headless, secret, configMap pulumi.StringOutput
	headlessFQDN, statefulSet, configChecksum   string
	// secretChecksum (secret) rolls the pods when a password changes.
	secretChecksum pulumi.StringOutput
}

func statefulSetSpec(a *Args, selector, labels map[string]string, r refs) appsv1.StatefulSetSpecArgs {
	env := corev1.EnvVarArray{
		kube.SecretEnv("REDISCLI_AUTH", r.secret, InternalPasswordKey), // redis-cli reads it, so no password on a command line
		kube.Env("MASTER_NAME", a.Sentinel.MasterName),
	}
	initEnv := append(corev1.EnvVarArray{
		kube.FieldEnv("POD_NAME", "metadata.name"),
		kube.Env("HEADLESS", r.headlessFQDN),
		kube.Env("STATEFULSET", r.statefulSet),
		kube.Env("REPLICAS", strconv.Itoa(a.Replicas)),
		// The clients' passwords only go into the rendered configs.
		kube.SecretEnv("REDIS_CLIENT_PASSWORD", r.secret, PasswordKey),
		kube.SecretEnv("REDIS_PREVIOUS_CLIENT_PASSWORD", r.secret, PreviousPasswordKey),
	}, env...)
	mount := func(volume, path string, readOnly bool) corev1.VolumeMountArgs {
		return corev1.VolumeMountArgs{Name: pulumi.String(volume), MountPath: pulumi.String(path), ReadOnly: pulumi.Bool(readOnly)}
	}
	exec := func(args ...string) corev1.ExecActionArgs {
		return corev1.ExecActionArgs{Command: pulumi.ToStringArray(args)}
	}
	probe := func(check string, initialDelay, period, failures int) corev1.ProbeArgs {
		return corev1.ProbeArgs{
			Exec:                exec("sh", "/scripts/probe.sh", check),
			InitialDelaySeconds: pulumi.Int(initialDelay),
			PeriodSeconds:       pulumi.Int(period),
			TimeoutSeconds:      pulumi.Int(5),
			FailureThreshold:    pulumi.Int(failures),
		}
	}
	sc := kube.ContainerSecurityContext(imageUser)
	containers := corev1.ContainerArray{redisContainer(a, env, probe, exec, mount, sc), sentinelContainer(a, env, probe, exec, mount, sc)}
	if a.Metrics != nil {
		containers = append(containers, corev1.ContainerArgs{
			Name:  pulumi.String("exporter"),
			Image: pulumi.String(a.ExporterImage),
			Env: corev1.EnvVarArray{
				kube.Env("REDIS_ADDR", fmt.Sprintf("redis://localhost:%d", RedisPort)),
				// From the Secret by reference: the password never reaches the pod spec or a command line.
				kube.SecretEnv("REDIS_PASSWORD", r.secret, PasswordKey),
				kube.Env("REDIS_EXPORTER_WEB_LISTEN_ADDRESS", fmt.Sprintf(":%d", ExporterPort)),
			},
			Ports:           corev1.ContainerPortArray{corev1.ContainerPortArgs{Name: pulumi.String(ExporterPortName), ContainerPort: pulumi.Int(ExporterPort)}},
			SecurityContext: sc,
			Resources:       kube.Resources("50m", "64Mi"),
		})
	}
	return appsv1.StatefulSetSpecArgs{
		Replicas:    pulumi.Int(a.Replicas),
		ServiceName: r.headless,
		Selector:    kube.Selector(selector),
		// All pods start together: each one's init decides its role, and a full restart must not wait on pod 0.
		PodManagementPolicy: pulumi.String("Parallel"),
		UpdateStrategy:      appsv1.StatefulSetUpdateStrategyArgs{Type: pulumi.String("RollingUpdate")},
		PersistentVolumeClaimRetentionPolicy: appsv1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs{
			WhenDeleted: pulumi.String("Retain"),
			WhenScaled:  pulumi.String("Retain"),
		},
		Template: corev1.PodTemplateSpecArgs{
			Metadata: metav1.ObjectMetaArgs{
				Labels: pulumi.ToStringMap(labels),
				Annotations: pulumi.StringMap{
					ConfigChecksumAnnotation:      pulumi.String(r.configChecksum),
					kube.SecretChecksumAnnotation: r.secretChecksum,
				},
			},
			Spec: corev1.PodSpecArgs{
				ServiceAccountName:            r.serviceAccount,
				AutomountServiceAccountToken:  pulumi.Bool(false),
				EnableServiceLinks:            pulumi.Bool(false),
				SecurityContext:               kube.PodSecurityContext(imageUser),
				TerminationGracePeriodSeconds: pulumi.Int(40),
				NodeSelector:                  pulumi.ToStringMap(a.Placement.NodeSelector),
				Tolerations:                   a.Placement.TolerationArray(),
				Affinity:                      kube.HostnameAntiAffinity(selector),
				TopologySpreadConstraints:     kube.ZoneSpread(selector),
				InitContainers: corev1.ContainerArray{corev1.ContainerArgs{
					Name:            pulumi.String("config"),
					Image:           pulumi.String(a.Image),
					Command:         pulumi.ToStringArray([]string{"sh", "/scripts/init.sh"}),
					Env:             initEnv,
					SecurityContext: sc,
					Resources:       kube.Resources("100m", "64Mi"),
					VolumeMounts: corev1.VolumeMountArray{
						mount("scripts", "/scripts", true), mount("conf", "/conf", false), mount("data", "/data", false),
					},
				}},
				Containers: containers,
				Volumes: corev1.VolumeArray{
					corev1.VolumeArgs{
						Name: pulumi.String("scripts"),
						ConfigMap: corev1.ConfigMapVolumeSourceArgs{
							Name: r.configMap, DefaultMode: pulumi.Int(0o444),
						},
					},
					// The rendered redis.conf holds the password: in memory only.
					kube.EmptyDir("conf", "16Mi", true),
					kube.EmptyDir("tmp", "64Mi", false),
				},
			},
		},
		VolumeClaimTemplates: corev1.PersistentVolumeClaimTypeArray{
			kube.VolumeClaim("data", a.StorageClass, a.Size.StorageGB, selector),
		},
	}
}

func redisContainer(a *Args, env corev1.EnvVarArray, probe func(string, int, int, int) corev1.ProbeArgs,
	exec func(...string) corev1.ExecActionArgs, mount func(string, string, bool) corev1.VolumeMountArgs,
	sc corev1.SecurityContextArgs) corev1.ContainerArgs {
	return corev1.ContainerArgs{
		Name:            pulumi.String("redis"),
		Image:           pulumi.String(a.Image),
		Command:         pulumi.ToStringArray([]string{"redis-server", "/conf/redis.conf"}),
		Ports:           corev1.ContainerPortArray{corev1.ContainerPortArgs{Name: pulumi.String("redis"), ContainerPort: pulumi.Int(RedisPort)}},
		Env:             env,
		SecurityContext: sc,
		Resources:       kube.Resources(a.Size.CPU, a.Size.Memory),
		ReadinessProbe:  probe("ready", 5, 5, 3),
		LivenessProbe:   probe("live", 30, 10, 6),
		Lifecycle: corev1.LifecycleArgs{
			PreStop: corev1.LifecycleHandlerArgs{Exec: exec("sh", "/scripts/prestop.sh", "redis")},
		},
		VolumeMounts: corev1.VolumeMountArray{
			mount("scripts", "/scripts", true), mount("conf", "/conf", false), mount("data", "/data", false),
			mount("tmp", "/tmp", false),
		},
	}
}

func sentinelContainer(a *Args, env corev1.EnvVarArray, probe func(string, int, int, int) corev1.ProbeArgs,
	exec func(...string) corev1.ExecActionArgs, mount func(string, string, bool) corev1.VolumeMountArgs,
	sc corev1.SecurityContextArgs) corev1.ContainerArgs {
	return corev1.ContainerArgs{
		Name:            pulumi.String("sentinel"),
		Image:           pulumi.String(a.Image),
		Command:         pulumi.ToStringArray([]string{"redis-sentinel", "/data/sentinel/sentinel.conf"}),
		Ports:           corev1.ContainerPortArray{corev1.ContainerPortArgs{Name: pulumi.String("sentinel"), ContainerPort: pulumi.Int(SentinelPort)}},
		Env:             env,
		SecurityContext: sc,
		Resources:       kube.Resources(sentinelCPU, sentinelMemory),
		ReadinessProbe:  probe("sentinel", 5, 5, 3),
		LivenessProbe:   probe("sentinel", 30, 10, 6),
		Lifecycle: corev1.LifecycleArgs{
			PreStop: corev1.LifecycleHandlerArgs{Exec: exec("sh", "/scripts/prestop.sh", "sentinel")},
		},
		VolumeMounts: corev1.VolumeMountArray{
			mount("scripts", "/scripts", true), mount("data", "/data", false), mount("tmp", "/tmp", false),
		},
	}
}
