package cli

import (
	"context"
	"fmt"
	"os"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

func convertCommand(s *IO) *ucli.Command {
	return &ucli.Command{
		Name:      "convert",
		Usage:     "convert a workflow file between soma-workflow JSON and the native format",
		ArgsUsage: "FILE",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "to", Usage: "target format: soma or native", Required: true},
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to this file instead of stdout"},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			if cmd.Args().Len() != 1 {
				return usagef("convert needs exactly one FILE")
			}
			to := model.Format(cmd.String("to"))
			if to != model.FormatSoma && to != model.FormatNative {
				return usagef("--to must be soma or native, got %q", to)
			}
			w, _, err := readWorkflow(s, cmd.Args().First())
			if err != nil {
				return err
			}
			data, err := client.Serialize(w, to)
			if err != nil {
				return err
			}
			if out := cmd.String("output"); out != "" {
				if err := os.WriteFile(out, data, 0o644); err != nil {
					return fmt.Errorf("write %s: %w", out, err)
				}
				return nil
			}
			_, err = s.Out.Write(data)
			return err
		},
	}
}
