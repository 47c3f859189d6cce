// Package local runs jobs as local processes, children of the calling
// process: argv (a shell only for shell jobs, which the engine already turned
// into /bin/sh -c), working directory, environment, stdin/stdout/stderr files,
// join, the whole process group killed on Kill, exit value and signal from the
// real wait status, rusage, and exits pushed at once through drms.Notifier.
package local

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/proc"
)

// HandleVersion is the version of the handles this package writes.
const HandleVersion = 1

// Backend runs jobs as child processes of the current process.
type Backend struct {
	cfg    drms.Config
	events chan drms.Event
	cg     *proc.Cgroups // nil where cgroups v2 cannot be used
	seq    atomic.Int64

	mu    sync.Mutex
	procs map[string]*child // by handle ID (pid)
}

type child struct {
	pid     int
	started time.Time
	killed  bool
	key     string        // its cgroup's name
	outcome *drms.Outcome // set once ended, until delivered
	out     *proc.Output  // lazily created log files, finished at exit
}

// handleState is the persisted part of a local handle.
type handleState struct {
	PID       int    `json:"pid"`
	StartTick uint64 `json:"start_tick"` // /proc/PID/stat starttime, against pid reuse
	Started   int64  `json:"started_unix_ns"`
}

// New returns a local backend.
func New(cfg drms.Config) *Backend {
	tag := cfg.EngineTag
	if tag == "" {
		tag = drms.EngineTag(cfg.StateDir)
	}
	return &Backend{cfg: cfg, events: make(chan drms.Event, 4096), procs: map[string]*child{},
		cg: proc.OpenCgroups("somaflow-" + tag)}
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
	return drms.Capabilities{Name: "local", MaxJobsDefault: mj, LazyOutput: true}
}

// Events implements drms.Notifier: one event per ended job.
func (b *Backend) Events() <-chan drms.Event { return b.events }

// Submit starts the job now. A missing command, working directory or stdin
// file gives a *drms.StartError and starts nothing.
func (b *Backend) Submit(ctx context.Context, spec drms.JobSpec) (drms.Handle, error) {
	started := time.Now()
	spec.Env = append(spec.Env[:len(spec.Env):len(spec.Env)], proc.JobEnvVar+"="+spec.Name())
	key := fmt.Sprintf("%s.%d", spec.Name(), b.seq.Add(1)) // unique, whatever the spec holds
	pid, out, err := proc.StartIn(spec, b.cfg.StateDir, b.cg, key)
	if err != nil {
		return drms.Handle{}, err
	}
	id := strconv.Itoa(pid)
	pr := &child{pid: pid, started: started, out: out, key: key}
	b.mu.Lock()
	b.procs[id] = pr
	b.mu.Unlock()
	tick := proc.StartTick(pid)
	go b.wait(id, pr)
	st, _ := json.Marshal(handleState{PID: pid, StartTick: tick, Started: started.UnixNano()})
	return drms.Handle{Version: HandleVersion, ID: id, State: st}, nil
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
	b.mu.Lock()
	pr.outcome = o
	b.mu.Unlock()
	b.events <- drms.Event{ID: id, State: drms.State{Phase: drms.Ended, Started: pr.started, Outcome: o}}
	b.mu.Lock()
	delete(b.procs, id)
	b.mu.Unlock()
}

// Status implements drms.Backend from memory: no process is started.
func (b *Backend) Status(ctx context.Context, hs []drms.Handle) (map[string]drms.State, error) {
	out := make(map[string]drms.State, len(hs))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, h := range hs {
		if pr, ok := b.procs[h.ID]; ok {
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
	if ok {
		pr.killed = true
	}
	b.mu.Unlock()
	if !ok {
		return nil // already ended: its outcome is on its way
	}
	_ = syscall.Kill(-pr.pid, syscall.SIGTERM)
	time.AfterFunc(proc.KillGrace, func() {
		b.mu.Lock()
		alive := b.procs[h.ID] == pr && pr.outcome == nil
		b.mu.Unlock()
		if alive {
			_ = syscall.Kill(-pr.pid, syscall.SIGKILL)
		}
	})
	return nil
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
	if err := json.Unmarshal(h.State, &hs); err != nil || hs.PID <= 0 {
		return drms.State{Phase: drms.Ended, Outcome: drms.Undetermined("engine restarted; the job's handle is unreadable")}
	}
	o := proc.Orphaned(hs.PID, hs.StartTick, time.Unix(0, hs.Started), goneReason, killedReason)
	return drms.State{Phase: drms.Ended, Started: o.Started, Outcome: o}
}

// Close implements drms.Backend; running children are left alone.
func (b *Backend) Close() error {
	b.cg.Close()
	return nil
}

var _ drms.Notifier = (*Backend)(nil)
