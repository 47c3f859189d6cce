package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/somaflow/somaflow/client"
)

// Exit codes, decided here and nowhere else (design.md, CLI conventions).
const (
	ExitOK        = 0 // success
	ExitJobFailed = 1 // a job did not succeed
	ExitBadInput  = 2 // bad input or usage
	ExitNotFound  = 3 // unknown workflow or job id
	ExitTimeout   = 4 // a wait timed out
	ExitInternal  = 5 // database or backend unreachable, internal error
)

// exitHelp is the exit-code table shown in --help and the README.
const exitHelp = `EXIT CODES:
   0  ok
   1  a job did not succeed (run, wait)
   2  bad input or usage (malformed or invalid workflow, bad flag)
   3  unknown workflow or job id
   4  timeout (wait --timeout)
   5  internal error (database or backend unreachable)
   With several ids the most serious wins, in the order 2, 3, 5, 4, 1, 0.`

// usageError marks a command-line usage error (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// withID prefixes an error with the workflow it is about, unless it
// already names it.
func withID(id int64, err error) error {
	prefix := fmt.Sprintf("workflow %d", id)
	if strings.HasPrefix(err.Error(), prefix+":") || strings.HasPrefix(err.Error(), prefix+" ") {
		return err
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// errJobsFailed is returned by run/wait when a job did not succeed; the
// summary or document was already printed.
var errJobsFailed = errors.New("a job did not succeed")

// silentExit carries an exit code whose explanation was already printed.
type silentExit struct{ code int }

func (e silentExit) Error() string { return fmt.Sprintf("exit %d", e.code) }

// ExitCode maps an error to the process exit code.
func ExitCode(err error) int {
	var se silentExit
	var ue usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &se):
		return se.code
	case errors.Is(err, errJobsFailed):
		return ExitJobFailed
	case errors.As(err, &ue), errors.Is(err, client.ErrInvalid):
		return ExitBadInput
	case errors.Is(err, client.ErrUnknownObject):
		return ExitNotFound
	case errors.Is(err, client.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return ExitTimeout
	default:
		return ExitInternal
	}
}

// severity orders exit codes for several ids: 2, 3, 5, 4, 1, 0.
var severity = map[int]int{ExitBadInput: 6, ExitNotFound: 5, ExitInternal: 4, ExitTimeout: 3, ExitJobFailed: 2, ExitOK: 1}

// worst returns the most serious of several exit codes.
func worst(codes ...int) int {
	w := ExitOK
	for _, c := range codes {
		if severity[c] > severity[w] {
			w = c
		}
	}
	return w
}
