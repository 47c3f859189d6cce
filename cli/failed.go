package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

// failedOptions are failed's arguments and flags.
type failedOptions struct {
	*Factory
	ID                                int64
	JSON, IncludeAborted, IncludeKill bool
	Statuses                          []string
}

func failedCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:      "failed",
		Usage:     "list the jobs of a workflow that did not succeed (soma-workflow's list_failed_jobs)",
		ArgsUsage: "ID",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "json", Usage: "print the jobs' documents as JSON"},
			&ucli.BoolFlag{Name: "include-aborted", Usage: "also jobs that never ran (aborted, aborted_before_running)"},
			&ucli.BoolFlag{Name: "include-user-killed", Usage: "also jobs killed by the user"},
			&ucli.StringSliceFlag{Name: "status", Usage: "exactly the jobs with this exit status (repeatable)"},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			id, err := workflowArg(cmd, 1, "failed needs exactly one workflow ID")
			if err != nil {
				return err
			}
			for _, st := range cmd.StringSlice("status") {
				if !slices.Contains(model.ExitStatuses, st) {
					return usagef("--status %q is not an exit status (one of %s)", st, strings.Join(model.ExitStatuses, ", "))
				}
			}
			return failedRun(ctx, f.IO, &failedOptions{Factory: f, ID: id, JSON: cmd.Bool("json"),
				IncludeAborted: cmd.Bool("include-aborted"), IncludeKill: cmd.Bool("include-user-killed"), Statuses: cmd.StringSlice("status")})
		},
	}
}

func failedRun(ctx context.Context, s *IO, o *failedOptions) error {
	c, err := o.Client(ctx)
	if err != nil {
		return err
	}
	ids, err := c.ListFailedJobs(ctx, o.ID, client.ListFailedOptions{
		IncludeAborted: o.IncludeAborted, IncludeUserKilled: o.IncludeKill, ExitStatuses: o.Statuses,
	})
	if err != nil {
		return err
	}
	docs := make([]client.JobDoc, 0, len(ids))
	for _, jid := range ids {
		d, err := c.JobTerminationStatus(ctx, jid)
		if err != nil {
			return err
		}
		docs = append(docs, *d)
	}
	if o.JSON {
		return s.JSON(docs)
	}
	tw := s.newTable()
	fmt.Fprintln(tw, "JOB\tNAME\tSTATUS\tEXIT STATUS\tOUTCOME\tREASON")
	for _, j := range docs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, printable(j.Name), j.Status, deref(j.ExitStatus), outcomeText(j), printable(deref(j.Reason)))
	}
	return tw.Flush()
}
