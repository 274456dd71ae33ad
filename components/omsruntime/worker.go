package omsruntime

import (
	"fmt"

	"github.com/omscloud/omscloud/components/internal/kube"
	autoscalingv2 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/autoscaling/v2"
	batchv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/batch/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

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
