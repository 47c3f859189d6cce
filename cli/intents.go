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

// intentOptions are the arguments and flags of stop, restart and delete.
type intentOptions struct {
	*Factory
	Verb           string
	IDs            []int64 // or All
	All, Yes, JSON bool
	Force, NoWait  bool   // delete; NoWait: stop too
	Queue          string // restart
	// do carries out the request on one workflow: what to print for it
	// ("" for nothing), or why it failed.
	do func(ctx context.Context, o *intentOptions, c *client.Client, id int64) (string, error)
}

// intentCommand makes a command that runs one request (stop, restart,
// delete) on each id, makes sure an engine runs to carry it out, and
// reports (intentRun). do returns what to print for the id ("" for
// nothing) and what counts as done for --json.
func intentCommand(f *Factory, cmd0 *ucli.Command, do func(ctx context.Context, o *intentOptions, c *client.Client, id int64) (string, error)) *ucli.Command {
	name := cmd0.Name
	if cmd0.ArgsUsage == "" {
		cmd0.ArgsUsage = "ID..."
	}
	cmd0.Flags = append(cmd0.Flags, &ucli.BoolFlag{Name: "json", Usage: "print what was done as JSON"})
	hasAll := false
	for _, fl := range cmd0.Flags {
		hasAll = hasAll || fl.Names()[0] == "all"
	}
	cmd0.Action = func(ctx context.Context, cmd *ucli.Command) error {
		o := &intentOptions{Factory: f, Verb: name, All: hasAll && cmd.Bool("all"), Yes: cmd.Bool("yes"), JSON: cmd.Bool("json"),
			Force: cmd.Bool("force"), NoWait: cmd.Bool("no-wait"), Queue: cmd.String("queue"), do: do}
		if o.All && cmd.Args().Len() > 0 {
			return usagef("%s takes either IDs or --all", name)
		}
		if !o.All {
			var err error
			if o.IDs, err = parseIDs(cmd, name); err != nil {
				return err
			}
		}
		return intentRun(ctx, f.IO, o)
	}
	return cmd0
}

func intentRun(ctx context.Context, s *IO, o *intentOptions) error {
	c, err := o.Client(ctx)
	if err != nil {
		return err
	}
	ids := o.IDs
	if o.All {
		dir, err := o.StateDir()
		if err != nil {
			return err
		}
		ws, err := c.Workflows(ctx)
		if err != nil {
			return err
		}
		for _, w := range ws {
			ids = append(ids, w.ID)
		}
		if len(ids) > 0 && !o.Yes {
			q := fmt.Sprintf("%s all %d workflows of %s?", o.Verb, len(ids), dir)
			if !s.inTTY {
				return usagef("%s --all acts on every workflow of %s (%d): add --yes to confirm", o.Verb, dir, len(ids))
			}
			if !s.Confirm(q) {
				return usagef("%s --all: not confirmed; nothing done", o.Verb)
			}
		}
	}
	if err := o.EnsureEngine(); err != nil {
		return err
	}
	var codes []int
	var done []string
	for _, id := range ids {
		msg, err := o.do(ctx, o, c, id)
		if err != nil {
			fmt.Fprintf(s.ErrOut, "somaflow: %v\n", err)
			codes = append(codes, ExitCode(err))
			continue
		}
		done = append(done, fmt.Sprint(id))
		if !o.JSON && msg != "" {
			fmt.Fprintln(s.Out, msg)
		}
	}
	if o.JSON {
		if err := s.JSON(actionDoc(o.Verb, done)); err != nil {
			return err
		}
	}
	if code := worst(codes...); code != ExitOK {
		return silentExit{code}
	}
	return nil
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

func stopCommand(f *Factory) *ucli.Command {
	return intentCommand(f, &ucli.Command{
		Name:  "stop",
		Usage: "stop workflows: running jobs are killed, queued and unstarted ones removed",
		Description: "Waits until the engine killed the running jobs and removed the queued ones, then says\n" +
			"whether some may still run (no engine to confirm their kill). --no-wait returns at once.\n" +
			"A stopped workflow is done; `somaflow restart` runs what did not succeed again.",
		Flags: []ucli.Flag{&ucli.BoolFlag{Name: "no-wait", Usage: "return once the stop is recorded"}},
	}, func(ctx context.Context, o *intentOptions, c *client.Client, id int64) (string, error) {
		if o.NoWait {
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

func restartCommand(f *Factory) *ucli.Command {
	return intentCommand(f, &ucli.Command{
		Name:  "restart",
		Usage: "re-run every job of done workflows that did not succeed",
		Description: "Only a workflow that is done (workflow_done: ended, or stopped) can be restarted; its jobs that\n" +
			"did not succeed run again (attempt + 1). Says \"nothing to restart\" when every job succeeded.",
		Flags: []ucli.Flag{&ucli.StringFlag{Name: "queue", Usage: "DRMS queue (partition) for the restarted jobs (default: the workflow's)"}},
	}, func(ctx context.Context, o *intentOptions, c *client.Client, id int64) (string, error) {
		ok, err := c.RestartWorkflow(ctx, id, o.Queue)
		switch {
		case err != nil:
			return "", withID(id, err)
		case !ok:
			return fmt.Sprintf("restart: workflow %d: nothing to restart (every job succeeded)", id), nil
		}
		return fmt.Sprintf("restart: workflow %d", id), nil
	})
}

func deleteCommand(f *Factory) *ucli.Command {
	return intentCommand(f, &ucli.Command{
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
	}, func(ctx context.Context, o *intentOptions, c *client.Client, id int64) (string, error) {
		force := o.Force
		jobs := ""
		if force {
			jobs = mayStillRun(ctx, c, id)
		}
		ok, err := c.DeleteWorkflow(ctx, id, force)
		if err == nil && !force && !o.NoWait {
			err = c.WaitDeleted(ctx, id)
		}
		switch {
		case err != nil:
			return "", withID(id, err)
		case !ok && jobs != "":
			return fmt.Sprintf("deleted workflow %d; these jobs may still run: %s", id, jobs), nil
		case o.NoWait:
			return fmt.Sprintf("delete: workflow %d (requested)", id), nil
		}
		return fmt.Sprintf("deleted workflow %d", id), nil
	})
}
