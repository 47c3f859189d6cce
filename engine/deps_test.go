package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/local"
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/store"
)

// depBackend is the local backend taking dependencies as a DRMS does
// (Slurm's afterok with kill-on-invalid-dep): a job submitted with SubmitAfter
// waits, starts when all its dependencies succeeded, and is cancelled
// (never started) when one did not.
type depBackend struct {
	*local.Backend
	events chan drms.Event

	mu         sync.Mutex
	seq        int
	ended      map[string]*drms.Outcome
	pending    map[string]pendingJob
	alias      map[string]string // local id -> our id
	afterCalls int
	// failAfter: so many SubmitAfter calls fail first, as when the DRMS
	// cannot be reached.
	failAfter int
}

type pendingJob struct {
	spec  drms.JobSpec
	after []string
}

// newDepHarness is a harness whose engine runs on a depBackend.
func newDepHarness(t *testing.T) (*harness, *depBackend) {
	h := newHarness(t)
	h.stopEngine()
	db := newDepBackend(h.st.Dir)
	h.be = db
	h.start()
	return h, db
}

func newDepBackend(stateDir string) *depBackend {
	b := &depBackend{
		Backend: local.New(drms.Config{StateDir: stateDir}), events: make(chan drms.Event, 10000),
		ended: map[string]*drms.Outcome{}, pending: map[string]pendingJob{}, alias: map[string]string{},
	}
	go func() {
		for ev := range b.Backend.Events() {
			b.mu.Lock()
			if id, ok := b.alias[ev.ID]; ok {
				ev.ID = id
			}
			if ev.State.Phase == drms.Ended {
				b.ended[ev.ID] = ev.State.Outcome
			}
			b.events <- ev
			b.check()
			b.mu.Unlock()
		}
	}()
	return b
}

func (b *depBackend) Capabilities() drms.Capabilities {
	c := b.Backend.Capabilities()
	c.Dependencies, c.MaxJobsDefault = true, 0
	return c
}

func (b *depBackend) Events() <-chan drms.Event { return b.events }

func (b *depBackend) SubmitAfter(ctx context.Context, spec drms.JobSpec, after []drms.Handle) (drms.Handle, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failAfter > 0 {
		b.failAfter--
		return drms.Handle{}, errors.New("controller not responding")
	}
	b.seq++
	id := fmt.Sprintf("dep-%d", b.seq)
	p := pendingJob{spec: spec}
	for _, h := range after {
		p.after = append(p.after, h.ID)
	}
	b.pending[id] = p
	b.afterCalls++
	b.check()
	return drms.Handle{Version: 1, ID: id}, nil
}

// check starts or cancels the pending jobs whose dependencies ended.
func (b *depBackend) check() {
	for id, p := range b.pending {
		ready, failed := true, false
		for _, a := range p.after {
			o, ok := b.ended[a]
			switch {
			case !ok:
				ready = false
			case !model.Succeeded(o.Status, o.ExitStatus, o.ExitValue):
				failed = true
			}
		}
		switch {
		case failed:
			delete(b.pending, id)
			o := &drms.Outcome{Status: model.JobFailed, ExitStatus: model.ExitAbortedBefore}
			b.ended[id] = o
			b.events <- drms.Event{ID: id, State: drms.State{Phase: drms.Ended, Outcome: o}}
		case ready:
			delete(b.pending, id)
			h, err := b.Backend.Submit(context.Background(), p.spec)
			if err != nil {
				o := drms.NotStarted(err.Error())
				b.ended[id] = o
				b.events <- drms.Event{ID: id, State: drms.State{Phase: drms.Ended, Outcome: o}}
				continue
			}
			b.alias[h.ID] = id
		}
	}
}

func (b *depBackend) Kill(ctx context.Context, h drms.Handle) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.pending[h.ID]; ok {
		delete(b.pending, h.ID)
		o := drms.Unclear("cancelled while waiting for its dependencies")
		b.ended[h.ID] = o
		b.events <- drms.Event{ID: h.ID, State: drms.State{Phase: drms.Ended, Outcome: o}}
		return nil
	}
	for real, id := range b.alias {
		if id == h.ID {
			return b.Backend.Kill(ctx, drms.Handle{ID: real})
		}
	}
	return b.Backend.Kill(ctx, h)
}

func TestDependenciesHandedToTheDRMS(t *testing.T) {
	h, db := newDepHarness(t)
	mark := func(n string) string { return "echo ran > " + filepath.Join(h.dir, n) }
	id := h.submit(build([]jobDef{
		{name: "a", shell: "sleep 0.3; " + mark("a")},
		{name: "b", shell: mark("b"), after: []string{"a"}},
		{name: "c", shell: mark("c"), after: []string{"b"}},
		{name: "x", shell: "sleep 0.3; exit 2"},
		{name: "y", shell: mark("y"), after: []string{"x"}},
		{name: "z", shell: mark("z"), after: []string{"y"}},
		{name: "both", shell: mark("both"), after: []string{"a", "x"}},
	}), 0)
	jobs := h.waitDone(id)
	expectOutcomes(t, jobs, map[string]string{
		"a": ok, "b": ok, "c": ok, "x": "done/finished_regularly/2", "y": abort, "z": abort, "both": abort,
	})
	for _, n := range []string{"y", "z", "both"} {
		if _, err := os.Stat(filepath.Join(h.dir, n)); err == nil {
			t.Errorf("%s ran although a dependency failed", n)
		}
	}
	db.mu.Lock()
	calls := db.afterCalls
	db.mu.Unlock()
	// b, c, y, z and both all went to the DRMS before their dependencies ended.
	if calls < 5 {
		t.Fatalf("%d submissions with dependencies, want 5", calls)
	}
}

// TestStopWithDependenciesAtTheDRMS: stopping a workflow whose dependants wait
// at the DRMS kills the running job (killed_by_user) and cancels the waiting
// ones (aborted_before_running).
func TestStopWithDependenciesAtTheDRMS(t *testing.T) {
	h, _ := newDepHarness(t)
	id := h.submit(build([]jobDef{
		{name: "long", shell: "exec sleep 60"},
		{name: "next", shell: "true", after: []string{"long"}},
		{name: "last", shell: "true", after: []string{"next"}},
	}), 0)
	h.waitFor(id, "dependants queued at the DRMS", func(_ *store.Workflow, js []store.Job) bool {
		return js[0].Status == model.JobRunning && js[2].Status == model.JobQueuedActive
	})
	if err := h.st.AddIntent(context.Background(), id, store.IntentStop, false); err != nil {
		t.Fatal(err)
	}
	h.e.Wake()
	expectOutcomes(t, h.waitDone(id), map[string]string{"long": killed, "next": abort, "last": abort})
}

// An early submission that did not reach the DRMS waits for its
// dependencies again: it once went back to the ready queue and was then
// submitted without them, running before its dependency ended.
func TestFailedEarlySubmissionKeepsItsDependencies(t *testing.T) {
	h, db := newDepHarness(t)
	db.mu.Lock()
	db.failAfter = 3
	db.mu.Unlock()
	mark := filepath.Join(h.dir, "a")
	id := h.submit(build([]jobDef{
		{name: "a", shell: "sleep 0.5; echo ran > " + mark},
		{name: "b", shell: "test -e " + mark + " || exit 3", after: []string{"a"}},
	}), 0)
	jobs := h.waitDone(id)
	expectOutcomes(t, jobs, map[string]string{"a": ok, "b": ok})
}
