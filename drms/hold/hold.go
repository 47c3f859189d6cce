// Package hold is the queue of a backend that holds jobs until they may
// start (drms.Capabilities.Pools and Dependencies): until every dependency
// exited 0, and their pool has room. Held jobs start in the engine's order
// (Job.Priority, then Job.Seq, then the order they were added; the first
// held job of a pool blocks the later ones of that pool); a job whose
// dependency did not succeed is cancelled. The local
// supervisor and the in-process local backend share it.
package hold

import "slices"

// Job is one held job.
type Job struct {
	// Key identifies the job attempt.
	Key string
	// After are the keys of the dependencies not known to be ended yet.
	After []string
	// Pool names the slots the job takes; Limit is the pool's size (0: no
	// limit), Need the slots the job takes (at least one).
	Pool        string
	Limit, Need int
	// Priority and Seq rank the job among the held ones: higher Priority
	// first, then lower Seq (the engine's job id: file order). A job
	// handed over before its dependencies ended thus starts before the
	// jobs the engine would have run after it, whenever they were added.
	Priority int
	Seq      int64
	// Data is the backend's own (what it needs to start the job).
	Data any
}

// Dep is what a backend knows of a dependency.
type Dep int

const (
	// Running: not ended yet (or held).
	Running Dep = iota
	// Succeeded: exited 0.
	Succeeded
	// Failed: ended otherwise, or unknown.
	Failed
)

// Queue holds jobs and counts the slots each pool's started jobs take. It
// is not safe for concurrent use: the backend locks around it.
type Queue struct {
	held []*Job
	used map[string]int
}

// Len is the number of held jobs.
func (q *Queue) Len() int { return len(q.held) }

// Take counts a started job's slots; Release gives them back when it ends
// (or could not start).
func (q *Queue) Take(pool string, need int) {
	if q.used == nil {
		q.used = map[string]int{}
	}
	q.used[pool] += max(1, need)
}

// Release gives back the slots Take counted.
func (q *Queue) Release(pool string, need int) {
	if q.used != nil {
		q.used[pool] = max(0, q.used[pool]-max(1, need))
	}
}

// Ready reports what a job still waits for: "" when it may start now (its
// dependencies exited 0, its pool has room and no earlier job of its pool
// is held), "after" for a dependency that runs, "slot" for its pool, or
// "failed" for a dependency that did not succeed. It drops the ended
// dependencies from j.After.
func (q *Queue) Ready(j *Job, dep func(key string) Dep) string {
	return q.ready(j, dep, true)
}

// ready is Ready; without scan it does not look for an earlier held job
// of the pool (Dispatch knows which pools are blocked).
func (q *Queue) ready(j *Job, dep func(key string) Dep, scan bool) string {
	left := j.After[:0]
	for _, a := range j.After {
		switch dep(a) {
		case Succeeded:
		case Failed:
			return "failed"
		default:
			left = append(left, a)
		}
	}
	j.After = left
	if len(left) > 0 {
		return "after"
	}
	for _, h := range q.held {
		if !scan || h == j || j.before(h) {
			break
		}
		if h.Pool == j.Pool && len(h.After) == 0 {
			return "slot"
		}
	}
	if !q.fits(j) {
		return "slot"
	}
	return ""
}

func (q *Queue) fits(j *Job) bool {
	used := q.used[j.Pool]
	return j.Limit <= 0 || used == 0 || used+max(1, j.Need) <= j.Limit
}

// Add holds a job (after Ready said it may not start now), after the held
// jobs ranked before it or equal to it.
func (q *Queue) Add(j *Job) {
	i := len(q.held)
	for i > 0 && j.before(q.held[i-1]) {
		i--
	}
	q.held = slices.Insert(q.held, i, j)
}

// before tells whether j ranks before h (see Job.Priority).
func (j *Job) before(h *Job) bool {
	if j.Priority != h.Priority {
		return j.Priority > h.Priority
	}
	return j.Seq < h.Seq
}

// Remove takes a held job out of the queue (killed before it started);
// false when key is not held.
func (q *Queue) Remove(key string) (*Job, bool) {
	for i, h := range q.held {
		if h.Key == key {
			q.held = append(q.held[:i], q.held[i+1:]...)
			return h, true
		}
	}
	return nil, false
}

// Dispatch goes through the held jobs in rank order: those with a dependency
// that did not succeed are removed and given to cancel; those that may
// start are given to start, which returns false to keep one held (it
// could not be started now: its pool is then blocked for this round), or
// true once it took its slots (Take is done here) and started it.
func (q *Queue) Dispatch(dep func(key string) Dep, start func(*Job) bool, cancel func(*Job)) {
	if len(q.held) == 0 {
		return
	}
	// A pool is blocked once one of its jobs is kept for want of a slot:
	// the later ones wait behind it. (Each held job is looked at once.)
	blocked := map[string]bool{}
	held := q.held
	var kept []*Job
	for _, j := range held {
		if blocked[j.Pool] && len(j.After) == 0 {
			kept = append(kept, j)
			continue
		}
		switch q.ready(j, dep, false) {
		case "failed":
			cancel(j)
			continue
		case "":
			if blocked[j.Pool] {
				break // its dependencies just ended: behind the pool's first
			}
			q.Take(j.Pool, j.Need)
			if start(j) {
				continue
			}
			q.Release(j.Pool, j.Need)
			blocked[j.Pool] = true
		case "slot":
			blocked[j.Pool] = true
		}
		kept = append(kept, j)
	}
	q.held = kept
}
