package cli

import (
	"context"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/model"
)

// convertOptions are convert's arguments and flags.
type convertOptions struct {
	File   string
	To     model.Format
	Output string // "": stdout
}

func convertCommand(f *Factory) *ucli.Command {
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
			to, err := formatFlag(cmd)
			if err != nil {
				return err
			}
			return convertRun(ctx, f.IO, &convertOptions{File: cmd.Args().First(), To: to, Output: cmd.String("output")})
		},
	}
}

func convertRun(ctx context.Context, s *IO, o *convertOptions) error {
	w, _, err := readWorkflow(s, o.File)
	if err != nil {
		return err
	}
	return writeWorkflow(s, w, o.To, o.Output)
}
