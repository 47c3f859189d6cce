package pbs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/backendtest"
	"github.com/somaflow/somaflow/model"
)

func realBackend(t *testing.T, settings map[string]string) *Backend {
	t.Helper()
	b, err := New(drms.Config{StateDir: t.TempDir(), ExecPath: testExec(t), EngineTag: testTag("r"), Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var jobSerial int64

func realSpec(t *testing.T, b *Backend, argv ...string) drms.JobSpec {
	jobSerial++
	dir := t.TempDir()
	return drms.JobSpec{EngineTag: b.cfg.EngineTag, WorkflowID: 1, JobID: jobSerial, JobName: t.Name(), Attempt: 1, Argv: argv, Dir: dir,
		Env: os.Environ(), Stdout: filepath.Join(dir, "out"), Stderr: filepath.Join(dir, "err")}
}

// poll returns the state of h once cond holds, failing after timeout.
func poll(t *testing.T, b *Backend, h drms.Handle, timeout time.Duration, what string, cond func(drms.State) bool) drms.State {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := b.Status(context.Background(), []drms.Handle{h})
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if cond(st[h.ID]) {
			return st[h.ID]
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: %s: not within %v (last %+v)", h.ID, what, timeout, st[h.ID])
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestHoldRelease: a job submitted held does not run until released; one
// held while queued waits again (Holder through qhold and qrls).
func TestHoldRelease(t *testing.T) {
	requirePBS(t)
	ctx := context.Background()
	b := realBackend(t, nil)
	s := realSpec(t, b, "sh", "-c", "echo ran")
	s.NativeSpec = []string{"-h"}
	h, err := b.Submit(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	st := poll(t, b, h, time.Minute, "queued or held", func(s drms.State) bool { return s.Phase == drms.Queued || s.Phase == drms.Held })
	if data, _ := os.ReadFile(s.Stdout); len(data) > 0 {
		t.Fatalf("a held job ran: %q (state %+v)", data, st)
	}
	if err := b.Release(ctx, h); err != nil {
		t.Fatalf("Release: %v", err)
	}
	st = poll(t, b, h, 2*time.Minute, "ended", func(s drms.State) bool { return s.Phase == drms.Ended })
	if o := st.Outcome; !model.Succeeded(o.Status, o.ExitStatus, o.ExitValue) {
		t.Fatalf("released job: %+v", o)
	}
	if data, _ := os.ReadFile(s.Stdout); string(data) != "ran\n" {
		t.Fatalf("released job wrote %q", data)
	}
	// Hold and release again on a job that is still queued.
	s2 := realSpec(t, b, "true")
	s2.NativeSpec = []string{"-h"}
	h2, err := b.Submit(ctx, s2)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Hold(ctx, h2); err != nil {
		t.Fatalf("Hold of a held job: %v", err)
	}
	if err := b.Kill(ctx, h2); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	st = poll(t, b, h2, 2*time.Minute, "ended", func(s drms.State) bool { return s.Phase == drms.Ended })
	if o := drms.Resolve(true, st.Outcome); o.ExitStatus != model.ExitAbortedBefore {
		t.Fatalf("held job killed: %+v", o)
	}
}

// TestDependencies hands a dependency to PBS: the dependant of a job that
// succeeds runs after it; the dependant of one that fails never starts
// (a PBS server deletes it; under Slurm's wrappers it stays queued, and
// the engine deletes it, as here).
func TestDependencies(t *testing.T) {
	requirePBS(t)
	ctx := context.Background()
	b := realBackend(t, map[string]string{"dependencies": "true"})
	flag := filepath.Join(t.TempDir(), "flag")
	parent := realSpec(t, b, "sh", "-c", "sleep 2; touch "+flag)
	hp, err := b.Submit(ctx, parent)
	if err != nil {
		t.Fatal(err)
	}
	child := realSpec(t, b, "sh", "-c", "test -e "+flag)
	hc, err := b.SubmitAfter(ctx, child, []drms.Handle{hp})
	if err != nil {
		t.Fatal(err)
	}
	st := poll(t, b, hc, 2*time.Minute, "ended", func(s drms.State) bool { return s.Phase == drms.Ended })
	if o := st.Outcome; !model.Succeeded(o.Status, o.ExitStatus, o.ExitValue) {
		t.Fatalf("dependant ran before its dependency ended, or failed: %+v", o)
	}
	bad := realSpec(t, b, "sh", "-c", "sleep 1; exit 3")
	hb, err := b.Submit(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	orphan := realSpec(t, b, "sh", "-c", "echo ran")
	ho, err := b.SubmitAfter(ctx, orphan, []drms.Handle{hb})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, b, hb, 2*time.Minute, "ended", func(s drms.State) bool { return s.Phase == drms.Ended })
	time.Sleep(2 * time.Second)
	st = poll(t, b, ho, time.Minute, "not running", func(s drms.State) bool { return s.Phase != drms.Running })
	if st.Phase != drms.Ended {
		if err := b.Kill(ctx, ho); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		st = poll(t, b, ho, 2*time.Minute, "ended", func(s drms.State) bool { return s.Phase == drms.Ended })
		st.Outcome = drms.Resolve(true, st.Outcome)
	}
	if o := st.Outcome; o.ExitStatus != model.ExitAbortedBefore {
		t.Fatalf("dependant of a failed job: %+v", o)
	}
	if data, _ := os.ReadFile(orphan.Stdout); len(data) > 0 {
		t.Fatalf("the dependant of a failed job ran: %q", data)
	}
}

// TestQstatIdlePacing: while every job runs by its started file (nothing is
// due), Status asks qstat at qstat_idle_interval, not at qstat_interval,
// however often it is called; a job past its walltime (its status file
// overdue) brings back qstat_interval, and a qdel by somaflow makes the
// next Status ask at once.
func TestQstatIdlePacing(t *testing.T) {
	requirePBS(t)
	ctx := context.Background()
	settings := map[string]string{"qstat_interval": "1s", "qstat_idle_interval": "1h"}
	// pollWindow: every job stays running; the qstat calls and how long.
	pollWindow := func(b *Backend, hs []drms.Handle) (int, time.Duration) {
		t.Helper()
		return backendtest.CallsWhileRunning(t, ctx, b, hs, func() int { return b.Calls()["qstat"] })
	}
	running := func(b *Backend, h drms.Handle) drms.State {
		return poll(t, b, h, 2*time.Minute, "running", func(s drms.State) bool { return s.Phase == drms.Running })
	}

	b := realBackend(t, settings)
	var hs []drms.Handle
	for i := 0; i < 3; i++ {
		h, err := b.Submit(ctx, realSpec(t, b, "sleep", "300"))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	// At the end, delete the jobs and wait for their ends (exec-job writes
	// in the spool, which is in the test's temporary directory).
	type owned struct {
		b *Backend
		h drms.Handle
	}
	var all []owned
	defer func() {
		for _, o := range all {
			o.b.Kill(ctx, o.h)
		}
		for _, o := range all {
			poll(t, o.b, o.h, 2*time.Minute, "ended", func(s drms.State) bool { return s.Phase == drms.Ended })
		}
	}()
	for _, h := range hs {
		all = append(all, owned{b, h})
	}
	for _, h := range hs {
		running(b, h)
	}
	n, d := pollWindow(b, hs)
	if n > 1 {
		t.Errorf("nothing due: %d qstat calls in %v, want at most 1 (idle interval 1h)", n, d.Round(time.Millisecond))
	}
	t.Logf("nothing due: %d qstat calls in %v", n, d.Round(time.Millisecond))

	// A kill: the next Status asks qstat.
	backendtest.KillAsksAtOnce(t, ctx, b, hs, func() int { return b.Calls()["qstat"] }, "qstat")

	// A job past its walltime (2 s here; the wrappers' Slurm enforces a
	// minute): due.
	b2 := realBackend(t, settings)
	s := realSpec(t, b2, "sleep", "300")
	s.Resources = model.Resources{Walltime: 2}
	h, err := b2.Submit(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, owned{b2, h})
	for st := running(b2, h); time.Since(st.Started) < 3*time.Second; {
		time.Sleep(200 * time.Millisecond)
	}
	n, d = pollWindow(b2, []drms.Handle{h})
	if min := int(d / (3 * time.Second)); n < min {
		t.Errorf("past its walltime: %d qstat calls in %v, want at least %d (interval 1s)", n, d.Round(time.Millisecond), min)
	}
	t.Logf("past its walltime: %d qstat calls in %v", n, d.Round(time.Millisecond))
}
