package command

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/backendtest"
	"github.com/somaflow/somaflow/drms/batch"
	"github.com/somaflow/somaflow/drms/execjob"
)

// The test binary is also `somaflow exec-job` for the jobs it submits.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "exec-job" {
		os.Exit(execjob.Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// contribSettings reads the settings of a worked example under
// contrib/command-backends/, as a site admin installs it.
func contribSettings(t *testing.T, name string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "contrib", "command-backends", name))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Backend  string            `yaml:"backend"`
		Settings map[string]string `yaml:"settings"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil || cfg.Backend != "command" {
		t.Fatalf("%s: backend %q, %v", name, cfg.Backend, err)
	}
	return cfg.Settings
}

func exe(t *testing.T) string {
	e, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// requireSlurm skips without a usable Slurm unless SOMAFLOW_REQUIRE names
// slurm (CI: scripts/ci-slurm.sh).
func requireSlurm(t *testing.T) {
	t.Helper()
	// A node finishing the previous package's jobs says "completing" for
	// a moment: usable, as drms/slurm's tests count it.
	var s string
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		var out []byte
		out, err = exec.Command("sinfo", "-h", "-o", "%T").Output()
		s = strings.TrimSpace(string(out))
		for _, st := range []string{"idle", "mixed", "alloc", "completing", "planned"} {
			if err == nil && strings.Contains(s, st) {
				return
			}
		}
		if err != nil || time.Now().After(deadline) {
			break
		}
	}
	for _, r := range strings.Split(os.Getenv("SOMAFLOW_REQUIRE"), ",") {
		if r == "slurm" {
			t.Fatalf("Slurm required (SOMAFLOW_REQUIRE) but sinfo says %q (%v)", s, err)
		}
	}
	t.Skipf("no usable Slurm (sinfo: %q %v)", s, err)
}

// TestConformanceSlurmExample runs the conformance suite on the command
// backend configured by contrib/command-backends/slurm.yaml against the
// real Slurm.
func TestConformanceSlurmExample(t *testing.T) {
	requireSlurm(t)
	settings := contribSettings(t, "slurm.yaml")
	state := t.TempDir()
	backendtest.Run(t, backendtest.Harness{
		New: func(t *testing.T) drms.Backend {
			b, err := New(drms.Config{StateDir: state, ExecPath: exe(t), EngineTag: "conformance", Settings: settings})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		Pending: func(s drms.JobSpec) drms.JobSpec {
			s.NativeSpec = append(append([]string(nil), s.NativeSpec...), "--hold")
			return s
		},
		ExternalCancel: func(t *testing.T, h drms.Handle) error {
			out, err := exec.Command("scancel", h.ID).CombinedOutput()
			if err != nil {
				t.Logf("scancel: %s", out)
			}
			return err
		},
		Timeout: 3 * time.Minute,
	})
}

// TestLSFExampleLoads: the documented (untested) LSF example is at least
// a valid configuration, and its templates expand as documented.
func TestLSFExampleLoads(t *testing.T) {
	b, err := New(drms.Config{StateDir: t.TempDir(), ExecPath: "/bin/true", EngineTag: "x", Settings: contribSettings(t, "lsf.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	got := Expand(b.submit, map[string]string{"name": "sf-x-1-2-1", "output": "/s/o", "queue": "", "cpus": "4", "memory_mb": "", "walltime_min": "", "script": "/s/j.sh"},
		map[string][]string{"{native}": {"-P", "proj"}})
	want := []string{"bsub", "-J", "sf-x-1-2-1", "-o", "/s/o", "-n", "4", "-P", "proj", "/s/j.sh"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bsub argv %q, want %q", got, want)
	}
	if m := b.statusLine.FindStringSubmatch("1234|EXIT|sf-x-1-2-1|3|"); m == nil || m[b.statusLine.SubexpIndex("exit")] != "3" {
		t.Errorf("status_line on a bjobs line: %q", m)
	}
}

func TestExpand(t *testing.T) {
	tmpl, err := groups([]string{"sub", "--p={queue}", "[", "-q", "{queue}", "]", "--name={name}", "{native}", "x{unknown}", "{script}"})
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"queue": "", "name": "a b; rm -rf /", "script": "/s"}
	got := Expand(tmpl, vars, map[string][]string{"{native}": {"-a", "-b"}})
	want := []string{"sub", "--name=a b; rm -rf /", "-a", "-b", "x{unknown}", "/s"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	vars["queue"] = "long"
	got = Expand(tmpl, vars, nil)
	want = []string{"sub", "--p=long", "-q", "long", "--name=a b; rm -rf /", "{native}", "x{unknown}", "/s"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range [][]string{{"[", "a"}, {"a", "]"}, {"[", "]"}, {"[", "[", "a", "]", "]"}} {
		if _, err := groups(bad); err == nil {
			t.Errorf("groups(%q): no error", bad)
		}
	}
}

func fake(t *testing.T, cmds map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range cmds {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
}

func fakeSettings() map[string]string {
	return map[string]string{
		"submit": "fsub {name} {native} {script}", "submit_id": `^job (\d+)$`,
		"status": "fstat {ids}", "status_line": `^(?P<id>\d+) (?P<state>\w+) (?P<name>\S+)$`,
		"running": "R", "ended": "D", "cancel": "fdel {id}",
		"submit_timeout": "500ms", "command_timeout": "2s", "lookup_delay": "10ms", "status_grace": "0s",
	}
}

func TestErrorPaths(t *testing.T) {
	ctx := context.Background()
	newB := func(t *testing.T, settings map[string]string) *Backend {
		b, err := New(drms.Config{StateDir: t.TempDir(), ExecPath: "/bin/true", EngineTag: "fake", Settings: settings})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	spec := func(t *testing.T) drms.JobSpec {
		d := t.TempDir()
		return drms.JobSpec{EngineTag: "fake", WorkflowID: 1, JobID: 3, Attempt: 1, Argv: []string{"true"}, Dir: d, Stdout: d + "/o", Stderr: d + "/e"}
	}
	t.Run("garbage_status", func(t *testing.T) {
		fake(t, map[string]string{"fstat": "echo 'Welcome to the cluster!'; echo 'no jobs here'"})
		b := newB(t, fakeSettings())
		_, err := b.Status(ctx, []drms.Handle{b.handle("12", spec(t))})
		if !errors.Is(err, drms.ErrUnavailable) || !strings.Contains(err.Error(), "none matches status_line") || !strings.Contains(err.Error(), "Welcome") {
			t.Errorf("Status on garbage: %v, want a clear ErrUnavailable", err)
		}
	})
	t.Run("garbage_submit", func(t *testing.T) {
		fake(t, map[string]string{"fsub": "echo 'submitted!'", "fstat": "exit 0"})
		b := newB(t, fakeSettings())
		if _, err := b.Submit(ctx, spec(t)); !errors.Is(err, drms.ErrSubmitUncertain) || !strings.Contains(err.Error(), "no job id matches submit_id") {
			t.Errorf("Submit with garbage: %v, want ErrSubmitUncertain saying why", err)
		}
	})
	t.Run("submit_timeout_found_by_name", func(t *testing.T) {
		s := spec(t)
		fake(t, map[string]string{"fsub": "exec sleep 30", "fstat": "echo '77 R " + s.Name() + "'"})
		b := newB(t, fakeSettings())
		if h, err := b.Submit(ctx, s); err != nil || h.ID != "77" {
			t.Errorf("Submit: %+v %v, want job 77 found by name", h, err)
		}
	})
	t.Run("refused_and_unavailable", func(t *testing.T) {
		fake(t, map[string]string{"fsub": "echo 'fsub: no such queue' >&2; exit 3"})
		b := newB(t, fakeSettings())
		var se *drms.StartError
		if _, err := b.Submit(ctx, spec(t)); !errors.As(err, &se) || !strings.Contains(se.Reason, "no such queue") {
			t.Errorf("refused: %v", err)
		}
		fake(t, map[string]string{"fsub": "echo 'fsub: connection refused' >&2; exit 3"})
		if _, err := b.Submit(ctx, spec(t)); !errors.Is(err, drms.ErrUnavailable) {
			t.Errorf("unavailable: %v", err)
		}
	})
	t.Run("native_words_must_be_options", func(t *testing.T) {
		fake(t, map[string]string{"fsub": "echo 'job 1'"})
		b := newB(t, fakeSettings())
		s := spec(t)
		s.NativeSpec = []string{"-q long"}
		var se *drms.StartError
		if _, err := b.Submit(ctx, s); !errors.As(err, &se) || !strings.Contains(se.Reason, `"long"`) {
			t.Errorf("native spec with a separate value: %v", err)
		}
	})
	t.Run("ended_and_lost", func(t *testing.T) {
		s := spec(t)
		fake(t, map[string]string{"fstat": "echo '12 D " + s.Name() + "'"})
		b := newB(t, fakeSettings())
		h := b.handle("12", s)
		st, err := b.Status(ctx, []drms.Handle{h})
		if o := st["12"].Outcome; err != nil || o == nil || o.ExitStatus != "finished_unclear_condition" || !strings.Contains(o.Reason, "state D") {
			t.Errorf("ended without a status file: %+v %v", o, err)
		}
		fake(t, map[string]string{"fstat": "exit 0"})
		st, err = b.Status(ctx, []drms.Handle{b.handle("13", s)})
		if o := st["13"].Outcome; err != nil || o == nil || o.ExitStatus != "exit_status_undetermined" {
			t.Errorf("gone without a status file: %+v %v", o, err)
		}
	})
	t.Run("bad_settings", func(t *testing.T) {
		for key, val := range map[string]string{
			"submit": "fsub {name}", "submit_id": "job", "status_line": `^(?P<id>\d+)$`, "cancel": "fdel",
			"status": "", "status_grace": "soon", "held": "R", "hold": "fhold [ {id}",
		} {
			s := fakeSettings()
			s[key] = val
			if _, err := New(drms.Config{StateDir: t.TempDir(), ExecPath: "/bin/true", EngineTag: "x", Settings: s}); err == nil || !strings.Contains(err.Error(), key) && key != "held" {
				t.Errorf("%s=%q: %v, want an error naming it", key, val, err)
			}
		}
	})
}

// fakeDRMS puts on PATH a fake batch system whose jobs run on this host:
// fsub starts the script in the background and prints "job N"; fstat
// prints "N R NAME" for each id asked about whose script still runs (a
// job that ended is not listed) and counts its runs in a file; fdel
// sends SIGTERM to a job. It returns a function that reads the count.
func fakeDRMS(t *testing.T) func() int {
	t.Helper()
	state := t.TempDir()
	q := batch.ShellQuote(state)
	fake(t, map[string]string{
		// fsub NAME SCRIPT
		"fsub": `n=$(ls ` + q + ` | grep -c '\.pid$'); id=$((n + 1))
echo "$1" > ` + q + `/$id.name
nohup sh "$2" > /dev/null 2>&1 < /dev/null &
echo $! > ` + q + `/$id.pid
printf "job %s" "$id"`,
		"fstat": `echo x >> ` + q + `/calls
for id in "$@"; do
	[ -f ` + q + `/$id.pid ] && kill -0 "$(cat ` + q + `/$id.pid)" 2>/dev/null && echo "$id R $(cat ` + q + `/$id.name)"
done
exit 0`,
		"fdel": `kill -TERM "$(cat ` + q + `/$1.pid)"`,
	})
	return func() int {
		b, _ := os.ReadFile(filepath.Join(state, "calls"))
		return strings.Count(string(b), "x")
	}
}

// TestStatusPacing: while exec-job's files answer, Status does not run
// the status command at every call: not at all within
// status_idle_interval while every job runs by its started file, at
// status_interval while a job is past its walltime, at once after a kill
// by somaflow; a job's end is seen at the next Status from its status
// file, without the command.
func TestStatusPacing(t *testing.T) {
	calls := fakeDRMS(t)
	ctx := context.Background()
	settings := fakeSettings()
	settings["status_interval"], settings["status_idle_interval"] = "1s", "1h"
	// The fakes are shell scripts: slow on a loaded machine.
	settings["submit_timeout"], settings["command_timeout"] = "20s", "20s"
	b, err := New(drms.Config{StateDir: t.TempDir(), ExecPath: exe(t), EngineTag: "fake", Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	spec := func(argv ...string) drms.JobSpec {
		n++
		d := t.TempDir()
		return drms.JobSpec{EngineTag: "fake", WorkflowID: 1, JobID: int64(n), Attempt: 1, Argv: argv, Env: os.Environ(), Dir: d, Stdout: d + "/o", Stderr: d + "/e"}
	}
	submit := func(s drms.JobSpec) drms.Handle {
		t.Helper()
		h, err := b.Submit(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	var all []drms.Handle
	defer func() {
		for _, h := range all {
			b.Kill(ctx, h)
		}
		for deadline := time.Now().Add(time.Minute); len(all) > 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			st, _ := b.Status(ctx, all)
			var left []drms.Handle
			for _, h := range all {
				if st[h.ID].Phase != drms.Ended {
					left = append(left, h)
				}
			}
			all = left
		}
	}()
	waitRunning := func(hs []drms.Handle) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the jobs did not all start")
			}
			st, err := b.Status(ctx, hs)
			if err != nil {
				t.Fatal(err)
			}
			ok := true
			for _, h := range hs {
				ok = ok && st[h.ID].Phase == drms.Running
			}
			if ok {
				return
			}
		}
	}

	var hs []drms.Handle
	for i := 0; i < 3; i++ {
		hs = append(hs, submit(spec("sleep", "300")))
	}
	all = append(all, hs...)
	waitRunning(hs)
	got, d := backendtest.CallsWhileRunning(t, ctx, b, hs, calls)
	if got > 1 {
		t.Errorf("nothing due: %d status calls in %v, want at most 1 (idle interval 1h)", got, d.Round(time.Millisecond))
	}
	if b.Calls()["fstat"] != calls() {
		t.Errorf("the backend counted %d fstat calls, fstat %d", b.Calls()["fstat"], calls())
	}
	t.Logf("nothing due: %d status calls in %v", got, d.Round(time.Millisecond))

	// A job's end: seen at the first Status after its status file appears,
	// with no status command.
	s := spec("sh", "-c", "sleep 2; exit 7")
	h := submit(s)
	waitRunning(append(hs, h))
	status := b.spool.Paths(s).Status
	before := calls()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the job did not end")
		}
		_, ferr := os.Stat(status)
		st, err := b.Status(ctx, append(hs, h))
		if err != nil {
			t.Fatal(err)
		}
		if ferr != nil {
			continue
		}
		if o := st[h.ID].Outcome; st[h.ID].Phase != drms.Ended || o.ExitValue == nil || *o.ExitValue != 7 {
			t.Fatalf("the first Status after the status file: %+v", st[h.ID])
		}
		break
	}
	if got := calls() - before; got > 1 {
		t.Errorf("a job's end: %d status calls, want at most 1", got)
	}

	// A kill by somaflow: the next Status runs the status command.
	backendtest.KillAsksAtOnce(t, ctx, b, hs, calls, "fstat")

	// A job past its walltime (its status file overdue): due.
	s = spec("sleep", "300")
	s.Resources.Walltime = 1
	h = submit(s)
	all = append(all, h)
	waitRunning([]drms.Handle{h})
	for si, _ := batch.ReadStarted(b.spool.Paths(s).Started); si == nil || time.Since(si.Time) < 2*time.Second; si, _ = batch.ReadStarted(b.spool.Paths(s).Started) {
		time.Sleep(100 * time.Millisecond)
	}
	got, d = backendtest.CallsWhileRunning(t, ctx, b, []drms.Handle{h}, calls)
	if min := int(d / (3 * time.Second)); got < min {
		t.Errorf("past its walltime: %d status calls in %v, want at least %d (interval 1s)", got, d.Round(time.Millisecond), min)
	}
	t.Logf("past its walltime: %d status calls in %v", got, d.Round(time.Millisecond))

	// status_interval 0: at every Status.
	settings["status_interval"] = "0s"
	b0, err := New(drms.Config{StateDir: t.TempDir(), ExecPath: exe(t), EngineTag: "fake", Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	before = calls()
	for i := 0; i < 5; i++ {
		if _, err := b0.Status(ctx, []drms.Handle{h}); err != nil {
			t.Fatal(err)
		}
	}
	if got := calls() - before; got != 5 {
		t.Errorf("status_interval 0: %d status calls in 5 Status, want 5", got)
	}
}
