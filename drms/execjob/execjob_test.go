package execjob

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary plays `somaflow exec-job` when this variable is set.
const helperEnv = "SOMAFLOW_EXECJOB_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(Main(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// wrapper returns the command that runs exec-job with o.
func wrapper(t *testing.T, o Options, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], o.Args()...)
	cmd.Env = append(append(os.Environ(), helperEnv+"=1"), env...)
	return cmd
}

type result struct {
	ws     syscall.WaitStatus
	status *Status
	stderr string
}

func runWrapper(t *testing.T, o Options, env ...string) result {
	t.Helper()
	cmd := wrapper(t, o, env...)
	var errb strings.Builder
	cmd.Stderr = &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run exec-job: %v", err)
	}
	r := result{ws: cmd.ProcessState.Sys().(syscall.WaitStatus), stderr: errb.String()}
	st, err := ReadStatus(o.Status)
	if err != nil {
		t.Fatalf("status file: %v (stderr %q)", err, r.stderr)
	}
	r.status = st
	return r
}

func opts(t *testing.T, argv ...string) Options {
	d := t.TempDir()
	return Options{Status: filepath.Join(d, "job.status"), Dir: d, Stdout: filepath.Join(d, "out"), Stderr: filepath.Join(d, "err"), Argv: argv}
}

func TestExitCodes(t *testing.T) {
	for _, n := range []int{0, 3, 137, 255} {
		o := opts(t, "sh", "-c", "exit "+itoa(n))
		r := runWrapper(t, o)
		if !r.ws.Exited() || r.ws.ExitStatus() != n {
			t.Errorf("exit %d: wrapper wait status %v", n, r.ws)
		}
		if r.status.State != StateExited || r.status.Exit == nil || *r.status.Exit != n || r.status.Signal != "" {
			t.Errorf("exit %d: status %+v", n, r.status)
		}
		if r.status.Rusage == nil || r.status.Ended.Before(r.status.Started) {
			t.Errorf("exit %d: rusage/time missing: %+v", n, r.status)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestSignals(t *testing.T) {
	for _, c := range []struct {
		name string
		sig  syscall.Signal
	}{{"TERM", syscall.SIGTERM}, {"KILL", syscall.SIGKILL}, {"SEGV", syscall.SIGSEGV}, {"QUIT", syscall.SIGQUIT}, {"INT", syscall.SIGINT}, {"USR1", syscall.SIGUSR1}} {
		t.Run(c.name, func(t *testing.T) {
			o := opts(t, "sh", "-c", "ulimit -c 0; kill -"+c.name+" $$")
			r := runWrapper(t, o)
			if !r.ws.Signaled() || r.ws.Signal() != c.sig {
				t.Errorf("wrapper wait status %v (exited=%v code=%d), want killed by %v; stderr %q", r.ws, r.ws.Exited(), r.ws.ExitStatus(), c.sig, r.stderr)
			}
			if r.status.State != StateSignaled || r.status.Signal != "SIG"+c.name || r.status.Exit != nil {
				t.Errorf("status %+v", r.status)
			}
		})
	}
}

func TestNotStarted(t *testing.T) {
	cases := map[string]func(o *Options){
		"not found":         func(o *Options) { o.Argv = []string{"no-such-command-somaflow"} },
		"working directory": func(o *Options) { o.Dir = filepath.Join(o.Dir, "missing") },
		"stdin":             func(o *Options) { o.Stdin = filepath.Join(o.Dir, "missing-in") },
	}
	for want, mod := range cases {
		o := opts(t, "true")
		mod(&o)
		r := runWrapper(t, o)
		if !r.ws.Exited() || r.ws.ExitStatus() != ExitNotStarted {
			t.Errorf("%s: wait status %v", want, r.ws)
		}
		if r.status.State != StateNotStarted || !strings.Contains(r.status.Reason, want) {
			t.Errorf("%s: status %+v", want, r.status)
		}
	}
	// Relative command names are looked up against the working directory.
	o := opts(t, "./not-here")
	if r := runWrapper(t, o); r.status.State != StateNotStarted {
		t.Errorf("./not-here: %+v", r.status)
	}
}

func TestFilesAndEnv(t *testing.T) {
	o := opts(t, "sh", "-c", `cat; echo "$A|$B|$SLURM_JOB_ID"; echo err >&2; pwd -P`)
	o.Stdin = filepath.Join(o.Dir, "in")
	if err := os.WriteFile(o.Stdin, []byte("input\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o.EnvFile = filepath.Join(o.Dir, "env")
	if err := WriteEnvFile(o.EnvFile, []string{"A=x y 'z'", "B=$HOME\nline2", "PATH=" + os.Getenv("PATH")}); err != nil {
		t.Fatal(err)
	}
	o.Private = o.Dir
	r := runWrapper(t, o, "SLURM_JOB_ID=4242", "A=from-parent")
	if r.status.State != StateExited || *r.status.Exit != 0 {
		t.Fatalf("status %+v stderr %q", r.status, r.stderr)
	}
	dir, _ := filepath.EvalSymlinks(o.Dir)
	want := "input\nx y 'z'|$HOME\nline2|4242\n" + dir + "\n"
	if got, _ := os.ReadFile(o.Stdout); string(got) != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if got, _ := os.ReadFile(o.Stderr); string(got) != "err\n" {
		t.Errorf("stderr %q", got)
	}
	for _, p := range []string{o.Status, StartedPath(o.Status), o.Stdout, o.Stderr} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, err %v; want 0600", p, fi.Mode().Perm(), err)
		}
	}
	s, err := ReadStarted(StartedPath(o.Status))
	if err != nil || s.JobID != "4242" || s.Host == "" || s.PID == 0 {
		t.Errorf("started file %+v, %v", s, err)
	}
	if r.status.JobID != "4242" {
		t.Errorf("status job id %q", r.status.JobID)
	}

	// Join: both streams into stdout.
	o2 := opts(t, "sh", "-c", "echo out; echo err >&2")
	o2.Join = true
	runWrapper(t, o2)
	if got, _ := os.ReadFile(o2.Stdout); string(got) != "out\nerr\n" {
		t.Errorf("join: %q", got)
	}
}

// TestForward: a SIGTERM sent to exec-job (as scancel does) reaches the
// command, and exec-job then dies by it too.
func TestForward(t *testing.T) {
	o := opts(t, "sh", "-c", "echo ready; exec sleep 300")
	cmd := wrapper(t, o)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		b, _ := os.ReadFile(o.Stdout)
		if string(b) == "ready\n" {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("job never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("wrapper: %v", ws)
	}
	st, err := ReadStatus(o.Status)
	if err != nil || st.State != StateSignaled || st.Signal != "SIGTERM" {
		t.Errorf("status %+v, %v", st, err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--", "true"},
		{"--status", "x"},
		{"--status", "x", "--bogus", "--", "true"},
		{"--status"},
	} {
		if _, err := Parse(args); err == nil {
			t.Errorf("Parse(%q): no error", args)
		}
	}
	o, err := Parse([]string{"--status=s", "--dir", "d", "--join", "--", "a", "--", "b"})
	if err != nil || o.Status != "s" || o.Dir != "d" || !o.Join || strings.Join(o.Argv, " ") != "a -- b" {
		t.Errorf("Parse: %+v, %v", o, err)
	}
	// A bad command line with --status still leaves a status behind.
	d := t.TempDir()
	cmd := exec.Command(os.Args[0], "--status", filepath.Join(d, "s"), "--bogus", "--", "true")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != ExitUsage {
		t.Errorf("usage error: %v", err)
	}
	if st, err := ReadStatus(filepath.Join(d, "s")); err != nil || st.State != StateNotStarted {
		t.Errorf("status after usage error: %+v %v", st, err)
	}
	if _, err := ReadStatus(filepath.Join(d, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing status: %v", err)
	}
}

// A job's environment file that someone else could have written or
// swapped is refused: the job does not start, and the reason says why.
func TestEnvFileMustBeTheUsers(t *testing.T) {
	cases := map[string]func(t *testing.T, path string){
		"writable by group or others": func(t *testing.T, path string) { os.Chmod(path, 0o666) },
		"symbolic link": func(t *testing.T, path string) {
			other := path + ".real"
			os.Rename(path, other)
			os.Symlink(other, path)
		},
		"writable by group or others (owner": func(t *testing.T, path string) { os.Chmod(filepath.Dir(path), 0o777) },
	}
	if os.Geteuid() == 0 {
		cases["not owned by you"] = func(t *testing.T, path string) { os.Chown(path, 65534, 65534) }
	}
	for want, spoil := range cases {
		o := opts(t, "true")
		o.EnvFile = filepath.Join(o.Dir, "env")
		if err := WriteEnvFile(o.EnvFile, []string{"A=1"}); err != nil {
			t.Fatal(err)
		}
		spoil(t, o.EnvFile)
		r := runWrapper(t, o)
		if r.status.State != StateNotStarted || !strings.Contains(r.status.Reason, "environment file") {
			t.Errorf("%s: the job started or the reason does not name the file: %+v", want, r.status)
		}
		if want != "symbolic link" && !strings.Contains(r.status.Reason, want) {
			t.Errorf("%s: reason %q", want, r.status.Reason)
		}
	}
}
