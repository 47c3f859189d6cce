package service

import (
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestEngineLock(t *testing.T) {
	dir := t.TempDir()
	if running, _ := Running(dir); running {
		t.Fatal("running before any lock")
	}
	l, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if running, info := Running(dir); !running || info == "" {
		t.Fatalf("lock held but Running says %v %q", running, info)
	}
	if _, err := Lock(dir); !errors.Is(err, ErrEngineRunning) {
		t.Fatalf("second lock: %v", err)
	}
	l.Unlock()
	if running, _ := Running(dir); running {
		t.Fatal("running after unlock")
	}
}

func TestOtherHost(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "engine.lock")
	os.WriteFile(path, []byte("host=some-other-login-node pid=42\n"), 0o600)
	if other, info := OtherHost(dir); !other || info == "" {
		t.Fatalf("a fresh lock file of another host: %v %q", other, info)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(path, old, old)
	if other, _ := OtherHost(dir); other {
		t.Fatal("a stale lock file of another host still counts")
	}
	me, _ := os.Hostname()
	os.WriteFile(path, []byte("host="+me+" pid=42\n"), 0o600)
	if other, _ := OtherHost(dir); other {
		t.Fatal("this host counted as another host")
	}
}

// The engine's problem goes into the lock file in place and is read back
// only while the engine holds the lock; clearing it leaves the holder line.
func TestProblemInTheLockFile(t *testing.T) {
	dir := t.TempDir()
	l, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p := ReadProblem(dir); p != nil {
		t.Fatalf("a problem before any: %+v", p)
	}
	since := time.Date(2026, 12, 5, 3, 12, 5, 0, time.UTC)
	if err := l.SetProblem(&Problem{Since: since, Message: "commit: database or disk is full\nsecond line"}); err != nil {
		t.Fatal(err)
	}
	p := ReadProblem(dir)
	if p == nil || !p.Since.Equal(since) || p.Message != "commit: database or disk is full second line" {
		t.Fatalf("problem read back: %+v", p)
	}
	if h := Engine(dir); !h.Running || h.PID != os.Getpid() {
		t.Fatalf("holder with a problem recorded: %+v", h)
	}
	l.SetProblem(nil)
	if p := ReadProblem(dir); p != nil {
		t.Fatalf("problem still there once cleared: %+v", p)
	}
	l.SetProblem(&Problem{Since: since, Message: "x"})
	l.Unlock()
	if p := ReadProblem(dir); p != nil {
		t.Fatalf("the problem of an engine that exited: %+v", p)
	}
}

// Stop of an engine that holds the lock but has not recorded its pid yet
// signals nobody: kill(0) would reach the caller's own process group (this
// test's, and everything above it). It waits for the pid, then says why it
// could not stop.
func TestStopWithoutPID(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "engine.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	defer signal.Stop(term)
	h, err := Stop(dir, 300*time.Millisecond)
	if !h.Running || h.PID != 0 || !errors.Is(err, ErrNotStopped) || !strings.Contains(err.Error(), "no pid") {
		t.Fatalf("Stop with no pid recorded: %+v, %v", h, err)
	}
	select {
	case <-term:
		t.Fatal("Stop sent SIGTERM to its own process group")
	case <-time.After(100 * time.Millisecond):
	}
}
