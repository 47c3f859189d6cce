package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os/signal"
	"syscall"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/dashboard"
)

// dashboardOptions are dashboard's flags.
type dashboardOptions struct {
	*Factory
	Port int // 0: a free one
}

func dashboardCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:  "dashboard",
		Usage: "serve a read-only web view of the state dir's workflows on 127.0.0.1 (prints the URL)",
		Description: "Serves the workflows, each workflow (jobs failed first, paged; the dependency graph; a timeline)\n" +
			"and each job (command, environment, working directory, log tails, attempts), updated live.\n" +
			"It listens on 127.0.0.1 only, on --port (default: a free port), and prints the URL to open on\n" +
			"stdout: it holds a token, without which the pages are refused (other users of the machine can\n" +
			"reach 127.0.0.1 too). Nothing in the pages changes anything. Runs until interrupted.\n\n" + exitHelp,
		Flags: []ucli.Flag{
			&ucli.IntFlag{Name: "port", Usage: "TCP port on 127.0.0.1 (0: a free one)"},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			if cmd.Args().Len() != 0 {
				return usagef("dashboard takes no argument (see --port)")
			}
			port := int(cmd.Int("port"))
			if port < 0 || port > 65535 {
				return usagef("--port must be between 0 and 65535, got %d", port)
			}
			return dashboardRun(ctx, f.IO, &dashboardOptions{Factory: f, Port: port})
		},
	}
}

func dashboardRun(ctx context.Context, s *IO, o *dashboardOptions) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, err := o.Client(ctx)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(s.ErrOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return dashboard.Serve(ctx, c, o.Port, logger, func(url string) {
		fmt.Fprintln(s.Out, url)
		if f, ok := s.Out.(interface{ Sync() error }); ok {
			f.Sync()
		}
		fmt.Fprintln(s.ErrOut, "somaflow: dashboard on 127.0.0.1 only; open the URL above (Ctrl-C stops it)")
	})
}
