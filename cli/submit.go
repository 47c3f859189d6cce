package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
)

// workflowOptions are what submit and run share: the workflow file and
// how to submit it.
type workflowOptions struct {
	File        string
	JSON        bool
	MaxJobs     int
	Queue, Name string
	DryRun      bool
}

// workflowFlags are the flags of workflowOptions.
func workflowFlags(cfg *client.Config) []ucli.Flag {
	return []ucli.Flag{
		&ucli.IntFlag{Name: "max-jobs", Value: cfg.MaxJobs, Usage: "jobs of this workflow running at once (default: share the backend's slots with the other workflows: the CPUs for local, unlimited for batch backends)"},
		&ucli.StringFlag{Name: "queue", Value: cfg.Queue, Usage: "DRMS queue (partition) for the jobs"},
		&ucli.StringFlag{Name: "name", Usage: "workflow name (default: the file's)"},
		&ucli.BoolFlag{Name: "dry-run", Usage: "print what would be submitted, in order (sbatch options too); store and start nothing"},
	}
}

// readWorkflowOptions reads the FILE argument and workflowFlags of verb.
func readWorkflowOptions(cmd *ucli.Command, verb string) (workflowOptions, error) {
	if cmd.Args().Len() != 1 {
		return workflowOptions{}, usagef("%s needs exactly one workflow FILE", verb)
	}
	if cmd.Int("max-jobs") < 0 {
		return workflowOptions{}, usagef("--max-jobs must be positive, got %d", cmd.Int("max-jobs"))
	}
	return workflowOptions{File: cmd.Args().First(), JSON: cmd.Bool("json"), MaxJobs: int(cmd.Int("max-jobs")),
		Queue: cmd.String("queue"), Name: cmd.String("name"), DryRun: cmd.Bool("dry-run")}, nil
}

// submitOptions are submit's argument and flags.
type submitOptions struct {
	*Factory
	workflowOptions
	Expiration time.Time // zero: the default
}

func submitCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:      "submit",
		Usage:     "store a workflow and have the background engine run it; prints its id",
		ArgsUsage: "FILE",
		Description: "Validates and stores the workflow, starts the state dir's engine in the background if none\n" +
			"runs, prints the workflow id and returns. The workflow keeps this shell's working directory\n" +
			"and environment. Exit 0, or 2 for a bad file (nothing is stored).",
		Flags: append([]ucli.Flag{
			&ucli.BoolFlag{Name: "json", Usage: "print {\"id\": ...} as JSON"},
			&ucli.StringFlag{Name: "expiration", Usage: "when the workflow is removed: RFC3339, YYYY-MM-DD or +DURATION (default +7d)"},
		}, workflowFlags(f.Config)...),
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			wo, err := readWorkflowOptions(cmd, "submit")
			if err != nil {
				return err
			}
			o := &submitOptions{Factory: f, workflowOptions: wo}
			if v := cmd.String("expiration"); v != "" {
				if o.Expiration, err = parseDate(v); err != nil {
					return err
				}
			}
			return submitRun(ctx, f.IO, o)
		},
	}
}

func submitRun(ctx context.Context, s *IO, o *submitOptions) error {
	w, format, err := readWorkflow(s, o.File)
	if err != nil {
		return err
	}
	if o.DryRun {
		return dryRun(s, w, o.Backend(), o.Queue, o.Config.TranslationFiles, o.JSON)
	}
	if name := o.Resource(); name != "" {
		return submitRemote(ctx, s, o, name, w, format) // remote.go
	}
	if err := client.CheckBackend(o.Backend()); err != nil {
		return err
	}
	sub, err := client.NewSubmission(w, client.SubmitOptions{
		Name: o.Name, Queue: o.Queue, MaxJobs: o.MaxJobs, Format: string(format), Expiration: o.Expiration,
		TranslationFiles: o.Config.TranslationFiles, StageTransfers: o.Config.StageTransfers,
	})
	if err != nil {
		return err
	}
	c, err := o.Client(ctx)
	if err != nil {
		return err
	}
	// A valid workflow, and the database exists: the engine starts (a
	// process of its own, which starts the supervisor) while the workflow
	// is stored, and finds it stored.
	engine, err := o.StartEngine()
	if err != nil {
		return err
	}
	supervisor := make(chan error, 1)
	if engine != nil {
		// And so does the supervisor it would start next.
		go func() { supervisor <- o.StartSupervisor(ctx) }()
	} else {
		supervisor <- nil
	}
	id, err := c.Submit(ctx, sub)
	if err != nil {
		return err
	}
	engine.Wait()
	if err := <-supervisor; err != nil {
		// The engine starts it again, and says why it cannot.
		fmt.Fprintf(s.ErrOut, "somaflow: warning: %v\n", err)
	}
	if o.JSON {
		return s.JSON(map[string]string{"id": fmt.Sprint(id)})
	}
	fmt.Fprintln(s.Out, id)
	return nil
}

// parseDate reads RFC3339, YYYY-MM-DD (local midnight) or +DURATION.
func parseDate(v string) (time.Time, error) {
	if d, ok := strings.CutPrefix(v, "+"); ok {
		dur, err := parseDuration("expiration", d)
		if err != nil {
			return time.Time{}, err
		}
		if dur < 0 {
			return time.Time{}, usagef("expiration %q: give a duration after +", v)
		}
		return time.Now().Add(dur), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", v, time.Local); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("bad date %q: use RFC3339 (2026-12-01T12:00:00Z), YYYY-MM-DD or +DURATION (+48h, +2d, +3600)", v)
}
