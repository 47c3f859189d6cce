package cli_test

import (
	"encoding/json"
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
