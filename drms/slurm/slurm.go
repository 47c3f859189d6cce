// Package slurm is the Slurm backend: every job attempt is a batch script in
// the spool dir that `exec`s `somaflow exec-job`, submitted with
// `sbatch --parsable`; Status makes ONE `squeue -u USER` call for all the
// attempts it is asked about, whatever their number, and reads outcomes by
// design.md's precedence: the exec-job status file, then Slurm's record
// (sacct when accounting is configured, else `scontrol show job`), which
// also gives the reason (time limit, memory limit, cancelled outside
// somaflow, node failure...). A job that Slurm forgot (MinJobAge) is read
// from its status file; nothing anywhere gives exit_status_undetermined.
//
// Settings (drms.Config.Settings), all optional:
//
//	user             whose jobs squeue lists (default: the current user)
//	accounting       auto | yes | no: whether sacct can be used (default auto:
//	                 scontrol show config's AccountingStorageType)
//	command_timeout  bound on each squeue/scontrol/sacct/scancel call (default 60s)
//	submit_timeout   bound on each sbatch call (default 60s)
//	lookup_delay     pause before the second look-up of a timed-out sbatch (default 2s)
//	squeue_interval  how often Status asks squeue while exec-job's files
//	                 answer for every job (default 30s, at most half of
//	                 MinJobAge; 0: at every Status)
//	squeue_idle_interval
//	                 how often Status asks squeue while nothing is due: every
//	                 job asked about runs by its started file, within its
//	                 walltime, not killed by somaflow (default 5m; never less
//	                 than squeue_interval; without accounting at most half of
//	                 MinJobAge; 0: squeue_interval)
//	status_grace     how long a job that Slurm says ended may lack its status
//	                 file (network filesystem lag) before Slurm's record is used
//	                 instead (default 5s)
//	sbatch_options   extra sbatch options for every job, split like a shell line
//	arrays           true: SubmitArray puts the jobs of one engine cycle that
//	                 share workflow, partition, parallel info and native
//	                 specification into one job array (default false)
//	dependencies     true: SubmitAfter hands dependencies to Slurm
//	                 (--dependency=afterok, --kill-on-invalid-dep=yes) (default false)
package slurm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/batch"
	"github.com/somaflow/somaflow/model"
)

// HandleVersion is the version of the handles this package writes.
const HandleVersion = 1

// Backend runs jobs on Slurm. It is safe for concurrent use.
type Backend struct {
	cfg   drms.Config
	spool batch.Spool
	user  string

	cmdTimeout, submitTimeout, lookupDelay, grace time.Duration
	squeueEvery, squeueIdle                       time.Duration
	extraOpts                                     []string
	arrays, deps                                  bool

	mu         sync.Mutex
	noFileSeen map[string]time.Time // ended at Slurm, no status file yet: since when
	earlyRec   map[string]record    // Slurm's final record of such a job, read when first seen
	acct       *bool                // accounting configured (nil: not known yet)
	minJobAge  time.Duration
	configAt   time.Time                  // when Status last asked scontrol show config
	maxArray   int                        // MaxArraySize (0: not known yet)
	arrayIDs   map[string]arrayLookup     // array name -> id, for Locate after an uncertain SubmitArray
	lastQ      map[string]queueJob        // the last squeue listing (ours only)
	lastQAt    time.Time                  // when it was asked for
	recent     batch.Submissions          // job or array ids this backend submitted
	cmds       batch.Commands             // Slurm commands run, counted (for benchmarks)
	pace       batch.Pace                 // exec-job's files first, squeue paced
	handles    batch.Handles[handleState] // decoded once (fromFiles)
}

// handleState is the persisted part of a Slurm handle. Handle.ID is the
// Slurm job id, or ARRAYID_TASK for a task of a job array.
type handleState struct {
	// Name is the Slurm job name: the attempt's, or the array's for a task.
	Name    string `json:"name"`
	Status  string `json:"status"`
	Started string `json:"started"`
	Output  string `json:"output"`
	// Task is the array task id ("" for a plain job).
	Task string `json:"task,omitempty"`
	// Ended is an outcome known without Slurm: "refused" (sbatch refused
	// the job's array group) or "dependency" (a dependency handed to Slurm
	// had already failed); Reason says why.
	Ended  string `json:"ended,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Deps: submitted with dependencies handed to Slurm (SubmitAfter).
	Deps bool `json:"deps,omitempty"`
	// Limit is the job's walltime in seconds (0: none): past it, its
	// status file is overdue and squeue is asked at squeue_interval.
	Limit int64 `json:"limit,omitempty"`
}

// New returns a Slurm backend. It checks the configuration but does not
// contact Slurm (so that an engine starts while slurmctld is down).
func New(cfg drms.Config) (*Backend, error) {
	cfg, err := batch.CheckConfig("slurm", cfg)
	if err != nil {
		return nil, err
	}
	sp, err := batch.NewSpool(cfg)
	if err != nil {
		return nil, fmt.Errorf("slurm: %w", err)
	}
	b := &Backend{cfg: cfg, spool: sp, noFileSeen: map[string]time.Time{}, earlyRec: map[string]record{}, arrayIDs: map[string]arrayLookup{}}
	st := batch.Settings{Backend: "slurm", M: cfg.Settings}
	set := st.Get
	if err := st.Durations(
		map[string]*time.Duration{"command_timeout": &b.cmdTimeout, "submit_timeout": &b.submitTimeout, "lookup_delay": &b.lookupDelay, "status_grace": &b.grace, "squeue_interval": &b.squeueEvery, "squeue_idle_interval": &b.squeueIdle},
		map[string]time.Duration{"command_timeout": time.Minute, "submit_timeout": time.Minute, "lookup_delay": 2 * time.Second, "status_grace": 5 * time.Second, "squeue_interval": 30 * time.Second, "squeue_idle_interval": 5 * time.Minute},
	); err != nil {
		return nil, err
	}
	switch v := set("accounting"); v {
	case "", "auto":
	case "yes", "true", "no", "false":
		a := v == "yes" || v == "true"
		b.acct = &a
	default:
		return nil, fmt.Errorf("slurm: setting accounting=%q: want auto, yes or no", v)
	}
	if v := set("sbatch_options"); v != "" {
		if b.extraOpts, err = batch.SplitWords(v); err != nil {
			return nil, fmt.Errorf("slurm: setting sbatch_options: %w", err)
		}
	}
	if b.arrays, err = st.Bool("arrays"); err != nil {
		return nil, err
	}
	if b.deps, err = st.Bool("dependencies"); err != nil {
		return nil, err
	}
	b.user = set("user")
	if b.user == "" {
		u, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("slurm: current user: %w", err)
		}
		b.user = u.Username
	}
	return b, nil
}

// Capabilities implements drms.Backend.
func (b *Backend) Capabilities() drms.Capabilities {
	return drms.Capabilities{Name: "slurm", Queues: true, ExternalCancel: true, SystemFailures: true, SurvivesEngine: true,
		Arrays: b.arrays, Dependencies: b.deps, Walltime: true}
}

// Close implements drms.Backend; jobs keep running.
func (b *Backend) Close() error { return nil }

func (b *Backend) prefix() string { return "sf-" + b.cfg.EngineTag + "-" }

func (b *Backend) handle(id string, spec drms.JobSpec) drms.Handle {
	p := b.spool.Paths(spec)
	st, _ := json.Marshal(handleState{Name: spec.Name(), Status: p.Status, Started: p.Started, Output: p.Output, Limit: spec.Resources.Walltime})
	return drms.Handle{Version: HandleVersion, ID: id, State: st}
}

func decodeHandle(h drms.Handle) (handleState, error) {
	var st handleState
	if h.Version != HandleVersion {
		return st, fmt.Errorf("slurm: handle %s has version %d, want %d", h.ID, h.Version, HandleVersion)
	}
	if err := json.Unmarshal(h.State, &st); err != nil {
		return st, fmt.Errorf("slurm: handle %s: %w", h.ID, err)
	}
	return st, nil
}

// SbatchArgs is the sbatch command line (without "sbatch") for spec, whose
// batch script is at script and whose Slurm output goes to output.
func (b *Backend) SbatchArgs(spec drms.JobSpec, script, dir, output string) ([]string, error) {
	return b.sbatchArgs(spec, spec.Name(), script, dir, output, nil)
}

// sbatchArgs is SbatchArgs with another job name and extra options (an
// array, a dependency) before the site's and the job's own.
func (b *Backend) sbatchArgs(spec drms.JobSpec, name, script, dir, output string, extra []string) ([]string, error) {
	a := []string{"--parsable", "--job-name=" + name, "--export=ALL", "--chdir=" + dir, "--output=" + output}
	a = append(a, extra...)
	if spec.Queue != "" {
		a = append(a, "--partition="+spec.Queue)
	}
	if pj := spec.Parallel; pj != nil {
		nodes, cpus := pj.NodesNumber, pj.CPUPerNode
		if nodes < 1 {
			nodes = 1
		}
		if cpus < 1 {
			cpus = 1
		}
		a = append(a, "--nodes="+strconv.Itoa(nodes))
		if strings.Contains(strings.ToLower(pj.ConfigName), "openmp") {
			a = append(a, "--ntasks-per-node=1", "--cpus-per-task="+strconv.Itoa(cpus))
		} else {
			a = append(a, "--ntasks-per-node="+strconv.Itoa(cpus))
		}
	}
	a = append(a, ResourceOptions(spec.Resources)...)
	a = append(a, b.extraOpts...)
	return append(a, script), nil
}

// ResourceOptions are the sbatch options of a job's resources: CPUs per
// task, memory (per node, in megabytes), time limit (minutes, rounded
// up), GPUs (a generic resource).
func ResourceOptions(r model.Resources) []string {
	var a []string
	if r.CPUs > 0 {
		a = append(a, "--cpus-per-task="+strconv.Itoa(r.CPUs))
	}
	if r.MemoryMB > 0 {
		a = append(a, "--mem="+strconv.FormatInt(r.MemoryMB, 10)+"M")
	}
	if r.Walltime > 0 {
		a = append(a, "--time="+strconv.FormatInt((r.Walltime+59)/60, 10))
	}
	if r.GPUs > 0 {
		a = append(a, "--gres=gpu:"+strconv.Itoa(r.GPUs))
	}
	return a
}

// Directives turns a native specification into #SBATCH lines for the
// batch script. The native specification adds options; it never reaches
// sbatch's command line, where a word that is not an option would be taken
// for the script to run (`--comment=$(touch /x)` split into words made
// "/x)" the script). In a directive sbatch refuses such a word ("Invalid
// directive"), so nothing but our script can run. An option starts a
// directive and the words after it (its value: `-p short`) stay on its
// line; a word with a newline, a carriage return, a NUL or a double quote
// is refused, and a word with blanks or shell characters double-quoted.
func Directives(native []string) ([]string, error) {
	var lines []string
	for _, ns := range native {
		words, err := batch.SplitWords(ns)
		if err != nil {
			return nil, &drms.StartError{Reason: fmt.Sprintf("native specification %q: %v", ns, err)}
		}
		for _, w := range words {
			if strings.ContainsAny(w, "\n\r\x00\"") {
				return nil, &drms.StartError{Reason: fmt.Sprintf("native specification word %q: a newline, carriage return, NUL or double quote cannot be passed to sbatch", w)}
			}
			option := strings.HasPrefix(w, "-")
			if strings.IndexFunc(w, func(r rune) bool { return !isPlainWordRune(r) }) >= 0 {
				w = `"` + w + `"`
			}
			if option || len(lines) == 0 {
				lines = append(lines, "#SBATCH "+w)
			} else {
				lines[len(lines)-1] += " " + w
			}
		}
	}
	return lines, nil
}

func isPlainWordRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_=:,./@%+", r)
}

// Submit implements drms.Backend: it writes the batch script and the job's
// environment in the spool and runs sbatch. A refused job (bad partition,
// bad native specification) gives a *drms.StartError; an unreachable
// slurmctld an error wrapping drms.ErrUnavailable (nothing submitted); an
// sbatch that timed out or answered garbage is looked up by job name twice
// and, if not found, gives drms.ErrSubmitUncertain.
func (b *Backend) Submit(ctx context.Context, spec drms.JobSpec) (drms.Handle, error) {
	return b.submit(ctx, spec, nil)
}

// submit is Submit with extra sbatch options.
func (b *Backend) submit(ctx context.Context, spec drms.JobSpec, extra []string) (drms.Handle, error) {
	if len(spec.Argv) == 0 {
		return drms.Handle{}, &drms.StartError{Reason: "empty command"}
	}
	if spec.EngineTag != b.cfg.EngineTag {
		return drms.Handle{}, fmt.Errorf("slurm: job %s has engine tag %q, this backend %q", spec.Name(), spec.EngineTag, b.cfg.EngineTag)
	}
	p, err := b.spool.Prepare(spec)
	if err != nil {
		return drms.Handle{}, fmt.Errorf("slurm: %w", err)
	}
	dirs, err := Directives(spec.NativeSpec)
	if err != nil {
		return drms.Handle{}, err
	}
	header := append([]string{
		"# somaflow job " + spec.Name() + ": " + strings.ReplaceAll(spec.JobName, "\n", " "),
		"# Submitted with sbatch: options on its command line, the native specification below.",
	}, dirs...)
	if err := batch.WriteScript(p.Script, batch.Script(header, b.spool.ExecArgv(b.cfg.ExecPath, spec))); err != nil {
		return drms.Handle{}, fmt.Errorf("slurm: %w", err)
	}
	args, err := b.sbatchArgs(spec, spec.Name(), p.Script, p.Dir, p.Output, extra)
	if err != nil {
		return drms.Handle{}, err
	}
	out, stderr, err := b.cmds.Run(ctx, b.submitTimeout, sbatchEnv(), "sbatch", args...)
	if err == nil {
		id, _, _ := strings.Cut(strings.TrimSpace(out), ";") // "ID" or "ID;cluster"
		if isJobID(id) && !strings.Contains(id, "_") {
			b.submitted(id)
			return b.handle(id, spec), nil
		}
		err = fmt.Errorf("sbatch printed %q, not a job id", strings.TrimSpace(out))
	} else if !errors.Is(err, batch.ErrTimeout) && !batch.Signaled(err) {
		if isUnavailable(stderr) {
			return drms.Handle{}, fmt.Errorf("slurm: sbatch: %s: %w", batch.OneLine(stderr), drms.ErrUnavailable)
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Exited() {
			return drms.Handle{}, &drms.StartError{Reason: batch.Refusal("sbatch refused the job", ee, stderr)}
		}
		return drms.Handle{}, fmt.Errorf("slurm: sbatch: %w", err)
	}
	// Timed out, killed or garbage: the job may have reached slurmctld.
	// Look it up.
	for i := 0; i < 2; i++ {
		if i > 0 {
			select {
			case <-time.After(b.lookupDelay):
			case <-ctx.Done():
				return drms.Handle{}, fmt.Errorf("slurm: sbatch %s: %v: %w", spec.Name(), err, drms.ErrSubmitUncertain)
			}
		}
		if id, found, lerr := b.findByName(ctx, spec.Name(), false); lerr == nil && found {
			b.submitted(id)
			return b.handle(id, spec), nil
		}
	}
	return drms.Handle{}, fmt.Errorf("slurm: sbatch %s: %v; not found by name afterwards: %w", spec.Name(), err, drms.ErrSubmitUncertain)
}

// sbatchEnv is sbatch's environment: the job's own environment travels in
// the spool's env file, so sbatch gets only what it needs itself (PATH,
// HOME, locale, SLURM_CONF and the user's SBATCH_* defaults) and exports
// that to the batch script (--export=ALL, which unlike NONE does not run the
// user's login shell on the node for every job).
func sbatchEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH" || k == "HOME" || k == "USER" || k == "LOGNAME" || k == "LANG" || k == "TZ" || k == "SLURM_CONF",
			strings.HasPrefix(k, "LC_"), strings.HasPrefix(k, "SBATCH_"):
			env = append(env, kv)
		}
	}
	return env
}

// findByName looks a job up by its name in squeue (one call): a plain job,
// or with array an array (its array id); the newest wins.
func (b *Backend) findByName(ctx context.Context, name string, array bool) (string, bool, error) {
	out, stderr, err := b.cmds.Run(ctx, b.cmdTimeout, nil, "squeue", "-h", "-r", "-t", "all", "-u", b.user, "-n", name, "-o", squeueFormat)
	if err != nil {
		return "", false, b.cmdError("squeue", stderr, err)
	}
	jobs, _ := parseSqueue(out)
	best := ""
	for id, j := range jobs {
		if j.Name != name || (j.Array != "") != array {
			continue
		}
		if array {
			id = j.Array
		}
		if best == "" || idLess(best, id) {
			best = id
		}
	}
	return best, best != "", nil
}

func idLess(a, b string) bool {
	x, _ := strconv.ParseInt(a, 10, 64)
	y, _ := strconv.ParseInt(b, 10, 64)
	return x < y
}

// squeue lists all jobs of the user (one call), keeping ours only.
// The listing is kept (SubmitAfter checks against it that its
// dependencies are still known to slurmctld).
func (b *Backend) squeue(ctx context.Context) (map[string]queueJob, error) {
	at := time.Now()
	out, stderr, err := b.cmds.Run(ctx, b.cmdTimeout, nil, "squeue", "-h", "-r", "-t", "all", "-u", b.user, "-o", squeueFormat)
	if err != nil {
		return nil, b.cmdError("squeue", stderr, err)
	}
	jobs, _ := parseSqueue(out)
	for id, j := range jobs {
		if !strings.HasPrefix(j.Name, b.prefix()) {
			delete(jobs, id)
		}
	}
	b.mu.Lock()
	b.lastQ, b.lastQAt = jobs, at
	b.mu.Unlock()
	return jobs, nil
}

// Status implements drms.Backend. exec-job's files are the primary signal:
// while every attempt asked about can be answered from its status file
// (ended, by an exit or a failure to start), its started file (running),
// or the last squeue listing (queued, held), and that listing is younger
// than squeue_interval, no Slurm command runs at all. Otherwise it makes
// one squeue call, plus, only for jobs that ended without a readable
// status file (or whose signal needs Slurm's reason after they left
// squeue), one sacct call or scontrol calls.
func (b *Backend) Status(ctx context.Context, hs []drms.Handle) (map[string]drms.State, error) {
	out := make(map[string]drms.State, len(hs))
	if len(hs) == 0 {
		return out, nil
	}
	if fast, ok := b.fromFiles(hs); ok {
		return fast, nil
	}
	b.mu.Lock()
	ask := b.minJobAge == 0 && time.Since(b.configAt) > time.Minute
	if ask {
		b.configAt = time.Now()
	}
	b.mu.Unlock()
	if ask {
		b.loadConfig(ctx) // MinJobAge and accounting pace squeue (fromFiles)
	}
	q, err := b.squeue(ctx)
	if err != nil {
		return nil, err
	}
	type need struct {
		h       drms.Handle
		st      handleState
		file    *drms.Outcome
		inQueue bool
		qj      queueJob
		started bool
	}
	var needs []need
	var early []string // ended without a status file, first seen now
	now := time.Now()
	arrays := map[string]bool{} // array job ids squeue still lists
	for _, j := range q {
		if j.Array != "" {
			arrays[j.Array] = true
		}
	}
	for _, h := range hs {
		st, err := decodeHandle(h)
		if err != nil {
			out[h.ID] = drms.State{Phase: drms.Ended, Outcome: drms.Undetermined(err.Error())}
			continue
		}
		if st.Ended != "" {
			out[h.ID] = ended(presetOutcome(st))
			continue
		}
		qj, inQueue := q[h.ID]
		if inQueue && qj.Name != st.Name {
			inQueue = false // another job got this id (Slurm state reset): ours is gone
		}
		if inQueue {
			if p, final := phaseOf(qj.State, qj.Reason); !final {
				s := drms.State{Phase: p, By: heldBy(qj.State, qj.Reason)}
				if p == drms.Running || p == drms.Suspended {
					s.Started = qj.Start
				}
				if p == drms.Unknown {
					s.Phase = drms.Queued
				}
				if (s.Phase == drms.Queued || s.Phase == drms.Held) && qj.Reason != "None" {
					s.Reason = qj.Reason
				}
				out[h.ID] = s
				continue
			}
		}
		file, ferr := batch.ReadOutcome(st.Status)
		if ferr != nil {
			// A damaged status file: Slurm's record decides.
			file = nil
		}
		if file != nil && inQueue {
			rec := &drms.Outcome{Reason: fileSignalReason(file, qj.State, st.Output, b.pace.Killed(h.ID))}
			out[h.ID] = ended(batch.Combine(file, rec))
			b.forget(h.ID)
			continue
		}
		acct := b.accounting(ctx)
		if file != nil && (file.Signal == "" || !acct) {
			out[h.ID] = ended(file)
			b.forget(h.ID)
			continue
		}
		n := need{h: h, st: st, file: file, inQueue: inQueue, qj: qj}
		if file == nil {
			si, _ := batch.ReadStarted(st.Started)
			n.started = si != nil
			if n.started || !inQueue || qj.State != "CANCELLED" || allocated(qj.Nodes) {
				// exec-job ran (or may have): its status file may lag on a
				// network filesystem; give it status_grace.
				b.mu.Lock()
				first, seen := b.noFileSeen[h.ID]
				if !seen {
					b.noFileSeen[h.ID] = now
					first = now
					if inQueue {
						early = append(early, h.ID)
					}
				}
				b.mu.Unlock()
				if now.Sub(first) < b.grace {
					out[h.ID] = drms.State{Phase: drms.Running, Started: qj.Start}
					continue
				}
			}
		}
		needs = append(needs, n)
	}
	if len(early) > 0 {
		// Read Slurm's record of these jobs now, while slurmctld still has
		// it: after status_grace it may have purged them (MinJobAge).
		if recs, err := b.records(ctx, early); err == nil {
			b.mu.Lock()
			for _, id := range early {
				if r, ok := recs[id]; ok {
					if _, final := phaseOf(r.State, r.Reason); final {
						b.earlyRec[id] = r
					}
				}
			}
			b.mu.Unlock()
		}
	}
	if len(needs) == 0 {
		return out, nil
	}
	ids := make([]string, 0, len(needs))
	for _, n := range needs {
		ids = append(ids, n.h.ID)
	}
	recs, err := b.records(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, n := range needs {
		r, ok := recs[n.h.ID]
		if !ok {
			b.mu.Lock()
			r, ok = b.earlyRec[n.h.ID]
			b.mu.Unlock()
		}
		// (sacct of 22.05 names a job "allocation" until a while after its end.)
		if ok && r.Name != "" && r.Name != "allocation" && r.Name != n.st.Name {
			ok = false
		}
		if ok {
			if p, final := phaseOf(r.State, r.Reason); !final {
				// sacct lags behind slurmctld: keep waiting.
				if p == drms.Unknown {
					p = drms.Running
				}
				out[n.h.ID] = drms.State{Phase: p, By: heldBy(r.State, r.Reason), Started: r.Start}
				continue
			}
		}
		killed := b.pace.Killed(n.h.ID)
		if ok && r.State == "CANCELLED" && !killed && n.st.Deps &&
			(n.inQueue && n.qj.Reason == "DependencyNeverSatisfied" || r.Reason == "Dependency") {
			// Cancelled by Slurm for a dependency that did not succeed: squeue
			// says DependencyNeverSatisfied, sacct only the pending reason
			// Dependency (for a job of ours handed dependencies, and not
			// cancelled by us, that is the cancel --kill-on-invalid-dep made).
			r.Reason = "DependencyNeverSatisfied"
		}
		var o *drms.Outcome
		switch {
		case n.file != nil && ok:
			o = batch.Combine(n.file, &drms.Outcome{Reason: fileSignalReason(n.file, r.State, n.st.Output, killed), Usage: r.Usage})
		case n.file != nil:
			o = n.file
		case ok:
			o = recordOutcome(r, n.started, r.Signal == 9 && memoryHint(n.st.Output), killed)
		case n.inQueue:
			// In squeue as ended, but scontrol no longer has it: what squeue said.
			o = recordOutcome(record{ID: n.h.ID, State: n.qj.State, StateRaw: n.qj.State, Reason: n.qj.Reason, Start: n.qj.Start, End: n.qj.End, Allocated: allocated(n.qj.Nodes)}, n.started, false, killed)
		case n.st.Task != "" && !n.started && arrays[arrayOf(n.h.ID)]:
			// Slurm drops a pending task of an array that is cancelled
			// (only a cancel does that) while it keeps listing the others.
			if killed {
				o = drms.Unclear(fmt.Sprintf("cancelled while queued (Slurm dropped array task %s)", n.h.ID))
			} else {
				o = drms.Unclear(fmt.Sprintf("cancelled outside somaflow while queued (Slurm dropped array task %s)", n.h.ID))
			}
		default:
			o = drms.Undetermined(fmt.Sprintf("Slurm no longer knows job %s (purged after MinJobAge, and no accounting) and exec-job left no status file %s", n.h.ID, n.st.Status))
		}
		out[n.h.ID] = ended(o)
		b.forget(n.h.ID)
	}
	return out, nil
}

// fromFiles answers Status without Slurm when it can (see Status and
// batch.Pace.FromFiles): ok is false when one attempt needs Slurm (a
// signal's reason, an end without a status file, our kill, a preset or
// undecodable handle, one that left squeue) or the last squeue listing is
// too old: older than squeue_interval while something is due (a job
// queued, held or suspended, one running at Slurm without its started
// file, one past its walltime), older than squeue_idle_interval when
// every job runs by its started file.
func (b *Backend) fromFiles(hs []drms.Handle) (map[string]drms.State, bool) {
	b.mu.Lock()
	q, at := b.lastQ, b.lastQAt
	busy, idle := b.intervals()
	b.mu.Unlock()
	if q == nil {
		return nil, false
	}
	return batch.FromHandles(&b.pace, &b.handles, hs, at, busy, idle, batch.Paced[handleState]{
		Decode: decodeHandle,
		Job: func(h drms.Handle, st handleState) batch.PacedJob {
			return batch.PacedJob{Status: st.Status, Started: st.Started, Limit: st.Limit, Ask: st.Ended != "" || b.pace.Killed(h.ID)}
		},
		Listed: func(h drms.Handle, st handleState) batch.Listed {
			qj, listed := q[h.ID]
			if listed && qj.Name != st.Name {
				return batch.Listed{Ask: true}
			}
			if !listed {
				// Only a job submitted after the listing may be missing from
				// it; one that left squeue needs Slurm's record.
				sub, ok := b.recent.At(h.ID)
				if st.Task != "" {
					sub, ok = b.recent.At(arrayOf(h.ID))
				}
				return batch.Listed{State: drms.State{Phase: drms.Queued}, Ask: !ok || sub.Before(at)}
			}
			p, final := phaseOf(qj.State, qj.Reason)
			if final || p == drms.Unknown {
				return batch.Listed{Ask: true} // ended at Slurm without a status file yet
			}
			s := drms.State{Phase: p, By: heldBy(qj.State, qj.Reason)}
			if (p == drms.Queued || p == drms.Held) && qj.Reason != "None" {
				s.Reason = qj.Reason
			} else if p == drms.Running || p == drms.Suspended {
				s.Started = qj.Start
			}
			return batch.Listed{State: s, Word: qj.State}
		},
		Forget: b.forget,
	})
}

// intervals are how long a squeue listing answers (with exec-job's files)
// while something is due (busy) and while nothing is (idle), b.mu held.
// A job that ends without a status file is listed by squeue for MinJobAge
// only, and some of its outcome is only there (a dependency Slurm
// cancelled it for: sacct keeps no such reason), with or without
// accounting: busy is well within MinJobAge (0, asking squeue, before it is
// known). Such a dependency concerns queued jobs only, which are due: idle
// is capped by MinJobAge only without accounting, where a running job that
// ends without a status file (node failure, a kill by SIGKILL) is known to
// Slurm for MinJobAge only.
func (b *Backend) intervals() (busy, idle time.Duration) {
	busy = min(b.squeueEvery, b.minJobAge/2)
	idle = max(busy, b.squeueIdle)
	if b.acct == nil || !*b.acct {
		idle = min(idle, max(busy, b.minJobAge/2))
	}
	return busy, idle
}

// fileSignalReason is the reason to give a job whose status file says it
// was killed by a signal: from Slurm's final state, or a memory limit that
// slurmstepd enforced with SIGKILL (FAILED, and a message in its output).
func fileSignalReason(file *drms.Outcome, state, output string, killed bool) string {
	r := signalReason(state, killed)
	if r == "" && file.Signal == "SIGKILL" && state == "FAILED" && memoryHint(output) {
		r = "memory limit"
	}
	return r
}

func ended(o *drms.Outcome) drms.State {
	return drms.State{Phase: drms.Ended, Started: o.Started, Outcome: o}
}

// forget drops what the backend remembers of an ended job.
func (b *Backend) forget(id string) {
	b.mu.Lock()
	delete(b.noFileSeen, id)
	delete(b.earlyRec, id)
	b.mu.Unlock()
	b.pace.Forget(id)
	b.handles.Forget(id)
}

// memoryHint reports whether the job's Slurm output mentions a memory
// limit (slurmstepd's message when it kills an over-memory job without cgroups).
func memoryHint(path string) bool {
	s := strings.ToLower(batch.Tail(path))
	return strings.Contains(s, "memory limit") || strings.Contains(s, "oom-kill") || strings.Contains(s, "out of memory")
}

// records returns Slurm's records of ids: one sacct call per 500 ids when
// accounting is configured, else scontrol (per id for a few, else one call
// for all jobs).
func (b *Backend) records(ctx context.Context, ids []string) (map[string]record, error) {
	recs := map[string]record{}
	if b.accounting(ctx) {
		for i := 0; i < len(ids); i += 500 {
			j := min(i+500, len(ids))
			out, stderr, err := b.cmds.Run(ctx, b.cmdTimeout, nil, "sacct", "-n", "-P", "-j", strings.Join(ids[i:j], ","), "-o", sacctFields)
			if err != nil {
				return nil, b.cmdError("sacct", stderr, err)
			}
			for id, r := range parseSacct(out) {
				recs[id] = r
			}
		}
		return recs, nil
	}
	if len(ids) > 8 {
		out, stderr, err := b.cmds.Run(ctx, b.cmdTimeout, nil, "scontrol", "show", "job", "-o")
		if err != nil {
			return nil, b.cmdError("scontrol", stderr, err)
		}
		return parseScontrol(out), nil
	}
	for _, id := range ids {
		out, stderr, err := b.cmds.Run(ctx, b.cmdTimeout, nil, "scontrol", "show", "job", "-o", id)
		if err != nil {
			if m := out + stderr; strings.Contains(m, "Invalid job id") || strings.Contains(m, "not found") {
				continue // purged (or a dropped array task: "Job 16_2 not found" on stdout)
			}
			return nil, b.cmdError("scontrol", stderr, err)
		}
		for k, r := range parseScontrol(out) {
			recs[k] = r
		}
	}
	return recs, nil
}

// accounting reports whether sacct can be used (setting, else slurmctld's
// AccountingStorageType, asked once).
func (b *Backend) accounting(ctx context.Context) bool {
	b.mu.Lock()
	a := b.acct
	b.mu.Unlock()
	if a != nil {
		return *a
	}
	b.loadConfig(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.acct != nil && *b.acct
}

// loadConfig reads AccountingStorageType and MinJobAge from
// `scontrol show config` once (again later if it failed).
func (b *Backend) loadConfig(ctx context.Context) {
	out, _, err := b.cmds.Run(ctx, b.cmdTimeout, nil, "scontrol", "show", "config")
	if err != nil {
		return
	}
	var acct *bool
	age := time.Duration(0)
	maxArr := 0
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "AccountingStorageType":
			x := v != "" && v != "accounting_storage/none"
			acct = &x
		case "MinJobAge":
			if n, err := strconv.Atoi(firstWord(v)); err == nil {
				age = time.Duration(n) * time.Second
			}
		case "MaxArraySize":
			if n, err := strconv.Atoi(firstWord(v)); err == nil && n > 0 {
				maxArr = n
			}
		}
	}
	b.mu.Lock()
	if b.acct == nil {
		b.acct = acct
	}
	if age > 0 {
		b.minJobAge = age
	}
	if maxArr > 0 {
		b.maxArray = maxArr
	}
	b.mu.Unlock()
}

// Kill implements drms.Backend with scancel; a job that already ended is
// not an error.
func (b *Backend) Kill(ctx context.Context, h drms.Handle) error {
	if st, err := decodeHandle(h); err == nil && st.Ended != "" {
		return nil // never reached Slurm
	}
	if !isJobID(h.ID) {
		return fmt.Errorf("slurm: %q is not a job id", h.ID)
	}
	b.pace.Kill(h.ID)
	out, stderr, err := b.cmds.Run(ctx, b.cmdTimeout, nil, "scancel", h.ID)
	if err != nil {
		if m := out + stderr; strings.Contains(m, "already completing or completed") || strings.Contains(m, "Invalid job id") || strings.Contains(m, "not found") {
			return nil
		}
		return b.cmdError("scancel", stderr, err)
	}
	return nil
}

// Recover implements drms.Backend: the job's current state, from squeue, its
// status file and Slurm's record, exactly as Status reports it.
func (b *Backend) Recover(ctx context.Context, h drms.Handle) (drms.State, error) {
	if _, err := decodeHandle(h); err != nil {
		return drms.State{}, err
	}
	st, err := b.Status(ctx, []drms.Handle{h})
	if err != nil {
		return drms.State{}, err
	}
	return st[h.ID], nil
}

// Locate implements drms.Locator: an attempt whose handle was never
// recorded is found by its spool's started file (exec-job wrote the job id),
// then by name in squeue (and sacct with accounting). It was never
// submitted when its batch script was never written, or when the script is
// younger than MinJobAge and Slurm lists no job of that name (slurmctld
// still lists every job of the last MinJobAge).
func (b *Backend) Locate(ctx context.Context, spec drms.JobSpec) (drms.Handle, bool, bool, error) {
	p := b.spool.Paths(spec)
	if arr, task, ok := batch.ReadTaskScript(p.Script); ok {
		return b.locateTask(ctx, spec, arr, task)
	}
	if si, err := batch.ReadStarted(p.Started); err == nil && si != nil && isJobID(si.JobID) {
		return b.handle(si.JobID, spec), true, false, nil
	}
	scriptInfo, serr := os.Stat(p.Script)
	if serr != nil && errors.Is(serr, os.ErrNotExist) {
		return drms.Handle{}, false, true, nil
	}
	// Look before reading the clock: a job listed now was submitted before.
	b.loadConfig(ctx)
	now := time.Now()
	id, found, err := b.findByName(ctx, spec.Name(), false)
	if err != nil {
		return drms.Handle{}, false, false, err
	}
	if found {
		return b.handle(id, spec), true, false, nil
	}
	if b.accounting(ctx) {
		out, stderr, err := b.cmds.Run(ctx, b.cmdTimeout, nil, "sacct", "-n", "-P", "-X", "-u", b.user, "--name", spec.Name(), "-S", scriptInfo.ModTime().Add(-time.Hour).Format("2006-01-02T15:04:05"), "-o", "JobID,JobName")
		if err != nil {
			return drms.Handle{}, false, false, b.cmdError("sacct", stderr, err)
		}
		best := ""
		for _, line := range strings.Split(out, "\n") {
			jid, name, _ := strings.Cut(strings.TrimSpace(line), "|")
			if name == spec.Name() && isJobID(jid) && (best == "" || idLess(best, jid)) {
				best = jid
			}
		}
		if best != "" {
			return b.handle(best, spec), true, false, nil
		}
		return drms.Handle{}, false, true, nil // accounting keeps every job
	}
	b.mu.Lock()
	age := b.minJobAge
	b.mu.Unlock()
	if serr == nil && age > 0 && now.Sub(scriptInfo.ModTime()) < age {
		return drms.Handle{}, false, true, nil
	}
	return drms.Handle{}, false, false, nil
}

// cmdError wraps a failed Slurm command: timeouts and controller errors
// wrap drms.ErrUnavailable.
func (b *Backend) cmdError(name, stderr string, err error) error {
	return batch.CommandError("slurm", name, stderr, err, isUnavailable, "is Slurm's client installed?")
}

// isUnavailable reports whether a Slurm command's stderr says that the
// controller (or the database) cannot be reached or is too busy now.
func isUnavailable(stderr string) bool {
	s := strings.ToLower(stderr)
	for _, m := range []string{
		"unable to contact slurm controller", "connection refused", "socket timed out",
		"zero bytes were transmitted", "slurm_receive_msg", "communication connection failure",
		"resource temporarily unavailable", "slurmctld not responding", "slurm backup controller in standby",
		"slurmdbd not responding", "connection timed out", "transport endpoint", "try again",
		"unable to establish connection", "job submit limit", "qosmaxsubmitjob",
	} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// Calls returns how many times each Slurm command (sbatch, squeue, ...)
// was run by this backend.
func (b *Backend) Calls() map[string]int { return b.cmds.Calls() }

var (
	_ drms.Backend = (*Backend)(nil)
	_ drms.Locator = (*Backend)(nil)
)
