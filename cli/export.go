package cli

import (
	"context"
	"fmt"
	"os"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

// exportOptions are export's arguments and flags.
type exportOptions struct {
	*Factory
	ID     int64
	To     model.Format
	Output string // "": stdout
}

func exportCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:      "export",
		Usage:     "print a stored workflow's definition (soma-workflow JSON or native)",
		ArgsUsage: "ID",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "to", Value: "soma", Usage: "format: soma or native"},
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to this file instead of stdout"},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			id, err := workflowArg(cmd, 1, "export needs exactly one workflow ID")
			if err != nil {
				return err
			}
			to, err := formatFlag(cmd)
			if err != nil {
				return err
			}
			return exportRun(ctx, f.IO, &exportOptions{Factory: f, ID: id, To: to, Output: cmd.String("output")})
		},
	}
}

func exportRun(ctx context.Context, s *IO, o *exportOptions) error {
	c, err := o.Client(ctx)
	if err != nil {
		return err
	}
	w, err := c.Workflow(ctx, o.ID)
	if err != nil {
		return err
	}
	return writeWorkflow(s, w, o.To, o.Output)
}

// formatFlag reads --to: soma or native.
func formatFlag(cmd *ucli.Command) (model.Format, error) {
	to := model.Format(cmd.String("to"))
	if to != model.FormatSoma && to != model.FormatNative {
		return "", usagef("--to must be soma or native, got %q", to)
	}
	return to, nil
}

// writeWorkflow writes w in format to, to the file out or ("") to Out.
func writeWorkflow(s *IO, w *model.Workflow, to model.Format, out string) error {
	data, err := client.Serialize(w, to)
	if err != nil {
		return err
	}
	if out != "" {
		if err := os.WriteFile(out, data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", out, err)
		}
		return nil
	}
	_, err = s.Out.Write(data)
	return err
}
