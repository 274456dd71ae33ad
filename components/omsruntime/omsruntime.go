// Package omsruntime deploys the OMS runtime on GKE: `oms serve` as two colors (blue and green), each with a
// Service of its own (NEG-backed behind the GCP load balancer), a public Service that selects the active one,
// `oms worker`, and `oms migrate` as a Job per release. Traffic moves to a color only after the migrate Job and a
// smoke-test Job against that color's Service have completed; the other color keeps running as the instant fallback. Pods run under a Workload Identity service
// account with the restricted security context, spread over zones, with probes, a preStop pause and a grace period
// that covers the runtime's drain, PodDisruptionBudgets, HPAs and NetworkPolicies.
package omsruntime

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"github.com/omscloud/omscloud/components/internal/child"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/omscloud/omscloud/components/internal/kube"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/secretmanager"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/serviceaccount"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp/sql"
	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	autoscalingv2 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/autoscaling/v2"
	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Labels the component sets.
const (
	// ColorLabel tells the blue and green web pods apart; Services select on it.
	ColorLabel   = "omscloud.io/color"
	VersionLabel = "app.kubernetes.io/version"
	// ConfigChecksumAnnotation on the pod templates changes with the ConfigMap, so a config change rolls the pods.
	ConfigChecksumAnnotation = "omscloud.io/config-checksum"
	// SecretChecksumAnnotation on the pod templates changes with the credentials the pods read, so a rotation rolls
	// them; Redis and RabbitMQ carry it too.
	SecretChecksumAnnotation = kube.SecretChecksumAnnotation
	appName                  = "oms"
)

//go:embed smoke.sh
var smokeScript string

// Runtime is the component.
type Runtime struct {
	pulumi.ResourceState

	// AdminToken is the generated bearer token of the account endpoints (secret).
	AdminToken pulumi.StringOutput `pulumi:"adminToken"`
	// ServiceAccountEmail is the runtime's GCP service account (Workload Identity).
	ServiceAccountEmail pulumi.StringOutput `pulumi:"serviceAccountEmail"`
	// PublicService selects the active color ("<Name>-web", port 80): cloudflared's origin.
	PublicService pulumi.StringOutput `pulumi:"publicService"`
	// ColorServices are the per-color Services ("blue", "green"): the smoke test's target and, in gcp mode, each
	// color's NEGs behind the load balancer.
	ColorServices map[string]pulumi.StringOutput
	// ColorServicesReady are ColorServices, each known only once the Service exists and the Kubernetes provider has
	// awaited it (its status is known): unknown in a preview that creates it. GKE creates a color's NEGs from its
	// Service, so the edge looks them up only then (edge.ColorBackend.ServiceReady).
	ColorServicesReady map[string]pulumi.StringOutput
	// ActiveColor is the color that takes traffic.
	ActiveColor string
	// ActiveColorReady is ActiveColor, known only once its smoke test completed and its HPA was raised: the load
	// balancer moves its capacity to the color only then (edge.BackendArgs.ActiveColor).
	ActiveColorReady pulumi.StringOutput
	// Wiring runs more pods of the oms image (backup CronJobs, the DR restore Job) like the runtime's own.
	Wiring Wiring
}

// ServiceName is the public Service's name (edge.ServiceName agrees).
func ServiceName(name string) string { return name + "-web" }

// ClientSelector are labels every runtime pod carries (web, worker, migrate): Redis' and RabbitMQ's NetworkPolicies
// admit them.
func ClientSelector(name string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": appName, "app.kubernetes.io/instance": name}
}

// WebSelector are the labels of the web pods of both colors (edge.Args.Backend.PodSelector).
func WebSelector(name string) map[string]string {
	sel, _ := kube.Labels(appName, name, "web", nil)
	return sel
}

// WorkerSelector are the labels of the worker pods (the metrics collection selects them).
func WorkerSelector(name string) map[string]string {
	sel, _ := kube.Labels(appName, name, "worker", nil)
	return sel
}

// New declares the runtime. Pass the Kubernetes provider with pulumi.Provider (or pulumi.Providers together with the
// GCP provider); the GCP resources use the GCP provider inherited from the parent. Explicit dependencies of the
// component (e.g. on the namespace) are passed on to every object.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Runtime, error) {
	if args == nil {
		return nil, fmt.Errorf("omsruntime: Args are required")
	}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	a := args.withDefaults()
	r := &Runtime{ActiveColor: a.ActiveColor, ColorServices: map[string]pulumi.StringOutput{},
		ColorServicesReady: map[string]pulumi.StringOutput{}}
	if err := ctx.RegisterComponentResource("omscloud:omsruntime:Runtime", name, r, opts...); err != nil {
		return nil, err
	}
	child, err := child.Options(r, opts)
	if err != nil {
		return nil, fmt.Errorf("omsruntime: %w", err)
	}
	d := &deployer{ctx: ctx, name: name, a: &a, child: child}
	if err := d.declare(r); err != nil {
		return nil, fmt.Errorf("omsruntime: %w", err)
	}
	return r, ctx.RegisterResourceOutputs(r, pulumi.Map{
		"adminToken":          r.AdminToken,
		"serviceAccountEmail": r.ServiceAccountEmail,
		"publicService":       r.PublicService,
		"activeColor":         pulumi.String(r.ActiveColor),
	})
}

// deployer holds what every declaration needs.
type deployer struct {
	ctx   *pulumi.Context
	name  string
	a     *Args
	child []pulumi.ResourceOption
	w     Wiring
	// checksum fingerprints the ConfigMap for the pod templates.
	checksum pulumi.StringOutput
	// secretData is the runtime Secret's data and checksumKey the key of its fingerprints (secretChecksum).
	secretData  pulumi.StringMap
	checksumKey pulumi.StringOutput
	// accountSecret names the Secret of the account databases' passwords, when there are accounts.
	accountSecret pulumi.StringOutput
}

func (d *deployer) opts(more ...pulumi.ResourceOption) []pulumi.ResourceOption {
	return append(slices.Clone(d.child), more...)
}

// labels returns the selector and the full labels of a component's pods; color is "" for colorless ones.
func (d *deployer) labels(component, color, image string) (selector, all map[string]string) {
	selector, all = kube.Labels(appName, d.a.Name, component, d.a.Labels)
	if color != "" {
		selector[ColorLabel] = color
		all[ColorLabel] = color
	}
	if image != "" {
		all[VersionLabel] = Version(image)
	}
	return selector, all
}

func (d *deployer) meta(objectName string, labels map[string]string) metav1.ObjectMetaArgs {
	return kube.Meta(objectName, d.a.Namespace, labels)
}

func (d *deployer) declare(r *Runtime) error {
	a := d.a
	id, err := d.identity()
	if err != nil {
		return err
	}
	r.ServiceAccountEmail = id.email

	db, err := d.controlDatabase()
	if err != nil {
		return err
	}
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
		"OMS_LISTEN":             pulumi.String(fmt.Sprintf("0.0.0.0:%d", Port)),
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
	caMap, err := corev1.NewConfigMap(d.ctx, d.name+"-db-ca", &corev1.ConfigMapArgs{
		Metadata: d.meta(a.Name+"-db-ca", baseLabels),
		Data:     pulumi.StringMap{dbCAKey: a.Database.ServerCA},
	}, d.opts()...)
	if err != nil {
		return fmt.Errorf("database CA config map: %w", err)
	}
	fingerprint := pulumi.StringMap{dbCAKey: a.Database.ServerCA}
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

	// One migrate Job per distinct release: a release migrates once, and switching colors never re-runs it.
	migrations := map[string]*batchv1.Job{}
	for _, color := range []string{Blue, Green} {
		img := a.imageOf(color)
		if migrations[img] != nil {
			continue
		}
		job, err := d.migrateJob(img, db.ready)
		if err != nil {
			return err
		}
		migrations[img] = job
	}
	allMigrations := make([]pulumi.Resource, 0, len(migrations))
	for _, img := range slices.Sorted(maps.Keys(migrations)) {
		allMigrations = append(allMigrations, migrations[img])
	}

	webs := map[string]*appsv1.Deployment{}
	for _, color := range []string{Blue, Green} {
		dep, preview, err := d.web(color, migrations[a.imageOf(color)])
		if err != nil {
			return err
		}
		webs[color] = dep
		r.ColorServices[color] = preview.Metadata.Name().Elem()
		r.ColorServicesReady[color] = pulumi.All(r.ColorServices[color], preview.Status).ApplyT(func(v []any) string { return v[0].(string) }).(pulumi.StringOutput)
	}

	active, idle := a.ActiveColor, a.idleColor()
	smoke, err := d.smokeJob(r.AdminToken, webs[active], migrations[a.imageOf(active)])
	if err != nil {
		return err
	}
	// The active color scales up to its minimum before traffic moves to it.
	activeHPA, err := d.webHPA(active, a.Web.MinReplicas)
	if err != nil {
		return err
	}
	public, err := d.publicService(append([]pulumi.Resource{smoke, activeHPA}, allMigrations...))
	if err != nil {
		return err
	}
	r.PublicService = public.Metadata.Name().Elem()
	r.ActiveColorReady = pulumi.All(smoke.Status, activeHPA.Status).ApplyT(func([]any) string { return active }).(pulumi.StringOutput)
	// The color left idle keeps its pods until its own HPA sheds them as its traffic drains away (scaleDownSlowly),
	// whichever edge moved the traffic and however long that took: nothing forces it down at the switch.
	if _, err := d.webHPA(idle, a.IdleReplicas); err != nil {
		return err
	}
	if err := d.worker(migrations[a.imageOf(active)], public); err != nil {
		return err
	}
	return d.networkPolicies()
}

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

// controlDB is the runtime's control database: its URL (secret) and what must exist before migrate runs.
type controlDB struct {
	url   pulumi.StringOutput
	ready []pulumi.Resource
}

// controlDatabase creates the control database and its login on the Cloud SQL instance. Cloud SQL makes the login a
// member of cloudsqlsuperuser, so it may create the accounts' roles and databases, as `oms account create` does.
func (d *deployer) controlDatabase() (*controlDB, error) {
	a := d.a
	// Customer data: never dropped by Pulumi in production, and abandoned rather than dropped if unprotected. The
	// password is no data: a rotation replaces it (its keepers change), and the user takes the new one in place.
	protect := pulumi.Protect(a.Production && !a.Teardown)
	pwArgs := &random.RandomPasswordArgs{
		Length: pulumi.Int(32),
		// Letters and digits: nothing to escape in a URL.
		Special: pulumi.Bool(false),
	}
	if a.Database.PasswordRotation > 0 {
		pwArgs.Keepers = pulumi.StringMap{"rotation": pulumi.String(strconv.Itoa(a.Database.PasswordRotation))}
	}
	pw, err := random.NewRandomPassword(d.ctx, d.name+"-db-password", pwArgs, d.opts()...)
	if err != nil {
		return nil, fmt.Errorf("database password: %w", err)
	}
	password := pulumi.ToSecret(pw.Result).(pulumi.StringOutput)
	user, err := sql.NewUser(d.ctx, d.name+"-db-user", &sql.UserArgs{
		Project:        pulumi.String(a.Project),
		Instance:       a.Database.Instance,
		Name:           pulumi.String(a.Database.Name),
		Type:           pulumi.String("BUILT_IN"),
		Password:       password,
		DeletionPolicy: pulumi.String("ABANDON"),
	}, d.opts(protect)...)
	if err != nil {
		return nil, fmt.Errorf("database user: %w", err)
	}
	db, err := sql.NewDatabase(d.ctx, d.name+"-db", &sql.DatabaseArgs{
		Project:        pulumi.String(a.Project),
		Instance:       a.Database.Instance,
		Name:           pulumi.String(a.Database.Name),
		Charset:        pulumi.String("UTF8"),
		Collation:      pulumi.String("en_US.UTF8"),
		DeletionPolicy: pulumi.String("ABANDON"),
	}, d.opts(protect, pulumi.DependsOn([]pulumi.Resource{user}))...)
	if err != nil {
		return nil, fmt.Errorf("control database: %w", err)
	}
	// The private IP of a REGIONAL instance moves with failover, so one host suffices; read-write makes a client
	// that lands on a read-only node during failover retry. Cloud SQL enforces TLS (ENCRYPTED_ONLY); verify-ca
	// checks the server against OMS_DB_CA_FILE (why not verify-full: runtime/postgres.VerifyServerCA).
	// Cloud SQL holds one password per user: the URL (and with it the pods' roll) follows the user's update, so the
	// new pods start with a password the server already accepts.
	url := pulumi.All(user.Name, password, a.Database.Host).ApplyT(func(v []any) string {
		return fmt.Sprintf("postgres://%s:%s@%s:5432/%s?sslmode=verify-ca&target_session_attrs=read-write",
			v[0].(string), v[1].(string), v[2].(string), a.Database.Name)
	}).(pulumi.StringOutput)
	return &controlDB{url: pulumi.ToSecret(url).(pulumi.StringOutput), ready: []pulumi.Resource{user, db}}, nil
}

// ImageHash is a short fingerprint of an image reference, for the names of per-release Jobs.
func ImageHash(image string) string {
	h := sha256.Sum256([]byte(image))
	return hex.EncodeToString(h[:4])
}

// Version is the app.kubernetes.io/version label of an image: its tag, else the start of its digest.
func Version(image string) string {
	ref, dgst, hasDigest := strings.Cut(image, "@sha256:")
	slash, colon := strings.LastIndex(ref, "/"), strings.LastIndex(ref, ":")
	if colon > slash {
		tag := strings.Trim(ref[colon+1:], "_.-")
		if tag != "" && len(tag) <= 63 {
			return tag
		}
	}
	if hasDigest && len(dgst) >= 12 {
		return "sha256-" + dgst[:12]
	}
	return "unversioned"
}

// accountPasswords keeps the provisioned account databases' passwords in a Secret of their own, mounted only into
// the migrate Job, which adopts the databases.
func (d *deployer) accountPasswords(labels map[string]string) error {
	if len(d.a.Database.Accounts) == 0 {
		return nil
	}
	data := pulumi.StringMap{}
	for id, pw := range d.a.Database.Accounts {
		data[id] = pulumi.ToSecret(pw).(pulumi.StringOutput)
	}
	s, err := corev1.NewSecret(d.ctx, d.name+"-account-passwords", &corev1.SecretArgs{
		Metadata:   d.meta(d.a.Name+"-account-passwords", labels),
		Type:       pulumi.String("Opaque"),
		StringData: data,
	}, d.opts()...)
	if err != nil {
		return fmt.Errorf("account passwords secret: %w", err)
	}
	d.accountSecret = s.Metadata.Name().Elem()
	return nil
}

func (d *deployer) migrateJob(image string, ready []pulumi.Resource) (*batchv1.Job, error) {
	a := d.a
	hash := ImageHash(image)
	_, labels := d.labels("migrate", "", image)
	args := []string{"migrate"}
	ids := slices.Sorted(maps.Keys(a.Database.Accounts))
	if len(ids) > 0 {
		args = append(args, "--accounts", strings.Join(ids, ","), "--account-passwords-dir", AccountPasswordsDir)
	}
	c := d.w.Container("migrate", image, args, []string{EnvDatabaseURL}, a.Worker.Resources)
	if len(ids) > 0 {
		c.VolumeMounts = append(c.VolumeMounts.(corev1.VolumeMountArray), corev1.VolumeMountArgs{
			Name: pulumi.String("account-passwords"), MountPath: pulumi.String(AccountPasswordsDir), ReadOnly: pulumi.Bool(true),
		})
	}
	spec := d.w.PodSpec("Never", c)
	if len(ids) > 0 {
		spec.Volumes = append(spec.Volumes.(corev1.VolumeArray), corev1.VolumeArgs{
			Name:   pulumi.String("account-passwords"),
			Secret: corev1.SecretVolumeSourceArgs{SecretName: d.accountSecret, DefaultMode: pulumi.Int(0o400)},
		})
	}
	job, err := batchv1.NewJob(d.ctx, d.name+"-migrate-"+hash, &batchv1.JobArgs{
		Metadata: d.meta(a.Name+"-migrate-"+hash, labels),
		Spec: batchv1.JobSpecArgs{
			// Migrations are idempotent (versioned, each in a transaction): retrying is safe.
			BackoffLimit:          pulumi.Int(2),
			ActiveDeadlineSeconds: pulumi.Int(1800),
			Template: corev1.PodTemplateSpecArgs{
				Metadata: kube.TemplateMeta(labels, nil),
				Spec:     spec,
			},
		},
	}, d.opts(pulumi.DependsOn(ready))...)
	if err != nil {
		return nil, fmt.Errorf("migrate job: %w", err)
	}
	return job, nil
}

func httpProbe(path string, period, timeout, failures int) corev1.ProbeArgs {
	return corev1.ProbeArgs{
		HttpGet:          corev1.HTTPGetActionArgs{Path: pulumi.String(path), Port: pulumi.String("http")},
		PeriodSeconds:    pulumi.Int(period),
		TimeoutSeconds:   pulumi.Int(timeout),
		FailureThreshold: pulumi.Int(failures),
	}
}

// serving completes a container that serves HTTP: the port, the probes and the preStop pause.
func (d *deployer) serving(c corev1.ContainerArgs) corev1.ContainerArgs {
	c.Ports = corev1.ContainerPortArray{corev1.ContainerPortArgs{
		Name: pulumi.String("http"), ContainerPort: pulumi.Int(Port), Protocol: pulumi.String("TCP"),
	}}
	// Up to 60 s to connect to the data tier before liveness applies.
	c.StartupProbe = httpProbe(HealthPath, 2, 2, 30)
	c.ReadinessProbe = httpProbe(ReadyPath, 5, 3, 2)
	c.LivenessProbe = httpProbe("/healthz", 10, 3, 3)
	// Kubernetes removes the endpoint and SIGTERMs concurrently: keep serving until kube-proxy and the NEG have
	// dropped the pod, then the runtime drains within ShutdownGraceSeconds.
	c.Lifecycle = corev1.LifecycleArgs{
		PreStop: corev1.LifecycleHandlerArgs{Sleep: corev1.SleepActionArgs{Seconds: pulumi.Int(d.a.PreStopSeconds)}},
	}
	return c
}

// placement spreads a workload's pods over zones (max skew 1) and prefers distinct nodes.
func placement(selector map[string]string, whenUnsatisfiable string) (corev1.TopologySpreadConstraintArray, corev1.AffinityArgs) {
	spread := corev1.TopologySpreadConstraintArray{corev1.TopologySpreadConstraintArgs{
		MaxSkew:           pulumi.Int(1),
		TopologyKey:       pulumi.String(kube.ZoneKey),
		WhenUnsatisfiable: pulumi.String(whenUnsatisfiable),
		LabelSelector:     kube.Selector(selector),
		// Count each rollout's pods on their own, so old pods being replaced do not block the new ones.
		MatchLabelKeys: pulumi.StringArray{pulumi.String("pod-template-hash")},
	}}
	affinity := corev1.AffinityArgs{PodAntiAffinity: corev1.PodAntiAffinityArgs{
		PreferredDuringSchedulingIgnoredDuringExecution: corev1.WeightedPodAffinityTermArray{corev1.WeightedPodAffinityTermArgs{
			Weight: pulumi.Int(100),
			PodAffinityTerm: corev1.PodAffinityTermArgs{
				LabelSelector: kube.Selector(selector),
				TopologyKey:   pulumi.String(kube.HostnameKey),
			},
		}},
	}}
	return spread, affinity
}

// secretChecksum fingerprints the Secret keys a workload reads (kube.SecretChecksum), so that a changed credential
// rolls exactly the workloads that use it.
func (d *deployer) secretChecksum(keys []string) pulumi.StringOutput {
	used := pulumi.StringMap{}
	for _, k := range keys {
		used[k] = d.secretData[k]
	}
	return kube.SecretChecksum(d.checksumKey, used)
}

// deployment declares a Deployment whose pods read secretKeys of the runtime Secret.
func (d *deployer) deployment(logical, objectName string, selector, labels map[string]string, pod corev1.PodSpecArgs,
	secretKeys []string, whenUnsatisfiable string, opts ...pulumi.ResourceOption) (*appsv1.Deployment, error) {
	pod.TopologySpreadConstraints, pod.Affinity = placement(selector, whenUnsatisfiable)
	return appsv1.NewDeployment(d.ctx, logical, &appsv1.DeploymentArgs{
		Metadata: d.meta(objectName, labels),
		Spec: appsv1.DeploymentSpecArgs{
			// No replicas: the HPA owns the count, so `pulumi up` never resets what it scaled to.
			Selector:             kube.Selector(selector),
			RevisionHistoryLimit: pulumi.Int(5),
			MinReadySeconds:      pulumi.Int(5),
			Strategy: appsv1.DeploymentStrategyArgs{
				Type: pulumi.String("RollingUpdate"),
				RollingUpdate: appsv1.RollingUpdateDeploymentArgs{
					MaxSurge:       pulumi.String("25%"),
					MaxUnavailable: pulumi.Int(0),
				},
			},
			Template: corev1.PodTemplateSpecArgs{
				Metadata: metav1.ObjectMetaArgs{
					Labels: pulumi.ToStringMap(labels),
					Annotations: pulumi.StringMap{
						ConfigChecksumAnnotation:      d.checksum,
						kube.SecretChecksumAnnotation: d.secretChecksum(secretKeys),
					},
				},
				Spec: pod,
			},
		},
	}, d.opts(opts...)...)
}

// web declares one color: its Deployment, PDB and Service (the smoke test's target; in gcp mode annotated so that
// GKE creates the color's NEGs). Nothing here depends on which color is active.
func (d *deployer) web(color string, migrate *batchv1.Job) (*appsv1.Deployment, *corev1.Service, error) {
	a := d.a
	image := a.imageOf(color)
	logical, objectName := d.name+"-web-"+color, a.Name+"-web-"+color
	selector, labels := d.labels("web", color, image)
	keys := []string{EnvDatabaseURL, EnvRedisPassword, EnvRedisSentinelPassword, EnvAdminToken}
	c := d.serving(d.w.Container("oms", image, []string{"serve"}, keys, a.Web.Resources))
	dep, err := d.deployment(logical, objectName, selector, labels, d.w.PodSpec("Always", c), keys, "DoNotSchedule",
		pulumi.DependsOn([]pulumi.Resource{migrate}))
	if err != nil {
		return nil, nil, fmt.Errorf("web %s: %w", color, err)
	}
	if _, err := kube.NewPDB(d.ctx, logical, d.meta(objectName, labels), selector, d.opts()...); err != nil {
		return nil, nil, fmt.Errorf("web %s pod disruption budget: %w", color, err)
	}
	meta := d.meta(objectName+"-preview", labels)
	if neg := a.NEGAnnotations[color]; neg != "" {
		meta.Annotations = pulumi.StringMap{"cloud.google.com/neg": pulumi.String(neg)}
	}
	preview, err := corev1.NewService(d.ctx, logical+"-preview", &corev1.ServiceArgs{
		Metadata: meta,
		Spec: corev1.ServiceSpecArgs{
			Type:     pulumi.String("ClusterIP"),
			Selector: pulumi.ToStringMap(selector),
			Ports:    servicePorts(),
		},
	}, d.opts()...)
	if err != nil {
		return nil, nil, fmt.Errorf("web %s preview service: %w", color, err)
	}
	return dep, preview, nil
}

func servicePorts() corev1.ServicePortArray {
	return corev1.ServicePortArray{corev1.ServicePortArgs{
		Name: pulumi.String("http"), Port: pulumi.Int(ServicePort), TargetPort: pulumi.String("http"), Protocol: pulumi.String("TCP"),
	}}
}

// webHPA scales one color on CPU up to Web.MaxReplicas, from Web.MinReplicas when active and IdleReplicas when
// idle. Switching colors changes only these minimums, never a Deployment.
func (d *deployer) webHPA(color string, minReplicas int) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	a := d.a
	logical, objectName := d.name+"-web-"+color, a.Name+"-web-"+color
	_, labels := d.labels("web", color, a.imageOf(color))
	hpa, err := autoscalingv2.NewHorizontalPodAutoscaler(d.ctx, logical, &autoscalingv2.HorizontalPodAutoscalerArgs{
		Metadata: d.meta(objectName, labels),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpecArgs{
			ScaleTargetRef: deploymentRef(objectName),
			MinReplicas:    pulumi.Int(minReplicas),
			MaxReplicas:    pulumi.Int(a.Web.MaxReplicas),
			Metrics:        autoscalingv2.MetricSpecArray{cpuMetric(a.Web.TargetCPUPercent)},
			Behavior:       scaleDownSlowly(),
		},
	}, d.opts()...)
	if err != nil {
		return nil, fmt.Errorf("web %s autoscaler: %w", color, err)
	}
	return hpa, nil
}

func deploymentRef(name string) autoscalingv2.CrossVersionObjectReferenceArgs {
	return autoscalingv2.CrossVersionObjectReferenceArgs{
		ApiVersion: pulumi.String("apps/v1"), Kind: pulumi.String("Deployment"), Name: pulumi.String(name),
	}
}

func cpuMetric(percent int) autoscalingv2.MetricSpecArgs {
	return autoscalingv2.MetricSpecArgs{
		Type: pulumi.String("Resource"),
		Resource: autoscalingv2.ResourceMetricSourceArgs{
			Name:   pulumi.String("cpu"),
			Target: autoscalingv2.MetricTargetArgs{Type: pulumi.String("Utilization"), AverageUtilization: pulumi.Int(percent)},
		},
	}
}

// scaleDownSlowly removes at most a quarter of the pods a minute after five calm minutes: traffic spikes recur.
func scaleDownSlowly() autoscalingv2.HorizontalPodAutoscalerBehaviorArgs {
	return autoscalingv2.HorizontalPodAutoscalerBehaviorArgs{
		ScaleDown: autoscalingv2.HPAScalingRulesArgs{
			StabilizationWindowSeconds: pulumi.Int(300),
			Policies: autoscalingv2.HPAScalingPolicyArray{autoscalingv2.HPAScalingPolicyArgs{
				Type: pulumi.String("Percent"), Value: pulumi.Int(25), PeriodSeconds: pulumi.Int(60),
			}},
		},
	}
}

// SmokeJobName is the smoke test of a color's release: a new name for each color and release, so each switch
// runs it once.
func SmokeJobName(name, color, image string) string {
	return name + "-smoke-" + color + "-" + ImageHash(image)
}

// smokeJob tests the color about to take traffic through its preview Service; the public Service depends on it,
// and Pulumi waits for the Job to complete, so a failing test leaves the selector where it was.
func (d *deployer) smokeJob(adminToken pulumi.StringOutput, web *appsv1.Deployment, migrate *batchv1.Job) (*batchv1.Job, error) {
	a := d.a
	color, image := a.ActiveColor, a.imageOf(a.ActiveColor)
	objectName := SmokeJobName(a.Name, color, image)
	_, labels := d.labels("smoke", color, image)
	preview := kube.ServiceFQDN(a.Name+"-web-"+color+"-preview", a.Namespace)
	c := corev1.ContainerArgs{
		Name:            pulumi.String("smoke"),
		Image:           pulumi.String(a.Smoke.Image),
		ImagePullPolicy: pulumi.String("IfNotPresent"),
		Command:         pulumi.StringArray{pulumi.String("/bin/sh"), pulumi.String("-c"), pulumi.String(smokeScript)},
		Env: corev1.EnvVarArray{
			kube.Env("OMS_PREVIEW_SERVICE", preview),
			kube.SecretEnv(EnvAdminToken, d.w.Secret, EnvAdminToken),
		},
		Resources:       Resources{CPU: "50m", Memory: "64Mi", CPULimit: "200m", MemoryLimit: "64Mi"}.args(),
		SecurityContext: kube.ContainerSecurityContext(uid),
		VolumeMounts: corev1.VolumeMountArray{corev1.VolumeMountArgs{
			Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp"),
		}},
	}
	pod := d.w.PodSpec("Never", c)
	// The smoke test needs no GCP identity: the namespace's default account, without a token.
	pod.ServiceAccountName = pulumi.String("default")
	pod.TerminationGracePeriodSeconds = pulumi.Int(5)
	job, err := batchv1.NewJob(d.ctx, d.name+"-smoke", &batchv1.JobArgs{
		Metadata: d.meta(objectName, labels),
		Spec: batchv1.JobSpecArgs{
			BackoffLimit:          pulumi.Int(a.Smoke.BackoffLimit),
			ActiveDeadlineSeconds: pulumi.Int(a.Smoke.DeadlineSeconds),
			Template: corev1.PodTemplateSpecArgs{
				Metadata: kube.TemplateMeta(labels, nil),
				Spec:     pod,
			},
		},
	}, d.opts(pulumi.DependsOn([]pulumi.Resource{web, migrate}))...)
	if err != nil {
		return nil, fmt.Errorf("smoke job: %w", err)
	}
	return job, nil
}

// publicService selects the active color; it waits for the migrations, the smoke test and the active HPA.
func (d *deployer) publicService(deps []pulumi.Resource) (*corev1.Service, error) {
	a := d.a
	selector, labels := d.labels("web", a.ActiveColor, "")
	delete(labels, ColorLabel) // the Service itself belongs to no color
	svc, err := corev1.NewService(d.ctx, d.name+"-web", &corev1.ServiceArgs{
		Metadata: d.meta(ServiceName(a.Name), labels),
		Spec: corev1.ServiceSpecArgs{
			Type:     pulumi.String("ClusterIP"),
			Selector: pulumi.ToStringMap(selector),
			Ports:    servicePorts(),
		},
	}, d.opts(pulumi.DependsOn(deps))...)
	if err != nil {
		return nil, fmt.Errorf("public service: %w", err)
	}
	return svc, nil
}

// worker runs the consumers of the active color's release. It is not blue-green (it takes no traffic): when the
// colors run different releases, a switch rolls it to the new active release after the selector has moved.
func (d *deployer) worker(migrate *batchv1.Job, public *corev1.Service) error {
	a := d.a
	image := a.imageOf(a.ActiveColor)
	logical, objectName := d.name+"-worker", a.Name+"-worker"
	selector, labels := d.labels("worker", "", image)
	keys := []string{EnvDatabaseURL, EnvRedisPassword, EnvRedisSentinelPassword, EnvAMQPURL}
	c := d.serving(d.w.Container("oms", image, []string{"worker"}, keys, a.Worker.Resources))
	// ScheduleAnyway: during a zone outage the backlog must drain on the remaining zones; spread is best effort.
	if _, err := d.deployment(logical, objectName, selector, labels, d.w.PodSpec("Always", c), keys, "ScheduleAnyway",
		pulumi.DependsOn([]pulumi.Resource{migrate, public})); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if _, err := kube.NewPDB(d.ctx, logical, d.meta(objectName, labels), selector, d.opts()...); err != nil {
		return fmt.Errorf("worker pod disruption budget: %w", err)
	}
	if _, err := autoscalingv2.NewHorizontalPodAutoscaler(d.ctx, logical, &autoscalingv2.HorizontalPodAutoscalerArgs{
		Metadata: d.meta(objectName, labels),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpecArgs{
			ScaleTargetRef: deploymentRef(objectName),
			MinReplicas:    pulumi.Int(a.Worker.MinReplicas),
			MaxReplicas:    pulumi.Int(a.Worker.MaxReplicas),
			Metrics:        autoscalingv2.MetricSpecArray{cpuMetric(a.Worker.TargetCPUPercent)},
			Behavior:       scaleDownSlowly(),
		},
	}, d.opts()...); err != nil {
		return fmt.Errorf("worker autoscaler: %w", err)
	}
	return nil
}

// networkPolicies deny all ingress to the runtime's pods except the edge to the web pods and the metrics collector to
// port 8080. Egress stays open: the data tier (Cloud SQL's private range, Redis, RabbitMQ), DNS, and the
// customers' webhook endpoints on the internet (through Cloud NAT), which no static list can name.
func (d *deployer) networkPolicies() error {
	a := d.a
	_, labels := d.labels("runtime", "", "")
	all := ClientSelector(a.Name)
	policy := func(logical, objectName string, selector map[string]string, rules networkingv1.NetworkPolicyIngressRuleArray) error {
		_, err := networkingv1.NewNetworkPolicy(d.ctx, logical, &networkingv1.NetworkPolicyArgs{
			Metadata: d.meta(objectName, labels),
			Spec: networkingv1.NetworkPolicySpecArgs{
				PodSelector: kube.Selector(selector),
				PolicyTypes: pulumi.StringArray{pulumi.String("Ingress")},
				Ingress:     rules,
			},
		}, d.opts()...)
		return err
	}
	if err := policy(d.name+"-deny", a.Name+"-runtime-deny-ingress", all, nil); err != nil {
		return fmt.Errorf("default-deny network policy: %w", err)
	}

	lb := networkingv1.NetworkPolicyPeerArray{}
	for _, c := range a.Ingress.LoadBalancerCIDRs {
		lb = append(lb, networkingv1.NetworkPolicyPeerArgs{IpBlock: networkingv1.IPBlockArgs{Cidr: pulumi.String(c)}})
	}
	smokeSelector, _ := kube.Labels(appName, a.Name, "smoke", nil)
	inCluster := networkingv1.NetworkPolicyPeerArray{kube.PodPeer(smokeSelector)}
	if len(a.Ingress.EdgeSelector) > 0 {
		inCluster = append(inCluster, kube.PodPeer(a.Ingress.EdgeSelector))
	}
	ports := networkingv1.NetworkPolicyPortArray{kube.Port(Port)}
	webRules := networkingv1.NetworkPolicyIngressRuleArray{
		// Google's front ends and health checkers reach the NEG endpoints (the pod IPs) directly.
		networkingv1.NetworkPolicyIngressRuleArgs{From: lb, Ports: ports},
		// cloudflared and the smoke test reach the web pods through the Services.
		networkingv1.NetworkPolicyIngressRuleArgs{From: inCluster, Ports: ports},
	}
	if err := policy(d.name+"-web-ingress", a.Name+"-web-ingress", WebSelector(a.Name), webRules); err != nil {
		return fmt.Errorf("web network policy: %w", err)
	}

	// Only the collector, not every pod of the namespace: /metrics tells who calls what, and how often.
	scraper := networkingv1.NetworkPolicyPeerArgs{
		NamespaceSelector: kube.Selector(map[string]string{"kubernetes.io/metadata.name": a.Ingress.Scraper.Namespace}),
		PodSelector:       kube.Selector(a.Ingress.Scraper.Selector),
	}
	metricsRules := networkingv1.NetworkPolicyIngressRuleArray{networkingv1.NetworkPolicyIngressRuleArgs{
		From: networkingv1.NetworkPolicyPeerArray{scraper}, Ports: ports,
	}}
	if err := policy(d.name+"-metrics", a.Name+"-runtime-metrics", all, metricsRules); err != nil {
		return fmt.Errorf("metrics network policy: %w", err)
	}
	return nil
}
