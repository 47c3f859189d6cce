package batch

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/execjob"
)

// spoolJobs makes n attempts of workflow 1 in a spool dir, as a batch
// backend leaves them while they run: script, env file, DRMS output and
// exec-job's started file (with started, else none yet).
func spoolJobs(t testing.TB, n int, started bool) []PacedJob {
	dir := filepath.Join(t.TempDir(), "1")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	jobs := make([]PacedJob, n)
	for i := range jobs {
		base := filepath.Join(dir, fmt.Sprintf("sf-t-1-%d-1", i+1))
		jobs[i] = PacedJob{ID: fmt.Sprint(1000 + i), Status: base + ".status", Started: base + ".status.started"}
		for _, f := range []string{".sh", ".env", ".drms.out"} {
			if err := os.WriteFile(base+f, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if started {
			writeJSONFile(t, jobs[i].Started, execjob.Started{JobID: jobs[i].ID, Time: time.Now().Add(-time.Minute)})
		}
	}
	return jobs
}

func writeJSONFile(t testing.TB, path string, v any) {
	b, _ := json.Marshal(v)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func running(int) Listed { return Listed{State: drms.State{Phase: drms.Running}, Word: "R"} }

// TestFromFilesScan: what one directory read finds: a started file that
// appears makes a queued job running, a status file that appears ends its
// job at the next call; a job past its walltime is due (the listing older
// than busy then does not answer), and an unreadable dir falls back to
// opening each file.
func TestFromFilesScan(t *testing.T) {
	for _, openEach := range []bool{false, true} {
		p := &Pace{Live: true, OpenEach: openEach}
		jobs := spoolJobs(t, 3, false)
		queued := func(int) Listed { return Listed{State: drms.State{Phase: drms.Queued}} }
		at := time.Now()
		out, ok := p.FromFiles(jobs, at, time.Minute, time.Hour, queued)
		if !ok || out[jobs[0].ID].Phase != drms.Queued {
			t.Fatalf("openEach %v: queued: %v %+v", openEach, ok, out)
		}
		writeJSONFile(t, jobs[0].Started, execjob.Started{Time: time.Now()})
		out, ok = p.FromFiles(jobs, at, time.Minute, time.Hour, queued)
		if !ok || out[jobs[0].ID].Phase != drms.Running || out[jobs[1].ID].Phase != drms.Queued {
			t.Fatalf("openEach %v: started file: %v %+v", openEach, ok, out)
		}
		// Running at the DRMS, no started file: starting (queued), due.
		out, ok = p.FromFiles(jobs, at, time.Minute, time.Hour, running)
		if !ok || out[jobs[0].ID].Phase != drms.Running || out[jobs[1].ID].Reason != "starting (R)" {
			t.Fatalf("openEach %v: running: %v %+v", openEach, ok, out)
		}
		if _, ok := p.FromFiles(jobs, time.Now().Add(-2*time.Minute), time.Minute, time.Hour, running); ok {
			t.Fatalf("openEach %v: a job due and a listing older than busy: answered", openEach)
		}
		exit := 7
		writeJSONFile(t, jobs[0].Status, execjob.Status{State: execjob.StateExited, Exit: &exit, Started: time.Now(), Ended: time.Now()})
		out, ok = p.FromFiles(jobs[:1], at, time.Minute, time.Hour, running)
		if o := out[jobs[0].ID].Outcome; !ok || out[jobs[0].ID].Phase != drms.Ended || o.ExitValue == nil || *o.ExitValue != 7 {
			t.Fatalf("openEach %v: status file: %v %+v", openEach, ok, out)
		}
		// A job that started a minute ago: with a walltime of 1 s, due.
		p = &Pace{OpenEach: openEach}
		j := spoolJobs(t, 1, true)[0]
		j.Limit = 1
		if _, ok := p.FromFiles([]PacedJob{j}, time.Now().Add(-2*time.Minute), time.Minute, time.Hour, running); ok {
			t.Fatalf("openEach %v: past its walltime: answered from an old listing", openEach)
		}
		j.Limit = 0
		if _, ok := p.FromFiles([]PacedJob{j}, time.Now().Add(-2*time.Minute), time.Minute, time.Hour, running); !ok {
			t.Fatalf("openEach %v: nothing due: not answered within idle", openEach)
		}
	}
	// A dir that cannot be listed (search but no read permission): files
	// are opened.
	if os.Geteuid() != 0 {
		jobs := spoolJobs(t, 1, true)
		dir := filepath.Dir(jobs[0].Status)
		os.Chmod(dir, 0o300)
		defer os.Chmod(dir, 0o700)
		out, ok := (&Pace{}).FromFiles(jobs, time.Now(), time.Minute, time.Hour, running)
		if !ok || out[jobs[0].ID].Started.IsZero() {
			t.Fatalf("unreadable dir: %v %+v", ok, out)
		}
	}
}

// BenchmarkFromFiles is the cost of one Status answered from files for
// 1,000 running jobs (each with its started file, read once, and three
// other spool files): opening each job's status file (open-each, the way
// before the directory scan) against one directory read (scan).
func BenchmarkFromFiles(b *testing.B) {
	jobs := spoolJobs(b, 1000, true)
	for _, c := range []struct {
		name     string
		openEach bool
	}{{"open-each", true}, {"scan", false}} {
		b.Run(c.name, func(b *testing.B) {
			p := &Pace{OpenEach: c.openEach}
			at := time.Now()
			if _, ok := p.FromFiles(jobs, at, time.Minute, time.Hour, running); !ok {
				b.Fatal("not answered from files")
			}
			// CPU time of this thread (user and system, the syscalls'
			// included): on a shared machine, ns/op is mostly waiting.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ResetTimer()
			cpu0 := threadCPU()
			for i := 0; i < b.N; i++ {
				out, ok := p.FromFiles(jobs, at, time.Minute, time.Hour, running)
				if !ok || len(out) != len(jobs) {
					b.Fatal("not answered from files")
				}
			}
			b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// threadCPU is the CPU time of the calling thread.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

func TestHandles(t *testing.T) {
	var c Handles[string]
	n := 0
	dec := func(h drms.Handle) (string, error) {
		n++
		if string(h.State) == "bad" {
			return "", fmt.Errorf("bad")
		}
		return string(h.State), nil
	}
	h := drms.Handle{Version: 1, ID: "1", State: []byte("a")}
	for i := 0; i < 3; i++ {
		if v, err := c.Decode(h, dec); v != "a" || err != nil {
			t.Fatal(v, err)
		}
	}
	h.State = []byte("b") // another state under the same id: decoded again
	if v, _ := c.Decode(h, dec); v != "b" || n != 2 {
		t.Fatalf("changed state: %q after %d decodes", v, n)
	}
	c.Forget("1")
	if c.Decode(h, dec); n != 3 {
		t.Fatalf("after Forget: %d decodes", n)
	}
	h.State = []byte("bad")
	for i := 0; i < 2; i++ {
		if _, err := c.Decode(h, dec); err == nil {
			t.Fatal("no error")
		}
	}
	if n != 5 {
		t.Fatalf("a handle that does not decode: %d decodes, want it decoded each time", n)
	}
}
