package drmaa

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/batch"
	"github.com/somaflow/somaflow/drms/execjob"
	"github.com/somaflow/somaflow/model"
)

func ip(n int) *int { return &n }

func check(t *testing.T, name string, o *drms.Outcome, status, exitStatus string, exit *int, signal, reasonHas string) {
	t.Helper()
	ok := o != nil && o.Status == status && o.ExitStatus == exitStatus && o.Signal == signal &&
		(exit == nil) == (o.ExitValue == nil) && (exit == nil || *exit == *o.ExitValue) &&
		strings.Contains(o.Reason, reasonHas) && (reasonHas != "" || o.Reason == "")
	if !ok {
		t.Errorf("%s: got %+v, want %s/%s exit=%v signal=%q reason~%q", name, o, status, exitStatus, exit, signal, reasonHas)
	}
}

// The rows of notes/gridengine-drmaa.md's table of what drmaa_wait reports,
// as Grid Engine 8.1.9 and github.com/dgruber/drmaa v1.0.0 gave them.
func TestWaitOutcome(t *testing.T) {
	ran := map[string]string{"start_time": "1795788925.0000", "end_time": "1795788933.0000",
		"ru_wallclock": "8.0000", "cpu": "0.0046", "ru_maxrss": "4700.0000", "exit_status": "0.0000"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range ran {
			m[a] = b
		}
		m[k] = v
		return m
	}
	check(t, "exit 3", waitOutcome(waitResult{Exited: true, Exit: 3, Usage: with("exit_status", "3.0000")}),
		model.JobDone, model.ExitFinishedRegular, ip(3), "", "")
	check(t, "exit 139 is an exit, not a signal", waitOutcome(waitResult{Exited: true, Exit: 139, Usage: with("exit_status", "139.0000")}),
		model.JobDone, model.ExitFinishedRegular, ip(139), "", "")
	// Quirk: HasAborted equals HasSignaled in the binding; a signal stays a signal.
	check(t, "kill -9 $$", waitOutcome(waitResult{Signaled: true, Signal: "SIGKILL", Aborted: true, Usage: with("exit_status", "137.0000")}),
		model.JobDone, model.ExitFinishedSignal, nil, "SIGKILL", "")
	check(t, "h_rt", waitOutcome(waitResult{Signaled: true, Signal: "SIGKILL", Aborted: true, Usage: ran}),
		model.JobDone, model.ExitFinishedSignal, nil, "SIGKILL", "")
	// Quirk: terminated while running (TERMINATE or qdel): no flag, exit_status 137.
	o := waitOutcome(waitResult{Usage: with("exit_status", "137.0000")})
	check(t, "qdel while running", o, model.JobDone, model.ExitFinishedSignal, nil, "SIGKILL", "cancelled outside somaflow")
	if o.Started.IsZero() || o.Usage.WallS == nil || *o.Usage.WallS != 8 || o.Usage.MaxRSSKiB == nil || *o.Usage.MaxRSSKiB != 4700 {
		t.Errorf("qdel while running: times/usage not read: %+v", o)
	}
	check(t, "our kill while running, resolved", drms.Resolve(true, o), model.JobFailed, model.ExitKilledByUser, nil, "", "")
	// Quirk: a remote command that does not exist: no flag, no start time.
	o = waitOutcome(waitResult{Usage: map[string]string{"submission_time": "1795788947.0000", "cpu": "0.0000"}})
	check(t, "missing remote command", o, model.JobFailed, model.ExitAborted, nil, "", "never started")
	if !o.Started.IsZero() {
		t.Errorf("missing remote command has a start time")
	}
	// Quirk: deleted while held: drmaa_wait fails with no usage.
	o = waitOutcome(waitResult{NoUsage: true})
	check(t, "deleted while held", o, model.JobFailed, model.ExitFinishedUnclear, nil, "", "while queued")
	check(t, "our kill while held, resolved", drms.Resolve(true, o), model.JobFailed, model.ExitAbortedBefore, nil, "", "")
	check(t, "no flag, odd exit_status", waitOutcome(waitResult{Usage: with("exit_status", "1.0000")}),
		model.JobFailed, model.ExitFinishedUnclear, nil, "", "exit_status 1")
}

// The status file comes before DRMAA's flags.
func TestStatusFileFirst(t *testing.T) {
	now := time.Now()
	file := batch.StatusOutcome(&execjob.Status{State: execjob.StateExited, Exit: ip(137), Started: now, Ended: now})
	rec := waitOutcome(waitResult{Signaled: true, Signal: "SIGKILL", Usage: map[string]string{"start_time": "1", "ru_wallclock": "2"}})
	o := batch.Combine(file, rec)
	check(t, "exit 137 from the status file", o, model.JobDone, model.ExitFinishedRegular, ip(137), "", "")
	if o.Usage.Raw["ru_wallclock"] != "2" {
		t.Errorf("DRMAA's raw usage not kept: %v", o.Usage.Raw)
	}
}

// Real qacct output of Grid Engine 8.1.9 (trimmed).
const qacctOut = `==============================================================
qname        all.q               
hostname     vm                  
jobname      exp-ep              
jobnumber    5                   
qsub_time    Fri Nov 27 14:15:25 2026
start_time   Fri Nov  6 14:15:25 2026
end_time     Fri Nov 27 14:15:33 2026
failed       100 : assumedly after job
exit_status  137                  (Killed)
ru_wallclock 8s
ru_maxrss    4.590KB
cpu          0.005s
==============================================================
qname        all.q               
jobname      exp-md              
jobnumber    10                  
start_time   -/-
end_time     -/-
failed       27  : searching requested shell
exit_status  0                   
==============================================================
jobname      sf-t-7-1-1
jobnumber    11                  
start_time   Fri Nov 27 14:15:53 2026
end_time     Fri Nov 27 14:15:57 2026
failed       0    
exit_status  4                   
==============================================================
jobname      sf-t-7-2-1
jobnumber    12
start_time   Fri Nov 27 14:15:53 2026
end_time     Fri Nov 27 14:15:57 2026
failed       0
exit_status  143
`

func TestQacct(t *testing.T) {
	recs := parseQacct(qacctOut)
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4", len(recs))
	}
	r := pickRecord(recs, "5", "exp-ep")
	if r == nil {
		t.Fatal("record 5 not found")
	}
	o := acctOutcome(r)
	check(t, "qdel", o, model.JobDone, model.ExitFinishedSignal, nil, "SIGKILL", "cancelled outside somaflow")
	if want := time.Date(2026, 11, 6, 14, 15, 25, 0, time.Local); !o.Started.Equal(want) {
		t.Errorf("start %v, want %v", o.Started, want)
	}
	// Quirk: ru_maxrss is the KiB count printed as bytes.
	if o.Usage.WallS == nil || *o.Usage.WallS != 8 || o.Usage.MaxRSSKiB == nil || *o.Usage.MaxRSSKiB != 4700 {
		t.Errorf("usage: %+v", o.Usage)
	}
	check(t, "never started", acctOutcome(pickRecord(recs, "10", "")), model.JobFailed, model.ExitAborted, nil, "", "searching requested shell")
	check(t, "exit 4", acctOutcome(pickRecord(recs, "11", "sf-t-7-1-1")), model.JobDone, model.ExitFinishedRegular, ip(4), "", "")
	check(t, "exec-job killed by SIGTERM", acctOutcome(pickRecord(recs, "12", "")), model.JobDone, model.ExitFinishedSignal, nil, "SIGTERM", "")
	if pickRecord(recs, "11", "other-name") != nil {
		t.Error("a record with another job name was picked (job ids restart on a fresh cell)")
	}
	check(t, "time limit", acctOutcome(acctRecord{"failed": "37 : qmaster enforced h_rt, h_cpu, or h_vmem limit", "exit_status": "137", "start_time": "Fri Nov 27 14:15:53 2026"}),
		model.JobDone, model.ExitFinishedSignal, nil, "SIGKILL", "limit")
	if parseQacct("") != nil {
		t.Error("records from empty output")
	}
}

func TestQstatJobs(t *testing.T) {
	out := "==============================================================\njob_number:                 12\nexec_file:                  job_scripts/12\njob_name:                   sf-x-1-2-3\n" +
		"==============================================================\njob_number:                 13\njob_name:                   sf-x-1-2-4\n"
	if got := parseQstatJobs(out, "sf-x-1-2-3"); len(got) != 1 || got[0] != "12" {
		t.Fatalf("got %v", got)
	}
}

func TestNativeSpec(t *testing.T) {
	o, err := parseOptions(map[string]string{SettingNative: "-P proj  -l h_vmem=1G"})
	if err != nil {
		t.Fatal(err)
	}
	s := drms.JobSpec{EngineTag: "e", WorkflowID: 1, JobID: 2, Attempt: 1, Queue: "long.q",
		NativeSpec: []string{"-l h_rt=1:00:00", " "},
		Parallel:   &model.ParallelJobInfo{ConfigName: "mpi", NodesNumber: 2, CPUPerNode: 4}}
	got, err := o.nativeSpec(s)
	if want := "-P proj -l h_vmem=1G -q long.q -pe mpi 8 -l h_rt=1:00:00"; err != nil || got != want {
		t.Fatalf("native spec %q, %v; want %q", got, err, want)
	}
	// Resources: Grid Engine's templates for memory and walltime; none for
	// CPUs unless the site sets one.
	s = drms.JobSpec{Resources: model.Resources{MemoryMB: 2048, Walltime: 5400}}
	if got, err := o.nativeSpec(s); err != nil || got != "-P proj -l h_vmem=1G -l h_vmem=2048M -l h_rt=5400" {
		t.Fatalf("resources: %q, %v", got, err)
	}
	var se *drms.StartError
	if _, err := o.nativeSpec(drms.JobSpec{Resources: model.Resources{CPUs: 4}}); !errors.As(err, &se) || !strings.Contains(se.Reason, "cpus_option") {
		t.Fatalf("cpus without a template: %v", err)
	}
	o2, _ := parseOptions(map[string]string{SettingCPUsOption: "-pe smp {cpus}"})
	if got, _ := o2.nativeSpec(drms.JobSpec{Resources: model.Resources{CPUs: 4}}); got != "-pe smp 4" {
		t.Fatalf("cpus with a template: %q", got)
	}
	o, _ = parseOptions(map[string]string{SettingQueueOption: "-p"})
	if got, _ := o.nativeSpec(drms.JobSpec{Queue: "debug"}); got != "-p debug" {
		t.Fatalf("slurm-drmaa queue: %q", got)
	}
	for _, bad := range []drms.JobSpec{
		{Queue: "a b"},
		{Parallel: &model.ParallelJobInfo{NodesNumber: 1, CPUPerNode: 2}},
		{Parallel: &model.ParallelJobInfo{ConfigName: "x", NodesNumber: 0, CPUPerNode: 2}},
	} {
		if _, err := o.nativeSpec(bad); err == nil {
			t.Errorf("no error for %+v", bad)
		}
	}
	for _, bad := range []map[string]string{
		{SettingQueueOption: ""}, {SettingQueueOption: "-q x"}, {SettingAccounting: "x"},
		{SettingForgetGrace: "soon"}, {SettingPsInterval: "-1s"}, {SettingPsInterval: "often"}, {SettingParallelOption: " "},
	} {
		if _, err := parseOptions(bad); err == nil {
			t.Errorf("no error for settings %v", bad)
		}
	}
}

func TestHandle(t *testing.T) {
	h := encodeHandle("42", handleState{Name: "sf-e-1-2-1", Status: "/s/1/sf-e-1-2-1.status", Contact: "session=x"})
	st, err := decodeHandle(h)
	if err != nil || st.Name != "sf-e-1-2-1" || st.Contact != "session=x" {
		t.Fatalf("round trip: %+v %v", st, err)
	}
	for _, bad := range []drms.Handle{
		{Version: 2, ID: "1", State: h.State}, {Version: 1, ID: "", State: h.State},
		{Version: 1, ID: "1", State: []byte("{")}, {Version: 1, ID: "1", State: []byte("{}")},
	} {
		if _, err := decodeHandle(bad); err == nil {
			t.Errorf("no error for %+v", bad)
		}
	}
}
