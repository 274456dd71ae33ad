// Command omsbench measures the OMS runtime on this machine, every figure next
// to a baseline taken in the same run on the same PostgreSQL: pgbench -N TPS
// for order creation, raw COPY rows/s for inventory batches, the availability
// query run straight on PostgreSQL for availability latency, and pg_dump /
// pg_restore of the same account database for backup and restore. It starts its
// own services with localenv, runs the real `oms serve`, `oms worker`, `oms
// backup` and `oms restore` binaries, and prints one table and its JSON.
// bench/run.sh at the repository root builds and runs it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

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
	profile      string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o options
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "length of each timed phase (pgbench, availability, orders)")
	flag.IntVar(&o.lines, "lines", 1_000_000, "inventory lines per batch (and rows of the raw COPY baseline)")
	flag.IntVar(&o.locations, "locations", 100, "locations the lines spread over")
	flag.IntVar(&o.clients, "clients", 50, "concurrent clients for availability")
	flag.IntVar(&o.orderClients, "order-clients", 8, "concurrent clients creating orders (pgbench uses -c 8 -j 2)")
	flag.BoolVar(&o.standby, "standby", false, "add a synchronous streaming standby (every commit waits for it)")
	flag.StringVar(&o.omsBin, "oms-bin", "", "oms binary (default: go build ./cmd/oms)")
	flag.StringVar(&o.jsonOut, "json", "", "also write the JSON result to this file")
	flag.StringVar(&o.profile, "profile", "", "write each phase's CPU profiles of oms serve and worker and PostgreSQL's top statements to this directory")
	flag.Parse()
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "omsbench:", err)
		os.Exit(2)
	}
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "omsbench:", err)
		os.Exit(1)
	}
}

func (o options) validate() error {
	var errs []string
	if o.duration < time.Second {
		errs = append(errs, fmt.Sprintf("-duration %s: use at least 1s", o.duration))
	}
	if o.locations < 1 || o.locations > 1000 {
		errs = append(errs, fmt.Sprintf("-locations %d: use 1 to 1000", o.locations))
	}
	if o.lines < 2*o.locations {
		errs = append(errs, fmt.Sprintf("-lines %d: use at least 2 × -locations (%d), so that there are 2 SKUs", o.lines, 2*o.locations))
	}
	if o.clients < 1 || o.orderClients < 1 {
		errs = append(errs, "-clients and -order-clients: use at least 1")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// result is one measured figure next to its baseline from the same run.
type result struct {
	Figure         string  `json:"figure"`
	Value          float64 `json:"value"`
	Unit           string  `json:"unit"`
	Baseline       string  `json:"baseline"`
	BaselineValue  float64 `json:"baselineValue"`
	BaselineUnit   string  `json:"baselineUnit"`
	Ratio          float64 `json:"ratio"` // value / baselineValue
	HigherIsBetter bool    `json:"higherIsBetter"`
}

// report is the JSON document: the conditions of the run and its figures.
type report struct {
	Started   time.Time `json:"started"`
	Seconds   float64   `json:"seconds"`
	CPUs      int       `json:"cpus"`
	LoadAvg   string    `json:"loadAverageAtStart"` // the machine may be shared: read ratios, not absolutes
	Lines     int       `json:"lines"`
	Locations int       `json:"locations"`
	Clients   int       `json:"clients"`
	Orders    int       `json:"orders"`
	DBMB      float64   `json:"backupDatabaseMB"`
	Standby   bool      `json:"standby"`
	Phase     string    `json:"phase"`
	Results   []result  `json:"results"`
	// CPUSplit is each timed phase's CPU seconds per process group; PeakRSSMB is serve's and worker's VmHWM.
	CPUSplit  []cpuSplit         `json:"cpuSplit"`
	PeakRSSMB map[string]float64 `json:"peakRSSMB"`
	// PostgreSQLCPUms is PostgreSQL's CPU milliseconds per pgbench -N transaction and per order (created and
	// allocated): how many baseline transactions' worth of database work one order is.
	PostgreSQLCPUms map[string]float64 `json:"postgresCPUms"`
	// MergeBound is mergeBound's rows/s, beside the batches' lines/s they bound.
	MergeBound struct {
		Insert float64 `json:"insertRowsPerSec"`
		Update float64 `json:"updateRowsPerSec"`
		// the batches' lines/s, to print beside them
		newLines, reload float64
	} `json:"mergeBound"`
	cpuGroupNames []string
}

func (r *report) add(figure string, v float64, unit, baseline string, base float64, baseUnit string, higherIsBetter bool) {
	res := result{Figure: figure, Value: v, Unit: unit, Baseline: baseline, BaselineValue: base, BaselineUnit: baseUnit,
		HigherIsBetter: higherIsBetter}
	if base > 0 {
		res.Ratio = v / base
	}
	r.Results = append(r.Results, res)
}

func run(ctx context.Context, o options) error {
	rep := &report{Started: time.Now().UTC(), CPUs: runtime.NumCPU(), LoadAvg: loadAvg(), Lines: o.lines,
		Locations: o.locations, Clients: o.clients, Standby: o.standby, Phase: o.duration.String()}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir, err := os.MkdirTemp("", "omsbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	say("starting PostgreSQL (standby=%v), Redis + Sentinel, RabbitMQ", o.standby)
	settings := map[string]string{"max_connections": "300", "shared_buffers": "512MB"}
	if o.profile != "" {
		maps.Copy(settings, pgProfileSettings)
	}
	pg, err := localenv.StartPostgres(ctx, localenv.PostgresOptions{Dir: filepath.Join(dir, "pg"), Standby: o.standby, Logger: log,
		Settings: settings})
	if err != nil {
		return err
	}
	defer pg.Stop()
	// The server package may come without its client tools: name the missing one before any work.
	for _, tool := range []string{"pgbench", "psql", "pg_dump", "pg_restore"} {
		if _, err := os.Stat(filepath.Join(pg.BinDir(), tool)); err != nil {
			return fmt.Errorf("%s not found in %s (next to the PostgreSQL server); install the services with scripts/install-services.sh",
				tool, pg.BinDir())
		}
	}
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

	say("baseline: pgbench -N -c 8 -j 2 -T %s", o.duration)
	pgb, err := pgbench(ctx, pg, o.duration)
	if err != nil {
		return err
	}
	tps := pgb.tps
	say("baseline: raw COPY of %d lines", o.lines)
	copyRate, err := rawCopy(ctx, pg, o)
	if err != nil {
		return err
	}
	say("bound: the same lines inserted into a table keyed like stock, then every row updated, by PostgreSQL alone")
	if rep.MergeBound.Insert, rep.MergeBound.Update, err = mergeBound(ctx, pg); err != nil {
		return err
	}

	// The runtime: serve + worker processes.
	if err := exec.CommandContext(ctx, pg.BinDir()+"/psql", pg.PrimaryURL("postgres"), "-qc", "CREATE DATABASE oms").Run(); err != nil {
		return fmt.Errorf("create database oms: %w", err)
	}
	env := append(os.Environ(), "OMS_DATABASE_URL="+pg.URL("oms"), "OMS_ADMIN_TOKEN=bench-admin", "OMS_LISTEN=127.0.0.1:0",
		"OMS_AMQP_URL="+rmq.URL(), "OMS_REDIS_SENTINELS="+strings.Join(rds.SentinelAddrs(), ","), "OMS_REDIS_MASTER="+rds.MasterName(),
		"OMS_REDIS_PASSWORD="+rds.Password(), "OMS_REDIS_SENTINEL_PASSWORD="+rds.Password(), "OMS_DRAIN_DELAY=0s", "OMS_LOG_LEVEL=warn", "OMS_MAX_CONNS_PER_ACCOUNT=32",
		"OMS_METRICS_LISTEN=127.0.0.1:0") // serve's default metrics port may be taken
	if o.profile != "" {
		env = append(env, "OMS_PPROF=true")
	}
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

	cpu := &cpuMeter{groups: cpuGroups{
		{"oms serve", func() []int { return []int{api.cmd.Process.Pid} }},
		{"oms worker", func() []int { return []int{wrk.cmd.Process.Pid} }},
		{"PostgreSQL", pg.Processes},
		{"Redis", rds.Processes},
		{"RabbitMQ", rmq.Processes},
		{"load generator", func() []int { return []int{os.Getpid()} }},
	}}
	for _, g := range cpu.groups {
		rep.cpuGroupNames = append(rep.cpuGroupNames, g.name)
	}
	var prof *profiler
	if o.profile != "" {
		if prof, err = newProfiler(ctx, o.profile, pg, map[string]*process{"serve": api, "worker": wrk}); err != nil {
			return err
		}
	}
	// phase measures run, which takes about d (the length of the profiles with -profile).
	// run returns how many operations the phase completed (lines, requests, queries, orders).
	phase := func(name string, d time.Duration, run func() (float64, error)) error {
		if prof != nil {
			if err := prof.begin(ctx, name, d); err != nil {
				return err
			}
		}
		cpu.begin()
		ops, err := run()
		rep.CPUSplit = append(rep.CPUSplit, cpu.end(name, ops))
		if prof != nil && err == nil {
			err = prof.end(ctx, name)
		}
		return err
	}
	batchTime := time.Duration(o.lines/200_000+1) * time.Second

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

	say("inventory batch of %d new lines through the API", o.lines)
	var newRate float64
	if err := phase("inventory batch, new lines", batchTime, func() (_ float64, err error) {
		newRate, err = inventoryBatch(ctx, c, o, 0)
		return float64(o.lines), err
	}); err != nil {
		return err
	}
	rep.add("inventory batch, new lines (CSV, API)", newRate, "lines/s", "raw COPY", copyRate, "rows/s", true)
	say("inventory batch of the same %d lines, every quantity changed", o.lines)
	var reloadRate float64
	if err := phase("inventory batch, reload", batchTime, func() (_ float64, err error) {
		reloadRate, err = inventoryBatch(ctx, c, o, 1)
		return float64(o.lines), err
	}); err != nil {
		return err
	}
	rep.add("inventory batch, reload, every line changed", reloadRate, "lines/s", "raw COPY", copyRate, "rows/s", true)
	rep.MergeBound.newLines, rep.MergeBound.reload = newRate, reloadRate

	say("availability at %d clients: the query on PostgreSQL, then the API (cached mix, then all misses)", o.clients)
	var sql, hit, miss latency
	if err := phase("availability, SQL baseline", o.duration, func() (float64, error) {
		var err error
		sql, err = availabilitySQL(ctx, pg, o)
		return sql.count, err
	}); err != nil {
		return err
	}
	if err := phase("availability, cached mix", o.duration, func() (float64, error) {
		var err error
		hit, err = availabilityAPI(ctx, c, o, false)
		return hit.count, err
	}); err != nil {
		return err
	}
	if err := phase("availability, cache misses", o.duration, func() (float64, error) {
		var err error
		miss, err = availabilityAPI(ctx, c, o, true)
		return miss.count, err
	}); err != nil {
		return err
	}
	const onPG = "same query on PostgreSQL"
	rep.add("availability p50, cached mix (1000 distinct queries)", hit.p50, "ms", onPG+", p50", sql.p50, "ms", false)
	rep.add("availability p99, cached mix (1000 distinct queries)", hit.p99, "ms", onPG+", p99", sql.p99, "ms", false)
	rep.add("availability p50, every query distinct (cache misses)", miss.p50, "ms", onPG+", p50", sql.p50, "ms", false)
	rep.add("availability p99, every query distinct (cache misses)", miss.p99, "ms", onPG+", p99", sql.p99, "ms", false)
	rep.add("availability throughput, cached mix", hit.rate, "req/s", onPG, sql.rate, "queries/s", true)
	rep.add("availability throughput, cache misses", miss.rate, "req/s", onPG, sql.rate, "queries/s", true)

	say("orders for %s at %d clients, worker allocating alongside", o.duration, o.orderClients)
	var created int
	var createdRate, e2eRate float64
	pgConn, err := pgx.Connect(ctx, pg.PrimaryURL("postgres"))
	if err != nil {
		return err
	}
	defer pgConn.Close(ctx)
	sessions := &sessionCPU{conn: pgConn}
	var bySession map[string]float64
	if err := phase("orders, created and allocated", o.duration, func() (float64, error) {
		if err := sessions.begin(ctx); err != nil {
			return 0, err
		}
		var err error
		if created, createdRate, e2eRate, err = orders(ctx, c, o); err != nil {
			return 0, err
		}
		bySession, err = sessions.end(ctx)
		return float64(created), err
	}); err != nil {
		return err
	}
	rep.PeakRSSMB = map[string]float64{"serve": peakRSSMB(api.cmd.Process.Pid), "worker": peakRSSMB(wrk.cmd.Process.Pid)}
	rep.Orders = created
	if created > 0 {
		last := rep.CPUSplit[len(rep.CPUSplit)-1]
		perOrder := func(seconds float64) float64 { return 1000 * seconds / float64(created) }
		rep.PostgreSQLCPUms = map[string]float64{"pgbenchTx": 1000 * pgb.pgCPUPerTx, "pgbenchTxAllProcesses": 1000 * pgb.cpuPerTx, "order": perOrder(last.CPU["PostgreSQL"]),
			"orderServeSessions": perOrder(bySession["oms serve"]), "orderWorkerSessions": perOrder(bySession["oms worker"])}
	}
	rep.add("orders created/s (POST /v1/orders, 201)", createdRate, "orders/s", "pgbench -N -c 8 -j 2", tps, "tx/s", true)
	rep.add("orders allocated/s end to end (create → relay → RabbitMQ → reserve)", e2eRate, "orders/s", "pgbench -N -c 8 -j 2", tps, "tx/s", true)

	// Backup and restore run with the runtime stopped, so they measure the copy, not contention with it.
	api.stop()
	wrk.stop()
	say("backup and restore of the account database: pg_dump, oms backup, pg_restore, oms restore")
	br, err := backupRestore(ctx, pg, bin, dir)
	if err != nil {
		return err
	}
	rep.DBMB = br.mb
	rep.add("backup (oms backup --to file://, AES-256-GCM)", br.backup, "MB/s", "pg_dump -Fc", br.pgDump, "MB/s", true)
	rep.add("restore (oms restore: verify, pg_restore, count, switch)", br.restore, "MB/s", "pg_restore", br.pgRestore, "MB/s", true)

	rep.Seconds = time.Since(rep.Started).Seconds()
	if o.profile != "" {
		say("profiles in %s: go tool pprof -top <file>.pprof; PostgreSQL's statements in <file>.pg.txt", o.profile)
	}
	printTable(os.Stdout, rep)
	printCPU(os.Stdout, rep)
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	fmt.Printf("\n%s\n", b)
	if o.jsonOut != "" {
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", o.jsonOut, err)
		}
	}
	return nil
}

func say(format string, args ...any) { fmt.Fprintf(os.Stderr, "· "+format+"\n", args...) }

// loadAvg is the 1, 5 and 15 minute load average (Linux), to tell a quiet run from a busy one.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func printTable(w io.Writer, r *report) {
	fmt.Fprintf(w, "\nomsbench — %d CPUs, load %s; %d inventory lines × %d locations; %d orders; %.0f MB account database; standby=%v; %s phases\n\n",
		r.CPUs, r.LoadAvg, r.Lines, r.Locations, r.Orders, r.DBMB, r.Standby, r.Phase)
	tw := tabwriter.NewWriter(w, 2, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tresult\tbaseline (same run)\tratio")
	for _, x := range r.Results {
		better := "higher is better"
		if !x.HigherIsBetter {
			better = "lower is better"
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s %s %s\t%.2f× (%s)\n", x.Figure, num(x.Value), x.Unit, x.Baseline, num(x.BaselineValue),
			x.BaselineUnit, x.Ratio, better)
	}
	tw.Flush()
}

// num prints a figure with thousands separators and one decimal below 100.
func num(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
