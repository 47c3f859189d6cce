package model

// Job statuses, exactly soma-workflow's strings (constants.py).
const (
	JobNotSubmitted        = "not_submitted"
	JobUndetermined        = "undetermined"
	JobQueuedActive        = "queued_active"
	JobSystemOnHold        = "system_on_hold"
	JobUserOnHold          = "user_on_hold"
	JobUserSystemOnHold    = "user_system_on_hold"
	JobRunning             = "running"
	JobSystemSuspended     = "system_suspended"
	JobUserSuspended       = "user_suspended"
	JobUserSystemSuspended = "user_system_suspended"
	JobDone                = "done"
	JobFailed              = "failed"
	JobDeletePending       = "delete_pending"
	JobKillPending         = "kill_pending"
	JobSubmissionPending   = "submission_pending"
	JobWarning             = "warning"
)

// Exit statuses, exactly soma-workflow's strings.
const (
	ExitUndetermined    = "exit_status_undetermined"
	ExitAborted         = "aborted"
	ExitAbortedBefore   = "aborted_before_running"
	ExitFinishedRegular = "finished_regularly"
	ExitFinishedSignal  = "finished_signal"
	ExitFinishedUnclear = "finished_unclear_condition"
	ExitKilledByUser    = "killed_by_user"
)

// ExitStatuses lists every exit status, in soma-workflow's order.
var ExitStatuses = []string{ExitUndetermined, ExitAborted, ExitAbortedBefore, ExitFinishedRegular,
	ExitFinishedSignal, ExitFinishedUnclear, ExitKilledByUser}

// Workflow statuses, exactly soma-workflow's strings — the misspelling of
// WorkflowNotStarted is soma-workflow's own and is kept on purpose.
const (
	WorkflowNotStarted    = "worklflow_not_started"
	WorkflowInProgress    = "workflow_in_progress"
	WorkflowDone          = "workflow_done"
	WorkflowDeletePending = "delete_pending"
	WorkflowWarning       = "warning"
)

// File transfer statuses, exactly soma-workflow's strings.
const (
	TransferDoNotExist        = "do not exist"
	TransferOnClientSide      = "on client side"
	TransferOnCRSide          = "on computing resource side"
	TransferOnBothSides       = "on both sides"
	TransferTransferingToCR   = "transfering client->cr"
	TransferTransferingFromCR = "transfering cr->client"
	TransferUnderEdition      = "under edition"
)

// JobEnded reports whether a job status is final.
func JobEnded(status string) bool { return status == JobDone || status == JobFailed }

// Succeeded reports whether an ended job counts as a success: done,
// finished_regularly, exit value 0 and no signal. Anything else that ended
// "did not succeed" (for dependants, restart and exit codes).
func Succeeded(status, exitStatus string, exitValue *int) bool {
	return status == JobDone && exitStatus == ExitFinishedRegular && exitValue != nil && *exitValue == 0
}
