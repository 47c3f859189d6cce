package engine

// This file holds what backends report: events and statuses turned into
// job states and outcomes.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/model"
)

// poll asks each backend for the state of its active jobs: one Status
// call per backend per cycle, however many jobs.
func (e *Engine) poll(ctx context.Context) {
	e.enforceWalltimes(ctx)
	e.retryLocates(ctx)
	for _, b := range e.backends {
		if len(b.handles) == 0 {
			continue
		}
		hs := make([]drms.Handle, 0, len(b.handles))
		for _, j := range b.handles {
			hs = append(hs, handleOf(j))
		}
		st, err := b.be.Status(ctx, hs)
		if err != nil {
			e.log.Warn("backend status", "backend", b.name, "err", err)
			e.backendDown(b, err)
			continue
		}
		e.backendUp(b)
		for id, s := range st {
			if j := b.handles[id]; j != nil {
				e.observe(j, s)
			}
		}
	}
}

func (e *Engine) applyEvents(evs []taggedEvent) {
	if len(evs) > 0 {
		e.failpoint("after-job-exit")
	}
	for _, ev := range evs {
		if j := ev.b.handles[ev.ev.ID]; j != nil {
			e.observe(j, ev.ev.State)
		}
	}
}

// observe records what the backend saw of a job: queued, held or
// suspended (soma-workflow's statuses, by whom where the DRMS tells),
// running, or ended.
func (e *Engine) observe(j *job, s drms.State) {
	if s.Handle != nil && s.Handle.ID != j.row.DRMSID && j.w.state[j.row.Index] == nActive {
		// A held job got its own id when it started (its pid).
		delete(j.w.b.handles, j.row.DRMSID)
		j.row.DRMSID, j.row.HandleVersion, j.row.Handle = s.Handle.ID, s.Handle.Version, s.Handle.State
		j.w.b.handles[s.Handle.ID] = j
		e.markDirty(j)
	}
	switch s.Phase {
	case drms.Dropped:
		// Proved never started (the backend that held it lost it): it is
		// submitted again, as the same attempt.
		if j.w.state[j.row.Index] == nActive && j.row.Status != model.JobKillPending {
			delete(j.w.b.handles, j.row.DRMSID)
			j.row.DRMSID, j.row.Handle, j.row.HandleVersion = "", nil, 0
			e.log.Info("job dropped by its backend before it started: submitted again", "job", j.row.ID, "attempt", j.row.Attempt)
			e.requeue(j)
		} else if j.w.state[j.row.Index] == nActive {
			e.finish(j, &drms.Outcome{Status: model.JobFailed, ExitStatus: model.ExitAbortedBefore})
		}
		return
	case drms.Ended:
		e.finish(j, s.Outcome)
		return
	case drms.Running, drms.Suspended:
		j.unsent = nil
		if j.row.Started == nil {
			if !s.Started.IsZero() {
				t := s.Started.UTC()
				j.row.Started = &t
			} else {
				now := time.Now().UTC()
				j.row.Started = &now
			}
			e.markDirty(j)
		}
	}
	if j.row.Status == model.JobKillPending || model.JobEnded(j.row.Status) {
		return // our kill decides from here
	}
	if st := statusOf(s); st != "" && st != j.row.Status {
		j.row.Status = st
		e.markDirty(j)
	}
	// While it waits at the DRMS, the job's reason says why (the reason of
	// an active job is only ever that: submission clears it).
	why := ""
	if s.Reason != "" && (s.Phase == drms.Queued || s.Phase == drms.Held) {
		why = "waiting at the DRMS: " + s.Reason
	}
	if deref(j.row.Reason) != why {
		j.row.Reason = strp(why)
		e.markDirty(j)
	}
}

// statusOf is the soma-workflow status of a job in a non-final phase.
func statusOf(s drms.State) string {
	byWho := func(user, system, both string) string {
		switch s.By {
		case drms.BySystem:
			return system
		case drms.ByUserAndSystem:
			return both
		}
		return user
	}
	switch s.Phase {
	case drms.Queued:
		return model.JobQueuedActive
	case drms.Held:
		return byWho(model.JobUserOnHold, model.JobSystemOnHold, model.JobUserSystemOnHold)
	case drms.Running:
		return model.JobRunning
	case drms.Suspended:
		return byWho(model.JobUserSuspended, model.JobSystemSuspended, model.JobUserSystemSuspended)
	}
	return ""
}

// finish ends an active job with the backend's outcome, after our own kill
// intent, and makes its dependants ready or aborts them.
func (e *Engine) finish(j *job, o *drms.Outcome) {
	w := j.w
	v := j.row.Index
	if w.state[v] != nActive {
		return
	}
	if o == nil {
		o = drms.Undetermined("the backend reported an end without an outcome")
	}
	if j.row.KillIntent && o.Started.IsZero() && j.row.Started != nil {
		o.Started = *j.row.Started
	}
	o = drms.Resolve(j.row.KillIntent, o)
	if j.timedOut && !j.row.KillIntent {
		limit := time.Duration(w.def.Jobs[v].Resources.Walltime) * time.Second
		why := fmt.Sprintf("walltime of %v exceeded: killed", limit)
		if o.Reason != "" {
			why += "; " + o.Reason
		}
		o.Reason = why
		j.timedOut = false
	}
	delete(w.b.handles, j.row.DRMSID)
	if _, ok := w.b.be.(drms.Acknowledger); ok && j.row.DRMSID != "" {
		if e.acks == nil {
			e.acks = map[*backendRun][]drms.Handle{}
		}
		e.acks[w.b] = append(e.acks[w.b], handleOf(j))
	}
	if e.retry(j, o) {
		return
	}
	if u := j.unsent; u != nil && o.ExitStatus == model.ExitAbortedBefore && o.Started.IsZero() && j.row.Started == nil {
		// Held by the backend and never started (a dependency failed, or
		// it was stopped): as if never submitted.
		j.row.Attempt, j.row.Submitted, j.row.Stdout, j.row.Stderr = u.attempt, u.submitted, u.stdout, u.stderr
		j.row.DRMSID, j.row.Handle, j.row.HandleVersion = "", nil, 0
	}
	j.unsent = nil
	e.end(j, o)
	if w.state[v] == nSucceeded {
		w.forget(v)
		for _, s := range w.g.succ[v] {
			if w.depDone(int(s)) && !w.stopping {
				e.makeReady(w, int(s))
			}
		}
	} else {
		e.abortFrom(w, v)
	}
	e.maybeFinish(w)
}

// enforceWalltimes kills the running attempts that passed their walltime
// on backends whose DRMS does not (local): SIGTERM, then SIGKILL after
// the backend's grace; the outcome says why (finish).
func (e *Engine) enforceWalltimes(ctx context.Context) {
	now := time.Now()
	for _, b := range e.backends {
		if b.caps.Walltime {
			continue
		}
		for _, j := range b.handles {
			limit := j.w.def.Jobs[j.row.Index].Resources.Walltime
			if limit <= 0 || j.timedOut || j.row.KillIntent || j.row.Started == nil ||
				now.Sub(*j.row.Started) < time.Duration(limit)*time.Second {
				continue
			}
			j.timedOut = true
			e.log.Info("walltime exceeded: killing the job", "job", j.row.ID, "walltime_s", limit)
			if err := b.be.Kill(ctx, handleOf(j)); err != nil {
				e.log.Warn("kill at walltime", "job", j.row.ID, "err", err)
				j.timedOut = false // tried again at the next poll
			}
		}
	}
}

// retry puts a failed attempt of a job with retries left back in the ready
// queue (its next attempt is attempt+1; the logs of each attempt are kept),
// its reason saying how the last one ended. A user's stop, an aborted
// dependency, a command that cannot start (aborted) and a lost outcome
// (undetermined: it may have succeeded) are not retried.
func (e *Engine) retry(j *job, o *drms.Outcome) bool {
	w := j.w
	v := j.row.Index
	left := w.def.Jobs[v].Retries - (j.row.Attempt - 1)
	if left <= 0 || w.stopping || j.row.KillIntent || model.Succeeded(o.Status, o.ExitStatus, o.ExitValue) {
		return false
	}
	switch o.ExitStatus {
	case model.ExitFinishedRegular, model.ExitFinishedSignal, model.ExitFinishedUnclear:
	default:
		return false
	}
	how := o.ExitStatus
	switch {
	case o.ExitValue != nil:
		how = fmt.Sprintf("exit %d", *o.ExitValue)
	case o.Signal != "":
		how = o.Signal
	}
	if o.Reason != "" {
		how += ": " + o.Reason
	}
	reason := fmt.Sprintf("attempt %d failed (%s); retrying (retries left after this one: %d)", j.row.Attempt, how, left-1)
	e.log.Info("retrying a failed job", "job", j.row.ID, "attempt", j.row.Attempt, "outcome", how)
	j.row.Status, j.row.Reason = model.JobNotSubmitted, &reason
	j.row.ExitStatus, j.row.ExitValue, j.row.Signal = nil, nil, nil
	w.set(v, nReady)
	w.push(v, false)
	e.markDirty(j)
	return true
}

// end records an outcome on an active job's row.
func (e *Engine) end(j *job, o *drms.Outcome) {
	if o.Status == model.JobDone {
		e.readOutputs(j)
	}
	if !o.Started.IsZero() {
		t := o.Started.UTC()
		j.row.Started = &t
	}
	u := o.Usage
	j.row.WallS, j.row.CPUS, j.row.MaxRSSKiB = u.WallS, u.CPUS, u.MaxRSSKiB
	if len(u.Raw) > 0 {
		j.row.UsageRaw, _ = json.Marshal(u.Raw)
	}
	e.endJob(j, o)
	if !o.Ended.IsZero() {
		t := o.Ended.UTC()
		j.row.Ended = &t
	}
}

// readOutputs records the output parameters of a job with outputs whose
// attempt ended. The file is found from the definition and the attempt, so
// an engine that loaded the workflow while the job ran reads them too.
func (e *Engine) readOutputs(j *job) {
	w := j.w
	mj := w.def.Jobs[j.row.Index]
	if mj == nil || !mj.HasOutputs {
		return
	}
	dir, err := w.jobDir(mj)
	var path string
	if err == nil {
		path, err = e.outParamsFile(w, j, mj, dir)
	}
	if err != nil {
		e.log.Warn("output parameters file", "job", j.row.ID, "err", err)
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		e.log.Warn("output parameters are not a JSON object", "job", j.row.ID, "file", path)
		return
	}
	j.row.OutputParams = data
}
