package cli

import (
	"context"
	"fmt"
	"time"

	ucli "github.com/urfave/cli/v3"
)

// expireOptions are expire's arguments and flags.
type expireOptions struct {
	*Factory
	ID   int64
	When time.Time
	JSON bool
}

func expireCommand(f *Factory) *ucli.Command {
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
			return expireRun(ctx, f.IO, &expireOptions{Factory: f, ID: id, When: t, JSON: cmd.Bool("json")})
		},
	}
}

func expireRun(ctx context.Context, s *IO, o *expireOptions) error {
	c, err := o.Client(ctx)
	if err != nil {
		return err
	}
	if err := c.ChangeWorkflowExpirationDate(ctx, o.ID, o.When); err != nil {
		return err
	}
	if o.JSON {
		return s.JSON(map[string]string{"id": fmt.Sprint(o.ID), "expiration": o.When.UTC().Format(time.RFC3339)})
	}
	fmt.Fprintf(s.Out, "workflow %d expires %s\n", o.ID, o.When.Format(time.RFC3339))
	return nil
}
