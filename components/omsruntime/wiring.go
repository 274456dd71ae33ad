package omsruntime

import (
	"fmt"
	"maps"
	"path"
	"strconv"

	"github.com/omscloud/omscloud/components/internal/kube"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Keys of the runtime's Secret, named as the runtime's environment variables.
const (
	EnvDatabaseURL   = "OMS_DATABASE_URL"
	EnvAdminToken    = "OMS_ADMIN_TOKEN"
	EnvAMQPURL       = "OMS_AMQP_URL"
	EnvRedisPassword = "OMS_REDIS_PASSWORD"
	// EnvRedisSentinelPassword authenticates to the sentinels, which require a password too.
	EnvRedisSentinelPassword = "OMS_REDIS_SENTINEL_PASSWORD"
)

// DatabaseCAFile is where every pod of the oms image finds the Cloud SQL server CA (OMS_DB_CA_FILE), from the
// ConfigMap Wiring.DatabaseCA.
const DatabaseCAFile = "/etc/oms/db-ca/" + dbCAKey

const (
	dbCAKey    = "server-ca.pem"
	dbCAVolume = "db-ca"
)

// AccountPasswordsDir is where the migrate Job finds one file per account id holding its database password.
const AccountPasswordsDir = "/var/run/oms/account-passwords"

// uid is the non-root user of the runtime's (distroless nonroot) image; the pods also run the smoke image as it.
const uid = 65532

// Wiring is what every pod running the oms image needs: the Workload Identity service account, the non-secret
// environment from the ConfigMap, secrets by key from the Secret, the restricted security context, a writable /tmp
// and the node pool. The web and worker Deployments and the migrate Job use it; the backup CronJobs and the DR
// restore Job reuse it (Runtime.Wiring) so they reach the same database with the same identity.
type Wiring struct {
	Namespace      string
	ServiceAccount pulumi.StringOutput
	ConfigMap      pulumi.StringOutput
	Secret         pulumi.StringOutput
	// DatabaseCA is the ConfigMap holding the database server's CA, mounted at DatabaseCAFile.
	DatabaseCA   pulumi.StringOutput
	NodeSelector map[string]string
	// GracePeriodSeconds is the pods' terminationGracePeriodSeconds.
	GracePeriodSeconds int
}

// Container runs `oms <args...>` from image with the ConfigMap's environment and exactly the Secret keys listed
// (each through a secretKeyRef, so no value appears in the pod spec).
func (w Wiring) Container(name, image string, args []string, secretKeys []string, res Resources) corev1.ContainerArgs {
	env := corev1.EnvVarArray{}
	for _, k := range secretKeys {
		env = append(env, kube.SecretEnv(k, w.Secret, k))
	}
	return corev1.ContainerArgs{
		Name:            pulumi.String(name),
		Image:           pulumi.String(image),
		ImagePullPolicy: pulumi.String("IfNotPresent"),
		Args:            pulumi.ToStringArray(args),
		EnvFrom: corev1.EnvFromSourceArray{corev1.EnvFromSourceArgs{
			ConfigMapRef: corev1.ConfigMapEnvSourceArgs{Name: w.ConfigMap},
		}},
		Env:             env,
		Resources:       res.args(),
		SecurityContext: kube.ContainerSecurityContext(uid),
		VolumeMounts: corev1.VolumeMountArray{
			corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")},
			corev1.VolumeMountArgs{Name: pulumi.String(dbCAVolume), MountPath: pulumi.String(path.Dir(DatabaseCAFile)), ReadOnly: pulumi.Bool(true)},
		},
	}
}

// PodSpec runs containers under the runtime's service account with the restricted pod security context on the
// runtime's node pool. restartPolicy is "Always" for Deployments and "Never" for Jobs.
func (w Wiring) PodSpec(restartPolicy string, containers ...corev1.ContainerInput) corev1.PodSpecArgs {
	return corev1.PodSpecArgs{
		ServiceAccountName:            w.ServiceAccount,
		AutomountServiceAccountToken:  pulumi.Bool(false),
		SecurityContext:               kube.PodSecurityContext(uid),
		NodeSelector:                  pulumi.ToStringMap(maps.Clone(w.NodeSelector)),
		TerminationGracePeriodSeconds: pulumi.Int(w.GracePeriodSeconds),
		RestartPolicy:                 pulumi.String(restartPolicy),
		Containers:                    corev1.ContainerArray(containers),
		Volumes: corev1.VolumeArray{
			kube.EmptyDir("tmp", "256Mi", false),
			corev1.VolumeArgs{Name: pulumi.String(dbCAVolume), ConfigMap: corev1.ConfigMapVolumeSourceArgs{Name: w.DatabaseCA}},
		},
	}
}

func (r Resources) args() corev1.ResourceRequirementsArgs {
	return corev1.ResourceRequirementsArgs{
		Requests: pulumi.StringMap{"cpu": pulumi.String(r.CPU), "memory": pulumi.String(r.Memory)},
		Limits:   pulumi.StringMap{"cpu": pulumi.String(r.CPULimit), "memory": pulumi.String(r.MemoryLimit)},
	}
}

// wire declares what every runtime pod reads — the admin token, the Secret of credentials, the ConfigMap of settings
// and the database CA — and the Wiring that hands them to the pods (r.Wiring).
func (d *deployer) wire(r *Runtime, id *identity, db *controlDB) error {
	a := d.a
	token, err := random.NewRandomPassword(d.ctx, d.name+"-admin-token", &random.RandomPasswordArgs{
		Length: pulumi.Int(48),
		// URL- and header-safe: it travels as a bearer token.
		Special: pulumi.Bool(false),
	}, d.opts()...)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	r.AdminToken = pulumi.ToSecret(token.Result).(pulumi.StringOutput)

	checksumKey, err := random.NewRandomPassword(d.ctx, d.name+"-checksum-key", &random.RandomPasswordArgs{Length: pulumi.Int(32)}, d.opts()...)
	if err != nil {
		return fmt.Errorf("checksum key: %w", err)
	}
	d.checksumKey = pulumi.ToSecret(checksumKey.Result).(pulumi.StringOutput)
	_, baseLabels := d.labels("runtime", "", "")
	d.secretData = pulumi.StringMap{
		EnvDatabaseURL:   db.url,
		EnvAdminToken:    r.AdminToken,
		EnvAMQPURL:       pulumi.ToSecret(a.AMQPURL).(pulumi.StringOutput),
		EnvRedisPassword: pulumi.ToSecret(a.Redis.Password).(pulumi.StringOutput),
		// The redis component gives its sentinels the clients' password; set explicitly so the pods show every
		// credential they use (the runtime would default to the Redis password).
		EnvRedisSentinelPassword: pulumi.ToSecret(a.Redis.Password).(pulumi.StringOutput),
	}
	secret, err := corev1.NewSecret(d.ctx, d.name+"-env", &corev1.SecretArgs{
		Metadata:   d.meta(a.Name+"-runtime", baseLabels),
		Type:       pulumi.String("Opaque"),
		StringData: d.secretData,
	}, d.opts()...)
	if err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	config := pulumi.StringMap{
		// Every interface: probes, Services and NEG endpoints reach the pod IP.
		"OMS_LISTEN": pulumi.String(fmt.Sprintf("0.0.0.0:%d", Port)),
		// serve's; the worker serves its metrics on OMS_LISTEN.
		"OMS_METRICS_LISTEN":     pulumi.String(fmt.Sprintf("0.0.0.0:%d", MetricsPort)),
		"OMS_LOG_LEVEL":          pulumi.String(a.LogLevel),
		"OMS_REDIS_SENTINELS":    a.Redis.SentinelAddress,
		"OMS_REDIS_MASTER":       a.Redis.MasterName,
		"OMS_SHUTDOWN_GRACE":     pulumi.String(fmt.Sprintf("%ds", a.ShutdownGraceSeconds)),
		"OMS_WORKER_CONCURRENCY": pulumi.String(strconv.Itoa(a.Worker.Concurrency)),
		"OMS_DB_CA_FILE":         pulumi.String(DatabaseCAFile),
	}
	if a.Database.AccountPrefix != "" {
		config["OMS_ACCOUNT_DB_PREFIX"] = pulumi.String(a.Database.AccountPrefix)
	}
	if a.BackupURL != "" {
		config["OMS_BACKUP_URL"] = pulumi.String(a.BackupURL)
	}
	cellsConfig, cellCAs := a.Database.cellsConfig()
	maps.Copy(config, cellsConfig)
	if err := d.accountPasswords(baseLabels); err != nil {
		return err
	}
	cm, err := corev1.NewConfigMap(d.ctx, d.name+"-config", &corev1.ConfigMapArgs{
		Metadata: d.meta(a.Name+"-runtime", baseLabels),
		Data:     config,
	}, d.opts()...)
	if err != nil {
		return fmt.Errorf("config map: %w", err)
	}
	// The CA gets a ConfigMap of its own (envFrom would turn its key into a variable). It counts in the checksum:
	// the runtime reads the file at start, so a new CA must restart the pods.
	cas := pulumi.StringMap{dbCAKey: a.Database.ServerCA}
	maps.Copy(cas, cellCAs)
	caMap, err := corev1.NewConfigMap(d.ctx, d.name+"-db-ca", &corev1.ConfigMapArgs{
		Metadata: d.meta(a.Name+"-db-ca", baseLabels),
		Data:     cas,
	}, d.opts()...)
	if err != nil {
		return fmt.Errorf("database CA config map: %w", err)
	}
	fingerprint := maps.Clone(cas)
	maps.Copy(fingerprint, config)
	d.checksum = fingerprint.ToStringMapOutput().ApplyT(func(m map[string]string) string { return kube.Checksum(m) }).(pulumi.StringOutput)
	d.w = Wiring{
		Namespace:          a.Namespace,
		ServiceAccount:     id.ksa,
		ConfigMap:          cm.Metadata.Name().Elem(),
		Secret:             secret.Metadata.Name().Elem(),
		DatabaseCA:         caMap.Metadata.Name().Elem(),
		NodeSelector:       a.NodeSelector,
		GracePeriodSeconds: a.GracePeriodSeconds,
	}
	r.Wiring = d.w
	return nil
}
