package engine

// This file holds file transfers as the engine sees them: the engine-side
// path of each FileTransfer, jobs held until their input transfers are on
// the computing resource, and output transfers made transferable when
// their job ends.

import (
	"context"
	"os"
	"path/filepath"

	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/store"
)

// transferState is what a workflow run knows of its transfers.
type transferState struct {
	// enginePaths are the engine-side paths, by transfer index ("": the
	// client path, for workflows stored before transfers had rows).
	enginePaths []string
	// status is each transfer's status, by index, as last read.
	status []string
	// inputs and outputs are the transfers each job references as input
	// (not made by a job) and as output, by job index.
	inputs, outputs map[int][]int
	// blocked are jobs whose dependencies succeeded but whose input
	// transfers are not on the computing resource yet.
	blocked map[int]bool
}

// loadTransfers reads the transfers of a workflow and which jobs use them.
func (e *Engine) loadTransfers(ctx context.Context, w *wfRun) error {
	if len(w.def.Transfers) == 0 {
		return nil
	}
	rows, err := e.st.Transfers(ctx, w.row.ID)
	if err != nil {
		return err
	}
	ts := &w.tr
	ts.enginePaths = make([]string, len(w.def.Transfers))
	ts.status = make([]string, len(w.def.Transfers))
	for i := range ts.status {
		ts.status[i] = model.TransferOnBothSides // no row: light mode
	}
	for _, r := range rows {
		if r.Index >= 0 && r.Index < len(ts.enginePaths) {
			ts.enginePaths[r.Index] = r.EnginePath
			ts.status[r.Index] = r.Status
			if !r.Light && r.Output {
				// Jobs write their outputs there.
				if err := os.MkdirAll(filepath.Dir(r.EnginePath), 0o700); err != nil {
					return err
				}
			}
		}
	}
	ts.inputs, ts.outputs, ts.blocked = map[int][]int{}, map[int][]int{}, map[int]bool{}
	for i, j := range w.def.Jobs {
		for _, idx := range transferRefs(j.ReferencedInputFiles) {
			if !w.def.Transfers[idx].IsOutput() {
				ts.inputs[i] = append(ts.inputs[i], idx)
			}
		}
		if out := transferRefs(j.ReferencedOutputFiles); len(out) > 0 {
			ts.outputs[i] = out
		}
	}
	return nil
}

// transferRefs lists the transfers a list of file references names.
func transferRefs(args []model.Arg) []int {
	var out []int
	for _, a := range args {
		if (a.Kind == model.ArgPath || a.Kind == model.ArgPathIn) && a.Path.Kind == model.TransferPath {
			out = append(out, a.Path.Index)
		}
	}
	return out
}

// onResource tells whether a transfer's files are on the computing resource.
func onResource(status string) bool {
	return status == model.TransferOnCRSide || status == model.TransferOnBothSides
}

// inputsReady tells whether every input transfer of job v is on the
// computing resource.
func (w *wfRun) inputsReady(v int) bool {
	for _, idx := range w.tr.inputs[v] {
		if !onResource(w.tr.status[idx]) {
			return false
		}
	}
	return true
}

// holdForInputs keeps job v waiting when an input transfer has not
// arrived; true when it does.
func (w *wfRun) holdForInputs(v int) bool {
	if len(w.tr.inputs[v]) == 0 || w.inputsReady(v) {
		return false
	}
	w.tr.blocked[v] = true
	return true
}

// releaseInputs re-reads the transfer statuses of workflows holding jobs
// for their inputs and makes ready the jobs whose inputs arrived.
func (e *Engine) releaseInputs(ctx context.Context) {
	for _, w := range e.runs {
		if len(w.tr.blocked) == 0 || w.stopping {
			continue
		}
		st, err := e.st.TransferStatuses(ctx, w.row.ID)
		if err != nil {
			e.log.Warn("transfer statuses", "workflow", w.row.ID, "err", err)
			continue
		}
		for idx, s := range st {
			if idx >= 0 && idx < len(w.tr.status) {
				w.tr.status[idx] = s
			}
		}
		for v := range w.tr.blocked {
			if w.state[v] != nWaiting || w.inputsReady(v) {
				delete(w.tr.blocked, v)
				if w.state[v] == nWaiting && w.remaining[v] == 0 {
					w.set(v, nReady)
					w.push(v, false)
				}
			}
		}
	}
}

// outputsMade makes the output transfers of a job whose process ran
// transferable ("on computing resource side"), with the next commit.
func (e *Engine) outputsMade(j *job) {
	w := j.w
	for _, idx := range w.tr.outputs[j.row.Index] {
		if idx < len(w.tr.status) && w.tr.status[idx] == model.TransferDoNotExist {
			w.tr.status[idx] = model.TransferOnCRSide
			e.outputsReady = append(e.outputsReady, store.TransferRef{WorkflowID: w.row.ID, Index: idx})
		}
	}
}
