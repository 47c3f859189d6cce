package client

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"github.com/somaflow/somaflow/model"
	"go.yaml.in/yaml/v3"
)

// Config is the configuration a site admin (and then a user) gives:
// defaults for flags and backend options. Files are read in this order,
// later ones overriding earlier ones: /etc/somaflow/config.yaml, the file
// named by $SOMAFLOW_CONFIG (it must exist), then
// $XDG_CONFIG_HOME/somaflow/config.yaml (~/.config/somaflow/config.yaml).
// Command-line flags and SOMAFLOW_* variables win over all of them.
type Config struct {
	// Backend is the default backend (local, slurm, pbs, drmaa).
	Backend string `yaml:"backend"`
	// Queue is the default queue (partition) for run and submit.
	Queue string `yaml:"queue"`
	// StateDir and SpoolDir move the state dir and the batch spool dir.
	StateDir string `yaml:"state_dir"`
	SpoolDir string `yaml:"spool_dir"`
	// MaxJobs is the default limit of jobs running at once per workflow.
	MaxJobs int `yaml:"max_jobs"`
	// Settings are backend options (see docs/slurm.md, docs/drmaa.md).
	Settings map[string]string `yaml:"settings"`
	// TranslationFiles translate shared resource paths on this machine
	// (soma-workflow's PATH_TRANSLATION_FILES: namespace{file} entries).
	TranslationFiles TranslationFiles `yaml:"translation_files"`
	// StageTransfers makes file transfers real on this machine: copied
	// into the state dir's transfer dir (see SubmitOptions.StageTransfers).
	StageTransfers bool `yaml:"stage_transfers"`
	// Resources are the remote computing resources, by name (--resource).
	Resources map[string]Resource `yaml:"resources"`
	// Files lists the files read, for `somaflow version`.
	Files []string `yaml:"-"`
	// Sources says which file set each key (settings as settings.KEY).
	Sources map[string]string `yaml:"-"`
	// SW is the soma-workflow configuration read first (the lowest
	// layer): its file, the resource used, and the keys that have no
	// meaning here.
	SW *SWLayer `yaml:"-"`
}

// SWLayer is what LoadConfig took from soma-workflow's configuration.
type SWLayer struct {
	Path string `json:"path"`
	// Resource is the section used ("" when none applies: Note says why).
	Resource string      `json:"resource,omitempty"`
	Note     string      `json:"note,omitempty"`
	Ignored  []SWIgnored `json:"ignored,omitempty"`
}

// SWResourceEnv names the soma-workflow resource (section) whose keys
// LoadConfig uses; by default the one named after this host, or the only one.
const SWResourceEnv = "SOMAFLOW_SWF_RESOURCE"

// ConfigPath is the system-wide configuration file.
var ConfigPath = "/etc/somaflow/config.yaml"

// LoadConfig reads the configuration files the CLI reads; a malformed
// file or an unknown key is an error naming the file (ErrInvalid). First,
// as the lowest layer, comes soma-workflow's configuration
// (SWConfigPath: $SOMA_WORKFLOW_CONFIG, ~/.soma-workflow.cfg,
// /etc/soma-workflow.cfg), resource $SOMAFLOW_SWF_RESOURCE or the one named
// after this host or the only one; SOMAFLOW_SWF_RESOURCE=none skips it.
func LoadConfig() (*Config, error) {
	cfg := &Config{}
	if p := SWConfigPath(); p != "" && os.Getenv(SWResourceEnv) != "none" {
		sw, err := ReadSWConfig(p)
		if err != nil {
			return nil, err
		}
		layer := &SWLayer{Path: p}
		r, ok, err := sw.Choose(os.Getenv(SWResourceEnv))
		if err != nil {
			return nil, err
		}
		if ok {
			c, ignored, err := r.Apply(p)
			if err != nil {
				return nil, err
			}
			*cfg = *c
			layer.Resource, layer.Ignored = r.Name, ignored
		} else {
			layer.Note = fmt.Sprintf("no resource used: none is named after this host and there are several (%s); set %s", strings.Join(sw.Names(), ", "), SWResourceEnv)
		}
		cfg.SW = layer
		cfg.Files = append(cfg.Files, p)
	}
	paths := []struct {
		path     string
		required bool
	}{{ConfigPath, false}}
	if p := os.Getenv("SOMAFLOW_CONFIG"); p != "" {
		paths = append(paths, struct {
			path     string
			required bool
		}{p, true})
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		paths = append(paths, struct {
			path     string
			required bool
		}{filepath.Join(d, "somaflow", "config.yaml"), false})
	} else if home, err := os.UserHomeDir(); err == nil {
		paths = append(paths, struct {
			path     string
			required bool
		}{filepath.Join(home, ".config", "somaflow", "config.yaml"), false})
	}
	for _, p := range paths {
		data, err := os.ReadFile(p.path)
		if err != nil {
			if os.IsNotExist(err) && !p.required {
				continue
			}
			return nil, invalidf("configuration %s: %v", p.path, err)
		}
		var c Config
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && err.Error() != "EOF" {
			return nil, invalidf("configuration %s: %s", p.path, explainConfig(err))
		}
		if c.MaxJobs < 0 {
			return nil, invalidf("configuration %s: max_jobs must be positive, got %d", p.path, c.MaxJobs)
		}
		for name, r := range c.Resources {
			if err := r.Check(name); err != nil {
				return nil, invalidf("configuration %s: %v", p.path, err)
			}
		}
		cfg.merge(&c, p.path)
		cfg.Files = append(cfg.Files, p.path)
	}
	return cfg, nil
}

func (c *Config) merge(o *Config, path string) {
	if c.Sources == nil {
		c.Sources = map[string]string{}
	}
	for _, f := range []struct {
		key      string
		dst, src *string
	}{{"backend", &c.Backend, &o.Backend}, {"queue", &c.Queue, &o.Queue}, {"state_dir", &c.StateDir, &o.StateDir}, {"spool_dir", &c.SpoolDir, &o.SpoolDir}} {
		if *f.src != "" {
			*f.dst = *f.src
			c.Sources[f.key] = path
		}
	}
	if len(o.TranslationFiles) > 0 {
		c.TranslationFiles = o.TranslationFiles
		c.Sources["translation_files"] = path
	}
	for name, r := range o.Resources {
		if c.Resources == nil {
			c.Resources = map[string]Resource{}
		}
		c.Resources[name] = r
		c.Sources["resources."+name] = path
	}
	if o.StageTransfers {
		c.StageTransfers = true
		c.Sources["stage_transfers"] = path
	}
	if o.MaxJobs > 0 {
		c.MaxJobs = o.MaxJobs
		c.Sources["max_jobs"] = path
	}
	for k := range o.Settings {
		c.Sources["settings."+k] = path
	}
	for k, v := range o.Settings {
		if c.Settings == nil {
			c.Settings = map[string]string{}
		}
		c.Settings[k] = v
	}
}

func (c *Config) String() string { return fmt.Sprintf("%+v", *c) }

// configKeys are the keys a configuration file may hold.
func configKeys() []string {
	t := reflect.TypeFor[Config]()
	var keys []string
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

var (
	yamlUnknownField = regexp.MustCompile(`^(line \d+): field (\S+) not found in type \S+$`)
	yamlBadValue     = regexp.MustCompile("^(line \\d+): cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
)

// explainConfig says in words what is wrong in a configuration file, in
// place of the YAML decoder's Go terms: an unknown key with the nearest
// known one, a value of the wrong kind.
func explainConfig(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	kinds := map[string]string{"int": "a whole number", "string": "text", "map[string]string": "a map of names to values", "bool": "true or false"}
	var lines []string
	for _, e := range te.Errors {
		if m := yamlUnknownField.FindStringSubmatch(e); m != nil {
			msg := fmt.Sprintf("%s: unknown key %q", m[1], m[2])
			if near := model.Nearest(m[2], configKeys()); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
			}
			lines = append(lines, msg+"; the keys are "+strings.Join(configKeys(), ", "))
		} else if m := yamlBadValue.FindStringSubmatch(e); m != nil {
			want := kinds[m[4]]
			if want == "" {
				want = m[4]
			}
			lines = append(lines, fmt.Sprintf("%s: %q must be %s", m[1], m[3], want))
		} else {
			lines = append(lines, e)
		}
	}
	return strings.Join(lines, "; ")
}

func invalidf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// Options are the client options the configuration gives (state dir,
// backend, spool dir, backend settings), for a Go program that honours the
// same files as the CLI; the caller adds or overrides the rest.
func (c *Config) Options() Options {
	return Options{StateDir: c.StateDir, Backend: c.Backend, SpoolDir: c.SpoolDir, Settings: c.Settings}
}
