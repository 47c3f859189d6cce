package cli

import (
	"context"
	"fmt"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/model"
)

func statusCommand(s *IO) *ucli.Command {
	return &ucli.Command{
		Name:      "status",
		Usage:     "show a workflow's status and every job's outcome",
		ArgsUsage: "ID",
		Description: "Prints the workflow's jobs as a table, or with --json the status document (see the README).\n" +
			"Exits 0 when it printed what was asked, 3 for an unknown id.\n\n" + exitHelp,
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "json", Usage: "print the status document (JSON)"},
			&ucli.BoolFlag{Name: "watch", Usage: "print again at each change until the workflow is done"},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			id, err := workflowArg(cmd, 1, "status needs exactly one workflow ID")
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
