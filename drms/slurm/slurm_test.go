package slurm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/backendtest"
	"github.com/somaflow/somaflow/drms/batch"
	"github.com/somaflow/somaflow/drms/execjob"
	"github.com/somaflow/somaflow/model"
)

// The test binary is also `somaflow exec-job` for the jobs it submits.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "exec-job" {
		os.Exit(execjob.Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// requireSlurm skips the test when no Slurm cluster is usable here, unless
// SOMAFLOW_REQUIRE names slurm: then it fails.
func requireSlurm(t *testing.T) {
	t.Helper()
	why := ""
	if _, err := exec.LookPath("sinfo"); err != nil {
		why = "sinfo not found"
	} else if out, err := exec.Command("sinfo", "-h", "-o", "%T").Output(); err != nil {
		why = "sinfo failed: " + err.Error()
	} else if !usableNode(string(out)) {
		why = "no usable Slurm node (sinfo says " + strings.TrimSpace(string(out)) + ")"
	}
	if why == "" {
		return
	}
	for _, s := range strings.Split(os.Getenv("SOMAFLOW_REQUIRE"), ",") {
		if strings.TrimSpace(s) == "slurm" {
			t.Fatalf("Slurm required (SOMAFLOW_REQUIRE) but %s; run scripts/slurm-up.sh", why)
		}
	}
	t.Skipf("no Slurm: %s (scripts/slurm-up.sh starts one; SOMAFLOW_REQUIRE=slurm makes this a failure)", why)
}

// usableNode reports whether one of sinfo's node states can run jobs.
func usableNode(states string) bool {
	for _, s := range strings.Fields(states) {
		s = strings.TrimRight(strings.ToLower(s), "*~#!%$@^-+")
		switch s {
		case "idle", "mixed", "allocated", "alloc", "planned", "completing", "reserved":
			return true
		}
	}
	return false
}

func testExec(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

var tagSerial atomic.Int64

// testTag is an engine tag unique to this test process, so that runs do not
// see each other's jobs.
func testTag(prefix string) string {
	return prefix + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "") + string(rune('a'+tagSerial.Add(1)%26))
}

func newBackend(t *testing.T, state, tag string, settings map[string]string) *Backend {
	t.Helper()
	b, err := New(drms.Config{StateDir: state, ExecPath: testExec(t), EngineTag: tag, Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var jobSerial atomic.Int64

func spec(t *testing.T, tag string, argv ...string) drms.JobSpec {
	dir := t.TempDir()
	return drms.JobSpec{
		EngineTag: tag, WorkflowID: 1, JobID: jobSerial.Add(1), Attempt: 1, JobName: t.Name(),
		Argv: argv, Env: os.Environ(), Dir: dir,
		Stdout: filepath.Join(dir, "out"), Stderr: filepath.Join(dir, "err"),
	}
}

// waitEnd polls Status until the job ended.
func waitEnd(t *testing.T, b drms.Backend, h drms.Handle, timeout time.Duration) *drms.Outcome {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := b.Status(context.Background(), []drms.Handle{h})
		if err != nil {
			t.Logf("Status: %v", err)
		} else if s := st[h.ID]; s.Phase == drms.Ended {
			return s.Outcome
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("job %s did not end within %v", h.ID, timeout)
	return nil
}

func waitPhase(t *testing.T, b drms.Backend, h drms.Handle, want drms.Phase) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		st, err := b.Status(context.Background(), []drms.Handle{h})
		if err == nil && st[h.ID].Phase == want {
			return
		}
		if err == nil && st[h.ID].Phase == drms.Ended {
			t.Fatalf("job %s ended before %v: %+v", h.ID, want, st[h.ID].Outcome)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("job %s never reached %v", h.ID, want)
}

// waitPurged waits until slurmctld forgot the job (MinJobAge plus its purge
// interval; scripts/slurm-up.sh sets MinJobAge=10).
func waitPurged(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		out, err := exec.Command("squeue", "-h", "-t", "all", "-j", id, "-o", "%i").CombinedOutput()
		if err != nil && strings.Contains(string(out), "Invalid job id") || err == nil && strings.TrimSpace(string(out)) == "" {
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("job %s still known to slurmctld after 5 minutes (MinJobAge too high? scripts/slurm-up.sh sets 10)", id)
}

func describe(o *drms.Outcome) string {
	if o == nil {
		return "<nil>"
	}
	ev := "null"
	if o.ExitValue != nil {
		ev = fmt.Sprint(*o.ExitValue)
	}
	return fmt.Sprintf("%s/%s exit=%s signal=%q reason=%q", o.Status, o.ExitStatus, ev, o.Signal, o.Reason)
}

func submit(t *testing.T, b *Backend, s drms.JobSpec) drms.Handle {
	t.Helper()
	h, err := b.Submit(context.Background(), s)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	return h
}

// TestOutcomes: the rows of the outcome table that need a real Slurm and are
// not in the conformance suite.
func TestOutcomes(t *testing.T) {
	requireSlurm(t)
	tag := testTag("o")
	b := newBackend(t, t.TempDir(), tag, nil)

	t.Run("exit3_usage", func(t *testing.T) {
		t.Parallel()
		h := submit(t, b, spec(t, tag, "sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exit 3"))
		o := waitEnd(t, b, h, 2*time.Minute)
		if o.ExitStatus != model.ExitFinishedRegular || *o.ExitValue != 3 {
			t.Fatalf("got %s", describe(o))
		}
		if o.Usage.WallS == nil || o.Usage.CPUS == nil || o.Usage.MaxRSSKiB == nil || *o.Usage.MaxRSSKiB <= 0 || o.Usage.Raw["maxrss"] == "" {
			t.Errorf("usage: %+v", o.Usage)
		}
		if o.Started.IsZero() || o.Ended.Before(o.Started) {
			t.Errorf("times: %v %v", o.Started, o.Ended)
		}
	})
	t.Run("kill_ignoring_term", func(t *testing.T) {
		// The job ignores SIGTERM: Slurm's SIGKILL after KillWait kills
		// exec-job too, so the outcome comes from Slurm's record.
		t.Parallel()
		s := spec(t, tag, "sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done")
		h := submit(t, b, s)
		waitFile(t, s.Stdout, "up\n")
		if err := b.Kill(context.Background(), h); err != nil {
			t.Fatal(err)
		}
		o := waitEnd(t, b, h, 2*time.Minute)
		if o.ExitStatus != model.ExitFinishedSignal || o.Signal != "SIGKILL" || o.Started.IsZero() {
			t.Fatalf("got %s", describe(o))
		}
		if r := drms.Resolve(true, o); r.ExitStatus != model.ExitKilledByUser {
			t.Fatalf("resolved: %s", describe(r))
		}
	})
	t.Run("external_cancel_pending", func(t *testing.T) {
		t.Parallel()
		s := spec(t, tag, "true")
		s.NativeSpec = []string{"--hold"}
		h := submit(t, b, s)
		waitPhase(t, b, h, drms.Held)
		if out, err := exec.Command("scancel", h.ID).CombinedOutput(); err != nil {
			t.Fatalf("scancel: %v %s", err, out)
		}
		o := waitEnd(t, b, h, 2*time.Minute)
		if o.Status != model.JobFailed || o.ExitStatus != model.ExitFinishedUnclear || !strings.Contains(o.Reason, "cancelled outside somaflow while queued") || !o.Started.IsZero() {
			t.Fatalf("got %s", describe(o))
		}
	})
	t.Run("memory_limit", func(t *testing.T) {
		// Over --mem: without cgroups slurmstepd kills the whole job with
		// SIGKILL (exec-job too) and says so in the job's Slurm output.
		t.Parallel()
		// tail keeps the 400 MB it read until its input ends (60 s later), so
		// that slurmstepd's periodic sampling sees it even on a busy machine.
		s := spec(t, tag, "sh", "-c", "{ head -c 400000000 /dev/zero; sleep 60; } | tail")
		s.NativeSpec = []string{"--mem=50M"}
		h := submit(t, b, s)
		o := waitEnd(t, b, h, 3*time.Minute)
		if o.ExitStatus != model.ExitFinishedSignal || o.Signal != "SIGKILL" || o.Reason != "memory limit" {
			t.Fatalf("got %s", describe(o))
		}
	})
	t.Run("parallel_queue", func(t *testing.T) {
		t.Parallel()
		s := spec(t, tag, "sh", "-c", `echo "$SLURM_JOB_PARTITION $SLURM_NNODES $SLURM_NTASKS_PER_NODE"`)
		s.Queue = "debug"
		s.Parallel = &model.ParallelJobInfo{NodesNumber: 1, CPUPerNode: 2}
		s.NativeSpec = []string{"--comment='two words'"}
		h := submit(t, b, s)
		if o := waitEnd(t, b, h, 2*time.Minute); !model.Succeeded(o.Status, o.ExitStatus, o.ExitValue) {
			t.Fatalf("got %s", describe(o))
		}
		waitFile(t, s.Stdout, "debug 1 2\n")
	})
	t.Run("bad_partition", func(t *testing.T) {
		t.Parallel()
		s := spec(t, tag, "true")
		s.Queue = "no-such-partition"
		_, err := b.Submit(context.Background(), s)
		var se *drms.StartError
		if !errors.As(err, &se) || !strings.Contains(se.Reason, "partition") {
			t.Fatalf("got %v, want a StartError about the partition", err)
		}
	})
	t.Run("locate", func(t *testing.T) {
		t.Parallel()
		s := spec(t, tag, "sleep", "2")
		h := submit(t, b, s)
		b2 := newBackend(t, b.cfg.StateDir, tag, nil)
		got, found, never, err := b2.Locate(context.Background(), s)
		if err != nil || !found || never || got.ID != h.ID {
			t.Fatalf("Locate submitted: %+v %v %v %v", got, found, never, err)
		}
		s2 := s
		s2.JobID = jobSerial.Add(1)
		if _, found, never, err := b2.Locate(context.Background(), s2); err != nil || found || !never {
			t.Fatalf("Locate never submitted: found=%v never=%v err=%v", found, never, err)
		}
		waitEnd(t, b2, got, 2*time.Minute)
		// Found by the started file once it ran.
		if got2, found, _, err := b2.Locate(context.Background(), s); err != nil || !found || got2.ID != h.ID {
			t.Fatalf("Locate after run: %+v %v %v", got2, found, err)
		}
	})
	t.Run("time_limit", func(t *testing.T) {
		t.Parallel()
		s := spec(t, tag, "sleep", "600")
		s.NativeSpec = []string{"--time=1"}
		h := submit(t, b, s)
		o := waitEnd(t, b, h, 5*time.Minute)
		if o.ExitStatus != model.ExitFinishedSignal || o.Signal != "SIGTERM" || o.Reason != "time limit" {
			t.Fatalf("got %s", describe(o))
		}
	})
	t.Run("purged", func(t *testing.T) {
		// A finished job read back after it left squeue: from its status
		// file; and one whose status file is gone: from sacct with
		// accounting, else exit_status_undetermined.
		t.Parallel()
		h := submit(t, b, spec(t, tag, "sh", "-c", "exit 3"))
		s5 := spec(t, tag, "sh", "-c", "exit 5")
		h5 := submit(t, b, s5)
		waitEnd(t, b, h, 2*time.Minute)
		waitEnd(t, b, h5, 2*time.Minute)
		if err := os.Remove(b.spool.Paths(s5).Status); err != nil {
			t.Fatal(err)
		}
		waitPurged(t, h.ID)
		waitPurged(t, h5.ID)
		b2 := newBackend(t, b.cfg.StateDir, tag, nil)
		st, err := b2.Recover(context.Background(), h)
		if err != nil || st.Phase != drms.Ended || st.Outcome.ExitValue == nil || *st.Outcome.ExitValue != 3 {
			t.Fatalf("purged job: %+v %v", st, err)
		}
		o := waitEnd(t, b2, h5, time.Minute)
		if b2.accounting(context.Background()) {
			if o.ExitStatus != model.ExitFinishedRegular || *o.ExitValue != 5 {
				t.Fatalf("purged job without status file, with accounting: %s", describe(o))
			}
		} else if o.ExitStatus != model.ExitUndetermined || !strings.Contains(o.Reason, "no status file") {
			t.Fatalf("purged job without status file, no accounting: %s", describe(o))
		}
	})
}

func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(path); string(b) == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("%s: %q, want %q", path, b, want)
}

// fakeSlurm puts fake Slurm commands (sh scripts) first on PATH: for error
// paths only.
func fakeSlurm(t *testing.T, cmds map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range cmds {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
}

func TestErrorPaths(t *testing.T) {
	tag := "fake"
	down := `echo "$(basename $0): error: Unable to contact slurm controller (connect failure)" >&2; exit 1`
	newB := func(t *testing.T) *Backend {
		return newBackend(t, t.TempDir(), tag, map[string]string{"submit_timeout": "500ms", "command_timeout": "2s", "lookup_delay": "10ms", "accounting": "no"})
	}
	t.Run("controller_down", func(t *testing.T) {
		fakeSlurm(t, map[string]string{"squeue": down, "sbatch": down, "scancel": down})
		b := newB(t)
		_, err := b.Status(context.Background(), []drms.Handle{b.handle("12", spec(t, tag, "true"))})
		if !errors.Is(err, drms.ErrUnavailable) {
			t.Errorf("Status: %v, want ErrUnavailable", err)
		}
		_, err = b.Submit(context.Background(), spec(t, tag, "true"))
		if !errors.Is(err, drms.ErrUnavailable) {
			t.Errorf("Submit: %v, want ErrUnavailable", err)
		}
		if err := b.Kill(context.Background(), drms.Handle{ID: "12"}); !errors.Is(err, drms.ErrUnavailable) {
			t.Errorf("Kill: %v, want ErrUnavailable", err)
		}
	})
	t.Run("sbatch_timeout_not_found", func(t *testing.T) {
		fakeSlurm(t, map[string]string{"sbatch": "exec sleep 30", "squeue": "exit 0"})
		b := newB(t)
		_, err := b.Submit(context.Background(), spec(t, tag, "true"))
		if !errors.Is(err, drms.ErrSubmitUncertain) {
			t.Errorf("Submit: %v, want ErrSubmitUncertain", err)
		}
	})
	t.Run("sbatch_timeout_found_later", func(t *testing.T) {
		// The job shows up only at the second look-up.
		s := spec(t, tag, "true")
		state := t.TempDir()
		fakeSlurm(t, map[string]string{
			"sbatch": "exec sleep 30",
			"squeue": `f=` + state + `/n; n=$(cat $f 2>/dev/null || echo 0); echo $((n+1)) > $f; [ $n -ge 1 ] && echo "4711|4711|N/A|PENDING|Priority|N/A|N/A||` + s.Name() + `"; exit 0`,
		})
		b := newB(t)
		h, err := b.Submit(context.Background(), s)
		if err != nil || h.ID != "4711" {
			t.Errorf("Submit: %+v %v, want job 4711", h, err)
		}
	})
	t.Run("sbatch_garbage", func(t *testing.T) {
		fakeSlurm(t, map[string]string{"sbatch": "echo 'Submitted batch job'; exit 0", "squeue": "exit 0"})
		b := newB(t)
		if _, err := b.Submit(context.Background(), spec(t, tag, "true")); !errors.Is(err, drms.ErrSubmitUncertain) {
			t.Errorf("Submit: %v, want ErrSubmitUncertain", err)
		}
	})
	t.Run("sbatch_refused", func(t *testing.T) {
		fakeSlurm(t, map[string]string{"sbatch": `echo "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2; exit 1`})
		b := newB(t)
		_, err := b.Submit(context.Background(), spec(t, tag, "true"))
		var se *drms.StartError
		if !errors.As(err, &se) || !strings.Contains(se.Reason, "Invalid partition") {
			t.Errorf("Submit: %v, want StartError", err)
		}
	})
	t.Run("sbatch_silent_refusal", func(t *testing.T) {
		fakeSlurm(t, map[string]string{"sbatch": "exit 1"})
		b := newB(t)
		_, err := b.Submit(context.Background(), spec(t, tag, "true"))
		var se *drms.StartError
		if !errors.As(err, &se) || se.Reason != "sbatch refused the job (exit status 1, no message)" {
			t.Errorf("Submit: %v, want a StartError that says sbatch said nothing", err)
		}
	})
	t.Run("sbatch_killed", func(t *testing.T) {
		// An sbatch killed by a signal (a Ctrl-C once reached it) may have
		// submitted: the job is looked up, never called refused.
		fakeSlurm(t, map[string]string{"sbatch": "kill -TERM $$", "squeue": "exit 0"})
		b := newB(t)
		if _, err := b.Submit(context.Background(), spec(t, tag, "true")); !errors.Is(err, drms.ErrSubmitUncertain) {
			t.Errorf("Submit: %v, want ErrSubmitUncertain", err)
		}
	})
	t.Run("squeue_timeout_and_garbage", func(t *testing.T) {
		fakeSlurm(t, map[string]string{"squeue": "exec sleep 30"})
		b := newB(t)
		h := b.handle("12", spec(t, tag, "true"))
		if _, err := b.Status(context.Background(), []drms.Handle{h}); !errors.Is(err, drms.ErrUnavailable) {
			t.Errorf("Status with hanging squeue: %v, want ErrUnavailable", err)
		}
		fakeSlurm(t, map[string]string{"squeue": "echo 'garbage'; echo '12|12|N/A|RUNNING|None|2026-01-01T00:00:00|N/A|node1|" + decodeName(t, h) + "'; echo '13|RUNNING'"})
		st, err := b.Status(context.Background(), []drms.Handle{h})
		if err != nil || st["12"].Phase != drms.Running || st["12"].Started.IsZero() {
			t.Errorf("Status with garbage: %+v %v", st, err)
		}
	})
	t.Run("bad_config", func(t *testing.T) {
		for _, cfg := range []drms.Config{
			{StateDir: t.TempDir(), EngineTag: "x"},
			{StateDir: t.TempDir(), ExecPath: "/bin/true"},
			{StateDir: t.TempDir(), ExecPath: "/bin/true", EngineTag: "a-b"},
			{StateDir: t.TempDir(), ExecPath: "/bin/true", EngineTag: "x", Settings: map[string]string{"submit_timeout": "soon"}},
			{StateDir: t.TempDir(), ExecPath: "/bin/true", EngineTag: "x", Settings: map[string]string{"accounting": "maybe"}},
		} {
			if _, err := New(cfg); err == nil {
				t.Errorf("New(%+v): no error", cfg)
			}
		}
	})
}

func decodeName(t *testing.T, h drms.Handle) string {
	st, err := decodeHandle(h)
	if err != nil {
		t.Fatal(err)
	}
	return st.Name
}

// TestScript checks the generated batch script: it execs exec-job with the
// job's argv quoted word by word.
func TestScript(t *testing.T) {
	b := newBackend(t, t.TempDir(), "scr", nil)
	s := spec(t, "scr", "printf", "%s\n", "it's", "$HOME", "a b")
	p, err := b.spool.Prepare(s)
	if err != nil {
		t.Fatal(err)
	}
	script := batch.Script(nil, b.spool.ExecArgv(b.cfg.ExecPath, s))
	if !strings.Contains(script, "exec '"+b.cfg.ExecPath+"' 'exec-job' '--status' '"+p.Status+"'") || !strings.Contains(script, `'it'\''s' '$HOME' 'a b'`) {
		t.Errorf("script:\n%s", script)
	}
	args, err := b.SbatchArgs(s, p.Script, p.Dir, p.Output)
	if err != nil || args[len(args)-1] != p.Script || args[0] != "--parsable" {
		t.Errorf("sbatch args %q %v", args, err)
	}
}

// TestControllerOutage stops slurmctld while jobs run and starts it again:
// Status and Submit report drms.ErrUnavailable meanwhile, and afterwards
// every job ends with its own outcome, each having run once. It stops the
// cluster's controller, so it runs only when SOMAFLOW_SLURM_OUTAGE=1
// (scripts/ci-slurm.sh sets it), as root, with slurm-up.sh's pid file.
func TestControllerOutage(t *testing.T) {
	requireSlurm(t)
	if os.Getenv("SOMAFLOW_SLURM_OUTAGE") != "1" {
		t.Skip("stops slurmctld: set SOMAFLOW_SLURM_OUTAGE=1 (scripts/ci-slurm.sh does)")
	}
	pidb, err := os.ReadFile("/run/slurmctld.pid")
	if err != nil || os.Getuid() != 0 {
		t.Fatalf("needs root and /run/slurmctld.pid (scripts/slurm-up.sh): %v", err)
	}
	tag := testTag("out")
	b := newBackend(t, t.TempDir(), tag, map[string]string{"command_timeout": "10s", "submit_timeout": "10s"})
	shared := t.TempDir()
	const n = 20
	var hs []drms.Handle
	var specs []drms.JobSpec
	for i := 0; i < n; i++ {
		s := spec(t, tag, "sh", "-c", fmt.Sprintf("echo ran >> %s/%d; sleep 2; exit %d", shared, i, i%4))
		specs = append(specs, s)
		hs = append(hs, submit(t, b, s))
	}
	var pid int
	fmt.Sscan(strings.TrimSpace(string(pidb)), &pid)
	p, _ := os.FindProcess(pid)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop slurmctld: %v", err)
	}
	restarted := false
	restart := func() {
		if restarted {
			return
		}
		restarted = true
		if out, err := exec.Command("slurmctld", "-i").CombinedOutput(); err != nil {
			t.Fatalf("restart slurmctld: %v %s", err, out)
		}
	}
	defer restart()
	deadline := time.Now().Add(time.Minute)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("slurmctld did not stop")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := b.Status(context.Background(), hs); !errors.Is(err, drms.ErrUnavailable) {
		t.Errorf("Status while slurmctld is down: %v, want ErrUnavailable", err)
	}
	if _, err := b.Submit(context.Background(), spec(t, tag, "true")); !errors.Is(err, drms.ErrUnavailable) && !errors.Is(err, drms.ErrSubmitUncertain) {
		t.Errorf("Submit while slurmctld is down: %v, want ErrUnavailable", err)
	}
	// Keep it down until the jobs that were running have finished on slurmd.
	deadline = time.Now().Add(2 * time.Minute)
	for {
		done := 0
		for _, s := range specs {
			if _, err := os.Stat(b.spool.Paths(s).Status); err == nil {
				done++
			}
		}
		started := 0
		for _, s := range specs {
			if _, err := os.Stat(b.spool.Paths(s).Started); err == nil {
				started++
			}
		}
		if done == started || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	restart()
	for i, h := range hs {
		o := waitEnd(t, b, h, 3*time.Minute)
		if o.ExitStatus != model.ExitFinishedRegular || o.ExitValue == nil || *o.ExitValue != i%4 {
			t.Errorf("job %d: %s", i, describe(o))
		}
		if got, _ := os.ReadFile(fmt.Sprintf("%s/%d", shared, i)); string(got) != "ran\n" {
			t.Errorf("job %d ran %q", i, got)
		}
	}
}

// A native specification adds options; it cannot make sbatch run another
// script (a word that is not an option became sbatch's script argument
// when the native specification was on the command line).
func TestNativeSpecCannotReplaceScript(t *testing.T) {
	requireSlurm(t)
	tag := testTag("nsp")
	b := newBackend(t, t.TempDir(), tag, nil)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	marker := filepath.Join(dir, "evil-ran")
	evil := filepath.Join(dir, "evil.sh")
	if err := os.WriteFile(evil, []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := spec(t, tag, "true")
	s.NativeSpec = []string{"--exclusive " + evil}
	_, err := b.Submit(context.Background(), s)
	var se *drms.StartError
	if !errors.As(err, &se) || !strings.Contains(se.Reason, "Invalid directive") {
		t.Fatalf("Submit with a bare word in the native specification: %v, want sbatch's refusal", err)
	}
	// A native specification with option values still works.
	s = spec(t, tag, "true")
	s.NativeSpec = []string{"-t 5 --comment='two words'"}
	h := submit(t, b, s)
	out, _ := exec.Command("scontrol", "show", "job", h.ID).CombinedOutput()
	if !strings.Contains(string(out), "TimeLimit=00:05:00") || !strings.Contains(string(out), "Comment=two words") {
		t.Fatalf("scontrol show job %s:\n%s", h.ID, out)
	}
	waitEnd(t, b, h, 2*time.Minute)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the native specification's word ran as the batch script")
	}
}

// A job's resources reach Slurm: scontrol shows the CPUs, memory and time
// limit asked (issue 25.1).
func TestResourcesReachSlurm(t *testing.T) {
	requireSlurm(t)
	tag := testTag("res")
	b := newBackend(t, t.TempDir(), tag, nil)
	s := spec(t, tag, "sleep", "60")
	s.Resources = model.Resources{CPUs: 2, MemoryMB: 300, Walltime: 150}
	h := submit(t, b, s)
	defer b.Kill(context.Background(), h)
	out, err := exec.Command("scontrol", "show", "job", h.ID).CombinedOutput()
	if err != nil {
		t.Fatalf("scontrol show job %s: %v\n%s", h.ID, err, out)
	}
	for _, want := range []string{"TimeLimit=00:03:00", "MinMemoryNode=300M", "MinCPUsNode=2"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("scontrol show job lacks %s:\n%s", want, out)
		}
	}
}

// TestSqueuePacing: while exec-job's files answer, Status does not ask
// squeue at every call: a job of a few seconds polled every 200 ms ends
// (from its status file, noticed at the next poll) with a few squeue calls,
// not one per poll; with squeue_interval 0, one per poll.
func TestSqueuePacing(t *testing.T) {
	requireSlurm(t)
	for _, c := range []struct {
		interval string
		paced    bool
	}{{"", true}, {"0s", false}} {
		tag := testTag("p")
		b := newBackend(t, t.TempDir(), tag, map[string]string{"squeue_interval": c.interval})
		h := submit(t, b, spec(t, tag, "sh", "-c", "sleep 4; exit 7"))
		polls := 0
		var o *drms.Outcome
		for deadline := time.Now().Add(2 * time.Minute); o == nil; {
			if time.Now().After(deadline) {
				t.Fatalf("job %s did not end", h.ID)
			}
			polls++
			st, err := b.Status(context.Background(), []drms.Handle{h})
			if err != nil {
				t.Fatal(err)
			}
			if s := st[h.ID]; s.Phase == drms.Ended {
				o = s.Outcome
			}
			time.Sleep(200 * time.Millisecond)
		}
		if o.ExitValue == nil || *o.ExitValue != 7 {
			t.Fatalf("interval %q: outcome %s", c.interval, describe(o))
		}
		squeue := b.Calls()["squeue"]
		if c.paced && squeue*3 > polls {
			t.Errorf("paced: %d squeue calls in %d polls", squeue, polls)
		}
		if !c.paced && squeue < polls {
			t.Errorf("squeue_interval 0: %d squeue calls in %d polls, want one per poll", squeue, polls)
		}
		t.Logf("squeue_interval %q: %d squeue calls in %d polls", c.interval, squeue, polls)
	}
}

// TestSqueueIdlePacing: while every job runs by its started file (nothing
// is due), Status asks squeue at squeue_idle_interval (at most half of
// MinJobAge without accounting), not at squeue_interval, however often it
// is called; a job past its walltime (its status file overdue) brings back
// squeue_interval, and a kill by somaflow makes the next Status ask at once.
func TestSqueueIdlePacing(t *testing.T) {
	requireSlurm(t)
	ctx := context.Background()
	settings := map[string]string{"squeue_interval": "1s", "squeue_idle_interval": "1h"}
	// pollWindow: every job stays running; the squeue calls and how long.
	pollWindow := func(b *Backend, hs []drms.Handle) (int, time.Duration) {
		t.Helper()
		return backendtest.CallsWhileRunning(t, ctx, b, hs, func() int { return b.Calls()["squeue"] })
	}
	// waitRunning polls until Status says every job runs and exec-job
	// wrote every started file.
	waitRunning := func(b *Backend, hs []drms.Handle) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the jobs did not all start")
			}
			st, err := b.Status(ctx, hs)
			if err != nil {
				t.Fatal(err)
			}
			all := true
			for _, h := range hs {
				hst, _ := decodeHandle(h)
				si, _ := batch.ReadStarted(hst.Started)
				all = all && st[h.ID].Phase == drms.Running && si != nil
			}
			if all {
				return
			}
		}
	}

	tag := testTag("idle")
	b := newBackend(t, t.TempDir(), tag, settings)
	var hs []drms.Handle
	for i := 0; i < 3; i++ {
		hs = append(hs, submit(t, b, spec(t, tag, "sleep", "300")))
	}
	// At the end, cancel the jobs and wait for their ends (exec-job writes
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
			waitEnd(t, o.b, o.h, 2*time.Minute)
		}
	}()
	for _, h := range hs {
		all = append(all, owned{b, h})
	}
	waitRunning(b, hs)
	b.mu.Lock()
	busy, idle := b.intervals()
	acct := b.acct != nil && *b.acct
	b.mu.Unlock()
	if busy != time.Second || idle <= busy {
		t.Fatalf("intervals: busy %v, idle %v (accounting %v, MinJobAge %v): want 1s and more", busy, idle, acct, b.minJobAge)
	}
	if acct && idle != time.Hour {
		t.Fatalf("with accounting: idle interval %v, want the setting (1h)", idle)
	}
	n, d := pollWindow(b, hs)
	if max := int(d/idle) + 1; n > max {
		t.Errorf("nothing due: %d squeue calls in %v, want at most %d (idle interval %v)", n, d.Round(time.Millisecond), max, idle)
	}
	t.Logf("nothing due: %d squeue calls in %v (idle interval %v, accounting %v)", n, d.Round(time.Millisecond), idle, acct)

	// A kill: the next Status asks squeue.
	backendtest.KillAsksAtOnce(t, ctx, b, hs, func() int { return b.Calls()["squeue"] }, "squeue")

	// A job past its walltime (2 s here; Slurm enforces a minute): due.
	tag = testTag("over")
	b2 := newBackend(t, t.TempDir(), tag, settings)
	s := spec(t, tag, "sleep", "300")
	s.Resources = model.Resources{Walltime: 2}
	h := submit(t, b2, s)
	all = append(all, owned{b2, h})
	waitRunning(b2, []drms.Handle{h})
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if si, _ := batch.ReadStarted(startedPath(t, h)); si != nil && time.Since(si.Time) > 3*time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("started file")
		}
	}
	n, d = pollWindow(b2, []drms.Handle{h})
	if min := int(d / (3 * busy)); n < min {
		t.Errorf("past its walltime: %d squeue calls in %v, want at least %d (interval %v)", n, d.Round(time.Millisecond), min, busy)
	}
	t.Logf("past its walltime: %d squeue calls in %v", n, d.Round(time.Millisecond))
}

func startedPath(t *testing.T, h drms.Handle) string {
	t.Helper()
	st, err := decodeHandle(h)
	if err != nil {
		t.Fatal(err)
	}
	return st.Started
}
