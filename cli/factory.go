package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/service"
)

// Factory gives commands what they need, lazily and once per invocation
// (as gh's cmdutil.Factory): the streams, the configuration, the state dir
// named by the global flags, one client on it, and the background engine.
// Every command's run function gets what it opens from here; Run closes it.
type Factory struct {
	// IO is the invocation's standard streams and TTY policy.
	IO *IO
	// Config is the site and user configuration (defaults for flags); Run
	// loads it when nil.
	Config *client.Config
	// Executable is the somaflow binary started as the background engine
	// and as the supervisor (default: this process's own).
	Executable string
	// OwnProcess says the process is somaflow's alone: `run` may make it a
	// child subreaper and kill what its jobs left behind at exit. Tests
	// that call Run in-process leave it false.
	OwnProcess bool

	args      []string       // the command line Run was given
	global    globalFlags    // the global flags, as the running command sees them
	gcPercent int            // the GC percent at the start of Run, restored at its end
	client    *client.Client // opened by Client, closed by Close
}

// globalFlags are the flags every command inherits from the root.
type globalFlags struct {
	stateDir, backend, spoolDir string
	resource                    string // --resource: a remote resource's name
	command                     string // the command running, for messages
}

// NewFactory returns the factory of the running somaflow process.
func NewFactory(s *IO) *Factory {
	exe, _ := os.Executable()
	return &Factory{IO: s, Executable: exe, OwnProcess: true}
}

// bindGlobals makes every command record the global flags in the factory
// before its action runs (a command's Before runs after its own flags were
// parsed, and a subcommand's after its parent's: the leaf's values win),
// and run on the resource --resource names when no remote call covers it.
func (f *Factory) bindGlobals(cmd *ucli.Command) {
	cmd.Before = func(ctx context.Context, c *ucli.Command) (context.Context, error) {
		f.global = globalFlags{stateDir: c.String("state-dir"), backend: c.String("backend"), spoolDir: c.String("spool-dir"),
			resource: c.String("resource"), command: c.Name}
		return ctx, nil
	}
	if act := cmd.Action; act != nil {
		// With --resource, a command no remote call covers runs there.
		cmd.Action = func(ctx context.Context, c *ucli.Command) error {
			if f.global.resource != "" && forwardable(c) {
				return f.forward(ctx, f.global.resource) // remote.go
			}
			return act(ctx, c)
		}
	}
	for _, c := range cmd.Commands {
		f.bindGlobals(c)
	}
}

// Resource is the remote resource --resource names ("": this machine).
func (f *Factory) Resource() string { return f.global.resource }

// Backend is the backend the global flags name.
func (f *Factory) Backend() string { return f.global.backend }

// StateDir is the state dir the command works on: --state-dir (or
// SOMAFLOW_STATE_DIR, or the configuration's), else the default one.
func (f *Factory) StateDir() (string, error) {
	if d := f.global.stateDir; d != "" {
		return filepath.Abs(d)
	}
	d, err := service.DefaultDir()
	if err != nil {
		return "", usageError{err}
	}
	return d, nil
}

// Client opens the state dir without an engine, once: every command but
// run and engine reads the database and writes intents through it.
func (f *Factory) Client(ctx context.Context) (*client.Client, error) {
	if f.client != nil {
		return f.client, nil
	}
	if err := f.refuseResource(); err != nil {
		return nil, err
	}
	dir, err := f.StateDir()
	if err != nil {
		return nil, err
	}
	c, err := client.Open(ctx, client.Options{StateDir: dir, Backend: f.global.backend, NoEngine: true})
	if err != nil {
		return nil, err
	}
	f.client = c
	return c, nil
}

// OpenEngine opens a state dir with an engine in this process (run, and
// engine): o gets the global backend, the configuration's settings and the
// executable unless it names its own. The caller closes the client.
func (f *Factory) OpenEngine(ctx context.Context, o client.Options) (*client.Client, error) {
	if err := f.refuseResource(); err != nil {
		return nil, err
	}
	o.Backend = or(o.Backend, f.global.backend)
	o.ExecPath = or(o.ExecPath, f.Executable)
	if o.Settings == nil {
		o.Settings = f.Config.Settings
	}
	return client.Open(ctx, o)
}

// EnsureEngine starts a background engine on the state dir unless one
// runs (service.Ensure).
func (f *Factory) EnsureEngine() error {
	dir, err := f.StateDir()
	if err != nil {
		return err
	}
	if err := service.Ensure(dir, f.Executable); err != nil {
		return fmt.Errorf("%w: %v", client.ErrUnavailable, err)
	}
	return nil
}

// StartEngine starts a background engine on the state dir unless one
// runs, without waiting for it (service.Start).
func (f *Factory) StartEngine() (*service.Starting, error) {
	dir, err := f.StateDir()
	if err != nil {
		return nil, err
	}
	st, err := service.Start(dir, f.Executable)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", client.ErrUnavailable, err)
	}
	return st, nil
}

// StartSupervisor starts the state dir's supervisor of local jobs, as the
// background engine would, unless it runs (client.StartSupervisor).
func (f *Factory) StartSupervisor(ctx context.Context) error {
	dir, err := f.StateDir()
	if err != nil {
		return err
	}
	return client.StartSupervisor(ctx, client.Options{StateDir: dir, SpoolDir: f.global.spoolDir,
		Backend: f.global.backend, ExecPath: f.Executable, Settings: f.Config.Settings})
}

// Close closes what the factory opened.
func (f *Factory) Close() error {
	if f.client == nil {
		return nil
	}
	err := f.client.Close()
	f.client = nil
	return err
}

// workflowDoc reads the status document of workflow id.
func (f *Factory) workflowDoc(ctx context.Context, id int64) (*client.Client, *client.WorkflowDoc, error) {
	c, err := f.Client(ctx)
	if err != nil {
		return nil, nil, err
	}
	doc, err := c.WorkflowElementsStatus(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	return c, doc, nil
}
