package engine

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/store"
)

// TestSucceededRowsKeptInStore: the engine drops the details of a job that
// succeeded from its memory once they are saved (slimRow), and never
// writes that slim row back: through an engine restart (which loads the
// job as succeeded), a stop and a restart of the workflow, the stored row
// of the job keeps its handle, times, log paths and usage.
func TestSucceededRowsKeptInStore(t *testing.T) {
	h := newHarness(t)
	flag := filepath.Join(h.dir, "flag")
	id := h.submit(build([]jobDef{
		{name: "a", shell: "echo out; echo err >&2"},
		{name: "b", shell: "exit 3", after: []string{"a"}},
		{name: "long", shell: "test -e " + flag + " || exec sleep 60", after: []string{"a"}},
	}), 0)
	jobs := h.waitFor(id, "long running", func(_ *store.Workflow, js []store.Job) bool {
		return js[1].Status == model.JobDone && js[2].Status == model.JobRunning
	})
	first := jobs[0]
	if outcome(first) != ok || first.Started == nil || first.Ended == nil || first.Submitted == nil ||
		first.DRMSID == "" || len(first.Handle) == 0 || first.Stdout == "" || first.WallS == nil {
		t.Fatalf("job a as stored: %+v", first)
	}

	h.stopEngine()
	h.start() // loads a as succeeded
	if err := h.st.AddIntent(context.Background(), id, store.IntentStop, false); err != nil {
		t.Fatal(err)
	}
	h.e.Wake()
	jobs = h.waitDone(id)
	expectOutcomes(t, jobs, map[string]string{"a": ok, "b": "done/finished_regularly/3", "long": killed})
	os.WriteFile(flag, nil, 0o644)
	if err := h.st.AddIntent(context.Background(), id, store.IntentRestart, false); err != nil {
		t.Fatal(err)
	}
	h.e.Wake()
	jobs = h.waitFor(id, "restarted and done", func(w *store.Workflow, js []store.Job) bool {
		return w.Status == model.WorkflowDone && js[2].Status == model.JobDone
	})
	expectOutcomes(t, jobs, map[string]string{"a": ok, "b": "done/finished_regularly/3", "long": ok})
	if jobs[1].Attempt != 2 {
		t.Fatalf("b ran %d times, want 2", jobs[1].Attempt)
	}
	if !reflect.DeepEqual(jobs[0], first) {
		t.Fatalf("job a's stored row changed:\nbefore %+v\nafter  %+v", first, jobs[0])
	}
}
