package engine

import (
	"testing"

	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/store"
)

// TestForgetKeepsBarrier checks that a job whose definition was dropped
// after it succeeded is still known as a barrier or not (earlyAfter asks).
func TestForgetKeepsBarrier(t *testing.T) {
	w := &wfRun{
		def:  &model.Workflow{Jobs: []*model.Job{{Class: model.ClassBarrier}, {}, {Class: model.ClassBarrier}}},
		jobs: []*job{{row: &store.Job{Barrier: true}}, {row: &store.Job{}}, {row: &store.Job{Barrier: true}}},
	}
	w.forget(0)
	w.forget(1)
	if w.def.Jobs[0] != nil || w.def.Jobs[1] != nil || w.def.Jobs[2] == nil {
		t.Fatalf("definitions after forget: %v", w.def.Jobs)
	}
	for v, want := range []bool{true, false, true} {
		if got := w.isBarrier(v); got != want {
			t.Fatalf("job %d: barrier %v, want %v", v, got, want)
		}
	}
}
