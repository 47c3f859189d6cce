// Package execjob is `somaflow exec-job`, the wrapper every batch backend
// (Slurm, PBS, DRMAA) runs each job under:
//
//	somaflow exec-job --status FILE [--dir D] [--stdin F] [--stdout F] [--stderr F]
//	                  [--join] [--env-file F] [--private DIR] -- argv...
//
// It writes FILE.started (the DRMS job id, host, pid, time) when it begins,
// checks that the command (looked up on the job's PATH), the working
// directory and the stdin file exist — if not it writes the status
// {"state":"not_started","reason":...} and exits 127 — and otherwise runs the
// command in its own process group, forwards the usual signals to it, waits,
// writes {"state":"exited"|"signaled","exit":N,"signal":"SIGTERM",
// "rusage":{...},"started":...,"ended":...} atomically (temp file + rename,
// mode 0600), and then exits with the same code or re-raises the same signal
// on itself, so that a batch script that `exec`s it hands the DRMS the truth.
//
// The status and started files are read back by package drms/batch.
package execjob

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/proc"
	"github.com/somaflow/somaflow/privdir"
)

// Status states written in the status file.
const (
	StateExited     = "exited"
	StateSignaled   = "signaled"
	StateNotStarted = "not_started"
)

// ExitNotStarted is exec-job's exit code when the job could not start.
const ExitNotStarted = 127

// ExitUsage is exec-job's exit code for a malformed command line.
const ExitUsage = 2

// Status is the content of the status file (FILE).
type Status struct {
	State  string `json:"state"`            // exited, signaled, not_started
	Exit   *int   `json:"exit,omitempty"`   // exit code when State is exited
	Signal string `json:"signal,omitempty"` // "SIGTERM" when State is signaled
	Reason string `json:"reason,omitempty"` // what was missing when not_started
	// Rusage of the command (nil when it did not start).
	Rusage  *Rusage   `json:"rusage,omitempty"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`
	// JobID is the DRMS job id (as in Started).
	JobID string `json:"job_id,omitempty"`
	Host  string `json:"host,omitempty"`
}

// Rusage is the resource usage of the command and its waited-for children.
type Rusage struct {
	UserS     float64 `json:"user_s"`
	SysS      float64 `json:"sys_s"`
	MaxRSSKiB int64   `json:"max_rss_kib"`
	// WallS is the wall time from the command's start to its end.
	WallS float64 `json:"wall_s"`
}

// Started is the content of FILE.started, written when exec-job begins.
type Started struct {
	// JobID is the DRMS job id: SLURM_JOB_ID, PBS_JOBID or JOB_ID.
	JobID string    `json:"job_id"`
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Time  time.Time `json:"time"`
}

// StartedPath is the started file belonging to status file path.
func StartedPath(status string) string { return status + ".started" }

// Options is a parsed exec-job command line.
type Options struct {
	Status  string
	Dir     string
	Stdin   string
	Stdout  string
	Stderr  string
	Join    bool
	EnvFile string
	// Private: output files under this directory are created 0600 (dirs 0700).
	Private string
	Argv    []string
}

// Args is the exec-job command line (without the program name and the
// "exec-job" word) for o; Main(o.Args()) runs o.
func (o Options) Args() []string {
	a := []string{"--status", o.Status}
	add := func(flag, v string) {
		if v != "" {
			a = append(a, flag, v)
		}
	}
	add("--dir", o.Dir)
	add("--stdin", o.Stdin)
	add("--stdout", o.Stdout)
	add("--stderr", o.Stderr)
	if o.Join {
		a = append(a, "--join")
	}
	add("--env-file", o.EnvFile)
	add("--private", o.Private)
	a = append(a, "--")
	return append(a, o.Argv...)
}

// Parse parses an exec-job command line (os.Args[2:]).
func Parse(args []string) (Options, error) {
	var o Options
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			o.Argv = args[i+1:]
			break
		}
		name, val, hasVal := strings.Cut(a, "=")
		var dst *string
		switch name {
		case "--status":
			dst = &o.Status
		case "--dir":
			dst = &o.Dir
		case "--stdin":
			dst = &o.Stdin
		case "--stdout":
			dst = &o.Stdout
		case "--stderr":
			dst = &o.Stderr
		case "--env-file":
			dst = &o.EnvFile
		case "--private":
			dst = &o.Private
		case "--join":
			if hasVal {
				return o, fmt.Errorf("exec-job: --join takes no value")
			}
			o.Join = true
			continue
		default:
			return o, fmt.Errorf("exec-job: unknown argument %q (the command goes after --)", a)
		}
		if !hasVal {
			if i+1 >= len(args) {
				return o, fmt.Errorf("exec-job: %s needs a value", name)
			}
			i++
			val = args[i]
		}
		*dst = val
	}
	if o.Status == "" {
		return o, fmt.Errorf("exec-job: --status FILE is required")
	}
	if len(o.Argv) == 0 {
		return o, fmt.Errorf("exec-job: no command given after --")
	}
	return o, nil
}

// forwarded are the signals exec-job passes on to the command's process group.
var forwarded = []os.Signal{
	syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGALRM, syscall.SIGXCPU,
	syscall.SIGCONT, syscall.SIGWINCH,
}

// Main runs exec-job with args (os.Args[2:]) and returns its exit code; when
// the command was killed by a signal it kills itself with the same signal
// and returns only if that did not work (128+N then).
func Main(args []string) int {
	o, err := Parse(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if o.Status != "" {
			_ = writeJSON(o.Status, Status{State: StateNotStarted, Reason: err.Error(), Started: time.Now(), Ended: time.Now()})
		}
		return ExitUsage
	}
	// Catch the signals now, so that one arriving before the command starts
	// is passed on to it (and does not kill exec-job without a status).
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)

	host, _ := os.Hostname()
	jobID := DRMSJobID()
	if err := writeJSON(StartedPath(o.Status), Started{JobID: jobID, Host: host, PID: os.Getpid(), Time: time.Now()}); err != nil {
		fmt.Fprintf(os.Stderr, "exec-job: %v\n", err)
		// Go on: the status file still tells the outcome.
	}
	st, sig := run(o, sigs)
	st.JobID, st.Host = jobID, host
	if err := writeJSON(o.Status, st); err != nil {
		fmt.Fprintf(os.Stderr, "exec-job: %v\n", err)
	}
	switch st.State {
	case StateNotStarted:
		fmt.Fprintf(os.Stderr, "somaflow exec-job: %s\n", st.Reason)
		return ExitNotStarted
	case StateSignaled:
		signal.Stop(sigs)
		raise(sig)
		return 128 + int(sig)
	default:
		return *st.Exit
	}
}

// DRMSJobID is the DRMS job id from the environment (SLURM_JOB_ID, PBS_JOBID,
// JOB_ID), "" outside a batch job.
func DRMSJobID() string {
	for _, k := range []string{"SLURM_JOB_ID", "PBS_JOBID", "JOB_ID"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return ""
}

func notStarted(reason string) (Status, syscall.Signal) {
	now := time.Now()
	return Status{State: StateNotStarted, Reason: reason, Started: now, Ended: now}, 0
}

// run checks and runs the command; it returns the status to write and the
// signal that killed the command (0 if none).
func run(o Options, sigs chan os.Signal) (Status, syscall.Signal) {
	env := os.Environ()
	if o.EnvFile != "" {
		extra, err := ReadEnvFile(o.EnvFile)
		if err != nil {
			return notStarted(fmt.Sprintf("environment file %q cannot be read: %v", o.EnvFile, proc.UnwrapPath(err)))
		}
		env = drms.MergeEnv(env, extra)
	}
	dir := o.Dir
	if dir == "" {
		dir, _ = os.Getwd()
	} else if err := proc.CheckDir(dir); err != nil {
		return notStarted(err.(*drms.StartError).Reason)
	}
	path, err := proc.LookPath(o.Argv[0], proc.EnvValue(env, "PATH"), dir)
	if err != nil {
		return notStarted(err.(*drms.StartError).Reason)
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	in := abs(o.Stdin)
	if in == "" {
		in = os.DevNull
	}
	stdin, err := os.Open(in)
	if err != nil {
		return notStarted(fmt.Sprintf("stdin file %q cannot be opened: %v", o.Stdin, proc.UnwrapPath(err)))
	}
	defer stdin.Close()
	stdout, err := proc.CreateOutput(abs(o.Stdout), o.Private)
	if err != nil {
		return notStarted(fmt.Sprintf("stdout file %q cannot be created: %v", o.Stdout, proc.UnwrapPath(err)))
	}
	defer stdout.Close()
	stderr := stdout
	if !o.Join && o.Stderr != o.Stdout {
		if stderr, err = proc.CreateOutput(abs(o.Stderr), o.Private); err != nil {
			return notStarted(fmt.Sprintf("stderr file %q cannot be created: %v", o.Stderr, proc.UnwrapPath(err)))
		}
		defer stderr.Close()
	}

	started := time.Now()
	p, err := os.StartProcess(path, o.Argv, &os.ProcAttr{
		Dir: dir, Env: env, Files: []*os.File{stdin, stdout, stderr},
		// Pdeathsig: a DRMS that kills only this wrapper's process group
		// (Grid Engine's qdel of a root job) must not leave the command running.
		Sys: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return notStarted(fmt.Sprintf("command %q cannot be executed: %v", o.Argv[0], proc.UnwrapPath(err)))
	}
	stdin.Close()
	stdout.Close()
	stderr.Close()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				// To the whole group, so that the command's children get it too.
				if err := syscall.Kill(-p.Pid, s.(syscall.Signal)); err != nil {
					_ = p.Signal(s)
				}
			case <-done:
				return
			}
		}
	}()
	ps, werr := p.Wait()
	close(done)
	ended := time.Now()
	if werr != nil {
		// Cannot happen for our own child; report it as a start failure.
		return notStarted(fmt.Sprintf("waiting for %q failed: %v", o.Argv[0], werr))
	}
	st := Status{Started: started, Ended: ended}
	r := &Rusage{WallS: ended.Sub(started).Seconds()}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok && ru != nil {
		r.UserS = time.Duration(ru.Utime.Nano()).Seconds()
		r.SysS = time.Duration(ru.Stime.Nano()).Seconds()
		r.MaxRSSKiB = int64(ru.Maxrss) // KiB on Linux
	}
	st.Rusage = r
	ws := ps.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		st.State, st.Signal = StateSignaled, unix.SignalName(ws.Signal())
		return st, ws.Signal()
	}
	n := ws.ExitStatus()
	st.State, st.Exit = StateExited, &n
	return st, 0
}

// raise kills the current process with sig, default disposition restored.
func raise(sig syscall.Signal) {
	if sig != syscall.SIGKILL && sig != syscall.SIGSTOP {
		resetSignal(sig)
	}
	_ = syscall.Kill(os.Getpid(), sig)
	// A signal whose default action is to be ignored (SIGCHLD, SIGWINCH...)
	// or that is delivered late: give it a moment, then the caller exits 128+N.
	time.Sleep(500 * time.Millisecond)
}

// ReadEnvFile reads an environment file: "K=V" entries separated by NUL
// bytes. The file and its directory must be the user's own and closed to
// others (privdir), and the file is not followed through a symlink: in a
// spool dir shared with other users, nobody else may have planted or
// swapped it.
func ReadEnvFile(path string) ([]string, error) {
	if err := privdir.CheckWriters(filepath.Dir(path)); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := privdir.CheckFile(f); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range strings.Split(string(b), "\x00") {
		if kv == "" {
			continue
		}
		if !strings.Contains(kv, "=") {
			return nil, fmt.Errorf("entry %q has no '='", kv)
		}
		env = append(env, kv)
	}
	return env, nil
}

// WriteEnvFile writes env ("K=V" entries) as an environment file, mode 0600,
// atomically.
func WriteEnvFile(path string, env []string) error {
	var sb strings.Builder
	for _, kv := range env {
		if strings.IndexByte(kv, 0) >= 0 || !strings.Contains(kv, "=") {
			return fmt.Errorf("environment entry %q is not K=V without NUL bytes", kv)
		}
		sb.WriteString(kv)
		sb.WriteByte(0)
	}
	return privdir.WriteFileAtomic(path, []byte(sb.String()))
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return privdir.WriteFileAtomic(path, append(b, '\n'))
}

// ReadStatus reads a status file; errors wrap fs.ErrNotExist when it does not exist.
func ReadStatus(path string) (*Status, error) {
	var s Status
	if err := readJSON(path, &s); err != nil {
		return nil, err
	}
	switch s.State {
	case StateExited:
		if s.Exit == nil {
			return nil, fmt.Errorf("status file %s: state exited without an exit code", path)
		}
	case StateSignaled:
		if s.Signal == "" {
			return nil, fmt.Errorf("status file %s: state signaled without a signal", path)
		}
	case StateNotStarted:
	default:
		return nil, fmt.Errorf("status file %s: unknown state %q", path, s.State)
	}
	return &s, nil
}

// ReadStarted reads a started file; errors wrap fs.ErrNotExist when it does not exist.
func ReadStarted(path string) (*Started, error) {
	var s Started
	if err := readJSON(path, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

func readJSON(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s is not a valid exec-job file: %w", path, err)
	}
	return nil
}
