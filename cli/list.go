package cli

import (
	"context"
	"fmt"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
)

// listOptions are list's flags.
type listOptions struct {
	*Factory
	JSON bool
}

func listCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:  "list",
		Usage: "list the workflows of the state dir",
		Flags: []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print as JSON (the status document's workflow fields, times in UTC)"}},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			if cmd.Args().Len() > 0 {
				return usagef("list takes no arguments")
			}
			return listRun(ctx, f.IO, &listOptions{Factory: f, JSON: cmd.Bool("json")})
		},
	}
}

func listRun(ctx context.Context, s *IO, o *listOptions) error {
	if name := o.Resource(); name != "" {
		return remoteList(ctx, s, o, name) // remote.go
	}
	c, err := o.Client(ctx)
	if err != nil {
		return err
	}
	ws, err := c.Workflows(ctx)
	if err != nil {
		return err
	}
	if o.JSON {
		rows := make([]client.WorkflowHeader, 0, len(ws))
		for _, w := range ws {
			rows = append(rows, w.Header())
		}
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
}

// localTime is a time for people: RFC3339 in the local zone, "" if unset.
func localTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format(time.RFC3339)
}
