package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/somaflow/somaflow/client"
	ucli "github.com/urfave/cli/v3"
)

func listCommand(s *IO) *ucli.Command {
	return &ucli.Command{
		Name:  "list",
		Usage: "list the workflows of the state dir",
		Flags: []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print as JSON"}},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			if name := cmd.String("resource"); name != "" {
				return remoteList(ctx, s, cmd, name) // remote.go
			}
			c, _, err := openState(ctx, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			ws, err := c.Workflows(ctx)
			if err != nil {
				return err
			}
			rows := make([]client.WorkflowHeader, 0, len(ws))
			for _, w := range ws {
				rows = append(rows, w.Header())
			}
			if cmd.Bool("json") {
				return s.JSON(rows)
			}
			tw := s.newTable()
			fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tBACKEND\tSUBMITTED\tEXPIRES")
			for _, w := range ws {
				name := ""
				if w.Name != nil {
					name = printable(*w.Name)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", w.ID, name, w.Status, w.Backend, localTime(w.Submitted), localTime(w.Expiration))
			}
			return tw.Flush()
		},
	}
}

// localTime is a time for people: RFC3339 in the local zone, "" if unset.
func localTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format(time.RFC3339)
}
