package supervisor_test

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/local"
)

const (
	benchJobs     = 1000
	benchParallel = 2
)

// BenchmarkTrue1000 runs 1,000 `true` jobs, 2 at a time, through the
// supervised backend and as plain fork/exec/wait4 in the same run, and
// reports both times and their ratio (the target is at most 1.5); the
// in-process local backend through the same harness is shown for reference.
func BenchmarkTrue1000(b *testing.B) {
	truePath, err := exec.LookPath("true")
	if err != nil {
		b.Skip("no true on PATH")
	}
	state := b.TempDir()
	b.Cleanup(func() { stopSupervisor(b, state) })
	be := newBackend(b, state)
	disp := newDispatcher(be)
	env := os.Environ()
	dir := b.TempDir()

	lb := local.New(drms.Config{StateDir: state})
	ldisp := newDispatcher(lb)
	var plain, sup, inproc time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		parallel(func(n int) {
			for range n {
				pid, err := syscall.ForkExec(truePath, []string{"true"}, &syscall.ProcAttr{
					Dir: dir, Env: env, Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{Setpgid: true}})
				if err != nil {
					b.Error(err)
					return
				}
				var ws syscall.WaitStatus
				syscall.Wait4(pid, &ws, 0, nil)
			}
		})
		plain += time.Since(t0)

		t0 = time.Now()
		var mu sync.Mutex
		next := int64(i) * benchJobs
		parallel(func(n int) {
			for range n {
				mu.Lock()
				next++
				id := next
				mu.Unlock()
				h, err := be.Submit(context.Background(), drms.JobSpec{EngineTag: "test", WorkflowID: 1, JobID: id, Attempt: 1,
					Argv: []string{"true"}, Env: env, Dir: dir, Stdout: os.DevNull, Stderr: os.DevNull})
				if err != nil {
					b.Error(err)
					return
				}
				if o := disp.wait(h.ID); o.ExitValue == nil || *o.ExitValue != 0 {
					b.Errorf("job %s: %+v", h.ID, o)
				}
			}
		})
		sup += time.Since(t0)

		t0 = time.Now()
		next = int64(i) * benchJobs
		parallel(func(n int) {
			for range n {
				mu.Lock()
				next++
				id := next
				mu.Unlock()
				h, err := lb.Submit(context.Background(), drms.JobSpec{EngineTag: "test", WorkflowID: 1, JobID: id, Attempt: 1,
					Argv: []string{"true"}, Env: env, Dir: dir, Stdout: os.DevNull, Stderr: os.DevNull})
				if err != nil {
					b.Error(err)
					return
				}
				ldisp.wait(h.ID)
			}
		})
		inproc += time.Since(t0)
	}
	b.ReportMetric(inproc.Seconds()/float64(b.N), "inprocess-s/1000jobs")
	b.ReportMetric(plain.Seconds()/float64(b.N), "plain-s/1000jobs")
	b.ReportMetric(sup.Seconds()/float64(b.N), "supervised-s/1000jobs")
	b.ReportMetric(float64(sup)/float64(plain), "ratio")
}

func parallel(f func(n int)) {
	var wg sync.WaitGroup
	for range benchParallel {
		wg.Add(1)
		go func() { defer wg.Done(); f(benchJobs / benchParallel) }()
	}
	wg.Wait()
}

// dispatcher hands each end event to the goroutine waiting for it.
type dispatcher struct {
	mu sync.Mutex
	ch map[string]chan *drms.Outcome
}

func newDispatcher(be drms.Notifier) *dispatcher {
	d := &dispatcher{ch: map[string]chan *drms.Outcome{}}
	go func() {
		for ev := range be.Events() {
			if ev.State.Phase == drms.Ended {
				d.get(ev.ID) <- ev.State.Outcome
			}
		}
	}()
	return d
}

func (d *dispatcher) get(id string) chan *drms.Outcome {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.ch[id]
	if c == nil {
		c = make(chan *drms.Outcome, 1)
		d.ch[id] = c
	}
	return c
}

func (d *dispatcher) wait(id string) *drms.Outcome {
	o := <-d.get(id)
	d.mu.Lock()
	delete(d.ch, id)
	d.mu.Unlock()
	return o
}
