package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/local"
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/store"
)

type harness struct {
	t      *testing.T
	st     *store.Store
	be     drms.Backend
	e      *Engine
	cancel context.CancelFunc
	done   chan error
	dir    string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, st: st, dir: dir}
	h.be = local.New(drms.Config{StateDir: st.Dir})
	h.start()
	t.Cleanup(func() { h.stopEngine(); st.Close() })
	return h
}

// newHarnessWithSlots is newHarness with a local backend of n slots.
func newHarnessWithSlots(t *testing.T, n int) *harness {
	t.Helper()
	h := newHarness(t)
	h.stopEngine()
	h.be = local.New(drms.Config{StateDir: h.st.Dir, Settings: map[string]string{"max-jobs": fmt.Sprint(n)}})
	h.start()
	return h
}

func (h *harness) start() {
	h.e = New(h.st, h.be, Options{PollInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.e.Run(ctx) }()
}

func (h *harness) stopEngine() {
	if h.cancel != nil {
		h.cancel()
		if err := <-h.done; err != nil {
			h.t.Errorf("engine: %v", err)
		}
		h.cancel = nil
	}
}

// wf builds a workflow of shell jobs named by the keys of cmds order.
type jobDef struct {
	name  string
	shell string
	prio  int
	after []string
}

func build(jobs []jobDef) *model.Workflow {
	w := &model.Workflow{}
	idx := map[string]int{}
	for i, j := range jobs {
		name := j.name
		mj := &model.Job{Name: &name, Priority: j.prio}
		if j.shell == "<barrier>" {
			mj.Class = model.ClassBarrier
		} else {
			mj.Command = []model.Arg{{Value: "sh"}, {Value: "-c"}, {Value: j.shell}}
		}
		w.Jobs = append(w.Jobs, mj)
		idx[j.name] = i
	}
	for i, j := range jobs {
		for _, a := range j.after {
			w.Dependencies = append(w.Dependencies, model.Dependency{
				From: model.Element{Kind: model.JobElement, Index: idx[a]},
				To:   model.Element{Kind: model.JobElement, Index: i},
			})
		}
	}
	return w
}

func (h *harness) submit(w *model.Workflow, maxJobs int) int64 {
	h.t.Helper()
	id, err := h.st.CreateWorkflow(context.Background(), store.NewWorkflow{
		Def: w, Backend: "local", MaxJobs: maxJobs, Expiration: time.Now().Add(7 * 24 * time.Hour),
		Cwd: h.dir, Environ: os.Environ(),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.e.Wake()
	return id
}

// waitFor waits until cond holds on the workflow's rows.
func (h *harness) waitFor(id int64, what string, cond func(w *store.Workflow, jobs []store.Job) bool) []store.Job {
	h.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		ch := h.e.Changed()
		w, err := h.st.GetWorkflow(context.Background(), id, false)
		if err == nil {
			js, err := h.st.Jobs(context.Background(), id)
			if err == nil && cond(w, js) {
				return js
			}
		}
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			h.t.Fatalf("workflow %d: timed out waiting for %s", id, what)
		}
	}
}

func (h *harness) waitDone(id int64) []store.Job {
	return h.waitFor(id, "workflow_done", func(w *store.Workflow, _ []store.Job) bool { return w.Status == model.WorkflowDone })
}

func outcome(j store.Job) string {
	ev := "null"
	if j.ExitValue != nil {
		ev = fmt.Sprint(*j.ExitValue)
	}
	sig := ""
	if j.Signal != nil {
		sig = "/" + *j.Signal
	}
	return fmt.Sprintf("%s/%s/%s%s", j.Status, deref(j.ExitStatus), ev, sig)
}

func expectOutcomes(t *testing.T, jobs []store.Job, want map[string]string) {
	t.Helper()
	for _, j := range jobs {
		if w, ok := want[j.Name]; ok && outcome(j) != w {
			t.Errorf("job %s: got %s, want %s (reason %q)", j.Name, outcome(j), w, deref(j.Reason))
		}
	}
}

const (
	ok     = "done/finished_regularly/0"
	abort  = "failed/aborted_before_running/null"
	killed = "failed/killed_by_user/null"
)

func TestChainFanDiamond(t *testing.T) {
	h := newHarness(t)
	log := filepath.Join(h.dir, "order")
	app := func(s string) string { return "echo " + s + " >> " + log }
	id := h.submit(build([]jobDef{
		{name: "a", shell: app("a")},
		{name: "b", shell: app("b"), after: []string{"a"}},
		{name: "c", shell: app("c"), after: []string{"a"}},
		{name: "d", shell: app("d"), after: []string{"b", "c"}},
		{name: "e", shell: app("e"), after: []string{"d"}},
	}), 2)
	jobs := h.waitDone(id)
	expectOutcomes(t, jobs, map[string]string{"a": ok, "b": ok, "c": ok, "d": ok, "e": ok})
	data, _ := os.ReadFile(log)
	lines := strings.Fields(string(data))
	if len(lines) != 5 || lines[0] != "a" || lines[3] != "d" || lines[4] != "e" {
		t.Fatalf("order: %v", lines)
	}
}

func TestFailurePropagation(t *testing.T) {
	h := newHarness(t)
	id := h.submit(build([]jobDef{
		{name: "a", shell: "true"},
		{name: "bad", shell: "exit 3", after: []string{"a"}},
		{name: "sig", shell: "kill -KILL $$"},
		{name: "dep1", shell: "true", after: []string{"bad"}},
		{name: "dep2", shell: "true", after: []string{"dep1"}},
		{name: "dep3", shell: "true", after: []string{"sig"}},
		{name: "indep", shell: "true", after: []string{"a"}},
	}), 0)
	jobs := h.waitDone(id)
	expectOutcomes(t, jobs, map[string]string{
		"a": ok, "bad": "done/finished_regularly/3", "sig": "done/finished_signal/null/SIGKILL",
		"dep1": abort, "dep2": abort, "dep3": abort, "indep": ok,
	})
}

func TestCouldNotStart(t *testing.T) {
	h := newHarness(t)
	w := build([]jobDef{{name: "x", shell: "true"}, {name: "after", shell: "true", after: []string{"x"}}})
	w.Jobs[0].Command = []model.Arg{{Value: "no-such-command-somaflow"}}
	id := h.submit(w, 0)
	jobs := h.waitDone(id)
	expectOutcomes(t, jobs, map[string]string{"x": "failed/aborted/null", "after": abort})
	if !strings.Contains(deref(jobs[0].Reason), "not found") {
		t.Fatalf("reason: %q", deref(jobs[0].Reason))
	}
}

func TestPriorities(t *testing.T) {
	h := newHarness(t)
	log := filepath.Join(h.dir, "order")
	var jobs []jobDef
	for i := 0; i < 6; i++ {
		jobs = append(jobs, jobDef{name: fmt.Sprint("p", i), shell: "echo " + fmt.Sprint(i) + " >> " + log, prio: i})
	}
	id := h.submit(build(jobs), 1)
	h.waitDone(id)
	data, _ := os.ReadFile(log)
	if got := strings.Join(strings.Fields(string(data)), ","); got != "5,4,3,2,1,0" {
		t.Fatalf("priority order: %s", got)
	}
}

func TestGroupsAndBarriers(t *testing.T) {
	h := newHarness(t)
	log := filepath.Join(h.dir, "order")
	app := func(s string) string { return "echo " + s + " >> " + log }
	w := build([]jobDef{
		{name: "first", shell: app("first")},
		{name: "g1", shell: app("g1")},
		{name: "g2", shell: app("g2")},
		{name: "n1", shell: app("n1")},
		{name: "bar", shell: "<barrier>", after: []string{"first"}},
		{name: "last", shell: app("last")},
	})
	// outer = {g1, g2, inner}, inner = {n1}; first -> outer -> last; bar after first.
	w.Groups = []*model.Group{
		{Name: "outer", Elements: []model.Element{{Index: 1}, {Index: 2}, {Kind: model.GroupElement, Index: 1}}},
		{Name: "inner", Elements: []model.Element{{Index: 3}}},
	}
	w.Dependencies = append(w.Dependencies,
		model.Dependency{From: model.Element{Index: 0}, To: model.Element{Kind: model.GroupElement, Index: 0}},
		model.Dependency{From: model.Element{Kind: model.GroupElement, Index: 0}, To: model.Element{Index: 5}},
	)
	id := h.submit(w, 1)
	jobs := h.waitDone(id)
	expectOutcomes(t, jobs, map[string]string{"first": ok, "g1": ok, "g2": ok, "n1": ok, "bar": ok, "last": ok})
	data, _ := os.ReadFile(log)
	got := strings.Fields(string(data))
	if len(got) != 5 || got[0] != "first" || got[4] != "last" {
		t.Fatalf("group order: %v", got)
	}
}

func TestGroupFailureAborts(t *testing.T) {
	h := newHarness(t)
	w := build([]jobDef{{name: "in1", shell: "exit 1"}, {name: "in2", shell: "true"}, {name: "after", shell: "true"}})
	w.Groups = []*model.Group{{Name: "g", Elements: []model.Element{{Index: 0}, {Index: 1}}}}
	w.Dependencies = append(w.Dependencies, model.Dependency{From: model.Element{Kind: model.GroupElement}, To: model.Element{Index: 2}})
	id := h.submit(w, 0)
	expectOutcomes(t, h.waitDone(id), map[string]string{"in1": "done/finished_regularly/1", "in2": ok, "after": abort})
}

func TestStopRestart(t *testing.T) {
	h := newHarness(t)
	flag := filepath.Join(h.dir, "flag")
	id := h.submit(build([]jobDef{
		{name: "quick", shell: "true"},
		{name: "long", shell: "test -e " + flag + " || exec sleep 60", after: []string{"quick"}},
		{name: "next", shell: "true", after: []string{"long"}},
	}), 0)
	h.waitFor(id, "long running", func(_ *store.Workflow, js []store.Job) bool { return js[1].Status == model.JobRunning })
	if err := h.st.AddIntent(context.Background(), id, store.IntentStop, false); err != nil {
		t.Fatal(err)
	}
	h.e.Wake()
	jobs := h.waitDone(id)
	expectOutcomes(t, jobs, map[string]string{"quick": ok, "long": killed, "next": abort})
	attempt := jobs[1].Attempt

	os.WriteFile(flag, nil, 0o644)
	if err := h.st.AddIntent(context.Background(), id, store.IntentRestart, false); err != nil {
		t.Fatal(err)
	}
	h.e.Wake()
	jobs = h.waitFor(id, "restarted and done", func(w *store.Workflow, js []store.Job) bool {
		return w.Status == model.WorkflowDone && js[2].Status == model.JobDone
	})
	expectOutcomes(t, jobs, map[string]string{"quick": ok, "long": ok, "next": ok})
	if jobs[0].Attempt != 1 || jobs[1].Attempt != attempt+1 {
		t.Fatalf("attempts: quick %d (want 1), long %d (want %d)", jobs[0].Attempt, jobs[1].Attempt, attempt+1)
	}
}

func TestDeleteAndExpiration(t *testing.T) {
	h := newHarness(t)
	id := h.submit(build([]jobDef{{name: "long", shell: "exec sleep 60"}}), 0)
	h.waitFor(id, "running", func(_ *store.Workflow, js []store.Job) bool { return js[0].Status == model.JobRunning })
	pidStr := ""
	js, _ := h.st.Jobs(context.Background(), id)
	pidStr = js[0].DRMSID
	if err := h.st.AddIntent(context.Background(), id, store.IntentDelete, false); err != nil {
		t.Fatal(err)
	}
	h.e.Wake()
	h.waitGone(id)
	if _, err := os.Stat("/proc/" + pidStr); err == nil {
		// the process may linger as a zombie for a moment only
		data, _ := os.ReadFile("/proc/" + pidStr + "/stat")
		if !strings.Contains(string(data), ") Z") {
			t.Fatalf("job process %s still alive after delete", pidStr)
		}
	}
	id2 := h.submit(build([]jobDef{{name: "x", shell: "true"}}), 0)
	h.waitDone(id2)
	if err := h.st.SetExpiration(context.Background(), id2, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	h.e.Wake()
	h.waitGone(id2)
}

func (h *harness) waitGone(id int64) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ch := h.e.Changed()
		if _, err := h.st.GetWorkflow(context.Background(), id, false); err != nil {
			return
		}
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		}
	}
	h.t.Fatalf("workflow %d was not removed", id)
}

func TestParamLinks(t *testing.T) {
	h := newHarness(t)
	out := filepath.Join(h.dir, "got")
	w := build([]jobDef{
		{name: "producer", shell: `echo '{"files": ["a.txt", "b.txt"], "n": 7}' > "$SOMAWF_OUTPUT_PARAMS"`},
		{name: "consumer"},
	})
	w.Jobs[0].HasOutputs = true
	w.Jobs[1].Command = []model.Arg{{Value: "sh"}, {Value: "-c"}, {Value: `echo "$0 $1" > ` + out}, {Value: "%(second)s"}, {Value: "n=%(count)s"}}
	w.Jobs[1].ParamDict = map[string]json.RawMessage{"second": json.RawMessage(`"unset"`), "count": json.RawMessage(`0`)}
	w.ParamLinks = []model.ParamLink{
		{Dest: 1, DestParam: "second", Src: 0, SrcParam: "files", Transform: &model.LinkTransform{Name: "list_to_sequence", Args: []json.RawMessage{json.RawMessage("1")}}},
		{Dest: 1, DestParam: "count", Src: 0, SrcParam: "n"},
	}
	w.Dependencies = append(w.Dependencies, model.Dependency{From: model.Element{Index: 0}, To: model.Element{Index: 1}})
	id := h.submit(w, 0)
	expectOutcomes(t, h.waitDone(id), map[string]string{"producer": ok, "consumer": ok})
	data, _ := os.ReadFile(out)
	if string(data) != "b.txt n=7\n" {
		t.Fatalf("consumer saw %q", data)
	}
}

func TestEnvPrecedence(t *testing.T) {
	h := newHarness(t)
	out := filepath.Join(h.dir, "env")
	w := build([]jobDef{{name: "a", shell: `echo "$A $B $C" > ` + out}})
	w.Env = map[string]string{"A": "wf", "B": "wf"}
	w.Jobs[0].Env = map[string]string{"B": "job", "C": "job"}
	id := h.submit(w, 0)
	h.waitDone(id)
	if data, _ := os.ReadFile(out); string(data) != "wf job job\n" {
		t.Fatalf("env: %q", data)
	}
}

func TestEngineRestartMidway(t *testing.T) {
	h := newHarness(t)
	id := h.submit(build([]jobDef{
		{name: "done1", shell: "true"},
		{name: "long", shell: "exec sleep 60", after: []string{"done1"}},
		{name: "after", shell: "true", after: []string{"long"}},
		{name: "other", shell: "true", after: []string{"done1"}},
	}), 0)
	h.waitFor(id, "long running, other done", func(_ *store.Workflow, js []store.Job) bool {
		return js[1].Status == model.JobRunning && js[3].Status == model.JobDone
	})
	h.stopEngine()
	// A new engine with a new backend: the old process's children are lost.
	h.be = local.New(drms.Config{StateDir: h.st.Dir})
	h.start()
	jobs := h.waitDone(id)
	expectOutcomes(t, jobs, map[string]string{"done1": ok, "long": "failed/exit_status_undetermined/null", "after": abort, "other": ok})
}

// Two workflows share the local backend's slots: with 2, never more than
// 2 of their jobs run at once (soma-workflow's local scheduler counts CPUs
// across workflows; each workflow once had all the CPUs to itself).
func TestSlotsSharedAcrossWorkflows(t *testing.T) {
	h := newHarnessWithSlots(t, 2)
	log := filepath.Join(h.dir, "times")
	var jobs []jobDef
	for i := range 4 {
		jobs = append(jobs, jobDef{name: fmt.Sprint("j", i), shell: fmt.Sprintf("echo start $(date +%%s%%N) >> %s; sleep 0.2; echo end $(date +%%s%%N) >> %s", log, log)})
	}
	a, b := h.submit(build(jobs), 0), h.submit(build(jobs), 0)
	h.waitDone(a)
	h.waitDone(b)
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	type ev struct {
		t     int64
		delta int
	}
	var evs []ev
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var kind string
		var ts int64
		fmt.Sscan(line, &kind, &ts)
		d := 1
		if kind == "end" {
			d = -1
		}
		evs = append(evs, ev{ts, d})
	}
	if len(evs) != 16 {
		t.Fatalf("%d start/end records, want 16:\n%s", len(evs), data)
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].t < evs[j].t || evs[i].t == evs[j].t && evs[i].delta < evs[j].delta })
	running, most := 0, 0
	for _, e := range evs {
		running += e.delta
		most = max(most, running)
	}
	if most > 2 {
		t.Fatalf("%d jobs ran at once across two workflows on 2 slots", most)
	}
	if most < 2 {
		t.Fatalf("at most %d job ran at once: the slots were not used", most)
	}
}

// A job with retries runs again after a failed attempt, up to its retries;
// its dependants wait for the last attempt (issue 25.2).
func TestRetries(t *testing.T) {
	h := newHarness(t)
	count := filepath.Join(h.dir, "count")
	w := build([]jobDef{
		// Fails twice, then succeeds.
		{name: "flaky", shell: fmt.Sprintf("echo x >> %s; echo try $(wc -l < %s); [ $(wc -l < %s) -ge 3 ]", count, count, count)},
		{name: "after", shell: "true", after: []string{"flaky"}},
		{name: "hopeless", shell: "exit 5"},
		{name: "never", shell: "true", after: []string{"hopeless"}},
		{name: "noretries", shell: "exit 6"},
	})
	w.Jobs[0].Retries, w.Jobs[2].Retries = 2, 1
	jobs := h.waitDone(h.submit(w, 0))
	expectOutcomes(t, jobs, map[string]string{
		"flaky": ok, "after": ok, "hopeless": "done/finished_regularly/5", "never": abort, "noretries": "done/finished_regularly/6",
	})
	attempts := map[string]int{}
	for _, j := range jobs {
		attempts[j.Name] = j.Attempt
	}
	if attempts["flaky"] != 3 || attempts["hopeless"] != 2 || attempts["noretries"] != 1 || attempts["after"] != 1 {
		t.Fatalf("attempts: %v; want flaky 3, hopeless 2 (1 retry), noretries 1, after 1", attempts)
	}
	// Each attempt has its own log.
	for a := 1; a <= 3; a++ {
		got, err := os.ReadFile(filepath.Join(h.st.Dir, "logs", "1", fmt.Sprintf("%d.%d.out", jobs[0].ID, a)))
		if err != nil || string(got) != fmt.Sprintf("try %d\n", a) {
			t.Errorf("log of flaky's attempt %d: %q, %v", a, got, err)
		}
	}
}

// Local resources (issue 25.1): a job asking 2 CPUs takes 2 of the
// backend's slots; a job past its walltime is killed, its reason says so.
func TestLocalResources(t *testing.T) {
	h := newHarnessWithSlots(t, 2)
	log := filepath.Join(h.dir, "times")
	rec := func(name string) string {
		return fmt.Sprintf("echo start %s $(date +%%s%%N) >> %s; sleep 0.3; echo end %s $(date +%%s%%N) >> %s", name, log, name, log)
	}
	w := build([]jobDef{{name: "big", shell: rec("big")}, {name: "small1", shell: rec("small1")}, {name: "small2", shell: rec("small2")},
		{name: "slow", shell: "sleep 30", after: []string{"big", "small1", "small2"}}})
	w.Jobs[0].Resources.CPUs = 2
	w.Jobs[3].Resources.Walltime = 1
	jobs := h.waitDone(h.submit(w, 0))
	var slow store.Job
	for _, j := range jobs {
		if j.Name == "slow" {
			slow = j
		}
	}
	if slow.ExitStatus == nil || *slow.ExitStatus != model.ExitFinishedSignal || slow.Reason == nil || !strings.Contains(*slow.Reason, "walltime of 1s exceeded") {
		t.Fatalf("job past its walltime: %s, reason %v", outcome(slow), deref(slow.Reason))
	}
	data, _ := os.ReadFile(log)
	running := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		running[f[1]] = f[0] == "start"
		if running["big"] && (running["small1"] || running["small2"]) {
			t.Fatalf("a 2-CPU job ran with another on 2 slots:\n%s", data)
		}
	}
}
