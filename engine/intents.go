package engine

// This file carries out the intents: stop, restart and delete.

import (
	"context"

	"github.com/somaflow/somaflow/model"
)

// kill sends the kills whose intent was just committed.
func (e *Engine) kill(ctx context.Context) {
	for _, j := range e.toKill {
		if model.JobEnded(j.row.Status) {
			continue
		}
		if err := j.w.b.be.Kill(ctx, handleOf(j)); err != nil {
			e.log.Warn("kill", "job", j.row.ID, "err", err)
		}
	}
	e.toKill = e.toKill[:0]
}

// stop kills running jobs (killed_by_user) and ends unstarted ones
// (aborted_before_running).
func (e *Engine) stop(w *wfRun) {
	w.stopping = true
	w.ready = w.ready[:0]
	for i, j := range w.jobs {
		switch w.state[i] {
		case nWaiting, nReady:
			e.endJob(j, abortedBefore())
		case nActive:
			if !j.row.KillIntent {
				j.row.KillIntent = true
				if j.row.Status == model.JobSubmissionPending && j.row.DRMSID == "" && !j.relocating {
					// Not submitted yet (its submission is skipped).
					e.endJob(j, abortedBefore())
					continue
				}
				j.row.Status = model.JobKillPending
				e.markDirty(j)
				if !j.relocating { // else killed once found (retryLocates)
					e.toKill = append(e.toKill, j)
				}
			}
		}
	}
	e.maybeFinish(w)
}

// restart re-queues every job that did not succeed.
func (e *Engine) restart(w *wfRun) {
	if w.deleting {
		return
	}
	w.stopping = false
	for i, j := range w.jobs {
		if w.state[i] == nFailed || (model.JobEnded(j.row.Status) && !succeeded(j)) {
			j.row.Status = model.JobNotSubmitted
			j.row.ExitStatus, j.row.ExitValue, j.row.Signal, j.row.Reason = nil, nil, nil, nil
			j.row.Ended, j.row.Started = nil, nil
			j.row.KillIntent = false
			e.markDirty(j)
		}
	}
	if w.row.Status == model.WorkflowDone {
		w.row.Status = model.WorkflowInProgress
		w.row.Ended = nil
		e.dirtyWf[w] = true
	}
	e.rebuild(w)
}
