package slurm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
)

// BenchmarkThousandJobs runs SOMAFLOW_BENCH_JOBS (default 1000) trivial
// jobs through the backend to completion, once as plain jobs (one Submit
// each) and once with arrays on (one SubmitArray call with all of them, as
// the engine gives a cycle's jobs), Status polled every 500 ms (one squeue
// per poll); and, in the same run, a plain shell loop of as many
// `sbatch --wrap=true` followed by waiting until squeue shows none of them
// (the baseline), and for reference one `sbatch --array --wrap=true` of as
// many tasks (what Slurm itself needs to run them as an array).
// It reports, per mode, sbatch calls, squeue calls per Status cycle and per
// minute, and the wall-time ratio backend/baseline (targets: <= 1.2 plain,
// < 1 with arrays). Run with -bench ThousandJobs -benchtime 1x.
func BenchmarkThousandJobs(b *testing.B) {
	if _, err := exec.LookPath("sbatch"); err != nil {
		b.Skip("no Slurm")
	}
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("SOMAFLOW_BENCH_JOBS")); err == nil && v > 0 {
		n = v
	}
	for i := 0; i < b.N; i++ {
		// Baseline: plain sbatch loop, then wait until squeue shows none.
		t0 := time.Now()
		name := fmt.Sprintf("sfbench%d", time.Now().UnixNano())
		script := fmt.Sprintf(`for i in $(seq %d); do sbatch --parsable -J %s -o /dev/null --wrap=true >/dev/null || exit 1; done
date +%%s.%%N
while [ -n "$(squeue -h -n %s -o %%i)" ]; do sleep 0.5; done`, n, name, name)
		out, err := exec.Command("sh", "-c", script).CombinedOutput()
		if err != nil {
			b.Fatalf("baseline: %v %s", err, out)
		}
		base := time.Since(t0)
		b.ReportMetric(base.Seconds(), "baseline-s")
		if f, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil {
			b.ReportMetric(f-float64(t0.UnixNano())/1e9, "baseline-submit-s")
		}
		// For reference, Slurm's own floor for arrays: one array of as many
		// `true` tasks, without somaflow.
		t0 = time.Now()
		name = fmt.Sprintf("sfbencharr%d", time.Now().UnixNano())
		script = fmt.Sprintf(`sbatch --parsable -J %s -o /dev/null --array=0-%d --wrap=true >/dev/null || exit 1
while [ -n "$(squeue -h -n %s -o %%i)" ]; do sleep 0.5; done`, name, n-1, name)
		if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
			b.Fatalf("array floor: %v %s", err, out)
		}
		floor := time.Since(t0)
		b.ReportMetric(floor.Seconds(), "slurm-array-s")
		for _, mode := range []string{"plain", "arrays"} {
			r := benchBackend(b, n, mode == "arrays")
			b.ReportMetric(float64(r.calls["sbatch"]), mode+"-sbatch-calls")
			b.ReportMetric(float64(r.calls["squeue"])/float64(r.polls), mode+"-squeue/cycle")
			b.ReportMetric(float64(r.calls["squeue"])/r.wall.Minutes(), mode+"-squeue/min")
			b.ReportMetric(r.wall.Seconds(), mode+"-s")
			b.ReportMetric(r.submit.Seconds(), mode+"-submit-s")
			b.ReportMetric(r.wall.Seconds()/base.Seconds(), mode+"-ratio")
			b.Logf("%d jobs, %s: %v (submit %v), sbatch loop %v, ratio %.2f (one plain Slurm array of true: %v); %d sbatch, %d squeue in %d Status cycles (%.0f/min), all calls %v",
				n, mode, r.wall.Round(time.Millisecond), r.submit.Round(time.Millisecond), base.Round(time.Millisecond), r.wall.Seconds()/base.Seconds(), floor.Round(time.Millisecond),
				r.calls["sbatch"], r.calls["squeue"], r.polls, float64(r.calls["squeue"])/r.wall.Minutes(), r.calls)
		}
	}
}

type benchResult struct {
	wall, submit time.Duration
	polls        int
	calls        map[string]int
}

// benchBackend submits n `true` jobs through a new backend (one SubmitArray
// call with arrays) and polls Status every 500 ms until all ended.
func benchBackend(b *testing.B, n int, arrays bool) benchResult {
	exe, _ := os.Executable()
	tag := fmt.Sprintf("bench%d", time.Now().UnixNano()%1000000)
	be, err := New(drms.Config{StateDir: b.TempDir(), ExecPath: exe, EngineTag: tag,
		Settings: map[string]string{"arrays": strconv.FormatBool(arrays)}})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	specs := make([]drms.JobSpec, n)
	for j := range specs {
		specs[j] = drms.JobSpec{
			EngineTag: tag, WorkflowID: 1, JobID: int64(j), Attempt: 1, Argv: []string{"true"},
			Env: []string{"PATH=" + os.Getenv("PATH")}, Dir: dir, Stdout: os.DevNull, Stderr: os.DevNull,
		}
	}
	ctx := context.Background()
	t1 := time.Now()
	var hs []drms.Handle
	if arrays {
		if hs, err = be.SubmitArray(ctx, specs); err != nil {
			b.Fatalf("SubmitArray: %v", err)
		}
	} else {
		for j, s := range specs {
			h, err := be.Submit(ctx, s)
			if err != nil {
				b.Fatalf("Submit %d: %v", j, err)
			}
			hs = append(hs, h)
		}
	}
	submit := time.Since(t1)
	polls := 0
	for {
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
		if len(hs) == 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	return benchResult{wall: time.Since(t1), submit: submit, polls: polls, calls: be.Calls()}
}
