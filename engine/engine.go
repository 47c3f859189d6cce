// Package engine is somaflow's scheduling loop.
//
// The engine owns the workflows of one state dir. It reads the desired
// state from the store when it starts, when a command wakes it, and once
// per poll interval (new workflows, intents: stop, restart, delete; expired
// workflows): that part is level-triggered, and a restart is just another
// start, which reloads what the engine owned and re-attaches to its jobs.
// Between two reads it is edge-triggered in memory: a backend event (a
// job's end) updates the job and its graph at once, makes its dependants
// ready and submits them in the same cycle; each cycle's changes are
// committed in one transaction.
//
// Submission follows "intent before action": the engine commits "job X,
// attempt N, about to be submitted" before calling Submit, and the handle
// after (in the next commit); nothing is submitted while the store cannot
// be written (see commit.go).
//
// Files: engine.go (the loop), load.go (loading and recovery), submit.go,
// events.go (what backends report), propagate.go (the graph's state),
// intents.go, commit.go, spec.go (a job's command, files and environment),
// customjobs.go and envbuilder.go (jobs the engine runs itself).
package engine

import (
	"context"
	"encoding/binary"
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
	"github.com/somaflow/somaflow/privdir"
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
	OnProblem func(*Problem)
}

// backendRun is one backend the engine drives, with its active handles.
type backendRun struct {
	name    string
	be      drms.Backend
	caps    drms.Capabilities
	handles map[string]*job
	events  <-chan drms.Event
	// slots bounds the jobs active on this backend across the workflows
	// without a --max-jobs of their own (Capabilities.MaxJobsDefault; 0:
	// no bound).
	slots int

	// retryAt holds this backend's submissions back after it refused or
	// could not be reached; down says since when and why (nil: it
	// answers). downDirty: down changed since the last commit.
	retryAt   time.Time
	down      *store.BackendProblem
	downDirty bool
}

// Problem is what keeps the engine from recording its progress (its
// store cannot be written: a full disk), since when.
type Problem struct {
	Since   time.Time
	Message string
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
	hint      *os.File      // WorkflowsChangedFile, written with wfChanged (nil: none)
	hintSeq   uint64

	runs     map[int64]*wfRun
	backends map[string]*backendRun
	extra    chan taggedEvent // events of backends other than the default
	dirty    []*job
	dirtyWf  map[*wfRun]bool
	removed  []int64 // workflows to delete in the next commit
	// outputsReady are output transfers made transferable, for the next commit.
	outputsReady []store.TransferRef
	intents      []int64 // processed intents to delete in the next commit
	toKill       []*job
	relocate     []*job // jobs to Locate again (job.relocating)
	lastScan     time.Time
	acks         map[*backendRun][]drms.Handle
	fpHits       int
	deferred     bool // changes wait for the next commit (see settle)
	deferredAt   time.Time

	// problem is set while the store cannot be written (or read); nothing
	// new is submitted before retryAt, when the commit is tried again.
	problem    *Problem
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
	b   *backendRun
	row *store.Workflow
	// def is the definition as store.LoadDefinitionShared gives it: its
	// jobs have no Name (the rows have them), and jobs that differ only by
	// their names share one *model.Job, never to be modified.
	def     *model.Workflow
	g       *graph
	jobs    []*job
	linksTo map[int][]model.ParamLink
	baseEnv []string

	remaining []int32
	state     []uint8
	ready     readyHeap
	running   int
	slotsUsed int // the backend slots its active jobs take (need)
	// waitJobs and waitSlots count the active jobs whose dependencies
	// still run (submitted early and held by the backend), and the slots
	// they will take; they are part of running and slotsUsed (see
	// mayStart).
	waitJobs  int
	waitSlots int
	maxJobs   int
	unended   int
	stopping  bool
	deleting  bool
	force     bool

	tempPaths []string
	// tr holds its file transfers (transfers.go).
	tr transferState
	// sharedPaths are the translated shared resource paths (by index; ""
	// when not translated), from the submission.
	sharedPaths []string

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
	// timedOut: the engine killed the attempt at its walltime.
	timedOut bool
	// unsent is what the row said before this attempt was handed to a
	// backend that may hold it (Capabilities.Pools), until it starts: an
	// attempt that ends without ever starting there is shown as never
	// submitted, as it would have been without the hold.
	unsent *unsent
	// slim: the job succeeded and its row was saved, then slimmed (see
	// slimRow): it is never saved again.
	slim bool
	// relocating: its submission's outcome is not known (an intent without
	// a handle, or an uncertain submission) and the backend could not be
	// asked where it is: asked again at each poll (Engine.relocate).
	relocating bool
}

// unsent is the part of a job's row that a submission changes.
type unsent struct {
	attempt        int
	submitted      *time.Time
	stdout, stderr string
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
	b.name, b.slots = b.caps.Name, b.caps.MaxJobsDefault
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

// WorkflowsChangedFile is a file in the state dir that the engine writes
// to after each commit that changes a workflow itself (when it closes the
// channel of WorkflowsChanged): clients of other processes that wait for a
// workflow watch it (inotify) instead of every write to the database, which
// changes at each job's end. It is a hint: what it holds means nothing, and
// the database stays the truth.
const WorkflowsChangedFile = "workflows.changed"

// notify wakes the waiters of Changed (and of WorkflowsChanged when wf).
func (e *Engine) notify(wf bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	close(e.changed)
	e.changed = make(chan struct{})
	if wf {
		close(e.wfChanged)
		e.wfChanged = make(chan struct{})
		if e.hint != nil {
			e.hintSeq++
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], e.hintSeq)
			if _, err := e.hint.WriteAt(b[:], 0); err != nil {
				e.log.Warn("workflows changed: hint file", "err", err)
				e.hint.Close()
				e.hint = nil // waiters in other processes fall back on their tick
			}
		}
	}
}

// openHint opens WorkflowsChangedFile (made if needed; private) for
// notify, until the returned function closes it.
func (e *Engine) openHint() (closeHint func()) {
	f, err := privdir.OpenFile(filepath.Join(e.st.Dir, WorkflowsChangedFile), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		e.log.Warn("no workflows-changed hint: waiters in other processes look at each database change", "err", err)
		return func() {}
	}
	e.mu.Lock()
	e.hint = f
	e.mu.Unlock()
	return func() {
		e.mu.Lock()
		if e.hint != nil {
			e.hint.Close()
			e.hint = nil
		}
		e.mu.Unlock()
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
	defer e.listenWake(e.st.Dir)()
	defer e.openHint()()
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
			flush.Reset(time.Until(e.deferredAt.Add(FlushDelay)))
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
				return e.commit(ctx)
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
			if submitted || e.mayDefer() {
				// The handles just received are committed with the next
				// cycle's changes (typically the outcome of a job that ends
				// a moment later), at the latest FlushDelay after the
				// first change that waits: their intents are durable, so
				// a crash before that costs a lookup (Locator), never a
				// job. So are outcomes and starts that their backend keeps
				// until acknowledged (mayDefer).
				if !e.deferred {
					e.deferred, e.deferredAt = true, time.Now()
				}
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
