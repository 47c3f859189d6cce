package local_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/local"
)

// A process that leaves the job's group (setsid) and writes after the job
// ended: its output still reaches the log, appended after the job's own.
// Where jobs get cgroups, it is killed with the job instead, and the log
// holds the job's output only.
func TestLazyOutputOutlivesJob(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("setsid not installed")
	}
	dir := t.TempDir()
	release := filepath.Join(dir, "release")
	b := local.New(drms.Config{StateDir: dir})
	spec := drms.JobSpec{
		EngineTag: "t", WorkflowID: 1, JobID: 1, Attempt: 1, Env: os.Environ(), Dir: dir,
		Argv: []string{"sh", "-c", `setsid sh -c 'touch escaped; while [ ! -e release ]; do sleep 0.01; done; echo late' &
while [ ! -e escaped ]; do sleep 0.01; done; echo early`},
		Stdout: filepath.Join(dir, "logs", "1.1.out"), Stderr: filepath.Join(dir, "logs", "1.1.err"),
		LazyStdout: true, LazyStderr: true,
	}
	if _, err := b.Submit(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(30 * time.Second)
	for ended := false; !ended; {
		select {
		case ev := <-b.Events():
			if ended = ev.State.Phase == drms.Ended; !ended {
				continue // its start
			}
			if o := ev.State.Outcome; o == nil || o.ExitValue == nil || *o.ExitValue != 0 {
				t.Fatalf("job outcome: %+v", o)
			}
		case <-timeout:
			t.Fatal("no exit event")
		}
	}
	if got, _ := os.ReadFile(spec.Stdout); string(got) != "early\n" {
		t.Fatalf("stdout when the job ended: %q, want %q", got, "early\n")
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if b.UsesCgroups() {
		time.Sleep(300 * time.Millisecond) // what it would have written by now
		if got, _ := os.ReadFile(spec.Stdout); string(got) != "early\n" {
			t.Fatalf("stdout: %q: the escaped process outlived its job's cgroup", got)
		}
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, _ := os.ReadFile(spec.Stdout)
		if string(got) == "early\nlate\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stdout after the escaped process wrote: %q, want %q", got, "early\nlate\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(spec.Stderr); !os.IsNotExist(err) {
		t.Fatalf("stderr: nothing was written but the file exists (stat: %v)", err)
	}
}
