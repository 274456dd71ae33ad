package worker_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/omscloud/omscloud/runtime/backup"
	"github.com/omscloud/omscloud/runtime/metrics"
	"github.com/omscloud/omscloud/runtime/worker"
)

// TestWatchBackupsExportsTheNewestArchivePerTier: the freshness alerts read these gauges.
func TestWatchBackupsExportsTheNewestArchivePerTier(t *testing.T) {
	dir := t.TempDir()
	started := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, at := range []time.Time{started.Add(-2 * time.Hour), started.Add(-time.Hour)} {
		_, key := backup.NewID(backup.TierNames[0], at)
		require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(key)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, key), []byte("archive"), 0o644))
	}
	m := metrics.New()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- worker.WatchBackups(ctx, worker.BackupWatchOptions{URL: "file://" + dir, Metrics: m, Logger: quiet,
			Every: 10 * time.Millisecond, Now: func() time.Time { return started }})
	}()
	require.Eventually(t, func() bool { return value(t, m.BackupStoreUp) == 1 }, 5*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	assert.Equal(t, float64(started.Add(-time.Hour).Unix()), value(t, m.BackupLastSuccess.WithLabelValues("hourly")), "the newest hourly archive")
	assert.Equal(t, float64(started.Unix()), value(t, m.BackupLastSuccess.WithLabelValues("weekly")), "no weekly yet: the watch's start")

	// A bucket that cannot be listed reports the store down.
	m = metrics.New()
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.NoError(t, worker.WatchBackups(ctx, worker.BackupWatchOptions{URL: "s3://nowhere", Metrics: m, Logger: quiet, Every: 10 * time.Millisecond}))
	assert.Equal(t, 0.0, value(t, m.BackupStoreUp))
}

func value(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, g.Write(&m))
	return m.GetGauge().GetValue()
}
