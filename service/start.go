package service

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/somaflow/somaflow/privdir"
)

// Holder is what the lock file records of the engine holding it.
type Holder struct {
	Running bool
	Host    string
	PID     int
}

// Engine tells whether an engine holds the state dir's lock, and its host
// and pid. It changes nothing.
func Engine(dir string) Holder {
	running, info := Running(dir)
	h := Holder{Running: running}
	for _, f := range strings.Fields(info) {
		if v, ok := strings.CutPrefix(f, "host="); ok {
			h.Host = v
		}
		if v, ok := strings.CutPrefix(f, "pid="); ok {
			h.PID, _ = strconv.Atoi(v)
		}
	}
	return h
}

// DefaultIdle is how long a background engine waits with nothing to do
// before it exits: SOMAFLOW_ENGINE_IDLE (seconds, or a Go duration: 10m),
// else 5 minutes.
func DefaultIdle() time.Duration {
	if v := os.Getenv("SOMAFLOW_ENGINE_IDLE"); v != "" {
		if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 {
			return time.Duration(n * float64(time.Second))
		}
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			return d
		}
	}
	return 5 * time.Minute
}

// Ensure starts a background engine on the state dir (Start) and returns
// once that engine holds the lock (Starting.Wait).
func Ensure(dir, exe string) error {
	st, err := Start(dir, exe)
	if err != nil {
		return err
	}
	st.Wait()
	return nil
}

// Starting is an engine that Start started.
type Starting struct {
	dir    string
	exited chan struct{}
}

// Start starts a background engine on the state dir (`exe engine
// --background`; exe "" is the running binary) unless one runs, here or on
// another host (the lock file's heartbeat says so), or
// SOMAFLOW_ENGINE_AUTOSTART=0 (the site runs the engine itself: systemd, a
// batch allocation); then it returns a nil *Starting. The engine is
// detached: its own session, no terminal, its output appended to
// <dir>/engine.log, so it survives the user's logout. It returns at once:
// the caller goes on (storing a workflow: the engine sees it when it is
// stored) while the engine starts, then calls Wait.
func Start(dir, exe string) (*Starting, error) {
	if os.Getenv("SOMAFLOW_ENGINE_AUTOSTART") == "0" {
		return nil, nil
	}
	if running, _ := Running(dir); running {
		return nil, nil
	}
	if other, _ := OtherHost(dir); other {
		return nil, nil // its engine will see the intents in the database
	}
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("cannot find the somaflow binary to start the engine: %w", err)
		}
	}
	// It may start before anything else made the state dir.
	if err := privdir.Ensure(dir); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	logf, err := privdir.OpenFile(filepath.Join(dir, "engine.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("engine log: %w", err)
	}
	defer logf.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	cmd := exec.Command(exe, "--state-dir", dir, "engine", "--background", "--idle", DefaultIdle().String())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start engine: %w", err)
	}
	st := &Starting{dir: dir, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(st.exited) }()
	return st, nil
}

// Wait returns once the engine holds the lock, or exited (another engine
// won the race, or it failed and its log says why), or after startWait, so
// that what runs next (`engine status`, a wait) sees it. A nil *Starting
// returns at once.
func (st *Starting) Wait() {
	if st == nil {
		return
	}
	deadline := time.Now().Add(startWait)
	for time.Now().Before(deadline) {
		if running, _ := Running(st.dir); running {
			return
		}
		select {
		case <-st.exited:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// startWait bounds how long Ensure waits for the engine it started to take
// the lock.
const startWait = 10 * time.Second

// ErrOtherHost is returned by Stop when the engine runs on another host.
var ErrOtherHost = errors.New("the engine runs on another host")

// ErrNotStopped is returned by Stop when the engine did not exit in time.
var ErrNotStopped = errors.New("the engine did not stop")

// Stop asks the state dir's engine to exit (SIGTERM; its jobs keep
// running) and waits up to timeout until it released its lock. It returns
// what the lock recorded of the engine (Running false: none ran).
func Stop(dir string, timeout time.Duration) (Holder, error) {
	deadline := time.Now().Add(timeout)
	h := Engine(dir)
	// An engine that has just taken the lock may not have written its pid
	// yet: kill(0) would signal the caller's own process group (the
	// user's shell pipeline, or a test run and everything above it).
	for h.Running && h.PID <= 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		h = Engine(dir)
	}
	if !h.Running {
		return h, nil
	}
	if h.PID <= 0 {
		return h, fmt.Errorf("%w: its lock file records no pid (within %v)", ErrNotStopped, timeout)
	}
	if me, _ := os.Hostname(); h.Host != me {
		return h, fmt.Errorf("%w (%s, pid %d): stop it there", ErrOtherHost, h.Host, h.PID)
	}
	if err := syscall.Kill(h.PID, syscall.SIGTERM); err != nil {
		return h, fmt.Errorf("stop engine pid %d: %w", h.PID, err)
	}
	for time.Now().Before(deadline) {
		if running, _ := Running(dir); !running {
			return h, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return h, fmt.Errorf("%w: pid %d within %v", ErrNotStopped, h.PID, timeout)
}

// DefaultDir is the state dir: $SOMAFLOW_STATE_DIR, else
// $XDG_STATE_HOME/somaflow, else ~/.local/state/somaflow.
func DefaultDir() (string, error) {
	if d := os.Getenv("SOMAFLOW_STATE_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "somaflow"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state dir: set --state-dir or SOMAFLOW_STATE_DIR: %w", err)
	}
	return filepath.Join(home, ".local", "state", "somaflow"), nil
}
