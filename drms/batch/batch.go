// Package batch holds what every batch backend (Slurm, PBS, DRMAA) shares:
// the spool layout, the exec-job command line for a drms.JobSpec, reading
// exec-job's status file into a drms.Outcome, the outcome precedence of
// design.md, and quoting for generated shell scripts.
//
// Spool layout, dirs 0700 and files 0600, under <root> = <spool dir>/u<uid>-<TAG>
// (one per user and state dir, see NewSpool):
//
//	<root>/<workflow id>/<job name>.sh        the batch script
//	<root>/<workflow id>/<job name>.env       the job's environment (NUL-separated K=V)
//	<root>/<workflow id>/<job name>.status    exec-job's outcome
//	<root>/<workflow id>/<job name>.status.started
//	<root>/<workflow id>/<job name>.drms.out  the DRMS's own output for the job
//
// where <job name> is drms.JobSpec.Name() (sf-TAG-W-J-A).
package batch

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/execjob"
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/privdir"
)

// Spool is a batch backend's spool directory (visible from compute nodes).
type Spool struct {
	// Root is the spool directory.
	Root string
}

// NewSpool returns the spool of cfg: a subdir of cfg.SpoolDir (else of
// StateDir/spool) of its own for this user and state dir,
// u<uid>-<engine tag>, so that users sharing a spool dir, and state dirs of
// one user, never share a subdir (workflow ids restart at 1 in each state
// dir). The subdir is created 0700 and must be the user's own and closed to
// others; the spool dir itself may be shared (created 0700 when missing).
func NewSpool(cfg drms.Config) (Spool, error) {
	root, err := SpoolRoot(cfg)
	if err != nil {
		return Spool{}, err
	}
	if err := os.MkdirAll(filepath.Dir(root), 0o700); err != nil {
		return Spool{}, fmt.Errorf("batch: create spool dir: %w", err)
	}
	if err := privdir.Ensure(root); err != nil {
		return Spool{}, fmt.Errorf("batch: spool: %w", err)
	}
	return Spool{Root: root}, nil
}

// SpoolRoot is the spool subdir NewSpool uses for cfg (nothing is created).
func SpoolRoot(cfg drms.Config) (string, error) {
	base := cfg.SpoolDir
	if base == "" {
		if cfg.StateDir == "" {
			return "", errors.New("batch: neither a spool dir nor a state dir is configured")
		}
		base = filepath.Join(cfg.StateDir, "spool")
	}
	abs, err := filepath.Abs(base)
	if err != nil {
		return "", fmt.Errorf("batch: spool dir %q: %w", base, err)
	}
	tag := cfg.EngineTag
	if tag == "" {
		tag = drms.EngineTag(cfg.StateDir)
	}
	return filepath.Join(abs, fmt.Sprintf("u%d-%s", os.Geteuid(), tag)), nil
}

// Paths are the spool files of one job attempt.
type Paths struct {
	Dir     string // <spool>/<workflow>
	Script  string // .sh
	Env     string // .env
	Status  string // .status (exec-job --status)
	Started string // .status.started
	Output  string // .drms.out: the DRMS's own stdout/stderr for the job
}

// Paths returns the spool files of spec's attempt (nothing is created).
func (s Spool) Paths(spec drms.JobSpec) Paths {
	dir := filepath.Join(s.Root, strconv.FormatInt(spec.WorkflowID, 10))
	base := filepath.Join(dir, spec.Name())
	return Paths{
		Dir: dir, Script: base + ".sh", Env: base + ".env",
		Status: base + ".status", Started: execjob.StartedPath(base + ".status"),
		Output: base + ".drms.out",
	}
}

// Prepare creates the attempt's spool directory (0700) and writes its
// environment file; it fails if the attempt already started (a started or
// status file exists), so that nothing runs twice.
func (s Spool) Prepare(spec drms.JobSpec) (Paths, error) {
	p := s.Paths(spec)
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return p, fmt.Errorf("batch: create spool dir: %w", err)
	}
	for _, f := range []string{p.Started, p.Status} {
		if _, err := os.Stat(f); err == nil {
			return p, fmt.Errorf("batch: attempt %s already ran (%s exists)", spec.Name(), f)
		}
	}
	if err := execjob.WriteEnvFile(p.Env, spec.Env); err != nil {
		return p, fmt.Errorf("batch: %w", err)
	}
	return p, nil
}

// ExecArgv is the command line a batch script runs (with exec) for spec:
// execPath exec-job --status ... -- argv...
func (s Spool) ExecArgv(execPath string, spec drms.JobSpec) []string {
	p := s.Paths(spec)
	o := execjob.Options{
		Status: p.Status, Dir: spec.Dir, Stdin: spec.Stdin,
		Stdout: spec.Stdout, Stderr: spec.Stderr, Join: spec.Join,
		EnvFile: p.Env, Private: s.Root, Argv: spec.Argv,
	}
	return append([]string{execPath, "exec-job"}, o.Args()...)
}

// Script is a POSIX sh batch script that execs argv; header lines (comments
// or DRMS directives, written as they are) come after the #! line.
func Script(header []string, argv []string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for _, h := range header {
		b.WriteString(h)
		b.WriteByte('\n')
	}
	b.WriteString("exec ")
	b.WriteString(ShellJoin(argv))
	b.WriteByte('\n')
	return b.String()
}

// WriteScript writes a script file (0600) atomically.
func WriteScript(path, script string) error {
	return privdir.WriteFileAtomic(path, []byte(script))
}

// ShellQuote quotes s for a POSIX shell: s in single quotes, each single
// quote inside written as quote, backslash, quote, quote. Every string comes
// out as exactly one word.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ShellJoin quotes every element of argv and joins them with spaces.
func ShellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = ShellQuote(a)
	}
	return strings.Join(q, " ")
}

// ReadOutcome reads exec-job's status file at path into an Outcome: exited ->
// drms.Exited, signaled -> drms.Signaled, not_started -> drms.NotStarted,
// with times and usage. It returns (nil, nil) when the file does not exist.
func ReadOutcome(path string) (*drms.Outcome, error) {
	st, err := execjob.ReadStatus(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return StatusOutcome(st), nil
}

// StatusOutcome converts an exec-job status into an Outcome.
func StatusOutcome(st *execjob.Status) *drms.Outcome {
	var o *drms.Outcome
	switch st.State {
	case execjob.StateExited:
		o = drms.Exited(*st.Exit)
	case execjob.StateSignaled:
		o = drms.Signaled(st.Signal, "")
	default:
		o = drms.NotStarted(st.Reason)
	}
	if st.State != execjob.StateNotStarted {
		o.Started = st.Started
	}
	o.Ended = st.Ended
	if r := st.Rusage; r != nil {
		wall, cpu, rss := r.WallS, r.UserS+r.SysS, r.MaxRSSKiB
		o.Usage = drms.Usage{WallS: &wall, CPUS: &cpu, MaxRSSKiB: &rss, Raw: map[string]string{
			"utime":  time.Duration(r.UserS * float64(time.Second)).String(),
			"stime":  time.Duration(r.SysS * float64(time.Second)).String(),
			"maxrss": strconv.FormatInt(r.MaxRSSKiB, 10),
		}}
	}
	return o
}

// Combine applies design.md's precedence below the engine's kill intent
// (which the engine applies with drms.Resolve): the exec-job status file
// (file) first, then the DRMS's own record (record); nil when both are nil
// (the caller then decides between waiting and drms.Undetermined).
//
// When the file wins, the record still supplies what the file cannot know:
// the reason of a signal (a time limit, a cancel outside somaflow) and
// missing times and usage; raw usage values of both are kept.
func Combine(file, record *drms.Outcome) *drms.Outcome {
	if file == nil {
		return record
	}
	o := *file
	if record == nil {
		return &o
	}
	if o.ExitStatus == model.ExitFinishedSignal && o.Reason == "" {
		o.Reason = record.Reason
	}
	if o.Started.IsZero() && o.ExitStatus != model.ExitAborted {
		o.Started = record.Started
	}
	if o.Ended.IsZero() {
		o.Ended = record.Ended
	}
	o.Usage = MergeUsage(o.Usage, record.Usage)
	return &o
}

// MergeUsage returns a with its unknown fields taken from b and the raw
// values of both (a's win).
func MergeUsage(a, b drms.Usage) drms.Usage {
	if a.WallS == nil {
		a.WallS = b.WallS
	}
	if a.CPUS == nil {
		a.CPUS = b.CPUS
	}
	if a.MaxRSSKiB == nil {
		a.MaxRSSKiB = b.MaxRSSKiB
	}
	if len(b.Raw) > 0 {
		raw := make(map[string]string, len(a.Raw)+len(b.Raw))
		for k, v := range b.Raw {
			raw[k] = v
		}
		for k, v := range a.Raw {
			raw[k] = v
		}
		a.Raw = raw
	}
	return a
}

// Live is the state of an attempt that the DRMS lists as not ended (s;
// drmsState is the DRMS's own word for it), as exec-job's started file at
// startedPath corrects it: a DRMS calls a job running before its script
// has exec'd exec-job, and a job cancelled in between never ran its
// command, so running or suspended counts only once that file exists
// (until then the attempt is queued, "starting (<drmsState>)"). Started
// is the DRMS's when it gives one, else the file's.
func Live(s drms.State, drmsState, startedPath string) drms.State {
	if s.Phase != drms.Running && s.Phase != drms.Suspended {
		return s
	}
	si, _ := ReadStarted(startedPath)
	if si == nil {
		return drms.State{Phase: drms.Queued, Reason: "starting (" + drmsState + ")"}
	}
	if s.Started.IsZero() {
		s.Started = si.Time
	}
	return s
}

// Pending is the state of an attempt whose end may still be on its way
// (its status file not written yet): running when exec-job's started file
// at startedPath exists, else queued.
func Pending(startedPath string) drms.State {
	if si, _ := ReadStarted(startedPath); si != nil {
		return drms.State{Phase: drms.Running, Started: si.Time}
	}
	return drms.State{Phase: drms.Queued}
}

// Tail is the last 16 KiB of a file (a DRMS's own output for a job, where
// it says why it killed one), "" when it cannot be read.
func Tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 16384 {
		_, _ = f.Seek(fi.Size()-16384, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, 16384))
	return string(b)
}

// ReadStarted reads the started file of an attempt: the DRMS job id, host,
// pid and time exec-job began. It returns (nil, nil) when the file does not exist.
func ReadStarted(path string) (*execjob.Started, error) {
	st, err := execjob.ReadStarted(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return st, err
}

// RemoveAttempt removes an attempt's spool files (for cleanup after the
// engine recorded its outcome); missing files are not an error.
func (s Spool) RemoveAttempt(spec drms.JobSpec) error {
	p := s.Paths(spec)
	var errs []error
	for _, f := range []string{p.Script, p.Env, p.Status, p.Started, p.Output} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SignalName is the name ("SIGTERM") of signal number n, "SIG<n>" when unknown.
func SignalName(n int) string {
	if name := signalName(n); name != "" {
		return name
	}
	return "SIG" + strconv.Itoa(n)
}

func signalName(n int) string {
	if n <= 0 || n > 64 {
		return ""
	}
	return unix.SignalName(syscall.Signal(n))
}

// ExecPath makes the path of the somaflow binary that batch jobs run
// (exec-job) absolute, a bare name looked up on PATH: batch scripts run it
// from the spool dir, on another host.
func ExecPath(p string) (string, error) {
	if !strings.Contains(p, "/") {
		lp, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("exec-job binary %q: %w", p, err)
		}
		p = lp
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("exec-job binary %q: %w", p, err)
	}
	return abs, nil
}
