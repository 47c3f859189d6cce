package slurm

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/backendtest"
)

// TestConformance runs the shared conformance suite against the real Slurm
// cluster (scripts/slurm-up.sh), with the default settings and with arrays
// and dependencies on (Submit of a single job stays a plain sbatch).
func TestConformance(t *testing.T) {
	requireSlurm(t)
	for _, c := range []struct {
		name     string
		settings map[string]string
	}{
		{"default", nil},
		{"arrays_dependencies", map[string]string{"arrays": "true", "dependencies": "true"}},
	} {
		t.Run(c.name, func(t *testing.T) { conformance(t, c.settings) })
	}
}

func conformance(t *testing.T, settings map[string]string) {
	state := t.TempDir()
	backendtest.Run(t, backendtest.Harness{
		New: func(t *testing.T) drms.Backend {
			b, err := New(drms.Config{StateDir: state, ExecPath: testExec(t), EngineTag: "conformance", Settings: settings})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		// Output files must be visible to the jobs: one node, so any local dir.
		Dir: func(t *testing.T) string { return filepath.Join(t.TempDir()) },
		Pending: func(s drms.JobSpec) drms.JobSpec {
			s.NativeSpec = append(append([]string(nil), s.NativeSpec...), "--hold")
			return s
		},
		ExternalCancel: func(t *testing.T, h drms.Handle) error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, "scancel", h.ID).CombinedOutput()
			if err != nil {
				t.Logf("scancel: %s", out)
			}
			return err
		},
		Timeout: 3 * time.Minute,
	})
}
