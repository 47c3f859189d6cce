package slurm

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/batch"
	"github.com/somaflow/somaflow/model"
)

// squeueFormat is the -o format of the one squeue call per cycle (with -r,
// one line per array task): job id (unique per array task once it left the
// pending array), array job id, array task id ("N/A" for a plain job),
// state, reason, start, end, node list, then the name last so that a name
// containing the separator cannot shift the other fields.
const squeueFormat = "%A|%F|%K|%T|%r|%S|%e|%N|%j"

// queueJob is one line of squeue.
type queueJob struct {
	ID     string // %A
	Array  string // array job id, "" for a plain job
	Task   string // array task id, "" for a plain job
	State  string // RUNNING, PENDING, COMPLETED, ... (long form)
	Reason string
	Start  time.Time
	End    time.Time
	Nodes  string // empty while pending
	Name   string
}

// parseSqueue parses `squeue -h -r -o squeueFormat` output; lines that do
// not parse (other tools' jobs with odd names, garbage) are skipped and
// counted. A plain job is keyed by its id; an array task by ARRAYID_TASK
// (as Slurm writes it, and as scancel, scontrol and sacct take it) and, once
// it has a record of its own (it is no longer pending), by its own job id too.
func parseSqueue(out string) (map[string]queueJob, int) {
	jobs := map[string]queueJob{}
	bad := 0
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.SplitN(line, "|", 9)
		if len(f) != 9 || !isJobID(f[0]) || f[3] == "" {
			bad++
			continue
		}
		j := queueJob{ID: f[0], State: f[3], Reason: f[4], Start: parseTime(f[5]), End: parseTime(f[6]), Nodes: f[7], Name: f[8]}
		if f[2] == "N/A" || f[2] == "" {
			jobs[f[0]] = j
			continue
		}
		if !isNumber(f[1]) || !isNumber(f[2]) {
			bad++ // an unexpanded task range (squeue without -r)
			continue
		}
		j.Array, j.Task = f[1], f[2]
		jobs[f[1]+"_"+f[2]] = j
		if j.State != "PENDING" {
			jobs[f[0]] = j
		}
	}
	return jobs, bad
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// expandTasks expands an array task list ("0,2-5", "0-999%10") into its
// task ids; nil when it does not parse or is implausibly large.
func expandTasks(s string) []string {
	s, _, _ = strings.Cut(s, "%")
	var ids []string
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a || b-a > 1000000 || len(ids) > 1000000 {
			return nil
		}
		for i := a; i <= b; i++ {
			ids = append(ids, strconv.Itoa(i))
		}
	}
	return ids
}

func isJobID(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// parseTime parses Slurm's local times (2026-01-02T03:04:05); "Unknown",
// "N/A", "None" and the like give the zero time.
func parseTime(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02T15:04:05", strings.TrimSpace(s), time.Local)
	if err != nil {
		return time.Time{}
	}
	return t
}

// record is Slurm's own account of a job: scontrol show job, or sacct.
type record struct {
	ID       string
	Name     string
	State    string // first word: "CANCELLED by 0" -> CANCELLED
	Reason   string
	Exit     int // ExitCode's first number
	Signal   int // ExitCode's second number
	HasExit  bool
	Start    time.Time
	End      time.Time
	Usage    drms.Usage
	StateRaw string
	// Allocated: the job got nodes (it ran, if only its batch script).
	Allocated bool
}

// allocated reports whether a node list means the job got nodes.
func allocated(nodes string) bool {
	nodes = strings.TrimSpace(nodes)
	return nodes != "" && nodes != "(null)" && nodes != "None assigned" && nodes != "N/A"
}

var scontrolKey = regexp.MustCompile(`(?:^|\s)([A-Za-z][A-Za-z0-9/:_.\-]*)=`)

// parseScontrolLine splits one line of `scontrol show job -o` into its
// Key=Value fields; values may contain spaces (Command=, WorkDir=).
func parseScontrolLine(line string) map[string]string {
	m := map[string]string{}
	idx := scontrolKey.FindAllStringSubmatchIndex(line, -1)
	for i, loc := range idx {
		key := line[loc[2]:loc[3]]
		end := len(line)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		if _, dup := m[key]; !dup {
			m[key] = strings.TrimSpace(line[loc[1]:end])
		}
	}
	return m
}

// parseScontrol parses `scontrol show job -o` output (one job per line).
func parseScontrol(out string) map[string]record {
	recs := map[string]record{}
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "JobId=") {
			continue
		}
		f := parseScontrolLine(strings.TrimSpace(line))
		r := record{ID: f["JobId"], Name: f["JobName"], StateRaw: f["JobState"], Reason: f["Reason"]}
		r.State = firstWord(r.StateRaw)
		r.Exit, r.Signal, r.HasExit = parseExitCode(f["ExitCode"])
		r.Start, r.End = parseTime(f["StartTime"]), parseTime(f["EndTime"])
		r.Allocated = allocated(f["NodeList"])
		raw := map[string]string{}
		for _, k := range []string{"JobState", "Reason", "ExitCode", "RunTime", "StartTime", "EndTime", "NodeList"} {
			if v, ok := f[k]; ok {
				raw["slurm."+k] = v
			}
		}
		r.Usage.Raw = raw
		if d, ok := parseDuration(f["RunTime"]); ok {
			s := d.Seconds()
			r.Usage.WallS = &s
		}
		if r.ID != "" {
			recs[r.ID] = r
		}
		// An array task is also known as ARRAYID_TASK; a pending array's
		// own record stands for all its tasks ("0,2-5").
		if arr := f["ArrayJobId"]; isNumber(arr) {
			if t := f["ArrayTaskId"]; isNumber(t) {
				recs[arr+"_"+t] = r
			} else {
				for _, t := range expandTasks(t) {
					if _, ok := recs[arr+"_"+t]; !ok {
						recs[arr+"_"+t] = r
					}
				}
			}
		}
	}
	return recs
}

// sacctFields is the -o list of the sacct call.
const sacctFields = "JobID,State,ExitCode,Elapsed,TotalCPU,MaxRSS,Start,End,Reason,NodeList,JobName,JobIDRaw"

// parseSacct parses `sacct -n -P -o sacctFields` output: the job lines give
// state and exit code (the batch step's when the job line says 0:0); the
// steps (ID.batch, ID.0...) give MaxRSS, the largest of which is kept. An
// array task (JobID ARRAYID_TASK) is also keyed by its own id (JobIDRaw).
// Lines of the older 11-field form (without JobIDRaw) are read too.
func parseSacct(out string) map[string]record {
	rawID := map[string]string{}
	recs := map[string]record{}
	rss := map[string]int64{}
	rawRSS := map[string]string{}
	batchExit := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.SplitN(line, "|", 12)
		if len(f) == 11 {
			f = append(f, "")
		}
		if len(f) != 12 {
			continue
		}
		id, step, isStep := strings.Cut(f[0], ".")
		if !isJobID(id) {
			continue
		}
		if isStep {
			if kib, ok := parseMem(f[5]); ok && kib >= rss[id] {
				rss[id] = kib
				rawRSS[id] = f[5]
			}
			if step == "batch" {
				batchExit[id] = f[2]
			}
			continue
		}
		if raw := strings.TrimSpace(f[11]); raw != id && isNumber(raw) {
			rawID[id] = raw
		}
		r := record{ID: id, StateRaw: f[1], State: firstWord(f[1]), Reason: f[8], Allocated: allocated(f[9]), Name: f[10]}
		r.Exit, r.Signal, r.HasExit = parseExitCode(f[2])
		r.Start, r.End = parseTime(f[6]), parseTime(f[7])
		r.Usage.Raw = map[string]string{"slurm.State": f[1], "slurm.ExitCode": f[2], "slurm.Elapsed": f[3], "slurm.TotalCPU": f[4], "slurm.Start": f[6], "slurm.End": f[7]}
		if d, ok := parseDuration(f[3]); ok {
			s := d.Seconds()
			r.Usage.WallS = &s
		}
		if d, ok := parseDuration(f[4]); ok {
			s := d.Seconds()
			r.Usage.CPUS = &s
		}
		recs[id] = r
	}
	// The job line of a cancelled or timed-out job says 0:0; its batch step
	// has the signal that ended the batch script.
	for id, ec := range batchExit {
		r, ok := recs[id]
		if !ok || r.Exit != 0 || r.Signal != 0 {
			continue
		}
		if e, g, ok := parseExitCode(ec); ok && (e != 0 || g != 0) {
			r.Exit, r.Signal, r.HasExit = e, g, true
			r.Usage.Raw["slurm.batch.ExitCode"] = ec
			recs[id] = r
		}
	}
	for id, kib := range rss {
		if r, ok := recs[id]; ok {
			k := kib
			r.Usage.MaxRSSKiB = &k
			r.Usage.Raw["slurm.MaxRSS"] = rawRSS[id]
			recs[id] = r
		}
	}
	for id, raw := range rawID {
		if _, taken := recs[raw]; !taken {
			recs[raw] = recs[id]
		}
	}
	return recs
}

func firstWord(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i]
	}
	return s
}

// parseExitCode parses Slurm's ExitCode "exit:signal" (the first number is
// the exit value, the second the signal).
func parseExitCode(s string) (exit, sig int, ok bool) {
	a, b, found := strings.Cut(strings.TrimSpace(s), ":")
	if !found {
		return 0, 0, false
	}
	e, err1 := strconv.Atoi(a)
	g, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return e, g, true
}

// parseDuration parses Slurm durations: [D-]HH:MM:SS, MM:SS, MM:SS.mmm,
// with optional fractions ("00:01.163").
func parseDuration(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" || s == "INVALID" || s == "UNLIMITED" {
		return 0, false
	}
	days := 0
	if d, rest, ok := strings.Cut(s, "-"); ok {
		n, err := strconv.Atoi(d)
		if err != nil {
			return 0, false
		}
		days, s = n, rest
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, false
	}
	var total float64
	for _, p := range parts {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v < 0 {
			return 0, false
		}
		total = total*60 + v
	}
	total += float64(days) * 86400
	return time.Duration(total * float64(time.Second)), true
}

// parseMem parses sacct memory values (3068K, 12M, 1.5G, 512) into KiB.
func parseMem(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	mult := 1.0 / 1024 // plain numbers are bytes
	switch s[len(s)-1] {
	case 'K', 'k':
		mult = 1
	case 'M', 'm':
		mult = 1024
	case 'G', 'g':
		mult = 1024 * 1024
	case 'T', 't':
		mult = 1024 * 1024 * 1024
	}
	if mult != 1.0/1024 {
		s = s[:len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	return int64(v * mult), true
}

// heldBy says who holds or suspends a Slurm job: JobHeldUser is the
// user's hold, JobHeldAdmin (and holds from requeue or a deleted
// reservation) the system's; only an operator can suspend a job.
func heldBy(state, reason string) drms.By {
	if state == "PENDING" && reason == "JobHeldUser" {
		return drms.ByUser
	}
	return drms.BySystem
}

// phaseOf maps a squeue/scontrol/sacct state that is not final to a Phase;
// final reports whether the state is one a job ends in.
func phaseOf(state, reason string) (p drms.Phase, final bool) {
	switch state {
	case "PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "REVOKED_PENDING":
		if strings.HasPrefix(reason, "JobHeld") || state == "REQUEUE_HOLD" || state == "RESV_DEL_HOLD" {
			return drms.Held, false
		}
		return drms.Queued, false
	case "RUNNING", "CONFIGURING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING", "POWER_UP_NODE", "STAGING":
		return drms.Running, false
	case "SUSPENDED", "STOPPED":
		return drms.Suspended, false
	case "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
		"PREEMPTED", "DEADLINE", "REVOKED", "SPECIAL_EXIT":
		return drms.Ended, true
	}
	return drms.Unknown, false
}

// signalReason is the reason a final Slurm state gives to a job killed by a
// signal ("" when the state says nothing more); killedByUs drops the
// "cancelled outside somaflow" of a CANCELLED job that we cancelled.
func signalReason(state string, killedByUs bool) string {
	switch state {
	case "TIMEOUT", "DEADLINE":
		return "time limit"
	case "OUT_OF_MEMORY":
		return "memory limit"
	case "CANCELLED":
		if killedByUs {
			return ""
		}
		return "cancelled outside somaflow"
	case "PREEMPTED":
		return "preempted (Slurm: PREEMPTED)"
	case "NODE_FAIL":
		return "node failure (Slurm: NODE_FAIL)"
	case "BOOT_FAIL":
		return "node boot failure (Slurm: BOOT_FAIL)"
	}
	return ""
}

// recordOutcome turns Slurm's record of a finished job, without an exec-job
// status file, into an Outcome. started says whether exec-job began (its
// started file exists); a job that Slurm gave nodes to counts as started too
// for cancels and limits (pending at the DRMS is not started); memHint whether the job's Slurm output mentions a
// memory limit; killedByUs whether this engine cancelled it.
func recordOutcome(r record, started, memHint, killedByUs bool) *drms.Outcome {
	what := "Slurm: " + r.StateRaw
	if r.Reason != "" && r.Reason != "None" {
		what += " (" + r.Reason + ")"
	}
	if r.HasExit {
		what += fmt.Sprintf(", ExitCode %d:%d", r.Exit, r.Signal)
	}
	execStarted := started
	started = started || r.Allocated
	var o *drms.Outcome
	sig := ""
	if r.Signal > 0 {
		sig = batch.SignalName(r.Signal)
	}
	switch r.State {
	case "COMPLETED":
		o = drms.Exited(r.Exit)
	case "FAILED":
		switch {
		case sig != "":
			reason := ""
			if memHint {
				reason = "memory limit"
			}
			o = drms.Signaled(sig, reason)
		case !execStarted:
			o = drms.NotStarted("the batch script failed before somaflow exec-job started (" + what + ")")
		case r.HasExit:
			o = drms.Exited(r.Exit)
		default:
			o = drms.Unclear(what)
		}
	case "CANCELLED":
		switch {
		case !started && r.Reason == "DependencyNeverSatisfied":
			// Slurm cancelled it for a dependency that did not succeed
			// (--kill-on-invalid-dep=yes): it never ran.
			o = &drms.Outcome{Status: model.JobFailed, ExitStatus: model.ExitAbortedBefore, Reason: "a dependency did not succeed (" + what + ")"}
		case !started:
			if killedByUs {
				o = drms.Unclear("cancelled while queued (" + what + ")")
			} else {
				o = drms.Unclear("cancelled outside somaflow while queued (" + what + ")")
			}
		case sig != "":
			o = drms.Signaled(sig, signalReason("CANCELLED", killedByUs))
		default:
			if killedByUs {
				o = drms.Unclear("cancelled (" + what + ")")
			} else {
				o = drms.Unclear("cancelled outside somaflow (" + what + ")")
			}
		}
	case "TIMEOUT", "DEADLINE", "OUT_OF_MEMORY":
		if !started {
			o = drms.Unclear(what)
			break
		}
		if sig == "" {
			sig = "SIGTERM"
			if r.State == "OUT_OF_MEMORY" {
				sig = "SIGKILL"
			}
		}
		o = drms.Signaled(sig, signalReason(r.State, killedByUs))
	default: // NODE_FAIL, BOOT_FAIL, PREEMPTED, REVOKED, SPECIAL_EXIT, ...
		o = drms.Unclear(what)
	}
	if started && o.ExitStatus != model.ExitAborted {
		o.Started = r.Start
	}
	o.Ended = r.End
	o.Usage = r.Usage
	return o
}
