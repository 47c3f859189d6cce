// Package client is somaflow's Go API: soma-workflow's WorkflowController
// (submit, stop, restart and delete workflows; statuses of every element;
// job termination status; waits; expiration dates) and its Helper functions
// (list failed jobs, delete all workflows, serialize), in Go idioms.
//
// Open runs an engine in the calling process (the in-process mode of the
// design): jobs run as children of the program, nothing is re-executed, and
// the state lives in a state dir like the CLI's.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/supervisor"
	"github.com/somaflow/somaflow/engine"
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/privdir"
	"github.com/somaflow/somaflow/service"
	"github.com/somaflow/somaflow/store"
)

// Errors that callers test with errors.Is.
var (
	// ErrUnknownObject: no workflow or job has this id (soma-workflow's
	// UnknownObjectError).
	ErrUnknownObject = store.ErrNotFound
	// ErrTimeout: a wait ended before its workflow or jobs did.
	ErrTimeout = errors.New("timed out")
	// ErrInvalid: the workflow file or a request is malformed or refused.
	ErrInvalid = errors.New("invalid input")
	// ErrUnavailable: the database or the backend cannot be used.
	ErrUnavailable = errors.New("unavailable")
	// ErrEngineRunning: Open was asked for an engine in this process while
	// another engine (of this or another process, on this or another host)
	// holds the state dir. Open with NoEngine to use that engine instead.
	ErrEngineRunning = service.ErrEngineRunning
)

// DefaultExpiration is how long a workflow is kept after submission unless
// told otherwise (soma-workflow's default).
const DefaultExpiration = 7 * 24 * time.Hour

// Options configure Open.
type Options struct {
	// StateDir is the state dir (default: service.DefaultDir()).
	StateDir string
	// Backend is "local" (default), "slurm", "pbs", "drmaa", or a backend
	// of Registry.
	Backend string
	// SpoolDir, ExecPath and Settings are passed to batch backends.
	SpoolDir string
	ExecPath string
	Settings map[string]string
	// PollInterval paces the engine's backend polls (default 1 s).
	PollInterval time.Duration
	// Logger receives the engine's log (default: discarded).
	Logger *slog.Logger
	// NoEngine opens the state without running an engine in this process
	// (another process runs it); waits then watch the database.
	NoEngine bool
	// Idle makes the engine stop after this long with nothing to run
	// (0: never); EngineDone then reports it.
	Idle time.Duration
	// Registry opens backends by name (default NewRegistry(): the built-in
	// ones); a Go program adds its own backends to it (Registry.Register).
	Registry *Registry
	// Supervised runs local jobs under the state dir's supervisor process
	// (service mode: jobs outlive the engine) instead of as children of
	// this process; it needs ExecPath, the somaflow binary.
	Supervised bool
	// DiscardState says that the caller removes the state dir once the
	// client is closed (`somaflow run`'s private state): its database skips
	// the fsyncs of its creation and of its close (store.OpenOptions).
	DiscardState bool
}

// Client is an open connection to a state dir, with its engine.
type Client struct {
	st      *store.Store
	lock    *service.EngineLock
	eng     *engine.Engine
	be      drms.Backend
	backend string
	cancel  context.CancelFunc
	done    chan struct{} // closed when the engine returned
	engErr  error
}

// Open opens the state dir and, unless opts.NoEngine, starts an engine in
// this process. Close stops it. One engine runs per state dir: the engine
// takes the state dir's lock (recording host and pid, with a heartbeat for
// other hosts), and Open fails with ErrEngineRunning (and ErrUnavailable)
// when another engine holds it.
func Open(ctx context.Context, opts Options) (*Client, error) {
	dir := opts.StateDir
	if dir == "" {
		d, err := service.DefaultDir()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		dir = d
	}
	if opts.Backend == "" {
		opts.Backend = "local"
	}
	// The engine's lock is taken before the database is opened: a second
	// engine is refused without touching the state.
	var lock *service.EngineLock
	var open func(string, drms.Config) (drms.Backend, error)
	var cfg drms.Config
	var early chan openedBackend // the backend opening with the database
	if !opts.NoEngine {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("%w: state dir %q: %v", ErrInvalid, dir, err)
		}
		if lock, err = lockEngine(abs); err != nil {
			return nil, err
		}
		cfg = backendConfig(abs, opts)
		reg := opts.Registry
		if reg == nil {
			reg = builtin
		}
		open = reg.Open
		if opts.Supervised {
			open = reg.openSupervised
		}
		// The backend opens while the database does: in the service mode,
		// that may start the supervisor, a process of its own, which
		// neither waits for the other. Not in a state dir that is not the
		// user's own and private (store.Open says why), nor before the
		// database exists: the supervisor's files would make a new
		// database look like a lost one.
		if store.Exists(abs) && privdir.Ensure(abs) == nil {
			early = make(chan openedBackend, 1)
			go func() {
				be, err := open(opts.Backend, cfg)
				early <- openedBackend{be, err}
			}()
		}
	}
	st, err := store.OpenWith(ctx, dir, store.OpenOptions{Discard: opts.DiscardState})
	if err != nil {
		if early != nil {
			if o := <-early; o.be != nil {
				o.be.Close()
			}
		}
		lock.Unlock()
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	c := &Client{st: st, lock: lock, backend: opts.Backend}
	if opts.NoEngine {
		return c, nil
	}
	var be drms.Backend
	if early != nil {
		o := <-early
		be, err = o.be, o.err
	} else {
		be, err = open(opts.Backend, cfg)
	}
	if err != nil {
		c.lock.Unlock()
		st.Close()
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c.be = be
	c.eng = engine.New(st, be, engine.Options{
		PollInterval: opts.PollInterval, Logger: logger, Failpoint: os.Getenv("SOMAFLOW_FAILPOINT"),
		Idle:        opts.Idle,
		OpenBackend: func(name string) (drms.Backend, error) { return open(name, cfg) },
		OnProblem: func(p *engine.Problem) {
			var sp *service.Problem
			if p != nil {
				sp = &service.Problem{Since: p.Since, Message: p.Message}
			}
			if err := lock.SetProblem(sp); err != nil {
				logger.Warn("record the engine's problem in its lock file", "err", err)
			}
		},
	})
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		c.engErr = c.eng.Run(ectx)
		close(c.done)
	}()
	go func() {
		tick := time.NewTicker(service.HeartbeatPeriod)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				c.lock.Heartbeat()
			case <-c.done:
				return
			}
		}
	}()
	return c, nil
}

// backendConfig is the configuration of the backends of an engine of opts
// on the state dir abs.
func backendConfig(abs string, opts Options) drms.Config {
	return drms.Config{
		StateDir: abs, SpoolDir: opts.SpoolDir, ExecPath: opts.ExecPath, Settings: opts.Settings,
		EngineTag: engine.TagFor(abs),
	}
}

// StartSupervisor starts the supervisor that a service-mode engine of opts
// (Supervised) would start for local jobs, unless it runs, and returns once
// it is ready. submit calls it while the engine it started starts, so that
// the two processes start side by side. Other backends start nothing.
func StartSupervisor(ctx context.Context, opts Options) error {
	if opts.Backend != "" && opts.Backend != "local" {
		return nil
	}
	abs, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return fmt.Errorf("%w: state dir %q: %v", ErrInvalid, opts.StateDir, err)
	}
	if !store.Exists(abs) {
		return nil // see Open
	}
	return supervisor.Start(ctx, backendConfig(abs, opts))
}

// openedBackend is a backend opened, or why not.
type openedBackend struct {
	be  drms.Backend
	err error
}

// lockEngine takes the state dir's engine lock for an engine of this
// process. An engine on another host is seen by its heartbeat, since flock
// may not reach across hosts on a network filesystem.
func lockEngine(dir string) (*service.EngineLock, error) {
	if other, info := service.OtherHost(dir); other {
		return nil, fmt.Errorf("%w: %w (on another host: %s)", ErrUnavailable, ErrEngineRunning, info)
	}
	lock, err := service.Lock(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return lock, nil
}

// OnNetworkFS tells whether the state dir is on a network filesystem
// (then SQLite's rollback journal is used instead of WAL).
func (c *Client) OnNetworkFS() bool { return c.st.NetworkFS }

// StateDir is the absolute state dir of the client.
func (c *Client) StateDir() string { return c.st.Dir }

// SchemaVersion is the version of the database schema this build writes.
const SchemaVersion = store.SchemaVersion

// Backend is the name of the backend new workflows of this client run on.
func (c *Client) Backend() string { return c.backend }

// EngineDone is closed when the in-process engine stopped by itself (idle)
// or failed (EngineErr tells); nil without an engine.
func (c *Client) EngineDone() <-chan struct{} { return c.done }

// EngineErr is the in-process engine's error once EngineDone is closed.
func (c *Client) EngineErr() error { return c.engErr }

// Close stops the engine (jobs still running are left alone) and closes the
// database.
func (c *Client) Close() error {
	var err error
	if c.cancel != nil {
		c.cancel()
		<-c.done
		err = c.engErr
		c.cancel = nil
		c.eng.Close()
		c.be.Close()
		c.lock.Unlock()
	}
	if cerr := c.st.Close(); err == nil {
		err = cerr
	}
	return err
}

// SubmitOptions are soma-workflow's submit_workflow arguments.
type SubmitOptions struct {
	// Name is the stored workflow name; empty keeps the file's name (unlike
	// soma-workflow, which stores null without this argument).
	Name string
	// Queue is the DRMS queue (partition).
	Queue string
	// Expiration is when the workflow is removed; zero means 7 days from now.
	Expiration time.Time
	// MaxJobs limits the jobs running at once; 0 = the backend's default.
	MaxJobs int
	// Format of the submitted file ("soma" or "native"), kept for export.
	Format string
	// Cwd and Environ are the submitter's working directory and environment;
	// the current process's when empty.
	Cwd     string
	Environ []string
	// TranslationFiles translate the workflow's shared resource paths
	// (soma-workflow's PATH_TRANSLATION_FILES entries, namespace{file}):
	// they are read at submission, and the translated paths stored with the
	// workflow. A workflow with a shared resource path is refused when
	// its namespace or uuid has no translation.
	TranslationFiles []string
	// StageTransfers copies the workflow's file transfers into the state
	// dir's transfer dir: jobs use the copies, and wait until their input
	// transfers are done (TransferInputFiles); outputs come back with
	// TransferOutputFiles. Without it (soma-workflow's light mode on this
	// machine) jobs use the client paths and nothing is copied.
	StageTransfers bool
}

// SubmitWorkflow validates a workflow and stores it in one transaction (a
// refused workflow leaves nothing behind); the engine then runs it. It
// returns the workflow id. It is NewSubmission then Submit.
func (c *Client) SubmitWorkflow(ctx context.Context, w *model.Workflow, opts SubmitOptions) (int64, error) {
	sub, err := NewSubmission(w, opts)
	if err != nil {
		return 0, err
	}
	return c.Submit(ctx, sub)
}

// Submission is a workflow checked for submission, with what is stored
// along with it (the submitter's working directory and environment, its
// expiration date): NewSubmission makes one, Client.Submit stores it.
type Submission struct {
	nw store.NewWorkflow
}

// NewSubmission validates a workflow for submission with opts, without
// storing anything: the error (ErrInvalid) names what is wrong. The
// submitter's working directory and environment (when opts does not give
// them) are the current process's, read now.
func NewSubmission(w *model.Workflow, opts SubmitOptions) (*Submission, error) {
	if w == nil {
		return nil, fmt.Errorf("%w: no workflow", ErrInvalid)
	}
	shared, err := check(w, opts.TranslationFiles)
	if err != nil {
		return nil, err
	}
	exp := opts.Expiration
	if exp.IsZero() {
		exp = time.Now().Add(DefaultExpiration)
	} else if !exp.After(time.Now()) {
		return nil, fmt.Errorf("%w: expiration date %s is in the past", ErrInvalid, exp.Format(time.RFC3339))
	}
	if opts.MaxJobs < 0 {
		return nil, fmt.Errorf("%w: max jobs must be positive, got %d", ErrInvalid, opts.MaxJobs)
	}
	cwd := opts.Cwd
	if cwd == "" {
		var err error
		if cwd, err = os.Getwd(); err != nil {
			return nil, fmt.Errorf("%w: working directory: %v", ErrInvalid, err)
		}
	}
	env := opts.Environ
	if env == nil {
		env = os.Environ()
	}
	name := w.Name
	if opts.Name != "" {
		name = &opts.Name
	}
	return &Submission{nw: store.NewWorkflow{
		Def: w, Format: opts.Format, Name: name, Queue: opts.Queue,
		MaxJobs: opts.MaxJobs, Expiration: exp, Cwd: cwd, Environ: env, SharedPaths: shared,
		StageTransfers: opts.StageTransfers,
	}}, nil
}

// Submit stores a submission in one transaction, to run on the client's
// backend, and returns the workflow id; the engine then runs it.
func (c *Client) Submit(ctx context.Context, sub *Submission) (int64, error) {
	nw := sub.nw
	nw.Backend = c.backend
	id, err := c.st.CreateWorkflow(ctx, nw)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	c.wake()
	return id, nil
}

// Check validates a workflow and checks that this machine can run it with
// no shared-path translation; the error (ErrInvalid) names every offending
// job and field. CheckTranslated checks with translation files.
func Check(w *model.Workflow) error {
	_, err := check(w, nil)
	return err
}

// CheckTranslated is Check with the resource's translation files
// (namespace{file} entries): a shared resource path whose namespace or
// uuid they do not translate is refused, naming the job, namespace and uuid.
func CheckTranslated(w *model.Workflow, translationFiles []string) error {
	_, err := check(w, translationFiles)
	return err
}

// check validates w and returns the engine-side base of each of its shared
// resource paths (by index), translated through the files given.
func check(w *model.Workflow, translationFiles []string) ([]string, error) {
	if err := w.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var tr *Translations
	if len(w.SharedPaths) > 0 && len(translationFiles) > 0 {
		var err error
		if tr, err = LoadTranslations(translationFiles); err != nil {
			return nil, err
		}
	}
	shared, err := runnable(w, tr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return shared, nil
}

// runnable refuses, naming the job, what this machine cannot run: a
// shared resource path needs its namespace and uuid translated. It returns
// the translation of every shared path ("" for one no job uses).
func runnable(w *model.Workflow, tr *Translations) ([]string, error) {
	var problems []string
	if w.EnvBuilderCode != "" {
		if _, err := engine.FindPython(os.Environ()); err != nil {
			problems = append(problems, err.Error())
		}
	}
	var shared []string
	seen := map[string]bool{}
	if len(w.SharedPaths) > 0 {
		shared = make([]string, len(w.SharedPaths))
	}
	for i, j := range w.Jobs {
		refs := append(append([]model.Arg(nil), j.Command...), j.ReferencedInputFiles...)
		refs = append(refs, j.ReferencedOutputFiles...)
		for _, p := range []*model.Arg{j.Stdin, j.StdoutFile, j.StderrFile, j.WorkingDirectory, j.InputParamsFile, j.OutputParamsFile} {
			if p != nil {
				refs = append(refs, *p)
			}
		}
		refs = append(refs, paramRefs(w, j)...)
		for _, a := range flatten(refs) {
			if (a.Kind == model.ArgPath || a.Kind == model.ArgPathIn) && a.Path.Kind == model.SharedPath {
				if a.Path.Index < 0 || a.Path.Index >= len(w.SharedPaths) {
					continue // Validate reports it
				}
				p, err := tr.Translate(w.SharedPaths[a.Path.Index])
				if err != nil {
					msg := fmt.Sprintf("job %q: %v", w.JobLabel(i), err)
					if !seen[msg] {
						seen[msg] = true
						problems = append(problems, msg)
					}
					continue
				}
				shared[a.Path.Index] = p
			}
		}
	}
	// Shared paths reached only through option paths or parameters are
	// translated too when they can be; the engine refuses them at run time
	// otherwise.
	for i, sp := range w.SharedPaths {
		if shared[i] == "" {
			if p, err := tr.Translate(sp); err == nil {
				shared[i] = p
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, errors.New(joinLines(problems))
	}
	return shared, nil
}

// paramRefs lists the special paths a job's parameters reference.
func paramRefs(w *model.Workflow, j *model.Job) []model.Arg {
	var out []model.Arg
	for _, v := range j.ParamDict {
		for _, id := range model.PathIDsIn(v) {
			if r, ok := w.PathRefByID(id); ok {
				out = append(out, model.Arg{Kind: model.ArgPath, Path: r})
			}
		}
	}
	return out
}

func flatten(args []model.Arg) []model.Arg {
	var out []model.Arg
	for _, a := range args {
		out = append(out, a)
		if a.Kind == model.ArgList {
			out = append(out, flatten(a.List)...)
		}
	}
	return out
}

func joinLines(s []string) string {
	out := ""
	for i, l := range s {
		if i > 0 {
			out += "\n"
		}
		out += l
	}
	return out
}

func (c *Client) wake() {
	if c.eng != nil {
		c.eng.Wake()
		return
	}
	engine.NotifyWake(c.st.Dir)
}

// Workflow returns the definition of a stored workflow.
func (c *Client) Workflow(ctx context.Context, id int64) (*model.Workflow, error) {
	row, err := c.st.GetWorkflow(ctx, id, true)
	if err != nil {
		return nil, err
	}
	return store.LoadDefinition(row)
}

// WorkflowInfo is one line of Workflows: soma-workflow's (name, expiration).
type WorkflowInfo struct {
	ID         int64
	Name       *string
	Status     string
	Backend    string
	Queue      string
	Submitted  time.Time
	Expiration time.Time
}

// Workflows lists the workflows of the state dir; with ids, only those (an
// unknown id is an error).
func (c *Client) Workflows(ctx context.Context, ids ...int64) ([]WorkflowInfo, error) {
	rows, err := c.st.ListWorkflows(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	want := map[int64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []WorkflowInfo
	for _, r := range rows {
		if len(ids) > 0 && !want[r.ID] {
			continue
		}
		delete(want, r.ID)
		out = append(out, WorkflowInfo{ID: r.ID, Name: r.Name, Status: r.Status, Backend: r.Backend, Queue: r.Queue, Submitted: r.Submitted, Expiration: r.Expiration})
	}
	for id := range want {
		return nil, fmt.Errorf("workflow %d: %w", id, ErrUnknownObject)
	}
	return out, nil
}

// JobInfo is soma-workflow's jobs() entry: name, command, submission date.
type JobInfo struct {
	ID         int64
	WorkflowID int64
	Name       string
	Command    []string
	Submitted  *time.Time
}

// Jobs returns name, command and submission date of jobs by id.
func (c *Client) Jobs(ctx context.Context, ids ...int64) ([]JobInfo, error) {
	out := make([]JobInfo, 0, len(ids))
	defs := map[int64]*model.Workflow{}
	for _, id := range ids {
		j, err := c.st.GetJob(ctx, id)
		if err != nil {
			return nil, err
		}
		def := defs[j.WorkflowID]
		if def == nil {
			if def, err = c.Workflow(ctx, j.WorkflowID); err != nil {
				return nil, err
			}
			defs[j.WorkflowID] = def
		}
		out = append(out, JobInfo{ID: j.ID, WorkflowID: j.WorkflowID, Name: j.Name, Command: commandText(def, j.Index), Submitted: j.Submitted})
	}
	return out, nil
}

// JobPlace tells which workflow a job belongs to and its index in that
// workflow's definition (Workflow(ctx, workflowID).Jobs[index]), reading
// the job's row only: a page about one job of a big workflow needs no scan
// of the others.
func (c *Client) JobPlace(ctx context.Context, jobID int64) (workflowID int64, index int, err error) {
	j, err := c.st.GetJob(ctx, jobID)
	if err != nil {
		return 0, 0, err
	}
	return j.WorkflowID, j.Index, nil
}

// WorkflowCwd is the working directory the workflow was submitted from:
// where its jobs start unless they name their own.
func (c *Client) WorkflowCwd(ctx context.Context, id int64) (string, error) {
	row, err := c.st.GetWorkflow(ctx, id, false)
	if err != nil {
		return "", err
	}
	return row.Cwd, nil
}

func commandText(def *model.Workflow, idx int) []string {
	mj := def.Jobs[idx]
	if mj.Shell != "" {
		return []string{"/bin/sh", "-c", mj.Shell}
	}
	out := make([]string, len(mj.Command))
	for i, a := range mj.Command {
		out[i] = a.Value
	}
	return out
}

// WorkflowStatus returns the workflow's status string.
func (c *Client) WorkflowStatus(ctx context.Context, id int64) (string, error) {
	row, err := c.st.GetWorkflow(ctx, id, false)
	if err != nil {
		return "", err
	}
	return row.Status, nil
}

// JobStatus returns a job's status string.
func (c *Client) JobStatus(ctx context.Context, jobID int64) (string, error) {
	j, err := c.st.GetJob(ctx, jobID)
	if err != nil {
		return "", err
	}
	return j.Status, nil
}

// JobTerminationStatus returns how a job ended (soma-workflow's
// job_termination_status plus reason and resource usage).
func (c *Client) JobTerminationStatus(ctx context.Context, jobID int64) (*JobDoc, error) {
	j, err := c.st.GetJob(ctx, jobID)
	if err != nil {
		return nil, err
	}
	d := jobDoc(j)
	return &d, nil
}

// StopWorkflow stops a workflow, as soma-workflow's stop_workflow: running
// jobs are killed (killed_by_user), queued and unstarted ones removed
// (aborted_before_running). It returns once that is done, true when none of
// the workflow's jobs may still run; false when some may: no engine runs to
// carry the stop out (it will when one starts), or ctx ended first (its
// error is returned too). RequestStop returns at once instead.
func (c *Client) StopWorkflow(ctx context.Context, id int64) (bool, error) {
	if err := c.RequestStop(ctx, id); err != nil {
		return false, err
	}
	return c.waitCarriedOut(ctx, id)
}

// RequestStop records a stop for the engine to carry out and returns.
func (c *Client) RequestStop(ctx context.Context, id int64) error {
	return c.intent(ctx, id, store.IntentStop, false, "")
}

// waitCarriedOut waits until the workflow's intents are carried out and it
// is done: true then; false when no engine runs to do it.
func (c *Client) waitCarriedOut(ctx context.Context, id int64) (bool, error) {
	gone := false
	err := c.waitUntil(ctx, -1, true, func() (bool, error) {
		n, err := c.st.PendingIntents(ctx, id) // first: see WaitWorkflow
		if err != nil {
			return false, err
		}
		st, err := c.WorkflowStatus(ctx, id)
		if err != nil || (n == 0 && st == model.WorkflowDone) {
			return true, err
		}
		gone = !c.EngineAlive()
		return gone, nil
	})
	return err == nil && !gone, err
}

// EngineAlive tells whether an engine runs for the state dir: this
// client's own, or another process's (its lock, or a recent heartbeat from
// another host).
func (c *Client) EngineAlive() bool {
	if c.done != nil {
		select {
		case <-c.done:
			return false
		default:
			return true
		}
	}
	if running, _ := service.Running(c.st.Dir); running {
		return true
	}
	other, _ := service.OtherHost(c.st.Dir)
	return other
}

// RestartWorkflow re-queues every job that did not succeed (attempt + 1),
// as soma-workflow's restart_workflow: only a workflow that is done
// (workflow_done) can be restarted (ErrInvalid otherwise); queue, when not
// empty, is the queue its jobs go to from now on. It returns whether any
// job is restarted (false: every job succeeded, nothing is done).
func (c *Client) RestartWorkflow(ctx context.Context, id int64, queue string) (bool, error) {
	st, err := c.WorkflowStatus(ctx, id)
	if err != nil {
		return false, err
	}
	if n, err := c.st.PendingIntents(ctx, id); err != nil {
		return false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	} else if st != model.WorkflowDone || n > 0 {
		if st == model.WorkflowDone {
			st = "still carrying out an earlier request"
		}
		return false, fmt.Errorf("%w: workflow %d is %s: only a workflow that is done (%s) can be restarted; stop it first", ErrInvalid, id, st, model.WorkflowDone)
	}
	n, err := c.st.CountUnsucceeded(ctx, id)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if n == 0 {
		return false, nil
	}
	return true, c.intent(ctx, id, store.IntentRestart, false, queue)
}

// DeleteWorkflow kills the workflow's jobs and removes it, as
// soma-workflow's delete_workflow. Without force it returns once the delete
// is recorded (true); the engine removes the workflow when its jobs are
// killed. With force it blocks until the workflow is removed: the engine
// removes it once it sent the kills, without waiting for them to be
// confirmed; when no engine runs it is removed from the database here, and
// false is returned if some of its jobs may still run.
func (c *Client) DeleteWorkflow(ctx context.Context, id int64, force bool) (bool, error) {
	if err := c.intent(ctx, id, store.IntentDelete, force, ""); err != nil {
		return false, err
	}
	if !force {
		return true, nil
	}
	engine := true
	err := c.waitUntil(ctx, -1, true, func() (bool, error) {
		_, err := c.st.GetWorkflow(ctx, id, false)
		if errors.Is(err, store.ErrNotFound) {
			return true, nil
		}
		engine = c.EngineAlive()
		return !engine, err
	})
	if err != nil {
		return false, err
	}
	if engine {
		return true, nil // removed by the engine, which sent the kills
	}
	active, err := c.activeJobs(ctx, id)
	if err != nil {
		return false, err
	}
	if err := c.st.RemoveWorkflow(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return active == 0, nil
}

// WaitDeleted waits until the engine removed a workflow whose delete was
// requested (DeleteWorkflow without force).
func (c *Client) WaitDeleted(ctx context.Context, id int64) error {
	return c.waitUntil(ctx, -1, true, func() (bool, error) {
		_, err := c.st.GetWorkflow(ctx, id, false)
		if errors.Is(err, store.ErrNotFound) {
			return true, nil
		}
		return false, err
	})
}

// activeJobs counts the jobs of a workflow submitted and not ended: those
// that may run at the DRMS.
func (c *Client) activeJobs(ctx context.Context, id int64) (int, error) {
	counts, _, err := c.st.CountJobs(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	n := 0
	for _, o := range counts {
		if !model.JobEnded(o.Status) && o.Status != model.JobNotSubmitted {
			n += o.N
		}
	}
	return n, nil
}

// DeleteAllWorkflows deletes every workflow of the state dir, as the
// Helper's delete_all_workflows: true when each delete returned true.
func (c *Client) DeleteAllWorkflows(ctx context.Context, force bool) (bool, error) {
	ws, err := c.Workflows(ctx)
	if err != nil {
		return false, err
	}
	all := true
	for _, w := range ws {
		ok, err := c.DeleteWorkflow(ctx, w.ID, force)
		if err != nil && !errors.Is(err, ErrUnknownObject) {
			return false, err
		}
		all = all && (ok || err != nil)
	}
	return all, nil
}

func (c *Client) intent(ctx context.Context, id int64, kind string, force bool, queue string) error {
	if err := c.st.AddIntentQueue(ctx, id, kind, force, queue); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	c.wake()
	return nil
}

// ChangeWorkflowExpirationDate sets a new expiration date; a date in the
// past is refused (soma-workflow returns False).
func (c *Client) ChangeWorkflowExpirationDate(ctx context.Context, id int64, t time.Time) error {
	if !t.After(time.Now()) {
		return fmt.Errorf("%w: expiration date %s is in the past", ErrInvalid, t.Format(time.RFC3339))
	}
	if err := c.st.SetExpiration(ctx, id, t); err != nil {
		return err
	}
	c.wake()
	return nil
}

// WaitWorkflow waits until the workflow is done. timeout < 0 waits forever;
// ErrTimeout when it runs out; ctx cancels.
func (c *Client) WaitWorkflow(ctx context.Context, id int64, timeout time.Duration) error {
	return c.waitUntil(ctx, timeout, true, func() (bool, error) {
		// A restart the engine has not carried out yet makes it not done.
		// Intents are read first: the engine deletes one in the same
		// transaction that changes the status, so a status read after
		// seeing none pending is the status after them.
		if n, err := c.st.PendingIntents(ctx, id); err != nil || n > 0 {
			return false, err
		}
		st, err := c.WorkflowStatus(ctx, id)
		return err == nil && st == model.WorkflowDone, err
	})
}

// WaitJob waits until every job of jobIDs ended (done or failed).
func (c *Client) WaitJob(ctx context.Context, jobIDs []int64, timeout time.Duration) error {
	return c.waitUntil(ctx, timeout, false, func() (bool, error) {
		for _, id := range jobIDs {
			st, err := c.JobStatus(ctx, id)
			if err != nil {
				return false, err
			}
			if !model.JobEnded(st) {
				return false, nil
			}
		}
		return true, nil
	})
}

// waitUntil re-checks cond after each engine commit (in-process; with
// workflows, only after commits that change a workflow itself) or each
// change of the database (another process's engine), never on a fixed sleep.
func (c *Client) waitUntil(ctx context.Context, timeout time.Duration, workflows bool, cond func() (bool, error)) error {
	var deadline <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	watch, stop := c.changes(workflows)
	defer stop()
	for {
		next := watch()
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return ErrTimeout
		case <-next:
		}
	}
}

// ListFailedOptions select what ListFailedJobs reports (soma-workflow's
// Helper.list_failed_jobs arguments).
type ListFailedOptions struct {
	// IncludeAborted also lists failed jobs that never ran (aborted,
	// aborted_before_running).
	IncludeAborted bool
	// IncludeUserKilled also lists jobs killed by the user.
	IncludeUserKilled bool
	// ExitStatuses, when set, lists the failed jobs with exactly these exit
	// statuses (the two flags are then ignored).
	ExitStatuses []string
}

// ListFailedJobs returns the ids of the jobs of a workflow that did not
// succeed, as soma-workflow's Helper.list_failed_jobs: every job that is
// done with an exit value other than 0 (or none: killed by a signal), and
// the failed jobs whose exit status opts includes (by default all but
// killed_by_user, aborted and aborted_before_running).
func (c *Client) ListFailedJobs(ctx context.Context, id int64, opts ListFailedOptions) ([]int64, error) {
	if _, err := c.st.GetWorkflow(ctx, id, false); err != nil {
		return nil, err
	}
	// soma-workflow's Helper.list_failed_jobs: a job that is done with an
	// exit value other than 0 (a signal has none), whatever its exit
	// status; or a failed job whose exit status is included: every one but
	// killed_by_user, aborted and aborted_before_running unless asked, or
	// exactly ExitStatuses when given.
	include := map[string]bool{}
	if len(opts.ExitStatuses) > 0 {
		for _, s := range opts.ExitStatuses {
			include[s] = true
		}
	} else {
		for _, s := range model.ExitStatuses {
			include[s] = true
		}
		include[model.ExitKilledByUser] = opts.IncludeUserKilled
		include[model.ExitAborted] = opts.IncludeAborted
		include[model.ExitAbortedBefore] = opts.IncludeAborted
	}
	// Only the jobs that did not succeed are read: a million-job
	// workflow's rows are not held, nor read.
	var out []int64
	err := c.st.EachUnsuccessfulJob(ctx, id, func(j *store.Job) error {
		done := j.Status == model.JobDone && (j.ExitValue == nil || *j.ExitValue != 0)
		if done || (j.Status == model.JobFailed && include[deref(j.ExitStatus)]) {
			out = append(out, j.ID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return out, nil
}

// Serialize writes a workflow in soma-workflow's JSON (model.FormatSoma) or
// the native format.
func Serialize(w *model.Workflow, format model.Format) ([]byte, error) {
	switch format {
	case model.FormatSoma, "":
		return model.EncodeSoma(w)
	case model.FormatNative:
		return model.EncodeNative(w)
	}
	return nil, fmt.Errorf("%w: unknown format %q (soma or native)", ErrInvalid, format)
}

// Unserialize reads a workflow file in either format (detected).
func Unserialize(data []byte) (*model.Workflow, model.Format, error) {
	w, f, err := model.Decode(data)
	if err != nil {
		return nil, f, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return w, f, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
