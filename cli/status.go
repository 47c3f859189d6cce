package cli

import (
	"context"
	"fmt"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

// statusOptions are status's arguments and flags.
type statusOptions struct {
	*Factory
	ID    int64
	Job   string // "": the whole workflow
	JSON  bool
	Watch bool
}

func statusCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:      "status",
		Usage:     "show a workflow's status and every job's outcome",
		ArgsUsage: "ID [JOB]",
		Description: "Prints the workflow's jobs as a table, or with --json the status document (see the README);\n" +
			"with a JOB (id or name), that job only (--json: its part of the document).\n" +
			"Exits 0 when it printed what was asked, 3 for an unknown id.\n\n" + exitHelp,
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "json", Usage: "print the status document (JSON)"},
			&ucli.BoolFlag{Name: "watch", Usage: "print again at each change until the workflow is done"},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			if n := cmd.Args().Len(); n != 1 && n != 2 {
				return usagef("status needs a workflow ID (and optionally a JOB)")
			}
			id, err := parseID(cmd.Args().First())
			if err != nil {
				return err
			}
			o := &statusOptions{Factory: f, ID: id, Job: cmd.Args().Get(1), JSON: cmd.Bool("json"), Watch: cmd.Bool("watch")}
			return statusRun(ctx, f.IO, o)
		},
	}
}

func statusRun(ctx context.Context, s *IO, o *statusOptions) error {
	if name := o.Resource(); name != "" {
		return remoteStatus(ctx, s, o, name) // remote.go
	}
	if o.Job != "" {
		return statusOfJob(ctx, s, o)
	}
	c, err := o.Client(ctx)
	if err != nil {
		return err
	}
	next, stop := c.Watch()
	defer stop()
	for {
		changed := next()
		if o.Watch && s.Progress() {
			fmt.Fprint(s.Out, "\x1b[H\x1b[2J")
		}
		var status string
		if o.JSON {
			// Streamed job by job: a million-job document needs no
			// million-job buffer.
			if err := c.WriteWorkflowElementsStatus(ctx, o.ID, s.Out, s.outTTY); err != nil || !o.Watch {
				return err
			}
			if status, err = c.WorkflowStatus(ctx, o.ID); err != nil {
				return err
			}
		} else {
			doc, err := c.WorkflowElementsStatus(ctx, o.ID)
			if err != nil {
				return err
			}
			printJobs(s, doc)
			status = doc.Status
		}
		if !o.Watch || status == model.WorkflowDone {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// statusOfJob prints one job of a workflow (status ID JOB).
func statusOfJob(ctx context.Context, s *IO, o *statusOptions) error {
	_, doc, err := o.workflowDoc(ctx, o.ID)
	if err != nil {
		return err
	}
	job, err := findJob(doc, o.Job)
	if err != nil {
		return err
	}
	if o.JSON {
		return s.JSON(job)
	}
	one := *doc
	one.Jobs = []client.JobDoc{*job}
	printJobTable(s, &one)
	if job.Reason != nil {
		fmt.Fprintf(s.Out, "reason: %s\n", printable(*job.Reason))
	}
	for _, p := range []struct {
		name string
		path *string
	}{{"stdout", job.Stdout}, {"stderr", job.Stderr}} {
		if p.path != nil {
			fmt.Fprintf(s.Out, "%s: %s\n", p.name, printable(*p.path))
		}
	}
	return nil
}
