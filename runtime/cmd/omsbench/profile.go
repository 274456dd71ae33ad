package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/omscloud/omscloud/runtime/localenv"
)

// profiler records where a phase's time went (-profile DIR): a CPU profile of oms serve and of oms worker (their
// --pprof), and the statements PostgreSQL spent the phase on (pg_stat_statements), one set of files per phase.
type profiler struct {
	dir   string
	pgURL string
	procs map[string]*process
	n     int
	wg    sync.WaitGroup
	errs  chan error
}

// pgProfileSettings load pg_stat_statements, which the server can only do at start.
var pgProfileSettings = map[string]string{"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.max": "1000",
	"pg_stat_statements.track": "all"}

func newProfiler(ctx context.Context, dir string, pg *localenv.Postgres, procs map[string]*process) (*profiler, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := &profiler{dir: dir, pgURL: pg.PrimaryURL("postgres"), procs: procs}
	if err := p.exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return nil, fmt.Errorf("-profile: %w", err)
	}
	return p, nil
}

func (p *profiler) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, p.pgURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// begin starts a phase expected to last about d: the statistics start from zero and each process is profiled for d.
func (p *profiler) begin(ctx context.Context, name string, d time.Duration) error {
	p.n++
	if err := p.exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
		return err
	}
	p.errs = make(chan error, len(p.procs))
	for who, proc := range p.procs {
		file := p.file(name, who+".pprof")
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", proc.opsAddr, max(1, int(d.Round(time.Second).Seconds())))
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.errs <- fetch(ctx, url, file)
		}()
	}
	return nil
}

// end waits for the profiles and writes the phase's top statements by total time.
func (p *profiler) end(ctx context.Context, name string) error {
	p.wg.Wait()
	close(p.errs)
	for err := range p.errs {
		if err != nil {
			return err
		}
	}
	conn, err := pgx.Connect(ctx, p.pgURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT calls, total_exec_time, mean_exec_time, rows, shared_blks_hit + shared_blks_read,
			wal_bytes, regexp_replace(query, '\s+', ' ', 'g')
		FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 40`)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%10s %10s %9s %10s %12s %12s  query\n", "calls", "total ms", "mean ms", "rows", "blocks", "WAL bytes")
	var calls, rowsN, blocks int64
	var total, mean float64
	var wal float64
	var query string
	_, err = pgx.ForEachRow(rows, []any{&calls, &total, &mean, &rowsN, &blocks, &wal, &query}, func() error {
		if len(query) > 160 {
			query = query[:160] + "…"
		}
		fmt.Fprintf(&b, "%10d %10.0f %9.3f %10d %12d %12.0f  %s\n", calls, total, mean, rowsN, blocks, wal, query)
		return nil
	})
	if err != nil {
		return err
	}
	return os.WriteFile(p.file(name, "pg.txt"), []byte(b.String()), 0o644)
}

func (p *profiler) file(phase, what string) string {
	slug := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(phase))
	return filepath.Join(p.dir, fmt.Sprintf("%d-%s.%s", p.n, slug, what))
}

func fetch(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("profile %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
