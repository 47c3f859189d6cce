package pbs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
)

// BenchmarkThousandJobs runs SOMAFLOW_BENCH_JOBS (default 1000) trivial
// jobs through the backend to completion (one Submit each, Status polled
// every 500 ms: one qstat per poll), and, in the same run, the baseline: a
// plain shell loop of as many `qsub` of a one-line `true` script, then
// waiting until qstat shows none of them unfinished. It reports the wall
// times, qsub and qstat calls, and the ratio backend/baseline (target <=
// 1.2; docs/benchmarks.md). Run with the PBS commands on PATH (CI: Slurm's
// Torque wrappers, scripts/pbs-wrappers.sh) and -bench ThousandJobs
// -benchtime 1x.
func BenchmarkThousandJobs(b *testing.B) {
	if _, err := exec.LookPath("qsub"); err != nil {
		b.Skip("no PBS commands on PATH")
	}
	if out, _ := exec.Command("qstat", "--version").CombinedOutput(); strings.Contains(string(out), "SGE") {
		b.Skip("qstat on PATH is Grid Engine's")
	}
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("SOMAFLOW_BENCH_JOBS")); err == nil && v > 0 {
		n = v
	}
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		script := filepath.Join(dir, "true.sh")
		if err := os.WriteFile(script, []byte("#!/bin/sh\ntrue\n"), 0o755); err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("sfq%d", time.Now().UnixNano()%100000000)
		t0 := time.Now()
		loop := fmt.Sprintf(`for i in $(seq %d); do qsub -N %s -o /dev/null -j oe %s >/dev/null || exit 1; done
while qstat | awk -v n=%s '$2 == n && $5 != "C" && $5 != "F" { found = 1 } END { exit !found }'; do sleep 0.5; done`, n, name, script, name)
		if out, err := exec.Command("sh", "-c", loop).CombinedOutput(); err != nil {
			b.Fatalf("baseline: %v %s", err, out)
		}
		base := time.Since(t0)
		r := benchBackend(b, n)
		b.ReportMetric(base.Seconds(), "qsub-loop-s")
		b.ReportMetric(r.wall.Seconds(), "backend-s")
		b.ReportMetric(r.submit.Seconds(), "backend-submit-s")
		b.ReportMetric(float64(r.calls["qstat"])/float64(r.polls), "qstat/cycle")
		b.ReportMetric(r.wall.Seconds()/base.Seconds(), "ratio")
		b.Logf("%d jobs: backend %v (submit %v), qsub loop %v, ratio %.2f; %d Status cycles, calls %v",
			n, r.wall.Round(time.Millisecond), r.submit.Round(time.Millisecond), base.Round(time.Millisecond), r.wall.Seconds()/base.Seconds(), r.polls, r.calls)
	}
}

type benchResult struct {
	wall, submit time.Duration
	polls        int
	calls        map[string]int
}

// benchBackend submits n `true` jobs through a new backend and polls
// Status every 500 ms until all ended.
func benchBackend(b *testing.B, n int) benchResult {
	exe, _ := os.Executable()
	tag := fmt.Sprintf("bench%d", time.Now().UnixNano()%1000000)
	be, err := New(drms.Config{StateDir: b.TempDir(), ExecPath: exe, EngineTag: tag})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	ctx := context.Background()
	t1 := time.Now()
	hs := make([]drms.Handle, 0, n)
	for j := 0; j < n; j++ {
		h, err := be.Submit(ctx, drms.JobSpec{EngineTag: tag, WorkflowID: 1, JobID: int64(j), Attempt: 1, Argv: []string{"true"},
			Env: []string{"PATH=" + os.Getenv("PATH")}, Dir: dir, Stdout: os.DevNull, Stderr: os.DevNull})
		if err != nil {
			b.Fatalf("Submit %d: %v", j, err)
		}
		hs = append(hs, h)
	}
	submit := time.Since(t1)
	polls := 0
	for len(hs) > 0 {
		polls++
		st, err := be.Status(ctx, hs)
		if err != nil {
			b.Fatal(err)
		}
		left := hs[:0]
		for _, h := range hs {
			if s := st[h.ID]; s.Phase != drms.Ended {
				left = append(left, h)
			} else if s.Outcome.ExitValue == nil || *s.Outcome.ExitValue != 0 {
				b.Fatalf("job %s: %+v", h.ID, s.Outcome)
			}
		}
		hs = left
		if len(hs) > 0 {
			time.Sleep(500 * time.Millisecond)
		}
	}
	return benchResult{wall: time.Since(t1), submit: submit, polls: polls, calls: be.Calls()}
}
