package omsruntime

import (
	_ "embed"
	"fmt"

	"github.com/omscloud/omscloud/components/internal/kube"
	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	autoscalingv2 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/autoscaling/v2"
	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

//go:embed smoke.sh
var smokeScript string

// blueGreen declares both colors (each with its Deployment, PDB and Service), the smoke test of the active one, the
// colors' HPAs and the public Service that selects the active color once its migration, its smoke test and its HPA
// are through.
func (d *deployer) blueGreen(r *Runtime, migrations releases) (*corev1.Service, error) {
	a := d.a
	webs := map[string]*appsv1.Deployment{}
	for _, color := range []string{Blue, Green} {
		dep, preview, err := d.web(color, migrations.of(color))
		if err != nil {
			return nil, err
		}
		webs[color] = dep
		r.ColorServices[color] = preview.Metadata.Name().Elem()
		r.ColorServicesReady[color] = pulumi.All(r.ColorServices[color], preview.Status).ApplyT(func(v []any) string { return v[0].(string) }).(pulumi.StringOutput)
	}

	active, idle := a.ActiveColor, a.idleColor()
	smoke, err := d.smokeJob(r.AdminToken, webs[active], migrations.of(active))
	if err != nil {
		return nil, err
	}
	// The active color scales up to its minimum before traffic moves to it.
	activeHPA, err := d.webHPA(active, a.Web.MinReplicas)
	if err != nil {
		return nil, err
	}
	public, err := d.publicService(append([]pulumi.Resource{smoke, activeHPA}, migrations.all()...))
	if err != nil {
		return nil, err
	}
	r.PublicService = public.Metadata.Name().Elem()
	r.ActiveColorReady = pulumi.All(smoke.Status, activeHPA.Status).ApplyT(func([]any) string { return active }).(pulumi.StringOutput)
	// The color left idle keeps its pods until its own HPA sheds them as its traffic drains away (scaleDownSlowly),
	// whichever edge moved the traffic and however long that took: nothing forces it down at the switch.
	if _, err := d.webHPA(idle, a.IdleReplicas); err != nil {
		return nil, err
	}
	return public, nil
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
	c.Ports = corev1.ContainerPortArray{containerPort(PortName, Port), containerPort(MetricsPortName, MetricsPort)}
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
		Name: pulumi.String(PortName), Port: pulumi.Int(ServicePort), TargetPort: pulumi.String(PortName), Protocol: pulumi.String("TCP"),
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
