package cli

import (
	"context"
	"fmt"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

func statusCommand(s *IO) *ucli.Command {
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
			if name := cmd.String("resource"); name != "" {
				return remoteStatus(ctx, s, cmd, name) // remote.go
			}
			if cmd.Args().Len() == 2 {
				return statusOfJob(ctx, s, cmd)
			}
			id, err := workflowArg(cmd, 1, "status needs a workflow ID (and optionally a JOB)")
			if err != nil {
				return err
			}
			c, _, err := openState(ctx, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			next, stop := c.Watch()
			defer stop()
			for {
				changed := next()
				doc, err := c.WorkflowElementsStatus(ctx, id)
				if err != nil {
					return err
				}
				if cmd.Bool("watch") && s.Progress() {
					fmt.Fprint(s.Out, "\x1b[H\x1b[2J")
				}
				if cmd.Bool("json") {
					err = s.JSON(doc)
				} else {
					printJobs(s, doc)
				}
				if err != nil || !cmd.Bool("watch") || doc.Status == model.WorkflowDone {
					return err
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-changed:
				}
			}
		},
	}
}

// statusOfJob prints one job of a workflow (status ID JOB).
func statusOfJob(ctx context.Context, s *IO, cmd *ucli.Command) error {
	c, doc, err := workflowDoc(ctx, cmd, 2, "status needs a workflow ID and a JOB")
	if err != nil {
		return err
	}
	defer c.Close()
	job, err := findJob(doc, cmd.Args().Get(1))
	if err != nil {
		return err
	}
	if cmd.Bool("json") {
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
