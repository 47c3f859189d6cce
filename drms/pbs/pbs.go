// Package pbs is the PBS backend (OpenPBS / PBS Pro, and Torque) through
// its commands: every job attempt is a batch script in the spool dir that
// `exec`s `somaflow exec-job` (which changes to the working directory, as
// PBS Pro has no -d, and sets the job's environment from the spool's env
// file, so qsub never exports one), submitted with qsub; Status makes ONE
// qstat call for all the attempts it is asked about (`qstat -f -F json` on
// PBS Pro, `qstat -f` in text on Torque, with the text form as fallback
// when PBS Pro prints invalid JSON), and reads outcomes by design.md's
// precedence: the exec-job status file, then PBS's record (`qstat -x -f`
// on PBS Pro when job history is on; Torque's completed jobs), which also
// gives the reason (a walltime or memory limit, a qdel outside somaflow).
//
// Settings (drms.Config.Settings), all optional:
//
//	dialect          pbspro | torque | auto (default auto: `qstat --version`
//	                 prints pbs_version on PBS Pro)
//	command_timeout  bound on each qstat/qdel/qhold/qrls call (default 60s)
//	submit_timeout   bound on each qsub call (default 60s)
//	lookup_delay     pause before the second look-up of a timed-out qsub (default 2s)
//	status_grace     how long a job that PBS says ended, or no longer lists,
//	                 may lack its status file (network filesystem lag)
//	                 before PBS's record is used instead (default 5s)
//	qstat_interval   how often Status asks qstat while exec-job's files
//	                 answer for every job (default 30s; 0: at every Status)
//	qstat_idle_interval
//	                 how often Status asks qstat while nothing is due: every
//	                 job asked about runs by its started file, within its
//	                 walltime, not deleted by somaflow (default 5m; never
//	                 less than qstat_interval; 0: qstat_interval)
//	qsub_options     extra qsub options for every job, split like a shell line
//	dependencies     true: SubmitAfter hands dependencies to PBS
//	                 (-W depend=afterok:ID...) (default false)
//	arrays           true: SubmitArray puts the jobs of one engine cycle that
//	                 share workflow, queue, resources and native
//	                 specification into one job array (-J / -t) (default
//	                 false; see array.go: not tested against a PBS server)
//	max_array        the largest number of tasks in one array (default 1000)
package pbs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
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

// Backend runs jobs on PBS. It is safe for concurrent use.
type Backend struct {
	cfg   drms.Config
	spool batch.Spool
	cmds  batch.Commands

	cmdTimeout, submitTimeout, lookupDelay, grace time.Duration
	qstatEvery, qstatIdle                         time.Duration
	extraOpts                                     []string
	deps, arrays                                  bool
	maxArray                                      int

	mu         sync.Mutex
	dialect    Dialect                    // "" until known
	noFileSeen map[string]time.Time       // ended or gone at PBS, no status file yet: since when
	lastRec    map[string]job             // the last final record seen of such a job
	lastList   map[string]job             // the last listing (ours only)
	lastListAt time.Time                  // when it was asked for
	recent     batch.Submissions          // job ids this backend submitted (by seq)
	pace       batch.Pace                 // exec-job's files first, qstat paced
	handles    batch.Handles[handleState] // decoded once (fromFiles)
}

// handleState is the persisted part of a PBS handle; Handle.ID is the job
// id qsub printed ("123.server").
type handleState struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Started string `json:"started"`
	Output  string `json:"output"`
	// Deps: submitted with dependencies handed to PBS (SubmitAfter).
	Deps bool `json:"deps,omitempty"`
	// Task is the task number of an array's task ("" for a plain job);
	// Name is then the array's.
	Task string `json:"task,omitempty"`
	// Ended is an outcome known without PBS: "dependency" (a dependency
	// handed to PBS had already failed) or "refused" (qsub refused the
	// job's array); nothing was submitted; Reason says why.
	Ended  string `json:"ended,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Limit is the job's walltime in seconds (0: none): past it, its
	// status file is overdue and qstat is asked at qstat_interval.
	Limit int64 `json:"limit,omitempty"`
}

// New returns a PBS backend. It checks the configuration but does not
// contact the PBS server (so that an engine starts while it is down).
func New(cfg drms.Config) (*Backend, error) {
	cfg, err := batch.CheckConfig("pbs", cfg)
	if err != nil {
		return nil, err
	}
	sp, err := batch.NewSpool(cfg)
	if err != nil {
		return nil, fmt.Errorf("pbs: %w", err)
	}
	b := &Backend{cfg: cfg, spool: sp, noFileSeen: map[string]time.Time{}, lastRec: map[string]job{}}
	b.pace.Live = true // running only with its started file, as in Status
	st := batch.Settings{Backend: "pbs", M: cfg.Settings}
	set := st.Get
	if err := st.Durations(
		map[string]*time.Duration{"command_timeout": &b.cmdTimeout, "submit_timeout": &b.submitTimeout, "lookup_delay": &b.lookupDelay, "status_grace": &b.grace, "qstat_interval": &b.qstatEvery, "qstat_idle_interval": &b.qstatIdle},
		map[string]time.Duration{"command_timeout": time.Minute, "submit_timeout": time.Minute, "lookup_delay": 2 * time.Second, "status_grace": 5 * time.Second, "qstat_interval": 30 * time.Second, "qstat_idle_interval": 5 * time.Minute},
	); err != nil {
		return nil, err
	}
	switch v := set("dialect"); v {
	case "", "auto":
	case string(PBSPro), string(Torque):
		b.dialect = Dialect(v)
	default:
		return nil, fmt.Errorf("pbs: setting dialect=%q: want pbspro, torque or auto", v)
	}
	if v := set("qsub_options"); v != "" {
		words, err := batch.SplitWords(v)
		if err != nil {
			return nil, fmt.Errorf("pbs: setting qsub_options: %w", err)
		}
		if b.extraOpts, err = Options(words); err != nil {
			return nil, fmt.Errorf("pbs: setting qsub_options: %w", err)
		}
	}
	if b.arrays, err = st.Bool("arrays"); err != nil {
		return nil, err
	}
	if b.deps, err = st.Bool("dependencies"); err != nil {
		return nil, err
	}
	b.maxArray = 1000
	if v := set("max_array"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			return nil, fmt.Errorf("pbs: setting max_array=%q: want a number of tasks, at least 2", v)
		}
		b.maxArray = n
	}
	return b, nil
}

// Capabilities implements drms.Backend.
func (b *Backend) Capabilities() drms.Capabilities {
	return drms.Capabilities{Name: "pbs", Queues: true, ExternalCancel: true, SystemFailures: true, SurvivesEngine: true,
		Arrays: b.arrays, Dependencies: b.deps, Walltime: true}
}

// Close implements drms.Backend; jobs keep running.
func (b *Backend) Close() error { return nil }

// Calls returns how many times each PBS command (qsub, qstat, ...) was run
// by this backend.
func (b *Backend) Calls() map[string]int { return b.cmds.Calls() }

func (b *Backend) prefix() string { return "sf-" + b.cfg.EngineTag + "-" }

func (b *Backend) handle(id string, spec drms.JobSpec) drms.Handle {
	p := b.spool.Paths(spec)
	st, _ := json.Marshal(handleState{Name: spec.Name(), Status: p.Status, Started: p.Started, Output: p.Output, Limit: spec.Resources.Walltime})
	return drms.Handle{Version: HandleVersion, ID: id, State: st}
}

func decodeHandle(h drms.Handle) (handleState, error) {
	var st handleState
	if h.Version != HandleVersion {
		return st, fmt.Errorf("pbs: handle %s has version %d, want %d", h.ID, h.Version, HandleVersion)
	}
	if err := json.Unmarshal(h.State, &st); err != nil {
		return st, fmt.Errorf("pbs: handle %s: %w", h.ID, err)
	}
	return st, nil
}

// Dialect returns the PBS flavour: the setting, else what
// `qstat --version` says (asked once; Torque when it does not say
// pbs_version, as Torque's and Slurm's wrappers do not).
func (b *Backend) Dialect(ctx context.Context) Dialect {
	b.mu.Lock()
	d := b.dialect
	b.mu.Unlock()
	if d != "" {
		return d
	}
	out, stderr, err := b.cmds.Run(ctx, b.cmdTimeout, nil, "qstat", "--version")
	if errors.Is(err, batch.ErrTimeout) || errors.Is(err, exec.ErrNotFound) {
		return Torque // not known yet: asked again next time
	}
	d = Torque
	if strings.Contains(strings.ToLower(out+stderr), "pbs_version") {
		d = PBSPro
	}
	b.mu.Lock()
	b.dialect = d
	b.mu.Unlock()
	return d
}

// qsub options: those that take a value (as the next word or attached),
// and those that take none, in PBS Pro and Torque. Native specifications
// may use them except the ones somaflow sets itself or that change what
// qsub does (an interactive job, no job id printed, a job array).
var (
	valueOptions = "aAbcCdDeFjJkKlLmMNoPpqrRSTtuvWw"
	flagOptions  = "fhnVxX"
	ownOptions   = map[byte]string{
		'N': "the job name (somaflow finds its jobs by name)", 'o': "the output path (exec-job writes the job's files)",
		'e': "the error path (exec-job writes the job's files)", 'j': "joining (exec-job writes the job's files)",
		'J': "a job array", 't': "a job array", 'I': "an interactive job", 'z': "no job id printed",
	}
)

// Options checks qsub options given as words (a native specification, the
// qsub_options setting) and returns them as qsub's argv: every word is an
// option of one letter that qsub knows, followed by its value word when it
// takes one and the value is not attached ("-l walltime=1:00:00" or
// "-lwalltime=1:00:00"). Anything else is refused, so that no word can
// become qsub's script operand, or "--" an executable to run; the options
// somaflow sets (-N, -o, -e, -j) or that change qsub's behaviour (-I, -z,
// -J, -t) are refused too. The error is a *drms.StartError naming the word.
func Options(words []string) ([]string, error) {
	refuse := func(format string, a ...any) ([]string, error) {
		return nil, &drms.StartError{Reason: "native specification: " + fmt.Sprintf(format, a...)}
	}
	for _, w := range words {
		if strings.ContainsAny(w, "\x00\n\r") {
			return refuse("word %q contains a newline, carriage return or NUL", w)
		}
	}
	var argv []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if len(w) < 2 || w[0] != '-' || w[1] == '-' {
			return refuse("%q is not a qsub option (each word must be an option like -l, or its value)", w)
		}
		letter := w[1]
		if why, ok := ownOptions[letter]; ok {
			return refuse("qsub option %s is not allowed: it sets %s", w[:2], why)
		}
		switch {
		case strings.IndexByte(flagOptions, letter) >= 0:
			if len(w) > 2 {
				return refuse("qsub option %s takes no value (%q)", w[:2], w)
			}
			argv = append(argv, w)
		case strings.IndexByte(valueOptions, letter) >= 0:
			if len(w) > 2 {
				argv = append(argv, w)
				continue
			}
			if i+1 >= len(words) {
				return refuse("qsub option %s needs a value", w)
			}
			argv = append(argv, w, words[i+1])
			i++
		default:
			return refuse("unknown qsub option %s", w[:2])
		}
	}
	return argv, nil
}

// QsubArgs is the qsub command line (without "qsub") for spec, submitted
// under the job name name, whose batch script is at script and whose PBS
// output goes to output: job name, output (joined), queue, resources in
// the dialect's form, the site's qsub_options, the native specification,
// extra (a dependency, an array's range), the script.
func (b *Backend) QsubArgs(d Dialect, name string, spec drms.JobSpec, script, output string, extra []string) ([]string, error) {
	a := []string{"-N", name, "-o", output, "-j", "oe"}
	if spec.Queue != "" {
		a = append(a, "-q", spec.Queue)
	}
	a = append(a, ResourceOptions(d, spec.Parallel, spec.Resources)...)
	a = append(a, b.extraOpts...)
	for _, ns := range spec.NativeSpec {
		words, err := batch.SplitWords(ns)
		if err != nil {
			return nil, &drms.StartError{Reason: fmt.Sprintf("native specification %q: %v", ns, err)}
		}
		opts, err := Options(words)
		if err != nil {
			return nil, err
		}
		a = append(a, opts...)
	}
	a = append(a, extra...)
	return append(a, script), nil
}

// ResourceOptions are the qsub -l options of a job's parallel info and
// resources: PBS Pro asks with one select chunk per node
// (select=N:ncpus=C:mpiprocs=C:mem=...:ngpus=G), Torque with
// nodes=N:ppn=C:gpus=G and mem; both take walltime=HH:MM:SS.
func ResourceOptions(d Dialect, pj *model.ParallelJobInfo, r model.Resources) []string {
	nodes, cpus, procs := 1, r.CPUs, 0
	if pj != nil {
		nodes, procs = max(pj.NodesNumber, 1), max(pj.CPUPerNode, 1)
		if strings.Contains(strings.ToLower(pj.ConfigName), "openmp") {
			cpus, procs = max(procs, cpus), 1
		} else {
			cpus = max(procs*max(r.CPUs, 1), procs)
		}
	}
	var a []string
	if d == PBSPro {
		if pj != nil || cpus > 0 || r.MemoryMB > 0 || r.GPUs > 0 {
			sel := "select=" + strconv.Itoa(nodes) + ":ncpus=" + strconv.Itoa(max(cpus, 1))
			if procs > 0 {
				sel += ":mpiprocs=" + strconv.Itoa(procs)
			}
			if r.MemoryMB > 0 {
				sel += ":mem=" + strconv.FormatInt(r.MemoryMB, 10) + "mb"
			}
			if r.GPUs > 0 {
				sel += ":ngpus=" + strconv.Itoa(r.GPUs)
			}
			a = append(a, "-l", sel)
		}
	} else {
		if pj != nil || cpus > 0 || r.GPUs > 0 {
			n := "nodes=" + strconv.Itoa(nodes) + ":ppn=" + strconv.Itoa(max(cpus, 1))
			if r.GPUs > 0 {
				n += ":gpus=" + strconv.Itoa(r.GPUs)
			}
			a = append(a, "-l", n)
		}
		if r.MemoryMB > 0 {
			a = append(a, "-l", "mem="+strconv.FormatInt(r.MemoryMB, 10)+"mb")
		}
	}
	if r.Walltime > 0 {
		s := r.Walltime
		a = append(a, "-l", fmt.Sprintf("walltime=%02d:%02d:%02d", s/3600, s/60%60, s%60))
	}
	return a
}

// Submit implements drms.Backend: it writes the batch script and the job's
// environment in the spool and runs qsub. A refused job (bad queue, bad
// native specification) gives a *drms.StartError; an unreachable server an
// error wrapping drms.ErrUnavailable (nothing submitted); a qsub that timed
// out or printed garbage is looked up by job name twice and, if not found,
// gives drms.ErrSubmitUncertain.
func (b *Backend) Submit(ctx context.Context, spec drms.JobSpec) (drms.Handle, error) {
	return b.submit(ctx, spec, nil)
}

func (b *Backend) submit(ctx context.Context, spec drms.JobSpec, extra []string) (drms.Handle, error) {
	if len(spec.Argv) == 0 {
		return drms.Handle{}, &drms.StartError{Reason: "empty command"}
	}
	if spec.EngineTag != b.cfg.EngineTag {
		return drms.Handle{}, fmt.Errorf("pbs: job %s has engine tag %q, this backend %q", spec.Name(), spec.EngineTag, b.cfg.EngineTag)
	}
	d := b.Dialect(ctx)
	p := b.spool.Paths(spec)
	args, err := b.QsubArgs(d, spec.Name(), spec, p.Script, p.Output, extra)
	if err != nil {
		return drms.Handle{}, err
	}
	if p, err = b.spool.Prepare(spec); err != nil {
		return drms.Handle{}, fmt.Errorf("pbs: %w", err)
	}
	header := []string{
		"# somaflow job " + spec.Name() + ": " + strings.ReplaceAll(spec.JobName, "\n", " "),
		"# Submitted with qsub: every option on its command line. exec-job changes to the",
		"# working directory and sets the job's environment from " + p.Env + ".",
	}
	if err := batch.WriteScript(p.Script, batch.Script(header, b.spool.ExecArgv(b.cfg.ExecPath, spec))); err != nil {
		return drms.Handle{}, fmt.Errorf("pbs: %w", err)
	}
	out, stderr, err := b.cmds.Run(ctx, b.submitTimeout, nil, "qsub", args...)
	if err == nil {
		if id := strings.TrimSpace(out); isJobID(id) {
			b.submitted(id)
			return b.handle(id, spec), nil
		}
		err = fmt.Errorf("qsub printed %q, not a job id", batch.OneLine(out))
	} else if !errors.Is(err, batch.ErrTimeout) && !batch.Signaled(err) {
		if isUnavailable(out + stderr) {
			return drms.Handle{}, fmt.Errorf("pbs: qsub: %s: %w", batch.OneLine(out+stderr), drms.ErrUnavailable)
		}
		if errors.Is(err, exec.ErrNotFound) {
			return drms.Handle{}, b.cmdError("qsub", stderr, err)
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Exited() {
			return drms.Handle{}, &drms.StartError{Reason: batch.Refusal("qsub refused the job", ee, stderr+"\n"+out)}
		}
		return drms.Handle{}, fmt.Errorf("pbs: qsub: %w", err)
	}
	// Timed out, killed or garbage: the job may have reached the server.
	for i := 0; i < 2; i++ {
		if i > 0 {
			select {
			case <-time.After(b.lookupDelay):
			case <-ctx.Done():
				return drms.Handle{}, fmt.Errorf("pbs: qsub %s: %v: %w", spec.Name(), err, drms.ErrSubmitUncertain)
			}
		}
		if jobs, lerr := b.list(ctx); lerr == nil {
			if id, found := byName(jobs, spec.Name()); found {
				return b.handle(id, spec), nil
			}
		}
	}
	return drms.Handle{}, fmt.Errorf("pbs: qsub %s: %v; not found by name afterwards: %w", spec.Name(), err, drms.ErrSubmitUncertain)
}

// isJobID tells whether s is a job id: "123", "123.server", an array
// "123[].server" or its task "123[4].server".
func isJobID(s string) bool {
	q := seq(s)
	if i := strings.IndexByte(q, '['); i > 0 && strings.HasSuffix(q, "]") {
		if t := q[i+1 : len(q)-1]; t != "" && strings.Trim(t, "0123456789") != "" {
			return false
		}
		q = q[:i]
	}
	if q == "" || strings.ContainsAny(s, " \t\n") {
		return false
	}
	for _, c := range q {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// byName finds the newest job (or job array: "123[]") of jobs called
// name; an array's tasks, which share its name, are skipped.
func byName(jobs map[string]job, name string) (string, bool) {
	best, bestSeq := "", int64(-1)
	for s, j := range jobs {
		if j.Name != name {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(s, "[]"), 10, 64)
		if err == nil && n > bestSeq {
			best, bestSeq = j.ID, n
		}
	}
	return best, best != ""
}

// list is ONE qstat call for every job the server shows us, keeping
// somaflow's (of this engine): `qstat -f -F json` on PBS Pro (falling back
// to `qstat -f` when its JSON is invalid), `qstat -f` on Torque.
func (b *Backend) list(ctx context.Context) (map[string]job, error) {
	at := time.Now()
	var jobs map[string]job
	if b.Dialect(ctx) == PBSPro {
		out, stderr, err := b.cmds.Run(ctx, b.cmdTimeout, nil, "qstat", b.listArgs("-F", "json")...)
		if err != nil {
			return nil, b.cmdError("qstat", stderr, err)
		}
		if jobs, err = parseJSON([]byte(out)); err != nil {
			jobs = nil
		}
	}
	if jobs == nil {
		out, stderr, err := b.cmds.Run(ctx, b.cmdTimeout, nil, "qstat", b.listArgs()...)
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.Exited() && strings.TrimSpace(out) == "" && noJobs(stderr)) {
			return nil, b.cmdError("qstat", stderr, err)
		}
		jobs = parseText(out)
	}
	for s, j := range jobs {
		if !strings.HasPrefix(j.Name, b.prefix()) {
			delete(jobs, s)
		}
	}
	b.mu.Lock()
	b.lastList, b.lastListAt = jobs, at
	b.mu.Unlock()
	return jobs, nil
}

// submitted notes when this backend submitted a job (or array), so that
// Status may answer for it from files before a listing shows it.
func (b *Backend) submitted(id string) { b.recent.Note(seq(id)) }

// fromFiles answers Status without PBS when it can (batch.Pace.FromFiles):
// every attempt is ended by an exit or a failure to start in its status
// file, or still queued, held, running or suspended in the last listing
// (or submitted since, its started file saying whether it runs), and that
// listing is younger than qstat_interval, or than qstat_idle_interval when
// nothing is due (every job runs by its started file, within its
// walltime). ok is false when one needs PBS (a signal's reason, an end
// without a status file, our kill, a job that left the listing).
func (b *Backend) fromFiles(hs []drms.Handle) (map[string]drms.State, bool) {
	b.mu.Lock()
	l, at := b.lastList, b.lastListAt
	b.mu.Unlock()
	if l == nil {
		return nil, false
	}
	return batch.FromHandles(&b.pace, &b.handles, hs, at, b.qstatEvery, b.qstatIdle, batch.Paced[handleState]{
		Decode: decodeHandle,
		Job: func(h drms.Handle, st handleState) batch.PacedJob {
			return batch.PacedJob{Status: st.Status, Started: st.Started, Limit: st.Limit, Ask: st.Ended != "" || b.pace.Killed(h.ID)}
		},
		Listed: func(h drms.Handle, st handleState) batch.Listed {
			j, listed := l[seq(h.ID)]
			if listed && j.Name != st.Name {
				return batch.Listed{Ask: true}
			}
			if !listed {
				sub, ok := b.recent.At(seq(h.ID))
				if st.Task != "" {
					sub, ok = b.recent.At(seq(strings.Replace(h.ID, "["+st.Task+"]", "[]", 1)))
				}
				return batch.Listed{State: drms.State{Phase: drms.Queued}, Ask: !ok || sub.Before(at)}
			}
			p, by, final := phase(j)
			if final || p == drms.Unknown {
				return batch.Listed{Ask: true}
			}
			s := drms.State{Phase: p, By: by}
			if p == drms.Queued || p == drms.Held {
				s.Reason = strings.TrimSpace(j.Comment)
			}
			return batch.Listed{State: s, Word: "state " + j.State}
		},
		Forget: b.forget,
	})
}

// listArgs are qstat's arguments for the listing: -f, and -t (array
// tasks) when arrays are on.
func (b *Backend) listArgs(more ...string) []string {
	a := []string{"-f"}
	if b.arrays {
		a = append(a, "-t")
	}
	return append(a, more...)
}

// noJobs tells whether the complaint of a qstat that failed and printed
// nothing means there is nothing to list (Slurm's wrappers exit 153 and say
// nothing).
func noJobs(stderr string) bool {
	s := strings.ToLower(stderr)
	return strings.TrimSpace(s) == "" || strings.Contains(s, "unknown job")
}

// history is PBS Pro's record of a finished job (`qstat -x -f -F json ID`,
// job history on); ok is false when the server has none (history off).
// On Torque the listing already holds completed jobs: nothing more to ask.
func (b *Backend) history(ctx context.Context, id string) (job, bool, error) {
	if b.Dialect(ctx) != PBSPro {
		return job{}, false, nil
	}
	out, stderr, err := b.cmds.Run(ctx, b.cmdTimeout, nil, "qstat", "-x", "-f", "-F", "json", id)
	if err != nil {
		if gone(out + stderr) {
			return job{}, false, nil
		}
		return job{}, false, b.cmdError("qstat", stderr, err)
	}
	jobs, err := parseJSON([]byte(out))
	if err != nil {
		out, stderr, err = b.cmds.Run(ctx, b.cmdTimeout, nil, "qstat", "-x", "-f", id)
		if err != nil {
			return job{}, false, b.cmdError("qstat", stderr, err)
		}
		jobs = parseText(out)
	}
	j, ok := jobs[seq(id)]
	return j, ok, nil
}

// gone tells whether a command's message says the job is not known (any
// more) or already finished.
func gone(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{"unknown job", "job has finished", "already completing", "already completed", "invalid job id", "job is in wrong state"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// Status implements drms.Backend with one qstat call, plus, only for jobs
// that ended without a readable status file (or that a signal ended, whose
// reason the record gives) on PBS Pro, `qstat -x` for each.
func (b *Backend) Status(ctx context.Context, hs []drms.Handle) (map[string]drms.State, error) {
	out := make(map[string]drms.State, len(hs))
	if len(hs) == 0 {
		return out, nil
	}
	if fast, ok := b.fromFiles(hs); ok {
		return fast, nil
	}
	jobs, err := b.list(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	d := b.Dialect(ctx)
	for _, h := range hs {
		st, err := decodeHandle(h)
		if err != nil {
			out[h.ID] = drms.State{Phase: drms.Ended, Outcome: drms.Undetermined(err.Error())}
			continue
		}
		if st.Ended == "refused" {
			out[h.ID] = ended(drms.NotStarted(st.Reason))
			continue
		}
		if st.Ended != "" {
			out[h.ID] = ended(&drms.Outcome{Status: model.JobFailed, ExitStatus: model.ExitAbortedBefore, Reason: st.Reason})
			continue
		}
		j, listed := jobs[seq(h.ID)]
		if listed && j.Name != st.Name {
			listed = false // another job got this id: ours is gone
		}
		if listed {
			if p, by, final := phase(j); !final {
				s := drms.State{Phase: p, By: by}
				if p == drms.Unknown {
					s.Phase = drms.Queued
				}
				if s.Phase == drms.Queued || s.Phase == drms.Held {
					s.Reason = strings.TrimSpace(j.Comment)
				} else {
					s.Started = j.Start
				}
				out[h.ID] = batch.Live(s, "state "+j.State, st.Started)
				continue
			}
		}
		o, done, err := b.outcome(ctx, d, h, st, j, listed, now)
		if err != nil {
			return nil, err
		}
		if !done {
			out[h.ID] = batch.Pending(st.Started) // its status file may be on its way
			continue
		}
		out[h.ID] = ended(o)
		b.forget(h.ID)
	}
	return out, nil
}

// outcome decides the outcome of a job PBS says finished (listed) or no
// longer lists: done is false while its status file may still be on its
// way (status_grace).
func (b *Backend) outcome(ctx context.Context, d Dialect, h drms.Handle, st handleState, j job, listed bool, now time.Time) (*drms.Outcome, bool, error) {
	file, ferr := batch.ReadOutcome(st.Status)
	if ferr != nil {
		file = nil // a damaged status file: PBS's record decides
	}
	killed := b.pace.Killed(h.ID)
	if file != nil {
		if file.Signal == "" || killed {
			return file, true, nil
		}
		rec := &j
		if !listed {
			hj, ok, err := b.history(ctx, h.ID)
			if err != nil {
				return nil, false, err
			}
			rec = nil
			if ok {
				rec = &hj
			}
		}
		r := &drms.Outcome{Reason: signalReason(d, rec, batch.Tail(st.Output), killed)}
		if rec != nil {
			r.Usage = rec.Usage
		}
		return batch.Combine(file, r), true, nil
	}
	si, _ := batch.ReadStarted(st.Started)
	started := si != nil
	b.mu.Lock()
	first, seen := b.noFileSeen[h.ID]
	if !seen {
		b.noFileSeen[h.ID], first = now, now
	}
	if listed {
		b.lastRec[h.ID] = j
	}
	b.mu.Unlock()
	if now.Sub(first) < b.grace {
		return nil, false, nil
	}
	if !listed {
		b.mu.Lock()
		j, listed = b.lastRec[h.ID]
		b.mu.Unlock()
	}
	if !listed {
		hj, ok, err := b.history(ctx, h.ID)
		if err != nil {
			return nil, false, err
		}
		j, listed = hj, ok
	}
	switch {
	case listed:
		return recordOutcome(d, j, batch.Tail(st.Output), started, killed), true, nil
	case !started && st.Deps && !killed:
		return &drms.Outcome{Status: model.JobFailed, ExitStatus: model.ExitAbortedBefore,
			Reason: fmt.Sprintf("PBS deleted job %s before it started: a dependency handed to PBS did not succeed", h.ID)}, true, nil
	case !started && killed:
		return drms.Unclear(fmt.Sprintf("deleted while queued (PBS no longer lists job %s)", h.ID)), true, nil
	}
	return drms.Undetermined(fmt.Sprintf("PBS no longer lists job %s (no job history) and exec-job left no status file %s", h.ID, st.Status)), true, nil
}

func ended(o *drms.Outcome) drms.State {
	return drms.State{Phase: drms.Ended, Started: o.Started, Outcome: o}
}

// forget drops what the backend remembers of an ended job.
func (b *Backend) forget(id string) {
	b.mu.Lock()
	delete(b.noFileSeen, id)
	delete(b.lastRec, id)
	b.mu.Unlock()
	b.pace.Forget(id)
	b.handles.Forget(id)
}

// Kill implements drms.Backend with qdel; a job that already ended is not
// an error.
func (b *Backend) Kill(ctx context.Context, h drms.Handle) error {
	if st, err := decodeHandle(h); err == nil && st.Ended != "" {
		return nil // never reached PBS
	}
	if !isJobID(h.ID) {
		return fmt.Errorf("pbs: %q is not a job id", h.ID)
	}
	b.pace.Kill(h.ID)
	return b.jobCommand(ctx, "qdel", h.ID)
}

// Hold implements drms.Holder with qhold.
func (b *Backend) Hold(ctx context.Context, h drms.Handle) error {
	return b.jobCommand(ctx, "qhold", h.ID)
}

// Release implements drms.Holder with qrls.
func (b *Backend) Release(ctx context.Context, h drms.Handle) error {
	return b.jobCommand(ctx, "qrls", h.ID)
}

// jobCommand runs qdel, qhold or qrls on one job; a job that is gone or
// finished is not an error.
func (b *Backend) jobCommand(ctx context.Context, name, id string) error {
	if !isJobID(id) {
		return fmt.Errorf("pbs: %q is not a job id", id)
	}
	out, stderr, err := b.cmds.Run(ctx, b.cmdTimeout, nil, name, id)
	if err == nil || gone(out+stderr) {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() && strings.TrimSpace(out+stderr) == "" {
		// No message (Slurm's wrappers say nothing for a finished job):
		// the listing tells whether the job is still there.
		if jobs, lerr := b.list(ctx); lerr == nil {
			if j, ok := jobs[seq(id)]; !ok {
				return nil
			} else if _, _, final := phase(j); final {
				return nil
			}
		}
	}
	return b.cmdError(name, out+stderr, err)
}

// Recover implements drms.Backend: the job's current state, exactly as
// Status reports it.
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
// recorded is found by its spool's started file (exec-job wrote PBS_JOBID),
// then by name in qstat. It was never submitted when its batch script was
// never written; otherwise, as PBS forgets finished jobs, nobody can tell.
func (b *Backend) Locate(ctx context.Context, spec drms.JobSpec) (drms.Handle, bool, bool, error) {
	p := b.spool.Paths(spec)
	if arr, task, ok := batch.ReadTaskScript(p.Script); ok {
		return b.locateTask(ctx, spec, arr, task)
	}
	if si, err := batch.ReadStarted(p.Started); err == nil && si != nil && isJobID(si.JobID) {
		return b.handle(si.JobID, spec), true, false, nil
	}
	if _, err := os.Stat(p.Script); errors.Is(err, os.ErrNotExist) {
		return drms.Handle{}, false, true, nil
	}
	jobs, err := b.list(ctx)
	if err != nil {
		return drms.Handle{}, false, false, err
	}
	if id, found := byName(jobs, spec.Name()); found {
		return b.handle(id, spec), true, false, nil
	}
	return drms.Handle{}, false, false, nil
}

// cmdError wraps a failed PBS command: timeouts and a server that cannot
// be reached wrap drms.ErrUnavailable.
func (b *Backend) cmdError(name, msg string, err error) error {
	return batch.CommandError("pbs", name, msg, err, isUnavailable, "is the PBS client installed?")
}

// isUnavailable reports whether a PBS command's message says that the
// server cannot be reached or is too busy now (PBS Pro: "Connection
// refused", "cannot connect to server"; Torque: "Cannot connect to
// default server host", "cannot connect to server"; Slurm's wrappers:
// Slurm's own words).
func isUnavailable(msg string) bool {
	s := strings.ToLower(msg)
	for _, m := range []string{
		"cannot connect to server", "cannot connect to default server", "connection refused", "connection timed out",
		"communication failure", "server is down", "pbs_server not running", "premature end of message",
		"unable to contact slurm controller", "socket timed out", "try again", "resource temporarily unavailable",
		"no server to connect to", "would exceed queue", "maximum number of jobs",
	} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

var (
	_ drms.Backend = (*Backend)(nil)
	_ drms.Locator = (*Backend)(nil)
	_ drms.Holder  = (*Backend)(nil)
)
