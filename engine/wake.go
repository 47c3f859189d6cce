package engine

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// wakeFIFO is the wake-up hint in the state dir: a client writes a byte to
// it after writing an intent, so that the engine scans at once instead of at
// its next tick. Correctness never depends on it.
const wakeFIFO = "wake"

// listenWake makes the FIFO and wakes the engine for every byte written to
// it, until the returned function closes it (when Run returns: a Go program
// may run engines one after the other in one process).
func (e *Engine) listenWake(dir string) (stop func()) {
	path := filepath.Join(dir, wakeFIFO)
	if err := unix.Mkfifo(path, 0o600); err != nil && err != unix.EEXIST {
		e.log.Warn("no wake-up FIFO; clients are seen at the next tick", "err", err)
		return func() {}
	}
	// O_RDWR keeps a writer open, so reads block instead of seeing EOF
	// whenever no client holds the FIFO.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		e.log.Warn("no wake-up FIFO; clients are seen at the next tick", "err", err)
		return func() {}
	}
	// A FIFO opened through os is polled by the runtime: Close wakes the
	// reader.
	go func() {
		buf := make([]byte, 512)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			e.Wake()
		}
	}()
	return func() { f.Close() }
}

// NotifyWake pokes the engine of a state dir, if one listens; it never
// blocks and ignores every error (the engine's tick is the fallback).
func NotifyWake(dir string) {
	fd, err := unix.Open(filepath.Join(dir, wakeFIFO), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	unix.Write(fd, []byte{1})
	unix.Close(fd)
}
