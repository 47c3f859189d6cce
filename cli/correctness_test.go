package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run honours a state dir named anywhere (flag, SOMAFLOW_STATE_DIR, the
// config's state_dir); only with none named is its state private, and then
// nothing is left behind in $TMPDIR.
func TestRunHonoursNamedStateDir(t *testing.T) {
	wf := write(t, "ok.yaml", okWF)
	home := t.TempDir()
	base := []string{"HOME=" + home, "XDG_STATE_HOME=" + filepath.Join(home, "state"), "SOMAFLOW_CONFIG="}

	byEnv := t.TempDir()
	env := append(base, "SOMAFLOW_STATE_DIR="+byEnv)
	if r := run(t, env, "run", wf); r.code != 0 {
		t.Fatalf("run with SOMAFLOW_STATE_DIR: %+v", r)
	}
	if r := run(t, env, "status", "1"); r.code != 0 || !strings.Contains(r.stdout, "workflow_done") {
		t.Fatalf("status 1 in SOMAFLOW_STATE_DIR after run: want the workflow, got %+v", r)
	}

	byConfig := t.TempDir()
	cfg := write(t, "config.yaml", "state_dir: "+byConfig+"\n")
	env = append(base, "SOMAFLOW_CONFIG="+cfg)
	if r := run(t, env, "run", wf); r.code != 0 {
		t.Fatalf("run with the config's state_dir: %+v", r)
	}
	if r := run(t, nil, "--state-dir", byConfig, "status", "1"); r.code != 0 || !strings.Contains(r.stdout, "workflow_done") {
		t.Fatalf("status 1 in the config's state_dir after run: want the workflow, got %+v", r)
	}

	tmp := t.TempDir()
	env = append(base, "TMPDIR="+tmp)
	if r := run(t, env, "run", wf); r.code != 0 {
		t.Fatalf("run with no state dir named: %+v", r)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("run with no state dir named left %d entries in $TMPDIR (%s...)", len(left), left[0].Name())
	}
	if _, err := os.Stat(filepath.Join(home, "state", "somaflow", "somaflow.db")); err == nil {
		t.Fatal("run with no state dir named wrote to the default state dir's database")
	}
}
