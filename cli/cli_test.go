package cli_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

var binary string

// TestMain builds the somaflow binary once; every CLI test runs it.
func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "somaflow-cli-test-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "somaflow")
	args := []string{"build", "-o", binary}
	if tags := os.Getenv("SOMAFLOW_TEST_TAGS"); tags != "" {
		args = append(args, "-tags", tags) // e.g. drmaa, for the end-to-end tests
	}
	out, err := exec.Command("go", append(args, "../cmd/somaflow")...).CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// runBin runs the somaflow binary: for what needs its own process (signals,
// crashes, concurrent clients, the batch systems' end-to-end runs).
func runBin(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1"), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func write(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const okWF = `name: ok
jobs:
  a: {command: [echo, hi]}
  b: {command: ["true"], after: [a]}
`

const failWF = `name: fails
jobs:
  a: {command: ["true"]}
  bad: {shell: "echo oops >&2; exit 3", after: [a]}
  dep: {command: ["true"], after: [bad]}
  sig: {shell: "kill -TERM $$"}
`

func TestRunExitCodes(t *testing.T) {
	r := run(t, nil, "run", write(t, "ok.yaml", okWF))
	if r.code != 0 || !strings.Contains(r.stdout, "workflow_done") || !strings.Contains(r.stdout, "2 succeeded") {
		t.Fatalf("ok workflow: %+v", r)
	}
	r = run(t, nil, "run", write(t, "fail.yaml", failWF))
	if r.code != 1 || !strings.Contains(r.stdout, "exit 3") || !strings.Contains(r.stdout, "aborted_before_running") || !strings.Contains(r.stdout, "signal SIGTERM") {
		t.Fatalf("failing workflow: %+v", r)
	}
}

// A log that cannot be kept does not fail the job but is said: in the
// summary and in the job's reason; the exit code stays 0.
func TestRunReportsLostOutput(t *testing.T) {
	state := t.TempDir()
	if err := os.WriteFile(filepath.Join(state, "logs"), nil, 0o600); err != nil { // in the logs dir's way
		t.Fatal(err)
	}
	wf := write(t, "talk.yaml", "jobs:\n  talk: {shell: 'echo hello'}\n  quiet: {command: [\"true\"]}\n")
	r := run(t, nil, "run", "--state-dir", state, wf)
	if r.code != 0 || !strings.Contains(r.stdout, "2 succeeded") || !strings.Contains(r.stdout, "output lost") || strings.Contains(r.stdout, "quiet") {
		t.Fatalf("run: want exit 0, both succeeded, the talking job's output said lost and the quiet one not listed: %+v", r)
	}
}

func TestRunJSON(t *testing.T) {
	r := run(t, nil, "run", "--json", "--max-jobs", "1", write(t, "fail.yaml", failWF))
	if r.code != 1 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if doc["status"] != "workflow_done" {
		t.Fatalf("status %v", doc["status"])
	}
}

// normalise replaces what changes from run to run (ids of processes, times,
// paths, measured usage) so that the document's shape and stable values can
// be compared with a golden file.
func normalise(t *testing.T, doc []byte) []byte {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"submitted", "expiration"} {
		if v[k] != nil {
			v[k] = "<time>"
		}
	}
	for _, j := range v["jobs"].([]any) {
		m := j.(map[string]any)
		for _, k := range []string{"submitted", "started", "ended"} {
			if m[k] != nil {
				m[k] = "<time>"
			}
		}
		if m["drms_id"] != nil {
			m["drms_id"] = "<pid>"
		}
		for _, k := range []string{"stdout", "stderr"} {
			if s, ok := m[k].(string); ok {
				m[k] = "<state>/" + regexp.MustCompile(`^.*/logs/`).ReplaceAllString(s, "logs/")
			}
		}
		u := m["resource_usage"].(map[string]any)
		for _, k := range []string{"wall_s", "cpu_s", "max_rss_kib"} {
			if u[k] != nil {
				u[k] = "<number>"
			}
		}
		if raw, ok := u["raw"].(map[string]any); ok {
			for k := range raw {
				raw[k] = "<text>"
			}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	enc.Encode(v)
	return buf.Bytes()
}

// TestStatusDocumentGolden keeps the status document stable.
func TestStatusDocumentGolden(t *testing.T) {
	state := t.TempDir()
	r := run(t, nil, "run", "--json", "--max-jobs", "1", "--state-dir", state, write(t, "fail.yaml", failWF))
	if r.code != 1 {
		t.Fatalf("run: %+v", r)
	}
	// The binary, as the README shows it (status --json is streamed).
	s := runBin(t, nil, "status", "--json", "--state-dir", state, "1")
	if s.code != 0 {
		t.Fatalf("status: %+v", s)
	}
	got := normalise(t, []byte(s.stdout))
	if string(normalise(t, []byte(r.stdout))) != string(got) {
		t.Fatalf("run --json and status --json differ:\n%s\n%s", r.stdout, s.stdout)
	}
	golden := filepath.Join("testdata", "status.golden.json")
	if *update {
		os.WriteFile(golden, got, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("status document changed (go test ./cli -run Golden -update to accept):\n%s", got)
	}
}

func TestStatusHumanAndUnknown(t *testing.T) {
	state := t.TempDir()
	run(t, nil, "run", "--state-dir", state, write(t, "ok.yaml", okWF))
	r := run(t, nil, "--state-dir", state, "status", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "JOB") || !strings.Contains(r.stdout, "finished_regularly") {
		t.Fatalf("status: %+v", r)
	}
	r = run(t, []string{"SOMAFLOW_STATE_DIR=" + state}, "status", "42")
	if r.code != 3 || !strings.Contains(r.stderr, "42") {
		t.Fatalf("unknown id: %+v", r)
	}
	r = run(t, nil, "--state-dir", state, "status", "abc")
	if r.code != 2 {
		t.Fatalf("bad id: %+v", r)
	}
}

func TestBadInputStoresNothing(t *testing.T) {
	state := t.TempDir()
	cases := map[string]string{
		"cycle.yaml":   "jobs: {a: {command: [\"true\"], after: [b]}, b: {command: [\"true\"], after: [a]}}\n",
		"unknown.yaml": "jobs: {a: {command: [\"true\"], after: [zzz]}}\n",
		"garbage.json": "{\"serialized_jobs\": 3",
		"empty.yaml":   "jobs: {a: {command: []}}\n",
	}
	for name, text := range cases {
		p := write(t, name, text)
		if r := run(t, nil, "validate", p); r.code != 2 || r.stderr == "" {
			t.Errorf("validate %s: %+v", name, r)
		}
		if r := run(t, nil, "run", "--state-dir", state, p); r.code != 2 {
			t.Errorf("run %s: %+v", name, r)
		}
	}
	r := run(t, nil, "validate", write(t, "cycle.yaml", cases["cycle.yaml"]))
	if !strings.Contains(r.stderr, "cycle") {
		t.Errorf("cycle message: %s", r.stderr)
	}
	if r := run(t, nil, "--state-dir", state, "status", "1"); r.code != 3 {
		t.Fatalf("a refused workflow was stored: %+v", r)
	}
	if r := run(t, nil, "run", "--max-jobs", "-1", write(t, "ok.yaml", okWF)); r.code != 2 {
		t.Fatalf("negative --max-jobs: %+v", r)
	}
	if r := run(t, nil, "run", "--no-such-flag", "x"); r.code != 2 {
		t.Fatalf("unknown flag: %+v", r)
	}
	if r := run(t, nil, "run", "--backend", "nosuch", write(t, "ok.yaml", okWF)); r.code != 2 {
		t.Fatalf("unknown backend: %+v", r)
	}
}

func TestValidateConvert(t *testing.T) {
	p := write(t, "ok.yaml", okWF)
	if r := run(t, nil, "validate", p); r.code != 0 || !strings.Contains(r.stdout, "2 jobs") {
		t.Fatalf("validate: %+v", r)
	}
	soma := run(t, nil, "convert", "--to", "soma", p)
	if soma.code != 0 || !strings.Contains(soma.stdout, "serialized_jobs") {
		t.Fatalf("convert to soma: %+v", soma)
	}
	sp := write(t, "wf.json", soma.stdout)
	native := run(t, nil, "convert", "--to", "native", sp)
	if native.code != 0 || !strings.Contains(native.stdout, "jobs:") {
		t.Fatalf("convert to native: %+v", native)
	}
	back := run(t, nil, "convert", "--to", "soma", write(t, "back.yaml", native.stdout))
	if back.stdout != soma.stdout {
		t.Fatalf("soma -> native -> soma changed the file:\n%s\n%s", soma.stdout, back.stdout)
	}
	if r := run(t, nil, "convert", "--to", "xml", p); r.code != 2 {
		t.Fatalf("bad --to: %+v", r)
	}
}

func TestVersionAndHelp(t *testing.T) {
	r := run(t, nil, "version")
	if r.code != 0 || !strings.Contains(r.stdout, "DRMAA support") {
		t.Fatalf("version: %+v", r)
	}
	r = run(t, nil, "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "EXIT CODES") {
		t.Fatalf("help: %+v", r)
	}
	for _, c := range []string{"run", "status", "validate", "convert", "version"} {
		if !strings.Contains(r.stdout, c) {
			t.Errorf("help lacks %s", c)
		}
	}
}

// list --json prints each workflow as the status document's header: the
// same keys and values, times in UTC whatever the local zone.
func TestListJSONIsTheStatusHeader(t *testing.T) {
	env := []string{"SOMAFLOW_STATE_DIR=" + filepath.Join(t.TempDir(), "state"), "SOMAFLOW_ENGINE_AUTOSTART=0", "TZ=Asia/Tokyo"}
	if r := run(t, env, "submit", "--queue", "q1", write(t, "one.yaml", "name: one\njobs: {a: {command: [true]}}\n")); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	var list []map[string]any
	var doc map[string]any
	if err := json.Unmarshal([]byte(run(t, env, "list", "--json").stdout), &list); err != nil || len(list) != 1 {
		t.Fatalf("list --json: %v %v", err, list)
	}
	if err := json.Unmarshal([]byte(run(t, env, "status", "--json", "1").stdout), &doc); err != nil {
		t.Fatal(err)
	}
	for k, v := range list[0] {
		if fmt.Sprint(doc[k]) != fmt.Sprint(v) {
			t.Errorf("list --json %s = %v, the status document says %v", k, v, doc[k])
		}
	}
	if len(list[0]) != 7 || !strings.HasSuffix(fmt.Sprint(list[0]["submitted"]), "Z") || list[0]["queue"] != "q1" {
		t.Fatalf("list --json: want the 7 header fields, UTC times, the queue: %v", list[0])
	}
}

// Exit codes and messages a new user meets first (issue 25.6).
func TestFirstDayMessages(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	env := []string{"SOMAFLOW_STATE_DIR=" + state}
	if r := run(t, env, "nosuch"); r.code != 2 || !strings.Contains(r.stderr, `unknown command "nosuch"`) {
		t.Fatalf("unknown command: %+v", r)
	}
	if r := run(t, env, "run", write(t, "ok.yaml", okWF), "--keep-state"); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	if r := run(t, env, "wait", "99"); r.code != 3 || strings.Count(r.stderr, "workflow 99") != 1 {
		t.Fatalf("wait on an unknown id: want exit 3 naming it once, got %+v", r)
	}
	if r := run(t, env, "stop", "1"); r.code != 0 || !strings.Contains(r.stdout, "nothing to stop") {
		t.Fatalf("stop of a done workflow: %+v", r)
	}
	if r := run(t, env, "delete", "--all"); r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("delete --all without a terminal nor --yes: %+v", r)
	}
	if r := run(t, env, "list"); !strings.Contains(r.stdout, "workflow_done") {
		t.Fatalf("delete --all without --yes deleted: %+v", r)
	}
	if r := run(t, env, "delete", "--all", "--yes"); r.code != 0 || !strings.Contains(r.stdout, "deleted workflow 1") {
		t.Fatalf("delete --all --yes: %+v", r)
	}
	run(t, env, "engine", "stop")
	stopSupervisor(state)
}

// run --trace writes one TSV row per job attempt, the same rows `somaflow
// trace` prints later (issue 25.9).
func TestTrace(t *testing.T) {
	env := []string{"SOMAFLOW_STATE_DIR=" + filepath.Join(t.TempDir(), "state")}
	trace := filepath.Join(t.TempDir(), "trace.tsv")
	wf := write(t, "two.yaml", "jobs:\n  ok: {command: [true]}\n  bad: {shell: 'echo oops >&2; exit 3'}\n")
	if r := run(t, env, "run", "--trace", trace, wf); r.code != 1 {
		t.Fatalf("run --trace: %+v", r)
	}
	data, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "workflow\tjob\tname\tattempt\tbackend\tdrms_id\t") {
		t.Fatalf("trace file:\n%s", data)
	}
	bad := strings.Split(lines[2], "\t")
	if len(bad) != 17 || bad[2] != "bad" || bad[3] != "1" || bad[9] != "done" || bad[10] != "finished_regularly" || bad[11] != "3" || bad[13] == "" {
		t.Fatalf("row of the failed job: %q", bad)
	}
	if r := run(t, env, "trace", "1"); r.code != 0 || r.stdout != string(data) {
		t.Fatalf("trace 1 differs from run --trace's file:\n%s\n%+v", data, r)
	}
}

// logs --follow prints a job's output as it comes, from before the job is
// submitted to its end, and then exits (issue 25.7).
func TestLogsFollow(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	env := []string{"SOMAFLOW_STATE_DIR=" + state}
	wf := write(t, "slow.yaml", "jobs:\n  first: {command: [sleep, '0.3']}\n  talk: {shell: 'echo one; sleep 0.6; echo two >&2; sleep 0.3; echo three', after: [first]}\n")
	if r := run(t, env, "submit", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	defer func() { run(t, env, "engine", "stop"); stopSupervisor(state) }()
	r := run(t, env, "logs", "--follow", "1", "talk")
	if r.code != 0 || !strings.Contains(r.stdout, "one\n") || !strings.Contains(r.stdout, "two\n") || !strings.Contains(r.stdout, "three\n") ||
		strings.Index(r.stdout, "one") > strings.Index(r.stdout, "three") {
		t.Fatalf("logs --follow: %+v", r)
	}
	if r := run(t, env, "logs", "--follow", "--json", "1", "talk"); r.code != 2 {
		t.Fatalf("logs --follow --json: %+v", r)
	}
}

// wait's summary, counted in the database with only the jobs that get a
// row read, says what its status document says: run as the README shows
// (submit FILE, wait ID), against wait --json.
func TestWaitSummaryAsDocument(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	env := []string{"SOMAFLOW_STATE_DIR=" + state}
	if r := runBin(t, env, "submit", write(t, "fail.yaml", failWF)); r.code != 0 || strings.TrimSpace(r.stdout) != "1" {
		t.Fatalf("submit: %+v", r)
	}
	defer func() { runBin(t, env, "engine", "stop"); stopSupervisor(state) }()
	text := runBin(t, env, "wait", "--timeout", "60", "1")
	if text.code != 1 {
		t.Fatalf("wait (jobs failed): want exit 1: %+v", text)
	}
	r := runBin(t, env, "wait", "--json", "1")
	var docs []struct {
		ID, Name, Status, Submitted string
		Jobs                        []struct {
			ID, Name, Status string
			ExitStatus       *string `json:"exit_status"`
			ExitValue        *int    `json:"exit_value"`
			Ended, Reason    *string
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &docs); err != nil || len(docs) != 1 {
		t.Fatalf("wait --json: %v: %+v", err, r)
	}
	doc := docs[0]
	var succeeded, failed, aborted int
	var end time.Time
	rows := map[string]bool{}
	for _, j := range doc.Jobs {
		es := ""
		if j.ExitStatus != nil {
			es = *j.ExitStatus
		}
		ok := j.Status == "done" && es == "finished_regularly" && j.ExitValue != nil && *j.ExitValue == 0
		switch {
		case ok:
			succeeded++
		case es == "aborted_before_running":
			aborted++
		default:
			failed++
		}
		if !ok || (j.Reason != nil && *j.Reason != "") {
			rows[j.ID] = true
		}
		if j.Ended != nil {
			if e, err := time.Parse(time.RFC3339, *j.Ended); err == nil && e.After(end) {
				end = e
			}
		}
	}
	start, err := time.Parse(time.RFC3339, doc.Submitted)
	if err != nil || end.IsZero() {
		t.Fatalf("document: submitted %q, no end: %+v", doc.Submitted, doc)
	}
	if succeeded != 1 || failed != 2 || aborted != 1 {
		t.Fatalf("document: %d succeeded, %d failed, %d aborted; want 1, 2, 1: %+v", succeeded, failed, aborted, doc)
	}
	line := fmt.Sprintf("workflow 1 %q: %s in %s — %d jobs: %d succeeded, %d failed, %d aborted\n",
		doc.Name, doc.Status, end.Sub(start), len(doc.Jobs), succeeded, failed, aborted)
	if !strings.HasPrefix(text.stdout, line) {
		t.Fatalf("wait's summary:\n%s\nwant its first line:\n%s", text.stdout, line)
	}
	listed := map[string]bool{}
	for i, l := range strings.Split(strings.TrimSpace(text.stdout), "\n") {
		if i >= 2 { // the summary line, the table's head
			listed[strings.Fields(l)[0]] = true
		}
	}
	if fmt.Sprint(listed) != fmt.Sprint(rows) {
		t.Fatalf("wait's rows are jobs %v, want %v:\n%s", listed, rows, text.stdout)
	}
	if !strings.Contains(text.stdout, "exit 3") || !strings.Contains(text.stdout, "oops") || !strings.Contains(text.stdout, "signal SIGTERM") {
		t.Fatalf("wait's rows lack an outcome or the last line of stderr:\n%s", text.stdout)
	}
	// With an unknown workflow too: its error, the known one's document
	// alone, the worse exit code; with only unknown ones, null.
	r = runBin(t, env, "wait", "--json", "1", "99")
	if err := json.Unmarshal([]byte(r.stdout), &docs); err != nil || len(docs) != 1 || docs[0].ID != "1" || r.code != 3 || !strings.Contains(r.stderr, "99") {
		t.Fatalf("wait --json 1 99: want workflow 1's document alone, exit 3: %v: %+v", err, r)
	}
	if r := runBin(t, env, "wait", "--json", "99"); r.code != 3 || r.stdout != "null\n" {
		t.Fatalf("wait --json 99: want null, exit 3: %+v", r)
	}
}

// status ID JOB shows one job; wait ID --job JOB waits for that job only
// and exits by its outcome (issue 25.7).
func TestOneJob(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	env := []string{"SOMAFLOW_STATE_DIR=" + state}
	wf := write(t, "two.yaml", "jobs:\n  quick: {shell: 'exit 4'}\n  slow: {command: [sleep, '30']}\n")
	if r := run(t, env, "submit", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	defer func() { run(t, env, "delete", "--force", "1"); run(t, env, "engine", "stop"); stopSupervisor(state) }()
	r := run(t, env, "wait", "1", "--job", "quick", "--timeout", "60")
	if r.code != 1 || !strings.Contains(r.stdout, "quick") || !strings.Contains(r.stdout, "exit 4") {
		t.Fatalf("wait --job quick (exits 4): %+v", r)
	}
	if r := run(t, env, "wait", "1", "--job", "slow", "--timeout", "0.2"); r.code != 4 {
		t.Fatalf("wait --job slow with a short timeout: %+v", r)
	}
	r = run(t, env, "status", "--json", "1", "quick")
	var job struct {
		Name      string `json:"name"`
		ExitValue *int   `json:"exit_value"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &job); err != nil || job.Name != "quick" || job.ExitValue == nil || *job.ExitValue != 4 {
		t.Fatalf("status --json 1 quick: %+v", r)
	}
	if r := run(t, env, "status", "1", "nosuch"); r.code != 3 {
		t.Fatalf("status of an unknown job: %+v", r)
	}
}

// Shell completion and the manual page come from the command tree
// (issue 25.8): every visible command is completed and documented.
func TestCompletionAndMan(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if r := runBin(t, nil, "completion", sh); r.code != 0 || !strings.Contains(r.stdout, "somaflow") {
			t.Fatalf("completion %s: %+v", sh, r)
		}
	}
	cmds := runBin(t, nil, "--generate-shell-completion").stdout
	flags := runBin(t, nil, "wait", "--", "--generate-shell-completion").stdout
	man := run(t, nil, "man")
	if man.code != 0 || !strings.HasPrefix(man.stdout, ".TH SOMAFLOW 1") {
		t.Fatalf("man: %+v", man)
	}
	for _, c := range []string{"submit", "run", "status", "wait", "logs", "trace", "engine", "completion"} {
		if !strings.Contains(cmds, c+":") {
			t.Errorf("command %s not completed: %s", c, cmds)
		}
		if !strings.Contains(man.stdout, ".SS "+c) {
			t.Errorf("command %s not in the man page", c)
		}
	}
	if !strings.Contains(flags, "--timeout:") || !strings.Contains(flags, "--job:") {
		t.Errorf("wait's flags not completed: %s", flags)
	}
	if !strings.Contains(man.stdout, `\-\-timeout DURATION`) && !strings.Contains(man.stdout, `\-\-timeout TIMEOUT`) {
		t.Errorf("wait --timeout not in the man page")
	}
}

// retries: in a native file reruns a failed job; status shows the attempt,
// logs --attempt K an earlier attempt's output, and the soma export keeps
// it (issue 25.2).
func TestRetriesThroughTheCLI(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	env := []string{"SOMAFLOW_STATE_DIR=" + state}
	count := filepath.Join(t.TempDir(), "count")
	wf := write(t, "retry.yaml", fmt.Sprintf(`defaults: {retries: 1}
jobs:
  flaky: {shell: 'echo x >> %s; echo try $(wc -l < %s); [ $(wc -l < %s) -ge 3 ]', retries: 3}
  fails: {shell: 'echo no; exit 2'}
`, count, count, count))
	r := run(t, env, "run", "--keep-state", "--json", wf)
	if r.code != 1 {
		t.Fatalf("run: want exit 1 (fails fails twice), got %+v", r)
	}
	for _, want := range []string{`"name":"flaky","status":"done","exit_status":"finished_regularly","exit_value":0,"signal":null,"reason":null,"attempt":3`,
		`"name":"fails","status":"done","exit_status":"finished_regularly","exit_value":2,"signal":null,"reason":null,"attempt":2`} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("status document lacks %s:\n%s", want, r.stdout)
		}
	}
	if r := run(t, env, "logs", "--stdout", "--attempt", "2", "1", "flaky"); r.code != 0 || r.stdout != "try 2\n" {
		t.Fatalf("logs --attempt 2: %+v", r)
	}
	if r := run(t, env, "logs", "--attempt", "4", "1", "flaky"); r.code != 2 {
		t.Fatalf("logs --attempt 4 of 3: %+v", r)
	}
	soma := run(t, env, "convert", "--to", "soma", wf)
	if !strings.Contains(soma.stdout, `"retries": 3`) || !strings.Contains(soma.stdout, `"retries": 1`) {
		t.Fatalf("soma export without retries: %s", soma.stdout)
	}
	if r := run(t, env, "validate", write(t, "bad.yaml", "jobs: {a: {command: [true], retries: -1}}\n")); r.code != 2 || !strings.Contains(r.stderr, "retries") {
		t.Fatalf("negative retries: %+v", r)
	}
}

// Resources in the native format (issue 25.1): a local job past its
// walltime is killed and says so; the soma export keeps the resources.
func TestResourcesThroughTheCLI(t *testing.T) {
	wf := write(t, "res.yaml", "defaults: {walltime: 1s, memory: 1G}\njobs:\n  slow: {command: [sleep, '30'], cpus: 1}\n")
	r := run(t, []string{"SOMAFLOW_STATE_DIR=" + filepath.Join(t.TempDir(), "s")}, "run", "--json", wf)
	if r.code != 1 || !strings.Contains(r.stdout, `"exit_status":"finished_signal"`) || !strings.Contains(r.stdout, "walltime of 1s exceeded") {
		t.Fatalf("a job past its walltime: %+v", r)
	}
	soma := run(t, nil, "convert", "--to", "soma", wf)
	if !strings.Contains(soma.stdout, `"resources": {`) || !strings.Contains(soma.stdout, `"memory_mb": 1024,`) || !strings.Contains(soma.stdout, `"walltime_s": 1,`) {
		t.Fatalf("soma export of resources: %s", soma.stdout)
	}
	if r := run(t, nil, "validate", write(t, "bad.yaml", "jobs: {a: {command: [true], memory: lots}}\n")); r.code != 2 || !strings.Contains(r.stderr, `memory "lots"`) {
		t.Fatalf("bad memory: %+v", r)
	}
}

// validate shows every problem of a file at once, with lines, a suggestion
// for a misspelt field, and --json as an array (issue 25.5).
func TestValidateShowsEverything(t *testing.T) {
	wf := write(t, "v.yaml", "jobs:\n  a: {command: [true], after: [b], priority: x}\n  b: {command: [true], after: [a]}\n  c: {comand: [true]}\n")
	r := run(t, nil, "validate", wf)
	for _, want := range []string{`job "a": priority: expected an integer, got "x" (line 2)`, `job "c": comand: unknown job field (did you mean "command"?) (line 4)`,
		`dependency cycle`} {
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Fatalf("validate: want exit 2 and %q, got %+v", want, r)
		}
	}
	r = run(t, nil, "validate", "--json", wf)
	var doc struct {
		Problems []struct {
			File    string  `json:"file"`
			Line    *int    `json:"line"`
			Job     *string `json:"job"`
			Field   *string `json:"field"`
			Message string  `json:"message"`
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 2 || len(doc.Problems) < 3 {
		t.Fatalf("validate --json: %v %+v", err, r)
	}
	p := doc.Problems[0]
	if p.File != wf || p.Line == nil || *p.Line != 2 || p.Job == nil || *p.Job != "a" || p.Field == nil || *p.Field != "priority" {
		t.Fatalf("first problem: %+v", p)
	}
}

// run --dry-run and submit --dry-run print the jobs in an order that
// respects the dependencies, with the sbatch options for Slurm, and store
// and start nothing (issue 25.10).
func TestDryRun(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	env := []string{"SOMAFLOW_STATE_DIR=" + state}
	wf := write(t, "d.yaml", "jobs:\n  c: {shell: 'touch c', after: [g], cpus: 2, walltime: 90m}\n  a: {command: [touch, a]}\n  b: {command: [touch, b]}\ngroups:\n  g: [a, b]\n")
	r := run(t, env, "run", "--dry-run", wf)
	if r.code != 0 || !strings.Contains(r.stdout, "1. a:") || !strings.Contains(r.stdout, "3. c:") || !strings.Contains(r.stdout, "after a, b") {
		t.Fatalf("run --dry-run: %+v", r)
	}
	r = run(t, env, "--backend", "slurm", "submit", "--dry-run", "--json", "--queue", "short", wf)
	var plan []struct {
		Name   string   `json:"name"`
		After  []string `json:"after"`
		Sbatch []string `json:"sbatch_options"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil || r.code != 0 || len(plan) != 3 || plan[2].Name != "c" ||
		strings.Join(plan[2].Sbatch, " ") != "--partition=short --cpus-per-task=2 --time=90" {
		t.Fatalf("submit --dry-run --json: %v %+v", err, r)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("a dry run made the state dir (%v)", err)
	}
	for _, f := range []string{"a", "b", "c"} {
		if _, err := os.Stat(f); err == nil {
			t.Fatalf("a dry run ran job %s", f)
		}
	}
	if r := run(t, env, "run", "--dry-run", write(t, "cyc.yaml", "jobs: {a: {command: [true], after: [b]}, b: {command: [true], after: [a]}}\n")); r.code != 2 {
		t.Fatalf("dry run of a cycle: %+v", r)
	}
}

// doctor checks the installation and exits 0 only when all is well
// (issue 21).
func TestDoctor(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	env := []string{"SOMAFLOW_STATE_DIR=" + state}
	if r := run(t, env, "run", "--keep-state", write(t, "ok.yaml", okWF)); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	r := run(t, env, "doctor", "--json")
	var doc struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 0 || !doc.OK || len(doc.Checks) < 4 {
		t.Fatalf("doctor on a good state dir: %v %+v", err, r)
	}
	os.Chmod(state, 0o770)
	defer os.Chmod(state, 0o700)
	if r := run(t, env, "doctor"); r.code != 5 || !strings.Contains(r.stdout, "FAIL state dir") || !strings.Contains(r.stdout, "fix:") {
		t.Fatalf("doctor on a group-writable state dir: %+v", r)
	}
}

// Two workflows submitted at once share the local slots as the README
// says: with max-jobs 2 in the settings, never more than 2 of their jobs
// run together (issue 25.3).
func TestTwoWorkflowsShareSlots(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	cfg := write(t, "site.yaml", "settings: {max-jobs: \"2\"}\n")
	env := []string{"SOMAFLOW_STATE_DIR=" + state, "SOMAFLOW_CONFIG=" + cfg, "XDG_CONFIG_HOME=" + t.TempDir()}
	log := filepath.Join(t.TempDir(), "times")
	job := fmt.Sprintf("{shell: 'echo \"+ $(date +%%s%%N)\" >> %s; sleep 0.3; echo \"- $(date +%%s%%N)\" >> %s'}", log, log)
	wf := write(t, "three.yaml", fmt.Sprintf("jobs:\n  a: %s\n  b: %s\n  c: %s\n", job, job, job))
	for range 2 {
		if r := run(t, env, "submit", wf); r.code != 0 {
			t.Fatalf("submit: %+v", r)
		}
	}
	defer func() { run(t, env, "engine", "stop"); stopSupervisor(state) }()
	if r := run(t, env, "wait", "1", "2", "--timeout", "60"); r.code != 0 {
		t.Fatalf("wait: %+v", r)
	}
	data, _ := os.ReadFile(log)
	type ev struct {
		t int64
		d int
	}
	var evs []ev
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var sign string
		var ts int64
		fmt.Sscan(line, &sign, &ts)
		evs = append(evs, ev{ts, map[string]int{"+": 1, "-": -1}[sign]})
	}
	if len(evs) != 12 {
		t.Fatalf("%d records, want 12:\n%s", len(evs), data)
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].t < evs[j].t || evs[i].t == evs[j].t && evs[i].d < evs[j].d })
	running, most := 0, 0
	for _, e := range evs {
		running += e.d
		most = max(most, running)
	}
	if most != 2 {
		t.Fatalf("at most %d jobs ran at once across two workflows on 2 slots, want 2", most)
	}
}

// TestDoctorBroken: somaflow doctor on broken setups names each problem,
// prints a fix, and exits non-zero: a backend's commands missing, a state
// dir that cannot be written, a hung engine holding a stale lock, a
// database from a newer somaflow.
func TestDoctorBroken(t *testing.T) {
	good := func(t *testing.T) (string, []string) {
		state := filepath.Join(t.TempDir(), "state")
		env := []string{"SOMAFLOW_STATE_DIR=" + state}
		if r := run(t, env, "run", "--keep-state", write(t, "ok.yaml", okWF)); r.code != 0 {
			t.Fatalf("run: %+v", r)
		}
		return state, env
	}
	expect := func(t *testing.T, env []string, name, detail string, args ...string) {
		t.Helper()
		r := run(t, env, append([]string{"doctor"}, args...)...)
		if r.code == 0 || !strings.Contains(r.stdout, "FAIL "+name) || !strings.Contains(r.stdout, detail) || !strings.Contains(r.stdout, "fix:") {
			t.Fatalf("doctor: want FAIL %s with %q and a fix, got %+v", name, detail, r)
		}
	}
	t.Run("backend_commands_missing", func(t *testing.T) {
		_, env := good(t)
		env = append(env, "PATH="+t.TempDir())
		expect(t, env, "backend slurm", "not on PATH: sbatch", "--backend", "slurm")
		expect(t, env, "backend pbs", "not on PATH: qsub", "--backend", "pbs")
		cfg := write(t, "cmd.yaml", "backend: command\nsettings: {submit: \"mysub {script}\", submit_id: \"(\\\\d+)\", status: \"mystat\", status_line: \"(?P<id>\\\\d+) (?P<state>\\\\w+)\", cancel: \"mydel {id}\"}\n")
		expect(t, append(env, "SOMAFLOW_CONFIG="+cfg), "backend command", "submit: mysub")
	})
	t.Run("state_dir_not_writable", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to mount a read-only filesystem")
		}
		state, env := good(t)
		if out, err := exec.Command("mount", "--bind", "-o", "ro", state, state).CombinedOutput(); err != nil {
			t.Skipf("cannot bind-mount read-only here: %v %s", err, out)
		}
		defer exec.Command("umount", state).Run()
		exec.Command("mount", "-o", "remount,bind,ro", state).Run()
		expect(t, env, "state dir", "not writable")
	})
	t.Run("hung_engine_stale_lock", func(t *testing.T) {
		state, env := good(t)
		lock := filepath.Join(state, "engine.lock")
		host, _ := os.Hostname()
		// A process holds the engine's lock but never touches it (a hung engine).
		holder := exec.Command("flock", lock, "sleep", "60")
		if err := holder.Start(); err != nil {
			t.Skip("no flock(1):", err)
		}
		defer holder.Process.Kill()
		deadline := time.Now().Add(5 * time.Second)
		for {
			out := run(t, env, "engine", "status").stdout
			if strings.HasPrefix(out, "engine running") || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		os.WriteFile(lock, []byte(fmt.Sprintf("host=%s pid=%d\n", host, holder.Process.Pid)), 0o600)
		old := time.Now().Add(-10 * time.Minute)
		os.Chtimes(lock, old, old)
		expect(t, env, "engine", "it is hung")
	})
	t.Run("newer_database_schema", func(t *testing.T) {
		state, env := good(t)
		py := `import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("update meta set value='99' where key='schema_version'"); c.commit()`
		if out, err := exec.Command("python3", "-c", py, filepath.Join(state, "somaflow.db")).CombinedOutput(); err != nil {
			t.Skipf("python3 sqlite3: %v %s", err, out)
		}
		expect(t, env, "database", "newer than this somaflow")
	})
}
