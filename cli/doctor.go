package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/drmaa"
	"github.com/somaflow/somaflow/drms/batch"
	"github.com/somaflow/somaflow/drms/command"
	"github.com/somaflow/somaflow/drms/proc"
	"github.com/somaflow/somaflow/drms/supervisor"
	"github.com/somaflow/somaflow/privdir"
	"github.com/somaflow/somaflow/service"
)

// check is one finding of `somaflow doctor`.
type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// doctorOptions are doctor's flags.
type doctorOptions struct {
	*Factory
	JSON bool
}

func doctorCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:  "doctor",
		Usage: "check the installation: configuration, state dir, database, engine, supervisor, backend",
		Description: "Looks at what somaflow needs and says what is wrong and how to fix it. Exit 0 only when\n" +
			"every check passed, 5 otherwise. Nothing is changed (the state dir is not even created).",
		Flags: []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print the checks as JSON"}},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			return doctorRun(ctx, f.IO, &doctorOptions{Factory: f, JSON: cmd.Bool("json")})
		},
	}
}

func doctorRun(ctx context.Context, s *IO, o *doctorOptions) error {
	checks := doctor(ctx, o)
	ok := true
	for _, c := range checks {
		ok = ok && c.OK
	}
	if o.JSON {
		if err := s.JSON(map[string]any{"ok": ok, "checks": checks}); err != nil {
			return err
		}
	} else {
		for _, c := range checks {
			mark := s.paint("32", "ok  ")
			if !c.OK {
				mark = s.paint("31", "FAIL")
			}
			fmt.Fprintf(s.Out, "%s %s: %s\n", mark, c.Name, printable(c.Detail))
			if c.Fix != "" {
				fmt.Fprintf(s.Out, "     fix: %s\n", c.Fix)
			}
		}
	}
	if !ok {
		return silentExit{ExitInternal}
	}
	return nil
}

func doctor(ctx context.Context, o *doctorOptions) []check {
	var checks []check
	add := func(name string, ok bool, detail, fix string) {
		checks = append(checks, check{Name: name, OK: ok, Detail: detail, Fix: fix})
	}
	files := "none (built-in defaults)"
	if len(o.Config.Files) > 0 {
		files = strings.Join(o.Config.Files, ", ")
	}
	add("configuration", true, files, "")

	dir, err := o.StateDir()
	if err != nil {
		add("state dir", false, err.Error(), "set --state-dir or SOMAFLOW_STATE_DIR")
		return checks
	}
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		add("state dir", true, dir+" (not created yet: the first submit or run makes it)", "")
	} else if err := privdir.Check(dir); err != nil {
		add("state dir", false, err.Error(), "use a state dir of your own, mode 0700 (chmod 700 "+dir+")")
		return checks
	} else if err := writable(dir); err != nil {
		add("state dir", false, err.Error(), "make "+dir+" writable (a read-only mount, a full or quota-limited filesystem?) or use another state dir")
		return checks
	} else {
		c, err := o.Client(ctx)
		if err != nil {
			add("database", false, err.Error(), "see the message; a lost database is not recreated silently: move the state dir away to start afresh")
		} else {
			fs, journal := "a local filesystem", "WAL journal"
			if c.OnNetworkFS() {
				fs, journal = "a network filesystem", "rollback journal (slower than WAL; prefer a local disk when one engine host is enough)"
			}
			add("database", true, fmt.Sprintf("%s on %s, %s", dir, fs, journal), "")
		}
		var st syscall.Statfs_t
		if syscall.Statfs(dir, &st) == nil {
			free := st.Bavail * uint64(st.Bsize)
			ok := free >= 100<<20
			fix := ""
			if !ok {
				fix = "free space on that filesystem: the engine cannot record progress on a full disk"
			}
			add("free space", ok, fmt.Sprintf("%d MiB free under %s", free>>20, dir), fix)
		}
		h := service.Engine(dir)
		beat := time.Duration(0)
		if fi, err := os.Stat(filepath.Join(dir, "engine.lock")); err == nil {
			beat = time.Since(fi.ModTime())
		}
		switch {
		case h.Running && beat > 6*service.HeartbeatPeriod:
			add("engine", false, fmt.Sprintf("pid %d on %s holds the engine lock but has not touched it for %v (it does every %v): it is hung",
				h.PID, h.Host, beat.Round(time.Second), service.HeartbeatPeriod),
				fmt.Sprintf("kill it (kill %d; kill -9 %d if it stays); the next command starts a new engine, which re-attaches to the jobs", h.PID, h.PID))
		case h.Running:
			add("engine", true, fmt.Sprintf("running on %s, pid %d", h.Host, h.PID), "")
			if p := service.ReadProblem(dir); p != nil {
				add("engine progress", false, fmt.Sprintf("cannot record progress since %s: %s", p.Since.Local().Format(time.RFC3339), p.Message), "free space or fix the filesystem: the engine retries by itself")
			}
		default:
			add("engine", true, "not running (submit starts one; it exits when idle)", "")
		}
		if b, err := supervisor.ReadBootstrap(dir); err == nil && b.PID > 0 {
			alive := b.PID > 0 && syscall.Kill(b.PID, 0) == nil
			detail := fmt.Sprintf("pid %d", b.PID)
			if !alive {
				detail += " (gone; the next engine starts another and reads its journal)"
			}
			add("supervisor", true, detail, "")
		}
	}

	backend := o.Backend()
	switch backend {
	case "local", "":
		cg := "job cgroups off (SOMAFLOW_CGROUPS=1 turns them on): what escapes a job is found by the supervisor's sweep"
		if os.Getenv(proc.CgroupsEnv) == "1" {
			cg = "SOMAFLOW_CGROUPS=1 but cgroups v2 are not writable here: what escapes a job is found by the supervisor's sweep"
			if c := proc.OpenCgroups("somaflow-doctor"); c != nil {
				c.Close()
				cg = "each job in a cgroup of its own"
			}
		}
		add("backend local", true, fmt.Sprintf("%d slots (CPUs); %s", proc.CPUCount(), cg), "")
	case "slurm":
		missing := []string{}
		for _, c := range []string{"sbatch", "squeue", "scancel", "sacct", "scontrol"} {
			if _, err := exec.LookPath(c); err != nil {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			add("backend slurm", false, "not on PATH: "+strings.Join(missing, ", "), "load Slurm's module or add its bin directory to PATH")
			break
		}
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := exec.CommandContext(tctx, "squeue", "-h", "-u", fmt.Sprint(os.Getuid()), "-o", "%i").CombinedOutput()
		cancel()
		if err != nil {
			add("backend slurm", false, "squeue fails: "+strings.TrimSpace(string(out)), "check that slurmctld answers (scontrol ping)")
		} else {
			add("backend slurm", true, "sbatch, squeue, scancel, sacct and scontrol found; the controller answers", "")
		}
	case "pbs":
		missing := []string{}
		for _, c := range []string{"qsub", "qstat", "qdel", "qhold", "qrls"} {
			if _, err := exec.LookPath(c); err != nil {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			add("backend pbs", false, "not on PATH: "+strings.Join(missing, ", "), "load PBS's module or add its bin directory to PATH")
			break
		}
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := exec.CommandContext(tctx, "qstat").CombinedOutput()
		cancel()
		if err != nil && len(strings.TrimSpace(string(out))) > 0 {
			add("backend pbs", false, "qstat fails: "+strings.TrimSpace(string(out)), "check that the PBS server answers (qstat -B)")
		} else {
			add("backend pbs", true, "qsub, qstat, qdel, qhold and qrls found; the server answers", "")
		}
	case "command":
		settings := o.Config.Settings
		if err := command.Validate(settings); err != nil {
			add("backend command", false, err.Error(), "fix the settings of the command backend in the site configuration (docs/command-backend.md)")
			break
		}
		var missing []string
		for _, key := range []string{"submit", "status", "cancel", "hold", "release"} {
			words, _ := batch.SplitWords(settings[key])
			if len(words) > 0 {
				if _, err := exec.LookPath(words[0]); err != nil {
					missing = append(missing, key+": "+words[0])
				}
			}
		}
		if len(missing) > 0 {
			add("backend command", false, "commands not on PATH: "+strings.Join(missing, ", "), "load the batch system's module or add its bin directory to PATH")
		} else {
			add("backend command", true, "settings valid; submit, status and cancel commands found", "")
		}
	case "drmaa":
		if !drmaa.Compiled {
			add("backend drmaa", false, drmaa.ErrNotCompiled.Error(), "rebuild with make build-drmaa (libdrmaa and its header needed)")
		} else {
			add("backend drmaa", true, "compiled in", "")
		}
	default:
		if err := client.CheckBackend(backend); err != nil {
			add("backend "+backend, false, err.Error(), "use local, slurm, pbs, drmaa or command")
		}
	}
	return checks
}

// writable tells whether a file can be created in dir (a read-only mount
// or a full filesystem says no; permission bits alone do not stop root).
func writable(dir string) error {
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		return fmt.Errorf("state dir %s is not writable: %v", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}
