package cli

// This file holds remote resources on the command line: --resource NAME
// (SOMAFLOW_RESOURCE). run, submit, wait, status, list and transfer speak
// to the far side's hidden `somaflow serve-stdio`; the other commands that
// work on a state dir run there as they are (forward).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

// refuseResource refuses --resource for a command that does not work on
// remote resources yet (the Factory calls it where commands open the local
// state).
func (f *Factory) refuseResource() error {
	if name := f.global.resource; name != "" {
		return usagef("--resource %s: `somaflow %s` works on this machine's state dir only (every command that reads or changes workflows takes --resource)", name, f.global.command)
	}
	return nil
}

// dialResource connects to the resource --resource names.
func (f *Factory) dialResource(ctx context.Context, name string) (*client.Remote, error) {
	r, err := f.resource(name)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return client.Dial(dctx, name, r)
}

// resource is the configuration of resource name.
func (f *Factory) resource(name string) (client.Resource, error) {
	r, ok := f.Config.Resources[name]
	if !ok {
		var names []string
		for n := range f.Config.Resources {
			names = append(names, n)
		}
		sort.Strings(names)
		have := "none is configured (resources: in the configuration; see docs/transfers.md)"
		if len(names) > 0 {
			have = "the configuration has: " + strings.Join(names, ", ")
		}
		return r, usagef("unknown resource %q: %s", name, have)
	}
	return r, nil
}

// forward runs this command line on the resource: `somaflow ARGS` there
// over one ssh connection (the resource's state dir and backend, the
// command's own arguments and flags), its output here, its exit code
// ours. What no remote call covers (stop, logs, failed, export, ...) works
// on a resource that way.
func (f *Factory) forward(ctx context.Context, name string) error {
	r, err := f.resource(name)
	if err != nil {
		return err
	}
	if err := r.Check(name); err != nil {
		return fmt.Errorf("%w: %v", client.ErrInvalid, err)
	}
	argv := r.CommandArgv(f.remoteArgs()...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f.IO.In, f.IO.Out, f.IO.ErrOut
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return silentExit{ExitOK}
	case errors.As(err, &ee) && ee.ExitCode() == 255:
		return fmt.Errorf("%w: resource %q: ssh could not run the command there (its message is above)", client.ErrUnavailable, name)
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		return silentExit{ee.ExitCode()}
	}
	return fmt.Errorf("%w: resource %q: %v", client.ErrUnavailable, name, err)
}

// localFlags are the global flags that name this machine's state: the
// resource's configuration names its own.
var localFlags = []string{"resource", "state-dir", "spool-dir", "backend"}

// remoteArgs are the command line's arguments without the program name
// and without localFlags.
func (f *Factory) remoteArgs() []string {
	var out []string
	args := f.args[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && slices.Contains(localFlags, name) {
			if !hasValue {
				i++ // its value is the next word
			}
			continue
		}
		out = append(out, a)
	}
	return out
}

// forwardable tells whether a command with --resource runs on the
// resource as it is (forward): not those that speak to it themselves, nor
// those that only read local files or print what this binary knows.
func forwardable(c *ucli.Command) bool {
	lineage := c.Lineage() // c, its parent, ..., the root
	if len(lineage) < 2 {
		return false
	}
	switch lineage[len(lineage)-2].Name {
	case "run", "submit", "wait", "status", "list", "transfer", "serve-stdio", // remote calls
		"validate", "convert", "version", "man", "config", "completion", "help", "dashboard": // local
		return false
	}
	return true
}

func serveCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:   "serve-stdio",
		Usage:  "answer a remote client on stdin/stdout (started over ssh by --resource)",
		Hidden: true,
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			return serveRun(ctx, f.IO, f)
		},
	}
}

func serveRun(ctx context.Context, s *IO, f *Factory) error {
	c, err := f.Client(ctx)
	if err != nil {
		return err
	}
	return client.Serve(ctx, c, s.In, s.Out, client.ServeOptions{EnsureEngine: f.EnsureEngine})
}

// runRemote is `run --resource NAME FILE`: submit to the resource, send
// the inputs, wait, bring the outputs back, report as run does.
func runRemote(ctx context.Context, s *IO, o *runOptions, name string, w *model.Workflow, format model.Format) error {
	if err := w.Validate(); err != nil {
		return fmt.Errorf("%w: %w", client.ErrInvalid, err)
	}
	r, err := o.dialResource(ctx, name)
	if err != nil {
		return err
	}
	defer r.Close()
	started := time.Now()
	id, err := r.SubmitWorkflow(ctx, w, client.SubmitOptions{Name: o.Name, Queue: o.Queue, MaxJobs: o.MaxJobs, Format: string(format)})
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
	return endRun(ctx, s, o, ended{doc: doc, sum: summaryOf(doc, time.Since(started))})
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
func remoteStatus(ctx context.Context, s *IO, o *statusOptions, name string) error {
	if o.Job != "" || o.Watch {
		return o.forward(ctx, name) // no remote call for these: the command runs there
	}
	r, err := o.dialResource(ctx, name)
	if err != nil {
		return err
	}
	defer r.Close()
	doc, err := r.WorkflowElementsStatus(ctx, o.ID)
	if err != nil {
		return err
	}
	if o.JSON {
		return s.JSON(doc)
	}
	printJobs(s, doc)
	return nil
}

// submitRemote is `submit --resource NAME FILE`: the workflow is stored and
// run on the resource, its inputs sent; it prints the id (of the far
// side's state dir) and returns.
func submitRemote(ctx context.Context, s *IO, o *submitOptions, name string, w *model.Workflow, format model.Format) error {
	if err := w.Validate(); err != nil {
		return fmt.Errorf("%w: %w", client.ErrInvalid, err)
	}
	r, err := o.dialResource(ctx, name)
	if err != nil {
		return err
	}
	defer r.Close()
	id, err := r.SubmitWorkflow(ctx, w, client.SubmitOptions{Name: o.Name, Queue: o.Queue,
		MaxJobs: o.MaxJobs, Format: string(format), Expiration: o.Expiration})
	if err != nil {
		return err
	}
	if err := moveRemote(ctx, s, r, id, true); err != nil {
		return fmt.Errorf("workflow %d submitted to resource %s, but its inputs are not all there (somaflow --resource %s transfer in %d): %w", id, name, name, id, err)
	}
	if o.JSON {
		return s.JSON(map[string]string{"id": fmt.Sprint(id)})
	}
	fmt.Fprintln(s.Out, id)
	return nil
}

// remoteWait is `wait --resource NAME ID...`: waits on the resource and
// reports as wait does (outputs stay there: transfer out).
func remoteWait(ctx context.Context, s *IO, o *waitOptions, name string) error {
	if o.Job != "" {
		return o.forward(ctx, name) // no remote call for this: the command runs there
	}
	r, err := o.dialResource(ctx, name)
	if err != nil {
		return err
	}
	defer r.Close()
	return waitAll(ctx, s, o, func(id int64, left time.Duration) (ended, error) {
		if err := r.WaitWorkflow(ctx, id, left); err != nil {
			return ended{}, err
		}
		return endedDoc(r.WorkflowElementsStatus(ctx, id))
	})
}

// remoteList is `list --resource NAME`.
func remoteList(ctx context.Context, s *IO, o *listOptions, name string) error {
	r, err := o.dialResource(ctx, name)
	if err != nil {
		return err
	}
	defer r.Close()
	hs, err := r.Workflows(ctx)
	if err != nil {
		return err
	}
	if hs == nil {
		hs = []client.WorkflowHeader{}
	}
	return printWorkflowRows(s, o.JSON, hs)
}

// printWorkflowRows prints `list` rows of a remote resource.
func printWorkflowRows(s *IO, asJSON bool, hs []client.WorkflowHeader) error {
	if asJSON {
		return s.JSON(hs)
	}
	text := func(p *string) string {
		if p == nil {
			return ""
		}
		if t, err := time.Parse(time.RFC3339, *p); err == nil {
			return localTime(t)
		}
		return printable(*p)
	}
	tw := s.newTable()
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tBACKEND\tSUBMITTED\tEXPIRES")
	for _, h := range hs {
		name := ""
		if h.Name != nil {
			name = printable(*h.Name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, name, h.Status, h.Backend, text(h.Submitted), text(h.Expiration))
	}
	return tw.Flush()
}
