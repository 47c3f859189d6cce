package cli

import (
	"context"
	"fmt"
	"strconv"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

// waitOptions are wait's arguments and flags.
type waitOptions struct {
	*Factory
	IDs     []int64
	JSON    bool
	Timeout time.Duration // < 0: forever
	Job     string        // "": whole workflows
}

func waitCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:      "wait",
		Usage:     "wait until workflows are done; exit 1 if a job did not succeed, 4 on timeout",
		ArgsUsage: "ID... | ID --job JOB",
		Description: "Waits for each workflow (the background engine is started if none runs), then prints a\n" +
			"summary or, with --json, the status documents. With several ids the most serious exit\n" +
			"code wins (2, 3, 5, 4, 1, 0). With --job, waits for that job of the workflow only (exit 0 if it\n" +
			"succeeded, 1 if not; --json prints its part of the document).\n\n" + exitHelp,
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "json", Usage: "print the status documents (a JSON array)"},
			&ucli.StringFlag{Name: "timeout", Usage: "give up after `DURATION` (exit 4): seconds, or 30m, 2h, 7d (default: wait forever)"},
			&ucli.StringFlag{Name: "job", Usage: "wait for this `JOB` (id or name) of the workflow only"},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			ids, err := parseIDs(cmd, "wait")
			if err != nil {
				return err
			}
			timeout, err := durationFlag(cmd, "timeout")
			if err != nil {
				return err
			}
			if cmd.String("job") != "" && len(ids) != 1 {
				return usagef("wait --job takes one workflow ID")
			}
			return waitRun(ctx, f.IO, &waitOptions{Factory: f, IDs: ids, JSON: cmd.Bool("json"), Timeout: timeout, Job: cmd.String("job")})
		},
	}
}

func waitRun(ctx context.Context, s *IO, o *waitOptions) error {
	if name := o.Resource(); name != "" {
		return remoteWait(ctx, s, o, name) // remote.go
	}
	c, err := o.Client(ctx)
	if err != nil {
		return err
	}
	if err := o.EnsureEngine(); err != nil {
		return err
	}
	// An engine that dies while we wait (crash, OOM kill) is started
	// again, so that a wait never hangs on a workflow nobody runs.
	keep, stopKeep := context.WithCancel(ctx)
	defer stopKeep()
	go func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-keep.Done():
				return
			case <-tick.C:
				if err := o.EnsureEngine(); err != nil {
					fmt.Fprintf(s.ErrOut, "somaflow: %v\n", err)
				}
			}
		}
	}()
	if o.Job != "" {
		return waitForJob(ctx, s, o, c)
	}
	return waitAll(ctx, s, o, func(id int64, left time.Duration) (ended, error) {
		stop := startProgress(ctx, s, c, id)
		defer stop()
		if infos, err := c.Workflows(ctx, id); err == nil && len(infos) == 1 {
			defer watchProblems(ctx, s, c, infos[0].Backend)()
		}
		if err := c.WaitWorkflow(ctx, id, left); err != nil {
			return ended{}, err
		}
		if o.JSON {
			// The document is streamed now, its jobs counted give the
			// exit code.
			cnt, _, _, err := countOutcomes(ctx, c, id)
			return ended{sum: summary{counts: cnt}, c: c, id: id}, err
		}
		sum, err := readSummary(ctx, c, id)
		return ended{sum: sum}, err
	})
}

// ended is what wait and run report of a workflow that ended: its summary,
// and for --json its status document, read whole (doc) or streamed from
// the state (c and id).
type ended struct {
	sum summary
	doc *client.WorkflowDoc
	c   *client.Client
	id  int64
}

// writeJSON prints the status document of e.
func (e ended) writeJSON(ctx context.Context, s *IO) error {
	if e.c == nil {
		return s.JSON(e.doc)
	}
	return e.c.WriteWorkflowElementsStatus(ctx, e.id, s.Out, s.outTTY)
}

// endedDoc is ended with a status document, summed up as wait does.
func endedDoc(doc *client.WorkflowDoc, err error) (ended, error) {
	if err != nil {
		return ended{}, err
	}
	return ended{doc: doc, sum: summaryOf(doc, elapsed(doc))}, nil
}

// waitAll waits for each workflow of o in turn with waitOne (given what
// is left of the timeout, -1 for none), and prints the summaries, or the
// status documents as they were when each wait ended; the most serious
// exit code wins.
func waitAll(ctx context.Context, s *IO, o *waitOptions, waitOne func(id int64, left time.Duration) (ended, error)) error {
	deadline := time.Now().Add(o.Timeout)
	var codes []int
	var sums []summary
	var docs []*client.WorkflowDoc // --json, documents read whole
	var arr *client.DocArray       // --json, documents streamed as each wait ends
	for _, id := range o.IDs {
		left := time.Duration(-1)
		if o.Timeout >= 0 {
			left = max(0, time.Until(deadline))
		}
		e, err := waitOne(id, left)
		if err != nil {
			fmt.Fprintf(s.ErrOut, "somaflow: %v\n", withID(id, err))
			codes = append(codes, ExitCode(err))
			continue
		}
		if e.sum.failed() > 0 {
			codes = append(codes, ExitJobFailed)
		} else {
			codes = append(codes, ExitOK)
		}
		switch {
		case !o.JSON:
			sums = append(sums, e.sum)
		case e.c != nil:
			if arr == nil {
				arr = e.c.NewDocArray(s.Out, s.outTTY)
			}
			if err := arr.Add(ctx, e.id); err != nil {
				return err
			}
		default:
			docs = append(docs, e.doc)
		}
	}
	switch {
	case arr != nil:
		if err := arr.Close(); err != nil {
			return err
		}
	case o.JSON:
		if err := s.JSON(docs); err != nil {
			return err
		}
	default:
		for _, sum := range sums {
			printSummary(s, sum)
		}
	}
	if code := worst(codes...); code != ExitOK {
		return silentExit{code}
	}
	return nil
}

// waitForJob waits for one job of a workflow (wait ID --job JOB) and exits
// as wait does: 0 if it succeeded, 1 if not, 4 on timeout.
func waitForJob(ctx context.Context, s *IO, o *waitOptions, c *client.Client) error {
	id, name := o.IDs[0], o.Job
	doc, err := c.WorkflowElementsStatus(ctx, id)
	if err != nil {
		return withID(id, err)
	}
	job, err := findJob(doc, name)
	if err != nil {
		return err
	}
	jobID, _ := strconv.ParseInt(job.ID, 10, 64)
	if err := c.WaitJob(ctx, []int64{jobID}, o.Timeout); err != nil {
		return fmt.Errorf("workflow %d, job %s: %w", id, name, err)
	}
	if job, err = c.JobTerminationStatus(ctx, jobID); err != nil {
		return err
	}
	if o.JSON {
		if err := s.JSON(job); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(s.Out, "job %s %s of workflow %d: %s, %s\n", job.ID, printable(job.Name), id, job.Status, outcomeText(*job))
	}
	if !model.Succeeded(job.Status, deref(job.ExitStatus), job.ExitValue) {
		return silentExit{ExitJobFailed}
	}
	return nil
}
