package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/somaflow/somaflow/drms/supervisor"
)

// service gives a state dir with a background engine that is stopped at
// the end of the test.
func service(t *testing.T) (env []string, state string) {
	t.Helper()
	state = t.TempDir()
	env = []string{"SOMAFLOW_STATE_DIR=" + state, "SOMAFLOW_ENGINE_IDLE=30s"}
	t.Cleanup(func() { run(t, env, "engine", "stop") })
	return env, state
}

func TestSubmitSurvivesShellAndWait(t *testing.T) {
	env, _ := service(t)
	wf := write(t, "slow.yaml", "name: slow\njobs:\n  first: {command: [sleep, \"10\"]}\n  second: {command: [\"true\"], after: [first]}\n")
	// The submitting shell exits right after submit returns.
	r := run(t, env, "submit", "--json", wf)
	if r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	var sub map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &sub); err != nil || sub["id"] != "1" {
		t.Fatalf("submit --json: %q", r.stdout)
	}
	s := run(t, env, "status", "--json", "1")
	var doc struct {
		Status string `json:"status"`
		Jobs   []struct {
			Name, Status string
		} `json:"jobs"`
	}
	json.Unmarshal([]byte(s.stdout), &doc)
	if len(doc.Jobs) != 2 || doc.Jobs[0].Status == "done" || doc.Status == "workflow_done" {
		t.Fatalf("submit did not return while the 10 s job ran: %s", s.stdout)
	}
	if r := run(t, env, "engine", "status", "--json"); !strings.Contains(r.stdout, `"running":true`) {
		t.Fatalf("no engine running after submit: %+v", r)
	}
	if r := run(t, env, "wait", "1"); r.code != 0 || !strings.Contains(r.stdout, "2 succeeded") {
		t.Fatalf("wait: %+v", r)
	}
}

func TestWaitExitCodes(t *testing.T) {
	env, _ := service(t)
	ok := run(t, env, "submit", write(t, "ok.yaml", okWF))
	bad := run(t, env, "submit", write(t, "fail.yaml", failWF))
	slow := run(t, env, "submit", write(t, "slow.yaml", "jobs: {s: {command: [sleep, \"60\"]}}\n"))
	if ok.code+bad.code+slow.code != 0 {
		t.Fatalf("submit: %+v %+v %+v", ok, bad, slow)
	}
	cases := []struct {
		args []string
		code int
	}{
		{[]string{"wait", "1"}, 0},
		{[]string{"wait", "2"}, 1},
		{[]string{"wait", "--timeout", "300ms", "3"}, 4},
		{[]string{"wait", "99"}, 3},
		{[]string{"wait", "--timeout", "300ms", "1", "2", "3"}, 4}, // 4 outranks 1
		{[]string{"wait", "2", "99"}, 3},                           // 3 outranks 1
		{[]string{"wait", "x"}, 2},
	}
	for _, c := range cases {
		if r := run(t, env, c.args...); r.code != c.code {
			t.Errorf("%v: exit %d, want %d (%s)", c.args, r.code, c.code, r.stderr)
		}
	}
	r := run(t, env, "wait", "--json", "1", "2")
	var docs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &docs); err != nil || len(docs) != 2 {
		t.Fatalf("wait --json: %v %q", err, r.stdout)
	}
	// stop the slow one: its job is killed by the user; wait then exits 1.
	if r := run(t, env, "stop", "3"); r.code != 0 {
		t.Fatalf("stop: %+v", r)
	}
	if r := run(t, env, "wait", "3"); r.code != 1 {
		t.Fatalf("wait after stop: %+v", r)
	}
	f := run(t, env, "failed", "--json", "--include-user-killed", "3")
	if f.code != 0 || !strings.Contains(f.stdout, "killed_by_user") {
		t.Fatalf("failed --include-user-killed: %+v", f)
	}
}

func TestServiceCommands(t *testing.T) {
	env, state := service(t)
	flag := filepath.Join(t.TempDir(), "flag")
	wf := write(t, "wf.yaml", "name: svc\njobs:\n  hello: {shell: \"echo out; echo err >&2\"}\n  flaky: {command: [test, -e, "+flag+"], after: [hello]}\n  last: {command: [\"true\"], after: [flaky]}\n")
	if r := run(t, env, "submit", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	if r := run(t, env, "wait", "1"); r.code != 1 {
		t.Fatalf("wait: %+v", r)
	}
	// list
	if r := run(t, env, "list"); r.code != 0 || !strings.Contains(r.stdout, "svc") || !strings.Contains(r.stdout, "workflow_done") {
		t.Fatalf("list: %+v", r)
	}
	if r := run(t, env, "list", "--json"); !strings.Contains(r.stdout, `"name":"svc"`) {
		t.Fatalf("list --json: %+v", r)
	}
	// failed, with its options
	if r := run(t, env, "failed", "1"); r.code != 0 || !strings.Contains(r.stdout, "flaky") || strings.Contains(r.stdout, "last") {
		t.Fatalf("failed: %+v", r)
	}
	if r := run(t, env, "failed", "--include-aborted", "1"); !strings.Contains(r.stdout, "last") {
		t.Fatalf("failed --include-aborted: %+v", r)
	}
	// As soma-workflow's list_failed_jobs: a done job with a non-zero exit
	// value (flaky) is listed whatever the statuses asked.
	if r := run(t, env, "failed", "--status", "aborted_before_running", "1"); !strings.Contains(r.stdout, "last") || !strings.Contains(r.stdout, "flaky") || strings.Contains(r.stdout, "hello") {
		t.Fatalf("failed --status: %+v", r)
	}
	if r := run(t, env, "failed", "--status", "nonsense", "1"); r.code != 2 {
		t.Fatalf("failed --status nonsense: %+v", r)
	}
	// logs
	if r := run(t, env, "logs", "1", "hello"); r.code != 0 || !strings.Contains(r.stdout, "out\n") || !strings.Contains(r.stdout, "err\n") {
		t.Fatalf("logs: %+v", r)
	}
	if r := run(t, env, "logs", "--stdout", "1", "hello"); r.stdout != "out\n" {
		t.Fatalf("logs --stdout: %q", r.stdout)
	}
	if r := run(t, env, "logs", "--paths", "1", "1"); !strings.Contains(r.stdout, filepath.Join(state, "logs")) {
		t.Fatalf("logs --paths: %+v", r)
	}
	if r := run(t, env, "logs", "1", "nosuchjob"); r.code != 3 {
		t.Fatalf("logs of an unknown job: %+v", r)
	}
	// export and dot
	exp := run(t, env, "export", "--to", "native", "1")
	if exp.code != 0 || !strings.Contains(exp.stdout, "flaky:") {
		t.Fatalf("export: %+v", exp)
	}
	if r := run(t, env, "export", "1"); !strings.Contains(r.stdout, "serialized_jobs") {
		t.Fatalf("export soma: %+v", r)
	}
	if r := run(t, env, "dot", "1"); r.code != 0 || !strings.Contains(r.stdout, "digraph") || !strings.Contains(r.stdout, "salmon") {
		t.Fatalf("dot: %+v", r)
	}
	if r := run(t, env, "dot", wf); r.code != 0 || !strings.Contains(r.stdout, "j0 -> j1") {
		t.Fatalf("dot FILE: %+v", r)
	}
	// restart after fixing the cause
	os.WriteFile(flag, nil, 0o644)
	if r := run(t, env, "restart", "--json", "1"); r.code != 0 || !strings.Contains(r.stdout, `"workflows":["1"]`) {
		t.Fatalf("restart: %+v", r)
	}
	if r := run(t, env, "wait", "1"); r.code != 0 {
		t.Fatalf("wait after restart: %+v", r)
	}
	// expire
	if r := run(t, env, "expire", "--json", "1", "+48h"); r.code != 0 || !strings.Contains(r.stdout, `"expiration":`) {
		t.Fatalf("expire: %+v", r)
	}
	if r := run(t, env, "expire", "1", "2001-01-01"); r.code != 2 {
		t.Fatalf("expire in the past: %+v", r)
	}
	if r := run(t, env, "expire", "1", "someday"); r.code != 2 {
		t.Fatalf("expire with a bad date: %+v", r)
	}
	if r := run(t, env, "expire", "7", "+1h"); r.code != 3 {
		t.Fatalf("expire of an unknown workflow: %+v", r)
	}
	// delete one, then --all
	if r := run(t, env, "submit", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	if r := run(t, env, "delete", "1"); r.code != 0 {
		t.Fatalf("delete: %+v", r)
	}
	if r := run(t, env, "status", "1"); r.code != 3 {
		t.Fatalf("status after delete: %+v", r)
	}
	if r := run(t, env, "delete", "1"); r.code != 3 {
		t.Fatalf("delete twice: %+v", r)
	}
	if r := run(t, env, "delete", "--all", "--yes"); r.code != 0 {
		t.Fatalf("delete --all: %+v", r)
	}
	if r := run(t, env, "list", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("list after delete --all: %q", r.stdout)
	}
	// engine status / stop
	if r := run(t, env, "engine", "stop"); r.code != 0 {
		t.Fatalf("engine stop: %+v", r)
	}
	if r := run(t, env, "engine", "status"); !strings.Contains(r.stdout, "no engine") {
		t.Fatalf("engine status: %+v", r)
	}
	for _, mode := range []string{"0700"} {
		fi, err := os.Stat(state)
		if err != nil || fi.Mode().Perm().String() != "-rwx------" {
			t.Fatalf("state dir mode %v, want %s", fi.Mode(), mode)
		}
	}
	entries, _ := os.ReadDir(state)
	for _, e := range entries {
		fi, _ := e.Info()
		if !e.IsDir() && fi.Mode().Type().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
}

func TestHelpListsCommandsFlagsExitCodes(t *testing.T) {
	root := run(t, nil, "--help")
	for _, code := range []string{"0  ok", "1  a job", "2  bad input", "3  unknown", "4  timeout", "5  internal"} {
		if !strings.Contains(root.stdout, code) {
			t.Errorf("--help lacks exit code %q", code)
		}
	}
	commands := map[string][]string{
		"submit":   {"--json", "--max-jobs", "--queue", "--name", "--expiration"},
		"run":      {"--json", "--max-jobs", "--keep-state", "--queue", "--name"},
		"list":     {"--json"},
		"status":   {"--json", "--watch"},
		"wait":     {"--json", "--timeout"},
		"stop":     {"--json"},
		"restart":  {"--json"},
		"delete":   {"--force", "--all", "--json"},
		"failed":   {"--json", "--include-aborted", "--include-user-killed", "--status"},
		"logs":     {"--json", "--paths", "--stdout", "--stderr"},
		"export":   {"--to", "--output"},
		"expire":   {"--json"},
		"dot":      {},
		"validate": {"--json"},
		"convert":  {"--to", "--output"},
		"engine":   {"--idle"},
		"version":  {"--json"},
	}
	for c, flags := range commands {
		if !strings.Contains(root.stdout, c) {
			t.Errorf("--help lacks command %s", c)
		}
		h := run(t, nil, c, "--help")
		for _, f := range append(flags, "--state-dir", "--backend") {
			if !strings.Contains(h.stdout, f) {
				t.Errorf("%s --help lacks %s", c, f)
			}
		}
	}
}

// TestSubmitStartsEngineAndSupervisor: submit, as the README shows, starts
// the background engine and the supervisor of local jobs side by side, and
// returns with both running: the engine does not start the supervisor
// after its own start. A second submit starts neither again; a refused
// workflow starts nothing.
func TestSubmitStartsEngineAndSupervisor(t *testing.T) {
	env, state := service(t)
	env = append(env, "SOMAFLOW_STATE_DIR="+state)
	if r := runBin(t, env, "submit", write(t, "bad.yaml", "jobs: {a: {command: [\"true\"], after: [nope]}}\n")); r.code != 2 {
		t.Fatalf("submit of a bad workflow: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(state, "engine.log")); !os.IsNotExist(err) {
		t.Fatalf("a refused workflow started an engine (engine.log: %v)", err)
	}
	if _, err := supervisor.ReadBootstrap(state); !os.IsNotExist(err) {
		t.Fatalf("a refused workflow started a supervisor (bootstrap: %v)", err)
	}
	wf := write(t, "ok.yaml", okWF)
	if r := runBin(t, env, "submit", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	// Right after submit returned: no wait, no retry.
	bs, err := supervisor.ReadBootstrap(state)
	if err != nil {
		t.Fatalf("no supervisor when submit returned: %v", err)
	}
	if err := syscall.Kill(bs.PID, 0); err != nil {
		t.Fatalf("supervisor pid %d of the bootstrap file: %v", bs.PID, err)
	}
	if r := runBin(t, env, "engine", "status", "--json"); !strings.Contains(r.stdout, `"running":true`) {
		t.Fatalf("no engine running when submit returned: %+v", r)
	}
	if r := runBin(t, env, "submit", wf); r.code != 0 {
		t.Fatalf("second submit: %+v", r)
	}
	if r := runBin(t, env, "wait", "1", "2"); r.code != 0 {
		t.Fatalf("wait: %+v", r)
	}
	again, err := supervisor.ReadBootstrap(state)
	if err != nil || again.PID != bs.PID {
		t.Fatalf("the supervisor changed: pid %d, then %+v (%v)", bs.PID, again, err)
	}
	log, _ := os.ReadFile(filepath.Join(state, "supervisor.log"))
	if n := strings.Count(string(log), "supervisor serving"); n != 1 {
		t.Fatalf("%d supervisors served the state dir, want 1:\n%s", n, log)
	}
}
