package pbs

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/model"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func intp(n int) *int { return &n }

// TestParseJSON reads PBS Pro's qstat -f -F json listing (testdata/README.md
// says where each layout comes from): states, holds, times, usage.
func TestParseJSON(t *testing.T) {
	jobs, err := parseJSON(readTestdata(t, "pbspro/list.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 7 {
		t.Fatalf("%d jobs, want 7: %v", len(jobs), jobs)
	}
	for _, c := range []struct {
		seq   string
		name  string
		phase drms.Phase
		by    drms.By
	}{
		{"101", "sf-t1-1-1-1", drms.Queued, drms.ByUser},
		{"102", "sf-t1-1-2-1", drms.Held, drms.ByUser},
		{"103", "sf-t1-1-3-1", drms.Held, drms.BySystem}, // a dependency's system hold
		{"104", "sf-t1-1-4-1", drms.Running, drms.ByUser},
		{"105", "sf-t1-1-5-1", drms.Running, drms.ByUser}, // exiting
		{"106", "sf-t1-1-6-1", drms.Suspended, drms.ByUser},
	} {
		j, ok := jobs[c.seq]
		if !ok {
			t.Errorf("job %s missing", c.seq)
			continue
		}
		p, by, final := phase(j)
		if j.Name != c.name || p != c.phase || by != c.by || final {
			t.Errorf("job %s: name %q phase %v by %v final %v, want %q %v %v", c.seq, j.Name, p, by, final, c.name, c.phase, c.by)
		}
	}
	r := jobs["104"]
	if r.ID != "104.pbs01" || r.Start != time.Date(2024, 12, 5, 10, 1, 2, 0, time.Local) {
		t.Errorf("running job: id %q start %v", r.ID, r.Start)
	}
	if r.Usage.WallS == nil || *r.Usage.WallS != 77 || r.Usage.MaxRSSKiB == nil || *r.Usage.MaxRSSKiB != 5008 || r.Usage.Raw["vmem"] != "12528kb" {
		t.Errorf("running job usage: %+v", r.Usage)
	}
	if !strings.Contains(jobs["101"].Comment, "Insufficient amount of resource") {
		t.Errorf("pending reason lost: %q", jobs["101"].Comment)
	}
	if e := jobs["105"].Exit; e == nil || *e != 0 {
		t.Errorf("Exit_status of the exiting job: %v", e)
	}
	none, err := parseJSON(readTestdata(t, "pbspro/none.json"))
	if err != nil || len(none) != 0 {
		t.Errorf("no Jobs key: %v %v", none, err)
	}
}

// TestParseJSONBugs: the invalid JSON of openpbs issues 2541 and 1255 is an
// error (the backend then reads the text form), never a partial listing.
func TestParseJSONBugs(t *testing.T) {
	for _, f := range []string{"pbspro/bug_digits.json", "pbspro/bug_env.json"} {
		if jobs, err := parseJSON(readTestdata(t, f)); err == nil {
			t.Errorf("%s: no error, jobs %v", f, jobs)
		}
	}
	// The text form of the same jobs, wrapped Variable_List included.
	jobs := parseText(string(readTestdata(t, "pbspro/full.txt")))
	j, ok := jobs["111"]
	if !ok || j.Name != "sf-t1-1-11-1" || j.State != "R" || !strings.Contains(j.Comment, "Job run at") {
		t.Fatalf("text form: %+v", jobs)
	}
	if _, ok := jobs["112"]; !ok {
		t.Errorf("second job of the text form missing: %v", jobs)
	}
}

// TestParseTorque reads Torque's text form (four-space attributes, TAB
// continuation lines, epoch times, exit_status) and the form of Slurm's
// Torque wrappers (TAB-indented attributes, no exit status).
func TestParseTorque(t *testing.T) {
	jobs := parseText(string(readTestdata(t, "torque/full.txt")))
	if len(jobs) != 6 {
		t.Fatalf("%d jobs, want 6: %v", len(jobs), jobs)
	}
	if p, by, _ := phase(jobs["202"]); p != drms.Held || by != drms.ByUserAndSystem {
		t.Errorf("held job: %v %v", p, by)
	}
	r := jobs["203"]
	if r.Start != time.Unix(1733393000, 0) || r.Usage.CPUS == nil || *r.Usage.CPUS != 12 {
		t.Errorf("running job: %+v", r)
	}
	c := jobs["204"]
	if _, _, final := phase(c); !final || c.Exit == nil || *c.Exit != 271 || c.End != time.Unix(1733393060, 0) {
		t.Errorf("completed job: %+v", c)
	}
	if jobs["201"].ID != "201.torque01.example.org" {
		t.Errorf("id: %q", jobs["201"].ID)
	}
	w := parseText(string(readTestdata(t, "torque/wrapper.txt")))
	if len(w) != 3 || w["237"].Name != "sf-t1-3-1-1" || w["237"].State != "Q" || w["238"].State != "R" || w["239"].State != "C" || w["239"].Exit != nil {
		t.Errorf("wrapper form: %+v", w)
	}
}

// TestRecordOutcomes maps finished records to design.md's outcome table,
// per dialect.
func TestRecordOutcomes(t *testing.T) {
	one := func(d Dialect, file string) job {
		t.Helper()
		var jobs map[string]job
		if strings.HasSuffix(file, ".json") {
			var err error
			if jobs, err = parseJSON(readTestdata(t, file)); err != nil {
				t.Fatal(err)
			}
		} else {
			jobs = parseText(string(readTestdata(t, file)))
		}
		for _, j := range jobs {
			return j
		}
		t.Fatalf("%s: no job", file)
		return job{}
	}
	torque := parseText(string(readTestdata(t, "torque/full.txt")))
	for _, c := range []struct {
		name    string
		d       Dialect
		j       job
		output  string
		started bool
		killed  bool
		want    drms.Outcome
	}{
		{"finished 0", PBSPro, one(PBSPro, "pbspro/finished.json"), "", true, false,
			drms.Outcome{Status: model.JobDone, ExitStatus: model.ExitFinishedRegular, ExitValue: intp(0)}},
		{"killed by signal", PBSPro, one(PBSPro, "pbspro/signal.json"), "", true, false,
			drms.Outcome{Status: model.JobDone, ExitStatus: model.ExitFinishedSignal, Signal: "SIGKILL"}},
		{"walltime, OpenPBS 22.05 (-29)", PBSPro, one(PBSPro, "pbspro/walltime.json"), "", true, false,
			drms.Outcome{Status: model.JobDone, ExitStatus: model.ExitFinishedSignal, Signal: "SIGKILL", Reason: "time limit"}},
		{"deleted while queued, outside somaflow", PBSPro, one(PBSPro, "pbspro/deleted_queued.json"), "", false, false,
			drms.Outcome{Status: model.JobFailed, ExitStatus: model.ExitFinishedUnclear, Reason: "cancelled outside somaflow while queued"}},
		{"deleted while queued, by somaflow", PBSPro, one(PBSPro, "pbspro/deleted_queued.json"), "", false, true,
			drms.Outcome{Status: model.JobFailed, ExitStatus: model.ExitFinishedUnclear, Reason: "deleted while queued"}},
		{"qdel of a running job, Torque (271)", Torque, torque["204"], "", true, false,
			drms.Outcome{Status: model.JobDone, ExitStatus: model.ExitFinishedSignal, Signal: "SIGTERM"}},
		{"walltime, Torque (-11)", Torque, torque["205"], "", true, false,
			drms.Outcome{Status: model.JobDone, ExitStatus: model.ExitFinishedSignal, Signal: "SIGKILL", Reason: "time limit"}},
		{"-11 on PBS Pro is a rerun, not a walltime", PBSPro, torque["205"], "", true, false,
			drms.Outcome{Status: model.JobFailed, ExitStatus: model.ExitFinishedUnclear, Reason: "rerun"}},
		{"exit 3", Torque, torque["206"], "", true, false,
			drms.Outcome{Status: model.JobDone, ExitStatus: model.ExitFinishedRegular, ExitValue: intp(3)}},
		{"exit 3 before exec-job started", Torque, torque["206"], "", false, false,
			drms.Outcome{Status: model.JobFailed, ExitStatus: model.ExitAborted, Reason: "before somaflow exec-job started"}},
		{"Torque's walltime message in the output", Torque, torque["204"], "=>> PBS: job killed: walltime 65 exceeded limit 60\n", true, false,
			drms.Outcome{Status: model.JobDone, ExitStatus: model.ExitFinishedSignal, Signal: "SIGTERM", Reason: "time limit"}},
		{"Slurm's cancel message under the wrappers", Torque, torque["204"], "slurmstepd: error: *** JOB 204 ON n1 CANCELLED AT 2026-12-05T14:00:00 ***\n", true, false,
			drms.Outcome{Status: model.JobDone, ExitStatus: model.ExitFinishedSignal, Signal: "SIGTERM", Reason: "cancelled outside somaflow"}},
		{"no exit status (wrappers), started", Torque, job{ID: "239", State: "C"}, "", true, false,
			drms.Outcome{Status: model.JobFailed, ExitStatus: model.ExitFinishedUnclear, Reason: "state C"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := recordOutcome(c.d, c.j, c.output, c.started, c.killed)
			if o.Status != c.want.Status || o.ExitStatus != c.want.ExitStatus || !reflect.DeepEqual(o.ExitValue, c.want.ExitValue) || o.Signal != c.want.Signal {
				t.Fatalf("got %s/%s/%v/%s (%q), want %s/%s/%v/%s", o.Status, o.ExitStatus, o.ExitValue, o.Signal, o.Reason,
					c.want.Status, c.want.ExitStatus, c.want.ExitValue, c.want.Signal)
			}
			if (c.want.Reason == "") != (o.Reason == "") || !strings.Contains(o.Reason, c.want.Reason) {
				t.Fatalf("reason %q, want one with %q", o.Reason, c.want.Reason)
			}
		})
	}
	// The usage and times of PBS's record reach the outcome.
	o := recordOutcome(PBSPro, one(PBSPro, "pbspro/finished.json"), "", true, false)
	if o.Usage.CPUS == nil || *o.Usage.CPUS != 118 || o.Usage.MaxRSSKiB == nil || *o.Usage.MaxRSSKiB != 204800 || o.Ended.Sub(o.Started) != 2*time.Minute {
		t.Errorf("usage/times: %+v %v %v", o.Usage, o.Started, o.Ended)
	}
}

func TestOptions(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want []string
		err  string
	}{
		{[]string{"-l", "walltime=01:00:00", "-h", "-Wgroup_list=proj", "-A", "acct"}, []string{"-l", "walltime=01:00:00", "-h", "-Wgroup_list=proj", "-A", "acct"}, ""},
		{[]string{"-lselect=1:ncpus=2"}, []string{"-lselect=1:ncpus=2"}, ""},
		{[]string{"/tmp/evil.sh"}, nil, "not a qsub option"},
		{[]string{"-h", "/tmp/evil.sh"}, nil, "not a qsub option"},
		{[]string{"--", "/bin/rm"}, nil, "not a qsub option"},
		{[]string{"-N", "other"}, nil, "job name"},
		{[]string{"-o", "/x"}, nil, "output path"},
		{[]string{"-I"}, nil, "interactive"},
		{[]string{"-z"}, nil, "no job id"},
		{[]string{"-J", "1-10"}, nil, "array"},
		{[]string{"-l"}, nil, "needs a value"},
		{[]string{"-hx"}, nil, "takes no value"},
		{[]string{"-Y"}, nil, "unknown qsub option"},
		{[]string{"-l", "a\nb"}, nil, "newline"},
	} {
		got, err := Options(c.in)
		if c.err == "" {
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Errorf("Options(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
			continue
		}
		var se *drms.StartError
		if err == nil || !strings.Contains(err.Error(), c.err) || !asStartError(err, &se) {
			t.Errorf("Options(%q) = %q, %v; want a StartError with %q", c.in, got, err, c.err)
		}
	}
}

func TestResourceOptions(t *testing.T) {
	r := model.Resources{CPUs: 4, MemoryMB: 2048, Walltime: 3725, GPUs: 1}
	mpi := &model.ParallelJobInfo{ConfigName: "native", NodesNumber: 2, CPUPerNode: 8}
	omp := &model.ParallelJobInfo{ConfigName: "OpenMP", NodesNumber: 1, CPUPerNode: 6}
	for _, c := range []struct {
		d    Dialect
		pj   *model.ParallelJobInfo
		r    model.Resources
		want string
	}{
		{PBSPro, nil, model.Resources{}, ""},
		{Torque, nil, model.Resources{}, ""},
		{PBSPro, nil, r, "-l select=1:ncpus=4:mem=2048mb:ngpus=1 -l walltime=01:02:05"},
		{Torque, nil, r, "-l nodes=1:ppn=4:gpus=1 -l mem=2048mb -l walltime=01:02:05"},
		{PBSPro, mpi, model.Resources{}, "-l select=2:ncpus=8:mpiprocs=8"},
		{Torque, mpi, model.Resources{}, "-l nodes=2:ppn=8"},
		{PBSPro, omp, model.Resources{}, "-l select=1:ncpus=6:mpiprocs=1"},
		{PBSPro, nil, model.Resources{Walltime: 59}, "-l walltime=00:00:59"},
	} {
		if got := strings.Join(ResourceOptions(c.d, c.pj, c.r), " "); got != c.want {
			t.Errorf("ResourceOptions(%s, %+v, %+v) = %q, want %q", c.d, c.pj, c.r, got, c.want)
		}
	}
}

func asStartError(err error, se **drms.StartError) bool { return errors.As(err, se) }
