package engine

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/local"
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/store"
)

// forkExecFloor runs n `true` processes, conc at a time, with plain Go
// fork/exec: the floor the engine is compared against.
func forkExecFloor(b *testing.B, n, conc int) {
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := exec.Command("true").Run(); err != nil {
				b.Error(err)
			}
			<-sem
		}()
	}
	wg.Wait()
}

func independentTrue(n int) *model.Workflow {
	w := &model.Workflow{}
	for i := 0; i < n; i++ {
		name := fmt.Sprint("j", i)
		w.Jobs = append(w.Jobs, &model.Job{Name: &name, Command: []model.Arg{{Value: "true"}}})
	}
	return w
}

func chainTrue(n int) *model.Workflow {
	w := independentTrue(n)
	for i := 1; i < n; i++ {
		w.Dependencies = append(w.Dependencies, model.Dependency{From: model.Element{Index: i - 1}, To: model.Element{Index: i}})
	}
	return w
}

// runEngine stores w and runs it to the end through a fresh engine.
func runEngine(b *testing.B, w *model.Workflow, conc int) {
	dir := b.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, filepath.Join(dir, "state"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	e := New(st, local.New(drms.Config{StateDir: st.Dir}), Options{})
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	id, err := st.CreateWorkflow(ctx, store.NewWorkflow{Def: w, MaxJobs: conc, Expiration: time.Now().Add(time.Hour), Cwd: dir, Environ: os.Environ()})
	if err != nil {
		b.Fatal(err)
	}
	e.Wake()
	for {
		ch := e.Changed()
		row, err := st.GetWorkflow(ctx, id, false)
		if err != nil {
			b.Fatal(err)
		}
		if row.Status == model.WorkflowDone {
			break
		}
		<-ch
	}
	cancel()
	<-done
}

// BenchmarkW1 compares 1,000 independent `true` jobs, 2 at a time, through
// the engine against plain fork/exec; ratio = engine / floor.
func BenchmarkW1(b *testing.B) {
	benchPair(b, func() *model.Workflow { return independentTrue(1000) }, 1000, 2)
}

// BenchmarkW2 is a chain of 200 `true` jobs.
func BenchmarkW2(b *testing.B) {
	benchPair(b, func() *model.Workflow { return chainTrue(200) }, 200, 1)
}

// selfCPU is this process's CPU time (all threads, not its children).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchPair(b *testing.B, mk func() *model.Workflow, n, conc int) {
	var floor, eng, floorCPU, engCPU time.Duration
	for i := 0; i < b.N; i++ {
		t0, c0 := time.Now(), selfCPU()
		forkExecFloor(b, n, conc)
		floor += time.Since(t0)
		floorCPU += selfCPU() - c0
		w := mk()
		t0, c0 = time.Now(), selfCPU()
		runEngine(b, w, conc)
		eng += time.Since(t0)
		engCPU += selfCPU() - c0
	}
	// CPU time spent in this process per job, floor and engine: steadier
	// than wall time on a busy machine.
	b.ReportMetric(float64(floorCPU)/float64(b.N)/float64(n)/1e3, "floor-cpu-us/job")
	b.ReportMetric(float64(engCPU)/float64(b.N)/float64(n)/1e3, "engine-cpu-us/job")
	b.ReportMetric(float64(eng)/float64(floor), "ratio")
	b.ReportMetric(float64(eng-floor)/float64(b.N)/float64(n)/1e6, "overhead-ms/job")
	b.ReportMetric(float64(floor)/float64(b.N)/1e9, "floor-s")
	b.ReportMetric(float64(eng)/float64(b.N)/1e9, "engine-s")
}
