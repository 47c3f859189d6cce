// Command somaflow-bench measures what somaflow adds on top of the jobs it
// runs: each workload goes through `somaflow run`, through `somaflow submit`
// + `somaflow wait` (the background engine), and through its baselines —
// plain Go fork/exec at the same concurrency (the floor), GNU make -jN and
// xargs -PN when installed — interleaved and repeated, and one table shows
// wall times, the overhead per job over the floor and the ratio to the
// floor measured in the same round. Results also go to OUT/results.json and
// OUT/bench.txt (benchstat's format). See docs/benchmarks.md.
//
//	somaflow-bench [-mode quick|full] [-bin bin/somaflow] [-rounds 5] [-out bench-out]
//	               [-only REGEXP] [-scale] [-profile]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// config is the command line.
type config struct {
	mode     string
	bin      string
	rounds   int
	out      string
	only     *regexp.Regexp
	scale    bool
	scaleMax int
	runMax   time.Duration
	sample   time.Duration
	profile  bool
	// profileStore is the size of the fan-out whose submit and status
	// document are profiled (0: none).
	profileStore int
	noRepeats    bool
	// slurmLoad: run the slurm-load workload (-only naming it, or full mode).
	slurmLoad bool
	slurm     slurmLoadConfig
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("somaflow-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	fs.StringVar(&c.mode, "mode", "quick", "quick (W1 1,000 jobs, W2, W3 group form, W4 at 10) or full (every workload and the scale runs)")
	fs.StringVar(&c.bin, "bin", "bin/somaflow", "the somaflow binary to measure")
	fs.IntVar(&c.rounds, "rounds", 5, "rounds of the repeated workloads (at least 5 for a report)")
	fs.StringVar(&c.out, "out", "bench-out", "directory for results.json, bench.txt, table.txt, profiles and generated workflows")
	only := fs.String("only", "", "run only the workloads whose id matches this regexp (W1-1k, W1-10k, W2-chain200, W3-group, W3-edges, W4-c10, W4-c2, scale, slurm-load)")
	scale := fs.String("scale", "", "run the scale benchmark: true or false (default: true in full mode)")
	fs.IntVar(&c.scaleMax, "scale-max", 1000000, "largest scale workflow (10000, 100000, 1000000)")
	fs.DurationVar(&c.runMax, "scale-run-max", 20*time.Minute, "longest run of the 1,000,000-job workflow to its end; past it, how far it got is reported")
	fs.DurationVar(&c.sample, "scale-sample", time.Minute, "how long the engine runs the scale workflows that are not run to the end (for their RSS and rate)")
	fs.BoolVar(&c.profile, "profile", false, "also profile the engine (CPU, in this process, as `somaflow run` runs it) on W1, W2 and W3 and print the top functions")
	fs.IntVar(&c.profileStore, "profile-store", 0, "with -profile, also profile submit (decode, validate, store) and the status document of a fan-out of this many jobs (default: 100000 in full mode)")
	fs.BoolVar(&c.noRepeats, "no-repeats", false, "skip the repeated and once workloads (with -scale or -profile)")
	fs.IntVar(&c.slurm.jobs, "slurm-jobs", 1000, "slurm-load: W1 through Slurm with this many `true` jobs")
	fs.IntVar(&c.slurm.rounds, "slurm-rounds", 1, "slurm-load: rounds of W1 (sbatch loop and somaflow run, alternating)")
	fs.IntVar(&c.slurm.change, "slurm-change-jobs", 200, "slurm-load: jobs of `sleep 3` while jobs change")
	fs.IntVar(&c.slurm.idleJobs, "slurm-idle-jobs", 10, "slurm-load: long jobs while idle (at most the idle CPUs)")
	fs.DurationVar(&c.slurm.warmup, "slurm-idle-warmup", 45*time.Second, "slurm-load: from the idle run's start to its counting window (every job running by then)")
	fs.DurationVar(&c.slurm.window, "slurm-idle-window", 3*time.Minute, "slurm-load: how long the idle phase is counted")
	fs.DurationVar(&c.slurm.quiet, "slurm-background", 30*time.Second, "slurm-load: first count slurmctld's RPCs this long with nothing of ours running (others' load; 0: skip)")
	fs.StringVar(&c.slurm.settings, "slurm-settings", "", "slurm-load: backend settings for somaflow run, key=value,key=value (e.g. accounting=yes)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.mode != "quick" && c.mode != "full" {
		return nil, fmt.Errorf("-mode must be quick or full, got %q", c.mode)
	}
	if c.profileStore == 0 && c.mode == "full" {
		c.profileStore = 100000
	}
	if c.rounds < 1 {
		return nil, fmt.Errorf("-rounds must be at least 1, got %d", c.rounds)
	}
	var err error
	if c.only, err = regexp.Compile(*only); err != nil {
		return nil, fmt.Errorf("-only: %w", err)
	}
	// slurm-load needs a Slurm and takes minutes: only when asked for.
	c.slurmLoad = c.only.MatchString(slurmLoadID) && (c.mode == "full" || *only != "")
	if c.slurm.jobs < 1 || c.slurm.rounds < 1 || c.slurm.change < 1 || c.slurm.idleJobs < 1 || c.slurm.window <= 0 {
		return nil, fmt.Errorf("-slurm-jobs, -slurm-rounds, -slurm-change-jobs, -slurm-idle-jobs and -slurm-idle-window must be positive")
	}
	switch *scale {
	case "":
		c.scale = c.mode == "full"
	case "true", "false":
		c.scale = *scale == "true"
	default:
		return nil, fmt.Errorf("-scale must be true or false, got %q", *scale)
	}
	return c, nil
}

// workloads lists the workloads of a mode, with the targets of issue 24
// (make's level with every state change durable).
func workloads(mode string) []*workload {
	trueT := func(run, submit float64) map[string]float64 { return map[string]float64{rRun: run, rSubmit: submit} }
	ws := []*workload{
		{id: "W1-1k", title: "1,000 independent true, 2 at a time", g: independent(1000, "true"), conc: 2, targets: trueT(1.05, 1.2)},
		{id: "W2-chain200", title: "chain of 200 true", g: chain(200, "true"), conc: 1, targets: trueT(1.2, 1.3)},
		{id: "W3-group", title: "10 layers x 100 true, 2 at a time, layer after layer (group)", g: layers(10, 100, true, "true"), conc: 2, targets: trueT(1.05, 1.2)},
	}
	if mode == "full" {
		ws = append(ws,
			&workload{id: "W1-10k", title: "10,000 independent true, 2 at a time", g: independent(10000, "true"), conc: 2, targets: trueT(1.05, 1.2)},
			&workload{id: "W3-edges", title: "10 layers x 100 true, 2 at a time, 90,000 explicit edges", g: layers(10, 100, false, "true"), conc: 2, targets: trueT(2, 2)},
		)
	}
	ideal := func(n, conc int) time.Duration { return time.Duration((n+conc-1)/conc) * time.Second }
	oneP := map[string]float64{rRun: 0.005, rSubmit: 0.005} // within 0.5% of the ideal
	ws = append(ws, &workload{id: "W4-c10", title: "100 x sleep 1, 10 at a time (ideal 10 s)", g: independent(100, "sleep", "1"), conc: 10, once: true, ideal: ideal(100, 10), targets: oneP})
	if mode == "full" {
		ws = append(ws, &workload{id: "W4-c2", title: "100 x sleep 1, 2 at a time (ideal 50 s)", g: independent(100, "sleep", "1"), conc: 2, once: true, ideal: ideal(100, 2), targets: oneP})
	}
	return ws
}

// report is results.json.
type report struct {
	Commit    string            `json:"commit"`
	Date      string            `json:"date"`
	Host      string            `json:"host"`
	CPUs      int               `json:"cpus"`
	CPU       string            `json:"cpu"`
	Go        string            `json:"go"`
	Mode      string            `json:"mode"`
	Rounds    int               `json:"rounds"`
	Baselines map[string]string `json:"baselines"`
	Results   []*result         `json:"results"`
	Scale     []*scaleResult    `json:"scale,omitempty"`
	Profiles  []*profileResult  `json:"profiles,omitempty"`
	SlurmLoad *slurmLoadResult  `json:"slurm_load,omitempty"`
	ElapsedS  float64           `json:"elapsed_s"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "somaflow-bench:", err)
		return 2
	}
	if err := bench(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "somaflow-bench:", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, cfg *config, stdout, log io.Writer) error {
	e, err := newEnv(cfg.bin)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.out, 0o700); err != nil {
		return err
	}
	work := filepath.Join(cfg.out, "workflows")
	started := time.Now()
	host, _ := os.Hostname()
	rep := &report{
		Commit: gitDescribe(), Date: started.UTC().Format(time.RFC3339), Host: host, CPUs: runtime.NumCPU(),
		CPU: cpuName(), Go: runtime.Version(), Mode: cfg.mode, Rounds: cfg.rounds,
		Baselines: map[string]string{"make": version(e.make, "--version"), "xargs": version(e.xarg, "--version")},
	}
	var ws []*workload
	for _, w := range workloads(cfg.mode) {
		if cfg.only.MatchString(w.id) {
			ws = append(ws, w)
		}
	}
	for _, w := range ws {
		if err := w.prepare(work); err != nil {
			return err
		}
	}
	fmt.Fprintf(log, "somaflow-bench %s: %s (%s), %d CPUs, make %q, xargs %q\n", cfg.mode, e.bin, rep.Commit, rep.CPUs,
		rep.Baselines["make"], rep.Baselines["xargs"])
	if !cfg.noRepeats && len(ws) > 0 {
		rep.Results = runWorkloads(ctx, e, ws, cfg.rounds, log)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintf(stdout, "\nsomaflow %s, %d CPUs (%s), %d rounds, runners interleaved; ratio and overhead against the floor of the same round (median over rounds)\n\n",
			rep.Commit, rep.CPUs, rep.CPU, cfg.rounds)
		printTable(stdout, rep.Results)
	}
	if cfg.slurmLoad {
		fmt.Fprintf(log, "%s: W1 through Slurm and the calls to slurmctld\n", slurmLoadID)
		rep.SlurmLoad = e.runSlurmLoad(ctx, cfg.slurm, work, log)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		printSlurmLoad(stdout, rep.SlurmLoad)
	}
	if cfg.scale && cfg.only.MatchString("scale") {
		rep.Scale = runScaleAll(ctx, e, cfg, work, log)
		printScale(stdout, rep.Scale)
	}
	if cfg.profile {
		for _, w := range ws {
			if w.once {
				continue
			}
			p, err := e.profile(ctx, w, cfg.out)
			if err != nil {
				fmt.Fprintf(log, "profile %s: %v\n", w.id, err)
				continue
			}
			rep.Profiles = append(rep.Profiles, p)
			printProfile(stdout, p)
		}
		if cfg.profileStore > 0 {
			ps, err := e.profileStore(ctx, cfg.profileStore, cfg.out)
			if err != nil {
				fmt.Fprintf(log, "profile store: %v\n", err)
			}
			for _, p := range ps {
				rep.Profiles = append(rep.Profiles, p)
				printProfile(stdout, p)
			}
		}
	}
	rep.ElapsedS = secs(time.Since(started))
	return writeReport(cfg.out, rep, stdout)
}

// runWorkloads runs each repeated workload rounds times, its runners
// interleaved (the order rotates each round), then each once workload once
// through each runner.
func runWorkloads(ctx context.Context, e *env, ws []*workload, rounds int, log io.Writer) []*result {
	byKey := map[string]*result{}
	var order []*result
	get := func(w *workload, r string) *result {
		k := w.id + "/" + r
		if res, ok := byKey[k]; ok {
			return res
		}
		res := &result{Workload: w.id, Title: w.title, Runner: r, Jobs: w.g.jobs(), Edges: w.g.edges(), Concurrency: w.conc}
		byKey[k] = res
		order = append(order, res)
		return res
	}
	one := func(w *workload, runners []string) {
		times := map[string]float64{}
		for _, r := range runners {
			if ctx.Err() != nil {
				return
			}
			res := get(w, r)
			d, err := e.measure(ctx, w, r)
			if err != nil {
				fmt.Fprintf(log, "  %s %s: %v\n", w.id, r, err)
				res.Error = err.Error()
				continue
			}
			times[r] = secs(d)
		}
		floor, ok := times[rFloor]
		if !ok {
			return // without the floor this round compares nothing
		}
		logs := times[rLogs]
		var parts []string
		for _, r := range e.runners(w) {
			if t, ok := times[r]; ok {
				res := get(w, r)
				res.TimesS = append(res.TimesS, t)
				res.FloorS = append(res.FloorS, floor)
				if logs > 0 {
					res.LogsS = append(res.LogsS, logs)
				}
				parts = append(parts, fmt.Sprintf("%s %.3fs", r, t))
			}
		}
		fmt.Fprintf(log, "  %s: %s\n", w.id, strings.Join(parts, ", "))
	}
	for round := 0; round < rounds; round++ {
		fmt.Fprintf(log, "round %d/%d\n", round+1, rounds)
		for _, w := range ws {
			if w.once {
				continue
			}
			rs := e.runners(w)
			k := round % len(rs)
			one(w, append(append([]string(nil), rs[k:]...), rs[:k]...))
		}
	}
	for _, w := range ws {
		if w.once {
			fmt.Fprintf(log, "once: %s\n", w.title)
			one(w, e.runners(w))
		}
	}
	// Results of the table's workloads in their order, runners in table order.
	var out []*result
	for _, w := range ws {
		for _, r := range e.runners(w) {
			if res, ok := byKey[w.id+"/"+r]; ok {
				res.summarize(w)
				out = append(out, res)
			}
		}
	}
	return out
}

// runScaleAll runs the scale cases up to cfg.scaleMax jobs.
func runScaleAll(ctx context.Context, e *env, cfg *config, work string, log io.Writer) []*scaleResult {
	var cases []scaleCase
	for _, n := range []int{10000, 100000, 1000000} {
		if n > cfg.scaleMax {
			break
		}
		for _, shape := range []string{"fanout", "layered"} {
			c := scaleCase{shape: shape, jobs: n, runFor: cfg.sample}
			switch {
			case n <= 10000:
				c.toEnd, c.runFor = true, 10*time.Minute
			case n == 1000000 && shape == "fanout":
				c.toEnd, c.runFor = true, cfg.runMax
			}
			cases = append(cases, c)
		}
	}
	var out []*scaleResult
	for _, c := range cases {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(log, "scale: %s, %d jobs\n", c.shape, c.jobs)
		out = append(out, e.runScale(ctx, c, work, runtime.NumCPU(), log))
	}
	return out
}

func printScale(out io.Writer, rs []*scaleResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(out, "\nscale (submit with no engine running; engine and CLI peak RSS from wait4)\n\n")
	fmt.Fprintf(out, "%-8s %9s %8s %9s %10s %8s %9s %10s %8s %13s %10s %10s\n",
		"SHAPE", "JOBS", "FILE MB", "SUBMIT s", "SUBMIT MB", "DB MB", "STATUS s", "STATUS MB", "RUN s", "DONE", "ENGINE MB", "STATUS2 s")
	for _, s := range rs {
		if s.Error != "" {
			fmt.Fprintf(out, "%-8s %9d error: %s\n", s.Shape, s.Jobs, s.Error)
			continue
		}
		fmt.Fprintf(out, "%-8s %9d %8.1f %9.2f %10.0f %8.1f %9.2f %10.0f %8.1f %13s %10.0f %10.2f\n",
			s.Shape, s.Jobs, s.FileMB, s.SubmitS, kib2mb(s.SubmitRSSKiB), s.DBMB, s.StatusS, kib2mb(s.StatusRSSKiB),
			s.RunS, fmt.Sprintf("%d/%d", s.Done, s.Jobs), kib2mb(s.EngineRSSKiB), s.StatusAfterS)
		for _, n := range s.Notes {
			fmt.Fprintf(out, "    %s\n", n)
		}
	}
	for _, s := range rs {
		switch s.Jobs {
		case 100000:
			fmt.Fprintf(out, "target %s 100,000: submit < 3 s: %s (%.2fs); status --json < 0.5 s: %s (%.2fs); engine RSS < 300 MB: %s (%.0f MB)\n",
				s.Shape, yes(s.SubmitS < 3), s.SubmitS, yes(s.StatusS < 0.5), s.StatusS, yes(kib2mb(s.EngineRSSKiB) < 300), kib2mb(s.EngineRSSKiB))
		case 1000000:
			peak := max(s.SubmitRSSKiB, s.StatusRSSKiB, s.EngineRSSKiB, s.WaitRSSKiB, s.StatusAfterRSSKiB)
			fmt.Fprintf(out, "target %s 1,000,000: stored and run to the end in < 4 GB: stored %s, run to the end %s (%d/%d), peak RSS %.0f MB\n",
				s.Shape, yes(s.Error == ""), yes(s.Done == s.Jobs), s.Done, s.Jobs, kib2mb(peak))
		}
	}
}

func yes(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func writeReport(dir string, rep *report, stdout io.Writer) error {
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o600); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, "bench.txt"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	writeBenchText(f, rep.Results, rep.Scale)
	if err := f.Close(); err != nil {
		return err
	}
	t, err := os.OpenFile(filepath.Join(dir, "table.txt"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(t, "somaflow %s, %s, %d CPUs (%s), mode %s, %d rounds\n\n", rep.Commit, rep.Date, rep.CPUs, rep.CPU, rep.Mode, rep.Rounds)
	printTable(t, rep.Results)
	printScale(t, rep.Scale)
	printSlurmLoad(t, rep.SlurmLoad)
	if err := t.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nwritten: %s, %s, %s (%.0fs)\n", filepath.Join(dir, "results.json"), filepath.Join(dir, "bench.txt"), filepath.Join(dir, "table.txt"), rep.ElapsedS)
	return nil
}

func gitDescribe() string {
	out, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// version is the first line of `prog --version` ("" when prog is "").
func version(prog, flag string) string {
	if prog == "" {
		return ""
	}
	out, _ := exec.Command(prog, flag).Output()
	l, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(l)
}
