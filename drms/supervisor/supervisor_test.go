package supervisor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/backendtest"
	"github.com/somaflow/somaflow/drms/supervisor"
	"github.com/somaflow/somaflow/model"
)

// supBin is a small main that runs supervisor.Main, standing in for
// `somaflow supervisor`.
var supBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "supmain")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	supBin = filepath.Join(dir, "supmain")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "build", "-o", supBin, "./testdata/supmain")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the test supervisor:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const deadline = 60 * time.Second

func config(state string, idle string) drms.Config {
	return drms.Config{StateDir: state, ExecPath: supBin, EngineTag: "test",
		Settings: map[string]string{"supervisor-idle": idle, "kill-grace": "1s"}}
}

// newBackend connects to (or starts) the supervisor of state; the
// supervisor is stopped when the test ends.
func newBackend(t testing.TB, state string) *supervisor.Backend {
	t.Helper()
	b, err := supervisor.New(config(state, "30s"))
	if err != nil {
		t.Fatalf("supervisor.New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// stopSupervisor ends the supervisor of state (SIGTERM: a clean exit) and
// waits until it is gone.
func stopSupervisor(t testing.TB, state string) {
	bs, err := supervisor.ReadBootstrap(state)
	if err != nil {
		return
	}
	syscall.Kill(bs.PID, syscall.SIGTERM)
	waitFor(t, fmt.Sprintf("supervisor %d to exit", bs.PID), func() bool { return !alive(bs.PID) })
}

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z") && !strings.HasPrefix(s[i+1:], " X")
}

// waitFor polls cond until it holds (generous deadline; no fixed sleeps
// decide the result).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for d := time.Millisecond; time.Now().Before(end); d = min(2*d, 100*time.Millisecond) {
		if cond() {
			return
		}
		time.Sleep(d)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func spec(dir string, job int64, argv ...string) drms.JobSpec {
	return drms.JobSpec{EngineTag: "test", WorkflowID: 1, JobID: job, Attempt: 1, Argv: argv,
		Env: os.Environ(), Dir: dir, Stdout: filepath.Join(dir, fmt.Sprintf("%d.out", job)),
		Stderr: filepath.Join(dir, fmt.Sprintf("%d.err", job))}
}

// waitEvent waits for the end of handle id on b's events.
func waitEvent(t testing.TB, b *supervisor.Backend, id string) *drms.Outcome {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		select {
		case ev := <-b.Events():
			if ev.ID == id && ev.State.Phase == drms.Ended {
				return ev.State.Outcome
			}
		case <-timer.C:
			t.Fatalf("no end event for %s", id)
		}
	}
}

func TestConformance(t *testing.T) {
	state := t.TempDir()
	t.Cleanup(func() { stopSupervisor(t, state) })
	backendtest.Run(t, backendtest.Harness{
		New: func(t *testing.T) drms.Backend {
			b, err := supervisor.New(config(state, "30s"))
			if err != nil {
				t.Fatalf("supervisor.New: %v", err)
			}
			return b
		},
	})
}

func TestCapabilities(t *testing.T) {
	state := t.TempDir()
	t.Cleanup(func() { stopSupervisor(t, state) })
	c := newBackend(t, state).Capabilities()
	if c.Name != "local" || !c.Supervisor || !c.SurvivesEngine || c.MaxJobsDefault < 1 {
		t.Fatalf("capabilities: %+v", c)
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []drms.Config{
		{ExecPath: supBin},
		{StateDir: t.TempDir()},
		{StateDir: t.TempDir(), ExecPath: supBin, Settings: map[string]string{"supervisor-idle": "soon"}},
		{StateDir: t.TempDir(), ExecPath: supBin, Settings: map[string]string{"kill-grace": "-1s"}},
	} {
		if _, err := supervisor.New(c); err == nil {
			t.Errorf("New(%+v): no error", c)
		}
	}
	// A binary that is not a supervisor: a clear error, pointing at the log.
	_, err := supervisor.New(drms.Config{StateDir: t.TempDir(), ExecPath: "/bin/false"})
	if err == nil || !strings.Contains(err.Error(), "supervisor.log") {
		t.Fatalf("New with /bin/false: %v", err)
	}
}

// Files and modes: state dir 0700, journal, bootstrap and socket 0600.
func TestModes(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	t.Cleanup(func() { stopSupervisor(t, state) })
	newBackend(t, state)
	bs, err := supervisor.ReadBootstrap(state)
	if err != nil {
		t.Fatal(err)
	}
	if bs.PID <= 0 || bs.Protocol != supervisor.ProtocolVersion || bs.Started.IsZero() {
		t.Fatalf("bootstrap: %+v", bs)
	}
	for path, want := range map[string]os.FileMode{
		state: 0o700, filepath.Join(state, "supervisor.json"): 0o600,
		filepath.Join(state, "supervisor.journal"): 0o600, bs.Socket: 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
}

// A state dir whose socket path would pass the 108-byte limit gets a
// hashed socket in a private directory.
func TestLongStateDir(t *testing.T) {
	state := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	t.Cleanup(func() { stopSupervisor(t, state) })
	b := newBackend(t, state)
	bs, err := supervisor.ReadBootstrap(state)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs.Socket) > 100 || strings.HasPrefix(bs.Socket, state) {
		t.Fatalf("socket path %q", bs.Socket)
	}
	fi, err := os.Stat(filepath.Dir(bs.Socket))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket dir: %v %v", fi, err)
	}
	dir := t.TempDir()
	h, err := b.Submit(context.Background(), spec(dir, 1, "true"))
	if err != nil {
		t.Fatal(err)
	}
	if o := waitEvent(t, b, h.ID); o.ExitValue == nil || *o.ExitValue != 0 {
		t.Fatalf("outcome %+v", o)
	}
}

// The same attempt key is never started twice.
func TestNoDoubleStart(t *testing.T) {
	state := t.TempDir()
	t.Cleanup(func() { stopSupervisor(t, state) })
	b := newBackend(t, state)
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	sp := spec(dir, 7, "sh", "-c", "echo x >> "+marker)
	h1, err := b.Submit(context.Background(), sp)
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, b, h1.ID)
	b2 := newBackend(t, state)
	h2, err := b2.Submit(context.Background(), sp)
	if err != nil {
		t.Fatal(err)
	}
	if h2.ID != h1.ID {
		t.Fatalf("second submit of key %s: handle %s, want %s", sp.Key(), h2.ID, h1.ID)
	}
	st, err := b2.Status(context.Background(), []drms.Handle{h2})
	if err != nil || st[h2.ID].Phase != drms.Ended {
		t.Fatalf("status of the existing job: %+v %v", st, err)
	}
	if data, _ := os.ReadFile(marker); string(data) != "x\n" {
		t.Fatalf("marker %q: the job ran more than once", data)
	}
}

func TestLocate(t *testing.T) {
	state := t.TempDir()
	t.Cleanup(func() { stopSupervisor(t, state) })
	b := newBackend(t, state)
	dir := t.TempDir()
	sp := spec(dir, 3, "sh", "-c", "exit 5")
	ctx := context.Background()
	if _, found, never, err := b.Locate(ctx, sp); err != nil || found || !never {
		t.Fatalf("Locate before submit: found=%v never=%v err=%v", found, never, err)
	}
	h, err := b.Submit(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, b, h.ID)
	b2 := newBackend(t, state)
	h2, found, never, err := b2.Locate(ctx, sp)
	if err != nil || !found || never || h2.ID != h.ID {
		t.Fatalf("Locate after submit: %+v found=%v never=%v err=%v", h2, found, never, err)
	}
	st, err := b2.Recover(ctx, h2)
	if err != nil || st.Phase != drms.Ended || *st.Outcome.ExitValue != 5 {
		t.Fatalf("Recover located: %+v %v", st, err)
	}
	// Acknowledged: forgotten by the supervisor.
	if err := b2.Acknowledge(ctx, []drms.Handle{h2}); err != nil {
		t.Fatal(err)
	}
	// The ack is sent without waiting for an answer; once the supervisor
	// read it, the key is forgotten. (Locate of an unknown key waits for
	// older connections of the same engine to be read to their end, so it
	// does not stall on the closed ones.)
	b.Close()
	b2.Close()
	b3 := newBackend(t, state)
	waitFor(t, "the acknowledged job to be forgotten", func() bool {
		_, found, never, err := b3.Locate(ctx, sp)
		if err != nil || !found && !never {
			t.Fatalf("Locate after acknowledge: found=%v never=%v err=%v", found, never, err)
		}
		return never
	})
}

// A job that ends while no engine is connected, and even after the
// supervisor exited idle, is recovered with its real outcome (from the
// journal).
func TestRecoverAfterIdleExit(t *testing.T) {
	state := t.TempDir()
	t.Cleanup(func() { stopSupervisor(t, state) })
	b, err := supervisor.New(config(state, "200ms"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	h, err := b.Submit(context.Background(), spec(dir, 1, "sh", "-c", "while [ ! -e "+gate+" ]; do sleep 0.05; done; exit 6"))
	if err != nil {
		t.Fatal(err)
	}
	bs, _ := supervisor.ReadBootstrap(state)
	b.Close() // the engine goes away while the job runs
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle supervisor to exit", func() bool { return !alive(bs.PID) })
	if _, err := os.Stat(filepath.Join(state, "supervisor.json")); !os.IsNotExist(err) {
		t.Fatalf("bootstrap file left behind by an idle exit: %v", err)
	}
	if _, err := os.Stat(bs.Socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind by an idle exit: %v", err)
	}
	b2 := newBackend(t, state)
	st, err := b2.Recover(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != drms.Ended || st.Outcome.ExitStatus != model.ExitFinishedRegular || *st.Outcome.ExitValue != 6 {
		t.Fatalf("recovered: %+v", st.Outcome)
	}
	if st.Outcome.Usage.CPUS == nil || st.Outcome.Ended.IsZero() {
		t.Fatalf("recovered outcome without usage or end time: %+v", st.Outcome)
	}
}

// Several backends (engines' connections) share one supervisor: exactly
// one supervisor process serves a state dir.
func TestOneSupervisor(t *testing.T) {
	state := t.TempDir()
	t.Cleanup(func() { stopSupervisor(t, state) })
	const n = 6
	errs := make(chan error, n)
	pids := make(chan int, n)
	for range n {
		go func() {
			b, err := supervisor.New(config(state, "30s"))
			if err != nil {
				errs <- err
				return
			}
			t.Cleanup(func() { b.Close() })
			pids <- b.SupervisorPID()
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(pids)
	first := 0
	for p := range pids {
		if first == 0 {
			first = p
		}
		if p != first || p == 0 {
			t.Fatalf("backends connected to supervisors %d and %d", first, p)
		}
	}
	if got := supervisors(state); len(got) != 1 {
		t.Fatalf("supervisor processes for %s: %v", state, got)
	}
}

// supervisors lists the live supervisor processes of state.
func supervisors(state string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(data), "\x00")
		if len(args) > 3 && args[1] == "supervisor" && args[3] == state && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// Killing the supervisor (SIGKILL) while jobs run: the backend starts a new
// one, the jobs end exit_status_undetermined with a reason, their process
// groups are gone, and nothing is re-run.
func TestSupervisorKilled(t *testing.T) {
	state := t.TempDir()
	t.Cleanup(func() { stopSupervisor(t, state) })
	b := newBackend(t, state)
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	childPid := filepath.Join(dir, "child.pid")
	h, err := b.Submit(context.Background(), spec(dir, 1, "sh", "-c",
		"echo run >> "+marker+"; sleep 300 & echo $! > "+childPid+"; wait"))
	if err != nil {
		t.Fatal(err)
	}
	var child int
	waitFor(t, "the job's child pid", func() bool {
		data, _ := os.ReadFile(childPid)
		child, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		return child > 0
	})
	jobPid, _ := strconv.Atoi(h.ID)
	old := b.SupervisorPID()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	o := waitEvent(t, b, h.ID)
	if o.Status != model.JobFailed || o.ExitStatus != model.ExitUndetermined || !strings.Contains(o.Reason, "supervisor died") {
		t.Fatalf("outcome after the supervisor died: %+v", o)
	}
	for _, pid := range []int{jobPid, child} {
		waitFor(t, fmt.Sprintf("process %d of the orphaned job to be gone", pid), func() bool { return !alive(pid) })
	}
	if p := b.SupervisorPID(); p == 0 || p == old || !alive(p) {
		t.Fatalf("new supervisor pid %d (old %d)", p, old)
	}
	if got := supervisors(state); len(got) != 1 {
		t.Fatalf("supervisor processes: %v", got)
	}
	// A restarted engine sees the same outcome; nothing ran again.
	b2 := newBackend(t, state)
	st, err := b2.Recover(context.Background(), h)
	if err != nil || st.Phase != drms.Ended || st.Outcome.ExitStatus != model.ExitUndetermined {
		t.Fatalf("recover after the supervisor died: %+v %v", st, err)
	}
	if data, _ := os.ReadFile(marker); string(data) != "run\n" {
		t.Fatalf("marker %q: the job ran again", data)
	}
	// And new jobs run under the new supervisor.
	h3, err := b.Submit(context.Background(), spec(dir, 2, "true"))
	if err != nil {
		t.Fatal(err)
	}
	if o := waitEvent(t, b, h3.ID); o.ExitValue == nil || *o.ExitValue != 0 {
		t.Fatalf("job under the new supervisor: %+v", o)
	}
}

// A supervisor that dies breaks this backend's connection before its
// reader sees it go. A request the connection took no byte of never
// reached any supervisor: it goes again on a new connection instead of
// failing. (A start failed "uncertain", the engine located it on the same
// dead connection, which failed too, and ended the job, never started,
// exit_status_undetermined: every job of the batch it was submitting, in
// cli's TestCrashSupervisorHeld.)
func TestBrokenConnection(t *testing.T) {
	state := t.TempDir()
	t.Cleanup(func() { stopSupervisor(t, state) })
	b := newBackend(t, state)
	dir := t.TempDir()
	ctx := context.Background()
	marker := filepath.Join(dir, "marker")
	s := spec(dir, 1, "sh", "-c", "echo run >> "+marker)
	supervisor.BreakConnection(b)
	h, err := b.Submit(ctx, s)
	if err != nil {
		t.Fatalf("submit on a broken connection: %v", err)
	}
	if o := waitEvent(t, b, h.ID); o.ExitValue == nil || *o.ExitValue != 0 {
		t.Fatalf("job submitted on a broken connection: %+v", o)
	}
	// What the engine asks after an uncertain submission.
	supervisor.BreakConnection(b)
	got, found, never, err := b.Locate(ctx, s)
	if err != nil || !found || never || got.ID != h.ID {
		t.Fatalf("locate on a broken connection: %+v found %v never %v: %v", got, found, never, err)
	}
	supervisor.BreakConnection(b)
	if _, found, never, err := b.Locate(ctx, spec(dir, 2, "true")); err != nil || found || !never {
		t.Fatalf("locate of a job never submitted, on a broken connection: found %v never %v: %v", found, never, err)
	}
	if data, _ := os.ReadFile(marker); string(data) != "run\n" {
		t.Fatalf("marker %q: want one run", data)
	}
}

// The supervisor exits by itself once idle, and not while a job runs.
func TestIdleExit(t *testing.T) {
	state := t.TempDir()
	t.Cleanup(func() { stopSupervisor(t, state) })
	b, err := supervisor.New(config(state, "100ms"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	h, err := b.Submit(context.Background(), spec(dir, 1, "sh", "-c", "while [ ! -e "+gate+" ]; do sleep 0.05; done"))
	if err != nil {
		t.Fatal(err)
	}
	pid := b.SupervisorPID()
	b.Close()
	// Several idle periods pass while the job runs: the supervisor stays.
	b2 := newBackend(t, state)
	if b2.SupervisorPID() != pid {
		t.Fatalf("supervisor changed while a job ran: %d -> %d", pid, b2.SupervisorPID())
	}
	b2.Close()
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_ = h
	waitFor(t, "the idle supervisor to exit", func() bool { return !alive(pid) })
}

// An engine that dies right after writing a start request: a restarted
// engine's Locate must not call the attempt never submitted while that
// request is still unread — it is found (and runs once).
func TestLocateAfterDeadEngine(t *testing.T) {
	state := t.TempDir()
	t.Cleanup(func() { stopSupervisor(t, state) })
	b := newBackend(t, state)
	bs, err := supervisor.ReadBootstrap(state)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	sp := spec(dir, 11, "sh", "-c", "echo x >> "+marker)
	// The "dead engine": hello, start, gone without reading anything.
	c, err := net.Dial("unix", bs.Socket)
	if err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(c)
	enc.Encode(supervisor.Request{ID: 1, Op: "hello", Protocol: supervisor.ProtocolVersion, Tag: "test"})
	enc.Encode(supervisor.Request{ID: 2, Op: "start", Key: sp.Key(), Job: &supervisor.JobReq{
		Argv: sp.Argv, Env: sp.Env, Dir: sp.Dir, Stdout: sp.Stdout, Stderr: sp.Stderr}})
	c.Close()
	b.Close()
	b2 := newBackend(t, state)
	h, found, never, err := b2.Locate(context.Background(), sp)
	if err != nil || !found || never {
		t.Fatalf("Locate: found=%v never=%v err=%v", found, never, err)
	}
	st, err := b2.Recover(context.Background(), h)
	for err == nil && st.Phase != drms.Ended {
		waitFor(t, "the located job to end", func() bool {
			st, err = b2.Recover(context.Background(), h)
			return err != nil || st.Phase == drms.Ended
		})
	}
	if err != nil || *st.Outcome.ExitValue != 0 {
		t.Fatalf("located job: %+v %v", st, err)
	}
	if data, _ := os.ReadFile(marker); string(data) != "x\n" {
		t.Fatalf("marker %q", data)
	}
}

// TestAcknowledgeMany: the jobs of one acknowledgement are forgotten
// together (one journal write), also by the next supervisor, which reads
// them from the journal.
func TestAcknowledgeMany(t *testing.T) {
	state := t.TempDir()
	t.Cleanup(func() { stopSupervisor(t, state) })
	b := newBackend(t, state)
	ctx := context.Background()
	var specs []drms.JobSpec
	var hs []drms.Handle
	for i := 1; i <= 3; i++ {
		sp := spec(t.TempDir(), int64(i), "true")
		h, err := b.Submit(ctx, sp)
		if err != nil {
			t.Fatal(err)
		}
		waitEvent(t, b, h.ID)
		specs, hs = append(specs, sp), append(hs, h)
	}
	if err := b.Acknowledge(ctx, hs); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// Read by the supervisor once a new connection of the same engine is
	// answered "never" for the last key.
	b2 := newBackend(t, state)
	waitFor(t, "the acknowledged jobs to be forgotten", func() bool {
		_, _, never, err := b2.Locate(ctx, specs[2])
		return err == nil && never
	})
	b2.Close()
	stopSupervisor(t, state)
	b3 := newBackend(t, state)
	for i, sp := range specs {
		if _, found, never, err := b3.Locate(ctx, sp); err != nil || found || !never {
			t.Errorf("job %d after a restart: found=%v never=%v err=%v", i+1, found, never, err)
		}
	}
	data, err := os.ReadFile(filepath.Join(state, "supervisor.journal"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), `"t":"ack"`); n != 3 && n != 0 {
		t.Errorf("%d ack records in the journal, want 3 (or 0 once compacted):\n%s", n, data)
	}
}
