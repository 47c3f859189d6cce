// Package cli is somaflow's command line: one file per command, flags and
// human or --json output, exit codes decided in one place (errors.go). It is
// the only package that imports the CLI library.
package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"syscall"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/drms/execjob"
	"github.com/somaflow/somaflow/drms/supervisor"
)

// Version is set at build time (-ldflags "-X .../cli.Version=...").
var Version = "dev"

// Run runs the somaflow command line with args (os.Args) and returns the
// process exit code.
func Run(ctx context.Context, s *IO, args []string) int {
	return NewFactory(s).Run(ctx, args)
}

// Run runs the command line with args (os.Args) on the factory's streams
// and returns the exit code: the one place where errors become exit codes
// and messages.
func (f *Factory) Run(ctx context.Context, args []string) int {
	s := f.IO
	if len(args) > 1 && args[1] == "exec-job" {
		// The batch-job wrapper: no CLI parsing, nothing between the DRMS and the job.
		return execjob.Main(args[2:])
	}
	if len(args) > 1 && args[1] == "supervisor" {
		// The local-job supervisor, started by the engine (re-exec of this binary).
		sctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		return supervisor.Main(sctx, args[2:])
	}
	if path := os.Getenv("SOMAFLOW_CPUPROFILE"); path != "" && f.OwnProcess {
		// For benchmarks: a CPU profile of this process (run, engine, ...).
		if pf, err := os.Create(path); err == nil {
			if pprof.StartCPUProfile(pf) == nil {
				defer func() { pprof.StopCPUProfile(); pf.Close() }()
			}
		}
	}
	// An empty SOMAFLOW_* variable means unset (as most tools read their
	// variables): SOMAFLOW_BACKEND= must not override the configuration's
	// backend with "".
	for _, k := range []string{"SOMAFLOW_BACKEND", "SOMAFLOW_STATE_DIR", "SOMAFLOW_SPOOL_DIR", "SOMAFLOW_RESOURCE"} {
		if v, ok := os.LookupEnv(k); ok && v == "" {
			os.Unsetenv(k)
		}
	}
	if f.Config == nil {
		cfg, err := client.LoadConfig()
		if err != nil {
			fmt.Fprintf(s.ErrOut, "somaflow: %v\n", err)
			return ExitBadInput
		}
		f.Config = cfg
	}
	defer f.Close()
	f.args = args
	f.gcPercent = debug.SetGCPercent(100)
	debug.SetGCPercent(f.gcPercent)
	defer debug.SetGCPercent(f.gcPercent)
	root := newRoot(f)
	setUsageErrors(root)
	f.bindGlobals(root)
	err := root.Run(ctx, args)
	if err != nil {
		var se silentExit
		if !asSilent(err, &se) && err != errJobsFailed {
			fmt.Fprintf(s.ErrOut, "somaflow: %v\n", err)
		}
	}
	return ExitCode(err)
}

func newRoot(f *Factory) *ucli.Command {
	s, cfg := f.IO, f.Config
	return &ucli.Command{
		Name:  "somaflow",
		Usage: "run workflows of command-line jobs on Slurm, PBS, DRMAA or local processes",
		Description: "somaflow runs workflows described in soma-workflow's JSON format or somaflow's native\n" +
			"YAML/JSON format, keeps their state in a database, and reports exact outcomes.\n\n" +
			"Defaults come from /etc/somaflow/config.yaml, $SOMAFLOW_CONFIG and ~/.config/somaflow/config.yaml\n" +
			"(backend, queue, state_dir, spool_dir, max_jobs, settings); flags and SOMAFLOW_* variables win.\n\n" + exitHelp,
		Version:               Version,
		Writer:                s.Out,
		ErrWriter:             s.ErrOut,
		EnableShellCompletion: true,
		ConfigureShellCompletionCommand: func(c *ucli.Command) {
			c.Hidden = false
			c.Usage = "print a shell completion script: bash, zsh or fish (source <(somaflow completion bash))"
		},
		HideVersion:    true,
		ExitErrHandler: func(context.Context, *ucli.Command, error) {},
		OnUsageError:   onUsageError,
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			if cmd.Args().Len() > 0 {
				return usagef("unknown command %q: see somaflow --help", cmd.Args().First())
			}
			return ucli.ShowAppHelp(cmd)
		},
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "state-dir", Value: cfg.StateDir, Usage: "state directory (default $XDG_STATE_HOME/somaflow or ~/.local/state/somaflow)", Sources: ucli.EnvVars("SOMAFLOW_STATE_DIR")},
			&ucli.StringFlag{Name: "backend", Value: or(cfg.Backend, "local"), Usage: "backend: local, slurm, pbs, drmaa or command", Sources: ucli.EnvVars("SOMAFLOW_BACKEND")},
			&ucli.StringFlag{Name: "resource", Usage: "work on the remote resource `NAME` of the configuration, over ssh (run, submit, wait, status, list, transfer)", Sources: ucli.EnvVars("SOMAFLOW_RESOURCE")},
			&ucli.StringFlag{Name: "spool-dir", Value: cfg.SpoolDir, Usage: "spool directory for batch backends (default STATE_DIR/spool)", Sources: ucli.EnvVars("SOMAFLOW_SPOOL_DIR")},
		},
		Commands: []*ucli.Command{
			submitCommand(f),
			runCommand(f),
			listCommand(f),
			statusCommand(f),
			waitCommand(f),
			stopCommand(f),
			restartCommand(f),
			deleteCommand(f),
			failedCommand(f),
			logsCommand(f),
			exportCommand(f),
			expireCommand(f),
			traceCommand(f),
			dotCommand(f),
			validateCommand(f),
			convertCommand(f),
			engineCommand(f),
			doctorCommand(f),
			configCommand(f),
			dashboardCommand(f),
			reportCommand(f),
			transferCommand(f),
			serveCommand(f),
			versionCommand(f),
			manCommand(f),
		},
	}
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func onUsageError(ctx context.Context, cmd *ucli.Command, err error, isSubcommand bool) error {
	return usageError{err}
}

// setUsageErrors makes flag errors of every command usage errors (exit 2).
func setUsageErrors(cmd *ucli.Command) {
	cmd.OnUsageError = onUsageError
	for _, c := range cmd.Commands {
		setUsageErrors(c)
	}
}

func asSilent(err error, se *silentExit) bool {
	x, ok := err.(silentExit)
	if ok {
		*se = x
	}
	return ok
}

// parseID parses a workflow or job id argument.
func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("%q is not a workflow id (a positive integer)", s)
	}
	return id, nil
}

// workflowArg checks that a command got exactly n arguments (usage says
// what they are) and parses the first as a workflow id.
func workflowArg(cmd *ucli.Command, n int, usage string) (int64, error) {
	if cmd.Args().Len() != n {
		return 0, usagef("%s", usage)
	}
	return parseID(cmd.Args().First())
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
