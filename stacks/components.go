package stacks

import (
	"github.com/omscloud/omscloud/components/backup"
	"github.com/omscloud/omscloud/components/dr"
	"github.com/omscloud/omscloud/components/edge"
	"github.com/omscloud/omscloud/components/gke"
	"github.com/omscloud/omscloud/components/network"
	"github.com/omscloud/omscloud/components/observability"
	"github.com/omscloud/omscloud/components/omsruntime"
	"github.com/omscloud/omscloud/components/postgres"
	"github.com/omscloud/omscloud/components/rabbitmq"
	"github.com/omscloud/omscloud/components/redis"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// One builder per component of the environment: each turns the validated Config (and, for a DR environment, the
// Overrides from its primary's state) into that component's Args. Deploy lists them.

// connectorOnly: a DR environment behind a Cloudflare edge runs only the connector of the primary's DR tunnel.
func connectorOnly(cfg *Config, ov Overrides) bool {
	return cfg.Edge.Provider == edge.Cloudflare && ov.TunnelToken != nil
}

// activeImage is the release of the active color.
func activeImage(cfg *Config) string {
	if img, ok := cfg.Runtime.ColorImages[cfg.Runtime.ActiveColor]; ok {
		return img
	}
	return cfg.Runtime.Image
}

func networkArgs(cfg *Config) network.Args {
	return network.Args{
		Name:                cfg.NamePrefix(),
		Project:             cfg.Project,
		Region:              cfg.Region.Primary.GCPRegion,
		SubnetCIDR:          cfg.Network.SubnetCIDR,
		PodsCIDR:            cfg.Network.PodsCIDR,
		ServicesCIDR:        cfg.Network.ServicesCIDR,
		MasterCIDR:          cfg.Network.MasterCIDR,
		PrivateServicesCIDR: cfg.Network.PrivateServicesCIDR,
		FlowLogs:            cfg.Network.FlowLogs,
		DeletionProtection:  cfg.DeletionProtection,
	}
}

func clusterArgs(cfg *Config, ov Overrides) gke.Args {
	return gke.Args{
		Name:                     cfg.NamePrefix(),
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
		Labels:             cfg.ResourceLabels(),
		AdoptKeys:          ov.AdoptKeys,
		Pools: []gke.PoolArgs{
			pool(gke.WebPool, cfg.Sizing.Web, nil),
			pool(gke.StatefulPool, cfg.Sizing.Stateful, []gke.Taint{{Key: gke.StatefulTaint, Value: "true", Effect: "NO_SCHEDULE"}}),
		},
		Images: releaseImages(cfg.Runtime),
	}
}

// databases are the main cell's instance and the other cells' by name (none without database.cells): each cell has
// everything the one instance had, with its own size and accounts.
func databases(cfg *Config, ov Overrides) (main postgres.Args, others map[string]postgres.Args) {
	for _, cell := range cfg.cells() {
		a := databaseArgs(cfg, ov, cell)
		if cell.Name == postgres.MainCell {
			main = a
			continue
		}
		if others == nil {
			others = map[string]postgres.Args{}
		}
		others[cell.Name] = a
	}
	return main, others
}

func databaseArgs(cfg *Config, ov Overrides, cell Cell) postgres.Args {
	// Validation guarantees at least one valid maintenance day.
	maintenanceDay, _ := postgres.Weekday(cfg.Maintenance.Days[0])
	return postgres.Args{
		Name:               postgres.CellName(cfg.NamePrefix(), cell.Name),
		Project:            cfg.Project,
		Region:             cfg.Region.Primary.GCPRegion,
		Zones:              cfg.Zones,
		Version:            cfg.Database.Version,
		Tier:               cell.Size.Tier,
		DiskSizeGB:         cell.Size.DiskSizeGB,
		LogicalDecoding:    cell.LogicalDecoding,
		Availability:       cfg.Database.Availability,
		Backup:             postgres.BackupArgs{Location: cfg.Database.BackupLocation, RetainedBackups: cfg.Database.RetainedBackups},
		Maintenance:        postgres.MaintenanceArgs{Day: maintenanceDay, HourUTC: cfg.Maintenance.StartHourUTC},
		DeletionProtection: cfg.DeletionProtection,
		Labels:             cfg.ResourceLabels(),
		AdoptKeys:          ov.AdoptKeys,
		InstanceSuffix:     ov.DatabaseSuffixes[cell.Name],
		Teardown:           ov.Teardown,
		Accounts:           cell.Accounts,
		RetiredAccounts:    cell.RetiredAccounts,
		IncomingAccounts:   cell.Incoming,
	}
}

func redisArgs(cfg *Config) redis.Args {
	return redis.Args{
		Name:               cfg.NamePrefix(),
		Size:               redis.Size{CPU: cfg.Sizing.Redis.CPU, Memory: cfg.Sizing.Redis.Memory, StorageGB: cfg.Sizing.Redis.StorageGB},
		Labels:             cfg.ResourceLabels(),
		DeletionProtection: cfg.DeletionProtection,
		PasswordRotation:   cfg.Rotation.Redis,
	}
}

func rabbitmqArgs(cfg *Config) rabbitmq.Args {
	return rabbitmq.Args{
		Name:               cfg.NamePrefix(),
		Size:               rabbitmq.Size{CPU: cfg.Sizing.RabbitMQ.CPU, Memory: cfg.Sizing.RabbitMQ.Memory, StorageGB: cfg.Sizing.RabbitMQ.StorageGB},
		Labels:             cfg.ResourceLabels(),
		DeletionProtection: cfg.DeletionProtection,
		PasswordRotation:   cfg.Rotation.RabbitMQ,
	}
}

func runtimeArgs(cfg *Config, ov Overrides) omsruntime.Args {
	return omsruntime.Args{
		Name:        cfg.NamePrefix(),
		Project:     cfg.Project,
		Production:  cfg.Environment == Production,
		Teardown:    ov.Teardown,
		Image:       cfg.Runtime.Image,
		ColorImages: cfg.Runtime.ColorImages,
		ActiveColor: cfg.Runtime.ActiveColor,
		Zones:       cfg.Zones,
		Labels:      cfg.ResourceLabels(),
		Database:    omsruntime.DatabaseArgs{PasswordRotation: cfg.Rotation.Database},
	}
}

func edgeArgs(cfg *Config, ov Overrides) edge.Args {
	cloudflareReplicas := 2
	if cfg.Environment == Production {
		cloudflareReplicas = 3
	}
	return edge.Args{
		Name:      cfg.NamePrefix(),
		Project:   cfg.Project,
		Region:    cfg.Region.Primary.GCPRegion,
		Zones:     cfg.Zones,
		Provider:  cfg.Edge.Provider,
		Hostnames: cfg.Edge.Hostnames,
		Labels:    cfg.ResourceLabels(),
		Cloudflare: edge.CloudflareArgs{
			AccountID:     cfg.Edge.Cloudflare.AccountID,
			ZoneID:        cfg.Edge.Cloudflare.ZoneID,
			Replicas:      cloudflareReplicas,
			ConnectorOnly: connectorOnly(cfg, ov),
			TunnelToken:   ov.TunnelToken,
		},
		GCP: edgeGCP(cfg, ov),
	}
}

func backupArgs(cfg *Config, ov Overrides) backup.Args {
	bucket, media, keepInRegion := cfg.backupPlacement()
	return backup.Args{
		Name:               cfg.NamePrefix(),
		Project:            cfg.Project,
		Region:             cfg.Region.Primary.GCPRegion,
		DRRegion:           cfg.DR.GCPRegion,
		AllowCrossBorder:   cfg.Region.DRCrossBorder && cfg.DR.AcknowledgeCrossBorder,
		KeepInRegion:       keepInRegion,
		DeletionProtection: cfg.DeletionProtection,
		Labels:             cfg.ResourceLabels(),
		AdoptKeys:          ov.AdoptKeys,
		ForceDestroy:       ov.Teardown,
		Bucket:             bucket,
		Media:              media,
		Image:              activeImage(cfg),
	}
}

// drArgs is the DR site a production stack with DR declares in advance; nil for the others.
func drArgs(cfg *Config) *dr.Args {
	if cfg.Environment != Production || !cfg.DR.Enabled {
		return nil
	}
	return &dr.Args{
		Name:               cfg.NamePrefix(),
		Project:            cfg.Project,
		Region:             cfg.Region.Primary.GCPRegion,
		DRRegion:           cfg.DR.GCPRegion,
		AllowCrossBorder:   cfg.Region.DRCrossBorder && cfg.DR.AcknowledgeCrossBorder,
		Edge:               cfg.Edge.Provider,
		DeletionProtection: cfg.DeletionProtection,
		Labels:             cfg.ResourceLabels(),
		Active:             cfg.DR.Active,
		Cloudflare:         dr.CloudflareArgs{AccountID: cfg.Edge.Cloudflare.AccountID, Hostnames: cfg.Edge.Hostnames},
	}
}

func observabilityArgs(cfg *Config) observability.Args {
	return observability.Args{
		Name:          cfg.NamePrefix(),
		Project:       cfg.Project,
		Thresholds:    cfg.thresholds(),
		UptimeRegions: cfg.Observability.UptimeRegions,
		Notifications: notifications(cfg.Observability.Notifications),
		Labels:        cfg.ResourceLabels(),
	}
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
