package client_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/somaflow/somaflow/client"
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
