package cli

import (
	"context"
	"fmt"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
)

func waitCommand(s *IO) *ucli.Command {
	return &ucli.Command{
		Name:      "wait",
		Usage:     "wait until workflows are done; exit 1 if a job did not succeed, 4 on timeout",
		ArgsUsage: "ID...",
		Description: "Waits for each workflow (the background engine is started if none runs), then prints a\n" +
			"summary or, with --json, the status documents. With several ids the most serious exit\n" +
			"code wins (2, 3, 5, 4, 1, 0).\n\n" + exitHelp,
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "json", Usage: "print the status documents (a JSON array)"},
			&ucli.StringFlag{Name: "timeout", Usage: "give up after `DURATION` (exit 4): seconds, or 30m, 2h, 7d (default: wait forever)"},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			ids, err := parseIDs(cmd, "wait")
			if err != nil {
				return err
			}
			timeout, err := durationFlag(cmd, "timeout")
			if err != nil {
				return err
			}
			c, dir, err := openState(ctx, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := ensureEngine(dir); err != nil {
				return err
			}
			// An engine that dies while we wait (crash, OOM kill) is started
			// again, so that a wait never hangs on a workflow nobody runs.
			keep, stopKeep := context.WithCancel(ctx)
			defer stopKeep()
			go func() {
				tick := time.NewTicker(5 * time.Second)
				defer tick.Stop()
				for {
					select {
					case <-keep.Done():
						return
					case <-tick.C:
						if err := ensureEngine(dir); err != nil {
							fmt.Fprintf(s.ErrOut, "somaflow: %v\n", err)
						}
					}
				}
			}()
			deadline := time.Now().Add(timeout)
			var codes []int
			var docs []*client.WorkflowDoc
			for _, id := range ids {
				left := time.Duration(-1)
				if timeout >= 0 {
					left = max(0, time.Until(deadline))
				}
				stop := startProgress(ctx, s, c, id)
				var stopWatch func()
				if infos, err := c.Workflows(ctx, id); err == nil && len(infos) == 1 {
					stopWatch = watchProblems(ctx, s, c, infos[0].Backend)
				} else {
					stopWatch = func() {}
				}
				err := c.WaitWorkflow(ctx, id, left)
				stopWatch()
				stop()
				if err != nil {
					fmt.Fprintf(s.ErrOut, "somaflow: %v\n", withID(id, err))
					codes = append(codes, ExitCode(err))
					continue
				}
				doc, err := c.WorkflowElementsStatus(ctx, id)
				if err != nil {
					codes = append(codes, ExitCode(err))
					continue
				}
				docs = append(docs, doc)
				if failedJobs(doc) > 0 {
					codes = append(codes, ExitJobFailed)
				} else {
					codes = append(codes, ExitOK)
				}
			}
			if cmd.Bool("json") {
				if err := s.JSON(docs); err != nil {
					return err
				}
			} else {
				for _, d := range docs {
					printSummary(s, d, elapsed(d))
				}
			}
			if code := worst(codes...); code != ExitOK {
				return silentExit{code}
			}
			return nil
		},
	}
}
