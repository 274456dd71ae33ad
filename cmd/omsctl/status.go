package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/omscloud/omscloud/components/observability/rules"
	"github.com/omscloud/omscloud/stacks"
	"github.com/spf13/cobra"
)

// newStatusCmd is `omsctl status --stack X`: one screen per environment from the stack's outputs and, where
// reachable, the live endpoints and the metrics the alerts read.
func newStatusCmd() *cobra.Command {
	var stack, backend, pulumiRoot, promURL string
	c := &cobra.Command{
		Use:   "status --stack NAME",
		Short: "release and color, endpoint readiness, SLO budget left, last backup per tier, DR readiness",
		Long: `status reads the stack's outputs (through the Pulumi backend), probes each public hostname's /readyz, and
queries the environment's metrics through a Prometheus API: by default Managed Service for Prometheus' endpoint of the
stack's project, authenticated with $OMSCLOUD_MONITORING_TOKEN (e.g. $(gcloud auth print-access-token)). What cannot
be reached is reported as such; status never changes anything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := selectStack(cmd, stack, backend, pulumiRoot)
			if err != nil {
				return err
			}
			dir, _ := cmd.Flags().GetString("dir")
			projectDir, err := stacks.FindProjectDir(dir)
			if err != nil {
				return err
			}
			sf, err := stacks.LoadStackFile(projectDir, stack)
			if err != nil {
				return err
			}
			cfg, err := sf.Config()
			if err != nil {
				return err
			}
			outs, err := s.Outputs(cmd.Context())
			if err != nil {
				return fmt.Errorf("status: read the outputs of %s: %w", stack, err)
			}
			values := map[string]any{}
			for k, o := range outs {
				if !o.Secret {
					values[k] = o.Value
				}
			}
			if promURL == "" {
				promURL = ManagedPrometheusURL(cfg.Project)
			}
			st := CollectStatus(cmd.Context(), cfg, values, StatusSources{
				HTTP:       &http.Client{Timeout: 10 * time.Second},
				Prometheus: PrometheusAPI{URL: promURL, Token: os.Getenv("OMSCLOUD_MONITORING_TOKEN")},
				Now:        time.Now,
			})
			return st.Render(cmd.OutOrStdout())
		},
	}
	c.Flags().StringVarP(&stack, "stack", "s", "", "the stack (its Pulumi.<stack>.yaml must exist)")
	c.Flags().StringVar(&backend, "backend", os.Getenv("PULUMI_BACKEND_URL"), "the Pulumi backend (default: $PULUMI_BACKEND_URL, else the CLI's login)")
	c.Flags().StringVar(&pulumiRoot, "pulumi-root", os.Getenv("OMSCLOUD_PULUMI_ROOT"), "directory whose bin/pulumi is the Pulumi CLI")
	c.Flags().StringVar(&promURL, "prometheus-url", "", "a Prometheus HTTP API holding the environment's metrics (default: Managed Service for Prometheus of the stack's project)")
	_ = c.MarkFlagRequired("stack")
	return c
}

// ManagedPrometheusURL is Managed Service for Prometheus' Prometheus-compatible query API of a project
// (https://cloud.google.com/stackdriver/docs/managed-prometheus/query-api-ui).
func ManagedPrometheusURL(project string) string {
	return "https://monitoring.googleapis.com/v1/projects/" + project + "/location/global/prometheus"
}

// PrometheusAPI queries a Prometheus HTTP API (instant queries).
type PrometheusAPI struct {
	URL string
	// Token, when set, is sent as a bearer token (never printed).
	Token string
}

// Sample is one series of an instant vector.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query runs an instant query.
func (p PrometheusAPI) Query(ctx context.Context, client *http.Client, query string) ([]Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(p.URL, "/")+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		return nil, err
	}
	if p.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("%s answered %s, not a Prometheus API response", p.URL, resp.Status)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: %s", resp.Status, body.Error)
	}
	var out []Sample
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("sample %q: %w", s, err)
		}
		out = append(out, Sample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// StatusSources are where status reads the live state.
type StatusSources struct {
	HTTP       *http.Client
	Prometheus PrometheusAPI
	Now        func() time.Time
}

// Status is one environment's screen.
type Status struct {
	Stack, Environment, Region, Release, Color string
	Endpoints                                  []EndpointStatus
	// Availability over 30 days and the share of the error budget left (nil when the metrics were unreachable).
	Objective, Availability, BudgetLeft *float64
	// Backups are the newest archive per tier.
	Backups map[string]time.Time
	// DR is "ready", "not ready: <why>", "no DR site" or "unknown".
	DR string
	// Problems are the sources that could not be read.
	Problems []string
}

// EndpointStatus is one public hostname's /readyz.
type EndpointStatus struct {
	URL, State string
}

// drRPO is the backup age under which a DR spin-up meets the anchor RPO (the last daily backup, with an hour of
// slack): the OMSDRNotReady rule's threshold.
const drRPO = 25 * time.Hour

// CollectStatus reads what it can; each unreachable source becomes a problem, not a failure.
func CollectStatus(ctx context.Context, cfg *stacks.Config, outputs map[string]any, src StatusSources) Status {
	st := Status{Stack: cfg.Stack, Environment: cfg.Environment, Region: cfg.RegionID, Backups: map[string]time.Time{}}
	st.Release, _ = outputs["runtimeImage"].(string)
	st.Color, _ = outputs["runtimeActiveColor"].(string)
	urls, _ := outputs["edgeUrls"].([]any)
	for _, u := range urls {
		st.Endpoints = append(st.Endpoints, probeReady(ctx, src.HTTP, strings.TrimSuffix(fmt.Sprint(u), "/")+"/readyz"))
	}
	p := cfg.AlertParams()
	objective := p.AvailabilityObjective
	st.Objective = &objective
	query := func(what, q string) []Sample {
		s, err := src.Prometheus.Query(ctx, src.HTTP, q)
		if err != nil {
			st.Problems = append(st.Problems, fmt.Sprintf("%s: %v", what, err))
			return nil
		}
		return s
	}
	// The SLO's own ratio over its 30-day window: the same expression the burn-rate alerts evaluate over shorter ones.
	errorRatio, known := 0.0, false
	if s := query("availability", rules.ErrorRatio(p, "30d")); len(s) == 1 {
		errorRatio, known = s[0].Value, true
	} else if s := query("requests", fmt.Sprintf(`sum(rate(%s{%s,route=~"/v1/.+"}[30d])) > 0`, rules.MetricRequests, p.Web)); len(s) == 1 {
		known = true // requests, and no 5xx series at all
	}
	if known {
		a, left := 1-errorRatio, 1-errorRatio/(1-objective)
		st.Availability, st.BudgetLeft = &a, &left
	}
	for _, s := range query("backups", fmt.Sprintf(`max by (tier) (%s{%s})`, rules.MetricBackupSuccess, p.Worker)) {
		st.Backups[s.Labels["tier"]] = time.Unix(int64(s.Value), 0).UTC()
	}
	storeUp := query("backup store", fmt.Sprintf(`max(%s{%s})`, rules.MetricBackupStoreUp, p.Worker))
	switch {
	case !p.DR:
		st.DR = "no DR site"
	case len(storeUp) == 0 || len(st.Backups) == 0:
		st.DR = "unknown: the worker's backup metrics are unreachable"
	case storeUp[0].Value == 0:
		st.DR = "not ready: the backup bucket cannot be listed"
	default:
		newest := time.Time{}
		for _, t := range st.Backups {
			if t.After(newest) {
				newest = t
			}
		}
		if age := src.Now().Sub(newest); age > drRPO {
			st.DR = fmt.Sprintf("not ready: the newest backup is %s old (RPO %s)", age.Round(time.Minute), drRPO)
		} else {
			st.DR = fmt.Sprintf("ready: a backup from %s ago is readable in the DR region", age.Round(time.Minute))
		}
	}
	return st
}

func probeReady(ctx context.Context, client *http.Client, u string) EndpointStatus {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return EndpointStatus{URL: u, State: "invalid URL"}
	}
	resp, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return EndpointStatus{URL: u, State: "unreachable: " + err.Error()}
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return EndpointStatus{URL: u, State: "ready"}
	}
	return EndpointStatus{URL: u, State: "not ready: " + resp.Status}
}

// Render prints the screen.
func (s Status) Render(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	pct := func(f *float64) string {
		if f == nil {
			return "unknown"
		}
		return strconv.FormatFloat(*f*100, 'f', 3, 64) + "%"
	}
	fmt.Fprintf(tw, "stack\t%s (%s, %s)\n", s.Stack, s.Environment, s.Region)
	fmt.Fprintf(tw, "release\t%s (color %s)\n", orDash(s.Release), orDash(s.Color))
	for _, e := range s.Endpoints {
		fmt.Fprintf(tw, "endpoint\t%s: %s\n", e.URL, e.State)
	}
	fmt.Fprintf(tw, "availability (30d)\t%s of objective %s; error budget left %s\n", pct(s.Availability), pct(s.Objective), pct(s.BudgetLeft))
	tiers := []string{"hourly", "weekly", "monthly"}
	for _, t := range tiers {
		at, ok := s.Backups[t]
		line := "unknown"
		if ok {
			line = at.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "last %s backup\t%s\n", t, line)
	}
	fmt.Fprintf(tw, "DR\t%s\n", s.DR)
	for _, p := range slices.Sorted(slices.Values(s.Problems)) {
		fmt.Fprintf(tw, "unreachable\t%s\n", p)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
