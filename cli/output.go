package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

// counts summarises a workflow's jobs.
type counts struct{ total, succeeded, failed, aborted, running, waiting int }

func countJobs(doc *client.WorkflowDoc) counts {
	var c counts
	for _, j := range doc.Jobs {
		c.add(j.Status, deref(j.ExitStatus), j.ExitValue, 1)
	}
	return c
}

// add counts n jobs of one outcome.
func (c *counts) add(status, exitStatus string, exitValue *int, n int) {
	c.total += n
	switch {
	case model.Succeeded(status, exitStatus, exitValue):
		c.succeeded += n
	case model.JobEnded(status) && exitStatus == model.ExitAbortedBefore:
		c.aborted += n
	case model.JobEnded(status):
		c.failed += n
	case status == model.JobNotSubmitted:
		c.waiting += n
	default:
		c.running += n
	}
}

// countOutcomes counts the jobs of workflow id in the database.
func countOutcomes(ctx context.Context, c *client.Client, id int64) (counts, []client.JobCount, time.Time, error) {
	var cnt counts
	outcomes, last, err := c.JobCounts(ctx, id)
	for _, o := range outcomes {
		cnt.add(o.Status, o.ExitStatus, o.ExitValue, o.N)
	}
	return cnt, outcomes, last, err
}

// outcomeText is a job's outcome in words: "exit 3", "SIGKILL", ...
func outcomeText(j client.JobDoc) string {
	es := deref(j.ExitStatus)
	switch {
	case !model.JobEnded(j.Status):
		return ""
	case es == model.ExitFinishedRegular && j.ExitValue != nil:
		return fmt.Sprintf("exit %d", *j.ExitValue)
	case es == model.ExitFinishedSignal:
		return "signal " + deref(j.Signal)
	default:
		return es
	}
}

// summary is what wait and run say of a workflow that ended: a line with
// its jobs counted, then a row for each job that gets one (rowWorthy).
type summary struct {
	head   *client.WorkflowDoc // its status document; its jobs are not used
	counts counts
	took   time.Duration
	rows   []client.JobDoc
}

// rowWorthy tells whether a job gets a row of its own in a summary: it
// ended without succeeding, or it succeeded but says something (a log that
// could not be kept).
func rowWorthy(status, exitStatus string, exitValue *int, reason bool) bool {
	return model.JobEnded(status) && (!model.Succeeded(status, exitStatus, exitValue) || reason)
}

// summaryOf sums up a status document.
func summaryOf(doc *client.WorkflowDoc, took time.Duration) summary {
	sum := summary{head: doc, counts: countJobs(doc), took: took}
	for _, j := range doc.Jobs {
		if rowWorthy(j.Status, deref(j.ExitStatus), j.ExitValue, deref(j.Reason) != "") {
			sum.rows = append(sum.rows, j)
		}
	}
	return sum
}

// readSummary sums up workflow id from the database: its jobs are counted
// there, and only those that get a row are kept, so that a workflow of a
// million jobs is summed up quickly and in memory that does not grow with
// it. It took from its submission to its last job's end.
func readSummary(ctx context.Context, c *client.Client, id int64) (summary, error) {
	head, err := c.WorkflowHeader(ctx, id)
	if err != nil {
		return summary{}, err
	}
	cnt, outcomes, last, err := countOutcomes(ctx, c, id)
	if err != nil {
		return summary{}, err
	}
	sum := summary{head: head, counts: cnt, took: tookUntil(head, last)}
	for _, o := range outcomes {
		if rowWorthy(o.Status, o.ExitStatus, o.ExitValue, o.WithReason > 0) {
			err := c.EachUnsuccessfulJobDoc(ctx, id, func(j client.JobDoc) error {
				if rowWorthy(j.Status, deref(j.ExitStatus), j.ExitValue, deref(j.Reason) != "") {
					sum.rows = append(sum.rows, j)
				}
				return nil
			})
			return sum, err
		}
	}
	return sum, nil
}

// failed is the number of jobs that ended without succeeding.
func (sum summary) failed() int { return sum.counts.failed + sum.counts.aborted }

func printSummary(s *IO, sum summary) {
	c, doc := sum.counts, sum.head
	name := ""
	if doc.Name != nil {
		name = fmt.Sprintf(" %q", *doc.Name)
	}
	fmt.Fprintf(s.Out, "workflow %s%s: %s in %s — %d jobs: %d succeeded, %d failed, %d aborted\n",
		doc.ID, name, doc.Status, sum.took.Round(time.Millisecond), c.total, c.succeeded, c.failed, c.aborted)
	if len(sum.rows) == 0 {
		return
	}
	tw := s.newTable()
	fmt.Fprintln(tw, "JOB\tNAME\tSTATUS\tOUTCOME\tREASON\tLAST LINE OF STDERR")
	for _, j := range sum.rows {
		mark := s.paint("31", j.Status)
		if model.Succeeded(j.Status, deref(j.ExitStatus), j.ExitValue) {
			mark = s.paint("33", j.Status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, printable(j.Name), mark, outcomeText(j), printable(deref(j.Reason)), printable(lastLine(j.Stderr)))
	}
	tw.Flush()
}

// printable escapes what a terminal would act on in text from a workflow
// or a job (control characters: escape sequences, carriage returns,
// newlines that break table rows; invalid UTF-8) as Go quotes them
// (\x1b, \n), so that a name or a job's stderr line cannot move the
// cursor, change colours or forge rows. Plain text is returned as it is.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case unicode.IsControl(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// lastLine is the last non-empty line of a file (at most 80 characters).
func lastLine(path *string) string {
	if path == nil {
		return ""
	}
	f, err := os.Open(*path)
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 4096)
	if fi, err := f.Stat(); err == nil && fi.Size() > int64(len(buf)) {
		f.Seek(fi.Size()-int64(len(buf)), 0)
	}
	n, _ := f.Read(buf)
	lines := strings.Split(strings.TrimRight(string(buf[:n]), "\n"), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if len(last) > 80 {
		last = last[:77] + "..."
	}
	return last
}

// elapsed is a workflow's time from its submission to its last job's end.
func elapsed(doc *client.WorkflowDoc) time.Duration {
	var end time.Time
	for _, j := range doc.Jobs {
		if j.Ended != nil {
			if t, err := time.Parse(time.RFC3339, *j.Ended); err == nil && t.After(end) {
				end = t
			}
		}
	}
	return tookUntil(doc, end)
}

// tookUntil is the time from a workflow's submission (to the second, as
// its document says) to end, 0 if end is before it or unknown.
func tookUntil(doc *client.WorkflowDoc, end time.Time) time.Duration {
	if doc.Submitted == nil {
		return 0
	}
	start, err := time.Parse(time.RFC3339, *doc.Submitted)
	if err != nil || end.Before(start) {
		return 0
	}
	return end.Sub(start)
}

// printJobs prints every job of a workflow as an aligned table.
func printJobs(s *IO, doc *client.WorkflowDoc) {
	name := "null"
	if doc.Name != nil {
		name = fmt.Sprintf("%q", *doc.Name)
	}
	c := countJobs(doc)
	fmt.Fprintf(s.Out, "workflow %s %s: %s (backend %s) — %d jobs: %d succeeded, %d failed, %d aborted, %d running, %d waiting\n",
		doc.ID, name, doc.Status, doc.Backend, c.total, c.succeeded, c.failed, c.aborted, c.running, c.waiting)
	if p := doc.BackendUnreachable; p != nil {
		fmt.Fprintln(s.Out, s.paint("33", unreachableText(doc.Backend, p)))
	}
	if p := doc.EngineProblem; p != nil {
		fmt.Fprintln(s.Out, s.paint("31", engineProblemText(p)))
	}
	printJobTable(s, doc)
}

// printJobTable prints the jobs of a status document as an aligned table.
func printJobTable(s *IO, doc *client.WorkflowDoc) {
	tw := s.newTable()
	fmt.Fprintln(tw, "JOB\tNAME\tSTATUS\tEXIT STATUS\tOUTCOME\tATTEMPT\tDRMS ID\tDURATION")
	for _, j := range doc.Jobs {
		status := j.Status
		switch {
		case model.Succeeded(j.Status, deref(j.ExitStatus), j.ExitValue):
			status = s.paint("32", status)
		case model.JobEnded(j.Status):
			status = s.paint("31", status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, printable(j.Name), status, deref(j.ExitStatus),
			outcomeText(j), j.Attempt, deref(j.DRMSID), duration(j))
	}
	tw.Flush()
}

func duration(j client.JobDoc) string {
	if j.Started == nil {
		return ""
	}
	start, err := time.Parse(time.RFC3339, *j.Started)
	if err != nil {
		return ""
	}
	end := time.Now()
	if j.Ended != nil {
		if t, err := time.Parse(time.RFC3339, *j.Ended); err == nil {
			end = t
		}
	}
	return end.Sub(start).Round(time.Second).String()
}

// unreachableText is the line that says a backend cannot be reached.
func unreachableText(backend string, p *client.ProblemDoc) string {
	return fmt.Sprintf("backend %s unreachable since %s: %s (jobs wait; the engine retries)", backend, sinceText(p), p.Message)
}

// engineProblemText is the line that says the engine cannot record its
// progress.
func engineProblemText(p *client.ProblemDoc) string {
	return fmt.Sprintf("the engine cannot record progress since %s: %s (nothing new starts; it retries)", sinceText(p), p.Message)
}

func sinceText(p *client.ProblemDoc) string {
	if t, err := time.Parse(time.RFC3339, p.Since); err == nil {
		return t.Local().Format("15:04:05")
	}
	return p.Since
}

// watchProblems prints on stderr when the workflow's backend cannot be
// reached or the engine cannot record its progress, and again when that
// ends, until stop is called.
func watchProblems(ctx context.Context, s *IO, c *client.Client, backend string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A look a second, not one per change of the database: jobs change
		// it many times a second, and a watcher woken by each write cost
		// the engine's commits CPU time (the chain benchmark saw it).
		tick := time.NewTicker(problemLookInterval)
		defer tick.Stop()
		var shown, shownEngine *client.ProblemDoc
		for {
			p, err := c.BackendUnreachable(ctx, backend)
			switch {
			case err != nil:
			case p != nil && (shown == nil || shown.Message != p.Message):
				fmt.Fprintf(s.ErrOut, "somaflow: %s\n", unreachableText(backend, p))
				shown = p
			case p == nil && shown != nil:
				fmt.Fprintf(s.ErrOut, "somaflow: backend %s answers again\n", backend)
				shown = nil
			}
			switch p := c.EngineProblem(); {
			case p != nil && (shownEngine == nil || shownEngine.Message != p.Message):
				fmt.Fprintf(s.ErrOut, "somaflow: %s\n", engineProblemText(p))
				shownEngine = p
			case p == nil && shownEngine != nil:
				fmt.Fprintln(s.ErrOut, "somaflow: the engine records its progress again")
				shownEngine = nil
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// problemLookInterval is how often watchProblems looks.
const problemLookInterval = time.Second

// startProgress draws a progress bar on a terminal until stop is called.
func startProgress(ctx context.Context, s *IO, c *client.Client, id int64) (stop func()) {
	if !s.Progress() {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			// Redrawn every 200 ms, or less often when counting takes
			// long (a million jobs: about a second), so that the bar
			// takes at most a fifth of a CPU from the jobs.
			began := time.Now()
			if cnt, _, _, err := countOutcomes(ctx, c, id); err == nil {
				ended := cnt.succeeded + cnt.failed + cnt.aborted
				width := 30
				fill := 0
				if cnt.total > 0 {
					fill = ended * width / cnt.total
				}
				fmt.Fprintf(s.ErrOut, "\r[%s%s] %d/%d  %d running  %d failed  %d aborted ",
					strings.Repeat("#", fill), strings.Repeat(".", width-fill), ended, cnt.total, cnt.running, cnt.failed, cnt.aborted)
			}
			select {
			case <-ctx.Done():
				fmt.Fprint(s.ErrOut, "\r\x1b[K")
				return
			case <-time.After(max(progressEvery, progressCost*time.Since(began))):
			}
		}
	}()
	return func() { cancel(); <-done }
}

// The progress bar is redrawn every progressEvery, or progressCost times
// the time counting the jobs took, whichever is longer.
const (
	progressEvery = 200 * time.Millisecond
	progressCost  = 5
)
