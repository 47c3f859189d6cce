package supervisor_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/supervisor"
	"github.com/somaflow/somaflow/model"
)

const header = `{"journal":"somaflow-supervisor","version":1}` + "\n"

// Records of two jobs: 1.1 exited 4; 2.1 was running when its supervisor
// died (pid 999999999 never exists); then a record cut short by a crash.
const goodPart = header +
	`{"t":"intent","key":"1.1","started":1000}` + "\n" +
	`{"t":"start","key":"1.1","pid":4242,"tick":77}` + "\n" +
	`{"t":"intent","key":"2.1","started":2000}` + "\n" +
	`{"t":"start","key":"2.1","pid":999999999,"tick":88}` + "\n" +
	`{"t":"exit","key":"1.1","ended":3000000000,"ws":1024,"utime_us":1500,"stime_us":500,"maxrss_kib":900}` + "\n" +
	`{"t":"intent","key":"3.1","started":2000}` + "\n" +
	`{"t":"ack","key":"3.1"}` + "\n"

const partial = `{"t":"exit","key":"2.1","ended":40`

func TestReplayTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	if err := os.WriteFile(path, []byte(goodPart+partial), 0o600); err != nil {
		t.Fatal(err)
	}
	jobs, truncAt, err := supervisor.ReplayJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if truncAt != int64(len(goodPart)) {
		t.Fatalf("truncAt %d, want %d", truncAt, len(goodPart))
	}
	if len(jobs) != 2 || jobs["3.1"] != nil {
		t.Fatalf("jobs: %v", jobs)
	}
	j1 := jobs["1.1"]
	o := j1.Outcome()
	if j1.T != "exit" || j1.PID != 4242 || o == nil || o.ExitValue == nil || *o.ExitValue != 4 || *o.Usage.CPUS != 0.002 {
		t.Fatalf("1.1: %+v -> %+v", j1, o)
	}
	if j2 := jobs["2.1"]; j2.T != "start" || j2.PID != 999999999 || j2.Outcome() != nil {
		t.Fatalf("2.1: %+v", j2)
	}
	// A complete but garbled last line is cut off the same way.
	if err := os.WriteFile(path, []byte(goodPart+"{garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, truncAt, err := supervisor.ReplayJournal(path); err != nil || truncAt != int64(len(goodPart)) {
		t.Fatalf("garbled last line: truncAt %d err %v", truncAt, err)
	}
}

func TestReplayErrors(t *testing.T) {
	for name, content := range map[string]string{
		"middle":  header + "{garbage\n" + `{"t":"ack","key":"1.1"}` + "\n",
		"header":  `{"journal":"something else","version":1}` + "\n",
		"version": `{"journal":"somaflow-supervisor","version":99}` + "\n",
	} {
		path := filepath.Join(t.TempDir(), "j")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := supervisor.ReplayJournal(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v", name, err)
		}
	}
	if jobs, truncAt, err := supervisor.ReplayJournal(filepath.Join(t.TempDir(), "missing")); err != nil || len(jobs) != 0 || truncAt != -1 {
		t.Fatalf("missing journal: %v %d %v", jobs, truncAt, err)
	}
}

// A supervisor started on a journal with a partial last record: the job
// that exited keeps its real outcome, the one that was running when the
// previous supervisor died ends undetermined, and the journal is rewritten
// whole.
func TestSupervisorReplaysJournal(t *testing.T) {
	state := t.TempDir()
	t.Cleanup(func() { stopSupervisor(t, state) })
	path := filepath.Join(state, "supervisor.journal")
	if err := os.WriteFile(path, []byte(goodPart+partial), 0o600); err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, state)
	handle := func(key string) drms.Handle {
		return drms.Handle{Version: supervisor.HandleVersion, ID: "x" + key, State: []byte(`{"key":"` + key + `"}`)}
	}
	st, err := b.Recover(context.Background(), handle("1.1"))
	if err != nil || st.Phase != drms.Ended || st.Outcome.ExitStatus != model.ExitFinishedRegular || *st.Outcome.ExitValue != 4 {
		t.Fatalf("1.1: %+v %v", st, err)
	}
	st, err = b.Recover(context.Background(), handle("2.1"))
	if err != nil || st.Phase != drms.Ended || st.Outcome.ExitStatus != model.ExitUndetermined || !strings.Contains(st.Outcome.Reason, "supervisor died") {
		t.Fatalf("2.1: %+v %v", st.Outcome, err)
	}
	jobs, truncAt, err := supervisor.ReplayJournal(path)
	if err != nil || truncAt != -1 || len(jobs) != 2 || jobs["2.1"].T != "lost" {
		t.Fatalf("rewritten journal: %v %d %v", jobs, truncAt, err)
	}
}

// A journal the supervisor cannot read stops it with a clear error.
func TestSupervisorBadJournal(t *testing.T) {
	state := t.TempDir()
	if err := os.WriteFile(filepath.Join(state, "supervisor.journal"), []byte("not a journal\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := supervisor.New(config(state, "30s"))
	if err == nil || !strings.Contains(err.Error(), "not a somaflow supervisor journal") {
		t.Fatalf("New on a bad journal: %v", err)
	}
}
