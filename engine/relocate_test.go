package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/local"
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/store"
)

// uncertainBackend submits for real but says the submission is uncertain
// (a connection cut after the request went out), and cannot be asked where
// a job is for its first failLocates tries (the DRMS unreachable a while).
type uncertainBackend struct {
	*local.Backend // all its optional interfaces too (events, acknowledgements)
	mu             sync.Mutex
	failLocates    int
	submitted      map[string]drms.Handle
	locates        int
}

func (b *uncertainBackend) Submit(ctx context.Context, spec drms.JobSpec) (drms.Handle, error) {
	h, err := b.Backend.Submit(ctx, spec)
	if err != nil {
		return h, err
	}
	b.mu.Lock()
	b.submitted[spec.Key()] = h
	b.mu.Unlock()
	return drms.Handle{}, fmt.Errorf("%w: connection cut after the request", drms.ErrSubmitUncertain)
}

func (b *uncertainBackend) Locate(ctx context.Context, spec drms.JobSpec) (drms.Handle, bool, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.locates++
	if b.locates <= b.failLocates {
		return drms.Handle{}, false, false, errors.New("controller not responding")
	}
	h, ok := b.submitted[spec.Key()]
	return h, ok, !ok, nil
}

// TestLocateRetried: a job whose submission is uncertain, and whose
// backend cannot be asked where it is for a while, is looked for again
// until the backend answers; it is then found and runs to its end once,
// instead of ending exit_status_undetermined at the first failed look.
func TestLocateRetried(t *testing.T) {
	h := newHarness(t)
	h.stopEngine()
	ub := &uncertainBackend{Backend: h.be.(*local.Backend), failLocates: 3, submitted: map[string]drms.Handle{}}
	h.be = ub
	h.start()
	marker := filepath.Join(t.TempDir(), "ran")
	id := h.submit(build([]jobDef{
		{name: "a", shell: "echo a >> " + marker + "; sleep 0.3"},
		{name: "b", shell: "echo b >> " + marker, after: []string{"a"}},
	}), 0)
	jobs := h.waitDone(id)
	expectOutcomes(t, jobs, map[string]string{"a": ok, "b": ok})
	data, _ := os.ReadFile(marker)
	if got := strings.Fields(string(data)); strings.Join(got, " ") != "a b" {
		t.Fatalf("jobs ran: %q, want each once", got)
	}
	ub.mu.Lock()
	defer ub.mu.Unlock()
	if ub.locates < 4 {
		t.Fatalf("%d looks for the jobs, want the failed ones and then an answer", ub.locates)
	}
}

// TestStopWhileLocating: a job stopped while the backend cannot say where
// it is is not taken for never submitted (it may run): it is killed once
// it is found.
func TestStopWhileLocating(t *testing.T) {
	h := newHarness(t)
	h.stopEngine()
	ub := &uncertainBackend{Backend: h.be.(*local.Backend), failLocates: 1 << 30, submitted: map[string]drms.Handle{}}
	h.be = ub
	h.start()
	marker := filepath.Join(t.TempDir(), "ran")
	id := h.submit(build([]jobDef{{name: "long", shell: "echo started >> " + marker + "; exec sleep 60"}}), 0)
	h.waitFor(id, "the job submitted and looked for", func(_ *store.Workflow, _ []store.Job) bool {
		ub.mu.Lock()
		defer ub.mu.Unlock()
		_, err := os.Stat(marker)
		return ub.locates >= 2 && err == nil
	})
	if err := h.st.AddIntent(context.Background(), id, store.IntentStop, false); err != nil {
		t.Fatal(err)
	}
	h.e.Wake()
	h.waitFor(id, "the stop recorded", func(_ *store.Workflow, js []store.Job) bool { return js[0].Status == model.JobKillPending })
	ub.mu.Lock()
	ub.failLocates = 0 // the backend answers again
	ub.mu.Unlock()
	jobs := h.waitDone(id)
	expectOutcomes(t, jobs, map[string]string{"long": killed})
}
