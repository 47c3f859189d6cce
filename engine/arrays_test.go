package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/local"
	"github.com/somaflow/somaflow/model"
)

// arrayBackend is the local backend with array submission and a switch to
// make the DRMS refuse submissions for a while: it records how the engine
// calls it.
type arrayBackend struct {
	*local.Backend
	mu         sync.Mutex
	arrayCalls []int
	submits    int
	down       int // refuse this many Submit/SubmitArray calls
	noArrays   bool
}

func (b *arrayBackend) Capabilities() drms.Capabilities {
	c := b.Backend.Capabilities()
	c.Arrays, c.MaxJobsDefault = !b.noArrays, 0
	return c
}

func (b *arrayBackend) refuse() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down > 0 {
		b.down--
		return true
	}
	return false
}

func (b *arrayBackend) Submit(ctx context.Context, spec drms.JobSpec) (drms.Handle, error) {
	if b.refuse() {
		return drms.Handle{}, fmt.Errorf("controller down: %w", drms.ErrUnavailable)
	}
	b.mu.Lock()
	b.submits++
	b.mu.Unlock()
	return b.Backend.Submit(ctx, spec)
}

func (b *arrayBackend) SubmitArray(ctx context.Context, specs []drms.JobSpec) ([]drms.Handle, error) {
	if b.refuse() {
		return nil, fmt.Errorf("controller down: %w", drms.ErrUnavailable)
	}
	b.mu.Lock()
	b.arrayCalls = append(b.arrayCalls, len(specs))
	b.mu.Unlock()
	var hs []drms.Handle
	for _, s := range specs {
		h, err := b.Backend.Submit(ctx, s)
		var se *drms.StartError
		if errors.As(err, &se) {
			return nil, err
		}
		hs = append(hs, h)
	}
	return hs, nil
}

func TestArraySubmission(t *testing.T) {
	h := newHarness(t)
	h.stopEngine()
	// Without the hold, "last" waits for its dependencies in the engine.
	ab := &arrayBackend{Backend: local.New(drms.Config{StateDir: h.st.Dir, Settings: map[string]string{"hold": "false"}}), down: 2}
	h.be = ab
	h.start()
	var jobs []jobDef
	for i := 0; i < 10; i++ {
		jobs = append(jobs, jobDef{name: fmt.Sprint("a", i), shell: "true"})
	}
	jobs = append(jobs, jobDef{name: "last", shell: "true", after: []string{"a0", "a9"}})
	id := h.submit(build(jobs), 0)
	got := h.waitDone(id)
	for _, j := range got {
		if outcome(j) != ok {
			t.Errorf("%s: %s", j.Name, outcome(j))
		}
	}
	ab.mu.Lock()
	defer ab.mu.Unlock()
	// Two refused attempts, then the 10 ready jobs in one array; "last" is
	// alone in its cycle and goes through Submit.
	if len(ab.arrayCalls) != 1 || ab.arrayCalls[0] != 10 || ab.submits != 1 {
		t.Fatalf("array calls %v, single submits %d; want [10] and 1", ab.arrayCalls, ab.submits)
	}
}

// TestSubmitRetriesWhileDRMSDown: a DRMS that refuses submissions for a while
// delays the ready jobs; none is lost or left submission_pending.
func TestSubmitRetriesWhileDRMSDown(t *testing.T) {
	h := newHarness(t)
	h.stopEngine()
	ab := &arrayBackend{Backend: local.New(drms.Config{StateDir: h.st.Dir}), down: 3, noArrays: true}
	h.be = ab
	h.start()
	var jobs []jobDef
	for i := 0; i < 5; i++ {
		jobs = append(jobs, jobDef{name: fmt.Sprint("a", i), shell: "true"})
	}
	id := h.submit(build(jobs), 0)
	for _, j := range h.waitDone(id) {
		if outcome(j) != ok || j.Attempt != 1 {
			t.Errorf("%s: %s attempt %d", j.Name, outcome(j), j.Attempt)
		}
	}
	if j, _ := h.st.Jobs(context.Background(), id); len(j) != 5 || j[0].Status != model.JobDone {
		t.Fatalf("jobs: %+v", j)
	}
}
