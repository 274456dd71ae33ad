package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// RTOAnchor is the recovery time the product's documentation promises (≥ 60 minutes); DR drills report against it.
const RTOAnchor = 60 * time.Minute

// Timeline records the steps of a DR activation or deactivation.
type Timeline struct {
	// Action is "activation" (the default) or "deactivation".
	Action           string
	Primary, DRStack string
	From, To         string
	Steps            []TimelineStep
}

// TimelineStep is one step: its duration, or skipped.
type TimelineStep struct {
	Name, Detail string
	Duration     time.Duration
	Skipped      bool
	Err          error
}

// Run times one step.
func (t *Timeline) Run(name string, step func() (string, error)) error {
	start := time.Now()
	detail, err := step()
	s := TimelineStep{Name: name, Detail: detail, Duration: time.Since(start), Err: err}
	if err != nil {
		s.Detail = "FAILED: " + err.Error()
	}
	t.Steps = append(t.Steps, s)
	return err
}

// Skip records a step that did not run.
func (t *Timeline) Skip(name, why string) {
	t.Steps = append(t.Steps, TimelineStep{Name: name, Detail: why, Skipped: true})
}

// Total is the time of the steps that ran.
func (t *Timeline) Total() time.Duration {
	var d time.Duration
	for _, s := range t.Steps {
		d += s.Duration
	}
	return d
}

// Print writes the timeline as a table, with the total against the RTO anchor.
func (t *Timeline) Print(w io.Writer) {
	action := t.Action
	if action == "" {
		action = "activation"
	}
	fmt.Fprintf(w, "DR %s of %s -> %s (%s -> %s)\n", action, t.Primary, t.DRStack, t.From, t.To)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tDURATION\tDETAIL")
	for _, s := range t.Steps {
		d := formatDuration(s.Duration)
		if s.Skipped {
			d = "skipped"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, d, s.Detail)
	}
	total := t.Total()
	verdict := fmt.Sprintf("%.1f%% of the %s RTO anchor", 100*float64(total)/float64(RTOAnchor), formatDuration(RTOAnchor))
	for _, s := range t.Steps {
		if s.Err != nil {
			verdict = "incomplete: a step failed"
		}
	}
	fmt.Fprintf(tw, "total\t%s\t%s\n", formatDuration(total), verdict)
	tw.Flush()
}

func formatDuration(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}
