package cli

// This file holds remote resources on the command line: --resource NAME
// (SOMAFLOW_RESOURCE) with run, status and transfer, and the far side's
// hidden `somaflow serve-stdio`.

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
)

// remoteCommands are the commands that honour --resource.
var remoteCommands = []string{"run", "status", "transfer"}

// refuseResource refuses --resource for a command that does not work on
// remote resources yet (called where commands open the local state).
func refuseResource(cmd *ucli.Command) error {
	if name := cmd.String("resource"); name != "" {
		return usagef("--resource %s: `somaflow %s` does not work on remote resources yet (these do: %s)", name, cmd.Name, strings.Join(remoteCommands, ", "))
	}
	return nil
}

// dialResource connects to the resource --resource names.
func dialResource(ctx context.Context, s *IO, name string) (*client.Remote, error) {
	r, ok := s.cfg.Resources[name]
	if !ok {
		var names []string
		for n := range s.cfg.Resources {
			names = append(names, n)
		}
		sort.Strings(names)
		have := "none is configured (resources: in the configuration; see docs/transfers.md)"
		if len(names) > 0 {
			have = "the configuration has: " + strings.Join(names, ", ")
		}
		return nil, usagef("unknown resource %q: %s", name, have)
	}
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return client.Dial(dctx, name, r)
}

func serveCommand(s *IO) *ucli.Command {
	return &ucli.Command{
		Name:   "serve-stdio",
		Usage:  "answer a remote client on stdin/stdout (started over ssh by --resource)",
		Hidden: true,
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			dir, err := stateDir(cmd)
			if err != nil {
				return err
			}
			c, err := client.Open(ctx, client.Options{StateDir: dir, Backend: cmd.String("backend"), NoEngine: true})
			if err != nil {
				return err
			}
			defer c.Close()
			return client.Serve(ctx, c, os.Stdin, s.Out, client.ServeOptions{EnsureEngine: func() error { return ensureEngine(dir) }})
		},
	}
}

// runRemote is `run --resource NAME FILE`: submit to the resource, send
// the inputs, wait, bring the outputs back, report as run does.
func runRemote(ctx context.Context, s *IO, cmd *ucli.Command, name string) error {
	w, format, err := readWorkflow(s, cmd.Args().First())
	if err != nil {
		return err
	}
	if err := w.Validate(); err != nil {
		return fmt.Errorf("%w: %w", client.ErrInvalid, err)
	}
	r, err := dialResource(ctx, s, name)
	if err != nil {
		return err
	}
	defer r.Close()
	started := time.Now()
	id, err := r.SubmitWorkflow(ctx, w, client.SubmitOptions{Name: cmd.String("name"), Queue: cmd.String("queue"),
		MaxJobs: int(cmd.Int("max-jobs")), Format: string(format)})
	if err != nil {
		return err
	}
	fmt.Fprintf(s.ErrOut, "somaflow: workflow %d submitted to resource %s\n", id, name)
	if err := moveRemote(ctx, s, r, id, true); err != nil {
		if _, serr := r.StopWorkflow(context.WithoutCancel(ctx), id); serr != nil {
			fmt.Fprintf(s.ErrOut, "somaflow: stop workflow %d: %v\n", id, serr)
		}
		return err
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case sig := <-sigs:
			fmt.Fprintf(s.ErrOut, "somaflow: %v: the workflow goes on on resource %s (somaflow --resource %s status %d)\n", sig, name, name, id)
			cancel()
		case <-waitCtx.Done():
		}
	}()
	if err := r.WaitWorkflow(waitCtx, id, -1); err != nil {
		return err
	}
	doc, err := r.WorkflowElementsStatus(ctx, id)
	if err != nil {
		return err
	}
	if err := moveRemote(ctx, s, r, id, false); err != nil {
		if failedJobs(doc) == 0 {
			return err
		}
		fmt.Fprintf(s.ErrOut, "somaflow: warning: outputs not all brought back: %v\n", err)
	}
	if doc, err = r.WorkflowElementsStatus(ctx, id); err != nil {
		return err
	}
	if cmd.Bool("json") {
		if err := s.JSON(doc); err != nil {
			return err
		}
	} else {
		printSummary(s, doc, time.Since(started))
	}
	if failedJobs(doc) > 0 {
		return errJobsFailed
	}
	return nil
}

// moveRemote sends a workflow's inputs to a resource or brings its outputs
// back, with progress on a terminal.
func moveRemote(ctx context.Context, s *IO, r *client.Remote, id int64, in bool) error {
	opts, stop := progressOptions(s)
	defer stop()
	if in {
		return r.TransferInputFiles(ctx, id, opts)
	}
	return r.TransferOutputFiles(ctx, id, opts)
}

// remoteStatus is `status --resource NAME ID`.
func remoteStatus(ctx context.Context, s *IO, cmd *ucli.Command, name string) error {
	id, err := workflowArg(cmd, 1, "status --resource needs one workflow ID")
	if err != nil {
		return err
	}
	if cmd.Bool("watch") {
		return usagef("status --watch does not work with --resource yet")
	}
	r, err := dialResource(ctx, s, name)
	if err != nil {
		return err
	}
	defer r.Close()
	doc, err := r.WorkflowElementsStatus(ctx, id)
	if err != nil {
		return err
	}
	if cmd.Bool("json") {
		return s.JSON(doc)
	}
	printJobs(s, doc)
	return nil
}
