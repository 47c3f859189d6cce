package client_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/somaflow/somaflow/client"
)

// The builder orders jobs by name, groups them and links parameters;
// WaitSucceeded names the jobs that failed (issue 25.12).
func TestBuilder(t *testing.T) {
	b := client.NewWorkflow("built")
	a := b.Shell("a", "exit 0")
	c := b.Shell("c", "exit 0")
	g := b.Group("first", a, c)
	bad := b.Shell("bad", "exit 3").After(g)
	b.Shell("never", "true").After(bad)
	w, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Jobs) != 4 || len(w.Groups) != 1 || len(w.Dependencies) != 2 || len(w.Root) != 3 {
		t.Fatalf("built: %d jobs, %d groups, %d dependencies, root %v", len(w.Jobs), len(w.Groups), len(w.Dependencies), w.Root)
	}
	cl, err := client.Open(context.Background(), client.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	id, err := cl.SubmitWorkflow(context.Background(), w, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = cl.WaitSucceeded(context.Background(), id, time.Minute)
	var jf *client.JobsFailedError
	if !errors.Is(err, client.ErrJobsFailed) || !errors.As(err, &jf) || len(jf.Jobs) != 2 || !strings.Contains(err.Error(), "bad (done)") {
		t.Fatalf("WaitSucceeded: %v", err)
	}
	// Bad input is named.
	b2 := client.NewWorkflow("")
	x := b2.Job("x", "true")
	b2.Job("x", "true")
	b2.Job("y").After(x)
	if _, err := b2.Build(); !errors.Is(err, client.ErrInvalid) || !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("duplicate name: %v", err)
	}
}

// A Go program reads the CLI's configuration files (issue 25.12).
func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/site.yaml"
	if err := os.WriteFile(path, []byte("backend: slurm\nstate_dir: /scratch/me/sf\nsettings: {sbatch_options: --account=x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOMAFLOW_CONFIG", path)
	t.Setenv("XDG_CONFIG_HOME", dir)
	cfg, err := client.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Options()
	if o.Backend != "slurm" || o.StateDir != "/scratch/me/sf" || o.Settings["sbatch_options"] != "--account=x" {
		t.Fatalf("options from the config: %+v", o)
	}
	os.WriteFile(path, []byte("backnd: slurm\n"), 0o600)
	if _, err := client.LoadConfig(); !errors.Is(err, client.ErrInvalid) || !strings.Contains(err.Error(), `did you mean "backend"`) {
		t.Fatalf("a misspelt key: %v", err)
	}
}
