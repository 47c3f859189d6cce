// Package drms defines the contract between the engine and a distributed
// resource management system (a "backend": local processes, Slurm, PBS,
// DRMAA): a small Backend interface, optional extras as small interfaces
// found by type assertion, a Capabilities struct, and an opaque versioned
// Handle that the engine persists so that a restarted engine can re-attach.
//
// Outcomes follow one table for every backend (see design.md): a backend
// reports what happened (an Outcome); Resolve applies the engine's own kill
// intent on top of it.
package drms

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/somaflow/somaflow/model"
)

// JobSpec is everything a backend needs to run one attempt of one job. The
// engine resolves parameters, special paths, environment precedence and
// default log files before calling Submit.
type JobSpec struct {
	// EngineTag identifies the engine (and state dir) that owns the job; batch
	// backends put it in the DRMS job name and never touch untagged jobs.
	EngineTag  string
	WorkflowID int64
	JobID      int64
	JobName    string
	Attempt    int
	// Argv is the command; Argv[0] is looked up on PATH of Env.
	Argv []string
	// Env is the complete environment ("K=V"): submitter's environment, then
	// workflow env, then job env, then SOMAWF_* variables.
	Env []string
	// Dir is the working directory (never empty).
	Dir string
	// Stdin is a file to read standard input from; "" means /dev/null.
	Stdin string
	// Stdout and Stderr are files (never empty); with Join, stderr goes to Stdout.
	Stdout, Stderr string
	Join           bool
	// LazyStdout and LazyStderr mark Stdout and Stderr as the engine's own
	// log files (not files the user named): a local runner may create each
	// one only when the job first writes to it, so a job that writes
	// nothing leaves no file. Batch backends ignore them.
	LazyStdout, LazyStderr bool
	// Queue is the workflow's queue (partition), "" for the default.
	Queue string
	// NativeSpec holds DRMS options passed through as they are.
	NativeSpec []string
	// Parallel asks for nodes / CPUs per node; nil for a serial job.
	Parallel *model.ParallelJobInfo
	// Resources are the CPUs, memory, walltime and GPUs the job asks for
	// (zero: not asked). Batch backends pass them to the DRMS; the local
	// backends take cpus slots and the engine enforces the walltime.
	Resources model.Resources
	// Priority: higher first when slots are scarce (the engine already orders).
	Priority int
	// Pool names the slots the job takes, for backends with
	// Capabilities.Pools: the backend starts it only while the jobs of its
	// pool it runs take at most PoolLimit slots with it (PoolNeed each, at
	// least one; a job alone in its pool always starts), in the order they
	// were submitted, and holds it queued until then. PoolLimit 0: no limit.
	Pool      string
	PoolLimit int
	PoolNeed  int
}

// Name is the DRMS job name carrying engine tag, workflow, job and attempt:
// sf-TAG-W-J-A. Batch backends use it to find an attempt after a crash.
func (s JobSpec) Name() string {
	return fmt.Sprintf("sf-%s-%d-%d-%d", s.EngineTag, s.WorkflowID, s.JobID, s.Attempt)
}

// Key identifies a job attempt inside the engine.
func (s JobSpec) Key() string { return fmt.Sprintf("%d.%d", s.JobID, s.Attempt) }

// Handle is the backend's opaque, versioned record of a submitted attempt.
// The engine stores it as it is and gives it back to Status, Kill and Recover.
type Handle struct {
	// Version is the backend's handle format version.
	Version int
	// ID is the DRMS job id (the pid for local jobs), shown to users.
	ID string
	// State is backend-private data.
	State []byte
}

// Phase is where a job is in its life at the DRMS.
type Phase int

const (
	// Unknown: the DRMS does not know the job (yet, or any more) and the
	// backend has no outcome for it.
	Unknown Phase = iota
	// Queued: waiting at the DRMS (pending counts as not started).
	Queued
	// Held: held at the DRMS.
	Held
	// Running: started.
	Running
	// Suspended: started, then suspended.
	Suspended
	// Ended: the Outcome is known.
	Ended
	// Dropped: the backend proves the attempt never started and never
	// will (the supervisor that held it queued died): the engine submits
	// it again.
	Dropped
)

func (p Phase) String() string {
	return [...]string{"unknown", "queued", "held", "running", "suspended", "ended", "dropped"}[p]
}

// By says who holds or suspends a job (Phase Held or Suspended), where the
// DRMS tells: soma-workflow reports user_on_hold, system_on_hold and
// user_system_on_hold (and the same for suspended) apart.
type By int

const (
	// ByUser: the job's owner (the default when the DRMS does not say).
	ByUser By = iota
	// BySystem: the DRMS or an administrator.
	BySystem
	// ByUserAndSystem: both.
	ByUserAndSystem
)

// State is what a backend knows of one attempt.
type State struct {
	Phase Phase
	// By says who holds or suspends the job when Phase is Held or
	// Suspended.
	By By
	// Started is when the job started running (zero if unknown or never).
	Started time.Time
	// Reason is why the job waits at the DRMS while Queued or Held (its
	// pending reason in the DRMS's words: Slurm's squeue reason, PBS's
	// comment); "" when it does not say.
	Reason string
	// Outcome is set when Phase is Ended.
	Outcome *Outcome
	// Handle, when set, replaces the attempt's handle (a job the local
	// supervisor held queued got its pid when it started); the engine
	// stores it and uses its ID from then on.
	Handle *Handle
}

// Outcome is how an attempt ended, in soma-workflow's terms (the outcome
// table of design.md): status done/failed, an exit status, and exit value or
// signal.
type Outcome struct {
	Status     string // model.JobDone or model.JobFailed
	ExitStatus string // model.Exit*
	ExitValue  *int
	Signal     string // "SIGKILL" etc., "" when none
	Reason     string // "" when none
	Started    time.Time
	Ended      time.Time
	Usage      Usage
}

// Usage is the resource usage of an attempt; nil fields are unknown.
type Usage struct {
	WallS     *float64
	CPUS      *float64
	MaxRSSKiB *int64
	// Raw holds the values as the DRMS reported them.
	Raw map[string]string
}

// Exited is the outcome of a process that exited with code n.
func Exited(n int) *Outcome {
	return &Outcome{Status: model.JobDone, ExitStatus: model.ExitFinishedRegular, ExitValue: &n}
}

// Signaled is the outcome of a process killed by signal sig ("SIGKILL").
func Signaled(sig, reason string) *Outcome {
	return &Outcome{Status: model.JobDone, ExitStatus: model.ExitFinishedSignal, Signal: sig, Reason: reason}
}

// NotStarted is the outcome of a job that could not start (command, working
// directory or stdin missing); reason says what was missing.
func NotStarted(reason string) *Outcome {
	return &Outcome{Status: model.JobFailed, ExitStatus: model.ExitAborted, Reason: reason}
}

// Unclear is the outcome of a job ended by the system without a visible
// signal (NODE_FAIL, BOOT_FAIL, PREEMPTED, cancelled while queued).
func Unclear(reason string) *Outcome {
	return &Outcome{Status: model.JobFailed, ExitStatus: model.ExitFinishedUnclear, Reason: reason}
}

// Undetermined is the outcome of a job whose end was lost; reason says why.
func Undetermined(reason string) *Outcome {
	return &Outcome{Status: model.JobFailed, ExitStatus: model.ExitUndetermined, Reason: reason}
}

// Resolve applies the engine's precedence on top of what the backend saw:
// when the user asked to kill the attempt (killIntent), it ends killed_by_user
// if it had started and aborted_before_running otherwise, whatever the DRMS
// reported. Times and usage are kept.
func Resolve(killIntent bool, o *Outcome) *Outcome {
	if !killIntent || o == nil {
		return o
	}
	r := *o
	r.ExitValue, r.Signal, r.Reason = nil, "", ""
	r.Status = model.JobFailed
	if o.Started.IsZero() || o.ExitStatus == model.ExitAborted || o.ExitStatus == model.ExitAbortedBefore {
		r.ExitStatus = model.ExitAbortedBefore
	} else {
		r.ExitStatus = model.ExitKilledByUser
	}
	return &r
}

// Capabilities says what a backend can do; the engine and the conformance
// suite ask it instead of switching on backend names.
type Capabilities struct {
	// Name is the backend's name ("local", "slurm", ...), for display only.
	Name string
	// Queues: jobs may wait at the DRMS before running (kill while pending
	// is then testable).
	Queues bool
	// ExternalCancel: an administrator can cancel jobs outside somaflow.
	ExternalCancel bool
	// SystemFailures: the DRMS can end jobs without a signal (node failure).
	SystemFailures bool
	// Supervisor: jobs run under a supervisor process that can be lost.
	Supervisor bool
	// SurvivesEngine: jobs keep running while no engine runs, and Recover
	// finds them again (false: an engine restart ends them undetermined).
	SurvivesEngine bool
	// MaxJobsDefault is the default limit on running jobs (0 = unlimited).
	MaxJobsDefault int
	// Arrays: the engine may give every job it submits in one cycle to
	// SubmitArray at once (the backend implements ArraySubmitter and the
	// option is on).
	Arrays bool
	// Dependencies: the engine may submit a job before its dependencies
	// ended, with SubmitAfter (DependencySubmitter, option on).
	Dependencies bool
	// LazyOutput: files marked LazyStdout/LazyStderr are created only when
	// the job first writes to them (false: they are always created).
	LazyOutput bool
	// Walltime: the DRMS ends a job at its Resources.Walltime itself
	// (false: the engine kills it then).
	Walltime bool
	// Pools: the backend enforces JobSpec.Pool's limit itself, holding
	// the jobs over it queued, so the engine may submit ahead of free
	// slots (a job's end then starts the next without a round trip to the
	// engine). Jobs are queued when submitted; a Running event follows
	// when they start.
	Pools bool
}

// Backend is the contract every DRMS implements.
type Backend interface {
	// Capabilities describes the backend.
	Capabilities() Capabilities
	// Submit starts (or queues) one attempt. An error means it was NOT
	// submitted, except for ErrSubmitUncertain.
	Submit(ctx context.Context, spec JobSpec) (Handle, error)
	// Status reports the state of many attempts in one call (one squeue per
	// engine cycle, however many jobs), keyed by Handle.ID. Attempts missing
	// from the map are Unknown.
	Status(ctx context.Context, hs []Handle) (map[string]State, error)
	// Kill stops an attempt (its whole process group / DRMS job). The
	// outcome is then reported by Status / Notifier as usual.
	Kill(ctx context.Context, h Handle) error
	// Recover re-attaches to an attempt submitted by an earlier engine and
	// returns its current state; an Ended state carries the outcome.
	Recover(ctx context.Context, h Handle) (State, error)
	// Close releases the backend's resources (running jobs are not killed).
	Close() error
}

// Event is pushed by a Notifier when an attempt changes phase.
type Event struct {
	ID    string // Handle.ID
	State State
}

// Notifier is implemented by backends that push state changes, so that the
// engine reacts at once instead of at its next cycle.
type Notifier interface {
	Events() <-chan Event
}

// Locator is implemented by backends that can look for an attempt whose
// submission intent was recorded but whose handle was not (a crash between
// the two): found gives its handle; neverSubmitted proves it never reached
// the DRMS (it is then submitted now); neither means nobody can tell, and
// the attempt ends exit_status_undetermined.
type Locator interface {
	Locate(ctx context.Context, spec JobSpec) (h Handle, found, neverSubmitted bool, err error)
}

// Acknowledger is implemented by backends that keep outcomes until the engine
// has recorded them (the local supervisor keeps every exit in its journal):
// the engine calls Acknowledge after it committed the outcomes of hs, and
// the backend may then forget them. Until then Recover still answers.
type Acknowledger interface {
	Acknowledge(ctx context.Context, hs []Handle) error
}

// Holder is implemented by backends that can hold and release queued jobs.
type Holder interface {
	Hold(ctx context.Context, h Handle) error
	Release(ctx context.Context, h Handle) error
}

// ArraySubmitter is implemented by backends that can submit many jobs in
// few DRMS calls (job arrays). The specs may differ (commands, files); the
// backend groups those it can put in one array. It returns one handle per
// spec, in order; an error means none was submitted (a *StartError: the
// DRMS refused them all), except for ErrSubmitUncertain.
type ArraySubmitter interface {
	SubmitArray(ctx context.Context, specs []JobSpec) ([]Handle, error)
}

// DependencySubmitter is implemented by backends that can hand dependencies
// to the DRMS: the job starts after every handle in after ended successfully,
// and is cancelled by the DRMS when one did not.
type DependencySubmitter interface {
	SubmitAfter(ctx context.Context, spec JobSpec, after []Handle) (Handle, error)
}

// ErrSubmitUncertain means Submit could not tell whether the job reached the
// DRMS (a timeout); the engine then uses Locator before any retry.
var ErrSubmitUncertain = errors.New("submission outcome unknown")

// ErrUnavailable wraps errors that mean the DRMS cannot be reached now; the
// engine backs off and tries again.
var ErrUnavailable = errors.New("DRMS unavailable")

// Config is what every backend constructor receives.
type Config struct {
	// StateDir is the engine's state directory.
	StateDir string
	// SpoolDir is where batch backends write job scripts and exec-job status
	// files; it must be visible from compute nodes. Default StateDir/spool.
	SpoolDir string
	// ExecPath is the somaflow binary that batch jobs run as
	// `somaflow exec-job --status FILE -- argv...`.
	ExecPath string
	// EngineTag identifies the owning engine (see JobSpec.EngineTag).
	EngineTag string
	// Settings holds backend-specific options ("arrays": "true", ...).
	Settings map[string]string
}

// StartError is returned by Submit when the backend saw at once that the job
// cannot start (command, working directory or stdin file missing). The
// engine records it as failed / aborted with Reason; nothing was submitted.
type StartError struct{ Reason string }

func (e *StartError) Error() string { return "cannot start: " + e.Reason }

// EngineTag is the engine tag of a state dir: 8 hex digits of its path's
// hash, put in DRMS job names (and spool subdirs) so that engines never
// touch each other's jobs.
func EngineTag(stateDir string) string {
	sum := sha256.Sum256([]byte(stateDir))
	return hex.EncodeToString(sum[:])[:8]
}
