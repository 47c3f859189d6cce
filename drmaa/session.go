//go:build drmaa

package drmaa

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	godrmaa "github.com/dgruber/drmaa"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/batch"
)

// session is the process's one DRMAA session, shared by every Backend of
// the process, with the one waiter goroutine that reaps ended jobs
// (drmaa_wait on any job of the session).
type session struct {
	s       godrmaa.Session
	contact string

	mu      sync.Mutex
	cond    *sync.Cond // a waitable job was added, or closing
	jobs    map[string]*job
	orphans map[string]waitResult // reaped before any backend watched them
	nwait   int                   // waitable jobs without an outcome
	gen     int                   // bumped when a waitable job is added
	refs    int
	closing bool
	done    chan struct{} // closed when the waiter has returned
	// psCalls counts drmaa_job_ps calls (the load on the scheduler).
	psCalls atomic.Int64
}

// job is what the session knows of one DRMS job.
type job struct {
	id string
	hs handleState
	// waitable: submitted in this session (or in the session it re-joined),
	// so drmaa_wait reports its end.
	waitable bool
	owners   map[*Backend]bool
	outcome  *drms.Outcome
	// missingSince is when the job was first unknown to DRMAA, to the
	// accounting and to the spool.
	missingSince time.Time
	started      time.Time
	// psLast is the last drmaa_job_ps answer, at psAt (zero: none, or a
	// control call since made it stale).
	psLast godrmaa.PsType
	psAt   time.Time
}

var (
	procMu sync.Mutex
	proc   *session
)

// openSession joins the process's session, or starts it: drmaa_init with
// contact (the session of an earlier engine), or a new session when that
// fails or contact is "".
func openSession(contact string) (*session, error) {
	procMu.Lock()
	defer procMu.Unlock()
	if proc != nil {
		proc.mu.Lock()
		proc.refs++
		proc.mu.Unlock()
		return proc, nil
	}
	ss := &session{jobs: map[string]*job{}, orphans: map[string]waitResult{}, refs: 1, done: make(chan struct{})}
	ss.cond = sync.NewCond(&ss.mu)
	err := ss.s.Init(contact)
	if err != nil && contact != "" {
		err = ss.s.Init("")
	}
	if err != nil {
		return nil, fmt.Errorf("drmaa: start a session: %w: %w", err, drms.ErrUnavailable)
	}
	c, err := godrmaa.GetContact()
	if err != nil {
		_ = ss.s.Exit()
		return nil, fmt.Errorf("drmaa: session contact: %w", err)
	}
	ss.contact = c
	proc = ss
	go ss.waiter()
	return ss, nil
}

// release drops one reference; the last one ends the session (drmaa_exit,
// which also wakes the waiter) and waits for the waiter to return.
func (ss *session) release() error {
	procMu.Lock()
	defer procMu.Unlock()
	ss.mu.Lock()
	ss.refs--
	if ss.refs > 0 {
		ss.mu.Unlock()
		return nil
	}
	ss.closing = true
	ss.cond.Broadcast()
	ss.mu.Unlock()
	err := ss.s.Exit()
	<-ss.done
	proc = nil
	if err != nil {
		return fmt.Errorf("drmaa: end the session: %w", err)
	}
	return nil
}

// jobTemplate is what Submit puts in a DRMAA job template.
type jobTemplate struct {
	command string
	args    []string
	name    string
	wd      string
	output  string // the DRMS's own output of the job (stdout and stderr joined)
	native  string
}

// run submits one job.
func (ss *session) run(t jobTemplate) (string, error) {
	jt, err := ss.s.AllocateJobTemplate()
	if err != nil {
		return "", unavailable(err)
	}
	defer ss.s.DeleteJobTemplate(&jt)
	set := []struct {
		what string
		err  error
	}{
		{"remote command", jt.SetRemoteCommand(t.command)},
		{"arguments", jt.SetArgs(t.args)},
		{"job name", jt.SetJobName(t.name)},
		{"working directory", jt.SetWD(t.wd)},
		// DRMAA paths are [host]:path; an empty host is any host.
		{"output path", jt.SetOutputPath(":" + t.output)},
		{"join files", jt.SetJoinFiles(true)},
	}
	if t.native != "" {
		set = append(set, struct {
			what string
			err  error
		}{"native specification", jt.SetNativeSpecification(t.native)})
	}
	for _, s := range set {
		if s.err != nil {
			return "", fmt.Errorf("job template %s: %w", s.what, s.err)
		}
	}
	id, err := ss.s.RunJob(&jt)
	if err != nil {
		switch {
		case isDRMAA(err, godrmaa.DrmCommunicationFailure):
			return "", fmt.Errorf("%w: %w", err, drms.ErrSubmitUncertain)
		case isDRMAA(err, godrmaa.TryLater), isDRMAA(err, godrmaa.NoActiveSession):
			return "", fmt.Errorf("%w: %w", err, drms.ErrUnavailable)
		case isDRMAA(err, godrmaa.DeniedByDrm), isDRMAA(err, godrmaa.InvalidArgument),
			isDRMAA(err, godrmaa.InvalidAttributeFormat), isDRMAA(err, godrmaa.InvalidAttributeValue),
			isDRMAA(err, godrmaa.ConflictingAttributeValues):
			// Refused as it is (a bad native specification or queue): the
			// same every time, so the job fails with the DRMS's words.
			return "", &drms.StartError{Reason: "the DRMS refused the job: " + strings.TrimSpace(err.Error())}
		}
		return "", err
	}
	return id, nil
}

func unavailable(err error) error {
	if isDRMAA(err, godrmaa.DrmCommunicationFailure) || isDRMAA(err, godrmaa.TryLater) {
		return fmt.Errorf("%w: %w", err, drms.ErrUnavailable)
	}
	return err
}

func (ss *session) ps(id string) (godrmaa.PsType, error) {
	ss.psCalls.Add(1)
	ps, err := ss.s.JobPs(id)
	return ps, unavailable(err)
}

// psOf asks the DRMS for job j's state and keeps the answer for psCached.
func (ss *session) psOf(j *job) (godrmaa.PsType, error) {
	ps, err := ss.ps(j.id)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err == nil {
		j.psLast, j.psAt = ps, time.Now()
	} else {
		j.psAt = time.Time{}
	}
	return ps, err
}

// psCached is job j's last drmaa_job_ps answer if it is younger than
// every.
func (ss *session) psCached(j *job, every time.Duration) (godrmaa.PsType, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if j.psAt.IsZero() || time.Since(j.psAt) >= every {
		return 0, false
	}
	return j.psLast, true
}

// psStale makes the next state of job id ask the DRMS (a hold, release or
// kill changed it).
func (ss *session) psStale(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if j := ss.jobs[id]; j != nil {
		j.psAt = time.Time{}
	}
}

// control applies one of the binding's control methods
// ((*godrmaa.Session).TerminateJob, HoldJob, ReleaseJob) to job id.
func (ss *session) control(id string, action func(*godrmaa.Session, string) error) error {
	defer ss.psStale(id)
	return unavailable(action(&ss.s, id))
}

// watch records that b watches job id and returns the session's record of
// it. submitted: the job was just submitted in this session. A job is
// waitable when it belongs to this session's contact.
func (ss *session) watch(b *Backend, id string, hs handleState, submitted bool) *job {
	ss.mu.Lock()
	j := ss.jobs[id]
	if j != nil && j.hs.Name != hs.Name {
		// A job id reused by a fresh cell: the old record is not this job.
		if j.waitable && j.outcome == nil {
			ss.nwait--
		}
		j = nil
	}
	if j == nil {
		j = &job{id: id, hs: hs, owners: map[*Backend]bool{}}
		ss.jobs[id] = j
		if submitted || (hs.Contact != "" && hs.Contact == ss.contact) {
			j.waitable = true
			ss.nwait++
			ss.gen++
			ss.cond.Broadcast()
		}
	}
	j.owners[b] = true
	w, reaped := ss.orphans[id]
	if reaped {
		delete(ss.orphans, id)
	}
	ss.mu.Unlock()
	if reaped {
		ss.finish(j, ss.reapedOutcome(j, w))
	}
	return j
}

// drop forgets the ended jobs of hs.
func (ss *session) drop(hs []drms.Handle) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, h := range hs {
		if j := ss.jobs[h.ID]; j != nil && j.outcome != nil {
			delete(ss.jobs, h.ID)
		}
	}
}

// forget removes b from the watchers of every job.
func (ss *session) forget(b *Backend) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, j := range ss.jobs {
		delete(j.owners, b)
	}
}

func (ss *session) outcome(j *job) *drms.Outcome {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return j.outcome
}

func (ss *session) waitable(j *job) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return j.waitable
}

func (ss *session) startedAt(j *job) time.Time {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return j.started
}

func (ss *session) setStarted(j *job, t time.Time) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	j.started = t
}

// finish records the outcome of j once and pushes it to every backend that
// watches j; it returns the outcome recorded (an earlier one wins).
func (ss *session) finish(j *job, o *drms.Outcome) *drms.Outcome {
	ss.mu.Lock()
	if j.outcome != nil {
		o = j.outcome
		ss.mu.Unlock()
		return o
	}
	j.outcome = o
	if j.waitable {
		ss.nwait--
	}
	owners := make([]*Backend, 0, len(j.owners))
	for b := range j.owners {
		owners = append(owners, b)
	}
	ss.mu.Unlock()
	ev := drms.Event{ID: j.id, State: drms.State{Phase: drms.Ended, Started: o.Started, Outcome: o}}
	for _, b := range owners {
		b.push(ev)
	}
	return o
}

// missing is called when neither DRMAA, nor the spool, nor the accounting
// knows job j: after grace it ends (nil before).
func (ss *session) missing(j *job, grace time.Duration, started time.Time) *drms.Outcome {
	ss.mu.Lock()
	if j.missingSince.IsZero() {
		j.missingSince = time.Now()
	}
	since := j.missingSince
	ss.mu.Unlock()
	if time.Since(since) < grace {
		return nil
	}
	if started.IsZero() {
		return drms.Unclear(fmt.Sprintf("job %s left the DRMS without starting and without an accounting record (%s?)", j.id, reasonCancelledQueued))
	}
	return drms.Undetermined(fmt.Sprintf("job %s started but neither DRMAA, nor the accounting, nor its status file %s records its end", j.id, j.hs.Status))
}

// reapedOutcome is the outcome of a job drmaa_wait reported: its status
// file first, then what drmaa_wait said.
func (ss *session) reapedOutcome(j *job, w waitResult) *drms.Outcome {
	file, err := batch.ReadOutcome(j.hs.Status)
	if err != nil {
		file = nil
	}
	return batch.Combine(file, waitOutcome(w))
}

// waiter reaps the session's jobs as they end (drmaa_wait on any job) and
// delivers each outcome at once; it returns when the session ends.
func (ss *session) waiter() {
	defer close(ss.done)
	for {
		ss.mu.Lock()
		for !ss.closing && ss.nwait <= 0 {
			ss.cond.Wait()
		}
		if ss.closing {
			ss.mu.Unlock()
			return
		}
		gen := ss.gen
		ss.mu.Unlock()

		info, err := ss.s.Wait(anyJob, waitSlice)
		switch {
		case err == nil:
			ss.reaped(info.JobID(), waitResult{
				Exited: info.HasExited(), Exit: int(info.ExitStatus()),
				Signaled: info.HasSignaled(), Signal: info.TerminationSignal(),
				Aborted: info.HasAborted(), CoreDump: info.HasCoreDump(),
				Usage: info.ResourceUsage(),
			})
		case isDRMAA(err, godrmaa.ExitTimeout):
			// Nothing ended within the slice, or drmaa_exit woke us.
		case isDRMAA(err, godrmaa.NoRusage):
			// A job was reaped without usage (deleted before it ran); the
			// binding drops its id, so find which jobs are gone.
			ss.sweep(true)
		case isDRMAA(err, godrmaa.NoActiveSession):
			return
		default:
			// InvalidJob: no job of the session left to wait for although
			// some are watched (forgotten ones); or a DRMS error.
			ss.sweep(false)
			ss.idle(gen, 2*time.Second)
		}
	}
}

// idle waits until a waitable job is added, the session closes, or d passes.
func (ss *session) idle(gen int, d time.Duration) {
	t := time.AfterFunc(d, func() {
		ss.mu.Lock()
		ss.cond.Broadcast()
		ss.mu.Unlock()
	})
	defer t.Stop()
	deadline := time.Now().Add(d)
	ss.mu.Lock()
	for !ss.closing && ss.gen == gen && time.Now().Before(deadline) {
		ss.cond.Wait()
	}
	ss.mu.Unlock()
}

// reaped delivers the end of job id that drmaa_wait reported.
func (ss *session) reaped(id string, w waitResult) {
	ss.mu.Lock()
	j := ss.jobs[id]
	if j == nil {
		ss.orphans[id] = w
		ss.mu.Unlock()
		return
	}
	ss.mu.Unlock()
	ss.finish(j, ss.reapedOutcome(j, w))
}

// sweep looks for waitable jobs that DRMAA no longer knows: reaped without
// usage (noUsage), or forgotten. The reaped ones end at once (status file
// first); forgotten ones stop being waitable and are left to Status.
func (ss *session) sweep(noUsage bool) {
	ss.mu.Lock()
	var cand []*job
	for _, j := range ss.jobs {
		if j.waitable && j.outcome == nil {
			cand = append(cand, j)
		}
	}
	ss.mu.Unlock()
	for _, j := range cand {
		if _, err := ss.s.JobPs(j.id); !isDRMAA(err, godrmaa.InvalidJob) {
			continue
		}
		if noUsage {
			ss.finish(j, ss.reapedOutcome(j, waitResult{NoUsage: true}))
			continue
		}
		ss.mu.Lock()
		if j.waitable && j.outcome == nil {
			j.waitable = false
			ss.nwait--
		}
		ss.mu.Unlock()
	}
}
