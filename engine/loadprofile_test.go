package engine

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/local"
	"github.com/somaflow/somaflow/store"
)

// TestLoadProfile loads the workflows of an existing state dir, as an
// engine's start does, and writes a heap profile of what the engine holds
// then: a measurement helper for big workflows (issue 24), run only when
// SOMAFLOW_LOAD_STATE names a state dir (a copy: the load marks workflows
// loaded) and SOMAFLOW_LOAD_HEAP the profile to write.
func TestLoadProfile(t *testing.T) {
	dir, out := os.Getenv("SOMAFLOW_LOAD_STATE"), os.Getenv("SOMAFLOW_LOAD_HEAP")
	if dir == "" || out == "" {
		t.Skip("SOMAFLOW_LOAD_STATE and SOMAFLOW_LOAD_HEAP not set")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := New(st, local.New(drms.Config{StateDir: st.Dir}), Options{})
	t0 := time.Now()
	if err := e.scan(ctx, true); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	jobs := 0
	for _, w := range e.runs {
		jobs += len(w.jobs)
	}
	if jobs == 0 {
		t.Fatal("no job loaded")
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%d jobs loaded in %.1f s: heap in use %d MB, sys %d MB, total allocated %d MB",
		jobs, took.Seconds(), ms.HeapInuse>>20, ms.Sys>>20, ms.TotalAlloc>>20)
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(e)
}
