package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v3"
	"golang.org/x/sys/unix"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/batch"
	"github.com/somaflow/somaflow/drms/proc"
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/service"
)

// runOptions are run's argument and flags.
type runOptions struct {
	*Factory
	workflowOptions
	KeepState bool
	Trace     string // "": no trace file
}

func runCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:      "run",
		Usage:     "run a workflow to the end in this process and report its outcome",
		ArgsUsage: "FILE",
		Description: "Runs the workflow with an engine inside this process. Its state goes to the state dir named by\n" +
			"--state-dir, SOMAFLOW_STATE_DIR or the config's state_dir; with none named, to a private dir\n" +
			"in $TMPDIR, removed at exit unless --keep-state is given. Jobs are children of this\n" +
			"process; SIGINT/SIGTERM stop the workflow (running jobs end killed_by_user) before exiting.\n" +
			"Exit 0 when every job succeeded, 1 when one did not, 2 for a bad file.\n\n" + exitHelp,
		Flags: append([]ucli.Flag{
			&ucli.BoolFlag{Name: "json", Usage: "print the status document (JSON) instead of a summary"},
			&ucli.BoolFlag{Name: "keep-state", Usage: "keep the private state dir (its path is printed on stderr)"},
			&ucli.StringFlag{Name: "trace", Usage: "write one row per job attempt to `FILE` (TSV, as `somaflow trace`) when the run ends"},
		}, workflowFlags(f.Config)...),
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			wo, err := readWorkflowOptions(cmd, "run")
			if err != nil {
				return err
			}
			return runRun(ctx, f.IO, &runOptions{Factory: f, workflowOptions: wo, KeepState: cmd.Bool("keep-state"), Trace: cmd.String("trace")})
		},
	}
}

func runRun(ctx context.Context, s *IO, o *runOptions) error {
	w, format, err := readWorkflow(s, o.File)
	if err != nil {
		return err
	}
	if o.DryRun {
		return dryRun(s, w, o.Backend(), o.Queue, o.Config.TranslationFiles, o.JSON)
	}
	if name := o.Resource(); name != "" {
		return runRemote(ctx, s, o, name, w, format) // remote.go
	}
	if o.OwnProcess {
		// Jobs are this process's children; what escapes a job's process
		// group (setsid) is reparented here too, and killed when run ends:
		// run leaves nothing behind.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err == nil {
			defer proc.KillOrphans(func(int, func() string) bool { return false })
		}
	}
	// --state-dir, SOMAFLOW_STATE_DIR and the config's state_dir all reach
	// the flag: a state dir named anywhere is used; only with none is the
	// state private.
	stateDir := o.global.stateDir
	private := stateDir == ""
	if private {
		if stateDir, err = os.MkdirTemp("", "somaflow-run-"); err != nil {
			return fmt.Errorf("private state dir: %w", err)
		}
		if !o.KeepState {
			defer os.RemoveAll(stateDir)
		} else {
			fmt.Fprintf(s.ErrOut, "somaflow: state kept in %s\n", stateDir)
		}
	}
	spool := o.global.spoolDir
	if spool == "" && private {
		// $TMPDIR is not visible from compute nodes: batch jobs spool under
		// the default state dir all the same.
		if d, err := service.DefaultDir(); err == nil {
			spool = filepath.Join(d, "spool")
		}
	}
	c, err := o.OpenEngine(ctx, client.Options{StateDir: stateDir, SpoolDir: spool, DiscardState: private && !o.KeepState})
	if errors.Is(err, client.ErrEngineRunning) {
		return fmt.Errorf("%w (use `somaflow submit`, or another --state-dir)", err)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	id, err := c.SubmitWorkflow(ctx, w, client.SubmitOptions{
		Name: o.Name, Queue: o.Queue, MaxJobs: o.MaxJobs, Format: string(format),
		TranslationFiles: o.Config.TranslationFiles, StageTransfers: o.Config.StageTransfers,
	})
	if err == nil {
		err = runInputs(ctx, s, c, id) // transfer.go
	}
	if err != nil {
		return err
	}
	debug.SetGCPercent(o.gcPercent) // the engine runs at the usual pace
	started := time.Now()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case sig := <-sigs:
			fmt.Fprintf(s.ErrOut, "somaflow: %v: stopping workflow %d\n", sig, id)
			if err := c.RequestStop(context.WithoutCancel(ctx), id); err != nil {
				fmt.Fprintf(s.ErrOut, "somaflow: stop: %v\n", err)
				cancel()
			}
		case <-waitCtx.Done():
		}
	}()
	stopProgress := startProgress(waitCtx, s, c, id)
	stopBackend := watchProblems(waitCtx, s, c, c.Backend())
	err = c.WaitWorkflow(waitCtx, id, -1)
	stopBackend()
	stopProgress()
	if err == nil {
		err = runOutputs(ctx, s, c, id) // transfer.go
	}
	if err != nil {
		return err
	}
	if private {
		// Nothing of the workflow runs any more: its batch spool (scripts,
		// environment files, status files) goes with the private state.
		if root, err := batch.SpoolRoot(drms.Config{SpoolDir: spool, StateDir: stateDir, EngineTag: drms.EngineTag(stateDir)}); err == nil {
			defer os.RemoveAll(root)
		}
	}
	took := time.Since(started)
	switch {
	case o.Trace != "":
		doc, err := c.WorkflowElementsStatus(ctx, id)
		if err != nil {
			return err
		}
		return endRun(ctx, s, o, ended{doc: doc, sum: summaryOf(doc, took)})
	case o.JSON:
		// Streamed from the state; its jobs counted give the exit code.
		cnt, _, _, err := countOutcomes(ctx, c, id)
		if err != nil {
			return err
		}
		return endRun(ctx, s, o, ended{sum: summary{counts: cnt}, c: c, id: id})
	}
	sum, err := readSummary(ctx, c, id)
	if err != nil {
		return err
	}
	sum.took = took
	return endRun(ctx, s, o, ended{sum: sum})
}

// endRun ends a run, here or on a resource: the trace file (from e's
// document), the status document or a summary, and errJobsFailed when a
// job did not succeed.
func endRun(ctx context.Context, s *IO, o *runOptions, e ended) error {
	if o.Trace != "" {
		if err := saveTrace(o.Trace, e.doc); err != nil {
			return err
		}
	}
	if o.JSON {
		if err := e.writeJSON(ctx, s); err != nil {
			return err
		}
	} else {
		printSummary(s, e.sum)
	}
	if e.sum.failed() > 0 {
		return errJobsFailed
	}
	return nil
}

// bigInput is the size of a workflow file past which decoding and
// submitting it trade some CPU for memory.
const bigInput = 16 << 20

// readWorkflow reads and decodes a workflow file in either format; any
// problem is bad input (exit 2).
func readWorkflow(s *IO, path string) (*model.Workflow, model.Format, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(s.In)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", client.ErrInvalid, err)
	}
	if len(data) > bigInput && os.Getenv("GOGC") == "" {
		// A big workflow's decoded form briefly needs about as much memory
		// as the workflow itself: collect more often than the default
		// (which lets the heap double), so that a 1,000,000-job file is
		// submitted in 1.6 GB instead of 2.3 GB. Factory.Run restores it.
		debug.SetGCPercent(25)
	}
	w, f, err := client.Unserialize(data)
	if err != nil {
		return nil, f, fmt.Errorf("%s: %w", path, err)
	}
	// What the decoder changed as soma-workflow would (groups it drops) is
	// said, never dropped silently.
	for _, p := range w.Warnings {
		fmt.Fprintf(s.ErrOut, "somaflow: %s: warning: %s\n", path, p)
	}
	return w, f, nil
}

// failedJobs counts the jobs that ended without succeeding.
func failedJobs(doc *client.WorkflowDoc) int {
	n := 0
	for _, j := range doc.Jobs {
		if model.JobEnded(j.Status) && !model.Succeeded(j.Status, deref(j.ExitStatus), j.ExitValue) {
			n++
		}
	}
	return n
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
