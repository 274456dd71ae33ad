package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/omscloud/omscloud/runtime/backup"
	"github.com/omscloud/omscloud/runtime/metrics"
)

// BackupWatchOptions configures WatchBackups.
type BackupWatchOptions struct {
	// URL is the backup bucket (gs://<bucket> or file:///<dir>), the one `oms backup --to` writes.
	URL     string
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// Every is the listing interval (default 5m: the freshness alert's resolution is minutes, and a listing is a
	// few List calls).
	Every time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// WatchBackups lists the backup bucket every Every and exports, per tier, when the newest archive was written: the
// backup CronJobs' pods are gone before anything could scrape them, and an archive appears under its key only once
// its upload completed, so the bucket itself is the record of success. Listing from the runtime also proves the
// bucket (in the DR region) is reachable. A tier with no archive yet reports when the watch started, so a new
// environment alerts only if its first backup never comes.
func WatchBackups(ctx context.Context, o BackupWatchOptions) error {
	if o.Every <= 0 {
		o.Every = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	started := o.Now()
	t := time.NewTicker(o.Every)
	defer t.Stop()
	for {
		if err := listBackups(ctx, o, started); err != nil && ctx.Err() == nil {
			o.Metrics.BackupStoreUp.Set(0)
			o.Logger.Warn("cannot list the backup bucket", "url", o.URL, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func listBackups(ctx context.Context, o BackupWatchOptions, started time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	b, err := backup.OpenBucket(ctx, o.URL)
	if err != nil {
		return err
	}
	defer b.Close()
	objs, err := backup.List(ctx, b)
	if err != nil {
		return err
	}
	newest := map[string]time.Time{}
	for _, obj := range objs {
		if obj.Created.After(newest[obj.Tier]) {
			newest[obj.Tier] = obj.Created
		}
	}
	for _, tier := range backup.TierNames {
		at, ok := newest[tier]
		if !ok {
			at = started
		}
		o.Metrics.BackupLastSuccess.WithLabelValues(tier).Set(float64(at.Unix()))
	}
	o.Metrics.BackupStoreUp.Set(1)
	return nil
}
