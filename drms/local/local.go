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
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/somaflow/somaflow/drms"
)

// HandleVersion is the version of the handles this package writes.
const HandleVersion = 1

// KillGrace is how long Kill waits after SIGTERM before SIGKILL.
const KillGrace = 2 * time.Second

// Backend runs jobs as child processes of the current process.
type Backend struct {
	cfg    drms.Config
	events chan drms.Event

	mu    sync.Mutex
	procs map[string]*proc // by handle ID (pid)
}

type proc struct {
	pid     int
	started time.Time
	killed  bool
	outcome *drms.Outcome // set once ended, until delivered
}

// handleState is the persisted part of a local handle.
type handleState struct {
	PID       int    `json:"pid"`
	StartTick uint64 `json:"start_tick"` // /proc/PID/stat starttime, against pid reuse
	Started   int64  `json:"started_unix_ns"`
}

// New returns a local backend.
func New(cfg drms.Config) *Backend {
	return &Backend{cfg: cfg, events: make(chan drms.Event, 4096), procs: map[string]*proc{}}
}

// Capabilities implements drms.Backend.
func (b *Backend) Capabilities() drms.Capabilities {
	n := b.cfg.Settings["max-jobs"]
	mj, _ := strconv.Atoi(n)
	if mj <= 0 {
		mj = cpuCount()
	}
	return drms.Capabilities{Name: "local", MaxJobsDefault: mj}
}

// Events implements drms.Notifier: one event per ended job.
func (b *Backend) Events() <-chan drms.Event { return b.events }

// Submit starts the job now. A missing command, working directory or stdin
// file gives a *drms.StartError and starts nothing.
func (b *Backend) Submit(ctx context.Context, spec drms.JobSpec) (drms.Handle, error) {
	if len(spec.Argv) == 0 {
		return drms.Handle{}, &drms.StartError{Reason: "empty command"}
	}
	if err := checkDir(spec.Dir); err != nil {
		return drms.Handle{}, err
	}
	path, err := lookPath(spec.Argv[0], envValue(spec.Env, "PATH"), spec.Dir)
	if err != nil {
		return drms.Handle{}, err
	}
	files, err := b.openFiles(spec)
	if err != nil {
		return drms.Handle{}, err
	}
	started := time.Now()
	p, err := os.StartProcess(path, spec.Argv, &os.ProcAttr{
		Dir: spec.Dir, Env: spec.Env, Files: files,
		Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOEXEC) || errors.Is(err, fs.ErrPermission) {
			return drms.Handle{}, &drms.StartError{Reason: fmt.Sprintf("command %q cannot be executed: %v", spec.Argv[0], err)}
		}
		return drms.Handle{}, fmt.Errorf("local: start %q: %w", spec.Argv[0], err)
	}
	id := strconv.Itoa(p.Pid)
	pr := &proc{pid: p.Pid, started: started}
	b.mu.Lock()
	b.procs[id] = pr
	b.mu.Unlock()
	go b.wait(id, p, pr)
	st, _ := json.Marshal(handleState{PID: p.Pid, StartTick: startTick(p.Pid), Started: started.UnixNano()})
	return drms.Handle{Version: HandleVersion, ID: id, State: st}, nil
}

func (b *Backend) wait(id string, p *os.Process, pr *proc) {
	ps, err := p.Wait()
	ended := time.Now()
	var o *drms.Outcome
	if err != nil {
		o = drms.Undetermined("wait failed: " + err.Error())
	} else {
		ws := ps.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			o = drms.Signaled(unix.SignalName(ws.Signal()), "")
		} else {
			o = drms.Exited(ws.ExitStatus())
		}
		o.Usage = usage(ps, ended.Sub(pr.started))
	}
	o.Started, o.Ended = pr.started, ended
	b.mu.Lock()
	pr.outcome = o
	b.mu.Unlock()
	// Kill the rest of the group: a job's leftovers do not outlive it.
	_ = syscall.Kill(-pr.pid, syscall.SIGKILL)
	b.events <- drms.Event{ID: id, State: drms.State{Phase: drms.Ended, Started: pr.started, Outcome: o}}
	b.mu.Lock()
	delete(b.procs, id)
	b.mu.Unlock()
}

func usage(ps *os.ProcessState, wall time.Duration) drms.Usage {
	w := wall.Seconds()
	u := drms.Usage{WallS: &w, Raw: map[string]string{}}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok && ru != nil {
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		rss := int64(ru.Maxrss)
		u.CPUS, u.MaxRSSKiB = &cpu, &rss
		u.Raw["utime"] = time.Duration(ru.Utime.Nano()).String()
		u.Raw["stime"] = time.Duration(ru.Stime.Nano()).String()
		u.Raw["maxrss"] = strconv.FormatInt(rss, 10)
	}
	return u
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
	time.AfterFunc(KillGrace, func() {
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
	var hs handleState
	if err := json.Unmarshal(h.State, &hs); err != nil || hs.PID <= 0 {
		return drms.State{Phase: drms.Ended, Outcome: drms.Undetermined("engine restarted; the job's handle is unreadable")}, nil
	}
	reason := "engine restarted while the job ran; its exit status was lost with the engine"
	if hs.StartTick != 0 && startTick(hs.PID) == hs.StartTick {
		_ = syscall.Kill(-hs.PID, syscall.SIGKILL)
		reason = "engine restarted while the job ran; the orphaned job was killed, its exit status is unknown"
	}
	o := drms.Undetermined(reason)
	o.Started = time.Unix(0, hs.Started)
	return drms.State{Phase: drms.Ended, Started: o.Started, Outcome: o}, nil
}

// Close implements drms.Backend; running children are left alone.
func (b *Backend) Close() error { return nil }

func (b *Backend) openFiles(spec drms.JobSpec) ([]*os.File, error) {
	var files []*os.File
	fail := func(err error) ([]*os.File, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, err
	}
	in := spec.Stdin
	if in == "" {
		in = os.DevNull
	}
	f, err := os.Open(in)
	if err != nil {
		return fail(&drms.StartError{Reason: fmt.Sprintf("stdin file %q cannot be opened: %v", spec.Stdin, unwrapPath(err))})
	}
	files = append(files, f)
	out, err := b.create(spec.Stdout)
	if err != nil {
		return fail(&drms.StartError{Reason: fmt.Sprintf("stdout file %q cannot be created: %v", spec.Stdout, unwrapPath(err))})
	}
	files = append(files, out)
	if spec.Join || spec.Stderr == "" || spec.Stderr == spec.Stdout {
		files = append(files, out)
		return files, nil
	}
	errf, err := b.create(spec.Stderr)
	if err != nil {
		return fail(&drms.StartError{Reason: fmt.Sprintf("stderr file %q cannot be created: %v", spec.Stderr, unwrapPath(err))})
	}
	return append(files, errf), nil
}

// create opens an output file, making its directory as needed. Files under
// the state dir are private (0600 in 0700 dirs); others follow the umask.
func (b *Backend) create(path string) (*os.File, error) {
	if path == "" {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	fmode, dmode := os.FileMode(0o666), os.FileMode(0o777)
	if b.cfg.StateDir != "" && strings.HasPrefix(path, b.cfg.StateDir+string(os.PathSeparator)) {
		fmode, dmode = 0o600, 0o700
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fmode)
	if errors.Is(err, fs.ErrNotExist) {
		if mkErr := os.MkdirAll(filepath.Dir(path), dmode); mkErr == nil {
			f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fmode)
		}
	}
	return f, err
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return &drms.StartError{Reason: fmt.Sprintf("working directory %q does not exist", dir)}
	}
	if !fi.IsDir() {
		return &drms.StartError{Reason: fmt.Sprintf("working directory %q is not a directory", dir)}
	}
	return nil
}

// lookPath finds a command on the job's own PATH (not the engine's).
func lookPath(name, path, dir string) (string, error) {
	notFound := &drms.StartError{Reason: fmt.Sprintf("command %q not found", name)}
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if isExec(p) {
			return p, nil
		}
		return "", notFound
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		if p := filepath.Join(d, name); isExec(p) {
			return p, nil
		}
	}
	return "", notFound
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// startTick reads a process's start time (clock ticks since boot) from
// /proc, so that a reused pid is not mistaken for our job; 0 if unknown.
func startTick(pid int) uint64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(fields[19], 10, 64)
	return v
}

func cpuCount() int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) == nil {
		if n := set.Count(); n > 0 {
			return n
		}
	}
	return 1
}

var _ drms.Notifier = (*Backend)(nil)
