package cli

import (
	"context"
	"errors"
	"fmt"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

// validateOptions are validate's arguments and flags.
type validateOptions struct {
	File             string
	JSON             bool
	TranslationFiles []string // the configuration's, for shared resource paths
}

func validateCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:      "validate",
		Usage:     "check a workflow file without running it",
		ArgsUsage: "FILE",
		Description: "Decodes the file (soma-workflow JSON or native YAML/JSON, detected) and checks it: cycles,\n" +
			"unknown or duplicated jobs, empty commands, bad types, and what somaflow cannot run. Every\n" +
			"problem is printed with the job and field it concerns (and its line when the format has lines),\n" +
			"all at once: a bad value does not hide the rest. --json: \"problems\" is an array of\n" +
			"{file, line, column, job, field, message} (null where unknown). Exit 0 when valid, 2 otherwise.",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			if cmd.Args().Len() != 1 {
				return usagef("validate needs exactly one FILE")
			}
			return validateRun(ctx, f.IO, &validateOptions{File: cmd.Args().First(), JSON: cmd.Bool("json"), TranslationFiles: f.Config.TranslationFiles})
		},
	}
}

func validateRun(ctx context.Context, s *IO, o *validateOptions) error {
	path := o.File
	w, format, err := readWorkflow(s, path)
	if err == nil {
		err = client.CheckTranslated(w, o.TranslationFiles)
	}
	if o.JSON {
		res := map[string]any{"file": path, "valid": err == nil, "format": format}
		if err != nil {
			res["error"] = err.Error()
			res["problems"] = problemDocs(path, err)
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
}

// problemDoc is one problem of `validate --json`.
type problemDoc struct {
	File    string  `json:"file"`
	Line    *int    `json:"line"`
	Column  *int    `json:"column"`
	Job     *string `json:"job"`
	Field   *string `json:"field"`
	Message string  `json:"message"`
}

// problemDocs lists the problems of a validation error (one whole-file
// problem for any other error).
func problemDocs(file string, err error) []problemDoc {
	var ve *model.ValidationError
	if !errors.As(err, &ve) {
		return []problemDoc{{File: file, Message: err.Error()}}
	}
	nonEmpty := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	docs := make([]problemDoc, 0, len(ve.Problems))
	for _, p := range ve.Problems {
		d := problemDoc{File: file, Job: nonEmpty(p.Job), Field: nonEmpty(p.Field), Message: p.Msg}
		if p.Line > 0 {
			line := p.Line
			d.Line = &line
		}
		docs = append(docs, d)
	}
	return docs
}
