// Package supervisor runs local jobs under one supervisor process per state
// dir (per engine), like containerd's shim: a re-exec of the somaflow binary
// (`somaflow supervisor`) in its own session, a child subreaper that starts
// every local job, records each start and exit in an append-only journal,
// keeps exit statuses until the engine acknowledges them, and outlives the
// engine. A restarted engine reconnects through the bootstrap file
// `<state>/supervisor.json` and gets the real outcome of jobs that ended
// meanwhile. If the supervisor itself dies, the next one (started by the
// backend when it notices) kills the process groups of the jobs it had been
// running and ends them exit_status_undetermined; nothing is re-run.
//
// The Backend (New) implements drms.Backend, drms.Notifier, drms.Locator and
// drms.Acknowledger; Main is the supervisor process itself.
package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/local"
	"github.com/somaflow/somaflow/drms/proc"
)

// HandleVersion is the version of the handles this backend writes.
const HandleVersion = 2

// handleState is the persisted part of a handle.
type handleState struct {
	Key     string `json:"key"`
	PID     int    `json:"pid,omitempty"`
	Tick    uint64 `json:"start_tick,omitempty"`
	Started int64  `json:"started_unix_ns,omitempty"`
}

// Backend runs jobs through the state dir's supervisor. Settings:
// "max-jobs" (default: CPU count), "supervisor-idle" (a duration given to a
// supervisor this backend starts, default 60s), "kill-grace" (SIGTERM to
// SIGKILL, default 2s).
type Backend struct {
	cfg   drms.Config
	dir   string
	idle  time.Duration
	grace time.Duration

	dialMu sync.Mutex // one connect-or-start at a time

	mu     sync.Mutex
	cc     *clientConn
	closed bool
	jobs   map[string]*cjob // by key: attempts this backend watches
	byID   map[string]string

	events  chan drms.Event
	evMu    sync.Mutex
	evq     []drms.Event
	pumping bool
	evWake  chan struct{}
	done    chan struct{}
}

type cjob struct {
	key, id string
	rec     Record
	told    drms.Phase // the last phase an event reported
}

// New connects to the supervisor of cfg.StateDir, starting one
// (cfg.ExecPath supervisor ...) if none runs.
func New(cfg drms.Config) (*Backend, error) {
	b, err := configure(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if _, err := b.conn(ctx); err != nil {
		return nil, err
	}
	go b.pump()
	return b, nil
}

// Start makes sure the supervisor of cfg.StateDir runs, starting one as New
// would if none does, and returns once it is ready, keeping no connection.
// submit calls it while the engine it started starts: the engine then
// finds the supervisor ready (or being started: it waits for it) instead
// of starting it after its own start.
func Start(ctx context.Context, cfg drms.Config) error {
	b, err := configure(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	cc, err := b.connectOrStart(ctx)
	if err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	return cc.c.Close()
}

// configure returns a backend for cfg, not connected.
func configure(cfg drms.Config) (*Backend, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("supervisor: no state dir")
	}
	if cfg.ExecPath == "" {
		return nil, errors.New("supervisor: no somaflow binary to run the supervisor (Config.ExecPath)")
	}
	dir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("supervisor: state dir: %w", err)
	}
	b := &Backend{cfg: cfg, dir: dir, idle: DefaultIdle, grace: proc.KillGrace,
		jobs: map[string]*cjob{}, byID: map[string]string{},
		events: make(chan drms.Event, 4096), evWake: make(chan struct{}, 1), done: make(chan struct{})}
	if v := cfg.Settings["supervisor-idle"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("supervisor: setting supervisor-idle=%q: want a positive duration such as 60s", v)
		}
		b.idle = d
	}
	if v := cfg.Settings["kill-grace"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("supervisor: setting kill-grace=%q: want a duration such as 2s", v)
		}
		b.grace = d
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("supervisor: state dir: %w", err)
	}
	return b, nil
}

// Capabilities implements drms.Backend. The supervisor holds jobs for
// their dependencies (SubmitAfter) and their pool's slots itself, so that
// a job's end starts the next without a round trip to the engine; the
// setting "hold: false" turns both off.
func (b *Backend) Capabilities() drms.Capabilities {
	mj, _ := strconv.Atoi(b.cfg.Settings["max-jobs"])
	if mj <= 0 {
		mj = proc.CPUCount()
	}
	hold := b.cfg.Settings["hold"] != "false"
	return drms.Capabilities{Name: "local", Supervisor: true, SurvivesEngine: true, MaxJobsDefault: mj, LazyOutput: true,
		Dependencies: hold, Pools: hold}
}

// Events implements drms.Notifier: one event per ended job this backend
// watches (submitted, recovered or located by it).
func (b *Backend) Events() <-chan drms.Event { return b.events }

// SupervisorPID is the pid of the supervisor this backend is connected to
// (0 when disconnected).
func (b *Backend) SupervisorPID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cc == nil {
		return 0
	}
	return b.cc.pid
}

func handleOf(r Record) drms.Handle {
	id := strconv.Itoa(r.PID)
	if r.PID == 0 {
		id = "key:" + r.Key
	}
	st, _ := json.Marshal(handleState{Key: r.Key, PID: r.PID, Tick: r.Tick, Started: r.Started})
	return drms.Handle{Version: HandleVersion, ID: id, State: st}
}

func stateOf(r Record) drms.State {
	switch r.T {
	case recWait:
		return drms.State{Phase: drms.Queued}
	case recDropped:
		return drms.State{Phase: drms.Dropped}
	}
	st := drms.State{Phase: drms.Running, Started: unixTime(r.Started)}
	if r.ended() {
		st.Phase, st.Outcome = drms.Ended, r.Outcome()
		if r.T == recNoStart || r.T == recCancel {
			st.Started = time.Time{}
		}
	}
	return st
}

// watch records what the supervisor said of a job. id is the handle ID the
// engine knows ("" for the one this backend gave last): when the job's own
// ID differs (a held job, known by its key, got its pid when it started),
// the state carries the new handle. An outcome, once known, is final. With
// emit, a start, an end or a drop not reported yet is sent as an event.
func (b *Backend) watch(r Record, id string, emit bool) (drms.Handle, drms.State) {
	b.mu.Lock()
	j := b.jobs[r.Key]
	if j == nil {
		j = &cjob{key: r.Key}
		b.jobs[r.Key] = j
	}
	if !j.rec.ended() {
		j.rec = r
	}
	if id == "" {
		id = j.id
	}
	h, st := handleOf(j.rec), stateOf(j.rec)
	j.id = h.ID
	b.byID[h.ID] = r.Key
	if id != "" && id != h.ID {
		b.byID[id] = r.Key
		nh := h
		st.Handle = &nh
	} else {
		id = h.ID
	}
	var ev *drms.Event
	switch st.Phase {
	case drms.Running, drms.Ended, drms.Dropped:
		if emit && j.told != st.Phase && j.told != drms.Ended {
			j.told = st.Phase
			ev = &drms.Event{ID: id, State: st}
		}
	}
	b.mu.Unlock()
	if ev != nil {
		b.emit(*ev)
	}
	return h, st
}

// Submit asks the supervisor to start the attempt (key spec.Key()). The
// supervisor never starts a key twice: a key it already knows gives that
// job's handle back.
func (b *Backend) Submit(ctx context.Context, spec drms.JobSpec) (drms.Handle, error) {
	return b.submit(ctx, spec, nil)
}

// SubmitAfter implements drms.DependencySubmitter: the supervisor holds the
// job until every attempt in after exited 0, and cancels it (it ends
// aborted_before_running) when one did not.
func (b *Backend) SubmitAfter(ctx context.Context, spec drms.JobSpec, after []drms.Handle) (drms.Handle, error) {
	keys := make([]string, 0, len(after))
	for _, h := range after {
		key, _, ok := b.keyOf(h)
		if !ok {
			return drms.Handle{}, fmt.Errorf("supervisor: start %s after %q: not a supervised local job", spec.Key(), h.ID)
		}
		keys = append(keys, key)
	}
	return b.submit(ctx, spec, keys)
}

func (b *Backend) submit(ctx context.Context, spec drms.JobSpec, after []string) (drms.Handle, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	cc, err := b.conn(ctx)
	if err != nil {
		return drms.Handle{}, err
	}
	key := spec.Key()
	req := Request{Op: "start", Key: key, Job: &JobReq{Argv: spec.Argv, Env: spec.Env, Dir: spec.Dir,
		Stdin: spec.Stdin, Stdout: spec.Stdout, Stderr: spec.Stderr, Join: spec.Join,
		LazyStdout: spec.LazyStdout, LazyStderr: spec.LazyStderr,
		After: after, Pool: spec.Pool, Limit: spec.PoolLimit, Need: spec.PoolNeed,
		Priority: spec.Priority, Seq: spec.JobID}}
	// Watch the key before asking, so that an exit event that overtakes
	// this call's return is not ignored.
	b.mu.Lock()
	if j := b.jobs[key]; j == nil || j.rec.T == recDropped {
		// New, or dropped by a dead supervisor and submitted again: what
		// was said of it before (its key as handle) is forgotten.
		if j != nil {
			delete(b.byID, j.id)
		}
		b.jobs[key] = &cjob{key: key}
	}
	b.mu.Unlock()
	m, sent, err := b.call(ctx, cc, req)
	if err != nil || m.StartErr != "" || m.Err != "" || len(m.Jobs) != 1 {
		b.mu.Lock()
		if j := b.jobs[key]; j != nil && j.rec.T == "" {
			delete(b.jobs, key)
		}
		b.mu.Unlock()
	}
	switch {
	case err != nil && sent:
		return drms.Handle{}, fmt.Errorf("supervisor: start %s: %w (%v)", key, drms.ErrSubmitUncertain, err)
	case err != nil:
		return drms.Handle{}, fmt.Errorf("supervisor: start %s: %w: %v", key, drms.ErrUnavailable, err)
	case m.StartErr != "":
		return drms.Handle{}, &drms.StartError{Reason: m.StartErr}
	case m.Err != "":
		return drms.Handle{}, fmt.Errorf("supervisor: start %s: %s", key, m.Err)
	case len(m.Jobs) != 1:
		return drms.Handle{}, fmt.Errorf("supervisor: start %s: %w: bad reply", key, drms.ErrSubmitUncertain)
	}
	h, _ := b.watch(m.Jobs[0], "", true)
	return h, nil
}

// keyOf finds the attempt key of a handle.
func (b *Backend) keyOf(h drms.Handle) (key string, hs handleState, ok bool) {
	if h.Version == HandleVersion && json.Unmarshal(h.State, &hs) == nil && hs.Key != "" {
		return hs.Key, hs, true
	}
	b.mu.Lock()
	key, ok = b.byID[h.ID]
	b.mu.Unlock()
	return key, hs, ok
}

// Status implements drms.Backend: from what the supervisor pushed, and one
// call to it for the attempts this backend does not watch yet.
func (b *Backend) Status(ctx context.Context, hs []drms.Handle) (map[string]drms.State, error) {
	out := make(map[string]drms.State, len(hs))
	var ask []string
	idOf := map[string]string{}
	b.mu.Lock()
	for _, h := range hs {
		if key, ok := b.byID[h.ID]; ok {
			if j := b.jobs[key]; j != nil && j.rec.T != "" {
				out[h.ID] = stateOf(j.rec)
				continue
			}
		}
		var st handleState
		if h.Version == HandleVersion && json.Unmarshal(h.State, &st) == nil && st.Key != "" {
			ask = append(ask, st.Key)
			idOf[st.Key] = h.ID
		}
	}
	b.mu.Unlock()
	if len(ask) == 0 {
		return out, nil
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	cc, err := b.conn(ctx)
	if err != nil {
		return out, err
	}
	m, _, err := b.call(ctx, cc, Request{Op: "status", Keys: ask})
	if err == nil && m.Err != "" {
		err = errors.New(m.Err)
	}
	if err != nil {
		return out, fmt.Errorf("supervisor: status: %w: %v", drms.ErrUnavailable, err)
	}
	for _, r := range m.Jobs {
		if r.T == recUnknown {
			continue
		}
		_, st := b.watch(r, idOf[r.Key], false)
		out[idOf[r.Key]] = st
	}
	return out, nil
}

// Kill implements drms.Backend: SIGTERM to the job's process group, SIGKILL
// after the grace (the supervisor keeps the timer, even if the engine dies).
func (b *Backend) Kill(ctx context.Context, h drms.Handle) error {
	key, _, ok := b.keyOf(h)
	if !ok {
		return fmt.Errorf("supervisor: kill: handle %q is not a supervised local job", h.ID)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	cc, err := b.conn(ctx)
	if err != nil {
		return err
	}
	m, _, err := b.call(ctx, cc, Request{Op: "kill", Key: key, GraceMS: b.grace.Milliseconds()})
	if err == nil && m.Err != "" {
		err = errors.New(m.Err)
	}
	if err != nil {
		return fmt.Errorf("supervisor: kill %s: %w: %v", key, drms.ErrUnavailable, err)
	}
	return nil
}

// Recover implements drms.Backend: a running job is watched again; a job
// that ended while no engine was connected gets its real outcome. A handle
// the supervisor has no trace of (or one of the in-process local backend)
// ends exit_status_undetermined, its process group killed if it still runs.
func (b *Backend) Recover(ctx context.Context, h drms.Handle) (drms.State, error) {
	key, hs, ok := b.keyOf(h)
	if !ok {
		// A handle of the in-process local backend (`run`).
		return local.Orphan(h, "engine restarted while the job ran outside the supervisor; its exit status was lost with the engine",
			"engine restarted while the job ran outside the supervisor; the orphaned job was killed, its exit status is unknown"), nil
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	cc, err := b.conn(ctx)
	if err != nil {
		return drms.State{}, err
	}
	m, _, err := b.call(ctx, cc, Request{Op: "status", Keys: []string{key}})
	if err == nil && m.Err != "" {
		err = errors.New(m.Err)
	}
	if err == nil && len(m.Jobs) != 1 {
		err = errors.New("bad reply")
	}
	if err != nil {
		return drms.State{}, fmt.Errorf("supervisor: recover %s: %w: %v", key, drms.ErrUnavailable, err)
	}
	r := m.Jobs[0]
	if r.T == recUnknown {
		o := proc.Orphaned(hs.PID, hs.Tick, unixTime(hs.Started),
			"the supervisor has no record of the job (its journal was lost); its exit status is unknown",
			"the supervisor has no record of the job (its journal was lost); the job was killed, its exit status is unknown")
		return drms.State{Phase: drms.Ended, Started: o.Started, Outcome: o}, nil
	}
	_, st := b.watch(r, h.ID, false)
	return st, nil
}

// Locate implements drms.Locator: found when the supervisor knows the key;
// neverSubmitted when it can prove it never received it.
func (b *Backend) Locate(ctx context.Context, spec drms.JobSpec) (h drms.Handle, found, neverSubmitted bool, err error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	cc, err := b.conn(ctx)
	if err != nil {
		return h, false, false, err
	}
	m, _, err := b.call(ctx, cc, Request{Op: "locate", Key: spec.Key()})
	if err == nil && m.Err != "" {
		err = errors.New(m.Err)
	}
	if err == nil && len(m.Jobs) != 1 {
		err = errors.New("bad reply")
	}
	if err != nil {
		return h, false, false, fmt.Errorf("supervisor: locate %s: %w: %v", spec.Key(), drms.ErrUnavailable, err)
	}
	switch r := m.Jobs[0]; r.T {
	case recUnknown, recDropped:
		return h, false, true, nil
	case recUncertain:
		return h, false, false, nil
	default:
		h, _ = b.watch(r, "", false)
		return h, true, false, nil
	}
}

// Acknowledge implements drms.Acknowledger: the supervisor forgets these
// ended attempts (sent without waiting for an answer).
func (b *Backend) Acknowledge(ctx context.Context, hs []drms.Handle) error {
	var keys []string
	b.mu.Lock()
	for _, h := range hs {
		key, ok := b.byID[h.ID]
		if !ok {
			var st handleState
			if json.Unmarshal(h.State, &st) != nil || st.Key == "" {
				continue
			}
			key = st.Key
		}
		if j := b.jobs[key]; j != nil && !j.rec.ended() {
			continue // still running: nothing to forget
		}
		if j := b.jobs[key]; j != nil {
			delete(b.byID, j.id)
		}
		delete(b.jobs, key)
		delete(b.byID, h.ID)
		keys = append(keys, key)
	}
	cc := b.cc
	b.mu.Unlock()
	if len(keys) == 0 || cc == nil {
		return nil
	}
	return cc.send(Request{Op: "ack", Keys: keys})
}

// Close implements drms.Backend: the connection is closed; jobs keep
// running under the supervisor.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	cc := b.cc
	b.cc = nil
	b.mu.Unlock()
	close(b.done)
	if cc != nil {
		cc.c.Close()
	}
	return nil
}

// emit hands an event on without ever blocking the connection's reader:
// straight to the channel when it has room and nothing is queued, else
// through the queue that pump empties.
func (b *Backend) emit(ev drms.Event) {
	b.evMu.Lock()
	if len(b.evq) == 0 && !b.pumping {
		select {
		case b.events <- ev:
			b.evMu.Unlock()
			return
		default:
		}
	}
	b.evq = append(b.evq, ev)
	b.evMu.Unlock()
	select {
	case b.evWake <- struct{}{}:
	default:
	}
}

var (
	_ drms.Backend             = (*Backend)(nil)
	_ drms.Notifier            = (*Backend)(nil)
	_ drms.Locator             = (*Backend)(nil)
	_ drms.Acknowledger        = (*Backend)(nil)
	_ drms.DependencySubmitter = (*Backend)(nil)
)
