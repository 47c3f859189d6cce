package pbs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/somaflow/somaflow/drms"
)

// fakePBS puts scripts called like PBS's commands first on PATH (error
// paths only: the backend's real runs are in TestConformance).
func fakePBS(t *testing.T, cmds map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range cmds {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
}

func fakeSpec(t *testing.T, argv ...string) drms.JobSpec {
	dir := t.TempDir()
	return drms.JobSpec{EngineTag: "fake", WorkflowID: 1, JobID: 7, JobName: "j", Attempt: 1, Argv: argv, Dir: dir,
		Stdout: filepath.Join(dir, "out"), Stderr: filepath.Join(dir, "err")}
}

func TestErrorPaths(t *testing.T) {
	newB := func(t *testing.T, dialect string) *Backend {
		b, err := New(drms.Config{StateDir: t.TempDir(), ExecPath: "/bin/true", EngineTag: "fake", Settings: map[string]string{
			"dialect": dialect, "submit_timeout": "500ms", "command_timeout": "2s", "lookup_delay": "10ms", "status_grace": "0s"}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ctx := context.Background()
	down := `echo "$(basename $0): cannot connect to server pbs01 (errno=111)" >&2; exit 1`
	t.Run("server_down", func(t *testing.T) {
		fakePBS(t, map[string]string{"qsub": down, "qstat": down, "qdel": down})
		b := newB(t, "pbspro")
		if _, err := b.Status(ctx, []drms.Handle{b.handle("12.pbs01", fakeSpec(t, "true"))}); !errors.Is(err, drms.ErrUnavailable) {
			t.Errorf("Status: %v, want ErrUnavailable", err)
		}
		if _, err := b.Submit(ctx, fakeSpec(t, "true")); !errors.Is(err, drms.ErrUnavailable) {
			t.Errorf("Submit: %v, want ErrUnavailable", err)
		}
		if err := b.Kill(ctx, drms.Handle{ID: "12.pbs01"}); !errors.Is(err, drms.ErrUnavailable) {
			t.Errorf("Kill: %v, want ErrUnavailable", err)
		}
	})
	t.Run("qsub_timeout_not_found", func(t *testing.T) {
		fakePBS(t, map[string]string{"qsub": "exec sleep 30", "qstat": "exit 0"})
		b := newB(t, "torque")
		if _, err := b.Submit(ctx, fakeSpec(t, "true")); !errors.Is(err, drms.ErrSubmitUncertain) {
			t.Errorf("Submit: %v, want ErrSubmitUncertain", err)
		}
	})
	t.Run("qsub_timeout_found_by_name", func(t *testing.T) {
		s := fakeSpec(t, "true")
		fakePBS(t, map[string]string{"qsub": "exec sleep 30",
			"qstat": `printf 'Job Id: 4711.pbs01\n    Job_Name = ` + s.Name() + `\n    job_state = Q\n\n'`})
		b := newB(t, "torque")
		h, err := b.Submit(ctx, s)
		if err != nil || h.ID != "4711.pbs01" {
			t.Errorf("Submit: %+v %v, want job 4711.pbs01", h, err)
		}
	})
	t.Run("qsub_garbage", func(t *testing.T) {
		fakePBS(t, map[string]string{"qsub": "echo 'job submitted, maybe'", "qstat": "exit 0"})
		b := newB(t, "torque")
		if _, err := b.Submit(ctx, fakeSpec(t, "true")); !errors.Is(err, drms.ErrSubmitUncertain) {
			t.Errorf("Submit: %v, want ErrSubmitUncertain", err)
		}
	})
	t.Run("qsub_refused", func(t *testing.T) {
		fakePBS(t, map[string]string{"qsub": `echo "qsub: Unknown queue" >&2; exit 170`})
		b := newB(t, "pbspro")
		_, err := b.Submit(ctx, fakeSpec(t, "true"))
		var se *drms.StartError
		if !errors.As(err, &se) || !strings.Contains(se.Reason, "Unknown queue") {
			t.Errorf("Submit: %v, want a StartError with qsub's words", err)
		}
	})
	t.Run("qsub_not_installed", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		b := newB(t, "pbspro")
		if _, err := b.Submit(ctx, fakeSpec(t, "true")); err == nil || !strings.Contains(err.Error(), "not found on PATH") {
			t.Errorf("Submit without qsub: %v", err)
		}
	})
	t.Run("bad_native_specification", func(t *testing.T) {
		fakePBS(t, map[string]string{"qsub": `echo 1.pbs01`})
		b := newB(t, "pbspro")
		s := fakeSpec(t, "true")
		s.NativeSpec = []string{"-l walltime=1:00:00 /tmp/evil.sh"}
		var se *drms.StartError
		if _, err := b.Submit(ctx, s); !errors.As(err, &se) || !strings.Contains(se.Reason, "/tmp/evil.sh") {
			t.Errorf("Submit: %v, want a StartError naming the word", err)
		}
		if _, err := os.Stat(b.spool.Paths(s).Script); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused job left its script in the spool (stat: %v)", err)
		}
	})
	t.Run("qstat_timeout_and_garbage", func(t *testing.T) {
		fakePBS(t, map[string]string{"qstat": "exec sleep 30"})
		b := newB(t, "torque")
		h := b.handle("12.pbs01", fakeSpec(t, "true"))
		if _, err := b.Status(ctx, []drms.Handle{h}); !errors.Is(err, drms.ErrUnavailable) {
			t.Errorf("Status with a hanging qstat: %v, want ErrUnavailable", err)
		}
		name := fakeSpec(t, "true").Name()
		fakePBS(t, map[string]string{"qstat": `printf 'garbage\nJob Id: 12.pbs01\n    no equals sign here\n    Job_Name = ` + name + `\n    job_state = R\n    =\n\n'`})
		st, err := b.Status(ctx, []drms.Handle{h})
		// R, and exec-job has not started yet (no started file): starting.
		if err != nil || st["12.pbs01"].Reason != "starting (state R)" {
			t.Errorf("Status with garbage: %+v %v", st, err)
		}
	})
	t.Run("invalid_json_falls_back_to_text", func(t *testing.T) {
		// openpbs issue 2541: qstat -F json prints an all-digit value bare.
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "bad.json"), readTestdata(t, "pbspro/bug_digits.json"), 0o644)
		text := strings.ReplaceAll(string(readTestdata(t, "pbspro/full.txt")), "sf-t1-1-11-1", "sf-fake-1-7-1")
		os.WriteFile(filepath.Join(dir, "full.txt"), []byte(text), 0o644)
		fakePBS(t, map[string]string{"qstat": `case "$*" in *json*) cat ` + dir + `/bad.json;; *) cat ` + dir + `/full.txt;; esac`})
		b := newB(t, "pbspro")
		st, err := b.Status(ctx, []drms.Handle{b.handle("111.pbs01", fakeSpec(t, "true"))})
		if err != nil || st["111.pbs01"].Reason != "starting (state R)" {
			t.Errorf("Status: %+v %v, want the job running from the text form", st, err)
		}
		if c := b.Calls(); c["qstat"] != 2 {
			t.Errorf("qstat calls %v, want 2 (json, then text)", c)
		}
	})
	t.Run("finished_without_history", func(t *testing.T) {
		// PBS Pro without job history forgets a finished job; with no status
		// file the outcome is lost, and says why.
		fakePBS(t, map[string]string{"qstat": `case "$*" in *-x*) echo "qstat: 12.pbs01 Job has finished, use -x or -H to obtain historical job information" >&2; exit 35;; *) cat ` + filepath.Join(mustAbs(t, "testdata"), "pbspro/none.json") + `;; esac`})
		b := newB(t, "pbspro")
		st, err := b.Status(ctx, []drms.Handle{b.handle("12.pbs01", fakeSpec(t, "true"))})
		o := st["12.pbs01"].Outcome
		if err != nil || o == nil || o.ExitStatus != "exit_status_undetermined" || !strings.Contains(o.Reason, "no longer lists") {
			t.Errorf("Status: %+v %v", o, err)
		}
	})
	t.Run("qdel_of_a_finished_job", func(t *testing.T) {
		// Slurm's wrappers: exit 1 and no message for a finished job.
		fakePBS(t, map[string]string{"qdel": "exit 1", "qstat": `printf 'Job Id:\t12\n\tJob_Name = sf-fake-1-7-1\n\tjob_state = C\n\n'`})
		b := newB(t, "torque")
		if err := b.Kill(ctx, drms.Handle{ID: "12"}); err != nil {
			t.Errorf("Kill of a finished job: %v", err)
		}
		fakePBS(t, map[string]string{"qdel": "exit 1", "qstat": `printf 'Job Id:\t12\n\tJob_Name = sf-fake-1-7-1\n\tjob_state = R\n\n'`})
		if err := b.Kill(ctx, drms.Handle{ID: "12"}); err == nil {
			t.Error("Kill of a running job that qdel refused: no error")
		}
	})
	t.Run("bad_config", func(t *testing.T) {
		for _, cfg := range []drms.Config{
			{StateDir: t.TempDir(), EngineTag: "x"},
			{StateDir: t.TempDir(), ExecPath: "/bin/true"},
			{StateDir: t.TempDir(), ExecPath: "/bin/true", EngineTag: "a-b"},
			{StateDir: t.TempDir(), ExecPath: "/bin/true", EngineTag: "x", Settings: map[string]string{"submit_timeout": "soon"}},
			{StateDir: t.TempDir(), ExecPath: "/bin/true", EngineTag: "x", Settings: map[string]string{"dialect": "lsf"}},
			{StateDir: t.TempDir(), ExecPath: "/bin/true", EngineTag: "x", Settings: map[string]string{"qsub_options": "-N x"}},
			{StateDir: t.TempDir(), ExecPath: "/bin/true", EngineTag: "x", Settings: map[string]string{"dependencies": "maybe"}},
		} {
			if _, err := New(cfg); err == nil {
				t.Errorf("New(%+v): no error", cfg)
			}
		}
	})
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestPendingReason: a queued job's state carries PBS's comment (why it
// waits), from the listing of testdata/pbspro/list.json.
func TestPendingReason(t *testing.T) {
	fakePBS(t, map[string]string{"qstat": "cat " + filepath.Join(mustAbs(t, "testdata"), "pbspro/list.json")})
	b, err := New(drms.Config{StateDir: t.TempDir(), ExecPath: "/bin/true", EngineTag: "t1", Settings: map[string]string{"dialect": "pbspro"}})
	if err != nil {
		t.Fatal(err)
	}
	spec := fakeSpec(t, "true")
	spec.EngineTag, spec.JobID = "t1", 1
	h := b.handle("101.pbs01", spec)
	st, err := b.Status(context.Background(), []drms.Handle{h})
	if err != nil {
		t.Fatal(err)
	}
	if s := st[h.ID]; s.Phase != drms.Queued || !strings.Contains(s.Reason, "Insufficient amount of resource: ncpus") {
		t.Fatalf("queued job: %+v", s)
	}
}
