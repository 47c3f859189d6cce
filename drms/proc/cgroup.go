package proc

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Cgroups gives each job a cgroup (v2) of its own, below the cgroup of the
// calling process, where the unified hierarchy is mounted and writable. The
// job starts in it (clone into the cgroup: no window where a child could
// leave first), and its end kills every process still in it, wherever
// they went (setsid, double forks, a daemon that reparented itself). A nil
// *Cgroups is valid and does nothing: the process group and the child
// subreaper's sweep remain.
//
// The cgroups are slots, used again when a job left nothing behind: making
// and removing one per job costs more than starting a short job (a fresh
// cgroup per `true` made each start 20% slower here). A slot where
// something had to be killed is removed instead: on this kernel (6.18) a
// process cloned into a cgroup once written cgroup.kill is killed at birth.
type Cgroups struct {
	dir string

	mu    sync.Mutex
	slots int               // slots made so far: j0, j1, ...
	free  []string          // empty slots
	busy  map[string]string // job key -> its slot
	dead  []string          // killed slots, removed once empty
}

// OpenCgroups returns job cgroups under a new cgroup named after name,
// this process and this call (NAME.PID.N, below this process's own cgroup;
// name starts with "somaflow-"), or nil when cgroups v2 cannot be used
// here: not mounted, not writable, or a process cannot be started into
// one, or not asked for (CgroupsEnv). What processes that died left there
// is removed when empty.
func OpenCgroups(name string) *Cgroups {
	if os.Getenv(CgroupsEnv) != "1" {
		return nil // off unless asked: see CgroupsEnv
	}
	root, own := cgroup2Mount(), ownCgroup()
	if root == "" || own == "" {
		return nil
	}
	removeStale(filepath.Join(root, own))
	dir := filepath.Join(root, own, fmt.Sprintf("%s.%d.%d", name, os.Getpid(), openSeq.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil
	}
	c := &Cgroups{dir: dir, busy: map[string]string{}}
	if !c.probe() {
		c.Close()
		return nil
	}
	return c
}

// CgroupsEnv is the variable that turns job cgroups on (=1). They are off
// by default: the supervisor's start and reuse of a cgroup cost about half
// a millisecond per job (measured on the chain benchmark, W2 submit+wait),
// which the process group and the child subreaper's sweep do not; sites
// whose jobs double-fork daemons turn them on.
const CgroupsEnv = "SOMAFLOW_CGROUPS"

// openSeq tells apart the Cgroups of one process.
var openSeq atomic.Int64

// removeStale removes the empty cgroups that processes no longer running
// left under parent (somaflow-*.PID.N).
func removeStale(parent string) {
	stale, _ := filepath.Glob(filepath.Join(parent, "somaflow-*.*.*"))
	for _, dir := range stale {
		parts := strings.Split(filepath.Base(dir), ".")
		if len(parts) != 3 {
			continue
		}
		pid, err := strconv.Atoi(parts[1])
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // its process runs
		}
		slots, _ := filepath.Glob(filepath.Join(dir, "j*"))
		for _, slot := range slots {
			_ = syscall.Rmdir(slot)
		}
		_ = syscall.Rmdir(dir)
	}
}

// probe starts /bin/sh in a job cgroup and reaps it: whether starting into
// a cgroup works here (the kernel, the filesystem's permissions, seccomp).
func (c *Cgroups) probe() bool {
	fd, err := c.Enter("probe")
	if err != nil {
		return false
	}
	defer c.Kill("probe")
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "exit 0"}, &syscall.ProcAttr{
		Sys: &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd},
	})
	syscall.Close(fd)
	if err != nil {
		return false
	}
	var ws syscall.WaitStatus
	_, err = Wait4(pid, &ws, nil)
	return err == nil && ws.Exited() && ws.ExitStatus() == 0
}

// Enter gives the job a cgroup and returns an open descriptor of it, to
// start the job into (SysProcAttr.CgroupFD); the caller closes it, and
// calls Kill once the job ended (or did not start).
func (c *Cgroups) Enter(key string) (int, error) {
	if c == nil {
		return -1, errors.New("no cgroups")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleanLocked()
	var slot string
	if n := len(c.free); n > 0 {
		slot, c.free = c.free[n-1], c.free[:n-1]
	} else {
		// A new slot, never killed (see Cgroups).
		slot = filepath.Join(c.dir, "j"+strconv.Itoa(c.slots))
		c.slots++
		if err := os.Mkdir(slot, 0o755); err != nil {
			return -1, err
		}
	}
	fd, err := unix.Open(slot, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		c.dead = append(c.dead, slot)
		return -1, err
	}
	c.busy[key] = slot
	return fd, nil
}

// Kill kills (SIGKILL) every process in the job's cgroup; the cgroup takes
// another job once it is empty.
func (c *Cgroups) Kill(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	slot, ok := c.busy[key]
	if !ok {
		return
	}
	delete(c.busy, key)
	if !populated(slot) {
		c.free = append(c.free, slot) // the usual case: nothing left
		return
	}
	// cgroup.kill (Linux 5.14) kills all at once, forks in flight included;
	// older kernels get a kill of each process listed, a few rounds.
	if err := os.WriteFile(filepath.Join(slot, "cgroup.kill"), []byte("1"), 0); err != nil {
		for range 5 {
			pids := cgroupProcs(slot)
			if len(pids) == 0 {
				break
			}
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	c.dead = append(c.dead, slot)
	c.cleanLocked()
}

// Clean removes the cgroups of killed jobs that are empty by now.
func (c *Cgroups) Clean() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleanLocked()
}

func (c *Cgroups) cleanLocked() {
	kept := c.dead[:0]
	for _, slot := range c.dead {
		if err := syscall.Rmdir(slot); err != nil && !errors.Is(err, syscall.ENOENT) {
			kept = append(kept, slot) // still populated
		}
	}
	c.dead = kept
}

// Close removes the empty cgroups and, when no job is left in any, the
// parent cgroup.
func (c *Cgroups) Close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleanLocked()
	for _, slot := range c.free {
		_ = syscall.Rmdir(slot)
	}
	c.free = nil
	_ = syscall.Rmdir(c.dir)
}

// Of returns the path of the cgroup of a job that has one ("" if none).
func (c *Cgroups) Of(key string) string {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.busy[key]
}

// populated tells whether a process is in the cgroup (or its state cannot
// be read).
func populated(path string) bool {
	data, err := os.ReadFile(filepath.Join(path, "cgroup.events"))
	return err != nil || !strings.Contains(string(data), "populated 0")
}

// cgroupProcs lists the processes in a cgroup.
func cgroupProcs(path string) []int {
	data, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cgroup2Mount is where the unified (v2) hierarchy is mounted, "" if it is
// not.
func cgroup2Mount() string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, fs := strings.Fields(pre), strings.Fields(post)
		if ok && len(fields) >= 5 && len(fs) > 0 && fs[0] == "cgroup2" && fields[3] == "/" {
			return fields[4]
		}
	}
	return ""
}

// ownCgroup is this process's cgroup in the unified hierarchy ("/..."),
// "" if it has none.
func ownCgroup() string {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok && strings.HasPrefix(p, "/") {
			return p
		}
	}
	return ""
}
