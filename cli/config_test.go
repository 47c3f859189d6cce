package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSiteConfig(t *testing.T) {
	cfg := write(t, "site.yaml", "queue: siteq\nmax_jobs: 1\n")
	env := []string{"SOMAFLOW_CONFIG=" + cfg, "XDG_CONFIG_HOME=" + t.TempDir()}
	r := run(t, env, "run", "--json", write(t, "ok.yaml", okWF))
	var doc struct {
		Queue *string `json:"queue"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 0 || doc.Queue == nil || *doc.Queue != "siteq" {
		t.Fatalf("queue from the site config: %+v", r)
	}
	// A flag wins over the configuration.
	r = run(t, env, "run", "--json", "--queue", "flagq", write(t, "ok.yaml", okWF))
	if !strings.Contains(r.stdout, `"queue":"flagq"`) {
		t.Fatalf("flag over config: %s", r.stdout)
	}
	if v := run(t, env, "version"); !strings.Contains(v.stdout, cfg) {
		t.Fatalf("version does not list the configuration file: %s", v.stdout)
	}
	for name, text := range map[string]string{
		"unknown key":     "bogus: 1\n",
		"bad backend":     "backend: nosuch\n",
		"negative limit":  "max_jobs: -3\n",
		"not yaml at all": "{[",
	} {
		bad := write(t, "bad.yaml", text)
		env := []string{"SOMAFLOW_CONFIG=" + bad, "XDG_CONFIG_HOME=" + t.TempDir()}
		if r := run(t, env, "run", write(t, "ok.yaml", okWF)); r.code != 2 || r.stderr == "" {
			t.Errorf("%s: %+v", name, r)
		}
	}
	if r := run(t, []string{"SOMAFLOW_CONFIG=/nonexistent/somaflow.yaml"}, "version"); r.code != 2 {
		t.Fatalf("missing $SOMAFLOW_CONFIG: %+v", r)
	}
}

// Mistakes in a configuration file and in duration flags are explained in
// words (exit 2), never in the decoder's or parser's Go terms.
func TestBadValuesInWords(t *testing.T) {
	cfg := write(t, "site.yaml", "maxjobs: 3\nmax_jobs: many\n")
	env := []string{"SOMAFLOW_CONFIG=" + cfg, "XDG_CONFIG_HOME=" + t.TempDir()}
	r := run(t, env, "list")
	if r.code != 2 || !strings.Contains(r.stderr, `unknown key "maxjobs" (did you mean "max_jobs"?)`) ||
		!strings.Contains(r.stderr, `"many" must be a whole number`) || strings.Contains(r.stderr, "cli.SiteConfig") {
		t.Fatalf("config with a typo and a bad value: %+v", r)
	}
	state := t.TempDir()
	env = []string{"SOMAFLOW_STATE_DIR=" + state}
	for _, args := range [][]string{{"wait", "--timeout", "soon", "1"}, {"submit", "--expiration", "+2x", write(t, "ok.yaml", okWF)}, {"engine", "--idle", "later"}} {
		r := run(t, env, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "is not a duration") || strings.Contains(r.stderr, "time:") {
			t.Errorf("%v: want exit 2 explaining durations, got %+v", args, r)
		}
	}
	// Seconds and days are durations.
	if r := run(t, env, "submit", "--expiration", "+2d", write(t, "ok.yaml", okWF)); r.code != 0 {
		t.Fatalf("submit --expiration +2d: %+v", r)
	}
	if r := run(t, env, "wait", "--timeout", "30", "1"); r.code != 0 {
		t.Fatalf("wait --timeout 30: %+v", r)
	}
	run(t, env, "engine", "stop")
	stopSupervisor(state)
}

// config show tells each setting's value and where it comes from (issue 21).
func TestConfigShow(t *testing.T) {
	cfg := write(t, "site.yaml", "queue: siteq\nbackend: slurm\nsettings: {sbatch_options: --account=x}\n")
	env := []string{"SOMAFLOW_CONFIG=" + cfg, "XDG_CONFIG_HOME=" + t.TempDir(), "SOMAFLOW_STATE_DIR="}
	r := run(t, env, "--backend", "local", "config", "show", "--json")
	var doc struct {
		Values []struct{ Key, Value, Source string } `json:"values"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 0 {
		t.Fatalf("config show --json: %v %+v", err, r)
	}
	got := map[string]string{}
	for _, v := range doc.Values {
		got[v.Key] = v.Value + " @ " + v.Source
	}
	for k, want := range map[string]string{"backend": "local @ flag --backend", "queue": "siteq @ " + cfg,
		"settings.sbatch_options": "--account=x @ " + cfg, "spool_dir": "STATE_DIR/spool @ default"} {
		if got[k] != want {
			t.Errorf("%s: %q, want %q", k, got[k], want)
		}
	}
}

// TestConfigShowSomaWorkflow: a user's soma-workflow configuration is read
// as the README says (SOMA_WORKFLOW_CONFIG or ~/.soma-workflow.cfg, resource
// SOMAFLOW_SWF_RESOURCE): config show names where each value came from and
// which keys have no meaning here; a workflow then runs with its limit.
func TestConfigShowSomaWorkflow(t *testing.T) {
	home := t.TempDir()
	sw := filepath.Join(home, ".soma-workflow.cfg")
	os.WriteFile(sw, []byte("[laptop]\nSCHEDULER_TYPE = local_basic\nCPU_NB = 1\nDATABASE_FILE = /x/db\n\n[cluster]\nSCHEDULER_TYPE = slurm\n"), 0o600)
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "SOMAFLOW_CONFIG=", "SOMA_WORKFLOW_CONFIG=",
		"SOMAFLOW_SWF_RESOURCE=laptop", "SOMAFLOW_STATE_DIR=" + filepath.Join(home, "state"), "SOMAFLOW_BACKEND="}
	r := run(t, env, "config", "show")
	if r.code != 0 {
		t.Fatalf("config show: %+v", r)
	}
	for _, want := range []string{"[laptop] SCHEDULER_TYPE (line 2)", "[laptop] CPU_NB (line 3)", "resource [laptop]", "DATABASE_FILE", "own database"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("config show lacks %q:\n%s", want, r.stdout)
		}
	}
	// CPU_NB = 1: two jobs of one workflow never overlap.
	marks := t.TempDir()
	wf := write(t, "two.yaml", fmt.Sprintf("jobs:\n  a: {shell: \"echo start >> %[1]s/log; sleep 0.5; echo end >> %[1]s/log\"}\n  b: {shell: \"echo start >> %[1]s/log; sleep 0.5; echo end >> %[1]s/log\"}\n", marks))
	if r := run(t, env, "run", wf); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	if data, _ := os.ReadFile(filepath.Join(marks, "log")); string(data) != "start\nend\nstart\nend\n" {
		t.Errorf("jobs overlapped with CPU_NB = 1: %q", data)
	}
	// A malformed soma-workflow configuration is an error naming it.
	os.WriteFile(sw, []byte("[laptop]\nCPU_NB = many\n"), 0o600)
	if r := run(t, env, "config", "show"); r.code != 2 || !strings.Contains(r.stderr, sw) || !strings.Contains(r.stderr, "CPU_NB") {
		t.Errorf("malformed cfg: %+v", r)
	}
}
