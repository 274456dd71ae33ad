package stacks

import (
	"github.com/omscloud/omscloud/components/backup"
	"github.com/omscloud/omscloud/components/dr"
	"github.com/omscloud/omscloud/components/edge"
	"github.com/omscloud/omscloud/components/environment"
	"github.com/omscloud/omscloud/components/gke"
	"github.com/omscloud/omscloud/components/network"
	"github.com/omscloud/omscloud/components/observability"
	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/components/postgres"
	"github.com/omscloud/omscloud/components/rabbitmq"
	"github.com/omscloud/omscloud/components/redis"
	"github.com/pulumi/pulumi-cloudflare/sdk/v5/go/cloudflare"
	"github.com/pulumi/pulumi-gcp/sdk/v7/go/gcp"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Project is the Pulumi project name.
const Project = "omscloud"

// Program is the omscloud Pulumi program: it reads and validates the stack's config before declaring anything,
// then declares one environment.
func Program(ctx *pulumi.Context) error {
	values, secretKeys, err := ConfigFromContext(ctx)
	if err != nil {
		return err
	}
	cfg, err := ParseConfig(ctx.Stack(), values, secretKeys)
	if err != nil {
		return err
	}
	_, err = Deploy(ctx, cfg, Overrides{})
	return err
}

// Overrides carry what a DR environment takes from its primary's state rather than from config.
type Overrides struct {
	// EdgeAddress is an existing global IP for the GCP edge: the primary's reserved DR address, which customers
	// have whitelisted.
	EdgeAddress string
	// CertificateMap, for a GCP edge, is the primary's Certificate Manager map: the DR load balancer serves the
	// primary's certificates, and the primary keeps the DNS records and the certificates.
	CertificateMap string
	// TunnelToken, for a Cloudflare edge, makes the edge run only the connector of the primary's pre-declared DR
	// tunnel (secret); the primary keeps the DNS records and the load balancer, whose DR pool it enables.
	TunnelToken pulumi.StringInput
	// DatabaseSuffix names the Cloud SQL instance of this generation of a DR environment (postgres.Args.InstanceSuffix).
	DatabaseSuffix pulumi.StringInput
	// AdoptKeys keeps the CMEK keys when the stack is destroyed and adopts them when they exist (cmek.Args.Adopt).
	AdoptKeys bool
	// Teardown releases what a production config protects for good — the accounts' and the runtime's databases — and
	// lets a destroy delete the backup and media buckets with their objects: set only while a DR environment is torn
	// down after its failback backup, together with DeletionProtection false.
	Teardown bool
}

// Deploy declares the environment a validated config describes.
func Deploy(ctx *pulumi.Context, cfg *Config, ov Overrides) (*environment.Environment, error) {
	prefix := cfg.NamePrefix()
	labels := cfg.ResourceLabels()
	provider, err := gcp.NewProvider(ctx, "gcp-"+cfg.Region.Primary.GCPRegion, &gcp.ProviderArgs{
		Project:       pulumi.String(cfg.Project),
		Region:        pulumi.String(cfg.Region.Primary.GCPRegion),
		DefaultLabels: pulumi.ToStringMap(labels),
	})
	if err != nil {
		return nil, err
	}
	connectorOnly := cfg.Edge.Provider == edge.Cloudflare && ov.TunnelToken != nil
	var cloudflareProvider pulumi.ProviderResource
	if cfg.Edge.Provider == edge.Cloudflare && !connectorOnly {
		// The API token comes from the secret `cloudflare:apiToken` or, when unset, CLOUDFLARE_API_TOKEN.
		cfArgs := &cloudflare.ProviderArgs{}
		if token, ok := ctx.GetConfig("cloudflare:apiToken"); ok {
			cfArgs.ApiToken = pulumi.ToSecret(pulumi.String(token)).(pulumi.StringOutput)
		}
		if cloudflareProvider, err = cloudflare.NewProvider(ctx, "cloudflare", cfArgs); err != nil {
			return nil, err
		}
	}
	cloudflareReplicas := 2
	if cfg.Environment == Production {
		cloudflareReplicas = 3
	}
	activeImage := cfg.Runtime.Image
	if img, ok := cfg.Runtime.ColorImages[cfg.Runtime.ActiveColor]; ok {
		activeImage = img
	}
	bucket, media, keepInRegion := cfg.backupPlacement()
	var drArgs *dr.Args
	if cfg.Environment == Production && cfg.DR.Enabled {
		drArgs = &dr.Args{
			Name:               prefix,
			Project:            cfg.Project,
			Region:             cfg.Region.Primary.GCPRegion,
			DRRegion:           cfg.DR.GCPRegion,
			AllowCrossBorder:   cfg.Region.DRCrossBorder && cfg.DR.AcknowledgeCrossBorder,
			Edge:               cfg.Edge.Provider,
			DeletionProtection: cfg.DeletionProtection,
			Labels:             labels,
			Active:             cfg.DR.Active,
			Cloudflare:         dr.CloudflareArgs{AccountID: cfg.Edge.Cloudflare.AccountID, Hostnames: cfg.Edge.Hostnames},
		}
	}
	// Validation guarantees at least one valid maintenance day.
	maintenanceDay, _ := postgres.Weekday(cfg.Maintenance.Days[0])
	env, err := environment.New(ctx, prefix, &environment.Args{
		Network: network.Args{
			Name:                prefix,
			Project:             cfg.Project,
			Region:              cfg.Region.Primary.GCPRegion,
			SubnetCIDR:          cfg.Network.SubnetCIDR,
			PodsCIDR:            cfg.Network.PodsCIDR,
			ServicesCIDR:        cfg.Network.ServicesCIDR,
			MasterCIDR:          cfg.Network.MasterCIDR,
			PrivateServicesCIDR: cfg.Network.PrivateServicesCIDR,
			FlowLogs:            cfg.Network.FlowLogs,
			DeletionProtection:  cfg.DeletionProtection,
		},
		Cluster: gke.Args{
			Name:                     prefix,
			Project:                  cfg.Project,
			Region:                   cfg.Region.Primary.GCPRegion,
			Zones:                    cfg.Zones,
			MasterCIDR:               cfg.Network.MasterCIDR,
			MasterAuthorizedNetworks: authorizedNetworks(cfg.GKE.MasterAuthorizedNetworks),
			ReleaseChannel:           cfg.GKE.ReleaseChannel,
			Maintenance: gke.MaintenanceWindow{
				Days: cfg.Maintenance.Days, StartHourUTC: cfg.Maintenance.StartHourUTC, DurationHours: cfg.Maintenance.DurationHours,
			},
			DeletionProtection: cfg.DeletionProtection,
			Labels:             labels,
			AdoptKeys:          ov.AdoptKeys,
			Pools: []gke.PoolArgs{
				pool(gke.WebPool, cfg.Sizing.Web, nil),
				pool(gke.StatefulPool, cfg.Sizing.Stateful, []gke.Taint{{Key: gke.StatefulTaint, Value: "true", Effect: "NO_SCHEDULE"}}),
			},
			Images: releaseImages(cfg.Runtime),
		},
		Database: postgres.Args{
			Name:               prefix,
			Project:            cfg.Project,
			Region:             cfg.Region.Primary.GCPRegion,
			Zones:              cfg.Zones,
			Version:            cfg.Database.Version,
			Tier:               cfg.Sizing.Database.Tier,
			DiskSizeGB:         cfg.Sizing.Database.DiskSizeGB,
			Availability:       cfg.Database.Availability,
			Backup:             postgres.BackupArgs{Location: cfg.Database.BackupLocation, RetainedBackups: cfg.Database.RetainedBackups},
			Maintenance:        postgres.MaintenanceArgs{Day: maintenanceDay, HourUTC: cfg.Maintenance.StartHourUTC},
			DeletionProtection: cfg.DeletionProtection,
			Labels:             labels,
			AdoptKeys:          ov.AdoptKeys,
			InstanceSuffix:     ov.DatabaseSuffix,
			Teardown:           ov.Teardown,
			Accounts:           cfg.Accounts,
			RetiredAccounts:    cfg.Database.RetiredAccounts,
		},
		Redis: redis.Args{
			Name:               prefix,
			Size:               redis.Size{CPU: cfg.Sizing.Redis.CPU, Memory: cfg.Sizing.Redis.Memory, StorageGB: cfg.Sizing.Redis.StorageGB},
			Labels:             labels,
			DeletionProtection: cfg.DeletionProtection,
			PasswordRotation:   cfg.Rotation.Redis,
		},
		RabbitMQ: rabbitmq.Args{
			Name:               prefix,
			Size:               rabbitmq.Size{CPU: cfg.Sizing.RabbitMQ.CPU, Memory: cfg.Sizing.RabbitMQ.Memory, StorageGB: cfg.Sizing.RabbitMQ.StorageGB},
			Labels:             labels,
			DeletionProtection: cfg.DeletionProtection,
			PasswordRotation:   cfg.Rotation.RabbitMQ,
		},
		Runtime: omsruntime.Args{
			Name:        prefix,
			Project:     cfg.Project,
			Production:  cfg.Environment == Production,
			Teardown:    ov.Teardown,
			Image:       cfg.Runtime.Image,
			ColorImages: cfg.Runtime.ColorImages,
			ActiveColor: cfg.Runtime.ActiveColor,
			Zones:       cfg.Zones,
			Labels:      labels,
			Database:    omsruntime.DatabaseArgs{PasswordRotation: cfg.Rotation.Database},
		},
		Edge: edge.Args{
			Name:      prefix,
			Project:   cfg.Project,
			Region:    cfg.Region.Primary.GCPRegion,
			Zones:     cfg.Zones,
			Provider:  cfg.Edge.Provider,
			Hostnames: cfg.Edge.Hostnames,
			Labels:    labels,
			Cloudflare: edge.CloudflareArgs{
				AccountID:     cfg.Edge.Cloudflare.AccountID,
				ZoneID:        cfg.Edge.Cloudflare.ZoneID,
				Replicas:      cloudflareReplicas,
				ConnectorOnly: connectorOnly,
				TunnelToken:   ov.TunnelToken,
			},
			GCP: edgeGCP(cfg, ov),
		},
		Backup: backup.Args{
			Name:               prefix,
			Project:            cfg.Project,
			Region:             cfg.Region.Primary.GCPRegion,
			DRRegion:           cfg.DR.GCPRegion,
			AllowCrossBorder:   cfg.Region.DRCrossBorder && cfg.DR.AcknowledgeCrossBorder,
			KeepInRegion:       keepInRegion,
			DeletionProtection: cfg.DeletionProtection,
			Labels:             labels,
			AdoptKeys:          ov.AdoptKeys,
			ForceDestroy:       ov.Teardown,
			Bucket:             bucket,
			Media:              media,
			Image:              activeImage,
		},
		DR: drArgs,
		Observability: observability.Args{
			Name:          prefix,
			Project:       cfg.Project,
			Thresholds:    cfg.thresholds(),
			UptimeRegions: cfg.Observability.UptimeRegions,
			Notifications: notifications(cfg.Observability.Notifications),
			Labels:        labels,
		},
		CloudflareProvider: cloudflareProvider,
	}, pulumi.Providers(provider))
	if err != nil {
		return nil, err
	}

	ctx.Export("environment", pulumi.String(cfg.Environment))
	ctx.Export("region", pulumi.String(cfg.RegionID))
	ctx.Export("gcpRegion", pulumi.String(cfg.Region.Primary.GCPRegion))
	ctx.Export("zones", pulumi.ToStringArray(cfg.Zones))
	ctx.Export("drRegion", pulumi.String(cfg.DR.GCPRegion))
	ctx.Export("accounts", pulumi.ToStringArray(cfg.Accounts))
	ctx.Export("network", env.Network.Network)
	ctx.Export("clusterName", env.Cluster.ClusterName)
	ctx.Export("kubeconfig", env.Cluster.Kubeconfig)
	ctx.Export("databaseInstance", env.Database.InstanceName)
	ctx.Export("databaseConnectionName", env.Database.ConnectionName)
	ctx.Export("databasePrivateIp", env.Database.PrivateIP)
	ctx.Export("redisSentinels", env.Redis.SentinelAddress)
	ctx.Export("redisMasterName", pulumi.String(env.Redis.MasterName))
	ctx.Export("amqpUrl", env.RabbitMQ.AmqpURL)
	ctx.Export("runtimeAdminToken", env.Runtime.AdminToken)
	ctx.Export("runtimeServiceAccount", env.Runtime.ServiceAccountEmail)
	ctx.Export("runtimeActiveColor", pulumi.String(cfg.Runtime.ActiveColor))
	ctx.Export("edgeProvider", pulumi.String(cfg.Edge.Provider))
	ctx.Export("edgeUrls", env.Edge.URLs)
	ctx.Export("edgeIpAddress", env.Edge.IPAddress)
	ctx.Export(OutputCertificateMap, env.Edge.CertificateMap)
	ctx.Export("tunnelId", env.Edge.TunnelID)
	ctx.Export("primaryPoolId", env.Edge.PrimaryPoolID)
	ctx.Export("runtimeImage", pulumi.String(activeImage))
	ctx.Export("backupUrl", env.Backup.BackupURL)
	ctx.Export("mediaUrl", env.Backup.MediaURL)
	ctx.Export("backupKeySecretId", env.Backup.KeySecretID)
	ctx.Export("backupServiceAccount", env.Backup.ServiceAccountEmail)
	ctx.Export("monitoringDashboard", env.Observability.Dashboard)
	ctx.Export("sloServiceId", env.Observability.ServiceID)
	if env.DR != nil {
		ctx.Export("drIpAddress", env.DR.DRIPAddress)
		ctx.Export("drPoolId", env.DR.DRPoolID)
		ctx.Export("drTunnelId", env.DR.DRTunnelID)
		ctx.Export("drTunnelToken", env.DR.DRTunnelToken)
	}
	return env, nil
}

// notifications turns the config's channels into the component's; the tokens become Pulumi secrets.
func notifications(n NotificationsConfig) observability.NotificationArgs {
	out := observability.NotificationArgs{Emails: n.Emails, SlackChannel: n.SlackChannel}
	if n.SlackToken != "" {
		out.SlackToken = pulumi.ToSecret(pulumi.String(n.SlackToken)).(pulumi.StringOutput)
	}
	if n.PagerDutyToken != "" {
		out.PagerDutyKey = pulumi.ToSecret(pulumi.String(n.PagerDutyToken)).(pulumi.StringOutput)
	}
	return out
}

func edgeGCP(cfg *Config, ov Overrides) edge.GCPArgs {
	// The address the edge reserves is protected like the reserved DR one: customers whitelist it.
	g := edge.GCPArgs{ProtectAddress: cfg.DeletionProtection}
	if ov.EdgeAddress != "" {
		g.Address = pulumi.String(ov.EdgeAddress)
	}
	if ov.CertificateMap != "" {
		g.CertificateMap = pulumi.String(ov.CertificateMap)
	} else {
		g.DNS = edge.DNSArgs{ManagedZone: cfg.Edge.DNS.ManagedZone, Project: cfg.Edge.DNS.Project}
	}
	return g
}

func pool(name string, size NodePoolSize, taints []gke.Taint) gke.PoolArgs {
	return gke.PoolArgs{
		Name:            name,
		MachineType:     size.MachineType,
		MinNodesPerZone: size.MinNodesPerZone,
		MaxNodesPerZone: size.MaxNodesPerZone,
		DiskSizeGB:      size.DiskSizeGB,
		Labels:          map[string]string{gke.PoolLabel: name},
		Taints:          taints,
	}
}

func releaseImages(r RuntimeConfig) []string {
	var out []string
	for _, img := range r.images() {
		out = append(out, img.image)
	}
	return out
}

func authorizedNetworks(nets []AuthorizedNetwork) []gke.AuthorizedNetwork {
	out := make([]gke.AuthorizedNetwork, len(nets))
	for i, n := range nets {
		out[i] = gke.AuthorizedNetwork{Name: n.Name, CIDR: n.CIDR}
	}
	return out
}
