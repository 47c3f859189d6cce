package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
)

func submitCommand(s *IO) *ucli.Command {
	return &ucli.Command{
		Name:      "submit",
		Usage:     "store a workflow and have the background engine run it; prints its id",
		ArgsUsage: "FILE",
		Description: "Validates and stores the workflow, starts the state dir's engine in the background if none\n" +
			"runs, prints the workflow id and returns. The workflow keeps this shell's working directory\n" +
			"and environment. Exit 0, or 2 for a bad file (nothing is stored).",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "json", Usage: "print {\"id\": ...} as JSON"},
			&ucli.IntFlag{Name: "max-jobs", Value: s.cfg.MaxJobs, Usage: "jobs of this workflow running at once (default: share the backend's slots with the other workflows: the CPUs for local, unlimited for batch backends)"},
			&ucli.StringFlag{Name: "queue", Value: s.cfg.Queue, Usage: "DRMS queue (partition) for the jobs"},
			&ucli.StringFlag{Name: "name", Usage: "workflow name (default: the file's)"},
			&ucli.BoolFlag{Name: "dry-run", Usage: "print what would be submitted, in order (sbatch options too); store and start nothing"},
			&ucli.StringFlag{Name: "expiration", Usage: "when the workflow is removed: RFC3339, YYYY-MM-DD or +DURATION (default +7d)"},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			if cmd.Args().Len() != 1 {
				return usagef("submit needs exactly one workflow FILE")
			}
			if cmd.Int("max-jobs") < 0 {
				return usagef("--max-jobs must be positive, got %d", cmd.Int("max-jobs"))
			}
			var exp time.Time
			if v := cmd.String("expiration"); v != "" {
				t, err := parseDate(v)
				if err != nil {
					return err
				}
				exp = t
			}
			w, format, err := readWorkflow(s, cmd.Args().First())
			if err != nil {
				return err
			}
			if cmd.Bool("dry-run") {
				return dryRun(s, cmd, w)
			}
			if name := cmd.String("resource"); name != "" {
				return submitRemote(ctx, s, cmd, name, w, format, exp) // remote.go
			}
			c, dir, err := openState(ctx, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := client.CheckBackend(cmd.String("backend")); err != nil {
				return err
			}
			id, err := c.SubmitWorkflow(ctx, w, client.SubmitOptions{
				Name: cmd.String("name"), Queue: cmd.String("queue"), MaxJobs: int(cmd.Int("max-jobs")),
				Format: string(format), Expiration: exp, TranslationFiles: s.cfg.TranslationFiles,
				StageTransfers: s.cfg.StageTransfers,
			})
			if err != nil {
				return err
			}
			if err := ensureEngine(dir); err != nil {
				return err
			}
			if cmd.Bool("json") {
				return s.JSON(map[string]string{"id": fmt.Sprint(id)})
			}
			fmt.Fprintln(s.Out, id)
			return nil
		},
	}
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
