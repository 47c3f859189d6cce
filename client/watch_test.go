package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/engine"
)

// TestWatchStopFreesItsDescriptor: a watch that was stopped does not read
// from the next file the process opens. Its inotify descriptor used to be
// closed under its reader's blocked read; the number went to the next file
// opened, and at the next change of the state dir the reader read pieces
// of that file (a Go program that waited for a workflow and then brought
// its outputs back got them short).
func TestWatchStopFreesItsDescriptor(t *testing.T) {
	dir := t.TempDir()
	c, err := client.Open(context.Background(), client.Options{StateDir: dir, NoEngine: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	data := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(data, want, 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		next, stop := c.Watch()
		next()
		time.Sleep(20 * time.Millisecond) // its reader waits for events
		stop()
		f, err := os.Open(data)
		if err != nil {
			t.Fatal(err)
		}
		// Changes in the watched dir, while the file is open.
		for k := 0; k < 3; k++ {
			if err := os.WriteFile(filepath.Join(dir, "touch"), []byte{byte(k)}, 0o600); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("round %d: read %d of %d bytes (%v): a stopped watch read from the file", i, len(got), len(want), err)
		}
	}
}

// TestClientsOneAfterAnother: a Go program that opens and closes clients
// with their engine in turn does not keep a descriptor per engine (the
// engine's wake-up FIFO used to stay open until the process exited).
func TestClientsOneAfterAnother(t *testing.T) {
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd")
		}
		return len(ents)
	}
	dir := t.TempDir()
	round := func() {
		c, err := client.Open(context.Background(), client.Options{StateDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	round() // what is opened once per process
	before := fds()
	for i := 0; i < 10; i++ {
		round()
	}
	time.Sleep(100 * time.Millisecond)
	if after := fds(); after > before+2 {
		t.Fatalf("%d descriptors open after 10 clients, %d before", after, before)
	}
}

// TestWorkflowWaitersWatchTheHint: a waiter for workflows in another
// process than the engine's wakes at each write of the engine's
// workflows-changed file, not at each write to the database (each job's
// end); without that file (an engine that does not write it), at each
// write, as before.
func TestWorkflowWaitersWatchTheHint(t *testing.T) {
	for _, c := range []struct {
		name          string
		hint, hintNow bool // the file exists before the watch, is made during it
		workflows     bool
		dbWakes       bool
	}{
		{"hint there", true, false, true, false},
		{"hint made while watching", false, true, true, false},
		{"no hint", false, false, true, true},
		{"jobs: every write", true, false, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cl, err := client.Open(context.Background(), client.Options{StateDir: dir, NoEngine: true})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			hint := filepath.Join(dir, engine.WorkflowsChangedFile)
			write := func(p string) {
				t.Helper()
				f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				f.Write([]byte{1})
				f.Close()
			}
			if c.hint {
				write(hint)
			}
			next, stop := cl.Changes(c.workflows)
			defer stop()
			if c.hintNow {
				ch := next()
				write(hint)
				select {
				case <-ch:
				case <-time.After(5 * time.Second):
					t.Fatal("the hint's creation did not wake the waiter")
				}
				time.Sleep(100 * time.Millisecond) // the wakes of that write
			}
			// A job's end: the database changes.
			ch := next()
			write(filepath.Join(dir, "somaflow.db-wal"))
			select {
			case <-ch:
				if !c.dbWakes {
					t.Fatal("woken by a database write")
				}
			case <-time.After(500 * time.Millisecond):
				if c.dbWakes {
					t.Fatal("not woken by a database write")
				}
			}
			// A workflow's change.
			ch = next()
			write(hint)
			select {
			case <-ch:
			case <-time.After(5 * time.Second):
				t.Fatal("not woken by the hint")
			}
		})
	}
}

// TestEngineWritesTheHint: the engine writes its workflows-changed file as
// a workflow changes, and a waiter of another process (a client without
// engine) sees the workflow's end through it.
func TestEngineWritesTheHint(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	other, err := client.Open(ctx, client.Options{StateDir: c.StateDir(), NoEngine: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	id, err := c.SubmitWorkflow(ctx, decode(t, `jobs: {a: {command: ["true"]}, b: {command: ["true"], after: [a]}}`), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.WaitWorkflow(ctx, id, time.Minute); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(c.StateDir(), engine.WorkflowsChangedFile))
	if err != nil || len(b) != 8 {
		t.Fatalf("hint file: %q (%v)", b, err)
	}
	if n := binary.LittleEndian.Uint64(b); n < 2 {
		t.Fatalf("hint written %d times for a workflow that started and ended", n)
	}
}
