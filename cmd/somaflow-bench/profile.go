package main

import (
	"bufio"
	"context"
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
	if gobin, err := exec.LookPath("go"); err == nil {
		top, err := exec.CommandContext(ctx, gobin, "tool", "pprof", "-top", "-nodecount=35", res.Profile).CombinedOutput()
		if err != nil {
			res.Top = fmt.Sprintf("go tool pprof: %v\n%s", err, top)
		} else {
			res.Top = string(top)
		}
		cum, err := exec.CommandContext(ctx, gobin, "tool", "pprof", "-top", "-cum", "-nodecount=45", res.Profile).CombinedOutput()
		if err == nil {
			res.Top += "\n--- by cumulative time ---\n" + string(cum)
		}
		os.WriteFile(filepath.Join(out, "cpu-"+w.id+".top.txt"), []byte(res.Top), 0o600)
	}
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
	fmt.Fprintf(out, "\n== profile %s (%d jobs, engine in this process): %.3fs vs floor %.3fs; this process: %.3f ms user + %.3f ms sys CPU per job, %.1f write calls and %.1f KB written per job; %s\n",
		p.Workload, p.Jobs, p.WallS, p.FloorS, p.CPUmsPerJobUser, p.CPUmsPerJobSys, p.WriteCallsPerJob, p.WriteKBPerJob, p.Profile)
	lines := strings.Split(p.Top, "\n")
	if len(lines) > 30 {
		lines = lines[:30]
	}
	fmt.Fprintln(out, strings.Join(lines, "\n"))
}
