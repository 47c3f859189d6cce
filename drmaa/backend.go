//go:build drmaa

package drmaa

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	godrmaa "github.com/dgruber/drmaa"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/batch"
	"github.com/somaflow/somaflow/drms/execjob"
	"github.com/somaflow/somaflow/privdir"
)

// Compiled says whether DRMAA support is compiled in (build tag `drmaa`).
const Compiled = true

// anyJob is DRMAA_JOB_IDS_SESSION_ANY (the binding has no constant for it).
const anyJob = "DRMAA_JOB_IDS_SESSION_ANY"

// waitSlice bounds one drmaa_wait call of the waiter (drmaa_exit also wakes it).
const waitSlice = 30 // seconds

// Backend runs jobs through DRMAA. It implements drms.Backend, drms.Notifier,
// drms.Locator, drms.Holder and drms.Acknowledger.
type Backend struct {
	cfg   drms.Config
	opts  options
	spool batch.Spool
	ss    *session
	ge    gridEngine
	acct  bool // the Grid Engine fallbacks (qacct, qstat) are on

	events chan drms.Event
	qmu    sync.Mutex
	qcond  *sync.Cond
	queue  []drms.Event
	closed bool
	stop   chan struct{} // closed by Close
	fwd    chan struct{} // closed when the forwarder has stopped
	once   sync.Once
}

var (
	_ drms.Backend  = (*Backend)(nil)
	_ drms.Notifier = (*Backend)(nil)
	_ drms.Locator  = (*Backend)(nil)
	_ drms.Holder   = (*Backend)(nil)

	_ drms.Acknowledger = (*Backend)(nil)
)

// New opens (or joins) the process's DRMAA session and returns a backend.
// The session's contact string is kept in StateDir/drmaa/session, so that a
// restarted engine joins the same session and drmaa_wait still reports the
// jobs the previous engine submitted.
func New(cfg drms.Config) (drms.Backend, error) {
	if cfg.ExecPath == "" {
		return nil, errors.New("drmaa: no somaflow binary (ExecPath) to run jobs under exec-job")
	}
	// The binary runs on the execution hosts, from another directory.
	exe, err := batch.ExecPath(cfg.ExecPath)
	if err != nil {
		return nil, fmt.Errorf("drmaa: %w", err)
	}
	cfg.ExecPath = exe
	opts, err := parseOptions(cfg.Settings)
	if err != nil {
		return nil, err
	}
	spool, err := batch.NewSpool(cfg)
	if err != nil {
		return nil, fmt.Errorf("drmaa: %w", err)
	}
	b := &Backend{cfg: cfg, opts: opts, spool: spool, events: make(chan drms.Event, 256), stop: make(chan struct{}), fwd: make(chan struct{})}
	b.qcond = sync.NewCond(&b.qmu)
	ge, found := newGridEngine()
	b.ge = ge
	b.acct = found
	if opts.accounting != nil {
		if *opts.accounting && !found {
			return nil, errors.New("drmaa: setting accounting=true but qacct/qstat are not on PATH")
		}
		b.acct = *opts.accounting
	}
	contactFile := ""
	contact := ""
	if cfg.StateDir != "" {
		contactFile = filepath.Join(cfg.StateDir, "drmaa", "session")
		if data, err := os.ReadFile(contactFile); err == nil {
			contact = strings.TrimSpace(string(data))
		}
	}
	ss, err := openSession(contact)
	if err != nil {
		return nil, err
	}
	b.ss = ss
	if contactFile != "" && ss.contact != "" && ss.contact != contact {
		if err := os.MkdirAll(filepath.Dir(contactFile), 0o700); err == nil {
			err = privdir.WriteFileAtomic(contactFile, []byte(ss.contact+"\n"))
		}
		if err != nil {
			ss.release()
			return nil, fmt.Errorf("drmaa: record the session contact: %w", err)
		}
	}
	go b.forward()
	return b, nil
}

// Capabilities implements drms.Backend.
func (b *Backend) Capabilities() drms.Capabilities {
	return drms.Capabilities{Name: "drmaa", Queues: true, ExternalCancel: true, SystemFailures: true, SurvivesEngine: true,
		Walltime: strings.TrimSpace(b.opts.walltimeOption) != ""}
}

// Events implements drms.Notifier: one event per job outcome reaped (or
// found) while this backend watches the job. It is closed by Close.
func (b *Backend) Events() <-chan drms.Event { return b.events }

// push queues an event; it never blocks (the forwarder delivers in order).
func (b *Backend) push(ev drms.Event) {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	if b.closed {
		return
	}
	b.queue = append(b.queue, ev)
	b.qcond.Broadcast()
}

func (b *Backend) forward() {
	defer close(b.fwd)
	defer close(b.events)
	for {
		b.qmu.Lock()
		for len(b.queue) == 0 && !b.closed {
			b.qcond.Wait()
		}
		if b.closed {
			b.qmu.Unlock()
			return
		}
		ev := b.queue[0]
		b.queue = b.queue[1:]
		b.qmu.Unlock()
		select {
		case b.events <- ev:
		case <-b.stop:
			return
		}
	}
}

// Close implements drms.Backend: jobs keep running; the DRMAA session ends
// with the last backend of the process.
func (b *Backend) Close() error {
	var err error
	b.once.Do(func() {
		b.qmu.Lock()
		b.closed = true
		b.qcond.Broadcast()
		b.qmu.Unlock()
		close(b.stop)
		<-b.fwd
		b.ss.forget(b)
		err = b.ss.release()
	})
	return err
}

// Submit implements drms.Backend: it writes the attempt's spool files and
// runs `ExecPath exec-job --status ... -- argv...` through drmaa_run_job.
func (b *Backend) Submit(ctx context.Context, spec drms.JobSpec) (drms.Handle, error) {
	if len(spec.Argv) == 0 {
		return drms.Handle{}, &drms.StartError{Reason: "empty command"}
	}
	if spec.Dir == "" {
		return drms.Handle{}, fmt.Errorf("drmaa: job %s has no working directory", spec.Name())
	}
	native, err := b.opts.nativeSpec(spec)
	if err != nil {
		return drms.Handle{}, err
	}
	if err := ctx.Err(); err != nil {
		return drms.Handle{}, fmt.Errorf("drmaa: submit %s: %w", spec.Name(), err)
	}
	paths, err := b.spool.Prepare(spec)
	if err != nil {
		return drms.Handle{}, fmt.Errorf("drmaa: %w", err)
	}
	argv := b.spool.ExecArgv(b.cfg.ExecPath, spec)
	id, err := b.ss.run(jobTemplate{
		command: argv[0], args: argv[1:], name: spec.Name(), wd: paths.Dir,
		output: paths.Output, native: native,
	})
	if err != nil {
		return drms.Handle{}, fmt.Errorf("drmaa: submit %s: %w", spec.Name(), err)
	}
	st := handleState{Name: spec.Name(), Status: paths.Status, Contact: b.ss.contact, Submitted: time.Now()}
	b.ss.watch(b, id, st, true)
	return encodeHandle(id, st), nil
}

// Status implements drms.Backend: drmaa_job_ps per job (a library call, no
// process), outcomes reaped by the waiter, and the fallbacks (status file,
// qacct) for jobs DRMAA no longer knows.
func (b *Backend) Status(ctx context.Context, hs []drms.Handle) (map[string]drms.State, error) {
	out := make(map[string]drms.State, len(hs))
	for _, h := range hs {
		st, err := b.state(ctx, h)
		if err != nil {
			return out, err
		}
		out[h.ID] = st
	}
	return out, nil
}

// Recover implements drms.Backend: the job is watched again by its DRMS id;
// running ones through drmaa_job_ps (and drmaa_wait when the session is the
// one it was submitted in), finished ones through the status file or qacct.
func (b *Backend) Recover(ctx context.Context, h drms.Handle) (drms.State, error) {
	return b.state(ctx, h)
}

func (b *Backend) state(ctx context.Context, h drms.Handle) (drms.State, error) {
	hs, err := decodeHandle(h)
	if err != nil {
		return drms.State{}, err
	}
	j := b.ss.watch(b, h.ID, hs, false)
	if o := b.ss.outcome(j); o != nil {
		return drms.State{Phase: drms.Ended, Started: o.Started, Outcome: o}, nil
	}
	// drmaa_job_ps is one request to the scheduler per job: asked once per
	// ps_interval; in between, exec-job's files say what changed.
	ps, known := b.ss.psCached(j, b.opts.psInterval)
	switch {
	case known && !b.ss.waitable(j) && exists(hs.Status):
		// Ended (exec-job wrote its status): read below, whatever the
		// last answer said. drmaa_wait reports this session's jobs.
		known = false
	case known:
		if ps == godrmaa.PsQueuedActive && !b.started(j).IsZero() {
			ps = godrmaa.PsRunning // exec-job began since the last answer
		}
	default:
		var err error
		ps, err = b.ss.psOf(j)
		if err != nil && !isDRMAA(err, godrmaa.InvalidJob) {
			return drms.State{}, fmt.Errorf("drmaa: status of job %s: %w", h.ID, err)
		}
		known = err == nil
	}
	if known {
		switch ps {
		case godrmaa.PsQueuedActive:
			return drms.State{Phase: drms.Queued}, nil
		case godrmaa.PsUserOnHold:
			return drms.State{Phase: drms.Held, By: drms.ByUser}, nil
		case godrmaa.PsSystemOnHold:
			return drms.State{Phase: drms.Held, By: drms.BySystem}, nil
		case godrmaa.PsUserSystemOnHold:
			return drms.State{Phase: drms.Held, By: drms.ByUserAndSystem}, nil
		case godrmaa.PsRunning:
			return drms.State{Phase: drms.Running, Started: b.started(j)}, nil
		case godrmaa.PsUserSuspended:
			return drms.State{Phase: drms.Suspended, By: drms.ByUser, Started: b.started(j)}, nil
		case godrmaa.PsSystemSuspended:
			return drms.State{Phase: drms.Suspended, By: drms.BySystem, Started: b.started(j)}, nil
		case godrmaa.PsUserSystemSuspended:
			return drms.State{Phase: drms.Suspended, By: drms.ByUserAndSystem, Started: b.started(j)}, nil
		case godrmaa.PsDone, godrmaa.PsFailed:
			if b.ss.waitable(j) {
				// Ended, not reaped yet: the waiter delivers the outcome.
				return drms.State{Phase: drms.Running, Started: b.started(j)}, nil
			}
		default: // PsUndetermined
			return drms.State{Phase: drms.Unknown}, nil
		}
	}
	// Ended in another session, or forgotten by DRMAA: the status file, then qacct.
	o, err := b.fallback(ctx, h.ID, hs)
	if err != nil {
		return drms.State{}, err
	}
	if o == nil {
		o = b.ss.missing(j, b.opts.forgetGrace, b.started(j))
	}
	if o == nil {
		return drms.State{Phase: drms.Unknown}, nil
	}
	o = b.ss.finish(j, o)
	return drms.State{Phase: drms.Ended, Started: o.Started, Outcome: o}, nil
}

// exists tells whether a file is there.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// started is when exec-job began (its started file), zero if unknown.
func (b *Backend) started(j *job) time.Time {
	if t := b.ss.startedAt(j); !t.IsZero() {
		return t
	}
	s, err := batch.ReadStarted(execjob.StartedPath(j.hs.Status))
	if err != nil || s == nil {
		return time.Time{}
	}
	b.ss.setStarted(j, s.Time)
	return s.Time
}

// fallback is the outcome of a job DRMAA cannot report: the exec-job status
// file, else Grid Engine's accounting; nil when neither knows it yet.
func (b *Backend) fallback(ctx context.Context, id string, hs handleState) (*drms.Outcome, error) {
	file, err := batch.ReadOutcome(hs.Status)
	if err != nil {
		file = nil // a damaged status file: the DRMS's record decides
	}
	if !b.acct {
		return file, nil
	}
	if file != nil {
		return file, nil
	}
	recs, err := b.ge.acct(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("drmaa: job %s: %w", id, err)
	}
	if r := pickRecord(recs, id, hs.Name); r != nil {
		return acctOutcome(r), nil
	}
	return nil, nil
}

// Kill implements drms.Backend: drmaa_control(TERMINATE). A job that has
// already left the DRMS is not an error.
func (b *Backend) Kill(ctx context.Context, h drms.Handle) error {
	if _, err := decodeHandle(h); err != nil {
		return err
	}
	if err := b.ss.control(h.ID, (*godrmaa.Session).TerminateJob); err != nil && !isDRMAA(err, godrmaa.InvalidJob) {
		return fmt.Errorf("drmaa: terminate job %s: %w", h.ID, err)
	}
	return nil
}

// Acknowledge implements drms.Acknowledger: the session forgets the
// outcomes of hs, which the engine has recorded (Recover still answers from
// the status file or qacct).
func (b *Backend) Acknowledge(ctx context.Context, hs []drms.Handle) error {
	b.ss.drop(hs)
	return nil
}

// Hold implements drms.Holder.
func (b *Backend) Hold(ctx context.Context, h drms.Handle) error {
	if err := b.ss.control(h.ID, (*godrmaa.Session).HoldJob); err != nil {
		return fmt.Errorf("drmaa: hold job %s: %w", h.ID, err)
	}
	return nil
}

// Release implements drms.Holder.
func (b *Backend) Release(ctx context.Context, h drms.Handle) error {
	if err := b.ss.control(h.ID, (*godrmaa.Session).ReleaseJob); err != nil {
		return fmt.Errorf("drmaa: release job %s: %w", h.ID, err)
	}
	return nil
}

// Locate implements drms.Locator: the spool's started file (exec-job records
// the DRMS job id there), then Grid Engine's qstat and qacct by job name.
// An attempt whose environment file was never written never reached
// drmaa_run_job (Submit writes it first), so it was never submitted.
func (b *Backend) Locate(ctx context.Context, spec drms.JobSpec) (drms.Handle, bool, bool, error) {
	paths := b.spool.Paths(spec)
	hs := handleState{Name: spec.Name(), Status: paths.Status}
	s, err := batch.ReadStarted(paths.Started)
	if err == nil && s != nil && s.JobID != "" {
		return encodeHandle(s.JobID, hs), true, false, nil
	}
	envInfo, envErr := os.Stat(paths.Env)
	if errors.Is(envErr, fs.ErrNotExist) {
		return drms.Handle{}, false, true, nil
	}
	if !b.acct {
		return drms.Handle{}, false, false, nil
	}
	// qacct first, then qstat, then qacct again: a job that ends in between
	// is seen by one of them.
	for i := 0; i < 2; i++ {
		recs, err := b.ge.acct(ctx, spec.Name())
		if err != nil {
			return drms.Handle{}, false, false, err
		}
		if r := pickRecord(recs, "", spec.Name()); r != nil {
			return encodeHandle(r["jobnumber"], hs), true, false, nil
		}
		if i == 1 {
			break
		}
		ids, err := b.ge.pendingIDs(ctx, spec.Name())
		if err != nil {
			return drms.Handle{}, false, false, err
		}
		if len(ids) > 0 {
			return encodeHandle(ids[len(ids)-1], hs), true, false, nil
		}
	}
	// Nowhere. A job that ended recently may not be in the accounting yet.
	if envErr == nil && time.Since(envInfo.ModTime()) < b.opts.forgetGrace {
		return drms.Handle{}, false, false, fmt.Errorf("drmaa: attempt %s not found yet (accounting may lag): %w", spec.Name(), drms.ErrUnavailable)
	}
	return drms.Handle{}, false, true, nil
}

// isDRMAA reports whether err is a DRMAA error with that id.
func isDRMAA(err error, id godrmaa.ErrorID) bool {
	var de *godrmaa.Error
	return errors.As(err, &de) && de.ID == id
}
