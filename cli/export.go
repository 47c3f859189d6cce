package cli

import (
	"context"
	"os"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

func exportCommand(s *IO) *ucli.Command {
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
			to := model.Format(cmd.String("to"))
			if to != model.FormatSoma && to != model.FormatNative {
				return usagef("--to must be soma or native, got %q", to)
			}
			c, _, err := openState(ctx, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			w, err := c.Workflow(ctx, id)
			if err != nil {
				return err
			}
			data, err := client.Serialize(w, to)
			if err != nil {
				return err
			}
			if out := cmd.String("output"); out != "" {
				return os.WriteFile(out, data, 0o644)
			}
			_, err = s.Out.Write(data)
			return err
		},
	}
}
