package backup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	oms "github.com/omscloud/omscloud/runtime"
	"github.com/omscloud/omscloud/runtime/internal/omstest"
	"github.com/omscloud/omscloud/runtime/localenv"
)

func TestMain(m *testing.M) {
	code := localenv.RunTests(m)
	omstest.Stop()
	os.Exit(code)
}

// BenchmarkBackupRestore compares oms backup and restore with a raw pg_dump
// and pg_restore of the same account database in the same run, in MB of
// database (pg_database_size) per second:
//
//	go test ./backup/ -run '^$' -bench BackupRestore -benchtime 1x [-lines 300000]
func BenchmarkBackupRestore(b *testing.B) {
	ctx := context.Background()
	reg, url := omstest.Registry(b, nil)
	pg := omstest.Postgres(b)
	_, err := reg.CreateAccount(ctx, &oms.Account{ID: "bench", Name: "Bench"})
	require.NoError(b, err)
	s, err := reg.Store(ctx, "bench")
	require.NoError(b, err)
	for i := range 20 {
		lat, lon := 50+float64(i)/10, 4.0
		_, err := s.PutLocation(ctx, &oms.Location{Ref: fmt.Sprintf("loc-%d", i), Name: "L", Type: "store", Lat: &lat, Lon: &lon})
		require.NoError(b, err)
	}
	var csv strings.Builder
	csv.WriteString("sku,location,on_hand\n")
	for n := range benchLines {
		fmt.Fprintf(&csv, "SKU-%07d,loc-%d,%d\n", n/20, n%20, n%97)
	}
	_, err = s.LoadInventory(ctx, oms.NewCSVReader(strings.NewReader(csv.String())))
	require.NoError(b, err)
	for n := range 2000 {
		_, _, err := s.CreateOrder(ctx, fmt.Sprintf("k-%d", n), &oms.OrderRequest{Ref: fmt.Sprintf("o-%d", n),
			Items: []oms.Item{{SKU: fmt.Sprintf("SKU-%07d", n), Qty: 1}}, Delivery: oms.Delivery{Type: "CC", Location: "loc-0"}})
		require.NoError(b, err)
	}
	reg.Close()

	cfg, err := pgx.ParseConfig(url)
	require.NoError(b, err)
	dbName := cfg.Database + "_bench"
	admin, err := pgx.Connect(ctx, pg.PrimaryURL("postgres"))
	require.NoError(b, err)
	defer admin.Close(ctx)
	var dbBytes int64
	require.NoError(b, admin.QueryRow(ctx, `SELECT pg_database_size($1)`, dbName).Scan(&dbBytes))
	mb := float64(dbBytes) / 1e6
	key := testKey(b, 7)
	o := Options{DatabaseURL: url, Bucket: "file://" + b.TempDir(), Key: key, PGBinDir: pg.BinDir(), Release: "bench",
		Logger: localenv.TestLogger(b)}
	dumpFile := filepath.Join(b.TempDir(), "raw.pgdump")
	restoreDB := dbName + "_rawrestore"
	b.Cleanup(func() { _, _ = admin.Exec(ctx, `DROP DATABASE IF EXISTS `+restoreDB+` WITH (FORCE)`) })

	var tDump, tBackup, tRawRestore, tRestore time.Duration
	var archive int64
	b.ResetTimer()
	for range b.N {
		begin := time.Now()
		cmd := exec.Command(filepath.Join(pg.BinDir(), "pg_dump"), "--format=custom", "--no-owner", "--no-acl",
			"--file="+dumpFile, "--dbname="+pg.PrimaryURL(dbName))
		out, err := cmd.CombinedOutput()
		require.NoError(b, err, string(out))
		tDump += time.Since(begin)

		begin = time.Now()
		res, err := Backup(ctx, "hourly", o)
		require.NoError(b, err)
		tBackup += time.Since(begin)
		archive = res.Bytes

		_, err = admin.Exec(ctx, `DROP DATABASE IF EXISTS `+restoreDB+` WITH (FORCE)`)
		require.NoError(b, err)
		_, err = admin.Exec(ctx, `CREATE DATABASE `+restoreDB)
		require.NoError(b, err)
		begin = time.Now()
		cmd = exec.Command(filepath.Join(pg.BinDir(), "pg_restore"), "--no-owner", "--no-acl", "--exit-on-error",
			"--single-transaction", "--dbname="+pg.PrimaryURL(restoreDB), dumpFile)
		out, err = cmd.CombinedOutput()
		require.NoError(b, err, string(out))
		tRawRestore += time.Since(begin)

		begin = time.Now()
		_, err = Restore(ctx, res.Manifest.ID, o)
		require.NoError(b, err)
		tRestore += time.Since(begin)
		rows, _ := admin.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1`, dbName+`\_old\_%`)
		olds, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, n := range olds {
			_, _ = admin.Exec(ctx, `DROP DATABASE `+pgx.Identifier{n}.Sanitize()+` WITH (FORCE)`)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	rate := func(d time.Duration) float64 { return mb / (d.Seconds() / n) }
	b.ReportMetric(rate(tBackup), "backup-MB/s")
	b.ReportMetric(rate(tDump), "pg_dump-MB/s")
	b.ReportMetric(rate(tRestore), "restore-MB/s")
	b.ReportMetric(rate(tRawRestore), "pg_restore-MB/s")
	fi, _ := os.Stat(dumpFile)
	fmt.Printf("\ndatabase %.1f MB (%d inventory lines, 2000 orders); raw dump %.1f MB, archive %.1f MB\n",
		mb, benchLines, float64(fi.Size())/1e6, float64(archive)/1e6)
	fmt.Printf("%-10s %10s %12s %12s %7s\n", "figure", "MB/s", "baseline", "MB/s", "ratio")
	fmt.Printf("%-10s %10.1f %12s %12.1f %7.2f\n", "backup", rate(tBackup), "pg_dump", rate(tDump), rate(tBackup)/rate(tDump))
	fmt.Printf("%-10s %10.1f %12s %12.1f %7.2f\n", "restore", rate(tRestore), "pg_restore", rate(tRawRestore), rate(tRestore)/rate(tRawRestore))
}

const benchLines = 200_000
