package omsruntime

import (
	"github.com/omscloud/omscloud/components/internal/kube"
	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	autoscalingv2 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/autoscaling/v2"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

func httpProbe(path string, period, timeout, failures int) corev1.ProbeArgs {
	return corev1.ProbeArgs{
		HttpGet:          corev1.HTTPGetActionArgs{Path: pulumi.String(path), Port: pulumi.String(PortName)},
		PeriodSeconds:    pulumi.Int(period),
		TimeoutSeconds:   pulumi.Int(timeout),
		FailureThreshold: pulumi.Int(failures),
	}
}

// serving completes a container that serves HTTP: the port, the probes and the preStop pause.
func (d *deployer) serving(c corev1.ContainerArgs) corev1.ContainerArgs {
	c.Ports = corev1.ContainerPortArray{containerPort(PortName, Port)}
	// Up to 60 s to connect to the data tier before liveness applies.
	c.StartupProbe = httpProbe(HealthPath, 2, 2, 30)
	c.ReadinessProbe = httpProbe(ReadyPath, 5, 3, 2)
	c.LivenessProbe = httpProbe(HealthPath, 10, 3, 3)
	// Kubernetes removes the endpoint and SIGTERMs concurrently: keep serving until kube-proxy and the NEG have
	// dropped the pod, then the runtime drains within ShutdownGraceSeconds.
	c.Lifecycle = corev1.LifecycleArgs{
		PreStop: corev1.LifecycleHandlerArgs{Sleep: corev1.SleepActionArgs{Seconds: pulumi.Int(d.a.PreStopSeconds)}},
	}
	return c
}

func containerPort(name string, port int) corev1.ContainerPortArgs {
	return corev1.ContainerPortArgs{Name: pulumi.String(name), ContainerPort: pulumi.Int(port), Protocol: pulumi.String("TCP")}
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
