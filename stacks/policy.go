package stacks

import "github.com/omscloud/omscloud/policy"

// PolicyContext tells the policies what this stack is allowed to be.
func (c *Config) PolicyContext() policy.Context {
	return policy.Context{
		Environment:      c.Environment,
		Edge:             c.Edge.Provider,
		PrimaryRegion:    c.Region.Primary.GCPRegion,
		DRRegion:         c.DR.GCPRegion,
		AllowedLocations: append([]string{c.Region.StorageLocation, c.Database.BackupLocation}, c.storageLocations()...),
	}
}
