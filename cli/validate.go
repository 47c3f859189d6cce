package cli

import (
	"context"
	"fmt"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
)

func validateCommand(s *IO) *ucli.Command {
	return &ucli.Command{
		Name:      "validate",
		Usage:     "check a workflow file without running it",
		ArgsUsage: "FILE",
		Description: "Decodes the file (soma-workflow JSON or native YAML/JSON, detected) and checks it: cycles,\n" +
			"unknown or duplicated jobs, empty commands, bad types, and what somaflow cannot run. Every\n" +
			"problem is printed with the job and field it concerns. Exit 0 when valid, 2 otherwise.",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			if cmd.Args().Len() != 1 {
				return usagef("validate needs exactly one FILE")
			}
			path := cmd.Args().First()
			w, format, err := readWorkflow(s, path)
			if err == nil {
				err = client.Check(w)
			}
			if cmd.Bool("json") {
				res := map[string]any{"file": path, "valid": err == nil, "format": format}
				if err != nil {
					res["error"] = err.Error()
				} else {
					res["jobs"], res["dependencies"], res["groups"] = len(w.Jobs), len(w.AllDependencies()), len(w.Groups)
				}
				if jerr := s.JSON(res); jerr != nil {
					return jerr
				}
				if err != nil {
					return silentExit{ExitCode(err)}
				}
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "%s: valid %s workflow: %d jobs, %d dependencies, %d groups\n", path, format, len(w.Jobs), len(w.AllDependencies()), len(w.Groups))
			return nil
		},
	}
}
