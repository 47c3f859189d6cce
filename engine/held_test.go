package engine

import (
	"context"
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
