package cli_test

import (
	"encoding/json"
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

// linkWF is the documented example of a parameter link with no `after:`:
// the link alone must order the jobs.
const linkWF = `name: link
jobs:
  produce:
    shell: 'sleep 1; echo "{\"n\": 42}" > "$SOMAWF_OUTPUT_PARAMS"'
    has_outputs: true
  consume:
    command: [echo, 'n=%(n)s']
    params: {n: 0}
    links: {n: produce.n}
`

// A parameter link implies a dependency on its source job, in the native
// format as in soma-workflow's: the run waits for the value, validate
// counts the dependency, dot draws the edge, and the soma export holds it.
func TestLinkImpliesDependency(t *testing.T) {
	wf := write(t, "link.yaml", linkWF)
	state := t.TempDir()
	r := run(t, nil, "--state-dir", state, "run", wf)
	if r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	if r = run(t, nil, "--state-dir", state, "logs", "1", "consume"); !strings.Contains(r.stdout, "n=42") {
		t.Fatalf("consume did not receive produce's value: %+v", r)
	}
	if r = run(t, nil, "validate", wf); r.code != 0 || !strings.Contains(r.stdout, "2 jobs, 1 dependencies") {
		t.Fatalf("validate: want 1 dependency counted, got %+v", r)
	}
	if r = run(t, nil, "dot", wf); r.code != 0 || !strings.Contains(r.stdout, "j0 -> j1") {
		t.Fatalf("dot: want the edge produce -> consume, got %+v", r)
	}
	r = run(t, nil, "convert", "--to", "soma", wf)
	var doc struct {
		Dependencies []any `json:"dependencies"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 0 {
		t.Fatalf("convert: %v %+v", err, r)
	}
	if len(doc.Dependencies) != 1 {
		t.Fatalf("soma export: want the one implied dependency, got %v", doc.Dependencies)
	}
	// converted back, the dependency is not doubled
	back := write(t, "link.json", r.stdout)
	if r = run(t, nil, "validate", back); r.code != 0 || !strings.Contains(r.stdout, "2 jobs, 1 dependencies") {
		t.Fatalf("validate of the soma export: want 1 dependency, got %+v", r)
	}
}
