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
// jobs through the backend to completion (Status polled every 500 ms, one
// squeue per poll) and, in the same run, a plain shell loop of as many
// `sbatch --wrap=true` followed by waiting until squeue shows none of them.
// It reports sbatch calls, squeue calls per cycle and per minute, and the
// wall-time ratio backend/baseline. Run with -bench ThousandJobs -benchtime 1x.
func BenchmarkThousandJobs(b *testing.B) {
	if _, err := exec.LookPath("sbatch"); err != nil {
		b.Skip("no Slurm")
	}
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("SOMAFLOW_BENCH_JOBS")); err == nil && v > 0 {
		n = v
	}
	exe, _ := os.Executable()
	for i := 0; i < b.N; i++ {
		// Baseline: plain sbatch loop, then wait until squeue shows none.
		t0 := time.Now()
		name := fmt.Sprintf("sfbench%d", time.Now().UnixNano())
		script := fmt.Sprintf(`for i in $(seq %d); do sbatch --parsable -J %s -o /dev/null --wrap=true >/dev/null || exit 1; done
while [ -n "$(squeue -h -n %s -o %%i)" ]; do sleep 0.5; done`, n, name, name)
		if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
			b.Fatalf("baseline: %v %s", err, out)
		}
		base := time.Since(t0)

		// The backend.
		tag := fmt.Sprintf("bench%d", time.Now().UnixNano()%1000000)
		be, err := New(drms.Config{StateDir: b.TempDir(), ExecPath: exe, EngineTag: tag})
		if err != nil {
			b.Fatal(err)
		}
		dir := b.TempDir()
		t1 := time.Now()
		var hs []drms.Handle
		for j := 0; j < n; j++ {
			h, err := be.Submit(context.Background(), drms.JobSpec{
				EngineTag: tag, WorkflowID: 1, JobID: int64(j), Attempt: 1, Argv: []string{"true"},
				Env: []string{"PATH=" + os.Getenv("PATH")}, Dir: dir, Stdout: os.DevNull, Stderr: os.DevNull,
			})
			if err != nil {
				b.Fatalf("Submit %d: %v", j, err)
			}
			hs = append(hs, h)
		}
		polls := 0
		for {
			polls++
			st, err := be.Status(context.Background(), hs)
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
		ours := time.Since(t1)
		b.ReportMetric(float64(n), "sbatch-calls")
		b.ReportMetric(1, "squeue/cycle")
		b.ReportMetric(float64(polls)/ours.Minutes(), "squeue/min")
		b.ReportMetric(ours.Seconds(), "backend-s")
		b.ReportMetric(base.Seconds(), "baseline-s")
		b.ReportMetric(ours.Seconds()/base.Seconds(), "ratio")
		b.Log(strings.TrimSpace(fmt.Sprintf("%d jobs: backend %v, sbatch loop %v, ratio %.2f, %d Status calls", n, ours, base, ours.Seconds()/base.Seconds(), polls)))
	}
}
