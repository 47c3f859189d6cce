package pbs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/batch"
	"github.com/somaflow/somaflow/model"
)

// Dialect is the flavour of PBS: the attribute names, the query and the
// meaning of negative exit statuses differ.
type Dialect string

const (
	// PBSPro is OpenPBS / PBS Pro (qstat -f -F json; finished jobs only
	// with qstat -x and job history on).
	PBSPro Dialect = "pbspro"
	// Torque is Torque (and Slurm's Torque wrappers): qstat -f in text;
	// finished jobs in state C for keep_completed seconds.
	Torque Dialect = "torque"
)

// job is one job of a qstat -f listing, whichever its form.
type job struct {
	ID    string
	Name  string
	State string // job_state: Q H W T R E S U F C X B M
	// Holds is Hold_Types: u user, o operator, s system, p password, n none.
	Holds   string
	Comment string
	// Substate is PBS Pro's substate (91 terminated by qdel, 92 finished,
	// 93 failed); 0 when not given.
	Substate int
	Exit     *int // Exit_status (exit_status on Torque); nil when not given
	Queue    string
	Start    time.Time // stime (start_time on Torque)
	End      time.Time // obittime (comp_time on Torque)
	Usage    drms.Usage
}

// attrs is a job's attributes, dotted names ("resources_used.walltime").
type attrs map[string]string

// get returns the first of names that is set, ignoring case (Torque
// writes exit_status, PBS Pro Exit_status).
func (a attrs) get(names ...string) string {
	for _, n := range names {
		if v, ok := a[n]; ok {
			return v
		}
		for k, v := range a {
			if strings.EqualFold(k, n) {
				return v
			}
		}
	}
	return ""
}

// parseJSON reads PBS Pro's `qstat -f -F json`: {"Jobs": {"ID": {...}}},
// no Jobs key when nothing matched. Values are decoded leniently (numbers
// where strings are expected and the reverse); invalid JSON (a known bug
// of some versions with odd environment values or all-digit strings) is
// an error, and the caller then asks for the text form.
func parseJSON(out []byte) (map[string]job, error) {
	var doc struct {
		Jobs map[string]map[string]json.RawMessage `json:"Jobs"`
	}
	d := json.NewDecoder(bytes.NewReader(out))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		return nil, fmt.Errorf("qstat -F json: %w", err)
	}
	jobs := make(map[string]job, len(doc.Jobs))
	for id, raw := range doc.Jobs {
		a := attrs{}
		for k, v := range raw {
			flatten(a, k, v)
		}
		jobs[seq(id)] = newJob(id, a)
	}
	return jobs, nil
}

// flatten adds the value v of attribute k to a: objects become dotted
// names, everything else its text.
func flatten(a attrs, k string, v json.RawMessage) {
	v = bytes.TrimSpace(v)
	if len(v) > 0 && v[0] == '{' {
		var m map[string]json.RawMessage
		if json.Unmarshal(v, &m) == nil {
			for kk, vv := range m {
				flatten(a, k+"."+kk, vv)
			}
			return
		}
	}
	var s string
	if len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &s) == nil {
		a[k] = s
		return
	}
	a[k] = string(v)
}

// parseText reads `qstat -f` in text: "Job Id: X", then "    name = value"
// lines, values wrapped with continuation lines that begin with a TAB, and a
// blank line between jobs. Slurm's Torque wrappers indent with a TAB
// instead of four spaces and never wrap: a TAB line is an attribute until
// the job has had a four-space one. Lines that fit neither are skipped.
func parseText(out string) map[string]job {
	jobs := map[string]job{}
	var id string
	var a attrs
	var last string
	spaces := false
	flush := func() {
		if id != "" {
			jobs[seq(id)] = newJob(id, a)
		}
		id, a, last, spaces = "", nil, "", false
	}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if v, ok := strings.CutPrefix(line, "Job Id:"); ok {
			flush()
			id, a = strings.TrimSpace(v), attrs{}
			continue
		}
		if id == "" {
			continue
		}
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if strings.HasPrefix(line, "\t") && spaces && last != "" {
			a[last] += strings.TrimPrefix(line, "\t")
			continue
		}
		if strings.HasPrefix(line, "    ") {
			spaces = true
		} else if !strings.HasPrefix(line, "\t") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(line), " = ")
		if !ok {
			continue
		}
		last = strings.TrimSpace(k)
		a[last] = v
	}
	flush()
	return jobs
}

// seq is the sequence part of a PBS job id ("123" of "123.server"): qsub
// and qstat may name the server differently (short or full host name).
func seq(id string) string {
	s, _, _ := strings.Cut(strings.TrimSpace(id), ".")
	return s
}

func newJob(id string, a attrs) job {
	j := job{
		ID: strings.TrimSpace(id), Name: a.get("Job_Name"), State: strings.TrimSpace(a.get("job_state")),
		Holds: a.get("Hold_Types"), Comment: a.get("comment"), Queue: a.get("queue"),
	}
	j.Substate, _ = strconv.Atoi(strings.TrimSpace(a.get("substate")))
	if v := strings.TrimSpace(a.get("Exit_status", "exit_status")); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			j.Exit = &n
		}
	}
	j.Start = pbsTime(a.get("stime", "start_time"))
	j.End = pbsTime(a.get("obittime", "comp_time"))
	raw := map[string]string{}
	for _, k := range []string{"cput", "walltime", "mem", "vmem", "ncpus", "cpupercent"} {
		if v := a.get("resources_used." + k); v != "" {
			raw[k] = v
		}
	}
	if len(raw) > 0 {
		j.Usage.Raw = raw
		if s, ok := hms(raw["walltime"]); ok {
			j.Usage.WallS = &s
		}
		if s, ok := hms(raw["cput"]); ok {
			j.Usage.CPUS = &s
		}
		if k, ok := kib(raw["mem"]); ok {
			j.Usage.MaxRSSKiB = &k
		}
	}
	return j
}

// pbsTime reads a PBS date: epoch seconds (Torque's start_time, comp_time)
// or "Tue Oct  4 21:23:20 2022" (server-local time, no zone).
func pbsTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return time.Unix(n, 0)
	}
	if t, err := time.ParseInLocation(time.ANSIC, s, time.Local); err == nil {
		return t
	}
	return time.Time{}
}

// hms reads a PBS duration: [[HH:]MM:]SS, or seconds.
func hms(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	total := 0.0
	for _, p := range strings.Split(s, ":") {
		n, err := strconv.ParseFloat(p, 64)
		if err != nil || n < 0 {
			return 0, false
		}
		total = total*60 + n
	}
	return total, true
}

// kib reads a PBS size ("5008kb", "12mb", "1gb", bytes when bare) in KiB.
func kib(s string) (int64, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"tb", 1 << 40}, {"kw", 8 << 10}, {"mw", 8 << 20}, {"gw", 8 << 30}, {"b", 1}, {"w", 8}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n * mult / 1024, true
}

// phase maps a job state to a drms phase; final is true for finished jobs
// (F, C, X).
func phase(j job) (p drms.Phase, by drms.By, final bool) {
	switch j.State {
	case "Q", "W", "T", "M":
		return drms.Queued, drms.ByUser, false
	case "H":
		return drms.Held, holdBy(j.Holds), false
	case "R", "E", "B":
		return drms.Running, drms.ByUser, false
	case "S":
		return drms.Suspended, drms.ByUser, false
	case "U":
		return drms.Suspended, drms.BySystem, false
	case "F", "C", "X":
		return drms.Ended, drms.ByUser, true
	}
	return drms.Unknown, drms.ByUser, false
}

// holdBy reads Hold_Types: u is the user's hold; o (operator), s (system,
// also a dependency's) and p (bad password) are the system's.
func holdBy(types string) drms.By {
	user := strings.Contains(types, "u")
	sys := strings.ContainsAny(types, "osp")
	switch {
	case user && sys:
		return drms.ByUserAndSystem
	case sys:
		return drms.BySystem
	}
	return drms.ByUser
}

// jobExec is the meaning of the negative exit statuses (JOB_EXEC_*): the
// job never ran properly. The tables agree down to -8 and differ below.
func jobExec(d Dialect, n int) string {
	common := map[int]string{
		-1: "job exec failed, before files, no retry", -2: "job exec failed, after files, no retry",
		-3: "job exec failed, do retry", -4: "job aborted on MOM initialization",
		-5: "job aborted on MOM initialization, checkpoint, no migrate", -6: "job aborted on MOM initialization, checkpoint, ok migrate",
		-7: "job restart failed", -8: "initialization of the job failed",
	}
	if s, ok := common[n]; ok {
		return s
	}
	if d == Torque {
		switch n {
		case -9:
			return "job could not be started by MOM (bad group)"
		case -10:
			return "job exceeded a resource limit"
		case -11:
			return "job exceeded its walltime"
		case -12:
			return "job exceeded a memory limit"
		case -13:
			return "job exceeded a cpu time limit"
		}
		return ""
	}
	switch n {
	case -9:
		return "job aborted: could not create the job's files"
	case -10:
		return "job aborted: could not stage in files"
	case -11:
		return "job rerun (requeued)"
	case -12:
		return "job rerun (requeued after a hook)"
	case -13:
		return "job failed after a hook"
	case -15:
		return "job aborted: a node of the job failed"
	case -20:
		return "job killed: it was on a node that went down"
	case -26:
		return "job exceeded its vmem limit"
	case -27:
		return "job exceeded its memory limit"
	case -28:
		return "job exceeded its cput limit"
	case -29:
		return "job exceeded its walltime"
	}
	return ""
}

// limitReason is "time limit" or "memory limit" when the record or the
// job's PBS output says the job was killed for exceeding one, else "".
func limitReason(d Dialect, j *job, output string) string {
	text := strings.ToLower(output)
	if j != nil {
		text += "\n" + strings.ToLower(j.Comment)
		if j.Exit != nil && *j.Exit < 0 {
			text += "\n" + jobExec(d, *j.Exit)
		}
	}
	switch {
	case strings.Contains(text, "walltime") || strings.Contains(text, "due to time limit"):
		return "time limit"
	case strings.Contains(text, "exceeded its memory") || strings.Contains(text, "exceeded its vmem") ||
		strings.Contains(text, "resource mem") || strings.Contains(text, "resource vmem") ||
		strings.Contains(text, "memory limit") || strings.Contains(text, "oom-kill"):
		return "memory limit"
	}
	return ""
}

// cancelled tells whether the record or the job's PBS output says the job
// was deleted (qdel): PBS Pro's substate 91 (terminated), or the message a
// Slurm under Torque's wrappers writes in the job's output.
func cancelled(j *job, output string) bool {
	if j != nil && j.Substate == 91 {
		return true
	}
	o := strings.ToLower(output)
	return strings.Contains(o, "cancelled at") || strings.Contains(o, "job deleted") || strings.Contains(o, "killed by qdel")
}

// signalReason is the reason of a job killed by a signal that somaflow did
// not send: a limit, or a cancel outside somaflow.
func signalReason(d Dialect, j *job, output string, killedByUs bool) string {
	if killedByUs {
		return ""
	}
	if r := limitReason(d, j, output); r != "" {
		return r
	}
	if cancelled(j, output) {
		return "cancelled outside somaflow"
	}
	return ""
}

// recordOutcome is the outcome read from PBS's record of a finished job
// whose exec-job status file is missing: Exit_status 0-255 is an exit
// (exec-job exits with its job's code), 256+N the signal N, a negative
// value a JOB_EXEC code of the dialect (the job never ran properly).
// started says whether exec-job began (its started file exists).
func recordOutcome(d Dialect, j job, output string, started, killedByUs bool) *drms.Outcome {
	what := "PBS: job " + j.ID + " state " + j.State
	if j.Exit != nil {
		what += fmt.Sprintf(", Exit_status %d", *j.Exit)
		if s := jobExec(d, *j.Exit); s != "" {
			what += " (" + s + ")"
		}
	}
	if c := strings.TrimSpace(j.Comment); c != "" {
		what += ", comment: " + c
	}
	var o *drms.Outcome
	switch {
	case j.Exit == nil:
		switch {
		case !started && killedByUs:
			o = drms.Unclear("deleted while queued (" + what + ")")
		case !started && cancelled(&j, output):
			o = drms.Unclear("cancelled outside somaflow while queued (" + what + ")")
		default:
			o = drms.Unclear(what)
		}
	case *j.Exit > 256 && *j.Exit <= 256+64:
		o = drms.Signaled(batch.SignalName(*j.Exit-256), signalReason(d, &j, output, killedByUs))
	case *j.Exit >= 0 && *j.Exit <= 255:
		if !started {
			o = drms.NotStarted("the batch script failed before somaflow exec-job started (" + what + ")")
		} else {
			o = drms.Exited(*j.Exit)
		}
	case *j.Exit < 0 && limitReason(d, &j, "") != "" && started:
		// A limit the server enforced: the job was killed by it (OpenPBS
		// 22.05+ reports -29 for walltime where older servers gave 271).
		o = drms.Signaled("SIGKILL", limitReason(d, &j, ""))
	default:
		o = drms.Unclear(what)
	}
	if started && o.ExitStatus != model.ExitAborted {
		o.Started = j.Start
	}
	o.Ended = j.End
	o.Usage = j.Usage
	return o
}
