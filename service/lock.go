// Package service is somaflow's process model: one engine per state dir,
// guarded by a lock file (flock, recording host and pid, touched as a
// heartbeat for commands on other hosts, and holding the engine's problem
// when it cannot record progress); how a command finds that engine, starts
// one in the background when none runs, and stops it. Every way of running
// an engine (submit's background engine, `somaflow engine`, `run`, a Go
// program through client.Open) takes the lock here.
package service

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/somaflow/somaflow/privdir"
)

// ErrEngineRunning is returned by Lock when another engine holds the
// state dir.
var ErrEngineRunning = errors.New("an engine already runs on this state dir")

// EngineLock is the flock that makes an engine the only one on a state dir.
type EngineLock struct {
	f      *os.File
	holder string // "host=H pid=P"
}

// Lock takes the state dir's engine lock without waiting, and records
// host and pid in the lock file. The error names the holder when it is taken.
func Lock(dir string) (*EngineLock, error) {
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
			return nil, fmt.Errorf("%w (%s)", ErrEngineRunning, holderLine(holder))
		}
		return nil, fmt.Errorf("engine lock: %w", err)
	}
	host, _ := os.Hostname()
	l := &EngineLock{f: f, holder: fmt.Sprintf("host=%s pid=%d", host, os.Getpid())}
	f.Truncate(0)
	// The whole record is written now, so that its blocks exist: a problem
	// is later written over them, even on a full filesystem.
	l.write(nil)
	return l, nil
}

// lockRecordSize is the size of the lock file's record: the holder's line,
// the engine's problem if it has one, padding.
const lockRecordSize = 1024

// Problem is what keeps a running engine from making progress (its
// database cannot be written: a full disk, a read-only filesystem), since
// when. The engine keeps it in its lock file, which needs no new space, so
// that `status` and `wait` can say why nothing moves.
type Problem struct {
	Since   time.Time
	Message string
}

// SetProblem records the engine's problem in the lock file, or clears it
// (nil). It writes in place, over blocks the file already has.
func (l *EngineLock) SetProblem(p *Problem) error {
	if l == nil || l.f == nil {
		return nil
	}
	return l.write(p)
}

func (l *EngineLock) write(p *Problem) error {
	rec := l.holder + "\n"
	if p != nil {
		msg := strings.Join(strings.Fields(p.Message), " ")
		rec += "problem_since=" + p.Since.UTC().Format(time.RFC3339) + "\nproblem=" + msg
		if len(rec) > lockRecordSize-1 {
			rec = rec[:lockRecordSize-1]
		}
		rec += "\n"
	}
	buf := []byte(rec + strings.Repeat("\n", lockRecordSize-len(rec)))
	_, err := l.f.WriteAt(buf, 0)
	return err
}

// ReadProblem returns the problem the engine holding the state dir's
// lock recorded, or nil (none, or no engine runs).
func ReadProblem(dir string) *Problem {
	running, data := lockState(dir)
	if !running {
		return nil
	}
	var p Problem
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "problem_since="); ok {
			p.Since, _ = time.Parse(time.RFC3339, v)
		} else if v, ok := strings.CutPrefix(line, "problem="); ok {
			p.Message = v
		}
	}
	if p.Message == "" {
		return nil
	}
	return &p
}

// holderLine is the lock file's first line: the holder's host and pid.
func holderLine(data []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	return strings.TrimSpace(line)
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

// OtherHost reports an engine that the lock file says runs on another
// host and that touched the file recently: flock may not reach across hosts,
// so this is what keeps a second host from starting a second engine.
func OtherHost(dir string) (bool, string) {
	path := filepath.Join(dir, "engine.lock")
	fi, err := os.Stat(path)
	if err != nil {
		return false, ""
	}
	data, _ := os.ReadFile(path)
	info := holderLine(data)
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

// Running reports whether an engine holds the state dir's lock, and
// what the lock file records of it ("host=H pid=P"). It changes nothing.
func Running(dir string) (bool, string) {
	running, data := lockState(dir)
	return running, holderLine(data)
}

// lockState tells whether an engine holds the state dir's lock, and
// returns the lock file's content, read through the one open file.
func lockState(dir string) (bool, []byte) {
	f, err := os.Open(filepath.Join(dir, "engine.lock"))
	if err != nil {
		return false, nil
	}
	defer f.Close()
	data, _ := io.ReadAll(f)
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK), data
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false, data
}
