package engine

import (
	"context"
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

// phaseBackend is the local backend whose Status reports a phase the test
// sets (held, suspended... by whom), as a DRMS would.
type phaseBackend struct {
	*local.Backend
	mu    sync.Mutex
	state drms.State
}

func (b *phaseBackend) Capabilities() drms.Capabilities {
	c := b.Backend.Capabilities()
	c.Queues = true
	return c
}

func (b *phaseBackend) set(s drms.State) {
	b.mu.Lock()
	b.state = s
	b.mu.Unlock()
}

func (b *phaseBackend) Status(ctx context.Context, hs []drms.Handle) (map[string]drms.State, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]drms.State{}
	for _, h := range hs {
		out[h.ID] = b.state
	}
	return out, nil
}

// Held and suspended jobs get soma-workflow's statuses, by whom where the
// DRMS says, and running again when released.
func TestHeldAndSuspendedStatuses(t *testing.T) {
	h := newHarness(t)
	h.stopEngine()
	pb := &phaseBackend{Backend: local.New(drms.Config{StateDir: h.st.Dir}), state: drms.State{Phase: drms.Queued}}
	h.be = pb
	h.start()
	gate := filepath.Join(h.dir, "gate")
	id := h.submit(build([]jobDef{{name: "a", shell: "while [ ! -e " + gate + " ]; do sleep 0.02; done"}}), 0)
	for _, c := range []struct {
		state drms.State
		want  string
	}{
		{drms.State{Phase: drms.Queued}, model.JobQueuedActive},
		{drms.State{Phase: drms.Held, By: drms.ByUser}, model.JobUserOnHold},
		{drms.State{Phase: drms.Held, By: drms.BySystem}, model.JobSystemOnHold},
		{drms.State{Phase: drms.Held, By: drms.ByUserAndSystem}, model.JobUserSystemOnHold},
		{drms.State{Phase: drms.Running}, model.JobRunning},
		{drms.State{Phase: drms.Suspended, By: drms.ByUser}, model.JobUserSuspended},
		{drms.State{Phase: drms.Suspended, By: drms.BySystem}, model.JobSystemSuspended},
		{drms.State{Phase: drms.Suspended, By: drms.ByUserAndSystem}, model.JobUserSystemSuspended},
		{drms.State{Phase: drms.Running}, model.JobRunning},
	} {
		pb.set(c.state)
		h.waitFor(id, c.want, func(w *store.Workflow, jobs []store.Job) bool { return jobs[0].Status == c.want })
	}
	os.WriteFile(gate, nil, 0o600)
	if j := h.waitDone(id); outcome(j[0]) != ok {
		t.Fatalf("after release: %s", outcome(j[0]))
	}
}

// Jobs handed to the backend before their dependencies ended wait there
// without taking the slots of jobs that can start: a chain longer than
// the jobs held ahead, whose first job runs until the test opens a gate,
// must not keep the independent jobs after it from the other slot.
func TestEarlyJobsLeaveSlotsToReadyOnes(t *testing.T) {
	h := newHarness(t)
	gate := filepath.Join(h.dir, "gate")
	t.Cleanup(func() { os.WriteFile(gate, nil, 0o600) }) // the first job ends, also when the test fails
	var jobs []jobDef
	const chain, independent = poolAhead + 8, poolAhead + 8
	for i := range chain {
		d := jobDef{name: fmt.Sprintf("c%02d", i), shell: "true"}
		if i == 0 {
			d.shell = "while [ ! -e " + gate + " ]; do sleep 0.02; done"
		} else {
			d.after = []string{fmt.Sprintf("c%02d", i-1)}
		}
		jobs = append(jobs, d)
	}
	for i := range independent {
		jobs = append(jobs, jobDef{name: fmt.Sprintf("i%02d", i), shell: "true"})
	}
	id := h.submit(build(jobs), 2)
	early := 0
	h.waitFor(id, "every independent job done while the chain's first job runs, a slot being free", func(_ *store.Workflow, js []store.Job) bool {
		done := 0
		early = 0
		for _, j := range js {
			switch {
			case j.Name[0] == 'i' && j.Status == model.JobDone:
				done++
			case j.Name[0] == 'c' && j.Status != model.JobNotSubmitted:
				early++
			}
		}
		return done == independent
	})
	if early < 2 {
		t.Errorf("only %d chain jobs handed to the backend: the chain was not handed over ahead", early)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, j := range h.waitDone(id) {
		if j.Status != model.JobDone || outcome(j) != "done/finished_regularly/0" {
			t.Errorf("%s: %s %s", j.Name, j.Status, outcome(j))
		}
	}
}

// A workflow with its own --max-jobs runs in its own pool: the jobs it
// hands the backend ahead of its limit do not take the slots that the
// workflows without a limit share, which run at once beside it.
func TestOwnLimitLeavesSharedSlots(t *testing.T) {
	h := newHarnessWithSlots(t, 2)
	gate := filepath.Join(h.dir, "gate")
	t.Cleanup(func() { os.WriteFile(gate, nil, 0o600) }) // the limited jobs end, also when the test fails
	const long = poolAhead + 8
	var jobs []jobDef
	for i := range long {
		jobs = append(jobs, jobDef{name: fmt.Sprintf("l%02d", i), shell: "while [ ! -e " + gate + " ]; do sleep 0.02; done"})
	}
	limited := h.submit(build(jobs), 2)
	h.waitFor(limited, "the limited workflow's jobs handed over", func(_ *store.Workflow, js []store.Job) bool {
		n := 0
		for _, j := range js {
			if j.Status != model.JobNotSubmitted {
				n++
			}
		}
		return n >= poolAhead
	})
	// Until the gate opens no limited job ends: held back behind them, the
	// shared workflow would not run at all.
	shared := h.submit(build([]jobDef{{name: "a", shell: "true"}, {name: "b", shell: "true"}}), 0)
	h.waitFor(shared, "the workflow without a limit done while the limited one's jobs all still run or wait", func(w *store.Workflow, _ []store.Job) bool {
		return w.Status == model.WorkflowDone
	})
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, j := range h.waitDone(limited) {
		if outcome(j) != ok {
			t.Errorf("%s: %s", j.Name, outcome(j))
		}
	}
}
