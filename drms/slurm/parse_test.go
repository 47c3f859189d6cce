package slurm

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/batch"
	"github.com/somaflow/somaflow/model"
)

func TestParseSqueue(t *testing.T) {
	// squeue -h -r -o '%A|%F|%K|%T|%r|%S|%e|%N|%j' as 22.05 prints it: plain
	// jobs have %K N/A; array tasks are listed one per line (-r), pending
	// ones under the array's own id, the others under their own.
	out := `101|101|N/A|RUNNING|None|2026-11-27T14:17:28|2026-11-27T15:17:28|node01|sf-e1-1-2-1
102|102|N/A|PENDING|JobHeldUser|N/A|N/A||sf-e1-1-3-1
103|103|N/A|PENDING|Resources|2026-11-27T15:00:00|N/A||name with | pipe
garbage line
17|16|1|COMPLETED|None|2026-11-27T14:17:28|2026-11-27T14:17:29|node[01-02]|arr
16|16|2|PENDING|Resources|N/A|N/A||arr
16|16|3|PENDING|Resources|N/A|N/A||arr
20|20|0-3|PENDING|Resources|N/A|N/A||unexpanded

`
	jobs, bad := parseSqueue(out)
	if bad != 2 || len(jobs) != 7 {
		t.Fatalf("got %d jobs, %d bad: %+v", len(jobs), bad, jobs)
	}
	if j := jobs["101"]; j.State != "RUNNING" || j.Name != "sf-e1-1-2-1" || j.Start.IsZero() || j.Start.Hour() != 14 || !allocated(j.Nodes) || j.Array != "" {
		t.Errorf("101: %+v", j)
	}
	if j := jobs["102"]; !j.Start.IsZero() || j.Reason != "JobHeldUser" || allocated(j.Nodes) {
		t.Errorf("102: %+v", j)
	}
	if j := jobs["103"]; j.Name != "name with | pipe" {
		t.Errorf("103: %+v", j)
	}
	if j := jobs["16_1"]; j.State != "COMPLETED" || j.Array != "16" || j.Task != "1" || jobs["17"].Task != "1" {
		t.Errorf("16_1: %+v / 17: %+v", j, jobs["17"])
	}
	if j := jobs["16_3"]; j.State != "PENDING" || j.Task != "3" {
		t.Errorf("16_3: %+v", j)
	}
	if _, ok := jobs["16"]; ok {
		t.Error("a pending task keyed by the array's id")
	}
	if got := strings.Join(expandTasks("0,2-4%2"), ","); got != "0,2,3,4" {
		t.Errorf("expandTasks: %s", got)
	}
	if expandTasks("x") != nil || expandTasks("5-2") != nil {
		t.Error("expandTasks accepted garbage")
	}
	sc := parseScontrol(strings.Replace(scontrolLine("17", "arr", "COMPLETED", "None", "0:0", "node01"), " UserId", " ArrayJobId=16 ArrayTaskId=1 UserId", 1) + "\n" +
		strings.Replace(scontrolLine("16", "arr", "CANCELLED", "None", "0:0", "(null)"), " UserId", " ArrayJobId=16 ArrayTaskId=2,4-5 UserId", 1))
	if sc["16_1"].ID != "17" || sc["17"].State != "COMPLETED" || sc["16_4"].State != "CANCELLED" || sc["16_5"].ID != "16" || len(sc) != 6 {
		t.Errorf("scontrol array records: %+v", sc)
	}
	if p, final := phaseOf("PENDING", "JobHeldUser"); p != drms.Held || final {
		t.Errorf("held: %v %v", p, final)
	}
	// Who holds (squeue's reason, from Slurm's job_state_reason names).
	for _, c := range []struct {
		state, reason string
		want          drms.By
	}{
		{"PENDING", "JobHeldUser", drms.ByUser},
		{"PENDING", "JobHeldAdmin", drms.BySystem},
		{"REQUEUE_HOLD", "JobHeldAdmin", drms.BySystem},
		{"SUSPENDED", "None", drms.BySystem},
	} {
		if got := heldBy(c.state, c.reason); got != c.want {
			t.Errorf("heldBy(%s, %s) = %v, want %v", c.state, c.reason, got, c.want)
		}
	}
	if p, final := phaseOf("PENDING", "Priority"); p != drms.Queued || final {
		t.Errorf("pending: %v %v", p, final)
	}
	if p, final := phaseOf("COMPLETING", "None"); p != drms.Running || final {
		t.Errorf("completing: %v %v", p, final)
	}
	for _, s := range []string{"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "PREEMPTED", "DEADLINE"} {
		if _, final := phaseOf(s, ""); !final {
			t.Errorf("%s not final", s)
		}
	}
}

// scontrol show job -o lines, written from the documented format (22.05),
// one per outcome; the ones one node cannot produce (NODE_FAIL, BOOT_FAIL,
// PREEMPTED, OUT_OF_MEMORY) included.
func scontrolLine(id, name, state, reason, exit, nodes string) string {
	return "JobId=" + id + " JobName=" + name + " UserId=alice(1000) GroupId=alice(1000) MCS_label=N/A Priority=4294901758 Nice=0 Account=(null) QOS=(null) " +
		"JobState=" + state + " Reason=" + reason + " Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=" + exit +
		" RunTime=00:01:05 TimeLimit=00:01:00 TimeMin=N/A SubmitTime=2026-11-27T14:17:33 EligibleTime=2026-11-27T14:17:33 AccrueTime=2026-11-27T14:17:33 " +
		"StartTime=2026-11-27T14:17:33 EndTime=2026-11-27T14:18:38 Deadline=N/A Partition=debug NodeList=" + nodes + " BatchHost=" + nodes + " NumNodes=1 " +
		"Command=/home/alice/my job/script.sh WorkDir=/home/alice/my dir StdErr=/x/y.out StdIn=/dev/null StdOut=/x/y.out Power="
}

func TestRecordOutcomes(t *testing.T) {
	cases := []struct {
		state, reason, exit string
		started, mem, ours  bool
		status, exitStatus  string
		exitValue           *int
		signal, reasonHas   string
	}{
		{"COMPLETED", "None", "0:0", true, false, false, model.JobDone, model.ExitFinishedRegular, intp(0), "", ""},
		{"FAILED", "NonZeroExitCode", "3:0", true, false, false, model.JobDone, model.ExitFinishedRegular, intp(3), "", ""},
		{"FAILED", "JobLaunchFailure", "0:9", true, false, false, model.JobDone, model.ExitFinishedSignal, nil, "SIGKILL", ""},
		{"FAILED", "JobLaunchFailure", "0:9", true, true, false, model.JobDone, model.ExitFinishedSignal, nil, "SIGKILL", "memory limit"},
		{"FAILED", "NonZeroExitCode", "127:0", false, false, false, model.JobFailed, model.ExitAborted, nil, "", "before somaflow exec-job started"},
		{"TIMEOUT", "TimeLimit", "0:15", true, false, false, model.JobDone, model.ExitFinishedSignal, nil, "SIGTERM", "time limit"},
		{"OUT_OF_MEMORY", "OutOfMemory", "0:125", true, false, false, model.JobDone, model.ExitFinishedSignal, nil, "SIG125", "memory limit"},
		{"OUT_OF_MEMORY", "OutOfMemory", "0:0", true, false, false, model.JobDone, model.ExitFinishedSignal, nil, "SIGKILL", "memory limit"},
		{"CANCELLED", "None", "0:15", true, false, false, model.JobDone, model.ExitFinishedSignal, nil, "SIGTERM", "cancelled outside somaflow"},
		{"CANCELLED", "None", "0:15", true, false, true, model.JobDone, model.ExitFinishedSignal, nil, "SIGTERM", ""},
		{"CANCELLED", "Priority", "0:0", false, false, false, model.JobFailed, model.ExitFinishedUnclear, nil, "", "cancelled outside somaflow while queued"},
		{"CANCELLED", "DependencyNeverSatisfied", "0:0", false, false, false, model.JobFailed, model.ExitAbortedBefore, nil, "", "dependency"},
		{"NODE_FAIL", "NodeDown", "0:0", true, false, false, model.JobFailed, model.ExitFinishedUnclear, nil, "", "NODE_FAIL"},
		{"BOOT_FAIL", "None", "0:0", false, false, false, model.JobFailed, model.ExitFinishedUnclear, nil, "", "BOOT_FAIL"},
		{"PREEMPTED", "None", "0:15", true, false, false, model.JobFailed, model.ExitFinishedUnclear, nil, "", "PREEMPTED"},
	}
	for _, c := range cases {
		nodes := ""
		if c.started {
			nodes = "node01"
		}
		recs := parseScontrol(scontrolLine("77", "sf-e1-1-2-1", c.state, c.reason, c.exit, nodes) + "\n")
		r, ok := recs["77"]
		if !ok {
			t.Fatalf("%s: not parsed", c.state)
		}
		if r.State != c.state || r.Name != "sf-e1-1-2-1" || r.Reason != c.reason || r.Start.IsZero() || r.End.IsZero() || *r.Usage.WallS != 65 {
			t.Errorf("%s: record %+v", c.state, r)
		}
		if r.Allocated != c.started {
			t.Errorf("%s: allocated %v", c.state, r.Allocated)
		}
		o := recordOutcome(r, c.started, c.mem, c.ours)
		name := c.state + "/" + c.reason + "/" + c.exit
		if o.Status != c.status || o.ExitStatus != c.exitStatus || o.Signal != c.signal {
			t.Errorf("%s: got %s/%s sig %q reason %q", name, o.Status, o.ExitStatus, o.Signal, o.Reason)
		}
		if (c.exitValue == nil) != (o.ExitValue == nil) || (c.exitValue != nil && *c.exitValue != *o.ExitValue) {
			t.Errorf("%s: exit value %v", name, o.ExitValue)
		}
		if c.reasonHas == "" && o.Reason != "" || !strings.Contains(o.Reason, c.reasonHas) {
			t.Errorf("%s: reason %q, want %q", name, o.Reason, c.reasonHas)
		}
		if c.started && o.Started.IsZero() || !c.started && !o.Started.IsZero() {
			t.Errorf("%s: started %v", name, o.Started)
		}
		if o.Usage.Raw["slurm.ExitCode"] != c.exit {
			t.Errorf("%s: raw %v", name, o.Usage.Raw)
		}
		// A cancel by us while queued ends aborted_before_running once the
		// engine applies its kill intent.
		// A job cancelled once Slurm gave it nodes, before exec-job began,
		// counts as started.
		if c.state == "CANCELLED" && c.started {
			if r := drms.Resolve(true, recordOutcome(r, false, false, true)); r.ExitStatus != model.ExitKilledByUser {
				t.Errorf("cancel of an allocated job by us: %s", r.ExitStatus)
			}
		}
		if c.state == "CANCELLED" && !c.started {
			if r := drms.Resolve(true, recordOutcome(r, false, false, true)); r.ExitStatus != model.ExitAbortedBefore {
				t.Errorf("cancel while queued by us: %s", r.ExitStatus)
			}
		}
	}
	// Values with spaces stay whole.
	f := parseScontrolLine(scontrolLine("1", "x", "RUNNING", "None", "0:0", "node01"))
	if f["Command"] != "/home/alice/my job/script.sh" || f["WorkDir"] != "/home/alice/my dir" || f["Power"] != "" {
		t.Errorf("fields: %q %q", f["Command"], f["WorkDir"])
	}
}

func intp(n int) *int { return &n }

func TestParseSacct(t *testing.T) {
	// sacct -n -P -o JobID,State,ExitCode,Elapsed,TotalCPU,MaxRSS,Start,End,Reason,NodeList,JobName
	out := `228|FAILED|3:0|00:00:00|00:00.001||2026-11-27T14:17:33|2026-11-27T14:17:33|None|node01|sf-e1-1-1-1
228.batch|FAILED|3:0|00:00:00|00:00.001|1024K|2026-11-27T14:17:33|2026-11-27T14:17:33||node01|batch
229|FAILED|0:9|00:00:00|00:00.002||2026-11-27T14:17:33|2026-11-27T14:17:33|None|node01|sf-e1-1-2-1
229.batch|CANCELLED|0:9|00:00:00|00:00.002|2M|2026-11-27T14:17:33|2026-11-27T14:17:33||node01|batch
230|COMPLETED|0:0|00:00:02|00:01.163||2026-11-27T14:17:33|2026-11-27T14:17:35|None|node01|sf-e1-1-3-1
230.batch|COMPLETED|0:0|00:00:02|00:01.163|3068K|2026-11-27T14:17:33|2026-11-27T14:17:35||node01|batch
230.0|COMPLETED|0:0|00:00:01|00:00.500|5000K|2026-11-27T14:17:33|2026-11-27T14:17:34||node01|true
231|CANCELLED by 1000|0:0|00:00:00|00:00:00||None|2026-11-27T14:17:40|Priority|None assigned|sf-e1-1-4-1
232|TIMEOUT|0:0|1-02:03:04|01:02:03||2026-11-27T14:17:33|2026-11-28T16:20:37|TimeLimit|node01|sf-e1-1-5-1
232.batch|CANCELLED|0:15|1-02:03:04|01:02:03||2026-11-27T14:17:33|2026-11-28T16:20:37||node01|batch
234|CANCELLED by 0|0:0|00:00:09|00:00:00||2026-11-27T14:17:33|2026-11-27T14:17:42|None|node01|sf-e1-1-7-1
234.batch|CANCELLED|0:9|00:00:09|00:00:00|1500K|2026-11-27T14:17:33|2026-11-27T14:17:42||node01|batch
233|RUNNING|0:0|00:00:05|00:00:00||2026-11-27T14:17:33|Unknown|None|node01|sf-e1-1-6-1
`
	recs := parseSacct(out)
	// An array task (with JobIDRaw, the 12th field) is also keyed by its own id.
	arr := parseSacct("16_1|COMPLETED|0:0|00:00:01|00:00.100||2026-11-27T14:17:33|2026-11-27T14:17:34|None|node01|sf-e1-1-a3-1|17\n" +
		"16_1.batch|COMPLETED|0:0|00:00:01|00:00.100|2000K|2026-11-27T14:17:33|2026-11-27T14:17:34||node01|batch|17.batch\n" +
		"16_[2-5]|PENDING|0:0|00:00:00|00:00:00||Unknown|Unknown|None|None assigned|sf-e1-1-a3-1|16\n")
	if r := arr["16_1"]; len(arr) != 2 || r.State != "COMPLETED" || *r.Usage.MaxRSSKiB != 2000 || arr["17"].Name != "sf-e1-1-a3-1" {
		t.Errorf("array task in sacct: %+v", arr)
	}
	if len(recs) != 7 {
		t.Fatalf("%d records: %+v", len(recs), recs)
	}
	r := recs["230"]
	if r.State != "COMPLETED" || *r.Usage.MaxRSSKiB != 5000 || *r.Usage.WallS != 2 || *r.Usage.CPUS < 1.16 || r.Usage.Raw["slurm.MaxRSS"] != "5000K" {
		t.Errorf("230: %+v", r)
	}
	if r := recs["229"]; r.Signal != 9 || *r.Usage.MaxRSSKiB != 2048 {
		t.Errorf("229: %+v", r)
	}
	if r := recs["231"]; r.State != "CANCELLED" || r.StateRaw != "CANCELLED by 1000" || !r.Start.IsZero() || r.Allocated {
		t.Errorf("231: %+v", r)
	}
	if r := recs["232"]; *r.Usage.WallS != 93784 || *r.Usage.CPUS != 3723 {
		t.Errorf("232: %v %v", *r.Usage.WallS, *r.Usage.CPUS)
	}
	if o := recordOutcome(recs["232"], true, false, false); o.Signal != "SIGTERM" || o.Reason != "time limit" {
		t.Errorf("232 outcome: %+v", o)
	}
	if r := recs["234"]; r.Signal != 9 || r.Usage.Raw["slurm.ExitCode"] != "0:0" {
		t.Errorf("234: signal from the batch step: %+v", r)
	}
	if o := recordOutcome(recs["234"], true, false, true); o.Signal != "SIGKILL" || o.Reason != "" {
		t.Errorf("234 outcome: %+v", o)
	}
	if _, final := phaseOf(recs["233"].State, ""); final {
		t.Error("233 RUNNING is final")
	}
}

func TestParseHelpers(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"00:00:02": 2 * time.Second, "01:02": 62 * time.Second, "00:01.500": 1500 * time.Millisecond,
		"2-00:00:01": 48*time.Hour + time.Second,
	} {
		if got, ok := parseDuration(in); !ok || got != want {
			t.Errorf("parseDuration(%q) = %v %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "x", "1", "INVALID", "a:b"} {
		if _, ok := parseDuration(bad); ok {
			t.Errorf("parseDuration(%q) ok", bad)
		}
	}
	for in, want := range map[string]int64{"3068K": 3068, "12M": 12288, "1.5G": 1572864, "2048": 2} {
		if got, ok := parseMem(in); !ok || got != want {
			t.Errorf("parseMem(%q) = %v %v", in, got, ok)
		}
	}
	if e, s, ok := parseExitCode("0:15"); !ok || e != 0 || s != 15 {
		t.Error("exit code 0:15")
	}
	if _, _, ok := parseExitCode("garbage"); ok {
		t.Error("garbage exit code parsed")
	}
	w, err := batch.SplitWords(`--time=10 --comment='a b' "--x=\"y\"" c\ d`)
	if err != nil || strings.Join(w, "|") != `--time=10|--comment=a b|--x="y"|c d` {
		t.Errorf("SplitWords: %q %v", w, err)
	}
	for _, bad := range []string{`'x`, `"x`, `x\`} {
		if _, err := batch.SplitWords(bad); err == nil {
			t.Errorf("batch.SplitWords(%q): no error", bad)
		}
	}
}

// A native specification becomes #SBATCH lines: options with their values,
// quoted when needed; what could break out of a line is refused.
func TestDirectives(t *testing.T) {
	got, err := Directives([]string{"-p short --time=10", "--comment='two words'", "--comment=$(touch /x)"})
	want := []string{"#SBATCH -p short", "#SBATCH --time=10", `#SBATCH "--comment=two words"`, `#SBATCH "--comment=$(touch" "/x)"`}
	if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Directives: %q %v, want %q", got, err, want)
	}
	for _, bad := range []string{"--comment=\"a\nb\"", `--comment='x"y'`} {
		var se *drms.StartError
		if _, err := Directives([]string{bad}); !errors.As(err, &se) {
			t.Errorf("Directives(%q): %v, want a StartError", bad, err)
		}
	}
}

func TestResourceOptions(t *testing.T) {
	got := strings.Join(ResourceOptions(model.Resources{CPUs: 4, MemoryMB: 4096, Walltime: 5401, GPUs: 2}), " ")
	if want := "--cpus-per-task=4 --mem=4096M --time=91 --gres=gpu:2"; got != want {
		t.Fatalf("ResourceOptions: %q, want %q", got, want)
	}
	if len(ResourceOptions(model.Resources{})) != 0 {
		t.Fatal("options for no resources")
	}
}
