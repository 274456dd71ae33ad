// Package environment composes one omscloud environment — network, GKE cluster and (as they land) the data tier,
// edge, runtime, backups and DR — from the components' own Args, wiring each component's outputs into the next.
package environment

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/omscloud/omscloud/components/apis"
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
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Args holds each component's arguments; New fills in the wiring between them.
type Args struct {
	Network network.Args
	// Cluster's Network, Subnetwork and range names come from the network component.
	Cluster gke.Args
	// Database is the instance of cell postgres.MainCell, which also holds the runtime's control database; its
	// Network and PrivateServices come from the network component.
	Database postgres.Args
	// Cells are the environment's further Cloud SQL instances by cell name (database cells), each with the accounts
	// placed on it; their Name (postgres.CellName of Database.Name), Network, PrivateServices and ServiceAgent are
	// set by New.
	Cells map[string]postgres.Args
	// DefaultCell is the cell of the accounts the runtime creates itself, with Cells (default postgres.MainCell).
	DefaultCell string
	// Redis and RabbitMQ run in the cluster; Namespace and ClientSelector are set by New.
	Redis    redis.Args
	RabbitMQ rabbitmq.Args
	// Runtime's data-tier wiring, namespace and edge wiring are set by New.
	Runtime omsruntime.Args
	// Edge's backend is the runtime's public Service; set by New.
	Edge edge.Args
	// Backup's runtime wiring, account secrets and media writers are set by New.
	Backup backup.Args
	// DR is declared in production only (nil otherwise): what must exist in the DR region before a disaster.
	DR *dr.Args
	// Observability's targets, namespace, cluster, database instance and hostnames are set by New.
	Observability observability.Args
	// CloudflareProvider is required when Edge.Provider is cloudflare.
	CloudflareProvider pulumi.ProviderResource
}

// Environment is the component.
type Environment struct {
	pulumi.ResourceState

	Network  *network.Network
	Cluster  *gke.Cluster
	Database *postgres.Postgres
	// Cells are the instances of Args.Cells by cell name.
	Cells    map[string]*postgres.Postgres
	Redis    *redis.Redis
	RabbitMQ *rabbitmq.RabbitMQ
	Runtime  *omsruntime.Runtime
	Edge     *edge.Edge
	Backup   *backup.Backup
	// DR is nil outside production.
	DR            *dr.DR
	Observability *observability.Observability
}

// New declares the environment. Pass the stack region's GCP provider with pulumi.Providers.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Environment, error) {
	e := &Environment{}
	if err := ctx.RegisterComponentResource("omscloud:environment:Environment", name, e, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(e)

	// Every API the environment calls is on before anything else starts; each component passes the dependency on
	// to its children.
	enabled, err := apis.New(ctx, name+"-apis", &apis.Args{Project: args.Network.Project}, parent)
	if err != nil {
		return nil, err
	}
	afterAPIs := pulumi.DependsOn(enabled.Enabled())
	gcpOpts := []pulumi.ResourceOption{parent, afterAPIs}

	net, err := network.New(ctx, name+"-network", &args.Network, gcpOpts...)
	if err != nil {
		return nil, err
	}
	clusterArgs := args.Cluster
	clusterArgs.Network = net.Network
	clusterArgs.Subnetwork = net.Subnetwork
	clusterArgs.PodsRangeName = network.PodsRangeName
	clusterArgs.ServicesRangeName = network.ServicesRangeName
	clusterArgs.ServiceAgent = enabled.KubernetesAgent
	cluster, err := gke.New(ctx, name+"-gke", &clusterArgs, gcpOpts...)
	if err != nil {
		return nil, err
	}

	dbArgs := args.Database
	dbArgs.Network = net.Network
	dbArgs.PrivateServices = net.PrivateServices
	db, err := postgres.New(ctx, name+"-postgres", &dbArgs, gcpOpts...)
	if err != nil {
		return nil, err
	}
	cells, err := newCells(ctx, name, args, net, db, gcpOpts)
	if err != nil {
		return nil, err
	}

	ns, err := corev1.NewNamespace(ctx, name+"-ns", &corev1.NamespaceArgs{
		Metadata: metav1.ObjectMetaArgs{
			Name: pulumi.String(omsruntime.DefaultNamespace),
			Labels: pulumi.StringMap{
				"pod-security.kubernetes.io/enforce": pulumi.String("restricted"),
				"pod-security.kubernetes.io/audit":   pulumi.String("restricted"),
				"pod-security.kubernetes.io/warn":    pulumi.String("restricted"),
			},
		},
	}, parent, pulumi.Provider(cluster.Provider))
	if err != nil {
		return nil, err
	}
	inCluster := []pulumi.ResourceOption{parent, pulumi.Provider(cluster.Provider), pulumi.DependsOn(append(enabled.Enabled(), ns))}

	runtimeName := args.Runtime.Name
	clients := omsruntime.ClientSelector(runtimeName)
	// Managed Prometheus' collectors scrape the data tier's exporters: their NetworkPolicies admit exactly them.
	collector := omsruntime.ManagedPrometheusCollector
	collectorNamespace := map[string]string{"kubernetes.io/metadata.name": collector.Namespace}
	redisArgs := args.Redis
	redisArgs.Namespace, redisArgs.ClientSelector = omsruntime.DefaultNamespace, clients
	redisArgs.Metrics = &redis.MetricsAccess{NamespaceLabels: collectorNamespace, PodLabels: collector.Selector}
	cache, err := redis.New(ctx, name+"-redis", &redisArgs, inCluster...)
	if err != nil {
		return nil, err
	}
	mqArgs := args.RabbitMQ
	mqArgs.Namespace, mqArgs.ClientSelector = omsruntime.DefaultNamespace, clients
	mqArgs.Metrics = &rabbitmq.MetricsAccess{NamespaceLabels: collectorNamespace, PodLabels: collector.Selector}
	mq, err := rabbitmq.New(ctx, name+"-rabbitmq", &mqArgs, inCluster...)
	if err != nil {
		return nil, err
	}

	cloudflareMode := args.Edge.Provider == edge.Cloudflare
	rtArgs := args.Runtime
	rtArgs.Namespace = omsruntime.DefaultNamespace
	rtArgs.Database.Host, rtArgs.Database.Instance, rtArgs.Database.ServerCA = db.PrivateIP, db.InstanceName, db.ServerCA
	rtArgs.Database.AccountPrefix = postgres.AccountPrefix
	rtArgs.Database.Accounts = map[string]pulumi.StringInput{}
	accountSecrets := map[string]pulumi.StringInput{}
	every := maps.Clone(cells)
	every[postgres.MainCell] = db
	// An account's password and secret are those of the one cell it is placed on: an account moving to another cell
	// is declared there too (postgres.Args.IncomingAccounts), but is none of that cell's Accounts until the move is
	// recorded.
	placedOn := map[string]string{}
	for _, cell := range slices.Sorted(maps.Keys(every)) {
		for id, acct := range every[cell].Accounts {
			if placedOn[id] != "" {
				return nil, fmt.Errorf("environment: account %q is an active account of cells %s and %s: place it on one, and declare it on the cell it moves to as an incoming account", id, placedOn[id], cell)
			}
			placedOn[id] = cell
			rtArgs.Database.Accounts[id], accountSecrets[id] = acct.Password, acct.PasswordSecret
		}
	}
	if len(cells) > 0 {
		rtArgs.Database.Cells = map[string]omsruntime.Cell{}
		for cell, p := range every {
			rtArgs.Database.Cells[cell] = omsruntime.Cell{Host: p.PrivateIP, ServerCA: p.ServerCA, Instance: p.InstanceName, Accounts: slices.Sorted(maps.Keys(p.Accounts))}
		}
		rtArgs.Database.DefaultCell = cmp.Or(args.DefaultCell, postgres.MainCell)
	}
	rtArgs.Redis = omsruntime.RedisArgs{
		SentinelAddress: cache.SentinelAddress, MasterName: pulumi.String(cache.MasterName), Password: cache.Password,
	}
	rtArgs.AMQPURL = mq.AmqpURL
	backupBucket := args.Backup.Bucket.Name
	if backupBucket == "" {
		backupBucket = backup.BucketName(args.Backup.Project, args.Backup.Name)
	}
	rtArgs.BackupURL = "gs://" + backupBucket
	if cloudflareMode {
		rtArgs.Ingress.EdgeSelector = edge.ConnectorSelector(args.Edge.Name)
	} else {
		rtArgs.NEGAnnotations = map[string]string{}
		for _, color := range []string{omsruntime.Blue, omsruntime.Green} {
			rtArgs.NEGAnnotations[color] = edge.NEGAnnotation(args.Edge.Name, color)
		}
	}
	rt, err := omsruntime.New(ctx, name+"-runtime", &rtArgs, inCluster...)
	if err != nil {
		return nil, err
	}

	backupArgs := args.Backup
	backupArgs.Runtime = rt.Wiring
	backupArgs.AccountSecrets = accountSecrets
	backupArgs.Media.Writers = append(backupArgs.Media.Writers, rt.ServiceAccountEmail)
	// The worker lists the archives' names for the freshness alerts.
	backupArgs.Bucket.Listers = append(backupArgs.Bucket.Listers, rt.ServiceAccountEmail)
	backupArgs.StorageAgent = enabled.StorageAgent
	backups, err := backup.New(ctx, name+"-backup", &backupArgs, inCluster...)
	if err != nil {
		return nil, err
	}

	var site *dr.DR
	if args.DR != nil {
		drOpts := slices.Clone(gcpOpts)
		if cloudflareMode {
			drOpts = append(drOpts, pulumi.Providers(args.CloudflareProvider))
		}
		if site, err = dr.New(ctx, name+"-dr", args.DR, drOpts...); err != nil {
			return nil, err
		}
	}

	edgeArgs := args.Edge
	switch {
	case site != nil && cloudflareMode:
		// The primary load balancer already lists the (disabled) DR pool: declaring DR only enables it.
		edgeArgs.Cloudflare.DRPoolIDs = append(edgeArgs.Cloudflare.DRPoolIDs, site.DRPoolID)
	case site != nil && args.DR.Active:
		// Declaring DR points the hostnames' A records at the reserved DR address. The records then depend on it,
		// which is how the switch, an update targeted at the DR component and its dependents, reaches them.
		edgeArgs.GCP.DNS.Target = site.DRIPAddress
	}
	edgeArgs.Backend.Namespace = omsruntime.DefaultNamespace
	edgeArgs.Backend.ServiceName = omsruntime.ServiceName(runtimeName)
	edgeArgs.Backend.PodSelector = omsruntime.WebSelector(runtimeName)
	// GKE creates each color's NEGs from the color's Service: the edge looks them up once the Service exists, and
	// moves the load balancer's capacity to the active color once its smoke test passed.
	edgeArgs.Backend.Colors = map[string]edge.ColorBackend{}
	for color, ready := range rt.ColorServicesReady {
		edgeArgs.Backend.Colors[color] = edge.ColorBackend{ServiceReady: ready}
	}
	edgeArgs.Backend.ActiveColor = rt.ActiveColorReady
	edgeOpts := []pulumi.ResourceOption{parent, pulumi.DependsOn(append(enabled.Enabled(), ns, rt))}
	providers := []pulumi.ProviderResource{cluster.Provider}
	if args.CloudflareProvider != nil {
		providers = append(providers, args.CloudflareProvider)
	}
	edgeOpts = append(edgeOpts, pulumi.Providers(providers...))
	front, err := edge.New(ctx, name+"-edge", &edgeArgs, edgeOpts...)
	if err != nil {
		return nil, err
	}

	obsArgs := args.Observability
	obsArgs.Namespace, obsArgs.ClusterName = omsruntime.DefaultNamespace, args.Cluster.Name
	obsArgs.DatabaseInstance = postgres.InstancePattern(args.Database.Name, append([]string{postgres.MainCell}, slices.Sorted(maps.Keys(cells))...)...)
	obsArgs.Hostnames = args.Edge.Hostnames
	obsArgs.Targets = observability.Targets{
		Web:      observability.Target{Selector: omsruntime.WebSelector(runtimeName), Port: omsruntime.MetricsPortName},
		Worker:   observability.Target{Selector: omsruntime.WorkerSelector(runtimeName), Port: omsruntime.PortName},
		Redis:    observability.Target{Selector: redis.PodSelector(args.Redis.Name), Port: redis.ExporterPortName},
		RabbitMQ: observability.Target{Selector: rabbitmq.PodSelector(args.RabbitMQ.Name), Port: rabbitmq.MetricsPortName},
	}
	// The Monitoring API is on before any of it; the PodMonitorings go into the namespace, beside what they scrape.
	watch, err := observability.New(ctx, name+"-observability", &obsArgs, parent, pulumi.Providers(cluster.Provider),
		pulumi.DependsOn(append(enabled.Enabled(), ns, rt, cache, mq)))
	if err != nil {
		return nil, err
	}

	e.Network, e.Cluster, e.Database, e.Cells, e.Redis, e.RabbitMQ, e.Runtime, e.Edge = net, cluster, db, cells, cache, mq, rt, front
	e.Backup, e.DR, e.Observability = backups, site, watch
	return e, ctx.RegisterResourceOutputs(e, pulumi.Map{
		"network":          net.Network,
		"clusterName":      cluster.ClusterName,
		"databaseInstance": db.InstanceName,
	})
}

// newCells declares the instance of each of args.Cells like the main one, under the cell's names; the main one's
// Cloud SQL service agent, the project's, is granted each cell's key.
func newCells(ctx *pulumi.Context, name string, args *Args, net *network.Network, main *postgres.Postgres,
	opts []pulumi.ResourceOption) (map[string]*postgres.Postgres, error) {
	out := map[string]*postgres.Postgres{}
	for _, cell := range slices.Sorted(maps.Keys(args.Cells)) {
		if cell == postgres.MainCell {
			return nil, fmt.Errorf("environment: Cells[%q] is Database, the main cell's instance: remove it from Cells", cell)
		}
		a := args.Cells[cell]
		a.Name, a.Network, a.PrivateServices = postgres.CellName(args.Database.Name, cell), net.Network, net.PrivateServices
		a.ServiceAgent = main.ServiceAgent
		p, err := postgres.New(ctx, postgres.CellName(name, cell)+"-postgres", &a, opts...)
		if err != nil {
			return nil, fmt.Errorf("cell %s: %w", cell, err)
		}
		out[cell] = p
	}
	return out, nil
}
