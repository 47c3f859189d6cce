package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
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
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
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

// Unlock releases the lock.
func (l *EngineLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
