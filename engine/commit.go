package engine

// This file holds the commits: every change of a cycle in one transaction,
// and what happens when the store cannot be written.

import (
	"context"
	"os"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/privdir"
	"github.com/somaflow/somaflow/store"
)

// tryCommit commits; when that fails, the engine records its problem and
// retries later, with back-off (the changes stay in memory, nothing is
// lost). It reports whether the commit went through.
func (e *Engine) tryCommit(ctx context.Context) bool {
	err := e.commit(ctx)
	if err != nil {
		e.trouble(err)
		return false
	}
	if e.problem != nil {
		e.log.Info("the store can be written again", "problem_since", e.problem.Since)
		e.problem, e.retryDelay = nil, 0
		if e.opts.OnProblem != nil {
			e.opts.OnProblem(nil)
		}
	}
	return true
}

// trouble records that the store could not be written or read, and when
// to try again: 100 ms, doubling up to RetryMax.
func (e *Engine) trouble(err error) {
	e.retryDelay = min(max(2*e.retryDelay, 100*time.Millisecond), RetryMax)
	e.retryAt = time.Now().Add(e.retryDelay)
	msg := err.Error()
	if full := privdir.Full(e.st.Dir); full != nil {
		msg = full.Error() + ": " + msg
	}
	if e.problem != nil && e.problem.Message == msg {
		return
	}
	e.log.Error("cannot record progress; retrying", "err", msg, "retry_in", e.retryDelay)
	since := time.Now()
	if e.problem != nil {
		since = e.problem.Since
	}
	e.problem = &Problem{Since: since, Message: msg}
	if e.opts.OnProblem != nil {
		e.opts.OnProblem(e.problem)
	}
	e.notify(false)
}

// RetryMax bounds the delay between two tries to write the store.
const RetryMax = 5 * time.Second

func (e *Engine) markDirty(j *job) {
	if j.slim {
		// Its row no longer holds what the store has: saving it would
		// erase the outcome's details. Nothing changes a job that
		// succeeded (a restart re-runs only what did not).
		e.log.Error("engine: a change to a job that succeeded is not saved", "job", j.row.ID, "status", j.row.Status)
		return
	}
	if !j.dirty {
		j.dirty = true
		e.dirty = append(e.dirty, j)
	}
}

// mayDefer tells whether the changes not yet committed may wait for a later
// commit, FlushDelay at most after the first of them waited: when they are
// only what backends that keep outcomes until acknowledged
// (drms.Acknowledger) told of their jobs, starts and ends, which a crash
// before the commit would make them tell again (the acknowledgements go
// after the commit). A workflow's own changes, intents carried out,
// removals, outputs and backend problems are committed at once: waiters
// and users wait for those.
func (e *Engine) mayDefer() bool {
	if len(e.dirtyWf) > 0 || len(e.removed) > 0 || len(e.intents) > 0 || len(e.outputsReady) > 0 || e.clearBackends || len(e.backendChanges()) > 0 {
		return false
	}
	if e.deferred && time.Since(e.deferredAt) >= FlushDelay {
		return false
	}
	for _, j := range e.dirty {
		if _, ok := j.w.b.be.(drms.Acknowledger); !ok {
			return false
		}
	}
	return true
}

// commit writes every change since the last commit in one transaction.
func (e *Engine) commit(ctx context.Context) error {
	e.deferred = false
	backends := e.backendChanges()
	if len(e.dirty) == 0 && len(e.dirtyWf) == 0 && len(e.removed) == 0 && len(e.intents) == 0 && len(backends) == 0 && !e.clearBackends && len(e.outputsReady) == 0 {
		return nil
	}
	e.failpoint("before-commit")
	removed := map[int64]bool{}
	for _, id := range e.removed {
		removed[id] = true
	}
	b := &store.Batch{DoneIntents: e.intents, Removed: e.removed, Backends: backends, ClearBackends: e.clearBackends, OutputsReady: e.outputsReady}
	for _, j := range e.dirty {
		b.Jobs = append(b.Jobs, j.row)
	}
	for w := range e.dirtyWf {
		b.Workflows = append(b.Workflows, w.row)
	}
	if err := e.st.Commit(ctx, b); err != nil {
		return err
	}
	e.clearBackends = false
	for _, j := range e.dirty {
		j.dirty = false
		if j.w.state[j.row.Index] == nSucceeded {
			j.slimRow()
		}
	}
	for _, br := range e.backends {
		br.downDirty = false
	}
	wfTouched := len(e.dirtyWf) > 0 || len(e.removed) > 0 || len(e.intents) > 0 || len(backends) > 0
	for id := range removed {
		for _, d := range []string{e.logDir(id), e.paramDir(id), e.tmpDir(id), store.WorkflowTransfersDir(e.st.Dir, id)} {
			os.RemoveAll(d)
		}
	}
	e.dirty = e.dirty[:0]
	clear(e.dirtyWf)
	e.removed = e.removed[:0]
	e.outputsReady = e.outputsReady[:0]
	e.intents = e.intents[:0]
	// Finished workflows leave memory; a restart intent reloads them.
	for id, w := range e.runs {
		if w.row.Status == model.WorkflowDone && w.running == 0 {
			delete(e.runs, id)
		}
	}
	// Outcomes are recorded: backends that keep them may forget them now.
	for b, hs := range e.acks {
		if err := b.be.(drms.Acknowledger).Acknowledge(ctx, hs); err != nil {
			e.log.Warn("acknowledge outcomes", "backend", b.name, "err", err)
		}
		delete(e.acks, b)
	}
	e.notify(wfTouched)
	return nil
}

// slimRow drops from the row of a job that succeeded, once it is saved,
// what the engine never reads again (its handle, log paths, times and
// resource usage: the store has them): a few hundred bytes a job, most
// of an engine's memory by the end of a million-job workflow. What it
// still reads stays: status, exit status and value (succeeded), name,
// barrier and output parameters (parameter links).
func (j *job) slimRow() {
	j.row.DropDetails()
	j.slim = true
}
