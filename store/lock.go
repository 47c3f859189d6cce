package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/somaflow/somaflow/privdir"
)

// ErrEngineRunning is returned by LockEngine when another engine holds the
// state dir.
var ErrEngineRunning = errors.New("an engine already runs on this state dir")

// EngineLock is the flock that makes an engine the only one on a state dir.
type EngineLock struct{ f *os.File }

// LockEngine takes the state dir's engine lock without waiting, and records
// host and pid in the lock file. The error names the holder when it is taken.
func LockEngine(dir string) (*EngineLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	path := filepath.Join(dir, "engine.lock")
	f, err := privdir.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("engine lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s)", ErrEngineRunning, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("engine lock: %w", err)
	}
	host, _ := os.Hostname()
	f.Truncate(0)
	f.WriteAt([]byte(fmt.Sprintf("host=%s pid=%d\n", host, os.Getpid())), 0)
	return &EngineLock{f: f}, nil
}

// Heartbeat touches the lock file, so that commands on other hosts (where
// flock over a network filesystem may not be shared) see a live engine.
func (l *EngineLock) Heartbeat() {
	if l != nil && l.f != nil {
		now := time.Now()
		os.Chtimes(l.f.Name(), now, now)
	}
}

// HeartbeatPeriod is how often a running engine touches its lock file.
const HeartbeatPeriod = 10 * time.Second

// OtherHostEngine reports an engine that the lock file says runs on another
// host and that touched the file recently: flock may not reach across hosts,
// so this is what keeps a second host from starting a second engine.
func OtherHostEngine(dir string) (bool, string) {
	path := filepath.Join(dir, "engine.lock")
	fi, err := os.Stat(path)
	if err != nil {
		return false, ""
	}
	data, _ := os.ReadFile(path)
	info := strings.TrimSpace(string(data))
	me, _ := os.Hostname()
	host := ""
	for _, f := range strings.Fields(info) {
		if v, ok := strings.CutPrefix(f, "host="); ok {
			host = v
		}
	}
	recent := time.Since(fi.ModTime()) < 3*HeartbeatPeriod
	return host != "" && host != me && recent, info
}

// Unlock releases the lock.
func (l *EngineLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// EngineRunning reports whether an engine holds the state dir's lock, and
// what the lock file records of it ("host=H pid=P"). It changes nothing.
func EngineRunning(dir string) (bool, string) {
	path := filepath.Join(dir, "engine.lock")
	f, err := os.Open(path)
	if err != nil {
		return false, ""
	}
	defer f.Close()
	holder, _ := os.ReadFile(path)
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK), strings.TrimSpace(string(holder))
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false, strings.TrimSpace(string(holder))
}
