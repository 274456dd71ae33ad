// Package rabbitmq declares a RabbitMQ cluster on GKE: a StatefulSet whose nodes find each other through the
// Kubernetes peer discovery plugin, spread over zones and nodes, on SSD volumes, with quorum queues by default,
// pause_minority partition handling, a generated Erlang cookie and generated admin and application credentials, a
// PodDisruptionBudget and a NetworkPolicy that admits AMQP only from the runtime's pods.
package rabbitmq

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/omscloud/omscloud/components/internal/child"
	"slices"
	"strings"

	"github.com/omscloud/omscloud/components/internal/kube"
	"github.com/omscloud/omscloud/components/internal/rotate"
	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	rbacv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/rbac/v1"
	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Ports.
const (
	AMQPPort       = 5672
	MetricsPort    = 15692
	ManagementPort = 15672
	EPMDPort       = 4369
	// DistPort is Erlang distribution (inter-node traffic): 20000 + AMQPPort.
	DistPort = 25672
)

// AppUsers are the application's users, one per password slot (internal/rotate): a client keeps the previous slot's
// user and password, untouched by a rotation, until it restarts with the current one. The first is the user there
// once was alone.
var AppUsers = [2]string{"oms", "oms-alt"}

// Users and the keys of the auth Secret.
const (
	AdminUser        = "admin"
	CookieKey        = "erlang-cookie"
	AdminPasswordKey = "admin-password"
	AppPasswordKey   = "app-password"
	// URLKey holds the application's AMQP URL, for the runtime to read with a secretKeyRef.
	URLKey         = "amqp-url"
	DefinitionsKey = "definitions.json"
)

// ConfigChecksumAnnotation on the pod template changes with the ConfigMap, so a config change rolls the pods.
const ConfigChecksumAnnotation = "omscloud.io/config-checksum"

const (
	// minDiskFreeGB is the smallest free-disk alarm threshold.
	minDiskFreeGB = 2
	// terminationGraceSeconds leaves time for quorum queues to regain their quorum elsewhere before a node stops.
	terminationGraceSeconds = 300
)

// RabbitMQ is the component.
type RabbitMQ struct {
	pulumi.ResourceState

	// AmqpURL is the current application user's URL, amqp://<user>:<password>@<service>.<namespace>.svc:5672/
	// (secret). It resolves only once the StatefulSet has rolled, i.e. the brokers have imported that user's password.
	AmqpURL pulumi.StringOutput `pulumi:"amqpUrl"`
	// URLSecret names the Secret and key that hold AmqpURL.
	URLSecret SecretKey
	// ServiceName is the client Service (AMQP and metrics).
	ServiceName pulumi.StringOutput `pulumi:"serviceName"`
	// StatefulSetName is the StatefulSet's name.
	StatefulSetName pulumi.StringOutput `pulumi:"statefulSetName"`
}

// SecretKey locates a value in a Kubernetes Secret.
type SecretKey = kube.SecretKey

type names struct {
	base, headless, auth, config, peerDiscovery string
}

func newNames(a *Args) names {
	base := a.Name + "-rabbitmq"
	return names{base: base, headless: base + "-nodes", auth: base + "-auth", config: base + "-config", peerDiscovery: base + "-peer-discovery"}
}

const appName, component = "rabbitmq", "broker"

// PodSelector are the labels of the RabbitMQ pods of the cluster named name (Args.Name).
func PodSelector(name string) map[string]string {
	sel, _ := kube.Labels(appName, name, component, nil)
	return sel
}

// MetricsPortName is the container port of the prometheus plugin.
const MetricsPortName = "prometheus"

// New declares the cluster. Pass the cluster's Kubernetes provider with pulumi.Provider; explicit dependencies of the
// component (pulumi.DependsOn, e.g. on the namespace) are passed on to every object.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*RabbitMQ, error) {
	if args == nil {
		return nil, fmt.Errorf("rabbitmq: Args are required")
	}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	a := args.withDefaults()
	c := &RabbitMQ{}
	if err := ctx.RegisterComponentResource("omscloud:rabbitmq:RabbitMQ", name, c, opts...); err != nil {
		return nil, err
	}
	child, err := child.Options(c, opts)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: %w", err)
	}
	n := newNames(&a)
	selector, labels := kube.Labels(appName, a.Name, component, a.Labels)
	meta := func(objectName string) metav1.ObjectMetaArgs { return kube.Meta(objectName, a.Namespace, labels) }

	// Alphanumeric secrets need no escaping in URLs or files.
	secretOf := func(suffix string, length int) (pulumi.StringOutput, error) {
		p, err := random.NewRandomPassword(ctx, name+"-"+suffix, &random.RandomPasswordArgs{
			Length: pulumi.Int(length), Special: pulumi.Bool(false),
		}, child...)
		if err != nil {
			return pulumi.StringOutput{}, fmt.Errorf("rabbitmq: %s: %w", suffix, err)
		}
		return pulumi.ToSecret(p.Result).(pulumi.StringOutput), nil
	}
	cookie, err := secretOf("erlang-cookie", 64)
	if err != nil {
		return nil, err
	}
	adminPw, err := secretOf("admin-password", 32)
	if err != nil {
		return nil, err
	}
	app, err := rotate.Passwords(ctx, name+"-app-password", a.PasswordRotation,
		random.RandomPasswordArgs{Length: pulumi.Int(32), Special: pulumi.Bool(false)}, child...)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: app password: %w", err)
	}
	checksumKey, err := secretOf("checksum-key", 32)
	if err != nil {
		return nil, err
	}
	appUser := AppUsers[app.CurrentSlot]
	slots := [2]pulumi.StringOutput{}
	slots[app.CurrentSlot], slots[1-app.CurrentSlot] = app.Current, app.Previous
	service := n.base
	url := pulumi.ToSecret(pulumi.Sprintf("amqp://%s:%s@%s.%s.svc:%d/", appUser, app.Current, service, a.Namespace, AMQPPort)).(pulumi.StringOutput)
	definitions := pulumi.ToSecret(pulumi.All(adminPw, slots[0], slots[1]).ApplyT(func(v []any) (string, error) {
		return Definitions(v[0].(string), [2]string{v[1].(string), v[2].(string)})
	})).(pulumi.StringOutput)
	secret, err := corev1.NewSecret(ctx, name+"-auth", &corev1.SecretArgs{
		Metadata: meta(n.auth),
		Type:     pulumi.String("Opaque"),
		StringData: pulumi.StringMap{
			CookieKey:        cookie,
			"admin-username": pulumi.String(AdminUser),
			AdminPasswordKey: adminPw,
			"app-username":   pulumi.String(appUser),
			AppPasswordKey:   app.Current,
			URLKey:           url,
			DefinitionsKey:   definitions,
		},
	}, child...)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: secret: %w", err)
	}

	files, err := configFiles(&a, n)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: %w", err)
	}
	cm, err := corev1.NewConfigMap(ctx, name+"-config", &corev1.ConfigMapArgs{
		Metadata: meta(n.config),
		Data:     pulumi.ToStringMap(files),
	}, child...)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: config map: %w", err)
	}

	sa, err := corev1.NewServiceAccount(ctx, name, &corev1.ServiceAccountArgs{Metadata: meta(n.base)}, child...)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: service account: %w", err)
	}
	// Peer discovery reads the Endpoints of the headless Service, and nothing else.
	role, err := rbacv1.NewRole(ctx, name+"-peer-discovery", &rbacv1.RoleArgs{
		Metadata: meta(n.peerDiscovery),
		Rules: rbacv1.PolicyRuleArray{
			rbacv1.PolicyRuleArgs{
				ApiGroups:     pulumi.StringArray{pulumi.String("")},
				Resources:     pulumi.StringArray{pulumi.String("endpoints")},
				ResourceNames: pulumi.StringArray{pulumi.String(n.headless)},
				Verbs:         pulumi.StringArray{pulumi.String("get"), pulumi.String("list")},
			},
			// The plugin reports cluster formation as events; it works without, but then says so in every boot log.
			rbacv1.PolicyRuleArgs{
				ApiGroups: pulumi.StringArray{pulumi.String("")},
				Resources: pulumi.StringArray{pulumi.String("events")},
				Verbs:     pulumi.StringArray{pulumi.String("create")},
			},
		},
	}, child...)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: role: %w", err)
	}
	if _, err := rbacv1.NewRoleBinding(ctx, name+"-peer-discovery", &rbacv1.RoleBindingArgs{
		Metadata: meta(n.peerDiscovery),
		RoleRef: rbacv1.RoleRefArgs{
			ApiGroup: pulumi.String("rbac.authorization.k8s.io"), Kind: pulumi.String("Role"), Name: role.Metadata.Name().Elem(),
		},
		Subjects: rbacv1.SubjectArray{rbacv1.SubjectArgs{
			Kind: pulumi.String("ServiceAccount"), Name: sa.Metadata.Name().Elem(), Namespace: pulumi.String(a.Namespace),
		}},
	}, child...); err != nil {
		return nil, fmt.Errorf("rabbitmq: role binding: %w", err)
	}

	port := func(name string, n int) corev1.ServicePortArgs {
		return corev1.ServicePortArgs{Name: pulumi.String(name), Port: pulumi.Int(n), TargetPort: pulumi.String(name)}
	}
	headless, err := corev1.NewService(ctx, name+"-nodes", &corev1.ServiceArgs{
		Metadata: meta(n.headless),
		Spec: corev1.ServiceSpecArgs{
			ClusterIP: pulumi.String("None"),
			// Nodes must find each other while forming the cluster, before they are ready.
			PublishNotReadyAddresses: pulumi.Bool(true),
			Selector:                 pulumi.ToStringMap(selector),
			Ports:                    corev1.ServicePortArray{port("epmd", EPMDPort), port("cluster-links", DistPort), port("amqp", AMQPPort)},
		},
	}, child...)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: headless service: %w", err)
	}
	client, err := corev1.NewService(ctx, name, &corev1.ServiceArgs{
		Metadata: meta(service),
		Spec: corev1.ServiceSpecArgs{
			Type:     pulumi.String("ClusterIP"),
			Selector: pulumi.ToStringMap(selector),
			Ports:    corev1.ServicePortArray{port("amqp", AMQPPort), port("prometheus", MetricsPort)},
		},
	}, child...)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: service: %w", err)
	}

	sts, err := appsv1.NewStatefulSet(ctx, name, &appsv1.StatefulSetArgs{
		Metadata: meta(n.base),
		Spec: statefulSetSpec(&a, selector, labels, refs{
			serviceAccount: sa.Metadata.Name().Elem(),
			headless:       headless.Metadata.Name().Elem(),
			secret:         secret.Metadata.Name().Elem(),
			configMap:      cm.Metadata.Name().Elem(),
			headlessFQDN:   kube.ServiceFQDN(n.headless, a.Namespace),
			configChecksum: kube.Checksum(files),
			// The users come from the definitions file, which a node imports as it boots: a new password needs a
			// roll. The Erlang cookie is left out: nodes with different cookies cannot cluster, so a rolling restart
			// cannot change it (README).
			secretChecksum: kube.SecretChecksum(checksumKey, pulumi.StringMap{DefinitionsKey: definitions}),
		}),
	}, slices.Concat(child, kube.StatefulSetOptions(a.DeletionProtection))...)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: statefulset: %w", err)
	}
	if err := kube.ExpandClaims(ctx, name, "data", n.base, a.Namespace, a.Replicas, a.Size.StorageGB, sts, child...); err != nil {
		return nil, fmt.Errorf("rabbitmq: volume claims: %w", err)
	}

	if _, err := kube.NewPDB(ctx, name, meta(n.base), selector, child...); err != nil {
		return nil, fmt.Errorf("rabbitmq: pod disruption budget: %w", err)
	}
	ingress := networkingv1.NetworkPolicyIngressRuleArray{
		networkingv1.NetworkPolicyIngressRuleArgs{
			From:  networkingv1.NetworkPolicyPeerArray{kube.PodPeer(a.ClientSelector)},
			Ports: networkingv1.NetworkPolicyPortArray{kube.Port(AMQPPort)},
		},
		// Clustering (epmd, Erlang distribution) only between the RabbitMQ nodes.
		networkingv1.NetworkPolicyIngressRuleArgs{
			From:  networkingv1.NetworkPolicyPeerArray{kube.PodPeer(selector)},
			Ports: networkingv1.NetworkPolicyPortArray{kube.Port(EPMDPort), kube.Port(DistPort)},
		},
	}
	if m := a.Metrics; m != nil {
		ingress = append(ingress, networkingv1.NetworkPolicyIngressRuleArgs{
			From: networkingv1.NetworkPolicyPeerArray{networkingv1.NetworkPolicyPeerArgs{
				NamespaceSelector: kube.Selector(m.NamespaceLabels),
				PodSelector:       kube.Selector(m.PodLabels),
			}},
			Ports: networkingv1.NetworkPolicyPortArray{kube.Port(MetricsPort)},
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
		return nil, fmt.Errorf("rabbitmq: network policy: %w", err)
	}

	// Known once the provider has awaited the StatefulSet's rollout: every node has then imported the new user.
	c.AmqpURL = pulumi.ToSecret(pulumi.All(sts.Status, url).ApplyT(func(v []any) string { return v[1].(string) })).(pulumi.StringOutput)
	c.URLSecret = SecretKey{Name: secret.Metadata.Name().Elem(), Key: URLKey}
	c.ServiceName = client.Metadata.Name().Elem()
	c.StatefulSetName = sts.Metadata.Name().Elem()
	return c, ctx.RegisterResourceOutputs(c, pulumi.Map{
		"amqpUrl":         c.AmqpURL,
		"urlSecretName":   c.URLSecret.Name,
		"urlSecretKey":    pulumi.String(URLKey),
		"serviceName":     c.ServiceName,
		"statefulSetName": c.StatefulSetName,
	})
}

// configFiles are rabbitmq.conf and enabled_plugins; no credential is in them (users come from the definitions file
// in the Secret, the cookie from the Secret).
func configFiles(a *Args, n names) (map[string]string, error) {
	mem, err := kube.MemoryBytes(a.Size.Memory)
	if err != nil {
		return nil, err
	}
	diskFree := max(int64(minDiskFreeGB)<<30, int64(a.Size.StorageGB)<<30/10)
	conf := strings.Join([]string{
		"# Cluster formation: nodes find each other through the Endpoints of the headless Service.",
		"cluster_formation.peer_discovery_backend = k8s",
		"cluster_formation.k8s.address_type = hostname",
		"cluster_formation.k8s.service_name = " + n.headless,
		"cluster_formation.k8s.hostname_suffix = ." + kube.ServiceFQDN(n.headless, a.Namespace),
		fmt.Sprintf("cluster_formation.target_cluster_size_hint = %d", a.Replicas),
		// A node that leaves is not removed automatically: a rescheduled pod comes back with its volume.
		"cluster_formation.node_cleanup.only_log_warning = true",
		"# A minority side of a partition pauses instead of diverging.",
		"cluster_partition_handling = pause_minority",
		// Quorum by default comes from the vhost (definitions below), not from the global default_queue_type: that key
		// exists only from 3.13 (rabbitmq-server#11164) and an older broker refuses to boot on it, while every
		// version imports the vhost's default. The runtime also declares its queues as quorum itself.
		"# Queue leaders spread over the nodes.",
		"queue_leader_locator = balanced",
		"# Memory and disk alarms sized to the container, not to the node.",
		fmt.Sprintf("total_memory_available_override_value = %d", mem),
		"vm_memory_high_watermark.relative = 0.6",
		fmt.Sprintf("disk_free_limit.absolute = %d", diskFree),
		"# Users, vhost and permissions come from the Secret.",
		"definitions.import_backend = local_filesystem",
		"definitions.local.path = /etc/rabbitmq-definitions/" + DefinitionsKey,
		"loopback_users.guest = true",
		fmt.Sprintf("listeners.tcp.default = %d", AMQPPort),
		fmt.Sprintf("management.tcp.port = %d", ManagementPort),
		fmt.Sprintf("prometheus.tcp.port = %d", MetricsPort),
		"log.console = true",
		"log.console.level = info",
		"log.file = false",
		"",
	}, "\n")
	return map[string]string{
		"rabbitmq.conf":   conf,
		"enabled_plugins": "[rabbitmq_peer_discovery_k8s,rabbitmq_prometheus,rabbitmq_management].\n",
	}, nil
}

// Definitions renders the users (the administrator and AppUsers with their slots' passwords), vhost and permissions
// RabbitMQ imports at boot. Passwords are stored as RabbitMQ's salted SHA-256 hashes; the salt is derived from user
// and password so the file is stable between deployments.
func Definitions(adminPassword string, appPasswords [2]string) (string, error) {
	type user struct {
		Name         string   `json:"name"`
		PasswordHash string   `json:"password_hash"`
		Algorithm    string   `json:"hashing_algorithm"`
		Tags         []string `json:"tags"`
	}
	type permission struct {
		User      string `json:"user"`
		Vhost     string `json:"vhost"`
		Configure string `json:"configure"`
		Write     string `json:"write"`
		Read      string `json:"read"`
	}
	all := func(u string) permission {
		return permission{User: u, Vhost: "/", Configure: ".*", Write: ".*", Read: ".*"}
	}
	defs := map[string]any{
		"users": []user{
			{Name: AdminUser, PasswordHash: PasswordHash(AdminUser, adminPassword), Algorithm: "rabbit_password_hashing_sha256", Tags: []string{"administrator"}},
			{Name: AppUsers[0], PasswordHash: PasswordHash(AppUsers[0], appPasswords[0]), Algorithm: "rabbit_password_hashing_sha256", Tags: []string{}},
			{Name: AppUsers[1], PasswordHash: PasswordHash(AppUsers[1], appPasswords[1]), Algorithm: "rabbit_password_hashing_sha256", Tags: []string{}},
		},
		// The vhost's default queue type: quorum for every queue declared without a type (the 3.13 export carries it
		// both at the top level and in metadata; the importer reads the form it knows).
		"vhosts": []map[string]any{{
			"name": "/", "default_queue_type": "quorum", "metadata": map[string]string{"default_queue_type": "quorum"},
		}},
		"permissions": []permission{all(AdminUser), all(AppUsers[0]), all(AppUsers[1])},
	}
	b, err := json.Marshal(defs)
	if err != nil {
		return "", fmt.Errorf("definitions: %w", err)
	}
	return string(b), nil
}

// PasswordHash is RabbitMQ's rabbit_password_hashing_sha256 format: base64(salt ‖ sha256(salt ‖ password)) with a
// 4-byte salt.
func PasswordHash(user, password string) string {
	seed := sha256.Sum256([]byte("omscloud-rabbitmq\x00" + user + "\x00" + password))
	salt := seed[:4]
	sum := sha256.Sum256(append(append([]byte{}, salt...), password...))
	return base64.StdEncoding.EncodeToString(append(append([]byte{}, salt...), sum[:]...))
}

type refs struct {
	serviceAccount, headless, secret, configMap pulumi.StringOutput
	headlessFQDN, configChecksum                string
	// secretChecksum (secret) rolls the pods when the definitions change.
	secretChecksum pulumi.StringOutput
}

func statefulSetSpec(a *Args, selector, labels map[string]string, r refs) appsv1.StatefulSetSpecArgs {
	mount := func(volume, path string, readOnly bool) corev1.VolumeMountArgs {
		return corev1.VolumeMountArgs{Name: pulumi.String(volume), MountPath: pulumi.String(path), ReadOnly: pulumi.Bool(readOnly)}
	}
	exec := func(args ...string) corev1.ExecActionArgs {
		return corev1.ExecActionArgs{Command: pulumi.ToStringArray(args)}
	}
	amqp := corev1.TCPSocketActionArgs{Port: pulumi.String("amqp")}
	sc := kube.ContainerSecurityContext(imageUser)
	secretVolume := func(volume, key string) corev1.VolumeArgs {
		return corev1.VolumeArgs{
			Name: pulumi.String(volume),
			Secret: corev1.SecretVolumeSourceArgs{
				SecretName:  r.secret,
				Items:       corev1.KeyToPathArray{corev1.KeyToPathArgs{Key: pulumi.String(key), Path: pulumi.String(key)}},
				DefaultMode: pulumi.Int(0o440),
			},
		}
	}
	containerPort := func(name string, n int) corev1.ContainerPortArgs {
		return corev1.ContainerPortArgs{Name: pulumi.String(name), ContainerPort: pulumi.Int(n)}
	}
	return appsv1.StatefulSetSpecArgs{
		Replicas:    pulumi.Int(a.Replicas),
		ServiceName: r.headless,
		Selector:    kube.Selector(selector),
		// Nodes form the cluster together; a full restart must not wait for the node that stopped last.
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
				ServiceAccountName: r.serviceAccount,
				// Peer discovery calls the Kubernetes API with this token.
				AutomountServiceAccountToken:  pulumi.Bool(true),
				EnableServiceLinks:            pulumi.Bool(false),
				SecurityContext:               kube.PodSecurityContext(imageUser),
				TerminationGracePeriodSeconds: pulumi.Int(terminationGraceSeconds),
				NodeSelector:                  pulumi.ToStringMap(a.Placement.NodeSelector),
				Tolerations:                   a.Placement.TolerationArray(),
				Affinity:                      kube.HostnameAntiAffinity(selector),
				TopologySpreadConstraints:     kube.ZoneSpread(selector),
				InitContainers: corev1.ContainerArray{corev1.ContainerArgs{
					Name:  pulumi.String("erlang-cookie"),
					Image: pulumi.String(a.Image),
					// Erlang accepts a cookie file only if its owner alone can read it, which a Secret volume cannot
					// guarantee: copy it into the home directory with mode 0600.
					Command: pulumi.ToStringArray([]string{"sh", "-c",
						"cp /cookie/" + CookieKey + " /var/lib/rabbitmq/.erlang.cookie && chmod 600 /var/lib/rabbitmq/.erlang.cookie"}),
					SecurityContext: sc,
					Resources:       kube.Resources("50m", "64Mi"),
					VolumeMounts:    corev1.VolumeMountArray{mount("cookie", "/cookie", true), mount("home", "/var/lib/rabbitmq", false)},
				}},
				Containers: corev1.ContainerArray{corev1.ContainerArgs{
					Name:  pulumi.String("rabbitmq"),
					Image: pulumi.String(a.Image),
					Ports: corev1.ContainerPortArray{
						containerPort("amqp", AMQPPort), containerPort("epmd", EPMDPort), containerPort("cluster-links", DistPort),
						containerPort(MetricsPortName, MetricsPort), containerPort("management", ManagementPort),
					},
					Env: corev1.EnvVarArray{
						kube.FieldEnv("POD_NAME", "metadata.name"),
						kube.Env("RABBITMQ_USE_LONGNAME", "true"),
						// Stable node names (the pod's DNS name), so a rescheduled pod rejoins with its own data.
						kube.Env("RABBITMQ_NODENAME", "rabbit@$(POD_NAME)."+r.headlessFQDN),
						kube.Env("HOME", "/var/lib/rabbitmq"),
					},
					SecurityContext: sc,
					Resources:       kube.Resources(a.Size.CPU, a.Size.Memory),
					// Boot waits for peers and may sync quorum queues: up to 10 minutes before liveness applies.
					StartupProbe: corev1.ProbeArgs{
						TcpSocket: amqp, PeriodSeconds: pulumi.Int(10), TimeoutSeconds: pulumi.Int(5), FailureThreshold: pulumi.Int(60),
					},
					ReadinessProbe: corev1.ProbeArgs{
						TcpSocket: amqp, PeriodSeconds: pulumi.Int(10), TimeoutSeconds: pulumi.Int(5), FailureThreshold: pulumi.Int(3),
					},
					// The Erlang node answers even while pause_minority has stopped its listeners: a paused node
					// waits for the partition to heal instead of being restarted.
					LivenessProbe: corev1.ProbeArgs{
						Exec:          exec("rabbitmq-diagnostics", "-q", "ping"),
						PeriodSeconds: pulumi.Int(60), TimeoutSeconds: pulumi.Int(30), FailureThreshold: pulumi.Int(3),
					},
					Lifecycle: corev1.LifecycleArgs{
						// Stop only once every quorum queue keeps a majority without this node.
						PreStop: corev1.LifecycleHandlerArgs{Exec: exec("rabbitmq-upgrade", "await_online_quorum_plus_one",
							"-t", fmt.Sprint(terminationGraceSeconds-30))},
					},
					VolumeMounts: corev1.VolumeMountArray{
						mount("config", "/etc/rabbitmq", true),
						mount("definitions", "/etc/rabbitmq-definitions", true),
						mount("home", "/var/lib/rabbitmq", false),
						mount("data", "/var/lib/rabbitmq/mnesia", false),
						mount("logs", "/var/log/rabbitmq", false),
						mount("tmp", "/tmp", false),
					},
				}},
				Volumes: corev1.VolumeArray{
					corev1.VolumeArgs{
						Name:      pulumi.String("config"),
						ConfigMap: corev1.ConfigMapVolumeSourceArgs{Name: r.configMap, DefaultMode: pulumi.Int(0o444)},
					},
					secretVolume("definitions", DefinitionsKey),
					secretVolume("cookie", CookieKey),
					// Holds the copied cookie: in memory only.
					kube.EmptyDir("home", "16Mi", true),
					kube.EmptyDir("logs", "256Mi", false),
					kube.EmptyDir("tmp", "256Mi", false),
				},
			},
		},
		VolumeClaimTemplates: corev1.PersistentVolumeClaimTypeArray{
			kube.VolumeClaim("data", a.StorageClass, a.Size.StorageGB, selector),
		},
	}
}
