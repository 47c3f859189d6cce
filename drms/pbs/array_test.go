package pbs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/batch"
)

// Job arrays are off by default and tested here only: on recorded qstat
// outputs and with fake qsub/qstat (Slurm's Torque wrappers, the only PBS
// of CI, list no subjobs). The dispatcher itself is run for real.
func TestArrays(t *testing.T) {
	ctx := context.Background()
	newB := func(t *testing.T, dialect string) *Backend {
		b, err := New(drms.Config{StateDir: t.TempDir(), ExecPath: testExec(t), EngineTag: "fake", Settings: map[string]string{
			"dialect": dialect, "arrays": "true", "submit_timeout": "2s", "command_timeout": "2s", "lookup_delay": "10ms", "status_grace": "0s"}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	specs := func(t *testing.T, n int) []drms.JobSpec {
		dir := t.TempDir()
		var s []drms.JobSpec
		for i := 0; i < n; i++ {
			id := int64(10 + i)
			out := filepath.Join(dir, "out"+string(rune('0'+i)))
			s = append(s, drms.JobSpec{EngineTag: "fake", WorkflowID: 1, JobID: id, Attempt: 1, Argv: []string{"sh", "-c", "echo task " + string(rune('0'+i))},
				Env: []string{"PATH=" + os.Getenv("PATH")}, Dir: dir, Stdout: out, Stderr: out + ".err"})
		}
		return s
	}
	for _, c := range []struct {
		dialect, flag, index, listing, id string
	}{
		{"pbspro", "-J", "PBS_ARRAY_INDEX", "pbspro/array.json", "123[].pbs01"},
		{"torque", "-t", "PBS_ARRAYID", "torque/array.txt", "124[].torque01.example.org"},
	} {
		t.Run(c.dialect, func(t *testing.T) {
			args := filepath.Join(t.TempDir(), "args")
			fakePBS(t, map[string]string{
				"qsub":  `printf '%s\n' "$@" > ` + args + `; echo '` + c.id + `'`,
				"qstat": `case "$*" in *-t*) cat ` + filepath.Join(mustAbs(t, "testdata"), c.listing) + `;; *) echo "qstat called without -t: $*" >&2; exit 2;; esac`,
			})
			b := newB(t, c.dialect)
			ss := specs(t, 3)
			hs, err := b.SubmitArray(ctx, ss)
			if err != nil {
				t.Fatal(err)
			}
			seqn := strings.TrimSuffix(seq(c.id), "[]")
			for k, h := range hs {
				if want := taskID(c.id, string(rune('0'+k))); h.ID != want || !strings.HasPrefix(h.ID, seqn+"[") {
					t.Errorf("task %d: id %q, want %q", k, h.ID, want)
				}
			}
			got, _ := os.ReadFile(args)
			a := strings.Split(strings.TrimSpace(string(got)), "\n")
			if strings.Join(a[:2], " ") != "-N "+batch.ArrayName(ss[0]) || !strings.Contains(string(got), c.flag+"\n0-2\n") {
				t.Errorf("qsub args %q", a)
			}
			dispatcher := a[len(a)-1]
			// The dispatcher runs task 1 under the dialect's index variable.
			cmd := exec.Command("/bin/sh", dispatcher)
			cmd.Env = append(os.Environ(), c.index+"=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("dispatcher: %v %s", err, out)
			}
			if data, _ := os.ReadFile(ss[1].Stdout); string(data) != "task 1\n" {
				t.Errorf("task 1 wrote %q", data)
			}
			if data, _ := os.ReadFile(ss[0].Stdout); len(data) > 0 {
				t.Errorf("task 0 ran too: %q", data)
			}
			// A bad index runs nothing.
			cmd = exec.Command("/bin/sh", dispatcher)
			cmd.Env = append(os.Environ(), c.index+"=1;x")
			if err := cmd.Run(); err == nil {
				t.Error("dispatcher with a bad index: no error")
			}
			// Status: one qstat -t for all tasks. Task 1 is listed running
			// and exec-job started it; task 0 finished in the listing
			// without a status file; task 2 waits.
			st, err := b.Status(ctx, hs)
			if err != nil {
				t.Fatal(err)
			}
			if s := st[hs[1].ID]; s.Phase != drms.Running || s.Started.IsZero() {
				t.Errorf("task 1 (listed running, exec-job started): %+v", s)
			}
			if st[hs[0].ID].Phase != drms.Ended {
				t.Errorf("task 0: %+v", st[hs[0].ID])
			}
			if p := st[hs[2].ID].Phase; p != drms.Queued && p != drms.Held {
				t.Errorf("task 2: %+v", st[hs[2].ID])
			}
			// Locate finds a task from the array's id kept in the spool.
			h, found, never, err := b.Locate(ctx, ss[2])
			if err != nil || !found || never || h.ID != hs[2].ID {
				t.Errorf("Locate task 2: %+v %v %v %v", h, found, never, err)
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		fakePBS(t, map[string]string{"qsub": `echo "qsub: Array job exceeds server or queue size limit" >&2; exit 1`})
		b := newB(t, "pbspro")
		ss := specs(t, 3)
		_, err := b.SubmitArray(ctx, ss)
		var se *drms.StartError
		if !errors.As(err, &se) || !strings.Contains(se.Reason, "size limit") {
			t.Fatalf("SubmitArray: %v, want a StartError", err)
		}
		for _, s := range ss {
			if _, err := os.Stat(b.spool.Paths(s).Script); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused array left %s", b.spool.Paths(s).Script)
			}
		}
	})
	t.Run("off_by_default", func(t *testing.T) {
		b, err := New(drms.Config{StateDir: t.TempDir(), ExecPath: "/bin/true", EngineTag: "fake"})
		if err != nil {
			t.Fatal(err)
		}
		if b.Capabilities().Arrays {
			t.Error("arrays on by default")
		}
		if _, err := b.SubmitArray(ctx, specs(t, 2)); err == nil {
			t.Error("SubmitArray with arrays off: no error")
		}
	})
}
