//go:build drmaa

package drmaa

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/model"
)

func TestCompiled(t *testing.T) {
	if !Compiled {
		t.Fatal("Compiled is false in the drmaa build")
	}
}

func TestNewBadConfig(t *testing.T) {
	if _, err := New(drms.Config{StateDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "ExecPath") {
		t.Fatalf("New without ExecPath: %v", err)
	}
	if _, err := New(drms.Config{StateDir: t.TempDir(), ExecPath: "no-such-somaflow-binary"}); err == nil || !strings.Contains(err.Error(), "no-such-somaflow-binary") {
		t.Fatalf("New with a binary not on PATH: %v", err)
	}
	if _, err := New(drms.Config{StateDir: t.TempDir(), ExecPath: execBin, Settings: map[string]string{SettingAccounting: "maybe"}}); err == nil {
		t.Fatal("New with accounting=maybe: no error")
	}
}

func TestExit3(t *testing.T) {
	needGE(t)
	b := newBackend(t, "", nil)
	defer b.Close()
	s := spec(t, "sh", "-c", "echo out; echo err >&2; exit 3")
	o := waitEnd(t, b, submit(t, b, s))
	wantOutcome(t, o, model.JobDone, model.ExitFinishedRegular, intp(3), "", "")
	if o.Started.IsZero() || o.Ended.IsZero() || o.Usage.WallS == nil {
		t.Fatalf("times or usage missing: %+v", o)
	}
	if o.Usage.Raw["ru_wallclock"] == "" {
		t.Fatalf("DRMAA's resource map not kept in Usage.Raw: %v", o.Usage.Raw)
	}
}

func TestSigkill(t *testing.T) {
	needGE(t)
	b := newBackend(t, "", nil)
	defer b.Close()
	o := waitEnd(t, b, submit(t, b, spec(t, "sh", "-c", "kill -KILL $$")))
	wantOutcome(t, o, model.JobDone, model.ExitFinishedSignal, nil, "SIGKILL", "")
}

// Quirk: without a status file, DRMAA's flags decide. The binding's
// HasAborted equals HasSignaled; it must not turn a signal into an abort.
func TestSigkillWrapperNoStatusFile(t *testing.T) {
	needGE(t)
	b := newBackend(t, "", nil)
	defer b.Close()
	// The command kills exec-job itself: no status file is written.
	s := spec(t, "sh", "-c", "kill -KILL $PPID; sleep 30")
	h := submit(t, b, s)
	o := waitEnd(t, b, h)
	wantOutcome(t, o, model.JobDone, model.ExitFinishedSignal, nil, "SIGKILL", "")
	hs, _ := decodeHandle(h)
	if _, err := os.Stat(hs.Status); err == nil {
		t.Fatalf("exec-job wrote a status file although it was killed")
	}
}

func TestCommandNotFound(t *testing.T) {
	needGE(t)
	b := newBackend(t, "", nil)
	defer b.Close()
	o := waitEnd(t, b, submit(t, b, spec(t, "no-such-command-somaflow")))
	wantOutcome(t, o, model.JobFailed, model.ExitAborted, nil, "", "not found")
}

// Quirk: a remote command that does not exist on the execution host (here
// the somaflow binary itself) leaves no flag at all in drmaa_wait.
func TestExecPathMissing(t *testing.T) {
	needGE(t)
	state := jobDir(t)
	bk, err := New(drms.Config{StateDir: state, ExecPath: "/nonexistent/somaflow"})
	if err != nil {
		t.Fatal(err)
	}
	b := bk.(*Backend)
	defer b.Close()
	o := waitEnd(t, b, submit(t, b, spec(t, "true")))
	wantOutcome(t, o, model.JobFailed, model.ExitAborted, nil, "", "never started")
}

func TestKillPending(t *testing.T) {
	needGE(t)
	b := newBackend(t, "", nil)
	defer b.Close()
	s := spec(t, "true")
	s.NativeSpec = []string{"-h"}
	h := submit(t, b, s)
	waitPhase(t, b, h, drms.Held)
	if err := b.Kill(context.Background(), h); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	// Quirk: drmaa_wait fails with "no usage information" for a job deleted
	// before it ran, and the binding drops the job id with the error.
	o := waitEnd(t, b, h)
	wantOutcome(t, o, model.JobFailed, model.ExitFinishedUnclear, nil, "", "while queued")
	wantOutcome(t, drms.Resolve(true, o), model.JobFailed, model.ExitAbortedBefore, nil, "", "")
	// Killing it again is not an error.
	if err := b.Kill(context.Background(), h); err != nil {
		t.Fatalf("second Kill: %v", err)
	}
}

func TestKillRunning(t *testing.T) {
	needGE(t)
	b := newBackend(t, "", nil)
	defer b.Close()
	h := submit(t, b, spec(t, longCmd...))
	st := waitPhase(t, b, h, drms.Running)
	if st.Started.IsZero() {
		// The started file comes a moment after the DRMS says "running".
		waitFor(t, "the started time", func() bool {
			s, _ := b.Status(context.Background(), []drms.Handle{h})
			return !s[h.ID].Started.IsZero()
		})
	}
	if err := b.Kill(context.Background(), h); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	o := waitEnd(t, b, h)
	if o.Started.IsZero() {
		t.Fatalf("killed running job has no start time: %+v", o)
	}
	wantOutcome(t, drms.Resolve(true, o), model.JobFailed, model.ExitKilledByUser, nil, "", "")
}

// Quirk: a job deleted while running shows neither the exited nor the
// signaled flag; exit_status 137 in the resource map.
func TestQdelRunning(t *testing.T) {
	needGE(t)
	b := newBackend(t, "", nil)
	defer b.Close()
	h := submit(t, b, spec(t, longCmd...))
	waitPhase(t, b, h, drms.Running)
	qdel(t, h.ID)
	o := waitEnd(t, b, h)
	wantOutcome(t, o, model.JobDone, model.ExitFinishedSignal, nil, "SIGKILL", "cancelled outside somaflow")
}

func TestQdelQueued(t *testing.T) {
	needGE(t)
	b := newBackend(t, "", nil)
	defer b.Close()
	s := spec(t, "true")
	s.NativeSpec = []string{"-h"}
	h := submit(t, b, s)
	waitPhase(t, b, h, drms.Held)
	qdel(t, h.ID)
	o := waitEnd(t, b, h)
	wantOutcome(t, o, model.JobFailed, model.ExitFinishedUnclear, nil, "", "cancelled outside somaflow while queued")
}

func TestHoldRelease(t *testing.T) {
	needGE(t)
	b := newBackend(t, "", nil)
	defer b.Close()
	s := spec(t, "sh", "-c", "exit 6")
	s.NativeSpec = []string{"-h"}
	h := submit(t, b, s)
	if st := waitPhase(t, b, h, drms.Held); st.By != drms.ByUser {
		t.Fatalf("qsub -h: held by %v, want the user (user_on_hold)", st.By)
	}
	// An operator's hold on top (root is one in CI): user and system.
	if out, err := exec.Command("qhold", "-h", "s", h.ID).CombinedOutput(); err != nil {
		t.Fatalf("qhold -h s: %v %s", err, out)
	}
	waitFor(t, "a user and system hold", func() bool {
		st, err := b.Status(context.Background(), []drms.Handle{h})
		return err == nil && st[h.ID].Phase == drms.Held && st[h.ID].By == drms.ByUserAndSystem
	})
	if out, err := exec.Command("qrls", "-h", "s", h.ID).CombinedOutput(); err != nil {
		t.Fatalf("qrls -h s: %v %s", err, out)
	}
	if err := b.Release(context.Background(), h); err != nil {
		t.Fatalf("Release: %v", err)
	}
	wantOutcome(t, waitEnd(t, b, h), model.JobDone, model.ExitFinishedRegular, intp(6), "", "")
}

func TestFilesEnvDir(t *testing.T) {
	needGE(t)
	b := newBackend(t, "", nil)
	defer b.Close()

	s := spec(t, "sh", "-c", `echo "$SOMAFLOW_X"; pwd -P; echo err >&2`)
	s.Env = append(s.Env, "SOMAFLOW_X=a,b c;'d'")
	s.Dir = filepath.Join(s.Dir, "work")
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	wantOutcome(t, waitEnd(t, b, submit(t, b, s)), model.JobDone, model.ExitFinishedRegular, intp(0), "", "")
	dir, _ := filepath.EvalSymlinks(s.Dir)
	wantFile(t, s.Stdout, "a,b c;'d'\n"+dir+"\n")
	wantFile(t, s.Stderr, "err\n")

	j := spec(t, "sh", "-c", "echo out; echo err >&2")
	j.Join = true
	wantOutcome(t, waitEnd(t, b, submit(t, b, j)), model.JobDone, model.ExitFinishedRegular, intp(0), "", "")
	wantFile(t, j.Stdout, "out\nerr\n")
}

func TestQueue(t *testing.T) {
	needGE(t)
	b := newBackend(t, "", nil)
	defer b.Close()
	s := spec(t, "true")
	s.Queue = "all.q"
	wantOutcome(t, waitEnd(t, b, submit(t, b, s)), model.JobDone, model.ExitFinishedRegular, intp(0), "", "")

	bad := spec(t, "true")
	bad.Queue = "no-such-queue.q"
	if _, err := b.Submit(context.Background(), bad); err == nil {
		t.Fatal("Submit to an unknown queue: no error")
	}
	bad.Queue = "all.q -h"
	if _, err := b.Submit(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "white space") {
		t.Fatalf("Submit to queue %q: %v", bad.Queue, err)
	}
}

// Each reaped outcome reaches the engine once.
func TestOneEventPerJob(t *testing.T) {
	needGE(t)
	b := newBackend(t, "", nil)
	defer b.Close()
	ids := map[string]bool{}
	for i := 0; i < 5; i++ {
		ids[submit(t, b, spec(t, "sh", "-c", "exit "+string(rune('0'+i)))).ID] = true
	}
	seen := map[string]int{}
	for len(seen) < len(ids) {
		ev := <-b.Events()
		if ids[ev.ID] && ev.State.Phase == drms.Ended {
			seen[ev.ID]++
		}
	}
	// One more job: its event must be the next one for these ids' backend.
	last := submit(t, b, spec(t, "true"))
	for ev := range b.Events() {
		if ev.ID == last.ID {
			break
		}
		if ids[ev.ID] {
			t.Fatalf("second event for job %s", ev.ID)
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("job %s: %d events", id, n)
		}
	}
}

// A job that ends while no engine (no DRMAA session) exists is forgotten by
// DRMAA; the new backend finds its outcome in the status file.
func TestRestartFinishedWhileDown(t *testing.T) {
	needGE(t)
	state := jobDir(t)
	b1 := newBackend(t, state, nil)
	h := submit(t, b1, spec(t, "sh", "-c", "sleep 2; exit 4"))
	waitPhase(t, b1, h, drms.Running)
	if err := b1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitFor(t, "the job to leave Grid Engine", func() bool { return gone(h.ID) })

	b2 := newBackend(t, state, nil)
	defer b2.Close()
	st, err := b2.Recover(context.Background(), h)
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if st.Phase != drms.Ended {
		t.Fatalf("Recover: phase %v, want ended", st.Phase)
	}
	wantOutcome(t, st.Outcome, model.JobDone, model.ExitFinishedRegular, intp(4), "", "")
}

// Without its status file, a forgotten job's outcome comes from qacct.
func TestRestartQacctFallback(t *testing.T) {
	needGE(t)
	state := jobDir(t)
	b1 := newBackend(t, state, nil)
	h := submit(t, b1, spec(t, "sh", "-c", "sleep 1; exit 5"))
	if err := b1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitFor(t, "the job to leave Grid Engine", func() bool { return gone(h.ID) })
	hs, _ := decodeHandle(h)
	if err := os.Remove(hs.Status); err != nil {
		t.Fatalf("remove the status file: %v", err)
	}

	b2 := newBackend(t, state, nil)
	defer b2.Close()
	var st drms.State
	waitFor(t, "the recovered job to end", func() bool {
		var err error
		st, err = b2.Recover(context.Background(), h)
		if err != nil {
			t.Fatalf("Recover: %v", err)
		}
		return st.Phase == drms.Ended
	})
	wantOutcome(t, st.Outcome, model.JobDone, model.ExitFinishedRegular, intp(5), "", "")
	if st.Outcome.Usage.Raw["failed"] == "" || st.Outcome.Started.IsZero() {
		t.Fatalf("qacct record not used: %+v", st.Outcome)
	}
}

// A job still running when the engine restarts is reaped by the new
// session (same contact) and pushed through Events.
func TestRestartRunning(t *testing.T) {
	needGE(t)
	state := jobDir(t)
	b1 := newBackend(t, state, nil)
	dir := jobDir(t)
	gate := filepath.Join(dir, "go")
	h := submit(t, b1, spec(t, "sh", "-c", "while [ ! -e "+gate+" ]; do sleep 0.2; done; exit 7"))
	waitPhase(t, b1, h, drms.Running)
	if err := b1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b2 := newBackend(t, state, nil)
	defer b2.Close()
	st, err := b2.Recover(context.Background(), h)
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if st.Phase != drms.Running {
		t.Fatalf("Recover: phase %v, want running", st.Phase)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for ev := range b2.Events() {
		if ev.ID == h.ID {
			wantOutcome(t, ev.State.Outcome, model.JobDone, model.ExitFinishedRegular, intp(7), "", "")
			return
		}
	}
	t.Fatal("events closed")
}

func TestLocate(t *testing.T) {
	needGE(t)
	b := newBackend(t, "", nil)
	defer b.Close()
	ctx := context.Background()

	never := spec(t, "true")
	if _, found, neverSub, err := b.Locate(ctx, never); err != nil || found || !neverSub {
		t.Fatalf("Locate of an attempt never prepared: found=%v never=%v err=%v", found, neverSub, err)
	}

	// Queued (held): found by qstat -j NAME.
	held := spec(t, "true")
	held.NativeSpec = []string{"-h"}
	h := submit(t, b, held)
	got, found, _, err := b.Locate(ctx, held)
	if err != nil || !found || got.ID != h.ID {
		t.Fatalf("Locate of a held job: %+v found=%v err=%v, want id %s", got, found, err, h.ID)
	}
	if err := b.Kill(ctx, h); err != nil {
		t.Fatal(err)
	}

	// Finished: found by its started file, and by qacct once that is gone.
	done := spec(t, "true")
	h2 := submit(t, b, done)
	waitEnd(t, b, h2)
	got, found, _, err = b.Locate(ctx, done)
	if err != nil || !found || got.ID != h2.ID {
		t.Fatalf("Locate of a finished job: %+v found=%v err=%v, want id %s", got, found, err, h2.ID)
	}
	p := b.spool.Paths(done)
	os.Remove(p.Started)
	waitFor(t, "qacct to locate the finished job", func() bool {
		got, found, _, err = b.Locate(ctx, done)
		if err != nil && !errors.Is(err, drms.ErrUnavailable) {
			t.Fatalf("Locate: %v", err)
		}
		return found
	})
	if got.ID != h2.ID {
		t.Fatalf("Locate via qacct: id %s, want %s", got.ID, h2.ID)
	}
	// The located handle works.
	st, err := b.Recover(ctx, got)
	if err != nil || st.Phase != drms.Ended {
		t.Fatalf("Recover of a located handle: %+v %v", st, err)
	}
}

// longCmd runs until its exec-job parent is gone. Not `sleep 300`: as root,
// Grid Engine's kill by additional group id skips the processes, and a
// command outside exec-job's process group would outlive a qdel.
var longCmd = []string{"sh", "-c", `p=$PPID; while kill -0 "$p" 2>/dev/null; do sleep 0.2; done`}

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

// A job of an earlier session that cannot be re-joined (another state dir:
// a new session) is still killed by its id, and its end found in qacct.
func TestKillFromAnotherSession(t *testing.T) {
	needGE(t)
	b1 := newBackend(t, "", nil)
	h := submit(t, b1, spec(t, longCmd...))
	waitPhase(t, b1, h, drms.Running)
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := newBackend(t, "", nil)
	defer b2.Close()
	st, err := b2.Recover(context.Background(), h)
	if err != nil || st.Phase != drms.Running {
		t.Fatalf("Recover: %+v %v, want running", st, err)
	}
	if err := b2.Kill(context.Background(), h); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	o := waitEnd(t, b2, h)
	wantOutcome(t, o, model.JobDone, model.ExitFinishedSignal, nil, "SIGKILL", "cancelled outside somaflow")
	wantOutcome(t, drms.Resolve(true, o), model.JobFailed, model.ExitKilledByUser, nil, "", "")
}

// A native specification adds options; a word in it that is not an option
// must not become what runs instead of the job's command.
func TestNativeSpecCannotReplaceCommand(t *testing.T) {
	needGE(t)
	b := newBackend(t, "", nil)
	defer b.Close()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	marker := filepath.Join(dir, "evil-ran")
	evil := filepath.Join(dir, "evil.sh")
	if err := os.WriteFile(evil, []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := spec(t, "sh", "-c", "exit 5")
	s.NativeSpec = []string{evil}
	h, err := b.Submit(context.Background(), s)
	if err == nil {
		o := waitEnd(t, b, h)
		if _, serr := os.Stat(marker); serr == nil {
			t.Fatalf("the native specification's word ran instead of the command (outcome %+v)", *o)
		}
		wantOutcome(t, o, model.JobDone, model.ExitFinishedRegular, intp(5), "", "")
		return
	}
	var se *drms.StartError
	if !errors.As(err, &se) {
		t.Fatalf("Submit: %v, want a StartError naming the word", err)
	}
}

// A job's resources reach Grid Engine through the default templates:
// qstat -j shows the time limit and memory asked (issue 25.1); a job
// asking for CPUs without a cpus_option is refused, saying so.
func TestResourcesReachGridEngine(t *testing.T) {
	needGE(t)
	b := newBackend(t, t.TempDir(), nil)
	s := spec(t, "sleep", "60")
	s.Resources = model.Resources{MemoryMB: 200, Walltime: 300}
	h := submit(t, b, s)
	// Not qdel(t, ...): the job may be gone already, Grid Engine ending it
	// when a loaded machine gives exec-job more threads (virtual memory)
	// than h_vmem=200M allows. What is checked is what qstat -j shows.
	defer exec.Command("qdel", h.ID).Run()
	out, err := exec.Command("qstat", "-j", h.ID).CombinedOutput()
	if err != nil {
		t.Fatalf("qstat -j %s: %v\n%s", h.ID, err, out)
	}
	for _, want := range []string{"h_rt=300", "h_vmem=200M"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("qstat -j lacks %s:\n%s", want, out)
		}
	}
	s = spec(t, "true")
	s.Resources.CPUs = 2
	var se *drms.StartError
	if _, err := b.Submit(context.Background(), s); !errors.As(err, &se) || !strings.Contains(se.Reason, "cpus_option") {
		t.Fatalf("cpus without a template: %v", err)
	}
}

// drmaa_job_ps is one request to the scheduler per job: a job's state is
// asked at most once per ps_interval however often the engine polls, and
// at every poll with ps_interval 0s. Its start is still seen at once
// (exec-job's started file) and its end too (drmaa_wait).
func TestPsPacing(t *testing.T) {
	needGE(t)
	for _, tc := range []struct {
		interval string
		min, max int64 // drmaa_job_ps calls over the polls
	}{
		{"", 0, 1},       // the default, 30s: the answer of waitPhase still holds
		{"0s", 20, 1000}, // every poll
	} {
		settings := map[string]string{}
		if tc.interval != "" {
			settings[SettingPsInterval] = tc.interval
		}
		b := newBackend(t, "", settings)
		marker := filepath.Join(t.TempDir(), "go")
		h := submit(t, b, spec(t, "sh", "-c", "while [ ! -e "+marker+" ]; do sleep 0.1; done"))
		waitPhase(t, b, h, drms.Running)
		before := b.ss.psCalls.Load()
		for i := 0; i < 20; i++ {
			st, err := b.Status(context.Background(), []drms.Handle{h})
			if err != nil || st[h.ID].Phase != drms.Running {
				t.Fatalf("ps_interval %q: poll %d: %+v %v", tc.interval, i, st[h.ID], err)
			}
			time.Sleep(20 * time.Millisecond) // the engine's polls, faster than its own
		}
		if n := b.ss.psCalls.Load() - before; n < tc.min || n > tc.max {
			t.Errorf("ps_interval %q: %d drmaa_job_ps calls over 20 polls, want %d to %d", tc.interval, n, tc.min, tc.max)
		}
		if err := os.WriteFile(marker, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		wantOutcome(t, waitEnd(t, b, h), model.JobDone, model.ExitFinishedRegular, intp(0), "", "")
		b.Close()
	}
}
