package pbs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/backendtest"
	"github.com/somaflow/somaflow/drms/execjob"
)

// The test binary is also `somaflow exec-job` for the jobs it submits.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "exec-job" {
		os.Exit(execjob.Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// requirePBS skips the test when no PBS commands answer here (Grid
// Engine's qsub does not count), unless SOMAFLOW_REQUIRE names pbs: then
// it fails. CI puts Slurm's Torque wrappers on PATH in front of a real
// one-node Slurm (scripts/ci-pbs.sh).
func requirePBS(t *testing.T) {
	t.Helper()
	why := ""
	if _, err := exec.LookPath("qsub"); err != nil {
		why = "qsub not found"
	} else if out, _ := exec.Command("qstat", "--version").CombinedOutput(); strings.Contains(string(out), "SGE") || strings.Contains(string(out), "Grid Engine") {
		why = "qstat on PATH is Grid Engine's (put PBS's or Slurm's Torque wrappers first)"
	} else if out, err := exec.Command("qstat").CombinedOutput(); err != nil && len(strings.TrimSpace(string(out))) > 0 {
		why = "qstat fails: " + strings.TrimSpace(string(out))
	}
	if why == "" {
		return
	}
	for _, s := range strings.Split(os.Getenv("SOMAFLOW_REQUIRE"), ",") {
		if strings.TrimSpace(s) == "pbs" {
			t.Fatalf("PBS required (SOMAFLOW_REQUIRE) but %s; scripts/ci-pbs.sh sets one up", why)
		}
	}
	t.Skipf("no PBS: %s (scripts/ci-pbs.sh sets one up; SOMAFLOW_REQUIRE=pbs makes this a failure)", why)
}

func testExec(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

var tagSerial atomic.Int64

// testTag is an engine tag unique to this test process.
func testTag(prefix string) string {
	return prefix + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "") + string(rune('a'+tagSerial.Add(1)%26))
}

// TestConformance runs the shared conformance suite against the PBS
// commands on PATH, with the default settings and with dependencies on.
func TestConformance(t *testing.T) {
	requirePBS(t)
	for _, c := range []struct {
		name     string
		settings map[string]string
	}{
		{"default", nil},
		{"dependencies", map[string]string{"dependencies": "true"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			state := t.TempDir()
			backendtest.Run(t, backendtest.Harness{
				New: func(t *testing.T) drms.Backend {
					b, err := New(drms.Config{StateDir: state, ExecPath: testExec(t), EngineTag: "conformance", Settings: c.settings})
					if err != nil {
						t.Fatal(err)
					}
					return b
				},
				Dir: func(t *testing.T) string { return filepath.Join(t.TempDir()) },
				Pending: func(s drms.JobSpec) drms.JobSpec {
					s.NativeSpec = append(append([]string(nil), s.NativeSpec...), "-h")
					return s
				},
				ExternalCancel: func(t *testing.T, h drms.Handle) error {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					out, err := exec.CommandContext(ctx, "qdel", h.ID).CombinedOutput()
					if err != nil {
						t.Logf("qdel: %s", out)
					}
					return err
				},
				Timeout: 3 * time.Minute,
			})
		})
	}
}
