package cli

import (
	"context"
	"fmt"
	"time"

	ucli "github.com/urfave/cli/v3"
)

func expireCommand(s *IO) *ucli.Command {
	return &ucli.Command{
		Name:      "expire",
		Usage:     "change when a workflow is removed (RFC3339, YYYY-MM-DD or +DURATION)",
		ArgsUsage: "ID DATE",
		Flags:     []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print the new expiration as JSON"}},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			id, err := workflowArg(cmd, 2, "expire needs a workflow ID and a DATE")
			if err != nil {
				return err
			}
			t, err := parseDate(cmd.Args().Get(1))
			if err != nil {
				return err
			}
			c, _, err := openState(ctx, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.ChangeWorkflowExpirationDate(ctx, id, t); err != nil {
				return err
			}
			if cmd.Bool("json") {
				return s.JSON(map[string]string{"id": fmt.Sprint(id), "expiration": t.UTC().Format(time.RFC3339)})
			}
			fmt.Fprintf(s.Out, "workflow %d expires %s\n", id, t.Format(time.RFC3339))
			return nil
		},
	}
}
