package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/omscloud/omscloud/runtime/backup"
)

func backupOptions(cfg *config, log *slog.Logger, bucket string, needKey bool) (backup.Options, error) {
	o := backup.Options{DatabaseURL: cfg.DatabaseURL, Cells: cfg.Cells, NamePrefix: cfg.AccountDBPrefix, Bucket: bucket,
		MediaURL: cfg.MediaURL, Release: cfg.Release, PGBinDir: cfg.PGBinDir, Force: cfg.Force, Logger: log}
	if needKey {
		k, err := backup.LoadKey(cfg.KeyFile, cfg.BackupKey)
		if err != nil {
			return o, err
		}
		o.Key = k
	}
	return o, nil
}

// runBackup writes one archive and prints what it wrote as JSON.
func runBackup(ctx context.Context, cfg *config, log *slog.Logger, stdout io.Writer) error {
	o, err := backupOptions(cfg, log, cfg.BackupURL, true)
	if err != nil {
		return err
	}
	log.Info("backup started", "tier", cfg.Tier, "to", cfg.BackupURL, "database", redactURL(cfg.DatabaseURL), "release", cfg.Release)
	res, err := backup.Backup(ctx, cfg.Tier, o)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	ids := make([]string, len(res.Manifest.Accounts))
	for i, a := range res.Manifest.Accounts {
		ids[i] = a.ID
	}
	log.Info("backup written", "key", res.Key, "bytes", res.Bytes, "elapsed", res.Elapsed.Round(time.Millisecond))
	return json.NewEncoder(stdout).Encode(map[string]any{"key": res.Key, "id": res.Manifest.ID, "tier": res.Manifest.Tier,
		"release": res.Manifest.Release, "accounts": ids, "rows": res.Manifest.TotalRows(), "bytes": res.Bytes,
		"seconds": res.Elapsed.Seconds()})
}

// listed is one line of `oms backup list`.
type listed struct {
	backup.Object
	Release  string   `json:"release"`
	Accounts []string `json:"accounts"`
	Error    string   `json:"error,omitempty"`
}

func listBackups(ctx context.Context, cfg *config, stdout io.Writer) error {
	b, err := backup.OpenBucket(ctx, cfg.BackupURL)
	if err != nil {
		return err
	}
	defer b.Close()
	objs, err := backup.List(ctx, b)
	if err != nil {
		return err
	}
	out := make([]listed, 0, len(objs))
	for _, o := range objs {
		l := listed{Object: o, Accounts: []string{}}
		// The trailer is shown as found: authenticating it needs the key, restore does.
		if m, _, _, err := backup.ReadManifest(ctx, b, o); err != nil {
			l.Error = err.Error()
		} else {
			l.Release = m.Release
			for _, a := range m.Accounts {
				l.Accounts = append(l.Accounts, a.ID)
			}
		}
		out = append(out, l)
	}
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIER\tCREATED\tSIZE\tRELEASE\tACCOUNTS")
	for _, l := range out {
		accts := strings.Join(l.Accounts, ",")
		if l.Error != "" {
			accts = "DAMAGED: " + l.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", l.ID, l.Tier, l.Created.Format(time.RFC3339), humanBytes(l.Size),
			l.Release, accts)
	}
	return tw.Flush()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func pruneBackups(ctx context.Context, cfg *config, log *slog.Logger, stdout io.Writer) error {
	now := time.Now()
	if cfg.PruneNow != "" {
		t, err := time.Parse(time.RFC3339, cfg.PruneNow)
		if err != nil {
			return fmt.Errorf("--now %q: use RFC 3339, e.g. 2026-11-21T14:00:00Z", cfg.PruneNow)
		}
		now = t
	}
	b, err := backup.OpenBucket(ctx, cfg.BackupURL)
	if err != nil {
		return err
	}
	defer b.Close()
	deleted, kept, err := backup.Prune(ctx, b, now, cfg.DryRun)
	verb := "deleted"
	if cfg.DryRun {
		verb = "would delete"
	}
	for _, o := range deleted {
		fmt.Fprintf(stdout, "%s %s\n", verb, o.Key)
	}
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	log.Info("pruned", "deleted", len(deleted), "kept", kept, "dry_run", cfg.DryRun)
	fmt.Fprintf(stdout, "%s %d, kept %d\n", verb, len(deleted), kept)
	return nil
}

func runRestore(ctx context.Context, cfg *config, log *slog.Logger, stdout io.Writer) error {
	o, err := backupOptions(cfg, log, cfg.RestoreFrom, true)
	if err != nil {
		return err
	}
	id := cfg.RestoreID // empty with --latest
	res, err := backup.Restore(ctx, id, o)
	if err != nil {
		if errors.Is(err, backup.ErrWrongKey) || errors.Is(err, backup.ErrCorrupt) || errors.Is(err, backup.ErrWritten) {
			return fmt.Errorf("restore: %w; nothing was changed", err)
		}
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(stdout, "restored %s (release %s): %d accounts, %d rows, %d media objects, %s in %.1fs\n",
		res.ID, res.Release, res.Accounts, res.Rows, res.Media, humanBytes(res.Bytes), res.Elapsed.Seconds())
	for db, old := range res.Replaced {
		fmt.Fprintf(stdout, "  %s: the previous database is kept as %s (drop it once checked)\n", db, old)
	}
	return nil
}
