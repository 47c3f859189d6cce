package cli

// stop, restart and delete: requests the engine carries out.

import (
	"context"
	"fmt"
	"strings"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

// actionDoc is the --json output of stop, restart and delete: what was
// done to which workflows.
func actionDoc(action string, ids []string) map[string]any {
	if ids == nil {
		ids = []string{}
	}
	return map[string]any{"action": action, "workflows": ids}
}

// intentCommand runs one request (stop, restart, delete) on each id, makes
// sure an engine runs to carry it out, and reports. do returns what to
// print for the id ("" for nothing) and what counts as done for --json.
func intentCommand(s *IO, cmd0 *ucli.Command, do func(ctx context.Context, cmd *ucli.Command, c *client.Client, id int64) (string, error)) *ucli.Command {
	name := cmd0.Name
	if cmd0.ArgsUsage == "" {
		cmd0.ArgsUsage = "ID..."
	}
	cmd0.Flags = append(cmd0.Flags, &ucli.BoolFlag{Name: "json", Usage: "print what was done as JSON"})
	hasAll := false
	for _, f := range cmd0.Flags {
		hasAll = hasAll || f.Names()[0] == "all"
	}
	cmd0.Action = func(ctx context.Context, cmd *ucli.Command) error {
		all := hasAll && cmd.Bool("all")
		if all && cmd.Args().Len() > 0 {
			return usagef("%s takes either IDs or --all", name)
		}
		var ids []int64
		var err error
		if !all {
			if ids, err = parseIDs(cmd, name); err != nil {
				return err
			}
		}
		c, dir, err := openState(ctx, cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		if all {
			ws, err := c.Workflows(ctx)
			if err != nil {
				return err
			}
			for _, w := range ws {
				ids = append(ids, w.ID)
			}
			if len(ids) > 0 && !cmd.Bool("yes") {
				q := fmt.Sprintf("%s all %d workflows of %s?", name, len(ids), dir)
				if !s.inTTY {
					return usagef("%s --all acts on every workflow of %s (%d): add --yes to confirm", name, dir, len(ids))
				}
				if !s.Confirm(q) {
					return usagef("%s --all: not confirmed; nothing done", name)
				}
			}
		}
		if err := ensureEngine(dir); err != nil {
			return err
		}
		var codes []int
		var done []string
		for _, id := range ids {
			msg, err := do(ctx, cmd, c, id)
			if err != nil {
				fmt.Fprintf(s.ErrOut, "somaflow: %v\n", err)
				codes = append(codes, ExitCode(err))
				continue
			}
			done = append(done, fmt.Sprint(id))
			if !cmd.Bool("json") && msg != "" {
				fmt.Fprintln(s.Out, msg)
			}
		}
		if cmd.Bool("json") {
			if err := s.JSON(actionDoc(name, done)); err != nil {
				return err
			}
		}
		if code := worst(codes...); code != ExitOK {
			return silentExit{code}
		}
		return nil
	}
	return cmd0
}

// mayStillRun names the jobs of a workflow that are submitted and not
// ended: after a stop or delete that could not be confirmed, they may
// still run.
func mayStillRun(ctx context.Context, c *client.Client, id int64) string {
	doc, err := c.WorkflowElementsStatus(ctx, id)
	if err != nil {
		return ""
	}
	var names []string
	for _, j := range doc.Jobs {
		if !model.JobEnded(j.Status) && j.Status != model.JobNotSubmitted {
			names = append(names, fmt.Sprintf("%s (%s, DRMS id %s)", printable(j.Name), j.Status, deref(j.DRMSID)))
		}
	}
	return strings.Join(names, ", ")
}

func stopCommand(s *IO) *ucli.Command {
	return intentCommand(s, &ucli.Command{
		Name:  "stop",
		Usage: "stop workflows: running jobs are killed, queued and unstarted ones removed",
		Description: "Waits until the engine killed the running jobs and removed the queued ones, then says\n" +
			"whether some may still run (no engine to confirm their kill). --no-wait returns at once.\n" +
			"A stopped workflow is done; `somaflow restart` runs what did not succeed again.",
		Flags: []ucli.Flag{&ucli.BoolFlag{Name: "no-wait", Usage: "return once the stop is recorded"}},
	}, func(ctx context.Context, cmd *ucli.Command, c *client.Client, id int64) (string, error) {
		if cmd.Bool("no-wait") {
			return fmt.Sprintf("stop: workflow %d (requested)", id), c.RequestStop(ctx, id)
		}
		if st, err := c.WorkflowStatus(ctx, id); err != nil {
			return "", withID(id, err)
		} else if st == model.WorkflowDone {
			return fmt.Sprintf("stop: workflow %d: nothing to stop (it is done)", id), nil
		}
		ok, err := c.StopWorkflow(ctx, id)
		switch {
		case err != nil:
			return "", withID(id, err)
		case !ok:
			msg := fmt.Sprintf("stop: workflow %d: no engine confirmed the stop; it is carried out when one runs", id)
			if jobs := mayStillRun(ctx, c, id); jobs != "" {
				msg += "; these jobs may still run: " + jobs
			}
			return msg, nil
		}
		return fmt.Sprintf("stop: workflow %d stopped", id), nil
	})
}

func restartCommand(s *IO) *ucli.Command {
	return intentCommand(s, &ucli.Command{
		Name:  "restart",
		Usage: "re-run every job of done workflows that did not succeed",
		Description: "Only a workflow that is done (workflow_done: ended, or stopped) can be restarted; its jobs that\n" +
			"did not succeed run again (attempt + 1). Says \"nothing to restart\" when every job succeeded.",
		Flags: []ucli.Flag{&ucli.StringFlag{Name: "queue", Usage: "DRMS queue (partition) for the restarted jobs (default: the workflow's)"}},
	}, func(ctx context.Context, cmd *ucli.Command, c *client.Client, id int64) (string, error) {
		ok, err := c.RestartWorkflow(ctx, id, cmd.String("queue"))
		switch {
		case err != nil:
			return "", withID(id, err)
		case !ok:
			return fmt.Sprintf("restart: workflow %d: nothing to restart (every job succeeded)", id), nil
		}
		return fmt.Sprintf("restart: workflow %d", id), nil
	})
}

func deleteCommand(s *IO) *ucli.Command {
	return intentCommand(s, &ucli.Command{
		Name:      "delete",
		Usage:     "kill the jobs of workflows and remove them (--all: every workflow)",
		ArgsUsage: "ID... | --all",
		Description: "Waits until the engine killed the workflow's jobs and removed it.\n" +
			"--force: remove it even when the kills cannot be confirmed (the engine does not wait for them;\n" +
			"without an engine it is removed from the database here), and name the jobs that may still run.\n" +
			"--no-wait: return once the delete is recorded.",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "force", Usage: "remove even when kills cannot be confirmed (jobs may survive: they are named)"},
			&ucli.BoolFlag{Name: "no-wait", Usage: "return once the delete is recorded"},
			&ucli.BoolFlag{Name: "all", Usage: "delete every workflow of the state dir (asks on a terminal; --yes elsewhere)"},
			&ucli.BoolFlag{Name: "yes", Usage: "with --all: do not ask"},
		},
	}, func(ctx context.Context, cmd *ucli.Command, c *client.Client, id int64) (string, error) {
		force := cmd.Bool("force")
		jobs := ""
		if force {
			jobs = mayStillRun(ctx, c, id)
		}
		ok, err := c.DeleteWorkflow(ctx, id, force)
		if err == nil && !force && !cmd.Bool("no-wait") {
			err = c.WaitDeleted(ctx, id)
		}
		switch {
		case err != nil:
			return "", withID(id, err)
		case !ok && jobs != "":
			return fmt.Sprintf("deleted workflow %d; these jobs may still run: %s", id, jobs), nil
		case cmd.Bool("no-wait"):
			return fmt.Sprintf("delete: workflow %d (requested)", id), nil
		}
		return fmt.Sprintf("deleted workflow %d", id), nil
	})
}
