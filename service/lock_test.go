package service

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
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
