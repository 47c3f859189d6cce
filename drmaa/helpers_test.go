//go:build drmaa

package drmaa

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
)

// execBin is the stand-in somaflow binary (testdata/execjob) built by TestMain.
var execBin string

// geProblem says why Grid Engine cannot be used here ("" when it can).
var geProblem string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "somaflow-drmaa-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Jobs run as whoever submits them; the binary must be reachable by them.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	execBin = filepath.Join(dir, "somaflow")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.Command(goBin, "build", "-o", execBin, "./testdata/execjob").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the exec-job stand-in: %v\n%s", err, out)
		return 1
	}
	geProblem = probeGridEngine()
	return m.Run()
}

// probeGridEngine checks that a Grid Engine cell answers.
func probeGridEngine() string {
	if os.Getenv("SGE_ROOT") == "" {
		return "SGE_ROOT is not set (start one with scripts/gridengine-up.sh)"
	}
	if _, err := exec.LookPath("qstat"); err != nil {
		return "qstat is not on PATH"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "qstat", "-f").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("qstat -f fails (is sge_qmaster running?): %v: %s", err, strings.TrimSpace(string(out)))
	}
	return ""
}

func required() bool {
	for _, s := range strings.Split(os.Getenv("SOMAFLOW_REQUIRE"), ",") {
		if strings.TrimSpace(s) == "drmaa" {
			return true
		}
	}
	return false
}

// needGE skips (or, when SOMAFLOW_REQUIRE names drmaa, fails) without Grid Engine.
func needGE(t *testing.T) {
	t.Helper()
	if geProblem == "" {
		return
	}
	if required() {
		t.Fatalf("SOMAFLOW_REQUIRE=drmaa but Grid Engine is not usable: %s", geProblem)
	}
	t.Skipf("no Grid Engine: %s", geProblem)
}

// jobDir is a directory the jobs can write to.
func jobDir(t *testing.T) string {
	d := t.TempDir()
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// newBackend opens a backend on state (a fresh one when "").
func newBackend(t *testing.T, state string, settings map[string]string) *Backend {
	t.Helper()
	if state == "" {
		state = jobDir(t)
	}
	b, err := New(drms.Config{StateDir: state, ExecPath: execBin, EngineTag: "t", Settings: settings})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b.(*Backend)
}

var serial struct {
	sync.Mutex
	n int64
}

// spec is a job spec for argv with its files in a fresh directory.
func spec(t *testing.T, argv ...string) drms.JobSpec {
	dir := jobDir(t)
	serial.Lock()
	serial.n++
	n := serial.n
	serial.Unlock()
	return drms.JobSpec{
		EngineTag: fmt.Sprintf("t%d", os.Getpid()), WorkflowID: 7, JobID: n, Attempt: 1,
		JobName: t.Name(), Argv: argv, Env: os.Environ(), Dir: dir,
		Stdout: filepath.Join(dir, "job.out"), Stderr: filepath.Join(dir, "job.err"),
	}
}

func submit(t *testing.T, b *Backend, s drms.JobSpec) drms.Handle {
	t.Helper()
	h, err := b.Submit(context.Background(), s)
	if err != nil {
		t.Fatalf("Submit %v: %v", s.Argv, err)
	}
	return h
}

const deadline = 3 * time.Minute

// waitEnd waits for h's outcome: from b's events, or from Status.
func waitEnd(t *testing.T, b *Backend, h drms.Handle) *drms.Outcome {
	t.Helper()
	end := time.Now().Add(deadline)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		st, err := b.Status(context.Background(), []drms.Handle{h})
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if s := st[h.ID]; s.Phase == drms.Ended {
			return s.Outcome
		}
		select {
		case <-tick.C:
		case ev, ok := <-b.Events():
			if ok && ev.ID == h.ID && ev.State.Phase == drms.Ended {
				return ev.State.Outcome
			}
		}
	}
	t.Fatalf("job %s did not end within %v", h.ID, deadline)
	return nil
}

// waitPhase waits until Status reports one of phases for h.
func waitPhase(t *testing.T, b *Backend, h drms.Handle, phases ...drms.Phase) drms.State {
	t.Helper()
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		st, err := b.Status(context.Background(), []drms.Handle{h})
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		for _, p := range phases {
			if st[h.ID].Phase == p {
				return st[h.ID]
			}
		}
		if st[h.ID].Phase == drms.Ended {
			t.Fatalf("job %s ended before reaching %v: %+v", h.ID, phases, *st[h.ID].Outcome)
		}
		time.Sleep(200 * time.Millisecond) // polling interval, not a wait for a result
	}
	t.Fatalf("job %s never reached %v", h.ID, phases)
	return drms.State{}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
}

func qdel(t *testing.T, id string) {
	t.Helper()
	if out, err := exec.Command("qdel", id).CombinedOutput(); err != nil {
		t.Fatalf("qdel %s: %v: %s", id, err, out)
	}
}

// gone reports whether Grid Engine no longer lists job id.
func gone(id string) bool {
	return exec.Command("qstat", "-j", id).Run() != nil
}

func showOutcome(o *drms.Outcome) string {
	if o == nil {
		return "<nil>"
	}
	ev := "null"
	if o.ExitValue != nil {
		ev = fmt.Sprint(*o.ExitValue)
	}
	return fmt.Sprintf("%s/%s exit=%s signal=%q reason=%q", o.Status, o.ExitStatus, ev, o.Signal, o.Reason)
}

func wantOutcome(t *testing.T, o *drms.Outcome, status, exitStatus string, exit *int, signal, reasonHas string) {
	t.Helper()
	ok := o != nil && o.Status == status && o.ExitStatus == exitStatus && o.Signal == signal &&
		(exit == nil) == (o.ExitValue == nil) && (exit == nil || *exit == *o.ExitValue) &&
		strings.Contains(o.Reason, reasonHas)
	if !ok {
		want := &drms.Outcome{Status: status, ExitStatus: exitStatus, ExitValue: exit, Signal: signal, Reason: reasonHas}
		t.Fatalf("got %s, want %s", showOutcome(o), showOutcome(want))
	}
}

func intp(n int) *int { return &n }
