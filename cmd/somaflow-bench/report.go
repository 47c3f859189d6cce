package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// result is one workload through one runner, over every round.
type result struct {
	Workload    string    `json:"workload"`
	Title       string    `json:"title"`
	Runner      string    `json:"runner"`
	Jobs        int       `json:"jobs"`
	Edges       int       `json:"edges"`
	Concurrency int       `json:"concurrency"`
	TimesS      []float64 `json:"times_s"`
	// FloorS is the floor's time in the same rounds, index for index.
	FloorS []float64 `json:"floor_s"`
	// LogsS is the floor+logs runner's time in the same rounds: fork/exec
	// plus the two new log files per job that somaflow creates.
	LogsS   []float64 `json:"floor_logs_s,omitempty"`
	MinS    float64   `json:"min_s"`
	MedianS float64   `json:"median_s"`
	// RatioMedian is the median over rounds of time / floor of the same
	// round; RatioOfMins is min time / min floor.
	RatioMedian float64 `json:"ratio_median"`
	RatioOfMins float64 `json:"ratio_of_mins"`
	// OverheadMsPerJob is the median over rounds of (time - floor) / jobs.
	OverheadMsPerJob float64 `json:"overhead_ms_per_job"`
	// RatioToLogs is the median over rounds of time / floor+logs of the
	// same round: what the runner adds beyond creating its log files.
	RatioToLogs float64 `json:"ratio_to_floor_logs,omitempty"`
	// IdealS is the ideal time of once workloads (jobs * duration / conc).
	IdealS float64 `json:"ideal_s,omitempty"`
	// Target is the limit: a ratio to the floor, or for once
	// workloads the allowed excess over the ideal (0.01 = 1%).
	Target *float64 `json:"target,omitempty"`
	Met    *bool    `json:"met,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// median of xs (NaN when empty).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minOf(xs []float64) float64 {
	m := math.NaN()
	for _, x := range xs {
		if math.IsNaN(m) || x < m {
			m = x
		}
	}
	return m
}

// summarize fills the statistics of r from its times and the floor's.
func (r *result) summarize(w *workload) {
	r.MinS, r.MedianS = minOf(r.TimesS), median(r.TimesS)
	var ratios, ovh []float64
	for i, t := range r.TimesS {
		if i < len(r.FloorS) && r.FloorS[i] > 0 {
			ratios = append(ratios, t/r.FloorS[i])
			ovh = append(ovh, (t-r.FloorS[i])/float64(r.Jobs)*1000)
		}
	}
	r.RatioMedian, r.OverheadMsPerJob = median(ratios), median(ovh)
	var rl []float64
	for i, t := range r.TimesS {
		if i < len(r.LogsS) && r.LogsS[i] > 0 {
			rl = append(rl, t/r.LogsS[i])
		}
	}
	if len(rl) > 0 {
		r.RatioToLogs = median(rl)
	}
	if f := minOf(r.FloorS); f > 0 {
		r.RatioOfMins = r.MinS / f
	}
	if w.once {
		r.IdealS = w.ideal.Seconds()
	}
	if t, ok := w.targets[r.Runner]; ok && len(r.TimesS) > 0 {
		r.Target = &t
		var met bool
		if w.once {
			met = r.MedianS <= r.IdealS*(1+t)
		} else {
			met = r.RatioMedian <= t
		}
		r.Met = &met
	}
}

// printTable writes the results as one aligned table.
func printTable(out io.Writer, rs []*result) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WORKLOAD\tRUNNER\tROUNDS\tMIN s\tMEDIAN s\tOVERHEAD ms/job\tRATIO\tTARGET\tMET\tVS FLOOR+LOGS\t")
	last := ""
	for _, r := range rs {
		wl := r.Workload
		if wl == last {
			wl = ""
		}
		last = r.Workload
		if r.Error != "" && len(r.TimesS) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t0\t-\t-\t-\t-\t-\tERROR\t\t\n", wl, r.Runner)
			continue
		}
		target, met := "", ""
		if r.Target != nil {
			if r.IdealS > 0 {
				target = fmt.Sprintf("<=%.2fs", r.IdealS*(1+*r.Target))
			} else {
				target = fmt.Sprintf("<=%.2fx", *r.Target)
			}
			met = "no"
			if *r.Met {
				met = "yes"
			}
		}
		if r.Error != "" {
			met += " (error)"
		}
		ovh, ratio := "-", "1.00x"
		if r.Runner != rFloor {
			ovh = fmt.Sprintf("%.3f", r.OverheadMsPerJob)
			ratio = fmt.Sprintf("%.2fx", r.RatioMedian)
		}
		vsLogs := ""
		if r.RatioToLogs > 0 && (r.Runner == rRun || r.Runner == rSubmit) {
			vsLogs = fmt.Sprintf("%.2fx", r.RatioToLogs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%.3f\t%s\t%s\t%s\t%s\t%s\t\n", wl, r.Runner, len(r.TimesS), r.MinS, r.MedianS, ovh, ratio, target, met, vsLogs)
	}
	tw.Flush()
}

// benchName is the Go benchmark name of a result, e.g.
// BenchmarkW1_1k/runner=submit_wait-2.
func benchName(r *result) string {
	wl := strings.NewReplacer("-", "_").Replace(r.Workload)
	rn := strings.NewReplacer("+", "_").Replace(r.Runner)
	return fmt.Sprintf("Benchmark%s/runner=%s-%d", wl, rn, runtime.GOMAXPROCS(0))
}

// writeBenchText writes one benchmark line per round in the text format
// benchstat reads: wall time as ns/op, ratio to the floor of the same
// round, overhead per job.
func writeBenchText(out io.Writer, rs []*result, sc []*scaleResult) {
	fmt.Fprintf(out, "goos: %s\ngoarch: %s\npkg: github.com/somaflow/somaflow/cmd/somaflow-bench\ncpu: %s\n", runtime.GOOS, runtime.GOARCH, cpuName())
	for _, r := range rs {
		for i, t := range r.TimesS {
			fmt.Fprintf(out, "%s\t1\t%d ns/op", benchName(r), int64(t*1e9))
			if i < len(r.FloorS) && r.FloorS[i] > 0 {
				fmt.Fprintf(out, "\t%.4f ratio\t%.4f overhead-ms/job", t/r.FloorS[i], (t-r.FloorS[i])/float64(r.Jobs)*1000)
			}
			fmt.Fprintln(out)
		}
	}
	for _, s := range sc {
		name := fmt.Sprintf("BenchmarkScale/shape=%s/jobs=%d-%d", s.Shape, s.Jobs, runtime.GOMAXPROCS(0))
		fmt.Fprintf(out, "%s/op=submit\t1\t%d ns/op\t%d maxrss-KiB\n", name, int64(s.SubmitS*1e9), s.SubmitRSSKiB)
		if s.StatusS > 0 {
			fmt.Fprintf(out, "%s/op=status\t1\t%d ns/op\t%d maxrss-KiB\n", name, int64(s.StatusS*1e9), s.StatusRSSKiB)
		}
		if s.RunS > 0 && s.Done == s.Jobs {
			fmt.Fprintf(out, "%s/op=run\t1\t%d ns/op\t%d maxrss-KiB\n", name, int64(s.RunS*1e9), s.EngineRSSKiB)
		}
	}
}

func cpuName() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func secs(d time.Duration) float64 { return d.Seconds() }
