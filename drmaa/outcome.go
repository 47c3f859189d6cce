package drmaa

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/batch"
	"github.com/somaflow/somaflow/model"
)

// waitResult is what drmaa_wait told about one job, kept apart from the cgo
// binding so that the mapping below is testable without libdrmaa.
type waitResult struct {
	Exited   bool
	Exit     int
	Signaled bool
	Signal   string // "SIGKILL", as drmaa_wtermsig names it
	// Aborted is the binding's HasAborted. github.com/dgruber/drmaa v1.0.0
	// fills it from drmaa_wifsignaled, so it always equals Signaled and is
	// never used.
	Aborted  bool
	CoreDump bool
	// Usage is the resource map: strings of floats ("137.0000").
	Usage map[string]string
	// NoUsage: drmaa_wait failed with DRMAA_ERRNO_NO_RUSAGE, which Grid
	// Engine returns for a job deleted before it ran.
	NoUsage bool
}

// Reasons used in outcomes built here.
const (
	reasonCancelled       = "cancelled outside somaflow"
	reasonCancelledQueued = "cancelled outside somaflow while queued"
)

// waitOutcome maps drmaa_wait's answer to an outcome, for a job without an
// exec-job status file (the status file comes first; see Combine). The quirks:
//
//   - HasAborted is wrong in the binding (it equals HasSignaled): ignored.
//   - A job terminated while running (drmaa_control TERMINATE or qdel) has
//     neither the exited nor the signaled flag; the resource map's
//     exit_status is 128+N (137). That is Grid Engine's own report of the
//     signal it sent, so it ends finished_signal / "cancelled outside
//     somaflow" (the engine turns it into killed_by_user when the kill was
//     its own).
//   - A job whose remote command could not be started (the exec-job binary
//     missing on the node) has no flag and no start_time.
//   - A job deleted while queued or held has no usage at all (NoUsage).
func waitOutcome(w waitResult) *drms.Outcome {
	usage, started, ended := usageFromMap(w.Usage)
	var o *drms.Outcome
	switch {
	case w.NoUsage:
		o = drms.Unclear(reasonCancelledQueued + " (Grid Engine returned no usage: the job was deleted before it ran)")
	case w.Exited:
		o = drms.Exited(w.Exit)
	case w.Signaled:
		sig := w.Signal
		if sig == "" {
			sig = "SIGKILL"
		}
		o = drms.Signaled(sig, "")
	default:
		es, hasES := floatField(w.Usage, "exit_status")
		switch {
		case started.IsZero():
			o = drms.NotStarted("the job never started on the execution host (Grid Engine reported no start time); is the somaflow binary reachable there?")
		case hasES && es > 128 && es <= 128+64:
			o = drms.Signaled(batch.SignalName(int(es)-128),
				fmt.Sprintf("%s (Grid Engine reported no exit and no signal; exit_status %d)", reasonCancelled, int(es)))
		case hasES:
			o = drms.Unclear(fmt.Sprintf("Grid Engine reported neither exit nor signal (exit_status %d)", int(es)))
		default:
			o = drms.Unclear("Grid Engine reported neither exit nor signal, and no exit_status")
		}
	}
	o.Started, o.Ended, o.Usage = started, ended, usage
	if o.ExitStatus == model.ExitAborted {
		o.Started = time.Time{}
	}
	return o
}

// usageFromMap reads DRMAA's resource map (Grid Engine: ru_wallclock, cpu,
// ru_maxrss in KiB, start_time and end_time in Unix seconds).
func usageFromMap(m map[string]string) (u drms.Usage, started, ended time.Time) {
	if len(m) == 0 {
		return u, started, ended
	}
	u.Raw = make(map[string]string, len(m))
	for k, v := range m {
		u.Raw[k] = v
	}
	if v, ok := floatField(m, "ru_wallclock"); ok {
		u.WallS = &v
	}
	if v, ok := floatField(m, "cpu"); ok {
		u.CPUS = &v
	}
	if v, ok := floatField(m, "ru_maxrss"); ok {
		k := int64(v)
		u.MaxRSSKiB = &k
	}
	return u, unixField(m, "start_time"), unixField(m, "end_time")
}

func floatField(m map[string]string, k string) (float64, bool) {
	s, ok := m[k]
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// unixField is a time in Unix seconds; zero (Grid Engine's "never") gives
// the zero time.
func unixField(m map[string]string, k string) time.Time {
	v, ok := floatField(m, k)
	if !ok || v <= 0 {
		return time.Time{}
	}
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(frac*1e9))
}
