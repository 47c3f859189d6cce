package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/service"
)

// engineOptions are engine's flags.
type engineOptions struct {
	*Factory
	Idle       time.Duration // 0: never idle-exit
	Background bool
}

func engineCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:  "engine",
		Usage: "run the engine of a state dir in the foreground (or: engine status, engine stop)",
		Description: "The engine carries out what submit, stop, restart and delete asked for, and records outcomes.\n" +
			"One engine runs per state dir (a lock file records host and pid). `somaflow submit` starts one\n" +
			"in the background when none runs; run it yourself under systemd, screen or a batch allocation.\n" +
			"It exits after --idle with nothing to run, and on SIGTERM/SIGINT (jobs keep running).",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "idle", Usage: "exit after `DURATION` with nothing to run: seconds, or 30m, 2h, 7d (default: never)"},
			&ucli.BoolFlag{Name: "background", Usage: "started by submit: exit quietly if an engine already runs", Hidden: true},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			idle, err := durationFlag(cmd, "idle")
			if err != nil {
				return err
			}
			return engineRun(ctx, f.IO, &engineOptions{Factory: f, Idle: max(idle, 0), Background: cmd.Bool("background")})
		},
		Commands: []*ucli.Command{
			{
				Name:  "status",
				Usage: "tell whether an engine runs on the state dir, where and with which pid",
				Flags: []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print as JSON"}},
				Action: func(ctx context.Context, cmd *ucli.Command) error {
					return engineStatusRun(ctx, f.IO, f, cmd.Bool("json"))
				},
			},
			{
				Name:  "stop",
				Usage: "stop the engine of the state dir (jobs keep running; the next submit restarts it)",
				Action: func(ctx context.Context, cmd *ucli.Command) error {
					return engineStopRun(ctx, f.IO, f)
				},
			},
		},
	}
}

func engineRun(ctx context.Context, s *IO, o *engineOptions) error {
	dir, err := o.StateDir()
	if err != nil {
		return err
	}
	idle := o.Idle
	// Caught, not ignored, so that jobs and the supervisor started
	// from here do not inherit an ignored SIGHUP.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	c, err := o.OpenEngine(ctx, client.Options{
		StateDir: dir, SpoolDir: o.global.spoolDir, Idle: idle, Logger: engineLogger(s), Supervised: true,
	})
	if errors.Is(err, client.ErrEngineRunning) && o.Background {
		return nil // started by submit while another engine started: that one runs
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(s.ErrOut, "somaflow engine: running on %s (pid %d)\n", dir, os.Getpid())
	select {
	case sig := <-sigs:
		fmt.Fprintf(s.ErrOut, "somaflow engine: %v: exiting (jobs keep running)\n", sig)
	case <-c.EngineDone():
		if err := c.EngineErr(); err != nil {
			c.Close()
			return fmt.Errorf("%w: engine: %v", client.ErrUnavailable, err)
		}
		fmt.Fprintf(s.ErrOut, "somaflow engine: idle for %v: exiting\n", idle)
	}
	return c.Close()
}

// engineStatusRun says whether an engine runs on the state dir.
func engineStatusRun(ctx context.Context, s *IO, f *Factory, asJSON bool) error {
	dir, err := f.StateDir()
	if err != nil {
		return err
	}
	h := service.Engine(dir)
	if asJSON {
		return s.JSON(map[string]any{"running": h.Running, "host": h.Host, "pid": h.PID, "state_dir": dir})
	}
	if h.Running {
		fmt.Fprintf(s.Out, "engine running on %s, pid %d (state dir %s)\n", h.Host, h.PID, dir)
	} else {
		fmt.Fprintf(s.Out, "no engine running (state dir %s)\n", dir)
	}
	return nil
}

// engineStopRun stops the state dir's engine.
func engineStopRun(ctx context.Context, s *IO, f *Factory) error {
	dir, err := f.StateDir()
	if err != nil {
		return err
	}
	h, err := service.Stop(dir, 30*time.Second)
	switch {
	case errors.Is(err, service.ErrNotStopped):
		return fmt.Errorf("%w: %v", client.ErrTimeout, err)
	case err != nil:
		return fmt.Errorf("%w: %v", client.ErrUnavailable, err)
	case !h.Running:
		fmt.Fprintln(s.Out, "no engine running")
	default:
		fmt.Fprintf(s.Out, "engine stopped (pid %d)\n", h.PID)
	}
	return nil
}

// engineLogger writes the engine's log as text lines on stderr.
func engineLogger(s *IO) *slog.Logger {
	return slog.New(slog.NewTextHandler(s.ErrOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
