package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// batchBackend is the batch backend the end-to-end tests run on
// (SOMAFLOW_E2E_BACKEND=slurm|pbs|drmaa, set by scripts/ci-*.sh); they skip
// without it, and fail when SOMAFLOW_REQUIRE names it.
func batchBackend(t *testing.T) string {
	b := os.Getenv("SOMAFLOW_E2E_BACKEND")
	if b == "" {
		for _, req := range strings.Split(os.Getenv("SOMAFLOW_REQUIRE"), ",") {
			if req == "slurm" || req == "drmaa" || req == "pbs" {
				t.Fatalf("SOMAFLOW_REQUIRE=%s but SOMAFLOW_E2E_BACKEND is not set", req)
			}
		}
		t.Skip("no batch backend: set SOMAFLOW_E2E_BACKEND=slurm, pbs or drmaa (scripts/ci-slurm.sh, ci-pbs.sh, ci-drmaa.sh)")
	}
	return b
}

func batchEnv(t *testing.T, backend string) []string {
	return []string{"SOMAFLOW_BACKEND=" + backend, "SOMAFLOW_SPOOL_DIR=" + filepath.Join(t.TempDir(), "spool")}
}

// TestBatchE2EDemo runs the demo workflow on the batch backend: a fan-out
// in a group, a failure with its dependants aborted, a parameter link.
func TestBatchE2EDemo(t *testing.T) {
	backend := batchBackend(t)
	dir := t.TempDir()
	demo, _ := filepath.Abs("../examples/demo.yaml")
	cmd := exec.Command(binary, "run", "--json", demo)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), batchEnv(t, backend)...)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("demo on %s: %v, want exit 1\n%s", backend, err, out)
	}
	got := outcomes(t, string(out))
	want := map[string]string{
		"fails": "done/finished_regularly/3", "report": "failed/aborted_before_running",
		"archive": "failed/aborted_before_running", "consume": "done/finished_regularly/0", "merge": "done/finished_regularly/0",
	}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: %s, want %s", n, got[n], w)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "demo-out", "greeting.txt")); string(data) != "hello through a parameter link\n" {
		t.Errorf("parameter link: %q", data)
	}
}

// TestBatchE2EOutcomes: exit 3, SIGKILL, command not found and a missing
// working directory through the whole engine.
func TestBatchE2EOutcomes(t *testing.T) {
	backend := batchBackend(t)
	wf := write(t, "o.yaml", `jobs:
  exit3: {shell: "exit 3"}
  killed: {shell: "kill -KILL $$"}
  notfound: {command: [no-such-command-somaflow]}
  nodir: {command: ["true"], working_directory: /nonexistent/somaflow}
  ok: {command: ["true"]}
  after: {command: ["true"], after: [exit3]}
`)
	r := runBin(t, batchEnv(t, backend), "run", "--json", wf)
	if r.code != 1 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	got := outcomes(t, r.stdout)
	want := map[string]string{
		"exit3": "done/finished_regularly/3", "killed": "done/finished_signal/SIGKILL",
		"notfound": "failed/aborted", "nodir": "failed/aborted", "ok": "done/finished_regularly/0",
		"after": "failed/aborted_before_running",
	}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: %s, want %s", n, got[n], w)
		}
	}
}

// TestBatchE2EStopRestartDelete drives a workflow on the batch backend
// through the background engine: stop, restart, delete.
func TestBatchE2EStopRestartDelete(t *testing.T) {
	backend := batchBackend(t)
	env, _ := service(t)
	env = append(env, batchEnv(t, backend)...)
	flag := filepath.Join(t.TempDir(), "flag")
	wf := write(t, "s.yaml", fmt.Sprintf("jobs:\n  long: {shell: \"test -e %s || exec sleep 300\"}\n  next: {command: [\"true\"], after: [long]}\n", flag))
	if r := runBin(t, env, "submit", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(runBin(t, env, "status", "--json", "1").stdout, `"status":"running"`) {
		if time.Now().After(deadline) {
			t.Fatal("the job never ran")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := runBin(t, env, "stop", "1"); r.code != 0 {
		t.Fatalf("stop: %+v", r)
	}
	w := runBin(t, env, "wait", "--json", "--timeout", "2m", "1")
	got := outcomes(t, strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(w.stdout), "["), "]"))
	if w.code != 1 || got["long"] != "failed/killed_by_user" || got["next"] != "failed/aborted_before_running" {
		t.Fatalf("after stop: %v (%+v)", got, w)
	}
	os.WriteFile(flag, nil, 0o644)
	if r := runBin(t, env, "restart", "1"); r.code != 0 {
		t.Fatalf("restart: %+v", r)
	}
	if r := runBin(t, env, "wait", "--timeout", "3m", "1"); r.code != 0 {
		t.Fatalf("wait after restart: %+v", r)
	}
	if r := runBin(t, env, "delete", "1"); r.code != 0 {
		t.Fatalf("delete: %+v", r)
	}
	if r := runBin(t, env, "status", "1"); r.code != 3 {
		t.Fatalf("status after delete: %+v", r)
	}
}

// TestBatchE2ESlurmOutage stops slurmctld for 20 s in the middle of a
// 200-job workflow: every job ends correctly and none runs twice.
func TestBatchE2ESlurmOutage(t *testing.T) {
	if batchBackend(t) != "slurm" || os.Getenv("SOMAFLOW_SLURM_OUTAGE") != "1" {
		t.Skip("slurm only, with SOMAFLOW_SLURM_OUTAGE=1 (scripts/ci-slurm.sh)")
	}
	env, _ := service(t)
	env = append(env, batchEnv(t, "slurm")...)
	markers := t.TempDir()
	var b strings.Builder
	b.WriteString("jobs:\n")
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&b, "  j%d: {shell: \"echo ran >> %s/%d; sleep 1\"", i, markers, i)
		if i >= 100 {
			fmt.Fprintf(&b, ", after: [j%d]", i-100)
		}
		b.WriteString("}\n")
	}
	if r := runBin(t, env, "submit", "--max-jobs", "16", write(t, "outage.yaml", b.String())); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	time.Sleep(3 * time.Second) // let the workflow get going (not a wait for a condition)
	if out, err := exec.Command("sh", "-c", "kill $(cat /run/slurmctld.pid)").CombinedOutput(); err != nil {
		t.Fatalf("stop slurmctld: %v %s", err, out)
	}
	time.Sleep(20 * time.Second)
	if out, err := exec.Command("bash", "../scripts/slurm-up.sh").CombinedOutput(); err != nil {
		t.Fatalf("start slurmctld: %v %s", err, out)
	}
	w := runBin(t, env, "wait", "--json", "--timeout", "10m", "1")
	if w.code != 0 {
		t.Fatalf("wait: %+v", w)
	}
	for i := 0; i < 200; i++ {
		data, _ := os.ReadFile(filepath.Join(markers, fmt.Sprint(i)))
		if n := strings.Count(string(data), "ran"); n != 1 {
			t.Errorf("j%d ran %d times", i, n)
		}
	}
	var docs []json.RawMessage
	json.Unmarshal([]byte(w.stdout), &docs)
	for n, o := range outcomes(t, string(docs[0])) {
		if n != "<workflow>" && o != "done/finished_regularly/0" {
			t.Errorf("%s: %s", n, o)
		}
	}
}

// TestBatchE2EArraysAndDependencies runs the demo and the outcome
// workflow with dependencies handed to the DRMS (and job arrays on Slurm):
// the same outcomes, job by job.
func TestBatchE2EArraysAndDependencies(t *testing.T) {
	backend := batchBackend(t)
	settings := ""
	switch backend {
	case "slurm":
		settings = "settings: {arrays: \"true\", dependencies: \"true\"}\n"
	case "pbs":
		settings = "settings: {dependencies: \"true\"}\n"
	default:
		t.Skipf("%s hands no dependencies to the DRMS", backend)
	}
	env := append(batchEnv(t, backend), "SOMAFLOW_CONFIG="+write(t, "cfg.yaml", settings))
	dir := t.TempDir()
	demo, _ := filepath.Abs("../examples/demo.yaml")
	cmd := exec.Command(binary, "run", "--json", demo)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("demo: %v, want exit 1\n%s", err, out)
	}
	got := outcomes(t, string(out))
	for n, w := range map[string]string{
		"fails": "done/finished_regularly/3", "report": "failed/aborted_before_running",
		"archive": "failed/aborted_before_running", "consume": "done/finished_regularly/0",
		"merge": "done/finished_regularly/0", "count_a": "done/finished_regularly/0",
	} {
		if got[n] != w {
			t.Errorf("demo %s: %s, want %s", n, got[n], w)
		}
	}
	wf := write(t, "o.yaml", `jobs:
  a1: {shell: "exit 0"}
  a2: {shell: "exit 3"}
  a3: {shell: "kill -KILL $$"}
  a4: {command: [no-such-command-somaflow]}
  after_ok: {command: ["true"], after: [a1]}
  after_bad: {command: ["true"], after: [a2]}
  after_after: {command: ["true"], after: [after_bad]}
`)
	r := runBin(t, env, "run", "--json", wf)
	if r.code != 1 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	got = outcomes(t, r.stdout)
	for n, w := range map[string]string{
		"a1": "done/finished_regularly/0", "a2": "done/finished_regularly/3", "a3": "done/finished_signal/SIGKILL",
		"a4": "failed/aborted", "after_ok": "done/finished_regularly/0",
		"after_bad": "failed/aborted_before_running", "after_after": "failed/aborted_before_running",
	} {
		if got[n] != w {
			t.Errorf("%s: %s, want %s", n, got[n], w)
		}
	}
}

// TestBatchE2EEngineRestart kills the background engine (SIGKILL) while
// batch jobs run and others wait for them: the next command starts a new
// engine, which re-attaches to the running jobs; every job runs exactly
// once and succeeds, and the outputs of the job that ran across the
// restart are complete.
func TestBatchE2EEngineRestart(t *testing.T) {
	backend := batchBackend(t)
	env, _ := service(t)
	env = append(env, batchEnv(t, backend)...)
	markers := t.TempDir()
	var b strings.Builder
	b.WriteString("jobs:\n")
	for i := 0; i < 6; i++ {
		fmt.Fprintf(&b, "  j%d: {shell: \"echo ran >> %s/%d; sleep 4; echo out%d\", stdout_file: %s/out%d", i, markers, i, i, markers, i)
		if i >= 3 {
			fmt.Fprintf(&b, ", after: [j%d]", i-3)
		}
		b.WriteString("}\n")
	}
	if r := runBin(t, env, "submit", write(t, "restart.yaml", b.String())); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(runBin(t, env, "status", "--json", "1").stdout, `"status":"running"`) {
		if time.Now().After(deadline) {
			t.Fatal("no job ever ran")
		}
		time.Sleep(200 * time.Millisecond)
	}
	var eng struct {
		PID int `json:"pid"`
	}
	json.Unmarshal([]byte(runBin(t, env, "engine", "status", "--json").stdout), &eng)
	if eng.PID <= 0 {
		t.Fatal("no engine pid")
	}
	if err := syscall.Kill(eng.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	w := runBin(t, env, "wait", "--json", "--timeout", "5m", "1")
	if w.code != 0 {
		t.Fatalf("wait after the engine was killed: %+v", w)
	}
	for i := 0; i < 6; i++ {
		data, _ := os.ReadFile(filepath.Join(markers, fmt.Sprint(i)))
		if n := strings.Count(string(data), "ran"); n != 1 {
			t.Errorf("j%d ran %d times", i, n)
		}
		if out, _ := os.ReadFile(filepath.Join(markers, fmt.Sprint("out", i))); string(out) != fmt.Sprintf("out%d\n", i) {
			t.Errorf("j%d stdout %q", i, out)
		}
	}
	var docs []json.RawMessage
	json.Unmarshal([]byte(w.stdout), &docs)
	if len(docs) == 0 {
		t.Fatalf("wait --json printed %q", w.stdout)
	}
	for n, o := range outcomes(t, string(docs[0])) {
		if n != "<workflow>" && o != "done/finished_regularly/0" {
			t.Errorf("%s: %s", n, o)
		}
	}
}

// TestBatchE2EPendingReason: a job that waits at the DRMS shows why in
// status (Slurm's squeue reason; PBS's comment, which Slurm's Torque
// wrappers do not give, is tested on qstat outputs in drms/pbs).
func TestBatchE2EPendingReason(t *testing.T) {
	if batchBackend(t) != "slurm" {
		t.Skip("slurm only: the other batch systems of CI give no pending reason")
	}
	env, _ := service(t)
	env = append(env, batchEnv(t, "slurm")...)
	wf := write(t, "held.yaml", "jobs:\n  held: {command: [\"true\"], native_specification: \"--hold\"}\n")
	if r := runBin(t, env, "submit", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		doc := runBin(t, env, "status", "--json", "1").stdout
		if strings.Contains(doc, `"reason":"waiting at the DRMS: JobHeldUser"`) && strings.Contains(doc, `"status":"user_on_hold"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never said why the held job waits: %s", doc)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if r := runBin(t, env, "stop", "1"); r.code != 0 {
		t.Fatalf("stop: %+v", r)
	}
	w := runBin(t, env, "wait", "--json", "--timeout", "2m", "1")
	if got := outcomes(t, strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(w.stdout), "["), "]")); got["held"] != "failed/aborted_before_running" {
		t.Fatalf("held job after stop: %v (%+v)", got, w)
	}
}

// TestBatchE2ECommandBackend: a site installs contrib/command-backends/
// slurm.yaml as its configuration (docs/command-backend.md) and users run
// workflows with no backend flag: outcomes, dependencies and doctor
// through the binary.
func TestBatchE2ECommandBackend(t *testing.T) {
	if batchBackend(t) != "slurm" {
		t.Skip("the command backend's worked example drives Slurm")
	}
	cfg, _ := filepath.Abs("../contrib/command-backends/slurm.yaml")
	env := append(batchEnv(t, "slurm"), "SOMAFLOW_CONFIG="+cfg, "SOMAFLOW_BACKEND=", "SOMAFLOW_SWF_RESOURCE=none")
	if r := runBin(t, env, "doctor"); !strings.Contains(r.stdout, "ok   backend command: settings valid") {
		t.Fatalf("doctor with the command backend: %+v", r)
	}
	wf := write(t, "o.yaml", `jobs:
  exit3: {shell: "exit 3"}
  killed: {shell: "kill -KILL $$"}
  notfound: {command: [no-such-command-somaflow]}
  ok: {command: ["true"]}
  after: {command: ["true"], after: [exit3]}
  after_ok: {command: ["true"], after: [ok]}
`)
	r := runBin(t, env, "run", "--json", wf)
	if r.code != 1 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	got := outcomes(t, r.stdout)
	want := map[string]string{
		"exit3": "done/finished_regularly/3", "killed": "done/finished_signal/SIGKILL",
		"notfound": "failed/aborted", "ok": "done/finished_regularly/0",
		"after": "failed/aborted_before_running", "after_ok": "done/finished_regularly/0",
	}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: %s, want %s", n, got[n], w)
		}
	}
	if !strings.Contains(r.stdout, `"backend":"command"`) {
		t.Errorf("the workflow did not run on the command backend: %s", r.stdout)
	}
}
