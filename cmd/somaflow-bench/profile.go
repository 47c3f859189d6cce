package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/somaflow/somaflow/client"
)

// profileResult is what profiling one workload in this process showed.
type profileResult struct {
	Workload string  `json:"workload"`
	Jobs     int     `json:"jobs"`
	WallS    float64 `json:"wall_s"`
	FloorS   float64 `json:"floor_s"`
	// CPUms* are this process's user and system CPU per job (the engine,
	// the store, and the fork/exec of each job), children excluded.
	CPUmsPerJobUser float64 `json:"cpu_ms_per_job_user"`
	CPUmsPerJobSys  float64 `json:"cpu_ms_per_job_sys"`
	// Syscalls that write, and bytes written to storage, per job
	// (/proc/self/io).
	WriteCallsPerJob float64 `json:"write_calls_per_job"`
	WriteKBPerJob    float64 `json:"write_kb_per_job"`
	Profile          string  `json:"profile"`
	Top              string  `json:"top"`
}

// profile runs w through an engine in this process (what `somaflow run`
// does: client.Open, SubmitWorkflow, WaitWorkflow, the status document)
// under the CPU profiler, and writes the profile and its top functions.
func (e *env) profile(ctx context.Context, w *workload, out string) (*profileResult, error) {
	res := &profileResult{Workload: w.id, Jobs: w.g.jobs()}
	t0 := time.Now()
	if err := w.g.floor(ctx, w.conc, e.vars, ""); err != nil {
		return nil, err
	}
	res.FloorS = secs(time.Since(t0))
	data, err := os.ReadFile(w.native)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "somaflow-bench-prof-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	res.Profile = filepath.Join(out, "cpu-"+w.id+".pprof")
	f, err := os.Create(res.Profile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ru0, ru1 syscall.Rusage
	io0 := procIO()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, err
	}
	t0 = time.Now()
	err = runInProcess(ctx, e, dir, data, w.conc)
	res.WallS = secs(time.Since(t0))
	pprof.StopCPUProfile()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	io1 := procIO()
	if err != nil {
		return nil, err
	}
	n := float64(res.Jobs)
	res.CPUmsPerJobUser = float64(tvDiff(ru0.Utime, ru1.Utime).Microseconds()) / 1000 / n
	res.CPUmsPerJobSys = float64(tvDiff(ru0.Stime, ru1.Stime).Microseconds()) / 1000 / n
	res.WriteCallsPerJob = float64(io1["syscw"]-io0["syscw"]) / n
	res.WriteKBPerJob = float64(io1["write_bytes"]-io0["write_bytes"]) / 1024 / n
	res.Top = pprofTop(ctx, res.Profile, out, w.id)
	return res, nil
}

func runInProcess(ctx context.Context, e *env, dir string, data []byte, conc int) error {
	c, err := client.Open(ctx, client.Options{StateDir: dir, ExecPath: e.bin})
	if err != nil {
		return err
	}
	defer c.Close()
	wf, format, err := client.Unserialize(data)
	if err != nil {
		return err
	}
	id, err := c.SubmitWorkflow(ctx, wf, client.SubmitOptions{MaxJobs: conc, Format: string(format), Environ: e.vars})
	if err != nil {
		return err
	}
	if err := c.WaitWorkflow(ctx, id, -1); err != nil {
		return err
	}
	doc, err := c.WorkflowElementsStatus(ctx, id)
	if err != nil {
		return err
	}
	for _, j := range doc.Jobs {
		if j.Status != "done" || j.ExitValue == nil || *j.ExitValue != 0 {
			return fmt.Errorf("job %s: %s", j.Name, j.Status)
		}
	}
	return c.Close()
}

// profileStore profiles, in this process, what `somaflow submit` and
// `somaflow status --json` do with a fan-out of n jobs and no engine:
// decode + validate + store, then the status document and its JSON.
func (e *env) profileStore(ctx context.Context, n int, out string) ([]*profileResult, error) {
	dir, err := os.MkdirTemp("", "somaflow-bench-prof-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "wf.json")
	if err := writeFile(file, func(f *os.File) error { return fanOut(n, "true").writeNative(f, "scale") }); err != nil {
		return nil, err
	}
	c, err := client.Open(ctx, client.Options{StateDir: filepath.Join(dir, "state"), NoEngine: true})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var id int64
	submit := func() error {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		wf, format, err := client.Unserialize(data)
		if err != nil {
			return err
		}
		id, err = c.SubmitWorkflow(ctx, wf, client.SubmitOptions{Format: string(format), Environ: e.vars})
		return err
	}
	status := func() error {
		doc, err := c.WorkflowElementsStatus(ctx, id)
		if err != nil {
			return err
		}
		// Compact, as `status --json` prints it when stdout is no terminal.
		return json.NewEncoder(io.Discard).Encode(doc)
	}
	var res []*profileResult
	for _, step := range []struct {
		name string
		f    func() error
	}{{fmt.Sprintf("submit-%d", n), submit}, {fmt.Sprintf("status-json-%d", n), status}} {
		p := &profileResult{Workload: step.name, Jobs: n, Profile: filepath.Join(out, "cpu-"+step.name+".pprof")}
		f, err := os.Create(p.Profile)
		if err != nil {
			return res, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return res, err
		}
		t0 := time.Now()
		err = step.f()
		p.WallS = secs(time.Since(t0))
		pprof.StopCPUProfile()
		f.Close()
		if err != nil {
			return res, fmt.Errorf("%s: %w", step.name, err)
		}
		p.Top = pprofTop(ctx, p.Profile, out, step.name)
		res = append(res, p)
	}
	return res, nil
}

// pprofTop is `go tool pprof -top` (flat, then cumulative) of a profile,
// also written to OUT/cpu-NAME.top.txt ("" without the go command).
func pprofTop(ctx context.Context, profile, out, name string) string {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return ""
	}
	top, err := exec.CommandContext(ctx, gobin, "tool", "pprof", "-top", "-nodecount=35", profile).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("go tool pprof: %v\n%s", err, top)
	}
	s := string(top)
	if cum, err := exec.CommandContext(ctx, gobin, "tool", "pprof", "-top", "-cum", "-nodecount=45", profile).CombinedOutput(); err == nil {
		s += "\n--- by cumulative time ---\n" + string(cum)
	}
	os.WriteFile(filepath.Join(out, "cpu-"+name+".top.txt"), []byte(s), 0o600)
	return s
}

func tvDiff(a, b syscall.Timeval) time.Duration {
	return time.Duration(b.Nano() - a.Nano())
}

// procIO reads /proc/self/io (empty where absent).
func procIO() map[string]int64 {
	m := map[string]int64{}
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			m[k] = n
		}
	}
	return m
}

func printProfile(out io.Writer, p *profileResult) {
	if p.FloorS > 0 {
		fmt.Fprintf(out, "\n== profile %s (%d jobs, engine in this process): %.3fs vs floor %.3fs; this process: %.3f ms user + %.3f ms sys CPU per job, %.1f write calls and %.1f KB written per job; %s\n",
			p.Workload, p.Jobs, p.WallS, p.FloorS, p.CPUmsPerJobUser, p.CPUmsPerJobSys, p.WriteCallsPerJob, p.WriteKBPerJob, p.Profile)
	} else {
		fmt.Fprintf(out, "\n== profile %s (in this process): %.3fs; %s\n", p.Workload, p.WallS, p.Profile)
	}
	flat, cum, _ := strings.Cut(p.Top, "--- by cumulative time ---")
	// The flat top's first entries, then the cumulative lines of somaflow's
	// own functions (who pays for the flat costs).
	n := 0
	for _, l := range strings.Split(flat, "\n") {
		if strings.Contains(l, "%") && n < 12 {
			fmt.Fprintln(out, l)
			n++
		}
	}
	fmt.Fprintln(out, "  cumulative, somaflow's functions:")
	n = 0
	for _, l := range strings.Split(cum, "\n") {
		if strings.Contains(l, "github.com/somaflow/somaflow/") && !strings.Contains(l, "cmd/somaflow-bench") && n < 15 {
			fmt.Fprintln(out, l)
			n++
		}
	}
}
