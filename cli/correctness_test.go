package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/somaflow/somaflow/client"
)

// run honours a state dir named anywhere (flag, SOMAFLOW_STATE_DIR, the
// config's state_dir); only with none named is its state private, and then
// nothing is left behind in $TMPDIR.
func TestRunHonoursNamedStateDir(t *testing.T) {
	wf := write(t, "ok.yaml", okWF)
	home := t.TempDir()
	base := []string{"HOME=" + home, "XDG_STATE_HOME=" + filepath.Join(home, "state"), "SOMAFLOW_CONFIG="}

	byEnv := t.TempDir()
	env := append(base, "SOMAFLOW_STATE_DIR="+byEnv)
	if r := run(t, env, "run", wf); r.code != 0 {
		t.Fatalf("run with SOMAFLOW_STATE_DIR: %+v", r)
	}
	if r := run(t, env, "status", "1"); r.code != 0 || !strings.Contains(r.stdout, "workflow_done") {
		t.Fatalf("status 1 in SOMAFLOW_STATE_DIR after run: want the workflow, got %+v", r)
	}

	byConfig := t.TempDir()
	cfg := write(t, "config.yaml", "state_dir: "+byConfig+"\n")
	env = append(base, "SOMAFLOW_CONFIG="+cfg)
	if r := run(t, env, "run", wf); r.code != 0 {
		t.Fatalf("run with the config's state_dir: %+v", r)
	}
	if r := run(t, nil, "--state-dir", byConfig, "status", "1"); r.code != 0 || !strings.Contains(r.stdout, "workflow_done") {
		t.Fatalf("status 1 in the config's state_dir after run: want the workflow, got %+v", r)
	}

	tmp := t.TempDir()
	env = append(base, "TMPDIR="+tmp)
	if r := run(t, env, "run", wf); r.code != 0 {
		t.Fatalf("run with no state dir named: %+v", r)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("run with no state dir named left %d entries in $TMPDIR (%s...)", len(left), left[0].Name())
	}
	if _, err := os.Stat(filepath.Join(home, "state", "somaflow", "somaflow.db")); err == nil {
		t.Fatal("run with no state dir named wrote to the default state dir's database")
	}
}

// linkWF is the documented example of a parameter link with no `after:`:
// the link alone must order the jobs.
const linkWF = `name: link
jobs:
  produce:
    shell: 'sleep 1; echo "{\"n\": 42}" > "$SOMAWF_OUTPUT_PARAMS"'
    has_outputs: true
  consume:
    command: [echo, 'n=%(n)s']
    params: {n: 0}
    links: {n: produce.n}
`

// A parameter link implies a dependency on its source job, in the native
// format as in soma-workflow's: the run waits for the value, validate
// counts the dependency, dot draws the edge, and the soma export holds it.
func TestLinkImpliesDependency(t *testing.T) {
	wf := write(t, "link.yaml", linkWF)
	state := t.TempDir()
	r := run(t, nil, "--state-dir", state, "run", wf)
	if r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	if r = run(t, nil, "--state-dir", state, "logs", "1", "consume"); !strings.Contains(r.stdout, "n=42") {
		t.Fatalf("consume did not receive produce's value: %+v", r)
	}
	if r = run(t, nil, "validate", wf); r.code != 0 || !strings.Contains(r.stdout, "2 jobs, 1 dependencies") {
		t.Fatalf("validate: want 1 dependency counted, got %+v", r)
	}
	if r = run(t, nil, "dot", wf); r.code != 0 || !strings.Contains(r.stdout, "j0 -> j1") {
		t.Fatalf("dot: want the edge produce -> consume, got %+v", r)
	}
	r = run(t, nil, "convert", "--to", "soma", wf)
	var doc struct {
		Dependencies []any `json:"dependencies"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 0 {
		t.Fatalf("convert: %v %+v", err, r)
	}
	if len(doc.Dependencies) != 1 {
		t.Fatalf("soma export: want the one implied dependency, got %v", doc.Dependencies)
	}
	// converted back, the dependency is not doubled
	back := write(t, "link.json", r.stdout)
	if r = run(t, nil, "validate", back); r.code != 0 || !strings.Contains(r.stdout, "2 jobs, 1 dependencies") {
		t.Fatalf("validate of the soma export: want 1 dependency, got %+v", r)
	}
}

// An engine SIGKILLed while a has_outputs job runs: after it restarts, the
// job's outputs are read and its dependant receives the value.
func TestEngineRestartKeepsOutputParams(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "go")
	env, _ := submitLinkWorkflow(t, "while [ ! -e "+gate+" ]; do sleep 0.02; done; ")
	eng := startEngine(t, env)
	waitFor(t, "produce running", func() bool {
		r := run(t, env, "status", "--json", "1")
		return strings.Contains(r.stdout, `"name":"produce","status":"running"`)
	})
	eng.Process.Kill()
	eng.Wait()
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	restartEngineAndCheck(t, env, "produce's value after the engine restart")
}

// submitLinkWorkflow submits, to a state dir whose engine the test runs
// itself, a has_outputs job "produce" (its shell line begins with before)
// and a job "consume" linked to its output n.
func submitLinkWorkflow(t *testing.T, before string) (env []string, state string) {
	t.Helper()
	state = filepath.Join(t.TempDir(), "state")
	env = []string{"SOMAFLOW_STATE_DIR=" + state, "SOMAFLOW_ENGINE_AUTOSTART=0"}
	t.Cleanup(func() { stopSupervisor(state) })
	wf := write(t, "link.yaml", `jobs:
  produce:
    shell: '`+before+`echo "{\"n\": 42}" > "$SOMAWF_OUTPUT_PARAMS"'
    has_outputs: true
  consume:
    command: [echo, 'n=%(n)s']
    params: {n: 0}
    links: {n: produce.n}
`)
	if r := run(t, env, "submit", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	return env, state
}

// startEngine runs `somaflow engine` in the foreground as a child of the test.
func startEngine(t *testing.T, env []string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, "engine", "--idle", "30s")
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1"), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// stopSupervisor ends the state dir's supervisor, if one runs.
func stopSupervisor(state string) {
	if pid := supervisorPID(state); pid > 0 {
		syscall.Kill(pid, syscall.SIGTERM)
	}
}

// restartEngineAndCheck starts an engine again, waits for workflow 1 and
// checks that consume received produce's n (42).
func restartEngineAndCheck(t *testing.T, env []string, what string) {
	t.Helper()
	eng := startEngine(t, env)
	defer func() { eng.Process.Kill(); eng.Wait() }()
	if r := run(t, env, "wait", "1", "--timeout", "60s"); r.code != 0 {
		t.Fatalf("wait: %+v", r)
	}
	if r := run(t, env, "logs", "1", "consume"); !strings.Contains(r.stdout, "n=42") {
		t.Fatalf("consume did not receive %s: %+v", what, r)
	}
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An engine that stops between a has_outputs job's submission and the
// commit of its handle: the restarted engine looks the attempt up (it ran
// and ended meanwhile) and must not remove the outputs it wrote.
func TestEngineRecoveryKeepsEndedAttemptOutputs(t *testing.T) {
	env, state := submitLinkWorkflow(t, "")
	eng := startEngine(t, append(env, "SOMAFLOW_FAILPOINT=after-submit"))
	eng.Wait()
	if code := eng.ProcessState.ExitCode(); code != 99 {
		t.Fatalf("engine with failpoint after-submit: exit %d, want 99", code)
	}
	waitFor(t, "produce's outputs", func() bool {
		_, err := os.Stat(filepath.Join(state, "params", "1", "1.1.out.json"))
		return err == nil
	})
	restartEngineAndCheck(t, env, "the outputs of the attempt found at recovery")
}

// One engine per state dir, whoever starts it: a Go program that embeds
// the engine (client.Open) holds the state dir's lock, so `somaflow submit`
// starts no second engine and every job runs once; a second embedded
// engine on the same state dir is refused with ErrEngineRunning.
func TestEmbeddedEngineIsTheStateDirsOnlyEngine(t *testing.T) {
	state := t.TempDir()
	env := []string{"SOMAFLOW_STATE_DIR=" + state}
	t.Cleanup(func() { run(t, env, "engine", "stop"); stopSupervisor(state) })
	ctx := context.Background()
	c, err := client.Open(ctx, client.Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := client.Open(ctx, client.Options{StateDir: state}); !errors.Is(err, client.ErrEngineRunning) {
		t.Fatalf("a second embedded engine on the state dir: want ErrEngineRunning, got %v", err)
	}
	if r := run(t, env, "engine", "--idle", "1s"); r.code != 5 || !strings.Contains(r.stderr, "engine already runs") {
		t.Fatalf("somaflow engine beside an embedded one: want exit 5 naming the running engine, got %+v", r)
	}
	runs := filepath.Join(t.TempDir(), "runs")
	var wf strings.Builder
	wf.WriteString("jobs:\n")
	for i := range 20 {
		fmt.Fprintf(&wf, "  j%d: {shell: 'echo j%d >> %s'}\n", i, i, runs)
	}
	if r := run(t, env, "submit", write(t, "wf.yaml", wf.String())); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	if err := c.WaitWorkflow(ctx, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	// Give a second engine, if one was started, the time to run them again.
	if r := run(t, env, "wait", "1", "--timeout", "30s"); r.code != 0 {
		t.Fatalf("wait: %+v", r)
	}
	data, _ := os.ReadFile(runs)
	if n := strings.Count(string(data), "\n"); n != 20 {
		t.Fatalf("20 jobs ran %d times in all:\n%s", n, data)
	}
	if r := run(t, env, "engine", "status", "--json"); !strings.Contains(r.stdout, fmt.Sprintf(`"pid":%d`, os.Getpid())) {
		t.Fatalf("engine status: want the embedding process (pid %d) as the engine, got %+v", os.Getpid(), r)
	}
}

// fakeSlurmDown puts Slurm commands that cannot reach their controller
// first on PATH (real Slurm's words): an error path, so a fake.
func fakeSlurmDown(t *testing.T) (pathEnv, dir string) {
	t.Helper()
	dir = t.TempDir()
	for _, name := range []string{"sbatch", "squeue", "sacct", "scontrol", "scancel"} {
		// From its second call on, sbatch takes a while (marked in flight).
		body := "#!/bin/sh\nif [ $(basename $0) = sbatch ] && [ -e " + dir + "/once ]; then touch " + dir + "/inflight; sleep 3; fi\ntouch " + dir + "/once\n" +
			"echo \"$(basename $0): error: Batch job submission failed: Unable to contact slurm controller (connect failure)\" >&2\nexit 1\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return "PATH=" + dir + ":" + os.Getenv("PATH"), dir
}

// A DRMS that cannot be reached is said at once: on run's stderr, in the
// waiting job's reason, in a line of status and in the status document;
// and run leaves no spool files behind.
func TestUnreachableBackendIsShown(t *testing.T) {
	home := t.TempDir()
	pathEnv, fakes := fakeSlurmDown(t)
	env := []string{pathEnv, "HOME=" + home, "XDG_STATE_HOME=", "SOMAFLOW_BACKEND=slurm", "SOMAFLOW_CONFIG="}
	wf := write(t, "wf.yaml", "jobs:\n  a: {command: [\"true\"]}\n")

	cmd := exec.Command(binary, "run", wf)
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1"), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "run to say the backend is unreachable", func() bool {
		return strings.Contains(stderr.String(), "backend slurm unreachable since") &&
			strings.Contains(stderr.String(), "Unable to contact slurm controller")
	})
	waitFor(t, "an sbatch in flight", func() bool {
		_, err := os.Stat(filepath.Join(fakes, "inflight"))
		return err == nil
	})
	// As a Ctrl-C or timeout(1) does: the whole process group, while an
	// sbatch may be running (it used to die with it, and the job was
	// reported "sbatch refused the job: " with nothing after).
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	cmd.Wait()
	if out := stdout.String(); !strings.Contains(out, "aborted_before_running") || strings.Contains(out, "refused") {
		t.Fatalf("run stopped while the DRMS was down: want the job aborted_before_running, got\n%s", out)
	}
	if left := filesUnder(t, home); len(left) != 0 {
		t.Fatalf("run left files behind under the default state dir: %v", left)
	}

	state := t.TempDir()
	env = append(env, "SOMAFLOW_STATE_DIR="+state)
	t.Cleanup(func() { run(t, env, "engine", "stop") })
	if r := run(t, env, "submit", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	var r result
	waitFor(t, "status to show the unreachable backend", func() bool {
		r = run(t, env, "status", "1")
		return strings.Contains(r.stdout, "backend slurm unreachable since")
	})
	if !strings.Contains(r.stdout, "Unable to contact slurm controller") {
		t.Fatalf("status: the DRMS's words are missing: %s", r.stdout)
	}
	r = run(t, env, "status", "--json", "1")
	var doc struct {
		Backend *struct{ Since, Message string } `json:"backend_unreachable"`
		Jobs    []struct {
			Status string
			Reason *string
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Backend == nil || !strings.Contains(doc.Backend.Message, "Unable to contact slurm controller") {
		t.Fatalf("status --json: backend_unreachable %+v", doc.Backend)
	}
	if j := doc.Jobs[0]; j.Status != "not_submitted" || j.Reason == nil || !strings.Contains(*j.Reason, "Unable to contact slurm controller") {
		t.Fatalf("status --json: the waiting job's reason does not say why: %+v", j)
	}
}

// filesUnder lists the regular files under dir.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	return files
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stop, restart and delete as soma-workflow's WorkflowController: stop
// returns once running jobs are killed; restart only of a done workflow,
// with a queue, and says when there is nothing to restart; delete waits,
// --no-wait does not, --force removes without an engine and names what
// may survive.
func TestStopRestartDeleteSemantics(t *testing.T) {
	env, _ := service(t)
	wf := write(t, "wf.yaml", "jobs:\n  long: {command: [sleep, \"300\"]}\n  after: {command: [\"true\"], after: [long]}\n")
	if r := run(t, env, "submit", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	var last string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last status:\n%s", last)
		}
	})
	waitFor(t, "long to run", func() bool {
		last = run(t, env, "status", "--json", "1").stdout
		return strings.Contains(last, `"name":"long","status":"running"`)
	})
	if r := run(t, env, "restart", "1"); r.code != 2 || !strings.Contains(r.stderr, "only a workflow that is done") {
		t.Fatalf("restart of a running workflow: want exit 2 saying why, got %+v", r)
	}
	if r := run(t, env, "stop", "1"); r.code != 0 || !strings.Contains(r.stdout, "stopped") {
		t.Fatalf("stop: %+v", r)
	}
	// stop returned: the job is already killed, the workflow done.
	r := run(t, env, "status", "--json", "1")
	if !strings.Contains(r.stdout, `"exit_status":"killed_by_user"`) || !strings.Contains(r.stdout, `"status":"workflow_done"`) {
		t.Fatalf("status right after stop: %s", r.stdout)
	}
	if r := run(t, env, "restart", "--queue", "q2", "1"); r.code != 0 || !strings.Contains(r.stdout, "restart: workflow 1") {
		t.Fatalf("restart --queue: %+v", r)
	}
	waitFor(t, "the restart to run long again", func() bool {
		return strings.Contains(run(t, env, "status", "--json", "1").stdout, `"queue":"q2"`)
	})
	if r := run(t, env, "stop", "--no-wait", "1"); r.code != 0 || !strings.Contains(r.stdout, "requested") {
		t.Fatalf("stop --no-wait: %+v", r)
	}
	if r := run(t, env, "wait", "1", "--timeout", "60s"); r.code != 1 {
		t.Fatalf("wait after stop: %+v", r)
	}
	ok := write(t, "ok.yaml", okWF)
	if r := run(t, env, "submit", ok); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	if r := run(t, env, "wait", "2"); r.code != 0 {
		t.Fatalf("wait: %+v", r)
	}
	if r := run(t, env, "restart", "2"); r.code != 0 || !strings.Contains(r.stdout, "nothing to restart") {
		t.Fatalf("restart of a workflow whose jobs all succeeded: %+v", r)
	}
	if r := run(t, env, "delete", "2"); r.code != 0 || !strings.Contains(r.stdout, "deleted workflow 2") {
		t.Fatalf("delete: %+v", r)
	}
	if r := run(t, env, "status", "2"); r.code != 3 {
		t.Fatalf("status after delete (it waits): %+v", r)
	}
	// Without an engine, --force removes the workflow from the database
	// and names the job that may survive.
	if r := run(t, env, "submit", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	waitFor(t, "long to run", func() bool {
		return strings.Contains(run(t, env, "status", "--json", "3").stdout, `"name":"long","status":"running"`)
	})
	var doc struct {
		Jobs []struct {
			DRMSID string `json:"drms_id"`
		}
	}
	json.Unmarshal([]byte(run(t, env, "status", "--json", "3").stdout), &doc)
	if pid, err := strconv.Atoi(doc.Jobs[0].DRMSID); err == nil {
		defer syscall.Kill(pid, syscall.SIGKILL) // it survives the forced delete, by design
	}
	noEngine := append(env, "SOMAFLOW_ENGINE_AUTOSTART=0")
	if r := run(t, env, "engine", "stop"); r.code != 0 {
		t.Fatalf("engine stop: %+v", r)
	}
	if r := run(t, noEngine, "delete", "--force", "3"); r.code != 0 || !strings.Contains(r.stdout, "may still run: long") {
		t.Fatalf("delete --force without an engine: %+v", r)
	}
	if r := run(t, noEngine, "status", "3"); r.code != 3 {
		t.Fatalf("status after delete --force: %+v", r)
	}
}

// soma-workflow's engine-side jobs run in the engine: the map-reduce
// reference workflow (made by soma-workflow's own gen.py, see
// testdata/somawf) run as the README shows, its final job's output as
// soma-workflow's.
func TestRunMapReduceSomaJSON(t *testing.T) {
	base := "/tmp/somaflow-ref/map_reduce"
	os.RemoveAll(base)
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	r := run(t, nil, "run", "../testdata/somawf/workflows/map_reduce.json")
	if r.code != 0 || !strings.Contains(r.stdout, "6 succeeded") {
		t.Fatalf("run map_reduce.json: %+v", r)
	}
	if data, _ := os.ReadFile(filepath.Join(base, "final.txt")); string(data) != "['a-done', 'b-done']\n" {
		t.Fatalf("final.txt: %q, soma-workflow wrote %q", data, "['a-done', 'b-done']\n")
	}
	// The native example of docs/native-format.md.
	state := t.TempDir()
	loo := write(t, "loo.yaml", `jobs:
  produce: {shell: 'echo "{\"outputs\": [10, 20, 30]}" > "$SOMAWF_OUTPUT_PARAMS"', has_outputs: true}
  loo:
    params: {index: 1}
    links: {inputs: produce.outputs}
    soma: {class: soma_workflow.custom_jobs.LeaveOneOutJob}
  test: {command: [echo, '%(x)s'], params: {x: 0}, links: {x: loo.test}}
`)
	if r := run(t, nil, "--state-dir", state, "run", loo); r.code != 0 {
		t.Fatalf("run the documented LeaveOneOutJob example: %+v", r)
	}
	if r := run(t, nil, "--state-dir", state, "logs", "--stdout", "1", "test"); r.stdout != "20\n" {
		t.Fatalf("test's output %q, want 20", r.stdout)
	}
}

// env_builder_code runs with a python3 found on PATH; without one the
// workflow is refused at once, saying so; code that fails refuses the
// workflow with Python's words.
func TestEnvBuilderCode(t *testing.T) {
	out := filepath.Join(t.TempDir(), "env.txt")
	wf := func(code string) string {
		return write(t, "env.yaml", "jobs:\n  a: {shell: 'echo \"$BUILT $WF\" > "+out+"'}\nenv: {WF: wf, BUILT: overridden-by-nothing}\nsoma:\n  env_builder_code: "+strconv.Quote(code)+"\n")
	}
	ok := write(t, "env.yaml", "jobs:\n  a: {shell: 'echo \"$BUILT $WF\" > "+out+"'}\nenv: {WF: wf}\nsoma:\n  env_builder_code: \"import json\\nprint(json.dumps({'BUILT': 'built', 'WF': 'builder'}))\"\n")
	if r := run(t, nil, "run", ok); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	if data, _ := os.ReadFile(out); string(data) != "built wf\n" {
		t.Fatalf("job saw %q, want the builder's BUILT under the workflow's WF", data)
	}
	bin := t.TempDir()
	sh, _ := exec.LookPath("sh")
	os.Symlink(sh, filepath.Join(bin, "sh"))
	r := run(t, []string{"PATH=" + bin}, "run", ok)
	if r.code != 2 || !strings.Contains(r.stderr, "needs a python3 on PATH") {
		t.Fatalf("run without python3 on PATH: want exit 2 naming python3, got %+v", r)
	}
	r = run(t, nil, "run", "--json", wf("raise SystemExit('no cluster config')"))
	if r.code != 1 || !strings.Contains(r.stdout, "env_builder_code") || !strings.Contains(r.stdout, "no cluster config") {
		t.Fatalf("failing env_builder_code: want the job failed with Python's words, got %+v", r)
	}
}
