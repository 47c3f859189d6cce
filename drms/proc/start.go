package proc

import (
	"bytes"
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

// This file starts a job and turns its wait status into an Outcome.

// Start starts one job as a child of the calling process, in its own process
// group (pgid = pid): the command looked up on the job's own PATH, its
// working directory, environment and stdin/stdout/stderr files (join, and
// output directories created as needed; files under stateDir are 0600 in
// 0700 directories). Streams marked lazy in spec go through pipes to files
// created on the first byte: the returned Output (nil if none) copies them,
// and the caller calls its Finish once the job is reaped. A missing command,
// working directory or stdin file gives a *drms.StartError and starts
// nothing. The caller must reap the child (Wait4, or wait4(-1) in a reaper).
func Start(spec drms.JobSpec, stateDir string) (pid int, out *Output, err error) {
	return StartIn(spec, stateDir, nil, "")
}

// StartIn is Start with the job in its own cgroup of cg, named by key
// (cg nil: none).
func StartIn(spec drms.JobSpec, stateDir string, cg *Cgroups, key string) (pid int, out *Output, err error) {
	if len(spec.Argv) == 0 {
		return 0, nil, &drms.StartError{Reason: "empty command"}
	}
	if err := CheckDir(spec.Dir); err != nil {
		return 0, nil, err
	}
	path, err := LookPath(spec.Argv[0], EnvValue(spec.Env, "PATH"), spec.Dir)
	if err != nil {
		return 0, nil, err
	}
	files, out, err := openFiles(spec, stateDir)
	if err != nil {
		return 0, nil, err
	}
	fds := make([]uintptr, len(files))
	for i, f := range files {
		fds[i] = f.Fd()
	}
	sys := &syscall.SysProcAttr{Setpgid: true}
	if cg != nil {
		fd, err := cg.Enter(key)
		if err != nil {
			closeFiles(files)
			out.abandon()
			return 0, nil, fmt.Errorf("local: job cgroup: %w", err)
		}
		defer syscall.Close(fd)
		sys.UseCgroupFD, sys.CgroupFD = true, fd
	}
	pid, err = syscall.ForkExec(path, spec.Argv, &syscall.ProcAttr{
		Dir: spec.Dir, Env: spec.Env, Files: fds, Sys: sys,
	})
	closeFiles(files)
	if err != nil {
		cg.Kill(key) // nothing started: its cgroup is free again
	}
	if err != nil {
		out.abandon()
		if permanentStartError(err) {
			return 0, nil, &drms.StartError{Reason: fmt.Sprintf("command %q cannot be executed: %v", spec.Argv[0], err)}
		}
		return 0, nil, fmt.Errorf("local: start %q: %w", spec.Argv[0], err)
	}
	out.start()
	return pid, out, nil
}

// permanentStartError tells a start that fails the same way at every
// attempt (the job ends aborted with the system's words) from one worth
// retrying (out of processes or memory for now): a missing or
// non-executable program, an argument list too long (E2BIG), a NUL byte in
// an argument or the environment (EINVAL), a name too long or looping.
func permanentStartError(err error) bool {
	for _, e := range []error{fs.ErrNotExist, fs.ErrPermission, syscall.ENOEXEC, syscall.E2BIG, syscall.EINVAL,
		syscall.ENAMETOOLONG, syscall.ELOOP, syscall.EISDIR, syscall.ENOTDIR, syscall.EACCES} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Wait4 waits for the child pid (-1: any child), retrying on EINTR.
func Wait4(pid int, ws *syscall.WaitStatus, ru *syscall.Rusage) (int, error) {
	for {
		wpid, err := syscall.Wait4(pid, ws, 0, ru)
		if err != syscall.EINTR {
			return wpid, err
		}
	}
}

// WaitOutcome turns a real wait status and its rusage (nil if unknown) into
// an Outcome: exit value or signal name, times, wall and CPU time, max RSS.
func WaitOutcome(ws syscall.WaitStatus, ru *syscall.Rusage, started, ended time.Time) *drms.Outcome {
	var o *drms.Outcome
	if ws.Signaled() {
		o = drms.Signaled(unix.SignalName(ws.Signal()), "")
	} else {
		o = drms.Exited(ws.ExitStatus())
	}
	o.Started, o.Ended = started, ended
	o.Usage = Usage(ru, ended.Sub(started))
	return o
}

// Usage builds a drms.Usage from a wall time and an rusage (nil if unknown).
func Usage(ru *syscall.Rusage, wall time.Duration) drms.Usage {
	w := wall.Seconds()
	u := drms.Usage{WallS: &w, Raw: map[string]string{}}
	if ru != nil {
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		rss := int64(ru.Maxrss)
		u.CPUS, u.MaxRSSKiB = &cpu, &rss
		u.Raw["utime"] = time.Duration(ru.Utime.Nano()).String()
		u.Raw["stime"] = time.Duration(ru.Stime.Nano()).String()
		u.Raw["maxrss"] = strconv.FormatInt(rss, 10)
	}
	return u
}

// Orphaned ends a job whose parent (engine or supervisor) was lost: if the
// process pid still runs with the same start tick (not a reused pid), its
// whole process group is killed and the outcome says so (killedReason);
// otherwise goneReason. Either way the exit status is undetermined; nothing
// is re-run.
func Orphaned(pid int, tick uint64, started time.Time, goneReason, killedReason string) *drms.Outcome {
	reason := goneReason
	if pid > 0 && tick != 0 && StartTick(pid) == tick {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		reason = killedReason
	}
	o := drms.Undetermined(reason)
	o.Started = started
	o.Ended = time.Now()
	return o
}

// openFiles opens the job's stdin, stdout and stderr (the same file twice
// when joined). A lazy stream gets the write end of a pipe instead of its
// file; the read ends are in the returned Output.
func openFiles(spec drms.JobSpec, stateDir string) ([]*os.File, *Output, error) {
	var files []*os.File
	var out *Output
	fail := func(err error) ([]*os.File, *Output, error) {
		closeFiles(files)
		out.abandon()
		return nil, nil, err
	}
	open := func(name, path string, lazy bool) (*os.File, error) {
		if lazy && path != "" {
			s, w, err := newLazyStream(path, stateDir)
			if err != nil {
				return nil, err
			}
			if out == nil {
				out = &Output{}
			}
			out.streams = append(out.streams, s)
			return w, nil
		}
		f, err := CreateOutput(path, stateDir)
		if err != nil {
			return nil, &drms.StartError{Reason: fmt.Sprintf("%s file %q cannot be created: %v", name, path, UnwrapPath(err))}
		}
		return f, nil
	}
	if spec.Stdin == "" {
		f, err := devNull()
		if err != nil {
			return fail(err)
		}
		files = append(files, f)
	} else if f, err := os.Open(spec.Stdin); err != nil {
		return fail(&drms.StartError{Reason: fmt.Sprintf("stdin file %q cannot be opened: %v", spec.Stdin, UnwrapPath(err))})
	} else {
		files = append(files, f)
	}
	stdout, err := open("stdout", spec.Stdout, spec.LazyStdout)
	if err != nil {
		return fail(err)
	}
	files = append(files, stdout)
	if spec.Join || spec.Stderr == "" || spec.Stderr == spec.Stdout {
		files = append(files, stdout)
		return files, out, nil
	}
	stderr, err := open("stderr", spec.Stderr, spec.LazyStderr)
	if err != nil {
		return fail(err)
	}
	return append(files, stderr), out, nil
}

// devNull is /dev/null opened once for reading: the stdin of every job
// that has none.
var devNull = sync.OnceValues(func() (*os.File, error) { return os.Open(os.DevNull) })

// closeFiles closes the parent's copies of a job's files (not the shared
// /dev/null).
func closeFiles(files []*os.File) {
	dn, _ := devNull()
	for _, f := range files {
		if f != dn {
			f.Close()
		}
	}
}

// CreateOutput opens an output file, making its directory as needed. Files
// under privateDir (the state dir, the spool) are private (0600 in 0700
// dirs); others follow the umask. "" is /dev/null.
func CreateOutput(path, privateDir string) (*os.File, error) {
	if path == "" {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	fmode, dmode := os.FileMode(0o666), os.FileMode(0o777)
	if privateDir != "" && strings.HasPrefix(path, filepath.Clean(privateDir)+string(os.PathSeparator)) {
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

// UnwrapPath drops the path from a *fs.PathError (the message names the
// file already).
func UnwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// CheckDir checks that a job's working directory exists and is a
// directory; if not, a *drms.StartError says which.
func CheckDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return &drms.StartError{Reason: fmt.Sprintf("working directory %q does not exist", dir)}
	}
	if !fi.IsDir() {
		return &drms.StartError{Reason: fmt.Sprintf("working directory %q is not a directory", dir)}
	}
	return nil
}

// LookPath finds a command on the job's own PATH (not the engine's),
// relative entries and names against dir; a miss is a *drms.StartError.
func LookPath(name, path, dir string) (string, error) {
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
	key := name + "\x00" + path
	if p, ok := pathCache.get(key); ok {
		return p, nil
	}
	cacheable := true
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
			cacheable = false // depends on the working directory
		}
		if p := filepath.Join(d, name); isExec(p) {
			if cacheable {
				pathCache.put(key, p)
			}
			return p, nil
		}
	}
	return "", notFound
}

// pathCache remembers, for a second, where a command was found on a PATH:
// a workflow of a thousand `true` jobs then stats PATH once, not a thousand
// times. Misses are not cached (a command installed meanwhile is found).
var pathCache = &lookCache{m: map[string]lookEntry{}}

type lookEntry struct {
	path string
	at   time.Time
}

type lookCache struct {
	mu sync.Mutex
	m  map[string]lookEntry
}

func (c *lookCache) get(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || time.Since(e.at) > time.Second {
		return "", false
	}
	return e.path, true
}

func (c *lookCache) put(key, path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) > 1024 {
		clear(c.m)
	}
	c.m[key] = lookEntry{path, time.Now()}
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// EnvValue is the value of key in an environment list (the last one wins).
func EnvValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// StartTick reads a process's start time (clock ticks since boot) from
// /proc, so that a reused pid is not mistaken for a job; 0 if unknown.
func StartTick(pid int) uint64 {
	fd, err := syscall.Open("/proc/"+strconv.Itoa(pid)+"/stat", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	var buf [1024]byte
	n, err := syscall.Read(fd, buf[:])
	syscall.Close(fd)
	if err != nil || n <= 0 {
		return 0
	}
	s := buf[:n]
	i := bytes.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	// Field 22 (starttime) is the 20th after the command name.
	fields := bytes.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(string(fields[19]), 10, 64)
	return v
}

// CPUCount is the number of CPUs this process may run on (at least 1).
func CPUCount() int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) == nil {
		if n := set.Count(); n > 0 {
			return n
		}
	}
	return 1
}

// KillGrace is how long Kill waits after SIGTERM before SIGKILL.
const KillGrace = 2 * time.Second
