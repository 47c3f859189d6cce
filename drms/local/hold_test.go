package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/model"
)

func shSpec(dir string, job int64, script string) drms.JobSpec {
	return drms.JobSpec{EngineTag: "test", WorkflowID: 1, JobID: job, Attempt: 1, Argv: []string{"sh", "-c", script},
		Env: os.Environ(), Dir: dir, Stdout: filepath.Join(dir, fmt.Sprintf("%d.out", job)),
		Stderr: filepath.Join(dir, fmt.Sprintf("%d.err", job)), LazyStdout: true, LazyStderr: true}
}

// nextEvent returns the next event about handle ID id, failing after 30 s.
func nextEvent(t *testing.T, b *Backend, id string) drms.Event {
	t.Helper()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		select {
		case ev := <-b.Events():
			if ev.ID == id {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no event for %s", id)
		}
	}
}

// pidOf is the pid a handle names (0 if none).
func pidOf(h *drms.Handle) int {
	if h == nil {
		return 0
	}
	pid, _ := strconv.Atoi(h.ID)
	return pid
}

func newHoldBackend(t *testing.T) (*Backend, string) {
	t.Helper()
	b := New(drms.Config{StateDir: t.TempDir()})
	t.Cleanup(func() { b.Close() })
	return b, t.TempDir()
}

// A held job that runs on is told running, with its pid as its new handle,
// and then ends under that handle.
func TestHeldJobToldRunning(t *testing.T) {
	b, dir := newHoldBackend(t)
	ctx := context.Background()
	gate := filepath.Join(dir, "gate")
	a, err := b.Submit(ctx, shSpec(dir, 1, "sleep 0.1"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := b.SubmitAfter(ctx, shSpec(dir, 2, fmt.Sprintf("while [ ! -e %s ]; do sleep 0.02; done", gate)), []drms.Handle{a})
	if err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, b, h.ID)
	pid := pidOf(ev.State.Handle)
	if ev.State.Phase != drms.Running || pid <= 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("held job's first event %+v (handle %+v): want running with the pid of a running process", ev.State, ev.State.Handle)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	end := nextEvent(t, b, ev.State.Handle.ID)
	if o := end.State.Outcome; end.State.Phase != drms.Ended || o == nil || !model.Succeeded(o.Status, o.ExitStatus, o.ExitValue) {
		t.Fatalf("held job's end: %+v", end.State)
	}
}

// A held job that ends before its start event is due is told by its end
// alone, under its held handle ID, with its new handle and its start; until
// then, a kill under its held handle ID reaches it.
func TestHeldJobToldByItsEnd(t *testing.T) {
	old := startDelay
	startDelay = time.Hour
	t.Cleanup(func() { startDelay = old })
	b, dir := newHoldBackend(t)
	ctx := context.Background()
	a, err := b.Submit(ctx, shSpec(dir, 1, "sleep 0.1"))
	if err != nil {
		t.Fatal(err)
	}
	short, err := b.SubmitAfter(ctx, shSpec(dir, 2, "exit 0"), []drms.Handle{a})
	if err != nil {
		t.Fatal(err)
	}
	long, err := b.SubmitAfter(ctx, shSpec(dir, 3, "sleep 60"), []drms.Handle{a})
	if err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, b, short.ID)
	if o := ev.State.Outcome; ev.State.Phase != drms.Ended || o == nil || !model.Succeeded(o.Status, o.ExitStatus, o.ExitValue) ||
		pidOf(ev.State.Handle) <= 0 || ev.State.Started.IsZero() {
		t.Fatalf("short held job's first event %+v (handle %+v): want its end, with its pid as handle and its start", ev.State, ev.State.Handle)
	}
	// The long one runs, its start not told: a kill by its held handle.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := b.Status(ctx, []drms.Handle{long})
		if err != nil {
			t.Fatal(err)
		}
		if st[long.ID].Phase == drms.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("long held job never running: %+v", st[long.ID])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.Kill(ctx, long); err != nil {
		t.Fatal(err)
	}
	ev = nextEvent(t, b, long.ID)
	if o := ev.State.Outcome; ev.State.Phase != drms.Ended || o == nil || o.Signal == "" || pidOf(ev.State.Handle) <= 0 {
		t.Fatalf("killed held job's first event %+v (outcome %+v, handle %+v): want its end by a signal, with its pid as handle", ev.State, o, ev.State.Handle)
	}
}
