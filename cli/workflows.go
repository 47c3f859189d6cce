package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
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
			&ucli.IntFlag{Name: "max-jobs", Value: s.cfg.MaxJobs, Usage: "jobs running at once (default: CPUs for local, unlimited for batch backends)"},
			&ucli.StringFlag{Name: "queue", Value: s.cfg.Queue, Usage: "DRMS queue (partition) for the jobs"},
			&ucli.StringFlag{Name: "name", Usage: "workflow name (default: the file's)"},
			&ucli.StringFlag{Name: "expiration", Usage: "when the workflow is removed: RFC3339, YYYY-MM-DD or +DURATION (default +168h)"},
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
			dir, err := stateDir(cmd)
			if err != nil {
				return err
			}
			c, err := client.Open(ctx, client.Options{StateDir: dir, Backend: cmd.String("backend"), NoEngine: true})
			if err != nil {
				return err
			}
			defer c.Close()
			if err := client.CheckBackend(cmd.String("backend")); err != nil {
				return err
			}
			id, err := c.SubmitWorkflow(ctx, w, client.SubmitOptions{
				Name: cmd.String("name"), Queue: cmd.String("queue"), MaxJobs: int(cmd.Int("max-jobs")),
				Format: string(format), Expiration: exp,
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
		dur, err := time.ParseDuration(d)
		if err != nil {
			return time.Time{}, usagef("bad duration %q: %v", v, err)
		}
		return time.Now().Add(dur), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", v, time.Local); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("bad date %q: use RFC3339 (2026-12-01T12:00:00Z), YYYY-MM-DD or +DURATION (+48h)", v)
}

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
			&ucli.DurationFlag{Name: "timeout", Usage: "give up after this long (exit 4); default: wait forever", Value: -1},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			ids, err := parseIDs(cmd, "wait")
			if err != nil {
				return err
			}
			c, dir, err := openServiceClient(ctx, cmd)
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
			timeout := cmd.Duration("timeout")
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
					fmt.Fprintf(s.ErrOut, "somaflow: workflow %d: %v\n", id, err)
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

// actionDoc is the --json output of stop, restart and delete: what was
// done to which workflows.
func actionDoc(action string, ids []string) map[string]any {
	if ids == nil {
		ids = []string{}
	}
	return map[string]any{"action": action, "workflows": ids}
}

func parseIDs(cmd *ucli.Command, verb string) ([]int64, error) {
	if cmd.Args().Len() == 0 {
		return nil, usagef("%s needs at least one workflow ID", verb)
	}
	var ids []int64
	for _, a := range cmd.Args().Slice() {
		id, err := parseID(a)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func listCommand(s *IO) *ucli.Command {
	return &ucli.Command{
		Name:  "list",
		Usage: "list the workflows of the state dir",
		Flags: []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print as JSON"}},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			c, err := openClient(ctx, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			ws, err := c.Workflows(ctx)
			if err != nil {
				return err
			}
			type row struct {
				ID         string  `json:"id"`
				Name       *string `json:"name"`
				Status     string  `json:"status"`
				Backend    string  `json:"backend"`
				Queue      *string `json:"queue"`
				Submitted  *string `json:"submitted"`
				Expiration *string `json:"expiration"`
			}
			rows := make([]row, 0, len(ws))
			for _, w := range ws {
				q := w.Queue
				var qp *string
				if q != "" {
					qp = &q
				}
				rows = append(rows, row{fmt.Sprint(w.ID), w.Name, w.Status, w.Backend, qp, rfc(w.Submitted), rfc(w.Expiration)})
			}
			if cmd.Bool("json") {
				return s.JSON(rows)
			}
			tw := s.newTable()
			fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tBACKEND\tSUBMITTED\tEXPIRES")
			for _, r := range rows {
				name := ""
				if r.Name != nil {
					name = printable(*r.Name)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, name, r.Status, r.Backend, deref(r.Submitted), deref(r.Expiration))
			}
			return tw.Flush()
		},
	}
}

func rfc(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.Local().Format(time.RFC3339)
	return &s
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
		c, dir, err := openServiceClient(ctx, cmd)
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

// openServiceClient opens the state dir's database for a command whose
// work an engine carries out (wait, stop, restart, delete), and returns the
// state dir for ensureEngine.
func openServiceClient(ctx context.Context, cmd *ucli.Command) (*client.Client, string, error) {
	dir, err := stateDir(cmd)
	if err != nil {
		return nil, "", err
	}
	c, err := client.Open(ctx, client.Options{StateDir: dir, NoEngine: true})
	return c, dir, err
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
		ok, err := c.StopWorkflow(ctx, id)
		switch {
		case err != nil:
			return "", fmt.Errorf("workflow %d: %w", id, err)
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
			return "", fmt.Errorf("workflow %d: %w", id, err)
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
			&ucli.BoolFlag{Name: "all", Usage: "delete every workflow of the state dir"},
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
			return "", fmt.Errorf("workflow %d: %w", id, err)
		case !ok && jobs != "":
			return fmt.Sprintf("deleted workflow %d; these jobs may still run: %s", id, jobs), nil
		case cmd.Bool("no-wait"):
			return fmt.Sprintf("delete: workflow %d (requested)", id), nil
		}
		return fmt.Sprintf("deleted workflow %d", id), nil
	})
}

func failedCommand(s *IO) *ucli.Command {
	return &ucli.Command{
		Name:      "failed",
		Usage:     "list the jobs of a workflow that did not succeed (soma-workflow's list_failed_jobs)",
		ArgsUsage: "ID",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "json", Usage: "print the jobs' documents as JSON"},
			&ucli.BoolFlag{Name: "include-aborted", Usage: "also jobs that never ran (aborted, aborted_before_running)"},
			&ucli.BoolFlag{Name: "include-user-killed", Usage: "also jobs killed by the user"},
			&ucli.StringSliceFlag{Name: "status", Usage: "exactly the jobs with this exit status (repeatable)"},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			id, err := workflowArg(cmd, 1, "failed needs exactly one workflow ID")
			if err != nil {
				return err
			}
			for _, st := range cmd.StringSlice("status") {
				if !slices.Contains(model.ExitStatuses, st) {
					return usagef("--status %q is not an exit status (one of %s)", st, strings.Join(model.ExitStatuses, ", "))
				}
			}
			c, err := openClient(ctx, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			ids, err := c.ListFailedJobs(ctx, id, client.ListFailedOptions{
				IncludeAborted: cmd.Bool("include-aborted"), IncludeUserKilled: cmd.Bool("include-user-killed"),
				ExitStatuses: cmd.StringSlice("status"),
			})
			if err != nil {
				return err
			}
			docs := make([]client.JobDoc, 0, len(ids))
			for _, jid := range ids {
				d, err := c.JobTerminationStatus(ctx, jid)
				if err != nil {
					return err
				}
				docs = append(docs, *d)
			}
			if cmd.Bool("json") {
				return s.JSON(docs)
			}
			tw := s.newTable()
			fmt.Fprintln(tw, "JOB\tNAME\tSTATUS\tEXIT STATUS\tOUTCOME\tREASON")
			for _, j := range docs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, printable(j.Name), j.Status, deref(j.ExitStatus), outcomeText(j), printable(deref(j.Reason)))
			}
			return tw.Flush()
		},
	}
}

func logsCommand(s *IO) *ucli.Command {
	return &ucli.Command{
		Name:      "logs",
		Usage:     "show a job's stdout and stderr (JOB is a job id or name)",
		ArgsUsage: "ID JOB",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "json", Usage: "print paths and contents as JSON"},
			&ucli.BoolFlag{Name: "paths", Usage: "print the files' paths only"},
			&ucli.BoolFlag{Name: "stdout", Usage: "stdout only"},
			&ucli.BoolFlag{Name: "stderr", Usage: "stderr only"},
			&ucli.IntFlag{Name: "tail", Usage: "only the last N lines of each file (0: all)"},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			id, err := workflowArg(cmd, 2, "logs needs a workflow ID and a JOB (id or name)")
			if err != nil {
				return err
			}
			c, err := openClient(ctx, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			doc, err := c.WorkflowElementsStatus(ctx, id)
			if err != nil {
				return err
			}
			tail := int(cmd.Int("tail"))
			if tail < 0 {
				return usagef("--tail must be 0 or more, got %d", tail)
			}
			want := cmd.Args().Get(1)
			var job *client.JobDoc
			for i, j := range doc.Jobs {
				if j.ID == want || j.Name == want {
					if job != nil && j.Name == want && job.Name == want {
						return usagef("several jobs of workflow %d are named %q: use the job id", id, want)
					}
					job = &doc.Jobs[i]
				}
			}
			if job == nil {
				return fmt.Errorf("workflow %d has no job %q: %w", id, want, client.ErrUnknownObject)
			}
			type stream struct {
				name string
				path *string
			}
			var streams []stream
			if !cmd.Bool("stderr") {
				streams = append(streams, stream{"stdout", job.Stdout})
			}
			if !cmd.Bool("stdout") && (job.Stderr == nil || job.Stdout == nil || *job.Stderr != *job.Stdout) {
				streams = append(streams, stream{"stderr", job.Stderr})
			}
			if cmd.Bool("json") {
				out := map[string]any{"job": job.ID, "name": job.Name}
				for _, st := range streams {
					out[st.name+"_path"] = st.path
					if st.path != nil && !cmd.Bool("paths") {
						var b strings.Builder
						cut, err := copyLog(&b, *st.path, tail, maxJSONLog)
						if err == nil {
							out[st.name] = b.String()
						} else {
							out[st.name] = nil
						}
						if cut {
							out[st.name+"_truncated"] = true
						}
					}
				}
				return s.JSON(out)
			}
			for _, st := range streams {
				if cmd.Bool("paths") {
					fmt.Fprintf(s.Out, "%s\t%s\n", st.name, deref(st.path))
					continue
				}
				if len(streams) > 1 {
					fmt.Fprintf(s.Out, "==> %s (%s) <==\n", st.name, deref(st.path))
				}
				if st.path == nil {
					continue
				}
				if _, err := copyLog(s.Out, *st.path, tail, -1); err != nil {
					fmt.Fprintf(s.ErrOut, "somaflow: %s: %v\n", st.name, err)
				}
			}
			return nil
		},
	}
}

// readLog reads a job's log file. The engine creates its own log files
// when a job first writes to them, so a missing file is an empty log.
// maxJSONLog bounds what `logs --json` puts of one file in the document
// (its end; "<stream>_truncated" says so).
const maxJSONLog = 8 << 20

// copyLog streams a job's log file to w in bounded memory: the whole file,
// or its last tail lines (tail > 0), and at most its last limit bytes
// (limit >= 0), telling whether it cut. A missing file is empty (a job that
// printed nothing leaves none); a file that is not a regular one (a device
// such as /dev/zero, a FIFO) is an error, not an endless read.
func copyLog(w io.Writer, path string, tail int, limit int64) (cut bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("%s is not a regular file (%v): not shown", path, fi.Mode().Type())
	}
	size := fi.Size()
	start := int64(0)
	if tail > 0 {
		if start, err = tailStart(f, size, tail); err != nil {
			return false, err
		}
	}
	if limit >= 0 && size-start > limit {
		start, cut = size-limit, true
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return false, err
	}
	_, err = io.Copy(w, io.LimitReader(f, size-start)) // what is appended meanwhile waits for the next look
	return cut, err
}

// tailStart is the offset where the last n lines of a file of size bytes
// begin, found reading backwards 64 KiB at a time.
func tailStart(f *os.File, size int64, n int) (int64, error) {
	buf := make([]byte, 64<<10)
	end := size
	lines := 0
	if size > 0 {
		// A final newline ends the last line; it does not start another.
		if _, err := f.ReadAt(buf[:1], size-1); err != nil {
			return 0, err
		}
		if buf[0] == '\n' {
			end = size - 1
		}
	}
	for pos := end; pos > 0; {
		k := min(int64(len(buf)), pos)
		pos -= k
		if _, err := f.ReadAt(buf[:k], pos); err != nil {
			return 0, err
		}
		for i := k - 1; i >= 0; i-- {
			if buf[i] == '\n' {
				lines++
				if lines == n {
					return pos + i + 1, nil
				}
			}
		}
	}
	return 0, nil
}

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
			c, err := openClient(ctx, cmd)
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

func expireCommand(s *IO) *ucli.Command {
	return &ucli.Command{
		Name:      "expire",
		Usage:     "change when a workflow is removed (RFC3339, YYYY-MM-DD or +DURATION)",
		ArgsUsage: "ID DATE",
		Flags:     []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print the new expiration as JSON"}},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			id, err := workflowArg(cmd, 2, "expire needs a workflow ID and a DATE")
			if err != nil {
				return err
			}
			t, err := parseDate(cmd.Args().Get(1))
			if err != nil {
				return err
			}
			c, err := openClient(ctx, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.ChangeWorkflowExpirationDate(ctx, id, t); err != nil {
				return err
			}
			if cmd.Bool("json") {
				return s.JSON(map[string]string{"id": fmt.Sprint(id), "expiration": t.UTC().Format(time.RFC3339)})
			}
			fmt.Fprintf(s.Out, "workflow %d expires %s\n", id, t.Format(time.RFC3339))
			return nil
		},
	}
}
