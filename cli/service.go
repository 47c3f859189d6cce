package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/privdir"
	"github.com/somaflow/somaflow/store"
)

// stateDir is the state dir the command works on.
func stateDir(cmd *ucli.Command) (string, error) {
	if d := cmd.String("state-dir"); d != "" {
		return filepath.Abs(d)
	}
	d, err := store.DefaultDir()
	if err != nil {
		return "", usageError{err}
	}
	return d, nil
}

// engineIdle is how long a background engine waits with nothing to do.
func engineIdle() time.Duration {
	if v := os.Getenv("SOMAFLOW_ENGINE_IDLE"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return 5 * time.Minute
}

// ensureEngine starts a background engine on the state dir unless one runs
// (here or on another host: the lock says so). The engine is detached: its
// own session, no terminal, so it survives the user's logout.
func ensureEngine(dir string) error {
	if os.Getenv("SOMAFLOW_ENGINE_AUTOSTART") == "0" {
		return nil // the site runs the engine itself (systemd, a batch allocation)
	}
	if running, _ := store.EngineRunning(dir); running {
		return nil
	}
	if other, _ := store.OtherHostEngine(dir); other {
		return nil // its engine will see the intents in the database
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("%w: cannot find the somaflow binary to start the engine: %v", client.ErrUnavailable, err)
	}
	logf, err := privdir.OpenFile(filepath.Join(dir, "engine.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%w: engine log: %v", client.ErrUnavailable, err)
	}
	defer logf.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	cmd := exec.Command(exe, "--state-dir", dir, "engine", "--background", "--idle", engineIdle().String())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: start engine: %v", client.ErrUnavailable, err)
	}
	return cmd.Process.Release()
}

func engineCommand(s *IO) *ucli.Command {
	return &ucli.Command{
		Name:  "engine",
		Usage: "run the engine of a state dir in the foreground (or: engine status, engine stop)",
		Description: "The engine carries out what submit, stop, restart and delete asked for, and records outcomes.\n" +
			"One engine runs per state dir (a lock file records host and pid). `somaflow submit` starts one\n" +
			"in the background when none runs; run it yourself under systemd, screen or a batch allocation.\n" +
			"It exits after --idle with nothing to run, and on SIGTERM/SIGINT (jobs keep running).",
		Flags: []ucli.Flag{
			&ucli.DurationFlag{Name: "idle", Usage: "exit after this long with nothing to run (0: never)", Value: 0},
			&ucli.BoolFlag{Name: "background", Usage: "started by submit: exit quietly if an engine already runs", Hidden: true},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			dir, err := stateDir(cmd)
			if err != nil {
				return err
			}
			// Caught, not ignored, so that jobs and the supervisor started
			// from here do not inherit an ignored SIGHUP.
			signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
			defer signal.Stop(sigs)
			exe, _ := os.Executable()
			c, err := client.Open(ctx, client.Options{
				StateDir: dir, Backend: cmd.String("backend"), SpoolDir: cmd.String("spool-dir"),
				ExecPath: exe, Idle: cmd.Duration("idle"), Logger: engineLogger(s), Settings: s.cfg.Settings,
				Supervised: true,
			})
			if errors.Is(err, client.ErrEngineRunning) && cmd.Bool("background") {
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
				fmt.Fprintf(s.ErrOut, "somaflow engine: idle for %v: exiting\n", cmd.Duration("idle"))
			}
			return c.Close()
		},
		Commands: []*ucli.Command{
			{
				Name:  "status",
				Usage: "tell whether an engine runs on the state dir, where and with which pid",
				Flags: []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print as JSON"}},
				Action: func(ctx context.Context, cmd *ucli.Command) error {
					dir, err := stateDir(cmd)
					if err != nil {
						return err
					}
					running, host, pid := engineState(dir)
					if cmd.Bool("json") {
						return s.JSON(map[string]any{"running": running, "host": host, "pid": pid, "state_dir": dir})
					}
					if running {
						fmt.Fprintf(s.Out, "engine running on %s, pid %d (state dir %s)\n", host, pid, dir)
					} else {
						fmt.Fprintf(s.Out, "no engine running (state dir %s)\n", dir)
					}
					return nil
				},
			},
			{
				Name:  "stop",
				Usage: "stop the engine of the state dir (jobs keep running; the next submit restarts it)",
				Action: func(ctx context.Context, cmd *ucli.Command) error {
					dir, err := stateDir(cmd)
					if err != nil {
						return err
					}
					running, host, pid := engineState(dir)
					if !running {
						fmt.Fprintln(s.Out, "no engine running")
						return nil
					}
					if me, _ := os.Hostname(); host != me {
						return fmt.Errorf("%w: the engine runs on host %s (pid %d): stop it there", client.ErrUnavailable, host, pid)
					}
					if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
						return fmt.Errorf("%w: stop engine pid %d: %v", client.ErrUnavailable, pid, err)
					}
					deadline := time.Now().Add(30 * time.Second)
					for time.Now().Before(deadline) {
						if r, _, _ := engineState(dir); !r {
							fmt.Fprintf(s.Out, "engine stopped (pid %d)\n", pid)
							return nil
						}
						time.Sleep(50 * time.Millisecond)
					}
					return fmt.Errorf("%w: engine pid %d did not stop within 30 s", client.ErrTimeout, pid)
				},
			},
		},
	}
}

// engineState tells whether an engine holds the state dir's lock, and the
// host and pid the lock file records.
func engineState(dir string) (running bool, host string, pid int) {
	running, info := store.EngineRunning(dir)
	for _, f := range strings.Fields(info) {
		if v, ok := strings.CutPrefix(f, "host="); ok {
			host = v
		}
		if v, ok := strings.CutPrefix(f, "pid="); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	return running, host, pid
}

// engineLogger writes the engine's log as text lines on stderr.
func engineLogger(s *IO) *slog.Logger {
	return slog.New(slog.NewTextHandler(s.ErrOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
