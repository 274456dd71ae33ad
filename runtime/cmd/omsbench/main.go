// Command omsbench measures the OMS runtime on this machine against baselines
// taken in the same run on the same PostgreSQL: pgbench -N TPS for order
// creation, raw COPY rows/s for inventory batches, and the availability query
// run straight on PostgreSQL for availability latency. It starts its own
// services with localenv, runs the real `oms serve` and `oms worker` binaries,
// and prints a table and JSON.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/omscloud/omscloud/runtime/localenv"
)

type options struct {
	duration     time.Duration
	lines        int
	locations    int
	clients      int
	orderClients int
	standby      bool
	omsBin       string
	jsonOut      string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o options
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "length of each timed phase (pgbench, orders, availability)")
	flag.IntVar(&o.lines, "lines", 1_000_000, "inventory lines per batch (and rows of the raw COPY baseline)")
	flag.IntVar(&o.locations, "locations", 100, "locations the lines spread over")
	flag.IntVar(&o.clients, "clients", 50, "concurrent clients for availability")
	flag.IntVar(&o.orderClients, "order-clients", 8, "concurrent clients creating orders (pgbench uses -c 8 -j 2)")
	flag.BoolVar(&o.standby, "standby", false, "add a synchronous streaming standby (every commit waits for it)")
	flag.StringVar(&o.omsBin, "oms-bin", "", "oms binary (default: go build ./cmd/oms)")
	flag.StringVar(&o.jsonOut, "json", "", "also write the JSON result to this file")
	flag.Parse()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "omsbench:", err)
		os.Exit(1)
	}
}

// result is one measured figure next to its baseline.
type result struct {
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Baseline string  `json:"baseline"`
	BaseVal  float64 `json:"baselineValue"`
	Ratio    float64 `json:"ratio"` // value / baseline
}

func run(ctx context.Context, o options) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir, err := os.MkdirTemp("", "omsbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	say := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "· "+format+"\n", args...) }

	say("starting PostgreSQL (standby=%v), Redis + Sentinel, RabbitMQ", o.standby)
	pg, err := localenv.StartPostgres(ctx, localenv.PostgresOptions{Dir: filepath.Join(dir, "pg"), Standby: o.standby, Logger: log,
		Settings: map[string]string{"max_connections": "300", "shared_buffers": "512MB"}})
	if err != nil {
		return err
	}
	defer pg.Stop()
	rds, err := localenv.StartRedis(ctx, localenv.RedisOptions{Dir: filepath.Join(dir, "redis"), Logger: log})
	if err != nil {
		return err
	}
	defer rds.Stop()
	rmq, err := localenv.StartRabbitMQ(ctx, localenv.RabbitMQOptions{Dir: filepath.Join(dir, "rmq"), Logger: log})
	if err != nil {
		return err
	}
	defer rmq.Stop()

	bin := o.omsBin
	if bin == "" {
		bin = filepath.Join(dir, "oms")
		say("building oms")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/omscloud/omscloud/runtime/cmd/oms").CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}

	var results []result
	add := func(name string, v float64, unit, baseline string, base float64) {
		r := result{Name: name, Value: v, Unit: unit, Baseline: baseline, BaseVal: base}
		if base > 0 {
			r.Ratio = v / base
		}
		results = append(results, r)
	}

	// Baseline 1: pgbench -N.
	say("baseline: pgbench -N -c 8 -j 2 -T %s", o.duration)
	tps, err := pgbench(ctx, pg, o.duration)
	if err != nil {
		return err
	}
	// Baseline 2: raw COPY of the same lines into a plain table.
	say("baseline: raw COPY of %d lines", o.lines)
	copyRate, err := rawCopy(ctx, pg, o)
	if err != nil {
		return err
	}

	// The runtime: serve + worker processes.
	if err := exec.CommandContext(ctx, pg.BinDir()+"/psql", pg.PrimaryURL("postgres"), "-qc", "CREATE DATABASE oms").Run(); err != nil {
		return fmt.Errorf("create database oms: %w", err)
	}
	env := append(os.Environ(), "OMS_DATABASE_URL="+pg.URL("oms"), "OMS_ADMIN_TOKEN=bench-admin", "OMS_LISTEN=127.0.0.1:0",
		"OMS_AMQP_URL="+rmq.URL(), "OMS_REDIS_SENTINELS="+strings.Join(rds.SentinelAddrs(), ","), "OMS_REDIS_MASTER="+rds.MasterName(),
		"OMS_REDIS_PASSWORD="+rds.Password(), "OMS_DRAIN_DELAY=0s", "OMS_LOG_LEVEL=warn", "OMS_MAX_CONNS_PER_ACCOUNT=32")
	migrate := exec.CommandContext(ctx, bin, "migrate")
	migrate.Env = env
	if out, err := migrate.CombinedOutput(); err != nil {
		return fmt.Errorf("oms migrate: %v\n%s", err, out)
	}
	api, err := startProcess(ctx, bin, env, "serve")
	if err != nil {
		return err
	}
	defer api.stop()
	wrk, err := startProcess(ctx, bin, env, "worker")
	if err != nil {
		return err
	}
	defer wrk.stop()

	c := &client{base: "http://" + api.addr, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 5 * time.Minute}}
	var acct struct{ APIKey string }
	if err := c.call(ctx, "POST", "/v1/accounts", "bench-admin", `{"id":"bench","name":"Bench"}`, nil, 201, &acct); err != nil {
		return err
	}
	c.key = acct.APIKey
	for i := range o.locations {
		body := fmt.Sprintf(`{"name":"Location %d","type":"%s","lat":%f,"lon":%f}`, i, []string{"store", "warehouse"}[i%2],
			45+float64(i%10), 2+float64(i/10))
		if err := c.call(ctx, "PUT", fmt.Sprintf("/v1/locations/loc-%03d", i), c.key, body, nil, 201, nil); err != nil {
			return err
		}
	}

	say("inventory batch of %d lines through the API", o.lines)
	batchRate, err := inventoryBatch(ctx, c, o)
	if err != nil {
		return err
	}
	add("inventory batch (CSV, API)", batchRate, "lines/s", "raw COPY rows/s", copyRate)

	say("availability at %d clients", o.clients)
	base50, base99, err := availabilitySQL(ctx, pg, o)
	if err != nil {
		return err
	}
	p50, p99, n, err := availabilityAPI(ctx, c, o, false)
	if err != nil {
		return err
	}
	u50, u99, un, err := availabilityAPI(ctx, c, o, true)
	if err != nil {
		return err
	}
	add("availability p50 (cached mix, 1000 distinct queries)", p50, "ms", "same query on PostgreSQL p50", base50)
	add("availability p99 (cached mix, 1000 distinct queries)", p99, "ms", "same query on PostgreSQL p99", base99)
	add("availability p50 (every query distinct: cache misses)", u50, "ms", "same query on PostgreSQL p50", base50)
	add("availability p99 (every query distinct: cache misses)", u99, "ms", "same query on PostgreSQL p99", base99)
	add("availability requests/s (cached mix)", float64(n)/o.duration.Seconds(), "req/s", "", 0)
	add("availability requests/s (misses)", float64(un)/o.duration.Seconds(), "req/s", "", 0)

	say("orders for %s at %d clients, worker allocating alongside", o.duration, o.orderClients)
	created, createdRate, e2eRate, err := orders(ctx, c, o)
	if err != nil {
		return err
	}
	add("orders created/s (POST /v1/orders, 201)", createdRate, "orders/s", "pgbench -N TPS", tps)
	add("orders allocated/s end to end (create → relay → RabbitMQ → reserve)", e2eRate, "orders/s", "pgbench -N TPS", tps)
	add("pgbench -N TPS (-c 8 -j 2)", tps, "tx/s", "", 0)
	add("raw COPY", copyRate, "rows/s", "", 0)

	tw := tabwriter.NewWriter(os.Stdout, 2, 2, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(os.Stdout, "\nomsbench — %d lines, %d locations, %d orders, standby=%v, %s phases\n\n", o.lines, o.locations, created,
		o.standby, o.duration)
	fmt.Fprintln(tw, "figure\tvalue\tunit\tbaseline\tbaseline value\tratio\t")
	for _, r := range results {
		ratio, base := "", ""
		if r.BaseVal > 0 {
			ratio, base = fmt.Sprintf("%.2f×", r.Ratio), fmt.Sprintf("%.1f", r.BaseVal)
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%s\t%s\t\n", r.Name, r.Value, r.Unit, r.Baseline, base, ratio)
	}
	tw.Flush()
	b, _ := json.MarshalIndent(map[string]any{"lines": o.lines, "locations": o.locations, "orders": created, "standby": o.standby,
		"phase": o.duration.String(), "results": results}, "", "  ")
	fmt.Printf("\n%s\n", b)
	if o.jsonOut != "" {
		return os.WriteFile(o.jsonOut, b, 0o644)
	}
	return nil
}

var tpsRe = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

func pgbench(ctx context.Context, pg *localenv.Postgres, d time.Duration) (float64, error) {
	bin := pg.BinDir() + "/pgbench"
	if err := exec.CommandContext(ctx, pg.BinDir()+"/psql", pg.PrimaryURL("postgres"), "-qc", "CREATE DATABASE pgbench").Run(); err != nil {
		return 0, fmt.Errorf("create pgbench database: %w", err)
	}
	url := pg.PrimaryURL("pgbench")
	if out, err := exec.CommandContext(ctx, bin, "-i", "-s", "10", "-q", url).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("pgbench -i: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, bin, "-N", "-c", "8", "-j", "2", "-T", strconv.Itoa(int(d.Seconds())), url).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %v\n%s", err, out)
	}
	m := tpsRe.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no tps in pgbench output:\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// line returns inventory line i: SKUs × locations, quantities that leave every SKU in stock.
func line(i, locations int) (sku, loc string, qty int) {
	return fmt.Sprintf("SKU-%06d", i/locations), fmt.Sprintf("loc-%03d", i%locations), 500 + (i*7919)%500
}

type lineSource struct {
	i, n, locations int
}

func (s *lineSource) Next() bool { s.i++; return s.i <= s.n }
func (s *lineSource) Values() ([]any, error) {
	sku, loc, q := line(s.i-1, s.locations)
	return []any{sku, loc, int64(q)}, nil
}
func (s *lineSource) Err() error { return nil }

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

func inventoryBatch(ctx context.Context, c *client, o options) (float64, error) {
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriterSize(pw, 1<<16)
		w.WriteString("sku,location,on_hand\n")
		for i := range o.lines {
			sku, loc, q := line(i, o.locations)
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

// availabilitySQL runs the availability query straight on the account database: the baseline.
func availabilitySQL(ctx context.Context, pg *localenv.Postgres, o options) (float64, float64, error) {
	cfg, err := pgxpool.ParseConfig(pg.URL("oms_bench"))
	if err != nil {
		return 0, 0, err
	}
	cfg.MaxConns = int32(o.clients)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return 0, 0, err
	}
	defer pool.Close()
	lat, _ := hammer(ctx, o.clients, o.duration, func(r *rand.Rand) error {
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
	return percentile(lat, 50), percentile(lat, 99), nil
}

// availabilityAPI asks the API; unique makes every query distinct (no cache hits).
func availabilityAPI(ctx context.Context, c *client, o options, unique bool) (float64, float64, int, error) {
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
		return 0, 0, 0, fmt.Errorf("availability: %d requests failed", errs)
	}
	return percentile(lat, 50), percentile(lat, 99), len(lat), nil
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

// process is an oms subcommand running as a child process.
type process struct {
	cmd  *exec.Cmd
	addr string
	logs *bytes.Buffer
}

func startProcess(ctx context.Context, bin string, env []string, sub string) (*process, error) {
	cmd := exec.Command(bin, sub)
	cmd.Env = append(env, "OMS_LOG_LEVEL=info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, logs: &bytes.Buffer{}}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec struct {
				Msg, Addr, Level string
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				if rec.Msg == "listening" {
					addrc <- rec.Addr
				}
				if rec.Level == "WARN" || rec.Level == "ERROR" {
					fmt.Fprintf(os.Stderr, "  oms %s: %s\n", sub, sc.Bytes())
				}
			}
		}
	}()
	select {
	case p.addr = <-addrc:
		return p, nil
	case <-time.After(60 * time.Second):
		p.stop()
		return nil, fmt.Errorf("oms %s did not start", sub)
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}
