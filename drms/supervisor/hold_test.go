package supervisor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/supervisor"
	"github.com/somaflow/somaflow/model"
)

// recorder keeps every event of a backend, so that tests can wait for one
// job's event without dropping the others'.
type recorder struct {
	mu  sync.Mutex
	evs []drms.Event
}

func record(t *testing.T, b *supervisor.Backend) *recorder {
	r := &recorder{}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case ev := <-b.Events():
				r.mu.Lock()
				r.evs = append(r.evs, ev)
				r.mu.Unlock()
			case <-done:
				return
			}
		}
	}()
	return r
}

// wait returns the first event of id in phase, following handle changes
// (a held job's events carry its pid once it started).
// first is the first event of the job whose handle is id.
func (r *recorder) first(id string) drms.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.evs {
		if ev.ID == id {
			return ev
		}
	}
	return drms.Event{}
}

func (r *recorder) wait(t *testing.T, id string, phase drms.Phase) drms.Event {
	t.Helper()
	var got drms.Event
	waitFor(t, fmt.Sprintf("a %v event of %s", phase, id), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		ids := map[string]bool{id: true}
		for _, ev := range r.evs {
			if !ids[ev.ID] {
				continue
			}
			if ev.State.Handle != nil {
				ids[ev.State.Handle.ID] = true
			}
			if ev.State.Phase == phase {
				got = ev
				return true
			}
		}
		return false
	})
	return got
}

// holdFixture gives a state dir whose supervisor is stopped at the end, a
// backend connected to it, the recorder of its events and a work dir.
func holdFixture(t *testing.T) (state string, b *supervisor.Backend, rec *recorder, dir string) {
	state = t.TempDir()
	t.Cleanup(func() { stopSupervisor(t, state) })
	b = newBackend(t, state)
	return state, b, record(t, b), t.TempDir()
}

// shJob is a job running a shell script in dir.
func shJob(dir string, job int64, script string) drms.JobSpec {
	return spec(dir, job, "sh", "-c", script)
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(data))
}

// A chain handed to the supervisor at once runs in order, each job after
// the previous one ended, with no engine in between; the held jobs start
// with a handle of their own (their pid).
func TestHoldAfterChain(t *testing.T) {
	_, b, rec, dir := holdFixture(t)
	log := filepath.Join(dir, "log")
	ctx := context.Background()
	release := filepath.Join(dir, "release")
	a, err := b.Submit(ctx, shJob(dir, 1, fmt.Sprintf("while [ ! -e %s ]; do sleep 0.05; done; echo a-end >> %s", release, log)))
	if err != nil {
		t.Fatal(err)
	}
	prev := a
	var held []drms.Handle
	for i := int64(2); i <= 4; i++ {
		h, err := b.SubmitAfter(ctx, shJob(dir, i, fmt.Sprintf("echo %d-start >> %s; echo %d-end >> %s", i, log, i, log)), []drms.Handle{prev})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(h.ID, "key:") {
			t.Fatalf("job %d held after a running job has handle %q, want its key", i, h.ID)
		}
		held = append(held, h)
		prev = h
	}
	st, err := b.Status(ctx, held)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range held {
		if st[h.ID].Phase != drms.Queued {
			t.Fatalf("held job %s: phase %v, want queued", h.ID, st[h.ID].Phase)
		}
	}
	if got := lines(t, log); len(got) != 0 {
		t.Fatalf("held jobs ran before their dependency ended: %v", got)
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for i, h := range held {
		end := rec.wait(t, h.ID, drms.Ended)
		if o := end.State.Outcome; o.ExitValue == nil || *o.ExitValue != 0 {
			t.Fatalf("job %d: %+v", i+2, o)
		}
		// Its first event, running or (a job this short ends before its
		// start event is due) its end, gives its new handle.
		first := rec.first(h.ID)
		if first.State.Handle == nil {
			t.Fatalf("job %d's first event has no new handle: %+v", i+2, first)
		}
		if pid, err := strconv.Atoi(first.State.Handle.ID); err != nil || pid <= 0 {
			t.Fatalf("job %d started with handle id %q, want its pid", i+2, first.State.Handle.ID)
		}
	}
	want := "a-end 2-start 2-end 3-start 3-end 4-start 4-end"
	if got := strings.Join(lines(t, log), " "); got != want {
		t.Fatalf("order of the chain: %q, want %q", got, want)
	}
}

// A dependency that did not succeed cancels the jobs held for it, and
// theirs: they end aborted_before_running and never run.
func TestHoldAfterFailure(t *testing.T) {
	_, b, rec, dir := holdFixture(t)
	marker := filepath.Join(dir, "ran")
	ctx := context.Background()
	release := filepath.Join(dir, "release")
	a, err := b.Submit(ctx, shJob(dir, 1, fmt.Sprintf("while [ ! -e %s ]; do sleep 0.05; done; exit 3", release)))
	if err != nil {
		t.Fatal(err)
	}
	bh, err := b.SubmitAfter(ctx, shJob(dir, 2, "echo 2 >> "+marker), []drms.Handle{a})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := b.SubmitAfter(ctx, shJob(dir, 3, "echo 3 >> "+marker), []drms.Handle{bh})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(release, nil, 0o600)
	if o := rec.wait(t, a.ID, drms.Ended).State.Outcome; o.ExitValue == nil || *o.ExitValue != 3 {
		t.Fatalf("dependency: %+v", o)
	}
	for _, h := range []drms.Handle{bh, ch} {
		o := rec.wait(t, h.ID, drms.Ended).State.Outcome
		if o.Status != model.JobFailed || o.ExitStatus != model.ExitAbortedBefore || !o.Started.IsZero() {
			t.Fatalf("job held for a failed dependency: %+v", o)
		}
	}
	if got := lines(t, marker); len(got) != 0 {
		t.Fatalf("cancelled jobs ran: %v", got)
	}
	// Held after a dependency that already failed: cancelled at once.
	dh, err := b.SubmitAfter(ctx, shJob(dir, 4, "echo 4 >> "+marker), []drms.Handle{a})
	if err != nil {
		t.Fatal(err)
	}
	if o := rec.wait(t, dh.ID, drms.Ended).State.Outcome; o.ExitStatus != model.ExitAbortedBefore {
		t.Fatalf("job after an ended failed dependency: %+v", o)
	}
}

// A pool runs at most its limit at once, in submission order, and starts
// the next held job as soon as one ends.
func TestHoldPool(t *testing.T) {
	state, b, rec, dir := holdFixture(t)
	log := filepath.Join(dir, "log")
	ctx := context.Background()
	gate := filepath.Join(dir, "gate")
	var hs []drms.Handle
	for i := int64(1); i <= 8; i++ {
		// Each runs until the gate exists, then 0.1 s more: none ends
		// before all are submitted.
		s := shJob(dir, i, fmt.Sprintf("echo +%d >> %s; while [ ! -e %s ]; do sleep 0.02; done; sleep 0.1; echo -%d >> %s", i, log, gate, i, log))
		s.Pool, s.PoolLimit, s.PoolNeed = "p", 2, 1
		h, err := b.Submit(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if held := strings.HasPrefix(h.ID, "key:"); held != (i > 2) {
			t.Fatalf("job %d: handle %q (held: %v)", i, h.ID, held)
		}
		hs = append(hs, h)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for i, h := range hs {
		if o := rec.wait(t, h.ID, drms.Ended).State.Outcome; o.ExitValue == nil || *o.ExitValue != 0 {
			t.Fatalf("job %d: %+v", i+1, o)
		}
	}
	running, most := 0, 0
	var starts []string
	for _, l := range lines(t, log) {
		if l[0] == '+' {
			running++
			starts = append(starts, l[1:])
		} else {
			running--
		}
		most = max(most, running)
	}
	if most != 2 || len(starts) != 8 {
		t.Fatalf("log %v: at most %d at once (want 2), %d started (want 8)", lines(t, log), most, len(starts))
	}
	// The held ones are started in submission order (their intents, in
	// the journal: two forks may then overtake each other).
	data, err := os.ReadFile(filepath.Join(state, "supervisor.journal"))
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, line := range strings.Split(string(data), "\n") {
		var r struct{ T, Key string }
		if json.Unmarshal([]byte(line), &r) == nil && r.T == "intent" {
			order = append(order, strings.TrimSuffix(r.Key, ".1"))
		}
	}
	if got := strings.Join(order, " "); got != "1 2 3 4 5 6 7 8" {
		t.Fatalf("jobs started in the order %q", got)
	}
}

// Killing a held job ends it without running it (the engine resolves it to
// aborted_before_running); the others of its pool still run.
func TestHoldKill(t *testing.T) {
	_, b, rec, dir := holdFixture(t)
	marker := filepath.Join(dir, "ran")
	ctx := context.Background()
	release := filepath.Join(dir, "release")
	mk := func(i int64, script string) drms.Handle {
		s := shJob(dir, i, script)
		s.Pool, s.PoolLimit = "p", 1
		h, err := b.Submit(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	a := mk(1, fmt.Sprintf("while [ ! -e %s ]; do sleep 0.05; done", release))
	killed := mk(2, "echo 2 >> "+marker)
	next := mk(3, "echo 3 >> "+marker)
	if err := b.Kill(ctx, killed); err != nil {
		t.Fatal(err)
	}
	o := rec.wait(t, killed.ID, drms.Ended).State.Outcome
	if r := drms.Resolve(true, o); r.ExitStatus != model.ExitAbortedBefore || !o.Started.IsZero() {
		t.Fatalf("killed held job: %+v (resolved %+v)", o, r)
	}
	os.WriteFile(release, nil, 0o600)
	rec.wait(t, a.ID, drms.Ended)
	if o := rec.wait(t, next.ID, drms.Ended).State.Outcome; o.ExitValue == nil || *o.ExitValue != 0 {
		t.Fatalf("job after the killed one: %+v", o)
	}
	if got := lines(t, marker); strings.Join(got, " ") != "3" {
		t.Fatalf("jobs that ran: %v, want only 3", got)
	}
}

// A held job of a supervisor that dies provably never started: the next
// supervisor reports it dropped, and the same attempt submitted again runs
// once.
func TestHoldDroppedWhenSupervisorDies(t *testing.T) {
	state := t.TempDir()
	t.Cleanup(func() { stopSupervisor(t, state) })
	var rec *recorder
	t.Cleanup(func() {
		if t.Failed() {
			data, _ := os.ReadFile(filepath.Join(state, "supervisor.log"))
			t.Logf("supervisor.log:\n%s", data)
			data, _ = os.ReadFile(filepath.Join(state, "supervisor.journal"))
			t.Logf("supervisor.journal:\n%s", data)
			rec.mu.Lock()
			for _, ev := range rec.evs {
				t.Logf("event %s: %v %+v", ev.ID, ev.State.Phase, ev.State.Outcome)
			}
			rec.mu.Unlock()
		}
	})
	b := newBackend(t, state)
	rec = record(t, b)
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	ctx := context.Background()
	first := shJob(dir, 1, "sleep 300")
	first.Pool, first.PoolLimit = "p", 1
	a, err := b.Submit(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first job: handle %s", a.ID)
	heldSpec := shJob(dir, 2, "echo 2 >> "+marker)
	heldSpec.Pool, heldSpec.PoolLimit = "p", 1
	h, err := b.Submit(ctx, heldSpec)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(b.SupervisorPID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if o := rec.wait(t, a.ID, drms.Ended).State.Outcome; o.ExitStatus != model.ExitUndetermined {
		t.Fatalf("running job of the dead supervisor: %+v", o)
	}
	rec.wait(t, h.ID, drms.Dropped)
	if _, found, never, err := b.Locate(ctx, heldSpec); err != nil || found || !never {
		t.Fatalf("locate of the dropped job: found %v, never submitted %v, %v", found, never, err)
	}
	h2, err := b.Submit(ctx, heldSpec)
	if err != nil {
		t.Fatal(err)
	}
	if o := rec.wait(t, h2.ID, drms.Ended).State.Outcome; o.ExitValue == nil || *o.ExitValue != 0 {
		t.Fatalf("the dropped job submitted again: %+v", o)
	}
	if got := lines(t, marker); strings.Join(got, " ") != "2" {
		t.Fatalf("runs of the dropped job: %v, want one", got)
	}
}

// A held job that runs past the start delay is told running, with its new
// handle (its pid), while it runs.
func TestHoldStartEvent(t *testing.T) {
	_, b, rec, dir := holdFixture(t)
	ctx := context.Background()
	gate := filepath.Join(dir, "gate")
	a, err := b.Submit(ctx, shJob(dir, 1, "sleep 0.2"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := b.SubmitAfter(ctx, shJob(dir, 2, fmt.Sprintf("while [ ! -e %s ]; do sleep 0.05; done", gate)), []drms.Handle{a})
	if err != nil {
		t.Fatal(err)
	}
	run := rec.wait(t, h.ID, drms.Running)
	if run.State.Handle == nil {
		t.Fatalf("held job started without its new handle: %+v", run)
	}
	if pid, err := strconv.Atoi(run.State.Handle.ID); err != nil || pid <= 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("held job told running with handle %q, want the pid of a running process", run.State.Handle.ID)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if o := rec.wait(t, h.ID, drms.Ended).State.Outcome; o.ExitValue == nil || *o.ExitValue != 0 {
		t.Fatalf("held job: %+v", o)
	}
}

// fifoAndGate makes a FIFO in dir and starts job 1, which runs until the
// file release exists: a held job submitted after it starts at its end.
func fifoAndGate(t *testing.T, b *supervisor.Backend, dir string) (fifo string, gate drms.Handle, release string) {
	t.Helper()
	fifo = filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	release = filepath.Join(dir, "release")
	gate, err := b.Submit(context.Background(), shJob(dir, 1, fmt.Sprintf("while [ ! -e %s ]; do sleep 0.05; done", release)))
	if err != nil {
		t.Fatal(err)
	}
	return fifo, gate, release
}

// A job killed while it is being started (its intent journalled, its files
// being opened, not forked yet) is killed once it has a pid: the kill is
// not lost. Its stdin is a FIFO with no writer, so its start waits there
// until the test opens the FIFO.
func TestKillWhileStarting(t *testing.T) {
	_, b, rec, dir := holdFixture(t)
	ctx := context.Background()
	fifo, a, release := fifoAndGate(t, b, dir)
	marker := filepath.Join(dir, "ran")
	sp := shJob(dir, 2, "echo started > "+marker+"; sleep 30; echo survived >> "+marker)
	sp.Stdin = fifo
	h, err := b.SubmitAfter(ctx, sp, []drms.Handle{a})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(release, nil, 0o600)
	rec.wait(t, a.ID, drms.Ended)
	// a's end started h: its start now waits for the FIFO's writer.
	if err := b.Kill(ctx, h); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	o := rec.wait(t, h.ID, drms.Ended).State.Outcome
	if o.Signal != "SIGTERM" && o.Signal != "SIGKILL" {
		t.Fatalf("job killed while starting: %+v (it ran on)", o)
	}
	if got := lines(t, marker); len(got) > 1 {
		t.Fatalf("the killed job ran on: %v", got)
	}
}

// The reaper starts a chain's next job itself when nothing else runs, but
// not one with a file that may wait when opened (a FIFO as its stdin, with
// no writer yet, or as a log the engine does not create lazily, with no
// reader yet): the ends of other jobs must still be reaped and told
// meanwhile.
func TestHeldFIFOLeavesReaperFree(t *testing.T) {
	for _, tc := range []struct {
		name  string
		set   func(sp *drms.JobSpec, fifo string)
		other int // how the test opens the FIFO to let the start go on
	}{
		{"stdin", func(sp *drms.JobSpec, fifo string) { sp.Stdin = fifo }, os.O_WRONLY},
		{"stdout", func(sp *drms.JobSpec, fifo string) { sp.Stdout, sp.LazyStdout = fifo, false }, os.O_RDONLY},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, b, rec, dir := holdFixture(t)
			ctx := context.Background()
			fifo, a, release := fifoAndGate(t, b, dir)
			sp := shJob(dir, 2, "exit 0")
			sp.LazyStdout, sp.LazyStderr = true, true // files that cannot block...
			tc.set(&sp, fifo)                         // ...but this one
			h, err := b.SubmitAfter(ctx, sp, []drms.Handle{a})
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(release, nil, 0o600)
			rec.wait(t, a.ID, drms.Ended)
			// a was the only job: its end started h, whose start now
			// waits for the FIFO's other end.
			c, err := b.Submit(ctx, shJob(dir, 3, "exit 7"))
			if err != nil {
				t.Fatal(err)
			}
			if o := rec.wait(t, c.ID, drms.Ended).State.Outcome; o.ExitValue == nil || *o.ExitValue != 7 {
				t.Fatalf("c: %+v", o)
			}
			f, err := os.OpenFile(fifo, tc.other, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if o := rec.wait(t, h.ID, drms.Ended).State.Outcome; o.ExitValue == nil || *o.ExitValue != 0 {
				t.Fatalf("h: %+v", o)
			}
		})
	}
}
