// Package environment composes one omscloud environment — network, GKE cluster and (as they land) the data tier,
// edge, runtime, backups and DR — from the components' own Args, wiring each component's outputs into the next.
package environment

import (
	"github.com/omscloud/omscloud/components/gke"
	"github.com/omscloud/omscloud/components/network"
	"github.com/omscloud/omscloud/components/postgres"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Args holds each component's arguments; New fills in the wiring between them.
type Args struct {
	Network network.Args
	// Cluster's Network, Subnetwork and range names come from the network component.
	Cluster gke.Args
	// Database's Network and PrivateServices come from the network component.
	Database postgres.Args
}

// Environment is the component.
type Environment struct {
	pulumi.ResourceState

	Network  *network.Network
	Cluster  *gke.Cluster
	Database *postgres.Postgres
}

// New declares the environment. Pass the stack region's GCP provider with pulumi.Providers.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Environment, error) {
	e := &Environment{}
	if err := ctx.RegisterComponentResource("omscloud:environment:Environment", name, e, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(e)

	net, err := network.New(ctx, name+"-network", &args.Network, parent)
	if err != nil {
		return nil, err
	}
	clusterArgs := args.Cluster
	clusterArgs.Network = net.Network
	clusterArgs.Subnetwork = net.Subnetwork
	clusterArgs.PodsRangeName = network.PodsRangeName
	clusterArgs.ServicesRangeName = network.ServicesRangeName
	cluster, err := gke.New(ctx, name+"-gke", &clusterArgs, parent)
	if err != nil {
		return nil, err
	}

	dbArgs := args.Database
	dbArgs.Network = net.Network
	dbArgs.PrivateServices = net.PrivateServices
	db, err := postgres.New(ctx, name+"-postgres", &dbArgs, parent)
	if err != nil {
		return nil, err
	}

	e.Network, e.Cluster, e.Database = net, cluster, db
	return e, ctx.RegisterResourceOutputs(e, pulumi.Map{
		"network":          net.Network,
		"clusterName":      cluster.ClusterName,
		"databaseInstance": db.InstanceName,
	})
}
