package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// The slurm-load workload: what somaflow asks of slurmctld, counted by
// slurmctld itself (sdiag's RPC statistics, as differences between two
// readings, so nothing is reset), and W1 through Slurm against a plain
// sbatch loop. Run with -only slurm-load or in full mode; skipped with a
// message when no Slurm answers.

// slurmLoadID is the workload's id for -only.
const slurmLoadID = "slurm-load"

// slurmLoadConfig is what the command line says about slurm-load.
type slurmLoadConfig struct {
	jobs     int           // W1 through Slurm: this many `true`
	rounds   int           // rounds of W1 (sbatch loop and run, alternating)
	change   int           // the "jobs change" phase: this many `sleep 3`
	idleJobs int           // the "idle" phase: this many long jobs (at most the idle CPUs)
	warmup   time.Duration // the idle phase: from the run's start to the window's
	window   time.Duration // the idle phase: how long it is counted
	quiet    time.Duration // before anything: RPCs with nothing of ours running
	settings string        // backend settings for somaflow run, k=v,k=v
}

// rpcCounts are sdiag's RPC counts by message type.
type rpcCounts map[string]int

// sdiagReading is one reading of sdiag.
type sdiagReading struct {
	at        time.Time
	submitted int // "Jobs submitted"
	rpc       rpcCounts
}

var sdiagRPC = regexp.MustCompile(`^\s*([A-Z_0-9]+)\s+\(\s*\d+\)\s+count:(\d+)`)

// parseSdiag reads the job counters and the RPC statistics by message type.
func parseSdiag(out string) (submitted int, rpc rpcCounts, err error) {
	rpc = rpcCounts{}
	section, found := "", false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "Jobs submitted:"):
			submitted, err = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(l, "Jobs submitted:")))
			if err != nil {
				return 0, nil, fmt.Errorf("sdiag: %q: %w", l, err)
			}
		case strings.HasPrefix(l, "Remote Procedure Call statistics by message type"):
			section, found = "type", true
		case strings.HasPrefix(l, "Remote Procedure Call statistics by user"), strings.HasPrefix(l, "Pending RPC"):
			section = ""
		case section == "type":
			if m := sdiagRPC.FindStringSubmatch(l); m != nil {
				n, _ := strconv.Atoi(m[2])
				rpc[m[1]] = n
			}
		}
	}
	if !found {
		return 0, nil, fmt.Errorf("sdiag printed no RPC statistics by message type")
	}
	return submitted, rpc, nil
}

func readSdiag(ctx context.Context) (sdiagReading, error) {
	c := exec.CommandContext(ctx, "sdiag")
	out, err := c.Output()
	if err != nil {
		return sdiagReading{}, fmt.Errorf("sdiag: %w", err)
	}
	sub, rpc, err := parseSdiag(string(out))
	return sdiagReading{at: time.Now(), submitted: sub, rpc: rpc}, err
}

// ownRPC reports whether an RPC type comes from a client command (sbatch,
// squeue, scontrol, scancel, sacct's controller calls...), not from slurmd
// (job and step completions, registrations) or from this bench (sdiag).
func ownRPC(t string) bool {
	if strings.HasPrefix(t, "MESSAGE_") {
		return false
	}
	switch t {
	case "REQUEST_STATS_INFO", "REQUEST_COMPLETE_BATCH_SCRIPT", "REQUEST_COMPLETE_PROLOG", "REQUEST_STEP_COMPLETE",
		"REQUEST_COMPLETE_JOB_ALLOCATION", "REQUEST_NODE_REGISTRATION_STATUS", "REQUEST_BATCH_SCRIPT":
		return false
	}
	return true
}

// queryRPC reports whether an RPC type is a job query (squeue, scontrol
// show job): what issue 24's target counts.
func queryRPC(t string) bool {
	return t == "REQUEST_JOB_INFO" || t == "REQUEST_JOB_INFO_SINGLE" || t == "REQUEST_JOB_USER_INFO"
}

// rpcDelta is what happened between two readings: client RPCs by type and
// jobs submitted (by anyone: more than ours means another user was busy).
type rpcDelta struct {
	Seconds   float64        `json:"seconds"`
	Submitted int            `json:"jobs_submitted"`
	ByType    map[string]int `json:"rpc_by_type"`
	// Queries are job queries (REQUEST_JOB_INFO*, REQUEST_JOB_USER_INFO:
	// squeue, scontrol show job); Calls every client RPC (sbatch, squeue's
	// partition query, scontrol, scancel...).
	Queries       int     `json:"queries"`
	Calls         int     `json:"calls"`
	QueriesPerMin float64 `json:"queries_per_min"`
	CallsPerMin   float64 `json:"calls_per_min"`
	// Reset is set when the counters went down (someone ran sdiag -r).
	Reset bool `json:"reset,omitempty"`
}

func delta(a, b sdiagReading) rpcDelta {
	d := rpcDelta{Seconds: secs(b.at.Sub(a.at)), Submitted: b.submitted - a.submitted, ByType: map[string]int{}}
	if d.Submitted < 0 {
		d.Reset = true
	}
	for t, n := range b.rpc {
		if !ownRPC(t) {
			continue
		}
		k := n - a.rpc[t]
		if k < 0 {
			d.Reset = true
			continue
		}
		if k == 0 {
			continue
		}
		d.ByType[t] = k
		d.Calls += k
		if queryRPC(t) {
			d.Queries += k
		}
	}
	if m := d.Seconds / 60; m > 0 {
		d.QueriesPerMin = float64(d.Queries) / m
		d.CallsPerMin = float64(d.Calls) / m
	}
	return d
}

// slurmLoadResult is results.json's slurm_load.
type slurmLoadResult struct {
	Skipped    string            `json:"skipped,omitempty"`
	Somaflow   string            `json:"somaflow"` // the measured binary's `somaflow version`
	Error      string            `json:"error,omitempty"`
	MinJobAge  string            `json:"min_job_age"`
	Accounting string            `json:"accounting_storage"`
	Settings   map[string]string `json:"settings,omitempty"`

	// Background: slurmctld's client RPCs over a window before anything
	// of ours runs (other users, other tests): what every phase's counts
	// may include besides somaflow's.
	Background rpcDelta `json:"background"`

	// W1 through Slurm: Jobs x `true`, a plain sbatch loop (then waiting
	// until squeue lists none) against `somaflow run --backend slurm`,
	// alternating, Rounds times.
	Jobs        int        `json:"w1_jobs"`
	LoopS       []float64  `json:"w1_sbatch_loop_s"`
	RunS        []float64  `json:"w1_run_s"`
	Ratio       float64    `json:"w1_ratio_median"`
	RatioTarget float64    `json:"w1_ratio_target"`
	RatioMet    bool       `json:"w1_ratio_met"`
	LoopRPC     []rpcDelta `json:"w1_sbatch_loop_rpc"`
	RunRPC      []rpcDelta `json:"w1_run_rpc"`

	// Jobs changing: ChangeJobs x `sleep 3` through somaflow run, counted
	// from its start to its end.
	ChangeJobs int      `json:"change_jobs"`
	Change     rpcDelta `json:"change"`
	// Idle: IdleJobs long jobs through somaflow run, counted over a window
	// that starts WarmupS after the run (every job running by then).
	IdleJobs int      `json:"idle_jobs"`
	WarmupS  float64  `json:"idle_warmup_s"`
	Idle     rpcDelta `json:"idle"`

	// Per engine, job queries a minute, and the targets (2 a minute while
	// jobs change: one per 30 s; 0.2 while idle: one per 5 minutes).
	ChangeTarget float64 `json:"change_queries_per_min_target"`
	IdleTarget   float64 `json:"idle_queries_per_min_target"`
	ChangeMet    bool    `json:"change_met"`
	IdleMet      bool    `json:"idle_met"`
	// Projections for 100 engines (users): job queries a second at slurmctld.
	Change100PerS float64  `json:"change_100_users_queries_per_s"`
	Idle100PerS   float64  `json:"idle_100_users_queries_per_s"`
	Notes         []string `json:"notes,omitempty"`
}

// slurmUsable says why Slurm cannot be measured here ("" when it can).
func slurmUsable(ctx context.Context) string {
	for _, c := range []string{"sinfo", "sbatch", "squeue", "sdiag", "scontrol"} {
		if _, err := exec.LookPath(c); err != nil {
			return c + " not found"
		}
	}
	out, err := exec.CommandContext(ctx, "sinfo", "-h", "-o", "%T").Output()
	if err != nil {
		return "sinfo failed: " + err.Error() + " (scripts/slurm-up.sh starts a one-node Slurm)"
	}
	ok := false
	for _, s := range strings.Fields(string(out)) {
		switch strings.TrimRight(s, "*~#!%$@^-+") {
		case "idle", "mixed", "allocated":
			ok = true
		}
	}
	if !ok {
		return "no usable Slurm node (sinfo says " + strings.TrimSpace(string(out)) + ")"
	}
	if _, err := readSdiag(ctx); err != nil {
		return err.Error()
	}
	return ""
}

// slurmConfig reads a few values of `scontrol show config`.
func slurmConfig(ctx context.Context, keys ...string) map[string]string {
	m := map[string]string{}
	out, err := exec.CommandContext(ctx, "scontrol", "show", "config").Output()
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		for _, want := range keys {
			if k == want {
				m[k] = strings.TrimSpace(v)
			}
		}
	}
	return m
}

// idleCPUs is sinfo's count of idle CPUs (0 when unknown).
func idleCPUs(ctx context.Context) int {
	out, err := exec.CommandContext(ctx, "sinfo", "-h", "-o", "%C").Output() // A/I/O/T
	if err != nil {
		return 0
	}
	n := 0
	for _, l := range strings.Fields(string(out)) {
		if p := strings.Split(l, "/"); len(p) == 4 {
			k, _ := strconv.Atoi(p[1])
			n += k
		}
	}
	return n
}

// runSlurmLoad measures slurm-load; work is the directory for its files.
func (e *env) runSlurmLoad(ctx context.Context, c slurmLoadConfig, work string, log io.Writer) *slurmLoadResult {
	r := &slurmLoadResult{Jobs: c.jobs, ChangeJobs: c.change, RatioTarget: 1.0, ChangeTarget: 2, IdleTarget: 0.2}
	if why := slurmUsable(ctx); why != "" {
		r.Skipped = "no Slurm: " + why
		fmt.Fprintf(log, "%s: skipped: %s\n", slurmLoadID, r.Skipped)
		return r
	}
	r.Somaflow = version(e.bin, "version")
	cf := slurmConfig(ctx, "MinJobAge", "AccountingStorageType")
	r.MinJobAge, r.Accounting = cf["MinJobAge"], cf["AccountingStorageType"]
	dir := filepath.Join(work, slurmLoadID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		r.Error = err.Error()
		return r
	}
	vars, err := e.slurmVars(dir, c.settings, r)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	fail := func(what string, err error) *slurmLoadResult {
		r.Error = what + ": " + err.Error()
		fmt.Fprintf(log, "%s: %s\n", slurmLoadID, r.Error)
		return r
	}

	// Background.
	if c.quiet > 0 {
		a, err := readSdiag(ctx)
		if err != nil {
			return fail("sdiag", err)
		}
		select {
		case <-time.After(c.quiet):
		case <-ctx.Done():
			return fail("background", ctx.Err())
		}
		b, err := readSdiag(ctx)
		if err != nil {
			return fail("sdiag", err)
		}
		r.Background = delta(a, b)
		fmt.Fprintf(log, "  %s: background, nothing of ours running: %d client RPCs, %d job queries in %.0fs\n", slurmLoadID, r.Background.Calls, r.Background.Queries, r.Background.Seconds)
		if r.Background.Calls > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("background: %d client RPCs (%.1f job queries/min) in %.0fs with nothing of ours running: others use this Slurm, and the counts below may include theirs", r.Background.Calls, r.Background.QueriesPerMin, r.Background.Seconds))
		}
	}

	// W1 through Slurm.
	w1 := filepath.Join(dir, "w1.json")
	if err := writeFile(w1, func(f *os.File) error { return independent(c.jobs, "true").writeNative(f, "slurm-w1") }); err != nil {
		return fail("W1", err)
	}
	var ratios []float64
	for round := 0; round < c.rounds; round++ {
		var loop, run time.Duration
		for k := 0; k < 2; k++ {
			if (round+k)%2 == 0 {
				d, rpc, err := e.sbatchLoop(ctx, c.jobs, dir)
				if err != nil {
					return fail("sbatch loop", err)
				}
				loop = d
				r.LoopS, r.LoopRPC = append(r.LoopS, secs(d)), append(r.LoopRPC, rpc)
				fmt.Fprintf(log, "  %s: %d x true, sbatch loop %.1fs (%d client RPCs, %d job queries; %d jobs submitted in all)\n",
					slurmLoadID, c.jobs, secs(d), rpc.Calls, rpc.Queries, rpc.Submitted)
			} else {
				d, rpc, err := e.slurmRun(ctx, vars, w1)
				if err != nil {
					return fail("W1 run", err)
				}
				run = d
				r.RunS, r.RunRPC = append(r.RunS, secs(d)), append(r.RunRPC, rpc)
				fmt.Fprintf(log, "  %s: %d x true, somaflow run %.1fs (%d client RPCs, %d job queries; %d jobs submitted in all)\n",
					slurmLoadID, c.jobs, secs(d), rpc.Calls, rpc.Queries, rpc.Submitted)
			}
		}
		ratios = append(ratios, secs(run)/secs(loop))
		for _, rpc := range []rpcDelta{r.LoopRPC[len(r.LoopRPC)-1], r.RunRPC[len(r.RunRPC)-1]} {
			if rpc.Submitted > c.jobs || rpc.Reset {
				r.Notes = append(r.Notes, fmt.Sprintf("W1 round %d: %d jobs submitted to slurmctld where %d were ours (someone else used Slurm meanwhile)", round+1, rpc.Submitted, c.jobs))
			}
		}
	}
	r.Ratio = median(ratios)
	r.RatioMet = r.Ratio <= r.RatioTarget

	// Jobs changing.
	ch := filepath.Join(dir, "change.json")
	if err := writeFile(ch, func(f *os.File) error { return independent(c.change, "sleep", "3").writeNative(f, "slurm-change") }); err != nil {
		return fail("change", err)
	}
	_, rpc, err := e.slurmRun(ctx, vars, ch)
	if err != nil {
		return fail("change run", err)
	}
	r.Change = rpc
	if rpc.Submitted > c.change || rpc.Reset {
		r.Notes = append(r.Notes, fmt.Sprintf("jobs changing: %d jobs submitted where %d were ours (someone else used Slurm meanwhile)", rpc.Submitted, c.change))
	}
	fmt.Fprintf(log, "  %s: %d x sleep 3: %.1fs, %d job queries (%.1f/min), %d client RPCs (%.1f/min)\n",
		slurmLoadID, c.change, rpc.Seconds, rpc.Queries, rpc.QueriesPerMin, rpc.Calls, rpc.CallsPerMin)

	// Idle: long jobs, counted once they all run.
	r.IdleJobs = c.idleJobs
	if n := idleCPUs(ctx); n > 0 && n < r.IdleJobs {
		r.IdleJobs = n
		r.Notes = append(r.Notes, fmt.Sprintf("idle phase: %d jobs (the idle CPUs), not %d", n, c.idleJobs))
	}
	if r.IdleJobs < 1 {
		return fail("idle", fmt.Errorf("no idle CPU"))
	}
	r.WarmupS = secs(c.warmup)
	sleep := strconv.Itoa(int((c.warmup + c.window + 15*time.Second).Seconds()))
	idle := filepath.Join(dir, "idle.json")
	if err := writeFile(idle, func(f *os.File) error { return independent(r.IdleJobs, "sleep", sleep).writeNative(f, "slurm-idle") }); err != nil {
		return fail("idle", err)
	}
	if r.Idle, err = e.slurmIdle(ctx, vars, idle, c.warmup, c.window, c.warmup+c.window+5*time.Minute); err != nil {
		return fail("idle run", err)
	}
	if r.Idle.Submitted > 0 || r.Idle.Reset {
		r.Notes = append(r.Notes, fmt.Sprintf("idle window: %d jobs submitted by someone else", r.Idle.Submitted))
	}
	fmt.Fprintf(log, "  %s: %d long jobs running: %d job queries in %.0fs (%.2f/min), %d client RPCs\n",
		slurmLoadID, r.IdleJobs, r.Idle.Queries, r.Idle.Seconds, r.Idle.QueriesPerMin, r.Idle.Calls)

	r.ChangeMet = r.Change.QueriesPerMin <= r.ChangeTarget
	r.IdleMet = r.Idle.QueriesPerMin <= r.IdleTarget
	r.Change100PerS = 100 * r.Change.QueriesPerMin / 60
	r.Idle100PerS = 100 * r.Idle.QueriesPerMin / 60
	return r
}

// slurmVars is the environment of somaflow run for slurm-load: the bench's,
// with a configuration file giving the backend settings (k=v,k=v).
func (e *env) slurmVars(dir, settings string, r *slurmLoadResult) ([]string, error) {
	vars := append([]string(nil), e.vars...)
	if settings == "" {
		return vars, nil
	}
	r.Settings = map[string]string{}
	var b strings.Builder
	b.WriteString("settings:\n")
	for _, kv := range strings.Split(settings, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-slurm-settings: %q is not key=value", kv)
		}
		r.Settings[k] = v
		fmt.Fprintf(&b, "  %s: %q\n", k, v)
	}
	cf := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cf, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	return append(vars, "SOMAFLOW_CONFIG="+cf), nil
}

// sbatchLoop is the baseline: n `sbatch --wrap=true` in a shell loop, then
// squeue every 0.5 s until it lists none of them.
func (e *env) sbatchLoop(ctx context.Context, n int, dir string) (time.Duration, rpcDelta, error) {
	name := fmt.Sprintf("sfbench%d", time.Now().UnixNano())
	script := fmt.Sprintf(`for i in $(seq %d); do sbatch --parsable -J %s -o /dev/null --wrap=true >/dev/null || exit 1; done
while [ -n "$(squeue -h -n %s -o %%i)" ]; do sleep 0.5; done`, n, name, name)
	a, err := readSdiag(ctx)
	if err != nil {
		return 0, rpcDelta{}, err
	}
	t0 := time.Now()
	c := exec.CommandContext(ctx, "sh", "-c", script)
	c.Dir, c.Env = dir, e.vars
	out, err := c.CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		return 0, rpcDelta{}, fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	b, err := readSdiag(ctx)
	return d, delta(a, b), err
}

// slurmRun is `somaflow run --backend slurm FILE` to its end.
func (e *env) slurmRun(ctx context.Context, vars []string, file string) (time.Duration, rpcDelta, error) {
	a, err := readSdiag(ctx)
	if err != nil {
		return 0, rpcDelta{}, err
	}
	t0 := time.Now()
	c := exec.CommandContext(ctx, e.bin, "run", "--backend", "slurm", file)
	c.Env = vars
	out, err := c.CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		return 0, rpcDelta{}, fmt.Errorf("somaflow run: %w: %s", err, lastLines(string(out), 5))
	}
	b, err := readSdiag(ctx)
	return d, delta(a, b), err
}

// slurmIdle starts `somaflow run --backend slurm FILE` (jobs that sleep
// until a little after the window), counts RPCs from warmup after its start
// for window, then waits for the run's end (the jobs end by themselves: a
// stop would cancel them, which needs Slurm's record of each).
func (e *env) slurmIdle(ctx context.Context, vars []string, file string, warmup, window, end time.Duration) (rpcDelta, error) {
	c := exec.Command(e.bin, "run", "--backend", "slurm", file)
	c.Env = vars
	out := &tail{max: 4096, b: &bytes.Buffer{}}
	c.Stdout, c.Stderr = out, out
	if err := c.Start(); err != nil {
		return rpcDelta{}, err
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	// finish waits for the run's end, stopping it (SIGINT: it cancels its
	// jobs) when ctx is done or it takes longer than end.
	finish := func() error {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("somaflow run: %w: %s", err, lastLines(out.b.String(), 5))
			}
			return nil
		case <-ctx.Done():
		case <-time.After(end):
		}
		c.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			c.Process.Kill()
			<-done
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("somaflow run did not end within %v: stopped", end)
	}
	wait := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case err := <-done:
			return fmt.Errorf("somaflow run ended early: %v: %s", err, lastLines(out.b.String(), 5))
		case <-ctx.Done():
			finish()
			return ctx.Err()
		}
	}
	if err := wait(warmup); err != nil {
		return rpcDelta{}, err
	}
	a, err := readSdiag(ctx)
	if err != nil {
		finish()
		return rpcDelta{}, err
	}
	if err := wait(window); err != nil {
		return rpcDelta{}, err
	}
	b, err := readSdiag(ctx)
	if ferr := finish(); err == nil {
		err = ferr
	}
	return delta(a, b), err
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " | ")
}

// printSlurmLoad prints slurm-load's table.
func printSlurmLoad(out io.Writer, r *slurmLoadResult) {
	if r == nil {
		return
	}
	fmt.Fprintf(out, "\n%s: calls to slurmctld (sdiag's own counts), per engine\n", slurmLoadID)
	if r.Skipped != "" {
		fmt.Fprintf(out, "skipped: %s\n", r.Skipped)
		return
	}
	if r.Error != "" {
		fmt.Fprintf(out, "error: %s\n", r.Error)
	}
	settings := "defaults"
	if len(r.Settings) > 0 {
		var kv []string
		for k, v := range r.Settings {
			kv = append(kv, k+"="+v)
		}
		sort.Strings(kv)
		settings = strings.Join(kv, ",")
	}
	fmt.Fprintf(out, "%s; cluster: MinJobAge %s, AccountingStorageType %s; backend settings: %s\n\n", r.Somaflow, r.MinJobAge, r.Accounting, settings)
	if len(r.RunS) > 0 && len(r.LoopS) > 0 {
		fmt.Fprintf(out, "W1 through Slurm, %d x true: sbatch loop median %.1fs, somaflow run median %.1fs, ratio %.2f (target <= %.1f: %s)\n",
			r.Jobs, median(r.LoopS), median(r.RunS), r.Ratio, r.RatioTarget, yes(r.RatioMet))
		l, s := r.LoopRPC[len(r.LoopRPC)-1], r.RunRPC[len(r.RunRPC)-1]
		fmt.Fprintf(out, "  RPCs, last round: sbatch loop %d (%s); somaflow run %d (%s)\n", l.Calls, byType(l.ByType), s.Calls, byType(s.ByType))
	}
	if r.Change.Seconds > 0 {
		w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintf(w, "PHASE\tJOBS\tSECONDS\tJOB QUERIES\t/MIN\tTARGET /MIN\tMET\tALL CALLS /MIN\t100 USERS: QUERIES/S\n")
		fmt.Fprintf(w, "jobs changing (sleep 3)\t%d\t%.0f\t%d\t%.2f\t%.1f\t%s\t%.1f\t%.2f\n", r.ChangeJobs, r.Change.Seconds, r.Change.Queries,
			r.Change.QueriesPerMin, r.ChangeTarget, yes(r.ChangeMet), r.Change.CallsPerMin, r.Change100PerS)
		if r.Idle.Seconds > 0 {
			fmt.Fprintf(w, "idle (jobs running)\t%d\t%.0f\t%d\t%.2f\t%.1f\t%s\t%.1f\t%.2f\n", r.IdleJobs, r.Idle.Seconds, r.Idle.Queries,
				r.Idle.QueriesPerMin, r.IdleTarget, yes(r.IdleMet), r.Idle.CallsPerMin, r.Idle100PerS)
		}
		w.Flush()
		fmt.Fprintf(out, "  RPCs while jobs change: %s\n", byType(r.Change.ByType))
		if r.Idle.Seconds > 0 {
			fmt.Fprintf(out, "  RPCs while idle: %s\n", byType(r.Idle.ByType))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
}

func byType(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", strings.TrimPrefix(k, "REQUEST_"), m[k]))
	}
	return strings.Join(parts, ", ")
}
