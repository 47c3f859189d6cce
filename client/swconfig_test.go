package client

import (
	"errors"
	"os"
	"path/filepath"

	"strings"
	"testing"
)

func swTestdata(name string) string { return filepath.Join("testdata", "swconfig", name) }

// TestSWConfigResources maps each resource of a site's soma-workflow
// configuration (testdata/swconfig/site.cfg, written from soma-workflow's
// documented keys) onto somaflow's configuration.
func TestSWConfigResources(t *testing.T) {
	c, err := ReadSWConfig(swTestdata("site.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Names(), ","); got != "cluster_slurm,pbs_cluster,laptop" {
		t.Fatalf("resources %s", got)
	}
	type want struct {
		backend  string
		maxJobs  int
		settings map[string]string
		ignored  []string // keys, sorted
	}
	for name, w := range map[string]want{
		"cluster_slurm": {"slurm", 15, map[string]string{"sbatch_options": "--account=neuro --qos=normal"},
			[]string{"CLUSTER_ADDRESS", "DATABASE_FILE", "ENGINE_LOG_DIR", "ENGINE_LOG_FORMAT", "ENGINE_LOG_LEVEL", "LOGIN",
				"MAX_JOB_IN_QUEUE", "QUEUES", "SERVER_NAME", "SUBMITTING_MACHINES", "TRANSFERED_FILES_DIR"}},
		"pbs_cluster": {"pbs", 8, map[string]string{"dialect": "pbspro", "qsub_options": "-l walltime=10:00:00"}, nil},
		"laptop":      {"local", 4, nil, []string{"LIGHT_MODE", "SOMA_WORKFLOW_DIR"}},
	} {
		r, ok := c.Resource(name)
		if !ok {
			t.Fatalf("no resource %s", name)
		}
		cfg, ignored, err := r.Apply(c.Path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.Backend != w.backend || cfg.MaxJobs != w.maxJobs || len(cfg.Settings) != len(w.settings) {
			t.Errorf("%s: backend %q max_jobs %d settings %v; want %q %d %v", name, cfg.Backend, cfg.MaxJobs, cfg.Settings, w.backend, w.maxJobs, w.settings)
		}
		for k, v := range w.settings {
			if cfg.Settings[k] != v {
				t.Errorf("%s: settings.%s = %q, want %q", name, k, cfg.Settings[k], v)
			}
		}
		var keys []string
		for _, i := range ignored {
			keys = append(keys, i.Key)
			if i.Why == "" {
				t.Errorf("%s: %s ignored without a reason", name, i.Key)
			}
		}
		if strings.Join(keys, ",") != strings.Join(w.ignored, ",") {
			t.Errorf("%s: ignored %v, want %v", name, keys, w.ignored)
		}
		if name == "cluster_slurm" {
			if src := cfg.Sources["max_jobs"]; !strings.Contains(src, "[cluster_slurm] MAX_JOB_IN_QUEUE (line 18)") {
				t.Errorf("max_jobs source %q", src)
			}
			for _, i := range ignored {
				if i.Key == "MAX_JOB_IN_QUEUE" && (i.Value != "run32{5}" || !strings.Contains(i.Why, "per queue")) {
					t.Errorf("per-queue limit: %+v", i)
				}
			}
			// PATH_TRANSLATION_FILES (continued over two lines) gives translation_files.
			if tf := strings.Join(cfg.TranslationFiles, " "); !strings.Contains(tf, "brainvisa{") || len(cfg.TranslationFiles) < 2 {
				t.Errorf("translation files %q: continuation line lost", tf)
			}
		}
	}
}

func TestSWConfigErrors(t *testing.T) {
	for file, msg := range map[string]string{
		"bad_line.cfg":      "line 3",
		"no_section.cfg":    "before any [resource] section",
		"twice.cfg":         "given twice",
		"bad_limit.cfg":     "{lots}",
		"bad_scheduler.cfg": "unknown scheduler \"lsf\"",
	} {
		c, err := ReadSWConfig(swTestdata(file))
		if err == nil {
			_, _, err = c.Resources[0].Apply(c.Path)
		}
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), file) {
			t.Errorf("%s: %v, want ErrInvalid naming the file and %q", file, err, msg)
		}
	}
}

// TestLoadConfigReadsSomaWorkflow: LoadConfig takes soma-workflow's
// configuration as its lowest layer, somaflow's files override it, and the
// resource is chosen by SOMAFLOW_SWF_RESOURCE or is the only one.
func TestLoadConfigReadsSomaWorkflow(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("SOMAFLOW_CONFIG", "")
	t.Setenv("SOMA_WORKFLOW_CONFIG", "")
	old := ConfigPath
	ConfigPath = filepath.Join(home, "none.yaml")
	defer func() { ConfigPath = old }()
	site, _ := filepath.Abs(swTestdata("site.cfg"))
	t.Setenv("SOMA_WORKFLOW_CONFIG", site)
	t.Setenv(SWResourceEnv, "pbs_cluster")
	cfg, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Backend != "pbs" || cfg.MaxJobs != 8 || cfg.SW == nil || cfg.SW.Resource != "pbs_cluster" {
		t.Fatalf("config %+v sw %+v", cfg, cfg.SW)
	}
	// somaflow's own file wins over soma-workflow's.
	os.MkdirAll(filepath.Join(home, ".config", "somaflow"), 0o700)
	os.WriteFile(filepath.Join(home, ".config", "somaflow", "config.yaml"), []byte("max_jobs: 3\n"), 0o600)
	if cfg, err = LoadConfig(); err != nil || cfg.MaxJobs != 3 || cfg.Backend != "pbs" || !strings.HasSuffix(cfg.Sources["max_jobs"], "config.yaml") {
		t.Fatalf("layered: %+v %v", cfg, err)
	}
	t.Setenv(SWResourceEnv, "")
	if cfg, err = LoadConfig(); err != nil || cfg.SW.Resource != "" || !strings.Contains(cfg.SW.Note, "several") {
		t.Fatalf("no resource chosen: %+v %v", cfg.SW, err)
	}
	t.Setenv(SWResourceEnv, "nosuch")
	if _, err = LoadConfig(); err == nil || !strings.Contains(err.Error(), "no resource [nosuch]") {
		t.Fatalf("unknown resource: %v", err)
	}
	t.Setenv(SWResourceEnv, "none")
	if cfg, err = LoadConfig(); err != nil || cfg.SW != nil {
		t.Fatalf("none: %+v %v", cfg.SW, err)
	}
	one, _ := filepath.Abs(swTestdata("one.cfg"))
	t.Setenv("SOMA_WORKFLOW_CONFIG", one)
	t.Setenv(SWResourceEnv, "")
	if cfg, err = LoadConfig(); err != nil || cfg.Backend != "drmaa" || cfg.Settings["native"] != "-q long" {
		t.Fatalf("the only resource: %+v %v", cfg, err)
	}
}
