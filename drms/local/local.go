// Package local runs jobs as local processes, children of the calling
// process: argv (a shell only for shell jobs, which the engine already turned
// into /bin/sh -c), working directory, environment, stdin/stdout/stderr files,
// join, the whole process group killed on Kill, exit value and signal from the
// real wait status, rusage, and exits pushed at once through drms.Notifier.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/hold"
	"github.com/somaflow/somaflow/drms/proc"
	"github.com/somaflow/somaflow/model"
)

// HandleVersion is the version of the handles this package writes.
const HandleVersion = 1

// Backend runs jobs as child processes of the current process. Like the
// supervisor, it holds jobs handed to it before they may run (their
// dependencies, their pool's slots: package hold) and starts each one when
// the job it waited for is reaped, without a round trip to the engine.
type Backend struct {
	cfg    drms.Config
	events chan drms.Event
	cg     *proc.Cgroups // nil where cgroups v2 cannot be used
	seq    atomic.Int64

	mu    sync.Mutex
	procs map[string]*child // by handle ID (pid, or key:KEY while held)
	// byKey holds the jobs by attempt key (JobSpec.Key) until the engine
	// acknowledged their end: held jobs' dependencies are looked up there.
	byKey map[string]*child
	q     hold.Queue

	// Events go out in order through evq (emit), never blocking whoever
	// emits (the engine itself, when Submit starts a job).
	evMu   sync.Mutex
	evq    []drms.Event
	evWake chan struct{}
	done   chan struct{}

	// started are the held jobs started in the last startDelay whose start
	// is not told yet (startEvents).
	started []*child
}

type child struct {
	pid     int
	id      string // its handle ID
	spec    drms.JobSpec
	held    *hold.Job // set while held
	started time.Time
	killed  bool
	key     string        // its cgroup's name
	outcome *drms.Outcome // set once ended, until delivered
	out     *proc.Output  // lazily created log files, finished at exit
	// heldID is the handle ID a held job had before it started (its key),
	// kept as a second name until it ends; untold until the engine is told
	// its pid (by its start event, or by its end event if it ends first).
	heldID string
	untold bool
}

// handleState is the persisted part of a local handle.
type handleState struct {
	PID       int    `json:"pid"`
	StartTick uint64 `json:"start_tick"` // /proc/PID/stat starttime, against pid reuse
	Started   int64  `json:"started_unix_ns"`
	Key       string `json:"key,omitempty"` // the attempt's key (JobSpec.Key)
}

// New returns a local backend.
func New(cfg drms.Config) *Backend {
	tag := cfg.EngineTag
	if tag == "" {
		tag = drms.EngineTag(cfg.StateDir)
	}
	b := &Backend{cfg: cfg, events: make(chan drms.Event, 4096), procs: map[string]*child{},
		byKey: map[string]*child{}, cg: proc.OpenCgroups("somaflow-" + tag),
		evWake: make(chan struct{}, 1), done: make(chan struct{})}
	go b.pump()
	return b
}

// emit queues an event; pump hands the queue to the engine in order.
func (b *Backend) emit(ev drms.Event) {
	b.evMu.Lock()
	b.evq = append(b.evq, ev)
	b.evMu.Unlock()
	select {
	case b.evWake <- struct{}{}:
	default:
	}
}

func (b *Backend) pump() {
	for {
		select {
		case <-b.evWake:
		case <-b.done:
			return
		}
		for {
			b.evMu.Lock()
			evs := b.evq
			b.evq = nil
			b.evMu.Unlock()
			if len(evs) == 0 {
				break
			}
			for _, ev := range evs {
				select {
				case b.events <- ev:
				case <-b.done:
					return
				}
			}
		}
	}
}

// UsesCgroups tells whether each job gets a cgroup of its own, which its
// end kills whole (see Cgroups).
func (b *Backend) UsesCgroups() bool { return b.cg != nil }

// Capabilities implements drms.Backend.
func (b *Backend) Capabilities() drms.Capabilities {
	n := b.cfg.Settings["max-jobs"]
	mj, _ := strconv.Atoi(n)
	if mj <= 0 {
		mj = proc.CPUCount()
	}
	hold := b.cfg.Settings["hold"] != "false"
	return drms.Capabilities{Name: "local", MaxJobsDefault: mj, LazyOutput: true, Dependencies: hold, Pools: hold}
}

// Events implements drms.Notifier: one event per ended job.
func (b *Backend) Events() <-chan drms.Event { return b.events }

// Submit starts the job now, or holds it until its pool has room
// (JobSpec.Pool). A missing command, working directory or stdin file gives
// a *drms.StartError and starts nothing.
func (b *Backend) Submit(ctx context.Context, spec drms.JobSpec) (drms.Handle, error) {
	return b.submit(spec, nil)
}

// SubmitAfter implements drms.DependencySubmitter: the job is held until
// every attempt in after exited 0, and ends aborted_before_running when one
// did not.
func (b *Backend) SubmitAfter(ctx context.Context, spec drms.JobSpec, after []drms.Handle) (drms.Handle, error) {
	keys := make([]string, 0, len(after))
	for _, h := range after {
		var hs handleState
		if json.Unmarshal(h.State, &hs) != nil || hs.Key == "" {
			return drms.Handle{}, fmt.Errorf("local: start %s after %q: not a job of this backend", spec.Key(), h.ID)
		}
		keys = append(keys, hs.Key)
	}
	return b.submit(spec, keys)
}

func (b *Backend) submit(spec drms.JobSpec, after []string) (drms.Handle, error) {
	key := spec.Key()
	pr := &child{spec: spec}
	pr.held = &hold.Job{Key: key, After: after, Pool: spec.Pool, Limit: spec.PoolLimit, Need: spec.PoolNeed,
		Priority: spec.Priority, Seq: spec.JobID, Data: pr}
	b.mu.Lock()
	if b.q.Ready(pr.held, b.depLocked) == "" {
		b.q.Take(spec.Pool, spec.PoolNeed)
		pr.held = nil
		b.mu.Unlock()
		if err := b.start(pr); err != nil {
			b.mu.Lock()
			starts := b.releaseLocked(pr)
			b.mu.Unlock()
			b.startAll(starts)
			return drms.Handle{}, err
		}
		return b.handle(pr), nil
	}
	b.q.Add(pr.held)
	pr.id = "key:" + key
	b.procs[pr.id] = pr
	b.byKey[key] = pr
	starts := b.dispatchLocked()
	b.mu.Unlock()
	b.startAll(starts)
	return b.handle(pr), nil
}

// handle is a job's handle: its pid once started, its key while held.
func (b *Backend) handle(pr *child) drms.Handle {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.handleLocked(pr)
}

func (b *Backend) handleLocked(pr *child) drms.Handle {
	hs := handleState{PID: pr.pid, Key: pr.spec.Key()}
	if pr.pid > 0 {
		hs.Started = pr.started.UnixNano()
		if pr.outcome == nil {
			// The guard against pid reuse (Orphan): not for a job that
			// ended (reaped, its pid may be another's), whose handle is
			// never recovered.
			hs.StartTick = proc.StartTick(pr.pid)
		}
	}
	st, _ := json.Marshal(hs)
	return drms.Handle{Version: HandleVersion, ID: pr.id, State: st}
}

// depLocked is what the backend knows of a held job's dependency; one it
// does not know counts as failed (the engine only hands dependencies it
// has not seen end, and they are kept until acknowledged).
func (b *Backend) depLocked(key string) hold.Dep {
	pr := b.byKey[key]
	switch {
	case pr == nil:
		return hold.Failed
	case pr.outcome == nil:
		return hold.Running
	case model.Succeeded(pr.outcome.Status, pr.outcome.ExitStatus, pr.outcome.ExitValue):
		return hold.Succeeded
	}
	return hold.Failed
}

// dispatchLocked takes the held jobs that may start now (their slots
// taken: the caller starts them, startAll) and ends those with a
// dependency that did not succeed.
func (b *Backend) dispatchLocked() []*child {
	var starts []*child
	b.q.Dispatch(b.depLocked, func(j *hold.Job) bool {
		pr := j.Data.(*child)
		pr.held = nil
		starts = append(starts, pr)
		return true
	}, func(j *hold.Job) {
		pr := j.Data.(*child)
		pr.held = nil
		b.endHeldLocked(pr)
	})
	return starts
}

// releaseLocked gives back the slots of a job that ended or could not
// start, and takes the held jobs that may start now (dispatchLocked).
func (b *Backend) releaseLocked(pr *child) []*child {
	b.q.Release(pr.spec.Pool, pr.spec.PoolNeed)
	return b.dispatchLocked()
}

// endHeldLocked ends a held job that never started (a dependency did not
// succeed, or it was killed): aborted_before_running.
func (b *Backend) endHeldLocked(pr *child) {
	pr.outcome = &drms.Outcome{Status: model.JobFailed, ExitStatus: model.ExitAbortedBefore, Ended: time.Now()}
	ev := drms.Event{ID: pr.id, State: drms.State{Phase: drms.Ended, Outcome: pr.outcome}}
	delete(b.procs, pr.id)
	b.emit(ev)
}

// startAll starts the jobs dispatch took, each telling the engine of its
// start (its pid as its new handle) or of why it could not start.
func (b *Backend) startAll(starts []*child) {
	for _, pr := range starts {
		old := pr.id
		if err := b.start(pr); err != nil {
			var o *drms.Outcome
			var se *drms.StartError
			if errors.As(err, &se) {
				o = drms.NotStarted(se.Reason)
			} else {
				o = drms.NotStarted(err.Error())
			}
			o.Ended = time.Now()
			b.mu.Lock()
			pr.outcome = o
			delete(b.procs, old)
			more := b.releaseLocked(pr)
			b.mu.Unlock()
			b.emit(drms.Event{ID: old, State: drms.State{Phase: drms.Ended, Outcome: o}})
			b.startAll(more)
		}
	}
}

// start forks a job and registers it under its pid.
func (b *Backend) start(pr *child) error {
	spec := pr.spec
	started := time.Now()
	spec.Env = append(spec.Env[:len(spec.Env):len(spec.Env)], proc.JobEnvVar+"="+spec.Name())
	key := fmt.Sprintf("%s.%d", spec.Name(), b.seq.Add(1)) // unique, whatever the spec holds
	pid, out, err := proc.StartIn(spec, b.cfg.StateDir, b.cg, key)
	if err != nil {
		return err
	}
	id := strconv.Itoa(pid)
	b.mu.Lock()
	old := pr.id
	delete(b.procs, old)
	pr.pid, pr.id, pr.started, pr.out, pr.key = pid, id, started, out, key
	b.procs[id] = pr
	b.byKey[spec.Key()] = pr
	killed := pr.killed
	if old != "" && old != id {
		// A held job: its start (its pid as its new handle) is told
		// within startDelay, or by its end if it ends first.
		pr.heldID, pr.untold = old, true
		b.procs[old] = pr
		b.started = append(b.started, pr)
		if len(b.started) == 1 {
			time.AfterFunc(startDelay, b.startEvents)
		}
		b.mu.Unlock()
	} else {
		b.mu.Unlock()
		// Its start is told before its end can be.
		b.emit(drms.Event{ID: id, State: drms.State{Phase: drms.Running, Started: started}})
	}
	go b.wait(id, pr)
	if killed {
		b.terminate(pr, pid) // killed while being started
	}
	return nil
}

// startDelay is how long the start event of a held job waits: one that
// ends meanwhile (most short jobs) is told by its end event alone, which
// carries its new handle and its start, so that the engine records and
// commits one event instead of two (as the supervisor does). Its status
// says running that much later.
var startDelay = 10 * time.Millisecond // a variable for tests

// startEvents tells the starts of the held jobs started in the last
// startDelay and still running.
func (b *Backend) startEvents() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, pr := range b.started {
		if !pr.untold || pr.outcome != nil {
			continue // told by its end
		}
		h := b.handleLocked(pr)
		// Under b.mu, so that its end (wait) cannot be told first.
		b.emit(drms.Event{ID: pr.heldID, State: drms.State{Phase: drms.Running, Started: pr.started, Handle: &h}})
		pr.untold = false
	}
	clear(b.started)
	b.started = b.started[:0]
}

func (b *Backend) wait(id string, pr *child) {
	var ws syscall.WaitStatus
	var ru syscall.Rusage
	_, err := proc.Wait4(pr.pid, &ws, &ru)
	ended := time.Now()
	// Kill the rest of the group, and of its cgroup: a job's leftovers do
	// not outlive it.
	_ = syscall.Kill(-pr.pid, syscall.SIGKILL)
	b.cg.Kill(pr.key)
	// Its logs are complete before its end is told.
	lost := proc.LostOutputReason(pr.out.Finish())
	var o *drms.Outcome
	if err != nil {
		o = drms.Undetermined("wait failed: " + err.Error())
		o.Started, o.Ended = pr.started, ended
	} else {
		o = proc.WaitOutcome(ws, &ru, pr.started, ended)
		o.Reason = lost
	}
	ev := drms.Event{ID: id, State: drms.State{Phase: drms.Ended, Started: pr.started, Outcome: o}}
	b.mu.Lock()
	pr.outcome = o
	if pr.untold {
		// Its start was not told: its end tells it, under the ID the
		// engine knows, with its new handle.
		h := b.handleLocked(pr)
		ev.ID, ev.State.Handle = pr.heldID, &h
		pr.untold = false
	}
	// The jobs held for this one or for its slot start now.
	starts := b.releaseLocked(pr)
	b.mu.Unlock()
	b.emit(ev)
	b.startAll(starts)
	b.mu.Lock()
	delete(b.procs, id)
	if pr.heldID != "" {
		delete(b.procs, pr.heldID)
	}
	b.mu.Unlock()
}

// Acknowledge implements drms.Acknowledger: the engine recorded these
// ends, so no held job can name them as dependencies any more.
func (b *Backend) Acknowledge(ctx context.Context, hs []drms.Handle) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, h := range hs {
		var st handleState
		if json.Unmarshal(h.State, &st) == nil && st.Key != "" {
			if pr := b.byKey[st.Key]; pr != nil && pr.outcome != nil {
				delete(b.byKey, st.Key)
			}
		}
	}
	return nil
}

// Status implements drms.Backend from memory: no process is started.
func (b *Backend) Status(ctx context.Context, hs []drms.Handle) (map[string]drms.State, error) {
	out := make(map[string]drms.State, len(hs))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, h := range hs {
		if pr, ok := b.procs[h.ID]; ok {
			if pr.held != nil || pr.pid == 0 {
				// Held, or taken from the held jobs and not started yet.
				out[h.ID] = drms.State{Phase: drms.Queued}
				continue
			}
			if pr.outcome != nil {
				out[h.ID] = drms.State{Phase: drms.Ended, Started: pr.started, Outcome: pr.outcome}
			} else {
				out[h.ID] = drms.State{Phase: drms.Running, Started: pr.started}
			}
		}
	}
	return out, nil
}

// Kill sends SIGTERM to the job's process group, then SIGKILL after KillGrace.
func (b *Backend) Kill(ctx context.Context, h drms.Handle) error {
	b.mu.Lock()
	pr, ok := b.procs[h.ID]
	if ok && pr.held != nil {
		// Held, never started: it ends now, never to start.
		b.q.Remove(pr.held.Key)
		pr.held = nil
		b.endHeldLocked(pr)
		starts := b.dispatchLocked()
		b.mu.Unlock()
		b.startAll(starts)
		return nil
	}
	pid := 0
	if ok {
		pr.killed = true
		pid = pr.pid
	}
	b.mu.Unlock()
	if !ok {
		return nil // already ended: its outcome is on its way
	}
	if pid <= 0 {
		// Taken from the held jobs and being started: start signals it
		// once it has a pid (a kill of pid 0 would signal our own group).
		return nil
	}
	b.terminate(pr, pid)
	return nil
}

// terminate sends SIGTERM to the process group of job pr (pid), then
// SIGKILL after KillGrace if it has not been reaped by then.
func (b *Backend) terminate(pr *child, pid int) {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	time.AfterFunc(proc.KillGrace, func() {
		b.mu.Lock()
		alive := pr.outcome == nil
		b.mu.Unlock()
		if alive {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	})
}

// Recover re-attaches to a job of this process, or reports a job of an
// earlier engine process as lost: local jobs are children of the engine, so
// their wait status died with it. A job still running is killed (its whole
// group) so that nothing runs unaccounted for; nothing is re-run.
func (b *Backend) Recover(ctx context.Context, h drms.Handle) (drms.State, error) {
	st, _ := b.Status(ctx, []drms.Handle{h})
	if s, ok := st[h.ID]; ok {
		return s, nil
	}
	return Orphan(h, "engine restarted while the job ran; its exit status was lost with the engine",
		"engine restarted while the job ran; the orphaned job was killed, its exit status is unknown"), nil
}

// Orphan is the end of a job of a local handle whose runner is gone (an
// engine that ran it in-process): its outcome is unknown, goneReason if it
// is no longer running, killedReason once it is killed (its whole group)
// because it still ran. An unreadable handle ends undetermined too.
func Orphan(h drms.Handle, goneReason, killedReason string) drms.State {
	var hs handleState
	if err := json.Unmarshal(h.State, &hs); err == nil && hs.PID <= 0 && hs.Key != "" {
		return drms.State{Phase: drms.Ended, Outcome: drms.Undetermined("engine restarted while the job was held to start after its dependencies or a free slot; whether it started is unknown")}
	}
	if err := json.Unmarshal(h.State, &hs); err != nil || hs.PID <= 0 {
		return drms.State{Phase: drms.Ended, Outcome: drms.Undetermined("engine restarted; the job's handle is unreadable")}
	}
	o := proc.Orphaned(hs.PID, hs.StartTick, time.Unix(0, hs.Started), goneReason, killedReason)
	return drms.State{Phase: drms.Ended, Started: o.Started, Outcome: o}
}

// Close implements drms.Backend; running children are left alone.
func (b *Backend) Close() error {
	select {
	case <-b.done:
	default:
		close(b.done)
	}
	b.cg.Close()
	return nil
}

var (
	_ drms.Notifier            = (*Backend)(nil)
	_ drms.DependencySubmitter = (*Backend)(nil)
	_ drms.Acknowledger        = (*Backend)(nil)
)
