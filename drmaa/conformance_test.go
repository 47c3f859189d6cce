//go:build drmaa

package drmaa

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/backendtest"
)

// TestConformance runs the shared conformance suite against the real Grid
// Engine cell (scripts/gridengine-up.sh). All backends of the harness share
// one state dir, so the second one plays the restarted engine; in one
// process they also share the DRMAA session.
func TestConformance(t *testing.T) {
	needGE(t)
	state := jobDir(t)
	backendtest.Run(t, backendtest.Harness{
		New: func(t *testing.T) drms.Backend {
			b, err := New(drms.Config{StateDir: state, ExecPath: execBin, EngineTag: "conformance"})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		Dir: jobDir,
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
}
