package cli

import (
	"context"

	ucli "github.com/urfave/cli/v3"
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
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			if cmd.Args().Len() != 1 {
				return usagef("status needs exactly one workflow ID")
			}
			id, err := parseID(cmd.Args().First())
			if err != nil {
				return err
			}
			c, err := openClient(ctx, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			doc, err := c.WorkflowElementsStatus(ctx, id)
			if err != nil {
				return err
			}
			if cmd.Bool("json") {
				return s.JSON(doc)
			}
			printJobs(s, doc)
			return nil
		},
	}
}
