package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sharedWF is soma-workflow's shared_paths reference workflow: cat reads
// data/in.txt of uuid my_uuid_1 and writes out.txt of uuid my_uuid_2, both
// in namespace MyApp.
func sharedWF(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../testdata/somawf/workflows/shared_paths.json")
	if err != nil {
		t.Fatal(err)
	}
	return write(t, "shared_paths.json", string(data))
}

// TestSharedPathsTranslated runs a workflow using SharedResourcePath
// through the binary: with a translation file (soma-workflow's format,
// given in somaflow's configuration or in soma-workflow's) it runs on the
// translated paths; without one, or when the namespace or uuid is missing,
// it is refused (exit 2) naming the namespace and the uuid, and nothing is
// stored.
func TestSharedPathsTranslated(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(in, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	content := "shared \x00bytes\nline 2\n"
	if err := os.WriteFile(filepath.Join(in, "data", "in.txt"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	both := write(t, "myapp.sjtr", "my_uuid_1  "+in+"\n\nmy_uuid_2\t"+out+"  \n")
	onlyFirst := write(t, "partial.sjtr", "my_uuid_1 "+in+"\n")
	swCfg := write(t, "soma-workflow.cfg", "[laptop]\nSCHEDULER_TYPE = local_basic\nPATH_TRANSLATION_FILES = MyApp{"+both+"}\n")

	type tc struct {
		name   string
		config string // somaflow configuration ("": none)
		swcfg  string // soma-workflow configuration ("": none)
		code   int
		want   []string // in stderr when refused
	}
	for _, c := range []tc{
		{name: "somaflow config", config: "translation_files: MyApp{" + both + "}\n", code: 0},
		{name: "somaflow config list", config: "translation_files:\n  - Other{" + onlyFirst + "}\n  - MyApp{" + both + "}\n", code: 0},
		{name: "soma-workflow config", swcfg: swCfg, code: 0},
		{name: "no translation", code: 2, want: []string{`namespace "MyApp"`, `uuid "my_uuid_1"`, `uuid "my_uuid_2"`, "cat_shared", "no translation files"}},
		{name: "unknown namespace", config: "translation_files: Other{" + both + "}\n", code: 2, want: []string{`namespace "MyApp" has no translation file`, `uuid "my_uuid_1"`}},
		{name: "unknown uuid", config: "translation_files: MyApp{" + onlyFirst + "}\n", code: 2, want: []string{`uuid "my_uuid_2" is not in the translation files of namespace "MyApp"`}},
		{name: "missing file", config: "translation_files: MyApp{/nonexistent/x.sjtr}\n", code: 2, want: []string{"/nonexistent/x.sjtr", `namespace "MyApp"`}},
		{name: "malformed entry", config: "translation_files: MyApp/x.sjtr\n", code: 2, want: []string{`"MyApp/x.sjtr" is not namespace{/path/to/file}`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			os.Remove(filepath.Join(out, "out.txt"))
			home := t.TempDir()
			state := t.TempDir()
			env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "SOMAFLOW_STATE_DIR=" + state,
				"SOMA_WORKFLOW_CONFIG=" + c.swcfg, "SOMAFLOW_SWF_RESOURCE="}
			if c.swcfg == "" {
				env = append(env, "SOMAFLOW_SWF_RESOURCE=none")
			}
			if c.config != "" {
				env = append(env, "SOMAFLOW_CONFIG="+write(t, "config.yaml", c.config))
			} else {
				env = append(env, "SOMAFLOW_CONFIG=")
			}
			r := runBin(t, env, "run", "--json", sharedWF(t))
			if r.code != c.code {
				t.Fatalf("exit %d, want %d: %+v", r.code, c.code, r)
			}
			if c.code == 0 {
				got, err := os.ReadFile(filepath.Join(out, "out.txt"))
				if err != nil || string(got) != content {
					t.Fatalf("translated output %q (%v), want %q", got, err, content)
				}
				var doc struct {
					Status string `json:"status"`
					Jobs   []struct {
						Status    string `json:"status"`
						ExitValue *int   `json:"exit_value"`
					} `json:"jobs"`
				}
				if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Jobs) != 1 || doc.Jobs[0].Status != "done" || doc.Jobs[0].ExitValue == nil || *doc.Jobs[0].ExitValue != 0 {
					t.Fatalf("status document: %v %s", err, r.stdout)
				}
				return
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q: %s", w, r.stderr)
				}
			}
			if _, err := os.Stat(filepath.Join(out, "out.txt")); err == nil {
				t.Errorf("a refused workflow ran")
			}
			if l := run(t, env, "list", "--json"); l.code != 0 || strings.Contains(l.stdout, "shared_paths") {
				t.Errorf("a refused workflow was stored: %+v", l)
			}
			if v := run(t, env, "validate", sharedWF(t)); v.code != 2 {
				t.Errorf("validate accepts what run refuses: %+v", v)
			}
		})
	}
}
