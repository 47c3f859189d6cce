package command

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/execjob"
)

// BenchmarkStatusRunning is the cost of one Status of 1,000 running jobs
// answered from exec-job's files (the status command is not run: the last
// listing is young and nothing is due), each job with its spool files
// (script, env, started file; no status file yet): opening each job's
// status file and decoding each handle (open-each, the way before the
// directory scan), one read of the spool dir (scan), and that with the
// handles decoded once (scan+decoded). cpu-ns/op is this thread's CPU
// time, the syscalls included.
func BenchmarkStatusRunning(b *testing.B) {
	const n = 1000
	be, err := New(drms.Config{StateDir: b.TempDir(), ExecPath: "/bin/true", EngineTag: "bench", Settings: fakeSettings()})
	if err != nil {
		b.Fatal(err)
	}
	hs := make([]drms.Handle, n)
	list := map[string]entry{}
	for i := range hs {
		spec := drms.JobSpec{EngineTag: "bench", WorkflowID: 1, JobID: int64(i + 1), Attempt: 1, Argv: []string{"true"}}
		p, err := be.spool.Prepare(spec)
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range []string{p.Script, p.Output} {
			if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
				b.Fatal(err)
			}
		}
		si, _ := json.Marshal(execjob.Started{JobID: fmt.Sprint(i + 1), Time: time.Now()})
		if err := os.WriteFile(p.Started, si, 0o600); err != nil {
			b.Fatal(err)
		}
		id := fmt.Sprint(i + 1)
		hs[i] = be.handle(id, spec)
		list[id] = entry{ID: id, State: "R", Name: spec.Name()}
	}
	ctx := context.Background()
	for _, c := range []struct {
		name              string
		openEach, decoded bool
	}{{"open-each", true, false}, {"scan", false, false}, {"scan+decoded", false, true}} {
		b.Run(c.name, func(b *testing.B) {
			be.pace.OpenEach, be.handles.Off = c.openEach, !c.decoded
			be.mu.Lock()
			be.lastList, be.lastListAt = list, time.Now()
			be.mu.Unlock()
			calls := be.Calls()["fstat"]
			st, err := be.Status(ctx, hs)
			if err != nil || st[hs[0].ID].Phase != drms.Running {
				b.Fatalf("%+v %v", st[hs[0].ID], err)
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ResetTimer()
			cpu0 := threadCPU()
			for i := 0; i < b.N; i++ {
				if _, err := be.Status(ctx, hs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			b.StopTimer()
			if be.Calls()["fstat"] != calls {
				b.Fatal("the status command ran")
			}
		})
	}
}

// threadCPU is the CPU time of the calling thread.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
