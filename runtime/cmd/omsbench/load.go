package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/omscloud/omscloud/runtime/localenv"
)

var (
	tpsRe = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	txRe  = regexp.MustCompile(`number of transactions actually processed: ([0-9]+)`)
)

// pgbenchResult is the baseline's rate and what PostgreSQL spent on each of its transactions.
type pgbenchResult struct {
	tps float64
	// pgCPUPerTx is PostgreSQL's CPU seconds over the run divided by the transactions it committed.
	pgCPUPerTx float64
	// cpuPerTx adds pgbench's own CPU: the machine's CPU per transaction, to compare with the phases' CPU per op.
	cpuPerTx float64
}

func pgbench(ctx context.Context, pg *localenv.Postgres, d time.Duration) (pgbenchResult, error) {
	bin := pg.BinDir() + "/pgbench"
	if err := exec.CommandContext(ctx, pg.BinDir()+"/psql", pg.PrimaryURL("postgres"), "-qc", "CREATE DATABASE pgbench").Run(); err != nil {
		return pgbenchResult{}, fmt.Errorf("create pgbench database: %w", err)
	}
	url := pg.PrimaryURL("pgbench")
	if out, err := exec.CommandContext(ctx, bin, "-i", "-s", "10", "-q", url).CombinedOutput(); err != nil {
		return pgbenchResult{}, fmt.Errorf("pgbench -i: %v\n%s", err, out)
	}
	// pgbench runs as omsbench's child: its CPU counts in omsbench's own once reaped.
	meter := &cpuMeter{groups: cpuGroups{{"PostgreSQL", pg.Processes}, {"pgbench", func() []int { return []int{os.Getpid()} }}}}
	meter.begin()
	out, err := exec.CommandContext(ctx, bin, "-N", "-c", "8", "-j", "2", "-T", strconv.Itoa(int(d.Seconds())), url).CombinedOutput()
	time.Sleep(300 * time.Millisecond) // pgbench's backends exit with it: their CPU counts once the postmaster reaps them
	cpu := meter.end("pgbench", 0)
	if err != nil {
		return pgbenchResult{}, fmt.Errorf("pgbench: %v\n%s", err, out)
	}
	m, n := tpsRe.FindSubmatch(out), txRe.FindSubmatch(out)
	if m == nil || n == nil {
		return pgbenchResult{}, fmt.Errorf("no tps or transaction count in pgbench output:\n%s", out)
	}
	tps, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return pgbenchResult{}, err
	}
	txs, err := strconv.ParseFloat(string(n[1]), 64)
	if err != nil || txs == 0 {
		return pgbenchResult{}, fmt.Errorf("pgbench processed %q transactions", n[1])
	}
	return pgbenchResult{tps: tps, pgCPUPerTx: cpu.CPU["PostgreSQL"] / txs, cpuPerTx: (cpu.CPU["PostgreSQL"] + cpu.CPU["pgbench"]) / txs}, nil
}

// line returns inventory line i of batch generation gen: SKUs × locations, quantities that leave every SKU
// in stock and differ on every line from one generation to the next.
func line(i, locations, gen int) (sku, loc string, qty int) {
	return fmt.Sprintf("SKU-%06d", i/locations), fmt.Sprintf("loc-%03d", i%locations), 500 + (i*7919)%500 + 100*gen
}

type lineSource struct {
	i, n, locations int
}

func (s *lineSource) Next() bool { s.i++; return s.i <= s.n }
func (s *lineSource) Values() ([]any, error) {
	sku, loc, q := line(s.i-1, s.locations, 0)
	return []any{sku, loc, int64(q)}, nil
}
func (s *lineSource) Err() error { return nil }

// rawCopy is the inventory baseline: the same lines COPYed into a plain table.
func rawCopy(ctx context.Context, pg *localenv.Postgres, o options) (float64, error) {
	conn, err := pgx.Connect(ctx, pg.PrimaryURL("pgbench"))
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE raw_inventory (sku text, location text, on_hand bigint)`); err != nil {
		return 0, err
	}
	start := time.Now()
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"raw_inventory"}, []string{"sku", "location", "on_hand"},
		&lineSource{n: o.lines, locations: o.locations})
	if err != nil {
		return 0, fmt.Errorf("raw copy: %w", err)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// mergeBound is what one PostgreSQL backend does with rawCopy's lines and nothing else: INSERT ... SELECT into a
// table keyed like stock, then one UPDATE of every row, in rows/s. A batch is one transaction, so one backend
// merges it: these bound the inventory figures on this machine, whatever the runtime does around them.
func mergeBound(ctx context.Context, pg *localenv.Postgres) (insert, update float64, err error) {
	conn, err := pgx.Connect(ctx, pg.PrimaryURL("pgbench"))
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	timed := func(sql string) (float64, error) {
		start := time.Now()
		tag, err := conn.Exec(ctx, sql)
		if err != nil {
			return 0, fmt.Errorf("merge bound: %w", err)
		}
		return float64(tag.RowsAffected()) / time.Since(start).Seconds(), nil
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE merge_bound (sku text, location text, on_hand bigint, PRIMARY KEY (sku, location))`); err != nil {
		return 0, 0, err
	}
	if insert, err = timed(`INSERT INTO merge_bound SELECT sku, location, on_hand FROM raw_inventory`); err != nil {
		return 0, 0, err
	}
	if update, err = timed(`UPDATE merge_bound SET on_hand = on_hand + 1`); err != nil {
		return 0, 0, err
	}
	_, err = conn.Exec(ctx, `DROP TABLE merge_bound`)
	return insert, update, err
}

// inventoryBatch streams generation gen of the lines as one CSV batch through the API.
func inventoryBatch(ctx context.Context, c *client, o options, gen int) (float64, error) {
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriterSize(pw, 1<<16)
		w.WriteString("sku,location,on_hand\n")
		for i := range o.lines {
			sku, loc, q := line(i, o.locations, gen)
			fmt.Fprintf(w, "%s,%s,%d\n", sku, loc, q)
		}
		w.Flush()
		pw.Close()
	}()
	start := time.Now()
	var res struct {
		Accepted int64
		Rejected []any
	}
	if err := c.call(ctx, "POST", "/v1/inventory/batches", c.key, pr, []string{"Content-Type", "text/csv"}, 200, &res); err != nil {
		return 0, err
	}
	el := time.Since(start)
	if res.Accepted != int64(o.lines) {
		return 0, fmt.Errorf("batch accepted %d of %d lines (rejected %v)", res.Accepted, o.lines, res.Rejected)
	}
	return float64(res.Accepted) / el.Seconds(), nil
}

func skuCount(o options) int { return o.lines / o.locations }

// latency is a timed phase: p50 and p99 in ms, completed requests per second.
type latency struct{ p50, p99, rate, count float64 }

func summarise(lat []float64, d time.Duration) latency {
	n := float64(len(lat))
	return latency{p50: percentile(lat, 50), p99: percentile(lat, 99), rate: n / d.Seconds(), count: n}
}

// availabilitySQL runs the availability query straight on the account database: the baseline.
func availabilitySQL(ctx context.Context, pg *localenv.Postgres, o options) (latency, error) {
	cfg, err := pgxpool.ParseConfig(pg.URL("oms_bench"))
	if err != nil {
		return latency{}, err
	}
	cfg.MaxConns = int32(o.clients)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return latency{}, err
	}
	defer pool.Close()
	lat, errs := hammer(ctx, o.clients, o.duration, func(r *rand.Rand) error {
		skus := []string{fmt.Sprintf("SKU-%06d", r.IntN(skuCount(o))), fmt.Sprintf("SKU-%06d", r.IntN(skuCount(o)))}
		rows, err := pool.Query(ctx, `SELECT l.ref, l.name, l.type, l.lat, l.lon, s.sku, GREATEST(s.on_hand - s.reserved, 0)
			FROM stock s JOIN locations l ON l.id = s.location_id WHERE s.sku = ANY($1)`, skus)
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		return rows.Err()
	})
	if errs > 0 {
		return latency{}, fmt.Errorf("availability on PostgreSQL: %d queries failed", errs)
	}
	return summarise(lat, o.duration), nil
}

// availabilityAPI asks the API; unique makes every query distinct (no cache hits).
func availabilityAPI(ctx context.Context, c *client, o options, unique bool) (latency, error) {
	var seq atomic.Int64
	lat, errs := hammer(ctx, o.clients, o.duration, func(r *rand.Rand) error {
		q := r.IntN(1000)
		lat, lon := 45+float64(q%50)*0.1, 2+float64(q/50)*0.1
		if unique {
			lat += float64(seq.Add(1)) * 1e-7
		}
		body := fmt.Sprintf(`{"items":[{"sku":"SKU-%06d","qty":1},{"sku":"SKU-%06d","qty":2}],"near":{"lat":%.7f,"lon":%.7f}}`,
			q%skuCount(o), (q+1)%skuCount(o), lat, lon)
		return c.call(ctx, "POST", "/v1/availability", c.key, body, nil, 200, nil)
	})
	if errs > 0 {
		return latency{}, fmt.Errorf("availability: %d requests failed", errs)
	}
	return summarise(lat, o.duration), nil
}

func orders(ctx context.Context, c *client, o options) (int, float64, float64, error) {
	var seq atomic.Int64
	start := time.Now()
	lat, errs := hammer(ctx, o.orderClients, o.duration, func(r *rand.Rand) error {
		n := seq.Add(1)
		body := fmt.Sprintf(`{"ref":"bench-%d","items":[{"sku":"SKU-%06d","qty":1}],"delivery":{"type":"HD","address":{"lat":%f,"lon":%f}}}`,
			n, r.IntN(skuCount(o)), 45+r.Float64()*10, 2+r.Float64()*10)
		return c.call(ctx, "POST", "/v1/orders", c.key, body, []string{"Idempotency-Key", fmt.Sprintf("bench-%d", n)}, 201, nil)
	})
	if errs > 0 {
		return 0, 0, 0, fmt.Errorf("orders: %d requests failed", errs)
	}
	created := len(lat)
	createdRate := float64(created) / o.duration.Seconds()
	// End to end: until the worker has allocated every order.
	for {
		var page struct{ Orders []any }
		if err := c.call(ctx, "GET", "/v1/orders?status=CREATED&limit=1", c.key, nil, nil, 200, &page); err != nil {
			return 0, 0, 0, err
		}
		if len(page.Orders) == 0 {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return 0, 0, 0, errors.New("orders not processed within 10 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return created, createdRate, float64(created) / time.Since(start).Seconds(), nil
}

// hammer runs fn from n clients for d and returns each success's latency in ms and the error count.
func hammer(ctx context.Context, n int, d time.Duration, fn func(*rand.Rand) error) ([]float64, int) {
	var (
		mu   sync.Mutex
		lat  []float64
		errs int
		wg   sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	for i := range n {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 42))
			var mine []float64
			bad := 0
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t := time.Now()
				if err := fn(r); err != nil {
					bad++
					if bad <= 3 {
						fmt.Fprintln(os.Stderr, "  request failed:", err)
					}
					continue
				}
				mine = append(mine, float64(time.Since(t).Microseconds())/1000)
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	return lat, errs
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	return v[min(len(v)-1, int(float64(len(v))*p/100))]
}

type client struct {
	base, key string
	hc        *http.Client
}

func (c *client) call(ctx context.Context, method, path, key string, body any, header []string, want int, out any) error {
	var rd io.Reader
	switch b := body.(type) {
	case string:
		rd = strings.NewReader(b)
	case io.Reader:
		rd = b
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
