package slurm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/batch"
	"github.com/somaflow/somaflow/model"
)

func submitArray(t *testing.T, b *Backend, specs []drms.JobSpec) []drms.Handle {
	t.Helper()
	hs, err := b.SubmitArray(context.Background(), specs)
	if err != nil {
		t.Fatalf("SubmitArray: %v", err)
	}
	if len(hs) != len(specs) {
		t.Fatalf("SubmitArray: %d handles for %d specs", len(hs), len(specs))
	}
	return hs
}

// sameArray checks that hs are tasks 0..n-1 of one array and returns its id.
func sameArray(t *testing.T, hs []drms.Handle) string {
	t.Helper()
	arr := arrayOf(hs[0].ID)
	for i, h := range hs {
		if h.ID != arr+"_"+itoa(i) {
			t.Fatalf("handle %d is %q, want %s_%d (handles %v)", i, h.ID, arr, i, ids(hs))
		}
	}
	return arr
}

func itoa(i int) string { return strconv.Itoa(i) }

func ids(hs []drms.Handle) []string {
	var s []string
	for _, h := range hs {
		s = append(s, h.ID)
	}
	return s
}

// waiter is a job that prints "up" and then waits until file exists.
func waiter(t *testing.T, tag, file string) drms.JobSpec {
	return spec(t, tag, "sh", "-c", `echo up; while [ ! -e "$1" ]; do sleep 0.2; done`, "sh", file)
}

// TestArrays: job arrays against the real Slurm (setting arrays=true).
func TestArrays(t *testing.T) {
	requireSlurm(t)
	tag := testTag("a")
	state := t.TempDir()
	b := newBackend(t, state, tag, map[string]string{"arrays": "true"})
	if !b.Capabilities().Arrays || newBackend(t, t.TempDir(), tag, nil).Capabilities().Arrays {
		t.Fatal("Capabilities().Arrays does not follow the setting")
	}

	t.Run("mixed_outcomes", func(t *testing.T) {
		// One array; every task ends with its own outcome, and each runs its
		// own argv (quotes and $ arrive as they are), env, dir and files.
		t.Parallel()
		specs := []drms.JobSpec{
			spec(t, tag, "printf", "%s|", "it's", "$HOME", "a b", "`id`"),
			spec(t, tag, "sh", "-c", "exit 3"),
			spec(t, tag, "sh", "-c", "kill -KILL $$"),
			spec(t, tag, "no-such-command-somaflow"),
			spec(t, tag, "sh", "-c", `echo "$SF_TASK_VAR $(pwd)"`),
		}
		specs[4].Env = append(specs[4].Env, "SF_TASK_VAR=four")
		hs := submitArray(t, b, specs)
		sameArray(t, hs)
		for i, want := range []func(*drms.Outcome) bool{
			func(o *drms.Outcome) bool { return model.Succeeded(o.Status, o.ExitStatus, o.ExitValue) },
			func(o *drms.Outcome) bool { return o.ExitStatus == model.ExitFinishedRegular && *o.ExitValue == 3 },
			func(o *drms.Outcome) bool { return o.ExitStatus == model.ExitFinishedSignal && o.Signal == "SIGKILL" },
			func(o *drms.Outcome) bool {
				return o.Status == model.JobFailed && o.ExitStatus == model.ExitAborted && strings.Contains(o.Reason, "no-such-command-somaflow")
			},
			func(o *drms.Outcome) bool { return model.Succeeded(o.Status, o.ExitStatus, o.ExitValue) },
		} {
			if o := waitEnd(t, b, hs[i], 2*time.Minute); !want(o) {
				t.Errorf("task %d (%v): %s", i, specs[i].Argv, describe(o))
			}
		}
		waitFile(t, specs[0].Stdout, "it's|$HOME|a b|`id`|")
		waitFile(t, specs[4].Stdout, "four "+specs[4].Dir+"\n")
	})

	t.Run("kill_one_task", func(t *testing.T) {
		t.Parallel()
		stop := filepath.Join(t.TempDir(), "stop")
		specs := []drms.JobSpec{waiter(t, tag, stop), waiter(t, tag, stop), waiter(t, tag, stop)}
		hs := submitArray(t, b, specs)
		sameArray(t, hs)
		for _, s := range specs {
			waitFile(t, s.Stdout, "up\n")
		}
		if err := b.Kill(context.Background(), hs[1]); err != nil {
			t.Fatal(err)
		}
		o := waitEnd(t, b, hs[1], 2*time.Minute)
		if o.ExitStatus != model.ExitFinishedSignal || o.Started.IsZero() || drms.Resolve(true, o).ExitStatus != model.ExitKilledByUser {
			t.Fatalf("killed task: %s", describe(o))
		}
		st, err := b.Status(context.Background(), hs)
		if err != nil || st[hs[0].ID].Phase != drms.Running || st[hs[2].ID].Phase != drms.Running {
			t.Fatalf("the other tasks: %+v %v", st, err)
		}
		if err := os.WriteFile(stop, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, i := range []int{0, 2} {
			if o := waitEnd(t, b, hs[i], 2*time.Minute); !model.Succeeded(o.Status, o.ExitStatus, o.ExitValue) {
				t.Errorf("task %d: %s", i, describe(o))
			}
		}
	})

	t.Run("pending_tasks_cancelled", func(t *testing.T) {
		// A held array: one task killed by us, one cancelled from outside;
		// Slurm drops both from the array; the third stays held.
		t.Parallel()
		specs := []drms.JobSpec{spec(t, tag, "true"), spec(t, tag, "true"), spec(t, tag, "true")}
		for i := range specs {
			specs[i].NativeSpec = []string{"--hold"}
		}
		hs := submitArray(t, b, specs)
		sameArray(t, hs)
		waitPhase(t, b, hs[0], drms.Held)
		if err := b.Kill(context.Background(), hs[0]); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("scancel", hs[1].ID).CombinedOutput(); err != nil {
			t.Fatalf("scancel: %v %s", err, out)
		}
		o := waitEnd(t, b, hs[0], 2*time.Minute)
		if r := drms.Resolve(true, o); r.ExitStatus != model.ExitAbortedBefore || !o.Started.IsZero() {
			t.Errorf("killed while pending: %s -> %s", describe(o), describe(r))
		}
		o = waitEnd(t, b, hs[1], 2*time.Minute)
		if o.Status != model.JobFailed || o.ExitStatus != model.ExitFinishedUnclear || !strings.Contains(o.Reason, "cancelled outside somaflow while queued") {
			t.Errorf("cancelled from outside while pending: %s", describe(o))
		}
		if st, err := b.Status(context.Background(), hs[2:]); err != nil || st[hs[2].ID].Phase != drms.Held {
			t.Errorf("third task: %+v %v", st, err)
		}
		if err := b.Kill(context.Background(), hs[2]); err != nil {
			t.Fatal(err)
		}
		waitEnd(t, b, hs[2], 2*time.Minute)
	})

	t.Run("recover_and_locate", func(t *testing.T) {
		// A new backend instance (a restarted engine) re-attaches by handle
		// and finds every task by Locate: from the spool's job id file, and
		// without it from squeue by the array's name.
		t.Parallel()
		stop := filepath.Join(t.TempDir(), "stop")
		specs := []drms.JobSpec{waiter(t, tag, stop), waiter(t, tag, stop), spec(t, tag, "sh", "-c", "exit 4")}
		hs := submitArray(t, b, specs)
		arr := sameArray(t, hs)
		waitFile(t, specs[0].Stdout, "up\n")
		b2 := newBackend(t, state, tag, map[string]string{"arrays": "true"})
		if st, err := b2.Recover(context.Background(), hs[0]); err != nil || st.Phase != drms.Running || st.Started.IsZero() {
			t.Fatalf("Recover: %+v %v", st, err)
		}
		for i, s := range specs {
			h, found, never, err := b2.Locate(context.Background(), s)
			if err != nil || !found || never || h.ID != hs[i].ID {
				t.Fatalf("Locate task %d: %+v found=%v never=%v err=%v", i, h, found, never, err)
			}
		}
		jobid := filepath.Join(b.spool.Paths(specs[0]).Dir, batch.ArrayName(specs[0])+".jobid")
		if data, err := os.ReadFile(jobid); err != nil || strings.TrimSpace(string(data)) != arr {
			t.Fatalf("job id file: %q %v", data, err)
		}
		if err := os.Remove(jobid); err != nil {
			t.Fatal(err)
		}
		b3 := newBackend(t, state, tag, map[string]string{"arrays": "true"})
		for i, s := range specs {
			h, found, never, err := b3.Locate(context.Background(), s)
			if err != nil || !found || never || h.ID != hs[i].ID {
				t.Fatalf("Locate task %d by name: %+v found=%v never=%v err=%v", i, h, found, never, err)
			}
		}
		never := spec(t, tag, "true")
		if _, found, nev, err := b3.Locate(context.Background(), never); err != nil || found || !nev {
			t.Fatalf("Locate of a job never submitted: found=%v never=%v err=%v", found, nev, err)
		}
		if err := os.WriteFile(stop, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		for i, want := range []int{0, 0, 4} {
			if o := waitEnd(t, b3, hs[i], 2*time.Minute); o.ExitStatus != model.ExitFinishedRegular || *o.ExitValue != want {
				t.Errorf("task %d after recovery: %s", i, describe(o))
			}
		}
	})

	t.Run("groups_and_refusals", func(t *testing.T) {
		// Specs that cannot share an array go in several; a group of one is
		// a plain job; a group that sbatch refuses ends failed/aborted with
		// sbatch's message while the others run.
		t.Parallel()
		specs := []drms.JobSpec{
			spec(t, tag, "sh", "-c", "exit 0"),
			spec(t, tag, "sh", "-c", "exit 1"),
			spec(t, tag, "sh", "-c", "exit 2"),
			spec(t, tag, "sh", "-c", "exit 3"),
			spec(t, tag, "sh", "-c", "exit 4"),
			spec(t, tag, "sh", "-c", "exit 5"),
			spec(t, tag, "sh", "-c", "exit 6"),
		}
		specs[1].NativeSpec = []string{"--comment=other"}
		specs[3].NativeSpec = []string{"--comment=other"}
		specs[4].Queue = "no-such-partition"
		specs[5].Queue = "no-such-partition"
		specs[6].NativeSpec = []string{"--comment=alone"}
		hs := submitArray(t, b, specs)
		if a := arrayOf(hs[0].ID); hs[0].ID != a+"_0" || hs[2].ID != a+"_1" {
			t.Errorf("first group: %v", ids(hs))
		}
		if a := arrayOf(hs[1].ID); hs[1].ID != a+"_0" || hs[3].ID != a+"_1" || a == arrayOf(hs[0].ID) {
			t.Errorf("second group: %v", ids(hs))
		}
		if !isNumber(hs[6].ID) {
			t.Errorf("a group of one is not a plain job: %v", ids(hs))
		}
		for i, h := range hs {
			o := waitEnd(t, b, h, 2*time.Minute)
			if i == 4 || i == 5 {
				if o.Status != model.JobFailed || o.ExitStatus != model.ExitAborted || !strings.Contains(o.Reason, "partition") {
					t.Errorf("refused task %d: %s", i, describe(o))
				}
				if err := b.Kill(context.Background(), h); err != nil {
					t.Errorf("Kill of a refused task: %v", err)
				}
				continue
			}
			if o.ExitStatus != model.ExitFinishedRegular || *o.ExitValue != i {
				t.Errorf("task %d: %s", i, describe(o))
			}
		}
		// Every spec refused for one reason: a StartError, nothing submitted,
		// and Locate says so.
		bad := []drms.JobSpec{spec(t, tag, "true"), spec(t, tag, "true")}
		bad[0].Queue, bad[1].Queue = "no-such-partition", "no-such-partition"
		_, err := b.SubmitArray(context.Background(), bad)
		var se *drms.StartError
		if !errors.As(err, &se) || !strings.Contains(se.Reason, "partition") {
			t.Fatalf("all refused: %v", err)
		}
		if _, found, never, err := b.Locate(context.Background(), bad[0]); err != nil || found || !never {
			t.Errorf("Locate of a refused task: found=%v never=%v err=%v", found, never, err)
		}
	})
}

// TestArrayErrorPaths: SubmitArray with fake Slurm commands.
func TestArrayErrorPaths(t *testing.T) {
	tag := "fakearr"
	newB := func(t *testing.T) *Backend {
		return newBackend(t, t.TempDir(), tag, map[string]string{"arrays": "true", "submit_timeout": "500ms", "command_timeout": "2s", "lookup_delay": "10ms", "accounting": "no"})
	}
	two := func(t *testing.T) []drms.JobSpec { return []drms.JobSpec{spec(t, tag, "true"), spec(t, tag, "true")} }
	t.Run("off", func(t *testing.T) {
		b := newBackend(t, t.TempDir(), tag, nil)
		if _, err := b.SubmitArray(context.Background(), two(t)); err == nil {
			t.Error("SubmitArray with arrays off: no error")
		}
		if _, err := New(drms.Config{StateDir: t.TempDir(), ExecPath: "/bin/true", EngineTag: "x", Settings: map[string]string{"arrays": "maybe"}}); err == nil {
			t.Error("arrays=maybe accepted")
		}
	})
	t.Run("controller_down", func(t *testing.T) {
		fakeSlurm(t, map[string]string{"sbatch": `echo "sbatch: error: Unable to contact slurm controller (connect failure)" >&2; exit 1`, "scontrol": "exit 1"})
		b := newB(t)
		specs := two(t)
		if _, err := b.SubmitArray(context.Background(), specs); !errors.Is(err, drms.ErrUnavailable) {
			t.Fatalf("SubmitArray: %v, want ErrUnavailable", err)
		}
		if _, found, never, err := b.Locate(context.Background(), specs[0]); err != nil || found || !never {
			t.Errorf("Locate: found=%v never=%v err=%v, want never submitted", found, never, err)
		}
	})
	t.Run("timeout_found", func(t *testing.T) {
		specs := two(t)
		name := batch.ArrayName(specs[0])
		fakeSlurm(t, map[string]string{"sbatch": "exec sleep 30", "scontrol": "exit 1",
			"squeue": `echo "4712|4711|1|RUNNING|None|N/A|N/A|n1|` + name + `"; echo "4711|4711|0|PENDING|None|N/A|N/A||` + name + `"`})
		b := newB(t)
		hs, err := b.SubmitArray(context.Background(), specs)
		if err != nil || strings.Join(ids(hs), ",") != "4711_0,4711_1" {
			t.Fatalf("SubmitArray: %v %v", ids(hs), err)
		}
	})
	t.Run("timeout_not_found_then_partial", func(t *testing.T) {
		// The first array's sbatch times out and is not found; the second
		// group is submitted: uncertain, and Locate tells each apart.
		specs := append(two(t), two(t)...)
		specs[2].Queue, specs[3].Queue = "other", "other"
		fakeSlurm(t, map[string]string{"scontrol": "exit 1", "squeue": "exit 0",
			"sbatch": `case "$*" in *--partition=other*) echo 900;; *) exec sleep 30;; esac`})
		b := newB(t)
		_, err := b.SubmitArray(context.Background(), specs)
		if !errors.Is(err, drms.ErrSubmitUncertain) {
			t.Fatalf("SubmitArray: %v, want ErrSubmitUncertain", err)
		}
		for i, s := range specs {
			h, found, _, err := b.Locate(context.Background(), s)
			if err != nil || (i >= 2) != found || found && h.ID != "900_"+itoa(i-2) {
				t.Errorf("Locate %d: %+v found=%v err=%v", i, h, found, err)
			}
		}
	})
}

// TestDependencies: SubmitAfter against the real Slurm (setting
// dependencies=true).
func TestDependencies(t *testing.T) {
	requireSlurm(t)
	tag := testTag("d")
	b := newBackend(t, t.TempDir(), tag, map[string]string{"dependencies": "true", "arrays": "true"})
	if !b.Capabilities().Dependencies {
		t.Fatal("Capabilities().Dependencies is off")
	}
	t.Run("afterok_success", func(t *testing.T) {
		t.Parallel()
		stop := filepath.Join(t.TempDir(), "stop")
		first := submit(t, b, waiter(t, tag, stop))
		s := spec(t, tag, "echo", "second")
		h, err := b.SubmitAfter(context.Background(), s, []drms.Handle{first})
		if err != nil {
			t.Fatal(err)
		}
		waitPhase(t, b, h, drms.Queued)
		if err := os.WriteFile(stop, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if o := waitEnd(t, b, h, 2*time.Minute); !model.Succeeded(o.Status, o.ExitStatus, o.ExitValue) {
			t.Fatalf("dependant: %s", describe(o))
		}
		waitFile(t, s.Stdout, "second\n")
	})
	t.Run("afterok_failure", func(t *testing.T) {
		// The dependency (an array task) fails: Slurm cancels the dependant
		// (DependencyNeverSatisfied), which ends aborted_before_running.
		t.Parallel()
		stop := filepath.Join(t.TempDir(), "stop")
		deps := submitArray(t, b, []drms.JobSpec{
			spec(t, tag, "sh", "-c", `while [ ! -e "$1" ]; do sleep 0.2; done; exit 1`, "sh", stop),
			spec(t, tag, "true"),
		})
		s := spec(t, tag, "touch", filepath.Join(t.TempDir(), "ran"))
		h, err := b.SubmitAfter(context.Background(), s, deps)
		if err != nil {
			t.Fatal(err)
		}
		waitPhase(t, b, h, drms.Queued)
		if err := os.WriteFile(stop, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		o := waitEnd(t, b, h, 2*time.Minute)
		if o.Status != model.JobFailed || o.ExitStatus != model.ExitAbortedBefore || !o.Started.IsZero() || !strings.Contains(o.Reason, "DependencyNeverSatisfied") {
			t.Fatalf("dependant of a failed job: %s", describe(o))
		}
		if r := drms.Resolve(false, o); r.ExitStatus != model.ExitAbortedBefore {
			t.Fatalf("resolved: %s", describe(r))
		}
		if _, err := os.Stat(s.Argv[1]); err == nil {
			t.Fatal("the dependant ran")
		}
	})
	t.Run("purged_dependencies", func(t *testing.T) {
		// Dependencies that Slurm forgot: the one that succeeded is dropped,
		// the one that failed makes the dependant aborted_before_running
		// without submitting it.
		t.Parallel()
		ok := submit(t, b, spec(t, tag, "true"))
		bad := submit(t, b, spec(t, tag, "false"))
		waitEnd(t, b, ok, 2*time.Minute)
		waitEnd(t, b, bad, 2*time.Minute)
		waitPurged(t, ok.ID)
		waitPurged(t, bad.ID)
		h, err := b.SubmitAfter(context.Background(), spec(t, tag, "true"), []drms.Handle{ok})
		if err != nil {
			t.Fatal(err)
		}
		if o := waitEnd(t, b, h, 2*time.Minute); !model.Succeeded(o.Status, o.ExitStatus, o.ExitValue) {
			t.Fatalf("after a purged success: %s", describe(o))
		}
		h, err = b.SubmitAfter(context.Background(), spec(t, tag, "true"), []drms.Handle{ok, bad})
		if err != nil {
			t.Fatal(err)
		}
		if o := waitEnd(t, b, h, time.Minute); o.ExitStatus != model.ExitAbortedBefore || !o.Started.IsZero() {
			t.Fatalf("after a purged failure: %s", describe(o))
		}
	})
	t.Run("off", func(t *testing.T) {
		b := newBackend(t, t.TempDir(), tag, nil)
		if b.Capabilities().Dependencies {
			t.Error("Dependencies on by default")
		}
		if _, err := b.SubmitAfter(context.Background(), spec(t, tag, "true"), nil); err == nil {
			t.Error("SubmitAfter with dependencies off: no error")
		}
	})
}
