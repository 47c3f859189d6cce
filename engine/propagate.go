package engine

// This file holds the graph's state: jobs made ready when their
// dependencies succeed, failures propagated, workflows finished.

import (
	"container/heap"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/model"
)

// rebuild derives every node's state from the jobs' stored statuses and
// converges: ready jobs queued, barriers passed, failures propagated.
func (e *Engine) rebuild(w *wfRun) {
	n := w.g.nodes()
	w.state = make([]uint8, n) // every node waiting: every job unended
	w.remaining = make([]int32, n)
	w.ready = w.ready[:0]
	w.running, w.slotsUsed, w.unended = 0, 0, len(w.jobs)
	for i, j := range w.jobs {
		switch {
		case model.JobEnded(j.row.Status):
			if succeeded(j) {
				w.set(i, nSucceeded)
				w.forget(i)
				if !j.dirty {
					j.slimRow() // as stored
				}
			} else {
				w.set(i, nFailed)
			}
		case j.row.Status == model.JobNotSubmitted:
		default:
			w.set(i, nActive)
		}
	}
	// Hidden nodes succeed when all their predecessors did: compute in
	// topological order (Kahn) over the whole graph.
	var queue []int32
	for v := 0; v < n; v++ {
		if w.g.preds[v] == 0 {
			queue = append(queue, int32(v))
		}
	}
	copy(w.remaining, w.g.preds)
	w.waitJobs, w.waitSlots = 0, 0
	for v := 0; v < n; v++ {
		if w.state[v] == nActive && !w.g.hidden(v) && w.remaining[v] > 0 {
			w.waitJobs++
			w.waitSlots += w.need(v)
		}
	}
	var failed []int32
	for len(queue) > 0 {
		v := int(queue[0])
		queue = queue[1:]
		if w.g.hidden(v) && w.state[v] == nWaiting && w.remaining[v] == 0 {
			w.set(v, nSucceeded)
		}
		switch w.state[v] {
		case nSucceeded:
			for _, s := range w.g.succ[v] {
				if w.depDone(int(s)) {
					queue = append(queue, s)
				}
			}
		case nFailed:
			failed = append(failed, int32(v))
		case nWaiting:
			if w.remaining[v] == 0 && !w.stopping {
				e.makeReady(w, v)
			}
		}
	}
	for _, v := range failed {
		e.abortFrom(w, int(v))
	}
	e.maybeFinish(w)
}

// forget drops the definition of a job that succeeded: nothing runs it
// again (a restart re-runs only what did not succeed), and a million
// definitions are most of an engine's memory. Its row keeps what the
// engine still reads of it (barrier, outputs).
// push puts job v in the ready queue, by its priority (early: submitted
// before its dependencies ended, see queueEarly).
func (w *wfRun) push(v int, early bool) {
	heap.Push(&w.ready, readyItem{prio: w.def.Jobs[v].Priority, idx: int32(v), early: early})
}

func (w *wfRun) forget(v int) {
	w.def.Jobs[v] = nil
}

// isBarrier tells whether job v runs no process (a barrier or an
// engine-side job), also once forgotten (its row records it from the same
// definition).
func (w *wfRun) isBarrier(v int) bool {
	if mj := w.def.Jobs[v]; mj != nil {
		return mj.NoProcess()
	}
	return w.jobs[v].row.Barrier
}

func succeeded(j *job) bool {
	return model.Succeeded(j.row.Status, deref(j.row.ExitStatus), j.row.ExitValue)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// makeReady queues a job whose dependencies all succeeded; barriers and
// hidden group nodes succeed at once.
func (e *Engine) makeReady(w *wfRun, v int) {
	work := []int{v}
	for len(work) > 0 {
		v := work[len(work)-1]
		work = work[:len(work)-1]
		if w.state[v] != nWaiting {
			continue
		}
		if !w.g.hidden(v) && !w.def.Jobs[v].NoProcess() {
			if w.holdForInputs(v) {
				continue // made ready when its input transfers arrive
			}
			w.set(v, nReady)
			w.push(v, false)
			continue
		}
		if w.g.hidden(v) {
			w.set(v, nSucceeded)
		} else {
			// A barrier, or a job the engine runs itself: no process.
			j := w.jobs[v]
			now := time.Now().UTC()
			j.row.Submitted, j.row.Started = &now, &now
			if !e.runInEngine(w, j) {
				e.abortFrom(w, v)
				continue
			}
			w.forget(v)
		}
		for _, s := range w.g.succ[v] {
			if w.depDone(int(s)) && !w.stopping {
				work = append(work, int(s))
			}
		}
	}
}

// abortFrom ends every not-yet-started descendant of a node that did not
// succeed: failed / aborted_before_running, transitively.
func (e *Engine) abortFrom(w *wfRun, v int) {
	work := append([]int32(nil), w.g.succ[v]...)
	for len(work) > 0 {
		s := int(work[len(work)-1])
		work = work[:len(work)-1]
		switch w.state[s] {
		case nWaiting, nReady:
		case nActive:
			// Submitted early with its dependencies handed to the DRMS and
			// not started: it must not start (the DRMS should cancel it too).
			if j := w.jobs[s]; !w.g.hidden(s) && j.row.Started == nil && !j.row.KillIntent {
				j.row.KillIntent = true
				if j.row.DRMSID != "" {
					j.row.Status = model.JobKillPending
					e.toKill = append(e.toKill, j)
				}
				e.markDirty(j)
			}
			continue
		default:
			continue
		}
		if w.g.hidden(s) {
			w.set(s, nFailed)
		} else {
			e.endJob(w.jobs[s], abortedBefore())
		}
		work = append(work, w.g.succ[s]...)
	}
}

// endJob ends a job that was waiting, ready or active: its row takes the
// outcome and its node, by set, the state that outcome means. With set, it
// is where a job's row status, its node's state and the workflow's
// counters change together.
func (e *Engine) endJob(j *job, o *drms.Outcome) {
	e.endRow(j, o)
	if o.Status == model.JobDone {
		e.outputsMade(j)
	}
	if succeeded(j) {
		j.w.set(j.row.Index, nSucceeded)
	} else {
		j.w.set(j.row.Index, nFailed)
	}
}

// set moves node v to state s, keeping the workflow's counters true to
// the node states: running counts the jobs submitted and not ended
// (nActive), unended the jobs not ended (waiting, ready or active). Hidden
// group nodes count in neither. Every change of a node's state goes
// through here.
func (w *wfRun) set(v int, s uint8) {
	old := w.state[v]
	w.state[v] = s
	if w.g.hidden(v) {
		return
	}
	d := isActive(s) - isActive(old)
	w.running += d
	w.slotsUsed += d * w.need(v)
	if w.remaining[v] > 0 {
		w.waitJobs += d
		w.waitSlots += d * w.need(v)
	}
	w.unended += isUnended(s) - isUnended(old)
}

// depDone counts one more ended dependency of node v and tells whether
// none is left. An active job it was the last one of (submitted early)
// now waits only for a slot: it leaves waitJobs and waitSlots.
func (w *wfRun) depDone(v int) bool {
	w.remaining[v]--
	if w.remaining[v] != 0 {
		return false
	}
	if w.state[v] == nActive && !w.g.hidden(v) {
		w.waitJobs--
		w.waitSlots -= w.need(v)
	}
	return true
}

func isActive(s uint8) int {
	if s == nActive {
		return 1
	}
	return 0
}

func isUnended(s uint8) int {
	if s < nSucceeded {
		return 1
	}
	return 0
}

func abortedBefore() *drms.Outcome {
	return &drms.Outcome{Status: model.JobFailed, ExitStatus: model.ExitAbortedBefore}
}

// endRow writes an outcome's status fields on a job's row.
func (e *Engine) endRow(j *job, o *drms.Outcome) {
	j.row.Status = o.Status
	es := o.ExitStatus
	j.row.ExitStatus = &es
	j.row.ExitValue = o.ExitValue
	j.row.Signal, j.row.Reason = strp(o.Signal), strp(o.Reason)
	now := time.Now().UTC()
	j.row.Ended = &now
	e.markDirty(j)
}

func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// maybeFinish marks a workflow done when every job ended, and removes a
// workflow being deleted once nothing of it runs (at once when forced).
func (e *Engine) maybeFinish(w *wfRun) {
	if w.deleting && (w.running == 0 || w.force) {
		e.removed = append(e.removed, w.row.ID)
		for _, j := range w.jobs {
			delete(w.b.handles, j.row.DRMSID)
			j.dirty = true // never written again
		}
		delete(e.runs, w.row.ID)
		delete(e.dirtyWf, w)
		return
	}
	if w.unended == 0 && w.running == 0 && w.row.Status != model.WorkflowDone {
		w.row.Status = model.WorkflowDone
		now := time.Now().UTC()
		w.row.Ended = &now
		e.dirtyWf[w] = true
		e.removeTempPaths(w)
	}
}

type readyItem struct {
	prio  int
	idx   int32
	early bool // its dependencies still run at the DRMS (see queueEarly)
}

// readyHeap orders ready jobs: higher priority first, then file order.
type readyHeap []readyItem

func (h readyHeap) Len() int { return len(h) }

func (h readyHeap) Less(i, j int) bool {
	if h[i].prio != h[j].prio {
		return h[i].prio > h[j].prio
	}
	return h[i].idx < h[j].idx
}

func (h readyHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }

func (h *readyHeap) Push(x any) { *h = append(*h, x.(readyItem)) }

func (h *readyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
