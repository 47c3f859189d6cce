// Package engine is somaflow's scheduling loop. It is level-triggered: each
// cycle reads the desired state (workflows and intents in the store) and the
// observed state (backend events and statuses), acts on the difference, and
// records every change of the cycle in one transaction. A restart is just
// another cycle: the engine reloads what it owned and re-attaches to its jobs.
//
// Submission follows "intent before action": the engine commits "job X,
// attempt N, about to be submitted" before calling Submit, and the handle
// after (in the next commit).
package engine

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/store"
)

// Options configure an Engine.
type Options struct {
	// StateDir holds logs, parameter files and temporary paths.
	StateDir string
	// PollInterval paces Status calls and store scans (default 1 s).
	PollInterval time.Duration
	// Failpoint names a point where the engine exits the process (tests).
	Failpoint string
	// Logger receives the engine's log (default slog.Default()).
	Logger *slog.Logger
	// OpenBackend opens the backend a workflow names when it is not the
	// engine's default one; nil means only the default backend exists.
	OpenBackend func(name string) (drms.Backend, error)
	// Idle makes Run return after this long with no workflow to run
	// (0: never).
	Idle time.Duration
	// OnProblem is told when the engine cannot record its progress (a
	// commit or a scan fails: a full disk, a read-only filesystem), and
	// again with nil once it can. The engine retries with back-off
	// meanwhile; nothing is submitted until its intent is recorded.
	OnProblem func(*store.EngineProblem)
}

// backendRun is one backend the engine drives, with its active handles.
type backendRun struct {
	name    string
	be      drms.Backend
	caps    drms.Capabilities
	handles map[string]*job
	events  <-chan drms.Event

	// retryAt holds this backend's submissions back after it refused or
	// could not be reached; down says since when and why (nil: it
	// answers). downDirty: down changed since the last commit.
	retryAt   time.Time
	down      *store.BackendProblem
	downDirty bool
}

// Engine runs workflows stored in a store on one backend.
type Engine struct {
	st   *store.Store
	def  *backendRun
	opts Options
	tag  string
	log  *slog.Logger

	wake chan struct{}

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced after each commit
	wfChanged chan struct{} // the same, after commits that touch a workflow

	runs     map[int64]*wfRun
	backends map[string]*backendRun
	extra    chan taggedEvent // events of backends other than the default
	dirty    []*job
	dirtyWf  map[*wfRun]bool
	removed  []int64 // workflows to delete in the next commit
	intents  []int64 // processed intents to delete in the next commit
	toKill   []*job
	lastScan time.Time
	acks     map[*backendRun][]drms.Handle
	fpHits   int
	deferred bool // changes wait for the next commit (see settle)

	// problem is set while the store cannot be written (or read); nothing
	// new is submitted before retryAt, when the commit is tried again.
	problem    *store.EngineProblem
	retryAt    time.Time
	retryDelay time.Duration
	// clearBackends: earlier engines' backend problems are still to be
	// cleared (with the next commit).
	clearBackends bool
}

type taggedEvent struct {
	b  *backendRun
	ev drms.Event
}

type wfRun struct {
	b       *backendRun
	row     *store.Workflow
	def     *model.Workflow
	g       *graph
	jobs    []*job
	linksTo map[int][]model.ParamLink
	baseEnv []string

	remaining []int32
	state     []uint8
	ready     readyHeap
	running   int
	maxJobs   int
	unended   int
	stopping  bool
	deleting  bool
	force     bool

	tempPaths []string

	// preds and early serve dependencies handed to the DRMS
	// (Capabilities.Dependencies): predecessors of each node, and nodes to
	// check for early submission.
	preds [][]int32
	early []int32
}

// Node states.
const (
	nWaiting uint8 = iota
	nReady
	nActive // submitted, not ended
	nSucceeded
	nFailed
)

type job struct {
	// row points into the workflow's slice of rows, read in one piece.
	row   *store.Job
	w     *wfRun
	dirty bool
	// after holds the handles of the dependencies still running at the
	// DRMS when the job is submitted early (DependencySubmitter).
	after []drms.Handle
}

// New returns an engine for the store and backend. tag identifies this
// engine's jobs at the DRMS; it is derived from the state dir when empty.
func New(st *store.Store, be drms.Backend, opts Options) *Engine {
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.StateDir == "" {
		opts.StateDir = st.Dir
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Engine{
		st: st, opts: opts, tag: TagFor(st.Dir), log: opts.Logger,
		wake: make(chan struct{}, 1), changed: make(chan struct{}), wfChanged: make(chan struct{}),
		runs: map[int64]*wfRun{}, backends: map[string]*backendRun{}, dirtyWf: map[*wfRun]bool{},
		extra: make(chan taggedEvent, 1024),
	}
	e.def = e.addBackend(be)
	return e
}

func (e *Engine) addBackend(be drms.Backend) *backendRun {
	b := &backendRun{be: be, caps: be.Capabilities(), handles: map[string]*job{}}
	b.name = b.caps.Name
	if n, ok := be.(drms.Notifier); ok {
		b.events = n.Events()
	}
	e.backends[b.name] = b
	return b
}

// backendFor returns the backend a workflow runs on, opening it if needed.
func (e *Engine) backendFor(name string) (*backendRun, error) {
	if name == "" {
		return e.def, nil
	}
	if b := e.backends[name]; b != nil {
		return b, nil
	}
	if e.opts.OpenBackend == nil {
		return nil, fmt.Errorf("backend %q is not available to this engine", name)
	}
	be, err := e.opts.OpenBackend(name)
	if err != nil {
		return nil, err
	}
	b := e.addBackend(be)
	e.backends[name] = b
	if b.events != nil {
		go func() {
			for ev := range b.events {
				e.extra <- taggedEvent{b, ev}
			}
		}()
	}
	return b, nil
}

// Close closes every backend the engine opened besides the default one.
func (e *Engine) Close() {
	for _, b := range e.backends {
		if b != e.def {
			b.be.Close()
		}
	}
}

// TagFor is the engine tag of a state dir: 8 hex digits of its path's hash,
// put in DRMS job names so that engines never touch each other's jobs.
func TagFor(stateDir string) string { return drms.EngineTag(stateDir) }

// Tag is the engine tag put in DRMS job names.
func (e *Engine) Tag() string { return e.tag }

// Wake asks the engine to scan the store now (new workflow, new intent).
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Changed returns a channel closed at the engine's next commit.
func (e *Engine) Changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

// WorkflowsChanged returns a channel closed at the engine's next commit
// that changes a workflow itself: its status or end, its removal, or an
// intent carried out. Waiting for a workflow's end wakes on these only, not
// on every job's.
func (e *Engine) WorkflowsChanged() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.wfChanged
}

// notify wakes the waiters of Changed (and of WorkflowsChanged when wf).
func (e *Engine) notify(wf bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	close(e.changed)
	e.changed = make(chan struct{})
	if wf {
		close(e.wfChanged)
		e.wfChanged = make(chan struct{})
	}
}

// Run runs the engine until ctx is cancelled. It recovers the work of an
// earlier engine first. Running jobs are left running when it returns.
func (e *Engine) Run(ctx context.Context) error {
	// A cycle in progress finishes even when ctx is cancelled: what it
	// submitted is committed before Run returns.
	stop := ctx
	ctx = context.WithoutCancel(ctx)
	events := e.def.events
	idleSince := time.Now()
	// What an earlier engine saw of the backends is not this one's view:
	// cleared with the first commit.
	e.clearBackends = true
	defer func() {
		if err := e.st.ClearBackendProblems(ctx); err != nil {
			e.log.Warn("clear backend problems", "err", err)
		}
	}()
	// The state dir held open: its inode cannot be reused for another
	// directory while the engine runs, and once removed it has no links.
	dirF, err := os.Open(e.st.Dir)
	if err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	defer dirF.Close()
	e.listenWake(e.st.Dir)
	if err := e.scan(ctx, true); err != nil {
		return err
	}
	e.settle(ctx)
	tick := time.NewTicker(e.opts.PollInterval)
	defer tick.Stop()
	flush := time.NewTimer(FlushDelay)
	defer flush.Stop()
	for {
		var evs []taggedEvent
		scanNow := false
		var flushC <-chan time.Time
		switch {
		case e.problem != nil:
			flush.Reset(time.Until(e.retryAt))
			flushC = flush.C
		case e.deferred:
			flush.Reset(FlushDelay)
			flushC = flush.C
		}
		select {
		case <-stop.Done():
			return e.commit(ctx)
		case <-flushC:
		case ev := <-events:
			evs = append(evs, taggedEvent{e.def, ev})
		case ev := <-e.extra:
			evs = append(evs, ev)
		case <-e.wake:
			scanNow = true
		case <-tick.C:
			if err := sameDir(dirF, e.st.Dir); err != nil {
				// Removed (or replaced) under us: another engine may start on
				// the new one; this one must not go on writing to a database
				// nobody sees. Jobs are left alone: nothing here can account
				// for them any more.
				e.log.Error("state dir removed or replaced: engine exits", "dir", e.st.Dir, "err", err)
				return fmt.Errorf("%w: %s", ErrStateDirGone, e.st.Dir)
			}
			scanNow = true
			e.poll(ctx)
			if err := e.st.Checkpoint(ctx); err != nil {
				e.log.Warn("checkpoint", "err", err)
			}
			if len(e.runs) > 0 {
				idleSince = time.Now()
			} else if e.opts.Idle > 0 && time.Since(idleSince) >= e.opts.Idle {
				e.log.Info("idle: engine exits", "idle", e.opts.Idle)
				return nil
			}
		}
		evs = e.drain(evs)
		e.applyEvents(evs)
		if scanNow && e.problem == nil {
			if err := e.scan(ctx, false); err != nil {
				e.trouble(fmt.Errorf("scan: %w", err))
			}
		}
		e.settle(ctx)
	}
}

// ErrStateDirGone ends Run when the state dir was removed or replaced.
var ErrStateDirGone = errors.New("state dir removed or replaced under the engine")

// sameDir tells whether the directory open as f is still the one at path:
// not removed (it would have no links) nor replaced (another inode there).
func sameDir(f *os.File, path string) error {
	var held, now syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &held); err != nil {
		return err
	}
	if held.Nlink == 0 {
		return errors.New("removed")
	}
	if err := syscall.Stat(path, &now); err != nil {
		return err
	}
	if now.Dev != held.Dev || now.Ino != held.Ino {
		return errors.New("replaced by another directory")
	}
	return nil
}

// drain adds every event already waiting to evs.
func (e *Engine) drain(evs []taggedEvent) []taggedEvent {
	for {
		select {
		case ev := <-e.def.events:
			evs = append(evs, taggedEvent{e.def, ev})
		case ev := <-e.extra:
			evs = append(evs, ev)
		default:
			return evs
		}
	}
}

// settle schedules, commits and submits until nothing more can happen
// without an outside event. While the store cannot be written, it waits
// for the retry time and submits nothing.
func (e *Engine) settle(ctx context.Context) {
	submitted := false
	for {
		if e.problem != nil && time.Now().Before(e.retryAt) {
			return
		}
		subs := e.schedule()
		if len(subs) == 0 && len(e.toKill) == 0 {
			if submitted {
				// The handles just received are committed with the next
				// cycle's changes (typically the outcome of a job that ends
				// a moment later), at the latest after FlushDelay: their
				// intents are durable, so a crash before that costs a
				// lookup (Locator), never a job.
				e.deferred = true
				return
			}
			e.tryCommit(ctx)
			return
		}
		submitted = true
		if !e.tryCommit(ctx) {
			// Their intents are not recorded: they are not submitted.
			for _, j := range subs {
				e.requeue(j)
			}
			return
		}
		e.failpoint("after-intent-commit")
		e.kill(ctx)
		e.submit(ctx, subs)
		e.failpoint("after-submit")
		// Jobs that ended meanwhile are handled in the same loop, so the
		// handles just received are committed with their outcomes.
		e.applyEvents(e.drain(nil))
	}
}

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
	if free, ok := freeSpace(e.st.Dir); ok && free < lowSpace {
		msg = fmt.Sprintf("the filesystem of %s is full (%d KiB free): %s", e.st.Dir, free/1024, msg)
	}
	if e.problem != nil && e.problem.Message == msg {
		return
	}
	e.log.Error("cannot record progress; retrying", "err", msg, "retry_in", e.retryDelay)
	since := time.Now()
	if e.problem != nil {
		since = e.problem.Since
	}
	e.problem = &store.EngineProblem{Since: since, Message: msg}
	if e.opts.OnProblem != nil {
		e.opts.OnProblem(e.problem)
	}
	e.notify(false)
}

// RetryMax bounds the delay between two tries to write the store.
const RetryMax = 5 * time.Second

// lowSpace is the free space under which a filesystem is called full.
const lowSpace = 1 << 20

// freeSpace returns the bytes an unprivileged user may still write on the
// filesystem of dir.
func freeSpace(dir string) (uint64, bool) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return 0, false
	}
	return fs.Bavail * uint64(fs.Bsize), true
}

// FlushDelay bounds how long handles of submitted jobs wait for the next
// commit.
const FlushDelay = 20 * time.Millisecond

// Failpoints are the named points where tests make the engine exit, so
// that every window between two durable steps is hit on purpose.
var Failpoints = []string{"after-intent-commit", "after-submit", "after-job-exit", "before-commit"}

// failpoint exits the process (status 99) at the named point when
// Options.Failpoint names it: "name" exits the first time, "name:N" the
// Nth time.
func (e *Engine) failpoint(name string) {
	if e.opts.Failpoint == "" {
		return
	}
	fp, nth, _ := strings.Cut(e.opts.Failpoint, ":")
	if fp != name {
		return
	}
	n := 1
	if nth != "" {
		n, _ = strconv.Atoi(nth)
	}
	e.fpHits++
	if e.fpHits >= n {
		e.log.Warn("failpoint reached: exiting", "failpoint", name, "hit", e.fpHits)
		os.Exit(99)
	}
}

// scan loads new workflows, applies intents and sweeps expired workflows.
func (e *Engine) scan(ctx context.Context, startup bool) error {
	now := time.Now()
	e.lastScan = now
	rows, err := e.st.WorkflowsToLoad(ctx, startup)
	if err != nil {
		return err
	}
	for i := range rows {
		if _, ok := e.runs[rows[i].ID]; ok {
			continue
		}
		if err := e.load(ctx, &rows[i]); err != nil {
			e.log.Error("cannot load workflow", "workflow", rows[i].ID, "err", err)
		}
	}
	intents, err := e.st.Intents(ctx)
	if err != nil {
		return err
	}
	for _, in := range intents {
		w, err := e.ensureLoaded(ctx, in.WorkflowID)
		if err != nil {
			e.log.Error("cannot load workflow", "workflow", in.WorkflowID, "err", err)
		}
		if w != nil {
			switch in.Kind {
			case store.IntentStop:
				e.stop(w)
			case store.IntentRestart:
				if in.Queue != "" && in.Queue != w.row.Queue {
					w.row.Queue = in.Queue
					e.dirtyWf[w] = true
				}
				e.restart(w)
			case store.IntentDelete:
				w.deleting, w.force = true, w.force || in.Force
				e.stop(w)
			}
		}
		e.intents = append(e.intents, in.ID)
	}
	// Expired workflows are removed (also at start, so that an engine that
	// was not running catches up).
	expired, err := e.st.ExpiredWorkflows(ctx, now)
	if err != nil {
		return err
	}
	for _, id := range expired {
		w, err := e.ensureLoaded(ctx, id)
		if err != nil || w == nil {
			e.removed = append(e.removed, id)
			continue
		}
		w.deleting, w.force = true, true
		e.stop(w)
	}
	for _, w := range e.runs {
		e.maybeFinish(w)
	}
	return nil
}

func (e *Engine) ensureLoaded(ctx context.Context, id int64) (*wfRun, error) {
	if w := e.runs[id]; w != nil {
		return w, nil
	}
	row, err := e.st.GetWorkflow(ctx, id, true)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := e.load(ctx, row); err != nil {
		return nil, err
	}
	return e.runs[id], nil
}

// load takes a workflow in hand: builds its graph from the definition, its
// node states from the stored jobs, and re-attaches to submitted jobs.
func (e *Engine) load(ctx context.Context, row *store.Workflow) error {
	if row.Definition == nil {
		full, err := e.st.GetWorkflow(ctx, row.ID, true)
		if err != nil {
			return err
		}
		row = full
	}
	def, err := store.LoadDefinition(row)
	if err != nil {
		return err
	}
	rows, err := e.st.Jobs(ctx, row.ID)
	if err != nil {
		return err
	}
	if len(rows) != len(def.Jobs) {
		return fmt.Errorf("workflow %d: %d stored jobs for %d in its definition", row.ID, len(rows), len(def.Jobs))
	}
	b, err := e.backendFor(row.Backend)
	if err != nil {
		return e.refuse(ctx, row, fmt.Sprintf("backend %q cannot be used: %v", row.Backend, err))
	}
	w := &wfRun{b: b, row: row, def: def, g: buildGraph(def), linksTo: map[int][]model.ParamLink{}}
	w.maxJobs = row.MaxJobs
	if w.maxJobs <= 0 {
		w.maxJobs = b.caps.MaxJobsDefault
	}
	for _, l := range def.ParamLinks {
		w.linksTo[l.Dest] = append(w.linksTo[l.Dest], l)
	}
	env := environ(row)
	if def.EnvBuilderCode != "" {
		built, err := buildEnv(ctx, def.EnvBuilderCode, env, row.Cwd)
		if err != nil {
			return e.refuse(ctx, row, "env_builder_code: "+err.Error())
		}
		env = appendEnv(env, built) // below the workflow's env and the jobs'
	}
	w.baseEnv = drms.MergeEnv(appendEnv(env, def.Env))
	// The decoded definition is all the engine needs: the stored text (tens
	// of megabytes for 100,000 jobs) is not kept for the workflow's life,
	// nor the dependencies and groups, which the graph holds, nor the
	// parameter links, which linksTo holds.
	row.Definition, row.Edges, row.Environ = nil, nil, nil
	def.Dependencies, def.Groups, def.Root, def.ParamLinks = nil, nil, nil, nil
	// One allocation for every job, pointing at the rows as read (no
	// copy of them).
	js := make([]job, len(rows))
	w.jobs = make([]*job, len(rows))
	for i := range rows {
		js[i] = job{row: &rows[i], w: w}
		w.jobs[i] = &js[i]
	}
	e.runs[row.ID] = w
	if !row.Loaded {
		row.Loaded = true
		e.dirtyWf[w] = true
	}
	if err := e.makeTempPaths(w); err != nil {
		e.log.Warn("temporary paths", "workflow", row.ID, "err", err)
	}
	// Attempts whose intent was committed but not their handle are looked
	// for first (a crash between the two commits).
	for _, j := range w.jobs {
		if model.JobEnded(j.row.Status) || j.row.Status == model.JobNotSubmitted || j.row.DRMSID != "" {
			continue
		}
		h, found, never := e.locate(ctx, w, j)
		switch {
		case found:
			e.setHandle(j, h)
		case never:
			j.row.Status = model.JobNotSubmitted
			j.row.Attempt--
			e.markDirty(j)
		default:
			e.endRow(j, lostIntent())
		}
	}
	e.rebuild(w)
	// Re-attach to submitted attempts.
	for _, j := range w.jobs {
		if w.state[j.row.Index] != nActive || j.row.DRMSID == "" {
			continue
		}
		h := handleOf(j)
		b.handles[h.ID] = j
		st, err := b.be.Recover(ctx, h)
		if err != nil {
			e.log.Warn("recover job", "job", j.row.ID, "err", err)
			continue
		}
		e.observe(j, st)
	}
	return nil
}

func lostIntent() *drms.Outcome {
	return drms.Undetermined("the engine stopped between the submission intent and its confirmation; the DRMS cannot tell whether the job was submitted")
}

// refuse ends every job of a workflow that cannot run at all (its backend
// is unavailable in this build), naming why, and marks it done.
func (e *Engine) refuse(ctx context.Context, row *store.Workflow, reason string) error {
	e.log.Error("workflow cannot run", "workflow", row.ID, "reason", reason)
	defer e.notify(true)
	return e.st.RefuseWorkflow(ctx, row.ID, reason, time.Now())
}

// locate looks for an attempt whose submission intent was recorded but not
// its handle: found at the DRMS, or proved never submitted, or neither.
func (e *Engine) locate(ctx context.Context, w *wfRun, j *job) (h drms.Handle, found, never bool) {
	loc, ok := w.b.be.(drms.Locator)
	if !ok {
		return h, false, false
	}
	spec, _, err := e.buildSpec(w, j)
	if err != nil {
		return h, false, false
	}
	h, found, never, err = loc.Locate(ctx, spec)
	if err != nil {
		e.log.Warn("locate job", "job", j.row.ID, "err", err)
		return h, false, false
	}
	return h, found, never
}

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
// the ready queue, marked early.
func (e *Engine) queueEarly(w *wfRun) {
	if len(w.early) == 0 {
		return
	}
	for _, v := range w.early {
		if w.state[v] != nWaiting {
			continue
		}
		if _, ok := e.earlyAfter(w, int(v)); ok {
			w.set(int(v), nReady)
			heap.Push(&w.ready, readyItem{prio: w.def.Jobs[v].Priority, idx: v, early: true})
		}
	}
	w.early = w.early[:0]
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
		case w.state[p] == nSucceeded:
		case w.state[p] == nActive && w.jobs[p].row.DRMSID != "" && !w.jobs[p].row.KillIntent:
			after = append(after, handleOf(w.jobs[p]))
		default:
			return nil, false
		}
	}
	return after, len(after) > 0
}

// rebuild derives every node's state from the jobs' stored statuses and
// converges: ready jobs queued, barriers passed, failures propagated.
func (e *Engine) rebuild(w *wfRun) {
	n := w.g.nodes()
	w.state = make([]uint8, n) // every node waiting: every job unended
	w.remaining = make([]int32, n)
	w.ready = w.ready[:0]
	w.running, w.unended = 0, len(w.jobs)
	for i, j := range w.jobs {
		switch {
		case model.JobEnded(j.row.Status):
			if succeeded(j) {
				w.set(i, nSucceeded)
				w.forget(i)
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
				w.remaining[s]--
				if w.remaining[s] == 0 {
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
			w.set(v, nReady)
			heap.Push(&w.ready, readyItem{prio: w.def.Jobs[v].Priority, idx: int32(v)})
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
			w.remaining[s]--
			if w.remaining[s] == 0 && !w.stopping {
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

// schedule picks ready jobs in priority order up to each workflow's limit,
// records the submission intent (attempt+1, submission_pending) and returns
// them; the caller commits before submitting.
func (e *Engine) schedule() []*job {
	var subs []*job
	now := time.Now()
	for _, w := range e.runs {
		if w.stopping || now.Before(w.b.retryAt) {
			continue
		}
		e.queueEarly(w)
		for w.ready.Len() > 0 && (w.maxJobs <= 0 || w.running < w.maxJobs) {
			it := heap.Pop(&w.ready).(readyItem)
			v := int(it.idx)
			if w.state[v] != nReady {
				continue
			}
			j := w.jobs[v]
			j.after = nil
			if it.early && w.remaining[v] > 0 {
				after, ok := e.earlyAfter(w, v)
				if !ok {
					w.set(v, nWaiting) // no longer eligible: waits as usual
					continue
				}
				j.after = after
			}
			w.set(v, nActive)
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
			if w.b.caps.Queues || len(j.after) > 0 {
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
	h, found, never := e.locate(ctx, j.w, j)
	switch {
	case found:
		e.setHandle(j, h)
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
		heap.Push(&w.ready, readyItem{prio: w.def.Jobs[v].Priority, idx: int32(v)})
	}
	e.markDirty(j)
}

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
				if j.row.Status == model.JobSubmissionPending && j.row.DRMSID == "" {
					// Not submitted yet (its submission is skipped).
					e.endJob(j, abortedBefore())
					continue
				}
				j.row.Status = model.JobKillPending
				e.markDirty(j)
				e.toKill = append(e.toKill, j)
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

// poll asks each backend for the state of its active jobs: one Status
// call per backend per cycle, however many jobs.
func (e *Engine) poll(ctx context.Context) {
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
	switch s.Phase {
	case drms.Ended:
		e.finish(j, s.Outcome)
		return
	case drms.Running, drms.Suspended:
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
	delete(w.b.handles, j.row.DRMSID)
	if _, ok := w.b.be.(drms.Acknowledger); ok && j.row.DRMSID != "" {
		if e.acks == nil {
			e.acks = map[*backendRun][]drms.Handle{}
		}
		e.acks[w.b] = append(e.acks[w.b], handleOf(j))
	}
	e.end(j, o)
	if w.state[v] == nSucceeded {
		w.forget(v)
		for _, s := range w.g.succ[v] {
			w.remaining[s]--
			if w.remaining[s] == 0 && !w.stopping {
				e.makeReady(w, int(s))
			}
		}
	} else {
		e.abortFrom(w, v)
	}
	e.maybeFinish(w)
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

// endJob ends a job that was waiting, ready or active: its row takes the
// outcome and its node, by set, the state that outcome means. With set, it
// is where a job's row status, its node's state and the workflow's
// counters change together.
func (e *Engine) endJob(j *job, o *drms.Outcome) {
	e.endRow(j, o)
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
	w.running += isActive(s) - isActive(old)
	w.unended += isUnended(s) - isUnended(old)
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

func (e *Engine) markDirty(j *job) {
	if !j.dirty {
		j.dirty = true
		e.dirty = append(e.dirty, j)
	}
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

// commit writes every change since the last commit in one transaction.
func (e *Engine) commit(ctx context.Context) error {
	e.deferred = false
	backends := e.backendChanges()
	if len(e.dirty) == 0 && len(e.dirtyWf) == 0 && len(e.removed) == 0 && len(e.intents) == 0 && len(backends) == 0 && !e.clearBackends {
		return nil
	}
	e.failpoint("before-commit")
	removed := map[int64]bool{}
	for _, id := range e.removed {
		removed[id] = true
	}
	b := &store.Batch{DoneIntents: e.intents, Removed: e.removed, Backends: backends, ClearBackends: e.clearBackends}
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
	}
	for _, br := range e.backends {
		br.downDirty = false
	}
	wfTouched := len(e.dirtyWf) > 0 || len(e.removed) > 0 || len(e.intents) > 0 || len(backends) > 0
	for id := range removed {
		for _, d := range []string{e.logDir(id), e.paramDir(id), e.tmpDir(id)} {
			os.RemoveAll(d)
		}
	}
	e.dirty = e.dirty[:0]
	clear(e.dirtyWf)
	e.removed = e.removed[:0]
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

// makeTempPaths creates the workflow's temporary paths in the state dir.
func (e *Engine) makeTempPaths(w *wfRun) error {
	if len(w.def.TempPaths) == 0 {
		return nil
	}
	dir := e.tmpDir(w.row.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	w.tempPaths = make([]string, len(w.def.TempPaths))
	for i, tp := range w.def.TempPaths {
		p := filepath.Join(dir, fmt.Sprintf("tmp%d%s", i, tp.Suffix))
		w.tempPaths[i] = p
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if tp.IsDirectory {
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
		} else if err := os.WriteFile(p, nil, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) removeTempPaths(w *wfRun) {
	if len(w.def.TempPaths) > 0 {
		os.RemoveAll(e.tmpDir(w.row.ID))
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
func (h *readyHeap) Push(x any)   { *h = append(*h, x.(readyItem)) }
func (h *readyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
