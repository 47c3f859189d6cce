package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHeldJobsAsDocumented drives the binary as the README shows: `submit
// --max-jobs 2` of a workflow with a gated job, a failing dependant and its
// own dependant, and six short jobs. The supervisor holds what may not run
// yet (queued_active), never runs more than two at once, starts the chain
// in order, and cancels the failed job's dependant, which then shows as
// never submitted.
func TestHeldJobsAsDocumented(t *testing.T) {
	env, _ := service(t)
	dir := t.TempDir()
	gate, log := filepath.Join(dir, "gate"), filepath.Join(dir, "log")
	var b strings.Builder
	fmt.Fprintf(&b, "jobs:\n  a: {shell: 'echo +a >> %s; while [ ! -e %s ]; do sleep 0.05; done; echo -a >> %s'}\n", log, gate, log)
	fmt.Fprintf(&b, "  b: {shell: 'echo +b >> %s; echo -b >> %s; exit 3', after: [a]}\n", log, log)
	fmt.Fprintf(&b, "  c: {shell: 'echo +c >> %s; echo -c >> %s', after: [b]}\n", log, log)
	for i := 0; i < 6; i++ {
		fmt.Fprintf(&b, "  s%d: {shell: 'echo +s%d >> %s; sleep 0.2; echo -s%d >> %s'}\n", i, i, log, i, log)
	}
	wf := write(t, "held.yaml", b.String())
	if r := runBin(t, env, "submit", "--max-jobs", "2", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	type jobDoc struct {
		Name     string  `json:"name"`
		Status   string  `json:"status"`
		Exit     *string `json:"exit_status"`
		Attempt  int     `json:"attempt"`
		DRMSID   *string `json:"drms_id"`
		Stdout   *string `json:"stdout"`
		Submit   *string `json:"submitted"`
		ExitCode *int    `json:"exit_value"`
	}
	doc := func(out string) map[string]jobDoc {
		var d struct{ Jobs []jobDoc }
		if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(out), "["), "]")), &d); err != nil {
			t.Fatalf("status document: %v\n%s", err, out)
		}
		m := map[string]jobDoc{}
		for _, j := range d.Jobs {
			m[j.Name] = j
		}
		return m
	}
	// While a runs, b and c are held by the supervisor for their
	// dependencies.
	waitFor(t, "b and c held", func() bool {
		m := doc(runBin(t, env, "status", "--json", "1").stdout)
		return m["a"].Status == "running" && m["b"].Status == "queued_active" && m["c"].Status == "queued_active"
	})
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := runBin(t, env, "wait", "--json", "1")
	if r.code != 1 {
		t.Fatalf("wait: %+v", r)
	}
	m := doc(r.stdout)
	if j := m["b"]; j.Status != "done" || j.ExitCode == nil || *j.ExitCode != 3 || j.Attempt != 1 {
		t.Fatalf("b: %+v", j)
	}
	if j := m["c"]; j.Status != "failed" || j.Exit == nil || *j.Exit != "aborted_before_running" ||
		j.Attempt != 0 || j.DRMSID != nil || j.Stdout != nil || j.Submit != nil {
		t.Fatalf("c, cancelled while held: %+v, want aborted_before_running and never submitted", j)
	}
	for i := 0; i < 6; i++ {
		if j := m[fmt.Sprintf("s%d", i)]; j.Status != "done" || j.ExitCode == nil || *j.ExitCode != 0 || j.DRMSID == nil || strings.HasPrefix(*j.DRMSID, "key:") {
			t.Fatalf("s%d: %+v (drms_id: its pid)", i, j)
		}
	}
	data, _ := os.ReadFile(log)
	running, most := 0, 0
	seen := map[string]bool{}
	for _, l := range strings.Fields(string(data)) {
		if l[0] == '+' {
			running++
			seen[l[1:]] = true
		} else {
			running--
		}
		most = max(most, running)
	}
	if most > 2 {
		t.Fatalf("%d jobs ran at once with --max-jobs 2:\n%s", most, data)
	}
	if seen["c"] || !seen["b"] || len(seen) != 8 {
		t.Fatalf("jobs that ran: %v\n%s", seen, data)
	}
	if i, k := strings.Index(string(data), "-a"), strings.Index(string(data), "+b"); i < 0 || k < i {
		t.Fatalf("b started before a ended:\n%s", data)
	}
}

// TestHeldChainLeavesTheOtherSlot: through the binary, `submit --max-jobs
// 2` of a chain longer than the jobs held ahead, whose first job runs until
// the test opens a gate, and as many independent jobs after it in the
// file. The chain is held by the supervisor (queued_active) and the
// independent jobs all run on the other slot meanwhile, as the README
// says; then everything ends, the chain in order.
func TestHeldChainLeavesTheOtherSlot(t *testing.T) {
	env, _ := service(t)
	dir := t.TempDir()
	gate, log := filepath.Join(dir, "gate"), filepath.Join(dir, "log")
	t.Cleanup(func() { os.WriteFile(gate, nil, 0o600) })
	const n = 40
	var b strings.Builder
	fmt.Fprintf(&b, "jobs:\n  c00: {shell: 'while [ ! -e %s ]; do sleep 0.05; done; echo c00 >> %s'}\n", gate, log)
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "  c%02d: {shell: 'echo c%02d >> %s', after: [c%02d]}\n", i, i, log, i-1)
	}
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  i%02d: {command: ['true']}\n", i)
	}
	wf := write(t, "chain.yaml", b.String())
	if r := runBin(t, env, "submit", "--max-jobs", "2", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	var last string
	waitFor(t, "the independent jobs to end while the chain's first job runs", func() bool {
		done, held := 0, 0
		for _, j := range workflowJobs(t, env) {
			switch {
			case j.Name[0] == 'i' && j.Status == "done":
				done++
			case j.Name[0] == 'c' && j.Status == "queued_active":
				held++
			}
		}
		last = fmt.Sprintf("%d independent jobs done, %d chain jobs held", done, held)
		if done == n && held < 2 {
			t.Fatalf("%s: the chain was not held ahead", last)
		}
		return done == n
	})
	t.Log(last)
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runBin(t, env, "wait", "1"); r.code != 0 {
		t.Fatalf("wait: %+v", r)
	}
	data, _ := os.ReadFile(log)
	var want strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&want, "c%02d\n", i)
	}
	if string(data) != want.String() {
		t.Fatalf("the chain ran:\n%s\nwant each job once, in order", data)
	}
}

// TestHeldJobsStartInFileOrder: through the binary, `submit --max-jobs 1` of
// a gated job g, a job x after it, and two independent jobs y and z. y and
// z are handed to the supervisor before x (x only once g has a handle), and
// all three wait for the one slot; when g ends they start in the engine's
// order, as the README says: x, y, z (file order), not in the order the
// supervisor got them.
func TestHeldJobsStartInFileOrder(t *testing.T) {
	env, _ := service(t)
	dir := t.TempDir()
	gate, log := filepath.Join(dir, "gate"), filepath.Join(dir, "log")
	t.Cleanup(func() { os.WriteFile(gate, nil, 0o600) })
	wf := write(t, "order.yaml", fmt.Sprintf(`jobs:
  g: {shell: 'while [ ! -e %s ]; do sleep 0.05; done'}
  x: {shell: 'echo x >> %s', after: [g]}
  y: {shell: 'echo y >> %s'}
  z: {shell: 'echo z >> %s'}
`, gate, log, log, log))
	if r := runBin(t, env, "submit", "--max-jobs", "1", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	waitFor(t, "x, y and z held by the supervisor", func() bool {
		held := 0
		for _, j := range workflowJobs(t, env) {
			if j.Name != "g" && j.Status == "queued_active" {
				held++
			}
		}
		return held == 3
	})
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runBin(t, env, "wait", "1"); r.code != 0 {
		t.Fatalf("wait: %+v", r)
	}
	if data, _ := os.ReadFile(log); string(data) != "x\ny\nz\n" {
		t.Fatalf("the held jobs ran in this order:\n%s\nwant x, y, z (file order)", data)
	}
}

// TestHoldOffAsDocumented: `settings: {hold: "false"}` in the
// configuration file, as the README shows, turns the hold off: a job whose
// dependency runs is not handed to the supervisor (not_submitted, no
// attempt), and runs once it ended.
func TestHoldOffAsDocumented(t *testing.T) {
	env, _ := service(t)
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	env = append(env, "SOMAFLOW_CONFIG="+write(t, "cfg.yaml", "settings: {hold: \"false\"}\n"))
	wf := write(t, "chain.yaml", fmt.Sprintf("jobs:\n  a: {shell: 'while [ ! -e %s ]; do sleep 0.05; done'}\n  b: {command: [\"true\"], after: [a]}\n", gate))
	if r := runBin(t, env, "submit", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	jobs := func() map[string]jobDoc {
		m := map[string]jobDoc{}
		for _, j := range workflowJobs(t, env) {
			m[j.Name] = j
		}
		return m
	}
	waitFor(t, "a running", func() bool { return jobs()["a"].Status == "running" })
	// Long enough for a hold to show: the engine hands held jobs with a's
	// submission, in the same cycle.
	time.Sleep(500 * time.Millisecond)
	if b := jobs()["b"]; b.Status != "not_submitted" || b.Attempt != 0 {
		t.Fatalf("with hold off, b while a runs: %+v, want not_submitted with no attempt", b)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runBin(t, env, "wait", "1"); r.code != 0 || !strings.Contains(r.stdout, "2 succeeded") {
		t.Fatalf("wait: %+v", r)
	}
}

// TestOwnLimitAsDocumented: through the binary, as the README says of
// --max-jobs, a workflow submitted with `--max-jobs 2` runs two at a time
// as asked, and a workflow submitted without it shares the CPUs with the
// others: it runs at once, although the first one's jobs, held by the
// supervisor for their limit, all wait for a gate.
func TestOwnLimitAsDocumented(t *testing.T) {
	env, _ := service(t)
	gate := filepath.Join(t.TempDir(), "gate")
	t.Cleanup(func() { os.WriteFile(gate, nil, 0o600) })
	var b strings.Builder
	b.WriteString("jobs:\n")
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&b, "  l%02d: {shell: 'while [ ! -e %s ]; do sleep 0.05; done'}\n", i, gate)
	}
	if r := runBin(t, env, "submit", "--max-jobs", "2", write(t, "limited.yaml", b.String())); r.code != 0 {
		t.Fatalf("submit --max-jobs 2: %+v", r)
	}
	waitFor(t, "the limited workflow's jobs held by the supervisor", func() bool {
		held := 0
		for _, j := range workflowJobs(t, env) {
			if j.Status == "queued_active" {
				held++
			}
		}
		return held >= 30
	})
	if r := runBin(t, env, "submit", write(t, "shared.yaml", "jobs:\n  a: {command: ['true']}\n  b: {command: ['true']}\n")); r.code != 0 || strings.TrimSpace(r.stdout) != "2" {
		t.Fatalf("submit: %+v", r)
	}
	if r := runBin(t, env, "wait", "--timeout", "30", "2"); r.code != 0 || !strings.Contains(r.stdout, "2 succeeded") {
		t.Fatalf("wait for the workflow without a limit while the limited one's jobs wait for the gate: %+v", r)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runBin(t, env, "wait", "1"); r.code != 0 || !strings.Contains(r.stdout, "40 succeeded") {
		t.Fatalf("wait 1: %+v", r)
	}
}

// jobDoc is what the hold tests read of a job in the status document.
type jobDoc struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Attempt int    `json:"attempt"`
}

// workflowJobs runs `somaflow status --json 1` and returns its jobs.
func workflowJobs(t *testing.T, env []string) []jobDoc {
	t.Helper()
	var d struct{ Jobs []jobDoc }
	out := runBin(t, env, "status", "--json", "1").stdout
	if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(out), "["), "]")), &d); err != nil {
		t.Fatalf("status document: %v\n%s", err, out)
	}
	return d.Jobs
}
