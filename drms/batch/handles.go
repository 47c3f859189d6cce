package batch

import (
	"sync"
	"time"

	"github.com/somaflow/somaflow/drms"
)

// Handles remembers the decoded state of each handle a backend was asked
// about, so that a Status of many jobs does not decode every handle's JSON
// again at every call: a handle whose state bytes are those decoded
// before is not decoded again. It is safe for concurrent use; the zero
// value is ready.
type Handles[T any] struct {
	// Off: decode every handle at every call (the way before; for
	// comparison only).
	Off bool

	mu sync.Mutex
	m  map[string]decoded[T]
}

type decoded[T any] struct {
	version int
	raw     string
	v       T
}

// Decode returns the state of h, decoded by decode unless it was before
// (a handle that does not decode is not remembered).
func (c *Handles[T]) Decode(h drms.Handle, decode func(drms.Handle) (T, error)) (T, error) {
	if c.Off {
		return decode(h)
	}
	c.mu.Lock()
	d, ok := c.m[h.ID]
	c.mu.Unlock()
	if ok && d.version == h.Version && d.raw == string(h.State) {
		return d.v, nil
	}
	v, err := decode(h)
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]decoded[T]{}
	}
	c.m[h.ID] = decoded[T]{version: h.Version, raw: string(h.State), v: v}
	c.mu.Unlock()
	return v, nil
}

// Forget drops the state of an ended job.
func (c *Handles[T]) Forget(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// Paced is a backend's side of FromHandles.
type Paced[T any] struct {
	// Decode decodes a handle's state.
	Decode func(drms.Handle) (T, error)
	// Job is the job's files and walltime, and whether the DRMS must be
	// asked about it whatever they say (ID is set by FromHandles).
	Job func(h drms.Handle, st T) PacedJob
	// Listed is how the last listing shows the job.
	Listed func(h drms.Handle, st T) Listed
	// Forget drops what the backend remembers of a job that ended.
	Forget func(id string)
}

// FromHandles is p.FromFiles for a backend's handles, decoded once with
// c (a handle that does not decode needs the DRMS); the backend forgets
// each job returned ended.
func FromHandles[T any](p *Pace, c *Handles[T], hs []drms.Handle, at time.Time, busy, idle time.Duration, b Paced[T]) (map[string]drms.State, bool) {
	jobs := make([]PacedJob, len(hs))
	sts := make([]T, len(hs))
	for i, h := range hs {
		st, err := c.Decode(h, b.Decode)
		if err != nil {
			return nil, false
		}
		sts[i] = st
		jobs[i] = b.Job(h, st)
		jobs[i].ID = h.ID
	}
	out, ok := p.FromFiles(jobs, at, busy, idle, func(i int) Listed { return b.Listed(hs[i], sts[i]) })
	if ok {
		for id, s := range out {
			if s.Phase == drms.Ended {
				b.Forget(id)
			}
		}
	}
	return out, ok
}
