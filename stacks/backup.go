package stacks

import "github.com/omscloud/omscloud/components/backup"

// backupPlacement decides where backups and media live. Media is always replicated across the primary and DR
// regions of the jurisdiction. Backups go to the DR region when DR is on (a DR spin-up then restores locally, and
// the copies sit outside the primary's failure domain), else to the jurisdiction's storage location — unless
// backup.location pins the bucket (a bucket never moves). A single-region jurisdiction keeps everything at home unless
// the stack acknowledged cross-border DR.
func (c *Config) backupPlacement() (bucket backup.BucketArgs, media backup.MediaArgs, keepInRegion bool) {
	bucket, media, keepInRegion = c.defaultBackupPlacement()
	if c.Backup.Location != "" {
		bucket = backup.BucketArgs{Location: c.Backup.Location, DataLocations: c.Backup.DataLocations}
	}
	return bucket, media, keepInRegion
}

// defaultBackupPlacement is backupPlacement without a pinned bucket.
func (c *Config) defaultBackupPlacement() (bucket backup.BucketArgs, media backup.MediaArgs, keepInRegion bool) {
	primary := c.Region.Primary.GCPRegion
	if c.Region.DRCrossBorder && !(c.DR.Enabled && c.DR.AcknowledgeCrossBorder) {
		return backup.BucketArgs{Location: primary}, backup.MediaArgs{Location: primary}, true
	}
	drRegion := c.DR.GCPRegion
	if drRegion == "" {
		drRegion = c.Region.DR.GCPRegion
	}
	if drRegion == "" {
		// A DR environment (DRConfigFor) has no further site: its copies stay in the jurisdiction's location.
		return backup.BucketArgs{Location: c.Region.StorageLocation}, backup.MediaArgs{Location: c.Region.StorageLocation}, false
	}
	media = backup.MediaDualRegion(primary, drRegion)
	if c.DR.Enabled {
		return backup.BucketArgs{Location: drRegion}, media, false
	}
	return backup.BucketArgs{Location: c.Region.StorageLocation}, media, false
}

// storageLocations are the locations backups, media and their keys may use.
func (c *Config) storageLocations() []string {
	bucket, media, _ := c.backupPlacement()
	out := []string{bucket.Location, backup.KeyLocation(bucket.Location), media.Location, backup.KeyLocation(media.Location)}
	return append(out, media.DataLocations...)
}
