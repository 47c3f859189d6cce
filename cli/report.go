package cli

import (
	"bufio"
	"context"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/dashboard"
)

// reportOptions are report's argument.
type reportOptions struct {
	*Factory
	ID int64
}

func reportCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:      "report",
		Usage:     "print one workflow as a self-contained HTML file (somaflow report ID > report.html)",
		ArgsUsage: "ID",
		Description: "The dashboard's views of one workflow in one file to attach to a mail or a ticket: summary,\n" +
			"dependency graph, job table (failed first, at most 5,000 rows), timeline, and the jobs that did not\n" +
			"succeed in detail (command, environment of the workflow and the job, working directory, log tails).\n" +
			"CSS and drawings are inline; the file loads nothing and runs no script.\n\n" + exitHelp,
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			id, err := workflowArg(cmd, 1, "report needs exactly one workflow ID")
			if err != nil {
				return err
			}
			return reportRun(ctx, f.IO, &reportOptions{Factory: f, ID: id})
		},
	}
}

func reportRun(ctx context.Context, s *IO, o *reportOptions) error {
	c, err := o.Client(ctx)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(s.Out, 1<<16)
	if err := dashboard.WriteReport(ctx, c, o.ID, w); err != nil {
		return withID(o.ID, err)
	}
	return w.Flush()
}
