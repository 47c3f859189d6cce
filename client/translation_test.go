package client

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/somaflow/somaflow/model"
)

// TestTranslations reads translation files in soma-workflow's format and
// translates shared resource paths, naming namespace and uuid when it cannot.
func TestTranslations(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SF_TR_BASE", "/data/base")
	f1 := filepath.Join(dir, "a.sjtr")
	os.WriteFile(f1, []byte("u1 /srv/one\n  u2\t$SF_TR_BASE/two  \nlonely\n\nu3 /p with spaces/x\n"), 0o600)
	f2 := filepath.Join(dir, "b.sjtr")
	os.WriteFile(f2, []byte("u1 /srv/override\nv1 $SF_TR_UNSET/v\n"), 0o600)
	tr, err := LoadTranslations([]string{"ns{" + f1 + "}", "ns{" + f2 + "}", "other{" + f2 + "}"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ns, uuid, rel, want, err string
	}{
		{"ns", "u1", "a/b.txt", "/srv/override/a/b.txt", ""},
		{"ns", "u2", "", "/data/base/two", ""},
		{"ns", "u3", "y", "/p with spaces/x/y", ""},
		{"other", "v1", "f", "${SF_TR_UNSET}/v/f", ""},
		{"ns", "lonely", "x", "", `uuid "lonely" is not in the translation files of namespace "ns"`},
		{"nope", "u1", "x", "", `namespace "nope" has no translation file on this resource (it has: ns, other)`},
	} {
		got, err := tr.Translate(&model.SharedResourcePath{Namespace: c.ns, UUID: c.uuid, RelativePath: c.rel})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s/%s: %v, want %q", c.ns, c.uuid, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s/%s: %q %v, want %q", c.ns, c.uuid, got, err, c.want)
		}
	}
	var none *Translations
	if _, err := none.Translate(&model.SharedResourcePath{Namespace: "ns", UUID: "u"}); err == nil || !strings.Contains(err.Error(), `namespace "ns", uuid "u"`) {
		t.Errorf("no translations: %v", err)
	}
	for _, bad := range []string{"noBraces", "{/x}", "ns{/x", "ns{}", "ns{/a}{/b}"} {
		if _, err := LoadTranslations([]string{bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := LoadTranslations([]string{"ns{" + filepath.Join(dir, "missing") + "}"}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
}

func TestTranslationFilesYAML(t *testing.T) {
	for text, want := range map[string]string{
		"translation_files: a{/x} b{/y}\n":                 "a{/x}|b{/y}",
		"translation_files:\n  - a{/x}\n  - b{/y} c{/z}\n": "a{/x}|b{/y}|c{/z}",
	} {
		var c Config
		if err := yaml.Unmarshal([]byte(text), &c); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(c.TranslationFiles, "|"); got != want {
			t.Errorf("%q: %q, want %q", text, got, want)
		}
	}
	var c Config
	if err := yaml.Unmarshal([]byte("translation_files: {a: b}\n"), &c); err == nil {
		t.Errorf("a map is accepted")
	}
}
