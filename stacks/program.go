package stacks

import (
	"github.com/omscloud/omscloud/components/edge"
	"github.com/omscloud/omscloud/components/environment"
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
	// DatabaseSuffixes name each cell's Cloud SQL instance in this generation of a DR environment, by cell
	// (postgres.Args.InstanceSuffix).
	DatabaseSuffixes map[string]pulumi.StringInput
	// AdoptKeys keeps the CMEK keys when the stack is destroyed and adopts them when they exist (cmek.Args.Adopt).
	AdoptKeys bool
	// Teardown releases what a production config protects for good — the accounts' and the runtime's databases — and
	// lets a destroy delete the backup and media buckets with their objects: set only while a DR environment is torn
	// down after its failback backup, together with DeletionProtection false.
	Teardown bool
}

// Deployment is what Deploy declares: the environment, and the stack region's GCP provider for what a program
// declares beside it (the DR stack's restore).
type Deployment struct {
	*environment.Environment
	GCPProvider pulumi.ProviderResource
}

// Deploy declares the environment a validated config describes: the providers, then each component's Args from the
// config (one builder per component, below), then the stack's outputs.
func Deploy(ctx *pulumi.Context, cfg *Config, ov Overrides) (*Deployment, error) {
	provider, err := gcp.NewProvider(ctx, "gcp-"+cfg.Region.Primary.GCPRegion, &gcp.ProviderArgs{
		Project:       pulumi.String(cfg.Project),
		Region:        pulumi.String(cfg.Region.Primary.GCPRegion),
		DefaultLabels: pulumi.ToStringMap(cfg.ResourceLabels()),
	})
	if err != nil {
		return nil, err
	}
	cloudflareProvider, err := cloudflareProviderOf(ctx, cfg, ov)
	if err != nil {
		return nil, err
	}
	mainDB, cells := databases(cfg, ov)
	env, err := environment.New(ctx, cfg.NamePrefix(), &environment.Args{
		Network:            networkArgs(cfg),
		Cluster:            clusterArgs(cfg, ov),
		Database:           mainDB,
		Cells:              cells,
		DefaultCell:        cfg.Database.DefaultCell,
		Redis:              redisArgs(cfg),
		RabbitMQ:           rabbitmqArgs(cfg),
		Runtime:            runtimeArgs(cfg, ov),
		Edge:               edgeArgs(cfg, ov),
		Backup:             backupArgs(cfg, ov),
		DR:                 drArgs(cfg),
		Observability:      observabilityArgs(cfg),
		CloudflareProvider: cloudflareProvider,
	}, pulumi.Providers(provider))
	if err != nil {
		return nil, err
	}
	exportOutputs(ctx, cfg, env)
	return &Deployment{Environment: env, GCPProvider: provider}, nil
}

// cloudflareProviderOf is the Cloudflare provider of a stack that declares on Cloudflare (nil otherwise).
func cloudflareProviderOf(ctx *pulumi.Context, cfg *Config, ov Overrides) (pulumi.ProviderResource, error) {
	if cfg.Edge.Provider != edge.Cloudflare || connectorOnly(cfg, ov) {
		return nil, nil
	}
	// The API token comes from the secret `cloudflare:apiToken` or, when unset, CLOUDFLARE_API_TOKEN.
	cfArgs := &cloudflare.ProviderArgs{}
	if token, ok := ctx.GetConfig("cloudflare:apiToken"); ok {
		cfArgs.ApiToken = pulumi.ToSecret(pulumi.String(token)).(pulumi.StringOutput)
	}
	return cloudflare.NewProvider(ctx, "cloudflare", cfArgs)
}

// exportOutputs are the stack's outputs: what operators, omsctl and the DR spin-up read.
func exportOutputs(ctx *pulumi.Context, cfg *Config, env *environment.Environment) {
	ctx.Export("environment", pulumi.String(cfg.Environment))
	ctx.Export("region", pulumi.String(cfg.RegionID))
	ctx.Export("gcpRegion", pulumi.String(cfg.Region.Primary.GCPRegion))
	ctx.Export("zones", pulumi.ToStringArray(cfg.Zones))
	ctx.Export("drRegion", pulumi.String(cfg.DR.GCPRegion))
	ctx.Export("accounts", pulumi.ToStringArray(cfg.Accounts))
	if placement := cfg.accountCells(); placement != nil {
		ctx.Export(OutputAccountCells, pulumi.ToStringMap(placement))
	}
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
	ctx.Export("runtimeImage", pulumi.String(activeImage(cfg)))
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
}
