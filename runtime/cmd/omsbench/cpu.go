package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/omscloud/omscloud/runtime/internal/procstat"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times (100 on every Linux this runs on).
const clockTicks = 100

// cpuGroups are what the 2 cores were doing, named as the table prints them; each lists its processes' PIDs now.
type cpuGroups []struct {
	name string
	pids func() []int
}

// cpuMeter splits each phase's CPU time between the groups (runtime, PostgreSQL, the cache and broker, the load
// generator): whether a figure is bound by the runtime or by what it waits for.
type cpuMeter struct {
	groups cpuGroups
	start  time.Time
	before map[string]float64
}

// cpuSplit is one phase's CPU seconds per group, its wall time and the operations it completed.
type cpuSplit struct {
	Phase      string             `json:"phase"`
	Seconds    float64            `json:"seconds"`
	CPU        map[string]float64 `json:"cpuSeconds"`
	Operations float64            `json:"operations"`
}

// cpuPerOp is the CPU seconds of every process here per operation: the cores divided by it are the most operations/s
// this code can do on this machine, whoever does them.
func (s cpuSplit) cpuPerOp() float64 {
	total := 0.0
	for _, t := range s.CPU {
		total += t
	}
	return total / s.Operations
}

func (m *cpuMeter) begin() {
	m.start, m.before = time.Now(), m.sample()
}

func (m *cpuMeter) end(phase string, ops float64) cpuSplit {
	after := m.sample()
	s := cpuSplit{Phase: phase, Seconds: time.Since(m.start).Seconds(), CPU: map[string]float64{}, Operations: ops}
	for _, g := range m.groups {
		s.CPU[g.name] = max(after[g.name]-m.before[g.name], 0)
	}
	return s
}

// sample is each group's CPU seconds so far: its processes' own time and their reaped children's (a PostgreSQL
// backend that exited is counted in the postmaster's), so a delta is right even when processes come and go.
func (m *cpuMeter) sample() map[string]float64 {
	out := map[string]float64{}
	for _, g := range m.groups {
		for _, pid := range g.pids() {
			out[g.name] += procCPU(pid)
		}
	}
	return out
}

// procCPU is utime+stime+cutime+cstime of a process, in seconds (0 if it is gone).
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: the fields start after its closing parenthesis.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return 0
	}
	total := 0.0
	for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime: fields 14-17 of proc(5)
		v, _ := strconv.ParseFloat(f[i], 64)
		total += v
	}
	return total / clockTicks
}

// peakRSSMB is a process's peak resident set (VmHWM), in MB; 0 if unreadable.
func peakRSSMB(pid int) float64 {
	n, _ := procstat.PeakRSS(pid)
	return float64(n) / (1 << 20)
}

// printCPU prints each phase's CPU split as shares of the machine's capacity over the phase (cores × wall time).
func printCPU(w io.Writer, r *report) {
	if len(r.CPUSplit) == 0 {
		return
	}
	fmt.Fprintf(w, "\nCPU per phase, %% of %d cores over the phase (idle: what no process here used)\n\n", r.CPUs)
	tw := tabwriter.NewWriter(w, 2, 2, 2, ' ', 0)
	fmt.Fprint(tw, "phase\tseconds")
	for _, g := range r.cpuGroupNames {
		fmt.Fprintf(tw, "\t%s", g)
	}
	fmt.Fprintln(tw, "\tidle\tCPU per op, all\tops/s: most, measured")
	for _, s := range r.CPUSplit {
		capacity := s.Seconds * float64(r.CPUs)
		fmt.Fprintf(tw, "%s\t%.1f", s.Phase, s.Seconds)
		used := 0.0
		for _, g := range r.cpuGroupNames {
			used += s.CPU[g]
			fmt.Fprintf(tw, "\t%.0f%%", 100*s.CPU[g]/capacity)
		}
		fmt.Fprintf(tw, "\t%.0f%%", max(0, 100*(capacity-used)/capacity))
		if s.Operations > 0 {
			fmt.Fprintf(tw, "\t%.3g ms\t%.0f, %.0f (%.0f%%)", 1000*s.cpuPerOp(), float64(r.CPUs)/s.cpuPerOp(), s.Operations/s.Seconds,
				100*s.Operations/s.Seconds*s.cpuPerOp()/float64(r.CPUs))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintf(w, "\npeak RSS: oms serve %.0f MB, oms worker %.0f MB\n", r.PeakRSSMB["serve"], r.PeakRSSMB["worker"])
	if c := r.PostgreSQLCPUms; c != nil && c["pgbenchTx"] > 0 {
		fmt.Fprintf(w, "PostgreSQL CPU: %.2f ms per order (created and allocated), %.2f ms per pgbench -N transaction: an order is %.1f of them\n",
			c["order"], c["pgbenchTx"], c["order"]/c["pgbenchTx"])
		fmt.Fprintf(w, "  of which %.2f ms in serve's sessions (creating it), %.2f ms in the worker's (allocating and relaying it), "+
			"%.2f ms in no session of theirs (PostgreSQL's own processes)\n",
			c["orderServeSessions"], c["orderWorkerSessions"], c["order"]-c["orderServeSessions"]-c["orderWorkerSessions"])
		fmt.Fprintf(w, "A pgbench -N transaction takes %.2f ms of CPU, pgbench's own included: compare the orders phase's CPU per op\n",
			c["pgbenchTxAllProcesses"])
	}
	if b := r.MergeBound; b.Insert > 0 && b.Update > 0 {
		fmt.Fprintf(w, "One PostgreSQL backend alone, the same lines in a table keyed like stock: INSERT ... SELECT %.0f rows/s "+
			"(new lines: %.2f of it), UPDATE of every row %.0f rows/s (reload: %.2f of it)\n",
			b.Insert, b.newLines/b.Insert, b.Update, b.reload/b.Update)
	}
}

// sessionCPU splits PostgreSQL's CPU between the runtime's processes by the application_name each session carries
// ("oms serve", "oms worker"): what creating an order costs the database, and what allocating and relaying it does.
type sessionCPU struct {
	conn   *pgx.Conn // a superuser's, which sees every session
	before map[int]float64
}

// sample is each session's CPU seconds so far, by backend PID, and its application_name.
func (m *sessionCPU) sample(ctx context.Context) (map[int]float64, map[int]string, error) {
	rows, err := m.conn.Query(ctx, `SELECT pid, application_name FROM pg_stat_activity WHERE backend_type = 'client backend'`)
	if err != nil {
		return nil, nil, fmt.Errorf("list sessions: %w", err)
	}
	cpu, names := map[int]float64{}, map[int]string{}
	var pid int32
	var name string
	_, err = pgx.ForEachRow(rows, []any{&pid, &name}, func() error {
		cpu[int(pid)], names[int(pid)] = procCPU(int(pid)), name
		return nil
	})
	return cpu, names, err
}

func (m *sessionCPU) begin(ctx context.Context) (err error) {
	m.before, _, err = m.sample(ctx)
	return err
}

// end is each application_name's CPU seconds since begin. A session that began within the phase counts whole;
// one that ended within it is missed (the runtime's pools keep theirs for the phases here).
func (m *sessionCPU) end(ctx context.Context) (map[string]float64, error) {
	after, names, err := m.sample(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for pid, t := range after {
		out[names[pid]] += max(t-m.before[pid], 0)
	}
	return out, nil
}
