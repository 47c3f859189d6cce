package engine

// This file holds submission: what is ready goes to the backends, with
// dependencies handed to the DRMS where it takes them, and back-off per
// backend when it cannot be reached.

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/store"
)

func handleOf(j *job) drms.Handle {
	return drms.Handle{Version: j.row.HandleVersion, ID: j.row.DRMSID, State: j.row.Handle}
}

func (e *Engine) setHandle(j *job, h drms.Handle) {
	j.row.DRMSID, j.row.HandleVersion, j.row.Handle = h.ID, h.Version, h.State
	j.w.b.handles[h.ID] = j
	e.markDirty(j)
	if j.w.b.caps.Dependencies {
		j.w.early = append(j.w.early, j.w.g.succ[j.row.Index]...)
	}
}

// queueEarly moves the early-submission candidates that are eligible into
// the ready queue, marked early, at most room of them; the candidates it did
// not look at stay for a later cycle.
func (e *Engine) queueEarly(w *wfRun, room int) {
	i := 0
	for ; i < len(w.early) && room > 0; i++ {
		v := w.early[i]
		if w.state[v] != nWaiting {
			continue
		}
		if _, ok := e.earlyAfter(w, int(v)); ok {
			w.set(int(v), nReady)
			w.push(int(v), true)
			room--
		}
	}
	w.early = append(w.early[:0], w.early[i:]...)
}

// earlyAfter tells whether node v may be submitted before its dependencies
// ended, handing them to the DRMS, and returns their handles. It may when
// the backend takes dependencies, v is a plain job without parameter links
// (their values are only known at the end), and every predecessor is a plain
// job that succeeded or is submitted with a handle, at least one of them
// still running.
func (e *Engine) earlyAfter(w *wfRun, v int) ([]drms.Handle, bool) {
	if !w.b.caps.Dependencies || w.g.hidden(v) || w.def.Jobs[v].NoProcess() || len(w.linksTo[v]) > 0 {
		return nil, false
	}
	if _, ok := w.b.be.(drms.DependencySubmitter); !ok {
		return nil, false
	}
	if w.preds == nil {
		w.preds = make([][]int32, w.g.nodes())
		for u, ss := range w.g.succ {
			for _, x := range ss {
				w.preds[x] = append(w.preds[x], int32(u))
			}
		}
	}
	var after []drms.Handle
	for _, p := range w.preds[v] {
		switch {
		case w.g.hidden(int(p)) || w.isBarrier(int(p)):
			return nil, false
		case int(p) < len(w.def.Jobs) && w.def.Jobs[p] != nil && w.def.Jobs[p].Retries > 0 && w.state[p] != nSucceeded:
			// A failed attempt may be retried: the DRMS would cancel
			// this job for the attempt that failed.
			return nil, false
		case w.state[p] == nSucceeded:
		case w.state[p] == nActive && w.jobs[p].row.DRMSID != "" && !w.jobs[p].row.KillIntent:
			after = append(after, handleOf(w.jobs[p]))
		default:
			return nil, false
		}
	}
	return after, len(after) > 0
}

// mayStart tells whether the workflow may start job v, used being the
// slots taken on its backend across all workflows. A workflow with its own
// limit (--max-jobs) runs up to that many jobs, as asked; the others share
// the backend's slots (the local backend's CPUs, or its max-jobs setting),
// as soma-workflow's local scheduler shares the CPUs across workflows, a
// job taking as many as it asks CPUs (one at least; a job asking more than
// there are runs when none is taken).
//
// A backend that enforces the limit itself (Capabilities.Pools) is given
// up to poolAhead more jobs, held there until a slot is free: a job's end
// then starts the next one without waiting for this engine. Jobs handed
// over before their dependencies ended (early, see earlyAfter) wait there
// for them and take no slot meanwhile: they have a budget of their own,
// poolAhead slots, waiting being what they take across the backend's
// workflows, and are not counted against the slots of the jobs that can
// start. Otherwise a chain handed over ahead would fill the budget and
// leave a slot idle while independent jobs wait in this engine.
//
// The jobs over the limit are handed over in batches: refill tells
// whether the backend's (or the workflow's) jobs that can start were at
// most poolAhead/2 over the limit when this cycle began (see refills).
// Until then every slot is busy and the backend holds more; one handover
// (one commit of intents) then serves many job ends.
func (w *wfRun) mayStart(v, used, waiting int, early, refill bool) bool {
	need := w.need(v)
	if !w.b.caps.Pools {
		if w.maxJobs > 0 {
			return w.running < w.maxJobs
		}
		return w.b.slots <= 0 || used == 0 || used+need <= w.b.slots
	}
	ahead := 0
	if refill {
		ahead = poolAhead
	}
	switch {
	case early && w.maxJobs > 0:
		return w.waitJobs < poolAhead
	case early:
		return waiting == 0 || waiting+need <= poolAhead
	case w.maxJobs > 0:
		return w.running-w.waitJobs < w.maxJobs+ahead
	}
	startable := used - waiting
	return w.b.slots <= 0 || startable == 0 || startable+need <= w.b.slots+ahead
}

// refills tells, for the workflow, whether jobs over the limit may be
// handed over in this cycle (see mayStart), used and waiting being its
// backend's at the cycle's start.
func (w *wfRun) refills(used, waiting int) bool {
	if w.maxJobs > 0 {
		return w.running-w.waitJobs <= w.maxJobs+poolAhead/2
	}
	return w.b.slots <= 0 || used-waiting <= w.b.slots+poolAhead/2
}

// earlyRoom is how many more jobs the workflow may hand its backend early
// (see mayStart), waiting being what the backend's early jobs take.
func (w *wfRun) earlyRoom(waiting int) int {
	switch {
	case !w.b.caps.Pools:
		return len(w.early) // limited by the slots, as any job
	case w.maxJobs > 0:
		return poolAhead - w.waitJobs
	}
	return poolAhead - waiting
}

// poolAhead is how many jobs over its limit a workflow (or the workflows
// sharing a backend's slots) hands a backend that holds them (Pools). Held
// jobs are queued_active; stopping the workflow cancels them.
const poolAhead = 32

// pool fills in the slots a job takes on a backend that enforces them
// (Capabilities.Pools): the workflow's own limit, or the backend's slots
// shared by the workflows without one (see mayStart).
func (w *wfRun) pool(spec *drms.JobSpec, v int) {
	if !w.b.caps.Pools {
		return
	}
	if w.maxJobs > 0 {
		spec.Pool, spec.PoolLimit, spec.PoolNeed = fmt.Sprintf("workflow-%d", w.row.ID), w.maxJobs, 1
		return
	}
	spec.Pool, spec.PoolLimit, spec.PoolNeed = "backend", w.b.slots, w.need(v)
}

// need is the number of backend slots job v takes: the CPUs it asks, at
// least one.
func (w *wfRun) need(v int) int {
	if v >= len(w.def.Jobs) || w.def.Jobs[v] == nil {
		return 1 // a group's node, or a job forgotten once it succeeded
	}
	return max(1, w.def.Jobs[v].Resources.CPUs)
}

// schedule picks ready jobs in priority order up to each workflow's limit
// (see mayStart), records the submission intent
// (attempt+1, submission_pending) and returns them; the caller commits
// before submitting.
func (e *Engine) schedule() []*job {
	var subs []*job
	now := time.Now()
	// Jobs active per backend, across the workflows that share its slots
	// (those with a --max-jobs of their own run in their own pool, as
	// asked): counted, not kept, so that a workflow leaving memory cannot
	// leave slots taken.
	used, waiting := map[*backendRun]int{}, map[*backendRun]int{}
	for _, w := range e.runs {
		if w.maxJobs == 0 {
			used[w.b] += w.slotsUsed
			waiting[w.b] += w.waitSlots
		}
	}
	refill := map[*wfRun]bool{}
	for _, w := range e.runs {
		refill[w] = w.refills(used[w.b], waiting[w.b])
	}
	for _, w := range e.runs {
		if w.stopping || now.Before(w.b.retryAt) {
			continue
		}
		e.queueEarly(w, w.earlyRoom(waiting[w.b]))
		for w.ready.Len() > 0 {
			v := int(w.ready[0].idx)
			if w.state[v] != nReady {
				heap.Pop(&w.ready)
				continue
			}
			early := w.ready[0].early && w.remaining[v] > 0
			if !w.mayStart(v, used[w.b], waiting[w.b], early, refill[w]) {
				if !early || !w.b.caps.Pools {
					break
				}
				// No room for one more early job: it waits as usual,
				// and is a candidate again once there is room.
				heap.Pop(&w.ready)
				w.set(v, nWaiting)
				w.early = append(w.early, int32(v))
				continue
			}
			heap.Pop(&w.ready)
			j := w.jobs[v]
			j.after = nil
			if early {
				after, ok := e.earlyAfter(w, v)
				if !ok {
					w.set(v, nWaiting) // no longer eligible: waits as usual
					continue
				}
				j.after = after
				if w.maxJobs == 0 {
					waiting[w.b] += w.need(v)
				}
			}
			w.set(v, nActive)
			if w.maxJobs == 0 {
				used[w.b] += w.need(v)
			}
			j.unsent = nil
			if w.b.caps.Pools {
				j.unsent = &unsent{attempt: j.row.Attempt, submitted: j.row.Submitted, stdout: j.row.Stdout, stderr: j.row.Stderr}
			}
			j.row.Attempt++
			j.row.Status = model.JobSubmissionPending
			j.row.ExitStatus, j.row.ExitValue, j.row.Signal, j.row.Reason = nil, nil, nil, nil
			j.row.KillIntent = false
			j.row.DRMSID, j.row.Handle, j.row.HandleVersion = "", nil, 0
			now := time.Now().UTC()
			j.row.Submitted, j.row.Started, j.row.Ended = &now, nil, nil
			e.markDirty(j)
			subs = append(subs, j)
			if w.row.Status == model.WorkflowNotStarted {
				w.row.Status = model.WorkflowInProgress
				e.dirtyWf[w] = true
			}
		}
	}
	return subs
}

func (e *Engine) submit(ctx context.Context, subs []*job) {
	subs = e.submitArrays(ctx, subs)
	for _, j := range subs {
		w := j.w
		if w.stopping || j.row.Status != model.JobSubmissionPending {
			continue
		}
		if j.row.KillIntent {
			// A dependency failed before this early submission went out.
			e.finish(j, &drms.Outcome{Status: model.JobFailed, ExitStatus: model.ExitAbortedBefore})
			continue
		}
		if w.b.down != nil && time.Now().Before(w.b.retryAt) {
			e.waitBackend(j) // not tried: the DRMS just failed another job's submission
			continue
		}
		spec, files, err := e.buildSpec(w, j)
		if err == nil {
			err = files.prepare()
		}
		var h drms.Handle
		if err == nil {
			j.row.Stdout, j.row.Stderr = spec.Stdout, spec.Stderr
			if len(j.after) > 0 {
				h, err = w.b.be.(drms.DependencySubmitter).SubmitAfter(ctx, spec, j.after)
			} else {
				h, err = w.b.be.Submit(ctx, spec)
			}
		}
		var se *drms.StartError
		var spe *specError
		switch {
		case err == nil:
			e.backendUp(w.b)
			e.setHandle(j, h)
			if w.b.caps.Queues || w.b.caps.Pools || len(j.after) > 0 {
				j.row.Status = model.JobQueuedActive
			} else {
				j.row.Status = model.JobRunning
				j.row.Started = j.row.Submitted
			}
		case errors.As(err, &se):
			e.finish(j, drms.NotStarted(se.Reason))
		case errors.As(err, &spe):
			e.finish(j, drms.NotStarted(spe.reason))
		case errors.Is(err, drms.ErrSubmitUncertain):
			e.log.Warn("submission uncertain", "job", j.row.ID, "err", err)
			e.settleUncertain(ctx, j)
		default:
			// The DRMS cannot be reached (or failed otherwise): the job
			// goes back to the ready queue, says why in its reason, and is
			// tried again once the backend's back-off has passed.
			e.log.Warn("submission failed; will retry", "job", j.row.ID, "err", err)
			e.backendDown(w.b, err)
			e.waitBackend(j)
		}
	}
}

// submitArrays gives the jobs of backends that take arrays to SubmitArray,
// one call per backend, and returns the others.
func (e *Engine) submitArrays(ctx context.Context, subs []*job) []*job {
	byBackend := map[*backendRun][]*job{}
	var rest []*job
	for _, j := range subs {
		if _, ok := j.w.b.be.(drms.ArraySubmitter); ok && j.w.b.caps.Arrays && !j.w.stopping && len(j.after) == 0 && !j.row.KillIntent {
			byBackend[j.w.b] = append(byBackend[j.w.b], j)
		} else {
			rest = append(rest, j)
		}
	}
	for b, js := range byBackend {
		if len(js) < 2 {
			rest = append(rest, js...)
			continue
		}
		var specs []drms.JobSpec
		var batch []*job
		for _, j := range js {
			spec, files, err := e.buildSpec(j.w, j)
			if err == nil {
				err = files.prepare()
			}
			var spe *specError
			if errors.As(err, &spe) {
				e.finish(j, drms.NotStarted(spe.reason))
				continue
			}
			if err != nil {
				e.log.Warn("job spec", "job", j.row.ID, "err", err)
				e.requeue(j)
				continue
			}
			j.row.Stdout, j.row.Stderr = spec.Stdout, spec.Stderr
			specs = append(specs, spec)
			batch = append(batch, j)
		}
		if len(specs) == 0 {
			continue
		}
		hs, err := b.be.(drms.ArraySubmitter).SubmitArray(ctx, specs)
		var se *drms.StartError
		switch {
		case err == nil && len(hs) == len(batch):
			e.backendUp(b)
			for i, j := range batch {
				e.setHandle(j, hs[i])
				j.row.Status = model.JobQueuedActive
			}
		case err == nil:
			e.log.Error("array submission returned a wrong number of handles", "backend", b.name, "jobs", len(batch), "handles", len(hs))
			for _, j := range batch {
				e.finish(j, lostIntent())
			}
		case errors.As(err, &se):
			for _, j := range batch {
				e.finish(j, drms.NotStarted(se.Reason))
			}
		case errors.Is(err, drms.ErrSubmitUncertain):
			for _, j := range batch {
				e.settleUncertain(ctx, j)
			}
		default:
			e.log.Warn("array submission failed; will retry", "backend", b.name, "jobs", len(batch), "err", err)
			e.backendDown(b, err)
			for _, j := range batch {
				e.waitBackend(j)
			}
		}
	}
	return rest
}

// settleUncertain settles a job whose submission may or may not have
// reached the DRMS: found there (its handle is kept), proved never
// submitted (ready again), or neither (lost, never re-run blindly).
func (e *Engine) settleUncertain(ctx context.Context, j *job) {
	h, found, never, err := e.locate(ctx, j.w, j)
	if err != nil {
		e.relocateLater(j)
		return
	}
	e.located(j, h, found, never)
}

// located settles an active job whose submission was not known by what
// Locate answered: found (re-attached, its state read at the next poll;
// killed if stopped meanwhile), proved never submitted (submitted again as
// the same attempt, or aborted if stopped meanwhile), or neither
// (undetermined).
func (e *Engine) located(j *job, h drms.Handle, found, never bool) {
	switch {
	case found:
		e.setHandle(j, h)
		if j.row.KillIntent {
			e.toKill = append(e.toKill, j)
		}
	case never && j.row.KillIntent:
		e.finish(j, abortedBefore())
	case never:
		e.requeue(j)
	default:
		e.finish(j, lostIntent())
	}
}

// backendDown records that a backend could not be reached (or failed a
// call): since when and its own words, for the jobs' reasons, `status` and
// `run`; its submissions wait for the back-off.
func (e *Engine) backendDown(b *backendRun, err error) {
	b.retryAt = time.Now().Add(e.opts.PollInterval)
	msg := err.Error()
	if b.down != nil && b.down.Message == msg {
		return
	}
	since := time.Now().UTC()
	if b.down != nil {
		since = b.down.Since
	}
	b.down = &store.BackendProblem{Since: since, Message: msg}
	b.downDirty = true
}

// backendChanges are the backend problems to record in the next commit.
func (e *Engine) backendChanges() map[string]*store.BackendProblem {
	var m map[string]*store.BackendProblem
	for _, b := range e.backends {
		if b.downDirty {
			if m == nil {
				m = map[string]*store.BackendProblem{}
			}
			m[b.name] = b.down
		}
	}
	return m
}

// backendUp records that a backend answered again.
func (e *Engine) backendUp(b *backendRun) {
	if b.down != nil {
		e.log.Info("backend answers again", "backend", b.name, "down_since", b.down.Since)
		b.down, b.downDirty = nil, true
	}
	b.retryAt = time.Time{}
}

// waitBackend requeues an attempt that did not reach its backend, the
// backend's problem in its reason.
func (e *Engine) waitBackend(j *job) {
	e.requeue(j)
	if d := j.w.b.down; d != nil {
		r := fmt.Sprintf("not submitted yet: backend %s unreachable since %s: %s", j.w.b.name, d.Since.Format(time.RFC3339), d.Message)
		j.row.Reason = &r
	}
}

// requeue puts an attempt that never reached the DRMS back in the ready
// queue; one submitted early (its dependencies still running) waits for
// them again, and may be submitted early again.
func (e *Engine) requeue(j *job) {
	w := j.w
	v := j.row.Index
	j.row.Attempt--
	j.row.Status = model.JobNotSubmitted
	j.row.Submitted = nil
	j.after = nil
	if w.remaining[v] > 0 {
		w.set(v, nWaiting)
		w.early = append(w.early, int32(v))
	} else {
		w.set(v, nReady)
		w.push(v, false)
	}
	e.markDirty(j)
}
