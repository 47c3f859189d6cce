package client

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/somaflow/somaflow/model"
)

// TranslationFiles are a resource's shared-path translation files, in
// soma-workflow's PATH_TRANSLATION_FILES form: entries `namespace{file}`,
// several files per namespace allowed. In a configuration file it is
// either one string of entries separated by spaces (as soma-workflow
// writes it) or a list of entries.
type TranslationFiles []string

// UnmarshalYAML reads a string of entries or a list of them.
func (t *TranslationFiles) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*t = strings.Fields(n.Value)
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		var out []string
		for _, s := range l {
			out = append(out, strings.Fields(s)...)
		}
		*t = out
		return nil
	}
	return fmt.Errorf("line %d: translation_files must be text (namespace{file} ...) or a list of namespace{file}", n.Line)
}

// maxTranslationFile bounds the size of one translation file read.
const maxTranslationFile = 16 << 20

// Translations map namespace -> uuid -> engine-side path, read from
// translation files (soma-workflow's Configuration.get_path_translation).
type Translations struct {
	// Files are the entries read (namespace{file}).
	Files []string
	ns    map[string]map[string]string
}

// ParseTranslationEntry splits a `namespace{file}` entry.
func ParseTranslationEntry(e string) (namespace, file string, err error) {
	ns, rest, ok := strings.Cut(e, "{")
	if !ok || ns == "" || !strings.HasSuffix(rest, "}") || len(rest) < 2 || strings.ContainsAny(rest[:len(rest)-1], "{}") {
		return "", "", invalidf("translation file entry %q is not namespace{/path/to/file}", e)
	}
	return ns, expandVars(rest[:len(rest)-1]), nil
}

// expandVars expands $VAR and ${VAR} as Python's os.path.expandvars does:
// an unset variable is left as written.
func expandVars(s string) string {
	return os.Expand(s, func(name string) string {
		if v, ok := os.LookupEnv(name); ok {
			return v
		}
		return "${" + name + "}"
	})
}

// LoadTranslations reads translation files: each line `uuid path` (the
// uuid, blanks, then the path up to the end of the line; environment
// variables in the path are expanded). A malformed entry or a file that
// cannot be read is an error naming it (ErrInvalid) — soma-workflow only
// printed a warning and went on, which left the workflow to fail later.
func LoadTranslations(entries []string) (*Translations, error) {
	t := &Translations{Files: entries, ns: map[string]map[string]string{}}
	for _, e := range entries {
		ns, file, err := ParseTranslationEntry(e)
		if err != nil {
			return nil, err
		}
		m, err := readTranslationFile(file)
		if err != nil {
			return nil, invalidf("translation file %s (namespace %q): %v", file, ns, err)
		}
		if t.ns[ns] == nil {
			t.ns[ns] = map[string]string{}
		}
		for k, v := range m {
			t.ns[ns][k] = v
		}
	}
	return t, nil
}

func readTranslationFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var data bytes.Buffer
	if n, err := data.ReadFrom(io.LimitReader(f, maxTranslationFile+1)); err != nil {
		return nil, err
	} else if n > maxTranslationFile {
		return nil, fmt.Errorf("larger than %d MiB", maxTranslationFile>>20)
	}
	m := map[string]string{}
	sc := bufio.NewScanner(&data)
	sc.Buffer(make([]byte, 0, 64<<10), maxTranslationFile)
	for sc.Scan() {
		line := strings.TrimLeft(sc.Text(), " \t\r")
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			continue // as soma-workflow: a line without a path is skipped
		}
		p := strings.TrimSpace(line[i:])
		if p == "" {
			continue
		}
		m[line[:i]] = expandVars(p)
	}
	return m, sc.Err()
}

// Translate returns the engine-side path of a shared resource path: the
// uuid's translation in its namespace joined with the relative path. The
// error names the namespace and uuid, and says what is missing.
func (t *Translations) Translate(sp *model.SharedResourcePath) (string, error) {
	if t == nil || len(t.Files) == 0 {
		return "", fmt.Errorf("shared resource path %q (namespace %q, uuid %q): this resource has no translation files (translation_files in the configuration, PATH_TRANSLATION_FILES in soma-workflow's)",
			sp.RelativePath, sp.Namespace, sp.UUID)
	}
	m, ok := t.ns[sp.Namespace]
	if !ok {
		return "", fmt.Errorf("shared resource path %q (namespace %q, uuid %q): namespace %q has no translation file on this resource (it has: %s)",
			sp.RelativePath, sp.Namespace, sp.UUID, sp.Namespace, strings.Join(t.Namespaces(), ", "))
	}
	base, ok := m[sp.UUID]
	if !ok {
		return "", fmt.Errorf("shared resource path %q (namespace %q, uuid %q): uuid %q is not in the translation files of namespace %q",
			sp.RelativePath, sp.Namespace, sp.UUID, sp.UUID, sp.Namespace)
	}
	return filepath.Join(base, sp.RelativePath), nil
}

// Namespaces lists the namespaces translated, sorted.
func (t *Translations) Namespaces() []string {
	var out []string
	for ns := range t.ns {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}
