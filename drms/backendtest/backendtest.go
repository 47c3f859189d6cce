// Package backendtest is the one conformance suite every drms backend runs:
// one expectations table (design.md's outcome table), capability-driven
// skips, and no switch on backend names.
//
// A backend's test calls Run with a Harness:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, backendtest.Harness{New: func(t *testing.T) drms.Backend { ... }})
//	}
package backendtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/model"
)

// Harness tells the suite how to drive one backend.
type Harness struct {
	// New returns a fresh backend; the suite closes it. All backends made by
	// one Harness share their state (state dir, spool), so that a second one
	// plays the part of a restarted engine.
	New func(t *testing.T) drms.Backend
	// Dir returns a directory visible to the jobs (compute nodes, for batch
	// backends) for working directories and output files; t.TempDir() when nil.
	Dir func(t *testing.T) string
	// Pending turns a spec into one that stays queued at the DRMS (a hold, a
	// begin time); needed when Capabilities().Queues.
	Pending func(spec drms.JobSpec) drms.JobSpec
	// ExternalCancel cancels a job outside somaflow (scancel, qdel); needed
	// when Capabilities().ExternalCancel.
	ExternalCancel func(t *testing.T, h drms.Handle) error
	// Timeout bounds each wait (default 2 minutes).
	Timeout time.Duration
}

// Row is one line of the expectations table.
type Row struct {
	Name       string
	Status     string
	ExitStatus string
	ExitValue  *int
	Signal     string
	// ReasonHas is a substring the reason must contain ("" = reason empty).
	ReasonHas string
}

func intp(n int) *int { return &n }

// Expect is design.md's outcome table as the suite checks it.
var Expect = map[string]Row{
	"exit0":          {Status: model.JobDone, ExitStatus: model.ExitFinishedRegular, ExitValue: intp(0)},
	"exit3":          {Status: model.JobDone, ExitStatus: model.ExitFinishedRegular, ExitValue: intp(3)},
	"sigkill":        {Status: model.JobDone, ExitStatus: model.ExitFinishedSignal, Signal: "SIGKILL"},
	"sigterm":        {Status: model.JobDone, ExitStatus: model.ExitFinishedSignal, Signal: "SIGTERM"},
	"notfound":       {Status: model.JobFailed, ExitStatus: model.ExitAborted, ReasonHas: "not found"},
	"nodir":          {Status: model.JobFailed, ExitStatus: model.ExitAborted, ReasonHas: "working directory"},
	"nostdin":        {Status: model.JobFailed, ExitStatus: model.ExitAborted, ReasonHas: "stdin"},
	"killrunning":    {Status: model.JobFailed, ExitStatus: model.ExitKilledByUser},
	"killpending":    {Status: model.JobFailed, ExitStatus: model.ExitAbortedBefore},
	"externalcancel": {Status: model.JobDone, ExitStatus: model.ExitFinishedSignal, ReasonHas: "cancelled outside somaflow"},
}

// Run runs the whole suite.
func Run(t *testing.T, h Harness) {
	if h.Timeout == 0 {
		h.Timeout = 2 * time.Minute
	}
	if h.Dir == nil {
		h.Dir = func(t *testing.T) string { return t.TempDir() }
	}
	b := h.New(t)
	t.Cleanup(func() { b.Close() })
	s := &suite{h: h, b: b, caps: b.Capabilities()}
	s.start()

	t.Run("exit0", func(t *testing.T) { t.Parallel(); s.outcome(t, "exit0", []string{"sh", "-c", "exit 0"}) })
	t.Run("exit3", func(t *testing.T) { t.Parallel(); s.outcome(t, "exit3", []string{"sh", "-c", "exit 3"}) })
	t.Run("sigkill", func(t *testing.T) { t.Parallel(); s.outcome(t, "sigkill", []string{"sh", "-c", "kill -KILL $$"}) })
	t.Run("sigterm", func(t *testing.T) { t.Parallel(); s.outcome(t, "sigterm", []string{"sh", "-c", "kill -TERM $$"}) })
	t.Run("exit128plus", func(t *testing.T) {
		t.Parallel()
		// 137 is a legal exit code, not SIGKILL: it must not be decoded as one.
		spec := s.spec(t, []string{"sh", "-c", "exit 137"})
		o := s.run(t, spec)
		if o.ExitStatus != model.ExitFinishedRegular || o.ExitValue == nil || *o.ExitValue != 137 || o.Signal != "" {
			t.Fatalf("exit 137: got %s", show(o))
		}
	})
	t.Run("notfound", func(t *testing.T) { t.Parallel(); s.outcome(t, "notfound", []string{"no-such-command-somaflow"}) })
	t.Run("notfound_path", func(t *testing.T) { t.Parallel(); s.outcome(t, "notfound", []string{"/nonexistent/somaflow/cmd"}) })
	t.Run("nodir", func(t *testing.T) {
		t.Parallel()
		spec := s.spec(t, []string{"true"})
		spec.Dir = filepath.Join(spec.Dir, "missing", "dir")
		s.check(t, "nodir", s.run(t, spec))
	})
	t.Run("nostdin", func(t *testing.T) {
		t.Parallel()
		spec := s.spec(t, []string{"cat"})
		spec.Stdin = filepath.Join(spec.Dir, "no-such-stdin")
		s.check(t, "nostdin", s.run(t, spec))
	})
	t.Run("stdout_stderr", func(t *testing.T) {
		t.Parallel()
		spec := s.spec(t, []string{"sh", "-c", "echo out; echo err >&2"})
		s.mustSucceed(t, spec)
		wantFile(t, spec.Stdout, "out\n")
		wantFile(t, spec.Stderr, "err\n")
	})
	t.Run("join", func(t *testing.T) {
		t.Parallel()
		spec := s.spec(t, []string{"sh", "-c", "echo out; echo err >&2"})
		spec.Join = true
		s.mustSucceed(t, spec)
		wantFile(t, spec.Stdout, "out\nerr\n")
	})
	t.Run("lazy_output", func(t *testing.T) {
		t.Parallel()
		// More than a pipe holds: the copy must keep up while the job runs
		// and be complete when its end is reported.
		spec := s.spec(t, []string{"sh", "-c", "yes line | head -n 200000; echo err >&2"})
		spec.LazyStdout, spec.LazyStderr = true, true
		s.mustSucceed(t, spec)
		wantFile(t, spec.Stdout, strings.Repeat("line\n", 200000))
		wantFile(t, spec.Stderr, "err\n")
	})
	t.Run("signals_default", func(t *testing.T) {
		t.Parallel()
		// A job starts with SIGPIPE and SIGHUP as the test process has them
		// (normally default), whatever its engine or supervisor ignores.
		spec := s.spec(t, []string{"sh", "-c", "grep '^SigIgn:' /proc/self/status"})
		s.mustSucceed(t, spec)
		mask := func(status string) uint64 {
			for _, l := range strings.Split(status, "\n") {
				if v, ok := strings.CutPrefix(l, "SigIgn:"); ok {
					var m uint64
					fmt.Sscanf(strings.TrimSpace(v), "%x", &m)
					return m
				}
			}
			t.Fatalf("no SigIgn line in %q", status)
			return 0
		}
		own, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Skip("no /proc/self/status:", err)
		}
		got, _ := os.ReadFile(spec.Stdout)
		const hupPipe = 1<<(1-1) | 1<<(13-1) // SIGHUP=1, SIGPIPE=13
		if j, o := mask(string(got))&hupPipe, mask(string(own))&hupPipe; j&^o != 0 {
			t.Fatalf("the job ignores SIGHUP/SIGPIPE (SigIgn bits %#x) although the test process does not (%#x)", j, o)
		}
	})
	t.Run("lazy_join", func(t *testing.T) {
		t.Parallel()
		spec := s.spec(t, []string{"sh", "-c", "echo out; echo err >&2"})
		spec.Join, spec.LazyStdout = true, true
		s.mustSucceed(t, spec)
		wantFile(t, spec.Stdout, "out\nerr\n")
	})
	t.Run("lazy_silent", func(t *testing.T) {
		t.Parallel()
		spec := s.spec(t, []string{"true"})
		spec.Stdout = filepath.Join(spec.Dir, "logs", "job.out") // directory made on demand
		spec.Stderr = filepath.Join(spec.Dir, "logs", "job.err")
		spec.LazyStdout, spec.LazyStderr = true, true
		s.mustSucceed(t, spec)
		for _, p := range []string{spec.Stdout, spec.Stderr} {
			_, err := os.Stat(p)
			switch {
			case s.caps.LazyOutput && !errors.Is(err, fs.ErrNotExist):
				t.Errorf("%s: a job that wrote nothing left a log file (stat: %v)", p, err)
			case !s.caps.LazyOutput:
				wantFile(t, p, "")
			}
		}
	})
	t.Run("lazy_lost", func(t *testing.T) {
		if !s.caps.LazyOutput {
			t.Skip("log files are not lazy on this backend")
		}
		t.Parallel()
		// The log's directory cannot be made (a file is in the way): the
		// job still runs to its end, and its outcome says the output was lost.
		spec := s.spec(t, []string{"sh", "-c", "echo out; echo err >&2"})
		blocker := filepath.Join(spec.Dir, "blocker")
		if err := os.WriteFile(blocker, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		spec.Stdout = filepath.Join(blocker, "job.out")
		spec.LazyStdout, spec.LazyStderr = true, true
		o := s.run(t, spec)
		if !model.Succeeded(o.Status, o.ExitStatus, o.ExitValue) {
			t.Fatalf("job did not succeed: %s", show(o))
		}
		if !strings.Contains(o.Reason, "output lost") || !strings.Contains(o.Reason, "job.out") {
			t.Fatalf("reason %q does not say the stdout log was lost", o.Reason)
		}
		wantFile(t, spec.Stderr, "err\n")
	})
	t.Run("stdin", func(t *testing.T) {
		t.Parallel()
		spec := s.spec(t, []string{"cat"})
		spec.Stdin = filepath.Join(spec.Dir, "in.txt")
		if err := os.WriteFile(spec.Stdin, []byte("hello stdin\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s.mustSucceed(t, spec)
		wantFile(t, spec.Stdout, "hello stdin\n")
	})
	t.Run("workdir", func(t *testing.T) {
		t.Parallel()
		spec := s.spec(t, []string{"sh", "-c", "pwd -P"})
		spec.Dir = filepath.Join(spec.Dir, "wd")
		if err := os.Mkdir(spec.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		s.mustSucceed(t, spec)
		want, _ := filepath.EvalSymlinks(spec.Dir)
		wantFile(t, spec.Stdout, want+"\n")
	})
	t.Run("env", func(t *testing.T) {
		t.Parallel()
		spec := s.spec(t, []string{"sh", "-c", `printf '%s|%s\n' "$SOMAFLOW_T1" "$SOMAFLOW_T2"`})
		spec.Env = append(spec.Env, "SOMAFLOW_T1=a b 'c'", "SOMAFLOW_T2=$HOME;x")
		s.mustSucceed(t, spec)
		wantFile(t, spec.Stdout, "a b 'c'|$HOME;x\n")
	})
	t.Run("usage", func(t *testing.T) {
		t.Parallel()
		spec := s.spec(t, []string{"sh", "-c", "exit 0"})
		o := s.run(t, spec)
		if o.Ended.IsZero() || (o.Usage.WallS != nil && *o.Usage.WallS < 0) {
			t.Fatalf("ended time / wall time missing or negative: %s", show(o))
		}
	})
	t.Run("killrunning", func(t *testing.T) {
		t.Parallel()
		spec := s.spec(t, []string{"sh", "-c", "echo started; exec sleep 300"})
		hd := s.submit(t, spec)
		s.waitPhase(t, hd, drms.Running)
		if err := s.b.Kill(context.Background(), hd); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		s.check(t, "killrunning", drms.Resolve(true, s.wait(t, hd)))
	})
	t.Run("killpending", func(t *testing.T) {
		if !s.caps.Queues || h.Pending == nil {
			t.Skipf("%s: jobs never wait at the DRMS (Capabilities.Queues)", s.caps.Name)
		}
		t.Parallel()
		hd := s.submit(t, h.Pending(s.spec(t, []string{"true"})))
		s.waitPhase(t, hd, drms.Queued, drms.Held)
		if err := s.b.Kill(context.Background(), hd); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		s.check(t, "killpending", drms.Resolve(true, s.wait(t, hd)))
	})
	t.Run("externalcancel", func(t *testing.T) {
		if !s.caps.ExternalCancel || h.ExternalCancel == nil {
			t.Skipf("%s: no cancel outside somaflow (Capabilities.ExternalCancel)", s.caps.Name)
		}
		t.Parallel()
		hd := s.submit(t, s.spec(t, []string{"sleep", "300"}))
		s.waitPhase(t, hd, drms.Running)
		if err := h.ExternalCancel(t, hd); err != nil {
			t.Fatalf("external cancel: %v", err)
		}
		s.check(t, "externalcancel", s.wait(t, hd))
	})
	t.Run("restart", func(t *testing.T) {
		t.Parallel()
		// A job submitted by one engine, recovered by the next one.
		spec := s.spec(t, []string{"sh", "-c", "sleep 2; exit 4"})
		hd := s.submit(t, spec)
		b2 := h.New(t)
		defer b2.Close()
		st := s.recoverUntilEnded(t, b2, hd)
		if s.caps.SurvivesEngine {
			want := Row{Status: model.JobDone, ExitStatus: model.ExitFinishedRegular, ExitValue: intp(4)}
			if err := match(want, st.Outcome); err != nil {
				t.Fatalf("recovered job: %v", err)
			}
		} else if st.Outcome.ExitStatus != model.ExitUndetermined || st.Outcome.Reason == "" {
			t.Fatalf("a backend whose jobs do not survive the engine must report exit_status_undetermined with a reason; got %s", show(st.Outcome))
		}
	})
}

type suite struct {
	h    Harness
	b    drms.Backend
	caps drms.Capabilities

	mu     sync.Mutex
	cond   *sync.Cond
	ended  map[string]*drms.Outcome
	serial int
}

func (s *suite) start() {
	s.ended = map[string]*drms.Outcome{}
	s.cond = sync.NewCond(&s.mu)
	n, ok := s.b.(drms.Notifier)
	if !ok {
		return
	}
	go func() {
		for ev := range n.Events() {
			if ev.State.Phase == drms.Ended {
				s.mu.Lock()
				s.ended[ev.ID] = ev.State.Outcome
				s.cond.Broadcast()
				s.mu.Unlock()
			}
		}
	}()
}

func (s *suite) spec(t *testing.T, argv []string) drms.JobSpec {
	dir := s.h.Dir(t)
	s.mu.Lock()
	s.serial++
	n := s.serial
	s.mu.Unlock()
	return drms.JobSpec{
		EngineTag: "conformance", WorkflowID: 1, JobID: int64(n), Attempt: 1,
		JobName: t.Name(), Argv: argv, Env: os.Environ(), Dir: dir,
		Stdout: filepath.Join(dir, "job.out"), Stderr: filepath.Join(dir, "job.err"),
	}
}

func (s *suite) submit(t *testing.T, spec drms.JobSpec) drms.Handle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	defer cancel()
	hd, err := s.b.Submit(ctx, spec)
	if err != nil {
		t.Fatalf("Submit(%v): %v", spec.Argv, err)
	}
	if hd.ID == "" {
		t.Fatalf("Submit returned a handle without an ID")
	}
	return hd
}

// run submits spec and waits for its outcome; a *drms.StartError from Submit
// counts as the could-not-start outcome.
func (s *suite) run(t *testing.T, spec drms.JobSpec) *drms.Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	defer cancel()
	hd, err := s.b.Submit(ctx, spec)
	if se, ok := err.(*drms.StartError); ok {
		return drms.NotStarted(se.Reason)
	}
	if err != nil {
		t.Fatalf("Submit(%v): %v", spec.Argv, err)
	}
	return s.wait(t, hd)
}

func (s *suite) outcome(t *testing.T, row string, argv []string) {
	s.check(t, row, s.run(t, s.spec(t, argv)))
}

func (s *suite) mustSucceed(t *testing.T, spec drms.JobSpec) {
	t.Helper()
	if o := s.run(t, spec); !model.Succeeded(o.Status, o.ExitStatus, o.ExitValue) {
		errText, _ := os.ReadFile(spec.Stderr)
		t.Fatalf("job %v did not succeed: %s (stderr: %q)", spec.Argv, show(o), errText)
	}
}

func (s *suite) check(t *testing.T, row string, o *drms.Outcome) {
	t.Helper()
	if err := match(Expect[row], o); err != nil {
		t.Fatalf("%s: %v", row, err)
	}
}

func match(want Row, o *drms.Outcome) error {
	if o == nil {
		return fmt.Errorf("no outcome")
	}
	// A row with no signal but finished_signal (a cancel outside somaflow)
	// accepts whatever signal the DRMS used; the check below wants one named.
	anySignal := want.Signal == "" && want.ExitStatus == model.ExitFinishedSignal
	ok := o.Status == want.Status && o.ExitStatus == want.ExitStatus && (o.Signal == want.Signal || anySignal)
	if (want.ExitValue == nil) != (o.ExitValue == nil) || (want.ExitValue != nil && *want.ExitValue != *o.ExitValue) {
		ok = false
	}
	if want.ReasonHas == "" && o.Reason != "" && want.ExitStatus != model.ExitFinishedSignal {
		ok = false
	}
	if want.ReasonHas != "" && !strings.Contains(o.Reason, want.ReasonHas) {
		ok = false
	}
	if want.Signal == "" && want.ExitStatus == model.ExitFinishedSignal && o.Signal == "" {
		ok = false // a signal was seen; its name must be reported
	}
	if !ok {
		w := &drms.Outcome{Status: want.Status, ExitStatus: want.ExitStatus, ExitValue: want.ExitValue, Signal: want.Signal, Reason: want.ReasonHas}
		return fmt.Errorf("got %s, want %s", show(o), show(w))
	}
	return nil
}

func show(o *drms.Outcome) string {
	if o == nil {
		return "<nil>"
	}
	ev := "null"
	if o.ExitValue != nil {
		ev = fmt.Sprint(*o.ExitValue)
	}
	return fmt.Sprintf("%s/%s exit=%s signal=%q reason=%q", o.Status, o.ExitStatus, ev, o.Signal, o.Reason)
}

// wait returns the outcome of hd, from the Notifier when the backend has
// one, else by polling Status.
func (s *suite) wait(t *testing.T, hd drms.Handle) *drms.Outcome {
	t.Helper()
	deadline := time.Now().Add(s.h.Timeout)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		o := s.ended[hd.ID]
		s.mu.Unlock()
		if o != nil {
			return o
		}
		st, err := s.b.Status(context.Background(), []drms.Handle{hd})
		if err != nil {
			t.Logf("Status: %v", err)
		} else if x, ok := st[hd.ID]; ok && x.Phase == drms.Ended {
			return x.Outcome
		}
		s.pause()
	}
	t.Fatalf("job %s did not end within %v", hd.ID, s.h.Timeout)
	return nil
}

// pause waits for the next event or a short while, whichever comes first.
func (s *suite) pause() {
	done := make(chan struct{})
	go func() {
		s.mu.Lock()
		s.cond.Wait()
		s.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(200 * time.Millisecond):
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

func (s *suite) waitPhase(t *testing.T, hd drms.Handle, phases ...drms.Phase) {
	t.Helper()
	deadline := time.Now().Add(s.h.Timeout)
	for time.Now().Before(deadline) {
		st, err := s.b.Status(context.Background(), []drms.Handle{hd})
		if err == nil {
			for _, p := range phases {
				if st[hd.ID].Phase == p {
					return
				}
			}
			if st[hd.ID].Phase == drms.Ended {
				t.Fatalf("job %s ended before reaching %v: %s", hd.ID, phases, show(st[hd.ID].Outcome))
			}
		}
		s.pause()
	}
	t.Fatalf("job %s never reached %v", hd.ID, phases)
}

func (s *suite) recoverUntilEnded(t *testing.T, b drms.Backend, hd drms.Handle) drms.State {
	t.Helper()
	deadline := time.Now().Add(s.h.Timeout)
	for time.Now().Before(deadline) {
		st, err := b.Recover(context.Background(), hd)
		if err != nil {
			t.Fatalf("Recover: %v", err)
		}
		if st.Phase == drms.Ended {
			if st.Outcome == nil {
				t.Fatalf("Recover: ended without an outcome")
			}
			return st
		}
		s.pause()
	}
	t.Fatalf("recovered job %s did not end within %v", hd.ID, s.h.Timeout)
	return drms.State{}
}

func wantFile(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if string(got) != want {
		t.Fatalf("%s: got %q, want %q", path, got, want)
	}
}

// CallsWhileRunning is the measure of the batch backends' pacing tests:
// it calls be.Status every 250 ms, for at least 12 s and 40 calls, fails
// the test unless every job in hs stays running, and returns how much
// calls (the backend's count of its status command) grew, and how long
// that took.
func CallsWhileRunning(t testing.TB, ctx context.Context, be drms.Backend, hs []drms.Handle, calls func() int) (int, time.Duration) {
	t.Helper()
	before := calls()
	t0 := time.Now()
	for polls := 0; polls < 40 || time.Since(t0) < 12*time.Second; polls++ {
		st, err := be.Status(ctx, hs)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if st[h.ID].Phase != drms.Running {
				t.Fatalf("job %s: %+v, want running", h.ID, st[h.ID])
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return calls() - before, time.Since(t0)
}

// KillAsksAtOnce fails the test unless the Status that follows a Kill of
// hs[0] runs the backend's status command (calls grows): our own kill is
// never answered from a paced listing.
func KillAsksAtOnce(t testing.TB, ctx context.Context, be drms.Backend, hs []drms.Handle, calls func() int, command string) {
	t.Helper()
	before := calls()
	if err := be.Kill(ctx, hs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Status(ctx, hs); err != nil {
		t.Fatal(err)
	}
	if calls() == before {
		t.Errorf("Status after a kill made no %s call", command)
	}
}
