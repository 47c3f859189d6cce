package drmaa

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/batch"
	"github.com/somaflow/somaflow/model"
)

// gridEngine runs Grid Engine's own commands for what DRMAA cannot tell:
// qacct for jobs DRMAA has forgotten, qstat and qacct to find an attempt by
// its job name after a crash. Commands run with argv, under ctx.
type gridEngine struct {
	qacct, qstat string
}

// newGridEngine finds qacct and qstat on PATH; ok is false when they are
// missing (another DRMS: the fallbacks are then off).
func newGridEngine() (gridEngine, bool) {
	qa, err1 := exec.LookPath("qacct")
	qs, err2 := exec.LookPath("qstat")
	if err1 != nil || err2 != nil {
		return gridEngine{}, false
	}
	return gridEngine{qacct: qa, qstat: qs}, true
}

// acctRecord is one job of qacct's output: field -> value as printed.
type acctRecord map[string]string

// acct runs `qacct -j ID|NAME`; no record is (nil, nil).
func (g gridEngine) acct(ctx context.Context, idOrName string) ([]acctRecord, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, g.qacct, "-j", idOrName)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "not found") {
			return nil, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("qacct -j %s: %w", idOrName, ctx.Err())
		}
		return nil, fmt.Errorf("qacct -j %s: %w: %s: %w", idOrName, err, msg, drms.ErrUnavailable)
	}
	return parseQacct(stdout.String()), nil
}

// parseQacct splits qacct's output into records ("====" lines between them).
func parseQacct(out string) []acctRecord {
	var recs []acctRecord
	var cur acctRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "====") {
			cur = acctRecord{}
			recs = append(recs, cur)
			continue
		}
		if cur == nil {
			continue
		}
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		if k != "" {
			cur[k] = strings.TrimSpace(v)
		}
	}
	return recs
}

// pickRecord is the record of job id named name (job ids restart from 1 on
// a fresh cell, so the name tells them apart); the last one wins.
func pickRecord(recs []acctRecord, id, name string) acctRecord {
	var found acctRecord
	for _, r := range recs {
		if (id == "" || r["jobnumber"] == id) && (name == "" || r["jobname"] == name) {
			found = r
		}
	}
	return found
}

var leadingInt = regexp.MustCompile(`^-?\d+`)

func atoiPrefix(s string) (int, bool) {
	m := leadingInt.FindString(strings.TrimSpace(s))
	if m == "" {
		return 0, false
	}
	n, err := strconv.Atoi(m)
	return n, err == nil
}

// acctTime parses qacct's times ("Fri Nov 27 14:15:52 2026", local time);
// "-/-" (never) gives the zero time.
func acctTime(s string) time.Time {
	t, err := time.ParseInLocation(time.ANSIC, strings.Join(strings.Fields(s), " "), time.Local)
	if err != nil {
		// time.ANSIC pads the day with a space, which Fields removed.
		t, err = time.ParseInLocation("Mon Jan 2 15:04:05 2006", strings.Join(strings.Fields(s), " "), time.Local)
		if err != nil {
			return time.Time{}
		}
	}
	return t
}

// acctNumber parses qacct's numbers with units: "8s", "0.005s", "4.590KB",
// "1.711MB" (units of 1024).
func acctNumber(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	mult := 1.0
	for _, u := range []struct {
		suffix string
		m      float64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}, {"s", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	return v * mult, true
}

// acctOutcome maps a qacct record to an outcome, for a job without an
// exec-job status file (exec-job itself was killed, or never ran).
//
// qacct has no wait status, only exit_status (128+N for a signal) and the
// "failed" code: 0 when the job ran to its end, 100 "assumedly after job"
// for a job deleted (qdel, drmaa_control TERMINATE) while running, other
// codes for jobs that could not start or hit a limit. Without a status file,
// exec-job (which re-raises its command's signal, and otherwise writes the
// status file before it exits) did not end by itself, so an exit_status of
// 128+N is read as signal N. Quirk: ru_maxrss is printed as if its KiB
// count were bytes ("4.590KB" for 4700 KiB).
func acctOutcome(r acctRecord) *drms.Outcome {
	failed, _ := atoiPrefix(r["failed"])
	failedText := strings.Join(strings.Fields(r["failed"]), " ")
	es, hasES := atoiPrefix(r["exit_status"])
	started, ended := acctTime(r["start_time"]), acctTime(r["end_time"])
	signaled := hasES && es > 128 && es <= 128+64

	var o *drms.Outcome
	switch {
	case started.IsZero() && failed != 0:
		o = drms.NotStarted("Grid Engine could not start the job (qacct: failed " + failedText + ")")
	case failed == 0 && signaled:
		o = drms.Signaled(batch.SignalName(es-128), "")
	case failed == 0 && hasES:
		o = drms.Exited(es)
	case failed == 100 && signaled:
		o = drms.Signaled(batch.SignalName(es-128), reasonCancelled+" (qacct: failed "+failedText+")")
	case signaled:
		o = drms.Signaled(batch.SignalName(es-128), limitReason(failedText))
	default:
		o = drms.Unclear("Grid Engine: failed " + failedText + ", exit_status " + r["exit_status"])
	}
	if o.ExitStatus != model.ExitAborted {
		o.Started = started
	}
	o.Ended = ended
	u := drms.Usage{Raw: map[string]string{}}
	for k, v := range r {
		u.Raw[k] = v
	}
	if v, ok := acctNumber(r["ru_wallclock"]); ok {
		u.WallS = &v
	}
	if v, ok := acctNumber(r["cpu"]); ok {
		u.CPUS = &v
	}
	if v, ok := acctNumber(r["ru_maxrss"]); ok {
		k := int64(v) // the KiB count, see above
		u.MaxRSSKiB = &k
	}
	o.Usage = u
	return o
}

// limitReason names a limit from Grid Engine's failed message.
func limitReason(failed string) string {
	l := strings.ToLower(failed)
	switch {
	case strings.Contains(l, "h_rt") || strings.Contains(l, "s_rt") || strings.Contains(l, "wallclock"):
		return "time limit (Grid Engine: failed " + failed + ")"
	case strings.Contains(l, "mem"):
		return "memory limit (Grid Engine: failed " + failed + ")"
	case strings.Contains(l, "cpu"):
		return "cpu time limit (Grid Engine: failed " + failed + ")"
	case failed == "" || strings.HasPrefix(failed, "0"):
		return ""
	}
	return "Grid Engine: failed " + failed
}

// pendingIDs lists the ids of the jobs named name that qstat knows (queued,
// held or running), via `qstat -j NAME`.
func (g gridEngine) pendingIDs(ctx context.Context, name string) ([]string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, g.qstat, "-j", name)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := stdout.String() + stderr.String()
	if err != nil {
		if strings.Contains(out, "do not exist") {
			return nil, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("qstat -j %s: %w", name, ctx.Err())
		}
		return nil, fmt.Errorf("qstat -j %s: %w: %s: %w", name, err, strings.TrimSpace(out), drms.ErrUnavailable)
	}
	return parseQstatJobs(stdout.String(), name), nil
}

// parseQstatJobs reads the job_number of every block of `qstat -j` whose
// job_name is name.
func parseQstatJobs(out, name string) []string {
	var ids []string
	id := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "job_number":
			id = v
		case "job_name":
			if v == name && id != "" {
				ids = append(ids, id)
			}
		}
	}
	return ids
}
