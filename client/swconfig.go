package client

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// SWConfig is a soma-workflow configuration file (~/.soma-workflow.cfg, the
// site's /etc/soma-workflow.cfg): an INI file of resource sections, read
// as Python's configparser reads it (keys are case-insensitive; "=" or ":"
// separates key and value; lines starting with # or ; are comments;
// indented lines continue the value above).
type SWConfig struct {
	// Path is the file read.
	Path string
	// Resources are its sections, in file order.
	Resources []SWResource
}

// SWResource is one resource section of a soma-workflow configuration.
type SWResource struct {
	Name string
	// Keys are its entries in file order, names upper-cased.
	Keys []SWKey
}

// SWKey is one entry of a resource section.
type SWKey struct {
	Name, Value string
	Line        int
}

// SWIgnored is a soma-workflow key that somaflow does not use, and why.
type SWIgnored struct {
	Resource string `json:"resource"`
	Key      string `json:"key"`
	Value    string `json:"value"`
	Why      string `json:"why"`
}

// maxSWConfig bounds the size of a soma-workflow configuration file read.
const maxSWConfig = 1 << 20

// SWConfigPath is the soma-workflow configuration soma-workflow itself
// would read: $SOMA_WORKFLOW_CONFIG when it names a file, else
// ~/.soma-workflow.cfg, else /etc/soma-workflow.cfg; "" when none exists.
func SWConfigPath() string {
	var paths []string
	if p := os.Getenv("SOMA_WORKFLOW_CONFIG"); p != "" {
		paths = append(paths, p)
	}
	if home, err := os.UserHomeDir(); err == nil {
		paths = append(paths, filepath.Join(home, ".soma-workflow.cfg"))
	}
	paths = append(paths, SWSystemConfigPath)
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// SWSystemConfigPath is the site-wide soma-workflow configuration.
var SWSystemConfigPath = "/etc/soma-workflow.cfg"

// ReadSWConfig reads a soma-workflow configuration file. A line that is
// neither a section, an entry, a comment nor a continuation, an entry
// before any section, or a section given twice is an error naming the
// file and line (ErrInvalid).
func ReadSWConfig(path string) (*SWConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, invalidf("soma-workflow configuration %s: %v", path, err)
	}
	defer f.Close()
	var data bytes.Buffer
	if n, err := data.ReadFrom(io.LimitReader(f, maxSWConfig+1)); err != nil {
		return nil, invalidf("soma-workflow configuration %s: %v", path, err)
	} else if n > maxSWConfig {
		return nil, invalidf("soma-workflow configuration %s: larger than %d KiB", path, maxSWConfig>>10)
	}
	c := &SWConfig{Path: path}
	seen := map[string]bool{}
	var cur *SWResource
	sc := bufio.NewScanner(&data)
	sc.Buffer(make([]byte, 0, 64<<10), maxSWConfig)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case raw[0] == ' ' || raw[0] == '\t':
			if cur == nil || len(cur.Keys) == 0 {
				return nil, invalidf("soma-workflow configuration %s line %d: indented line %q continues nothing", path, n, line)
			}
			k := &cur.Keys[len(cur.Keys)-1]
			k.Value = strings.TrimSpace(k.Value + "\n" + line)
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") || len(line) < 3 {
				return nil, invalidf("soma-workflow configuration %s line %d: malformed section header %q", path, n, line)
			}
			name := strings.TrimSpace(line[1 : len(line)-1])
			if seen[name] {
				return nil, invalidf("soma-workflow configuration %s line %d: resource [%s] given twice", path, n, name)
			}
			seen[name] = true
			c.Resources = append(c.Resources, SWResource{Name: name})
			cur = &c.Resources[len(c.Resources)-1]
		default:
			i := strings.IndexAny(line, "=:")
			if i <= 0 {
				return nil, invalidf("soma-workflow configuration %s line %d: %q is not KEY = VALUE", path, n, line)
			}
			if cur == nil {
				return nil, invalidf("soma-workflow configuration %s line %d: %q comes before any [resource] section", path, n, line)
			}
			cur.Keys = append(cur.Keys, SWKey{Name: strings.ToUpper(strings.TrimSpace(line[:i])), Value: strings.TrimSpace(line[i+1:]), Line: n})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, invalidf("soma-workflow configuration %s: %v", path, err)
	}
	return c, nil
}

// Resource returns the section called name.
func (c *SWConfig) Resource(name string) (SWResource, bool) {
	for _, r := range c.Resources {
		if r.Name == name {
			return r, true
		}
	}
	return SWResource{}, false
}

// Names lists the resources of the file.
func (c *SWConfig) Names() []string {
	var n []string
	for _, r := range c.Resources {
		n = append(n, r.Name)
	}
	return n
}

// Choose picks the resource somaflow uses: name when given (it must
// exist), else the one named after this host (soma-workflow's own local
// resource id), else the only one; ok is false when none applies.
func (c *SWConfig) Choose(name string) (r SWResource, ok bool, err error) {
	if name != "" {
		if r, ok := c.Resource(name); ok {
			return r, true, nil
		}
		return SWResource{}, false, invalidf("soma-workflow configuration %s has no resource [%s] (it has: %s)", c.Path, name, strings.Join(c.Names(), ", "))
	}
	if host, err := os.Hostname(); err == nil {
		if r, ok := c.Resource(host); ok {
			return r, true, nil
		}
	}
	if len(c.Resources) == 1 {
		return c.Resources[0], true, nil
	}
	return SWResource{}, false, nil
}

// swSchedulers maps SCHEDULER_TYPE to a somaflow backend.
var swSchedulers = map[string]string{"local_basic": "local", "slurm": "slurm", "pbspro": "pbs", "drmaa": "drmaa"}

// swUnused says why each soma-workflow key that somaflow does not map has
// no meaning here.
var swUnused = map[string]string{
	"DATABASE_FILE":              "somaflow keeps its own database in its state dir (another format)",
	"SOMA_WORKFLOW_DIR":          "somaflow keeps its state in its own state dir (state_dir, --state-dir)",
	"SERVER_NAME":                "somaflow has no database server: one engine per state dir",
	"LIGHT_MODE":                 "somaflow has one mode: an engine per state dir that outlives its client",
	"REMOVE_ORPHAN_FILES":        "transferred files go with their workflow (or delete_transfer)",
	"TRANSFERED_FILES_DIR":       "transfers go to the state dir's transfers/ (docs/transfers.md)",
	"CLUSTER_ADDRESS":            "remote resources are configured under resources: in somaflow's configuration (docs/transfers.md)",
	"SUBMITTING_MACHINES":        "remote resources are configured under resources: in somaflow's configuration (docs/transfers.md)",
	"LOGIN":                      "remote resources are configured under resources: in somaflow's configuration (docs/transfers.md)",
	"SSHPORT":                    "remote resources are configured under resources: in somaflow's configuration (docs/transfers.md)",
	"INSTALLPATH":                "remote resources are configured under resources: in somaflow's configuration (docs/transfers.md)",
	"SERVER_LOG_FILE":            "somaflow's engine logs to engine.log in its state dir",
	"SERVER_LOG_LEVEL":           "somaflow's engine logs to engine.log in its state dir",
	"SERVER_LOG_FORMAT":          "somaflow's engine logs to engine.log in its state dir",
	"ENGINE_LOG_DIR":             "somaflow's engine logs to engine.log in its state dir",
	"ENGINE_LOG_LEVEL":           "somaflow's engine logs to engine.log in its state dir",
	"ENGINE_LOG_FORMAT":          "somaflow's engine logs to engine.log in its state dir",
	"MPI_LOG_DIR":                "there is no MPI scheduler in somaflow",
	"MPI_LOG_FORMAT":             "there is no MPI scheduler in somaflow",
	"MPI_JOB_TIMEOUT":            "there is no MPI scheduler in somaflow (a job's walltime bounds it)",
	"SHARED_TEMPORARY_DIR":       "temporary paths live in the state dir's tmp/",
	"DRMAA_IMPLEMENTATION":       "the drmaa backend uses the libdrmaa it was built with (make build-drmaa)",
	"QUEUES":                     "somaflow takes any queue the DRMS knows (queue:, --queue); the list only fed soma-workflow's GUI",
	"MAX_CPU_NB":                 "the local backend uses every CPU (or CPU_NB)",
	"SCHEDULER_INTERVAL":         "somaflow's engine reacts to job ends at once",
	"CONTAINER_COMMAND":          "a container prefix for every command is not supported",
	"PYTHON_COMMAND":             "somaflow runs no Python of its own",
	"ALLOWED_PYTHON_VERSIONS":    "somaflow runs no Python of its own",
	"PARALLEL_ENV_MPI_BIN":       "parallel jobs get nodes and CPUs through the backend's options",
	"PARALLEL_ENV_NODE_FILE":     "parallel jobs get nodes and CPUs through the backend's options",
	"DRMAA_NATIVE_SPECIFICATION": "parallel jobs get nodes and CPUs through the backend's options",
	"DRMAA_JOB_CATEGORY":         "parallel jobs get nodes and CPUs through the backend's options",
}

// swLimit reads a soma-workflow job limit, "{N} queue1{M} ...": N is the
// default (0 when not given), the others per queue.
func swLimit(v string) (def int, perQueue []string, err error) {
	for _, item := range strings.Fields(v) {
		q, rest, ok := strings.Cut(item, "{")
		n, nerr := strconv.Atoi(strings.TrimSuffix(rest, "}"))
		if !ok || !strings.HasSuffix(rest, "}") || nerr != nil || n < 0 {
			return 0, nil, fmt.Errorf("%q is not {N} or QUEUE{N}", item)
		}
		if q == "" {
			def = n
		} else {
			perQueue = append(perQueue, item)
		}
	}
	return def, perQueue, nil
}

// Apply maps the resource's keys onto a configuration layer: backend from
// SCHEDULER_TYPE, max_jobs from MAX_JOB_RUNNING / MAX_JOB_IN_QUEUE (the
// smaller default; soma-workflow applied both) or CPU_NB for the local
// scheduler, the backend's extra options from NATIVE_SPECIFICATION. The
// keys that have no meaning here are returned with why. A value somaflow
// cannot read is an error naming the file, resource, key and line.
func (r SWResource) Apply(path string) (*Config, []SWIgnored, error) {
	c := &Config{Sources: map[string]string{}}
	var ignored []SWIgnored
	src := func(k SWKey) string { return fmt.Sprintf("%s [%s] %s (line %d)", path, r.Name, k.Name, k.Line) }
	bad := func(k SWKey, format string, a ...any) error {
		return invalidf("soma-workflow configuration %s line %d: [%s] %s: %s", path, k.Line, r.Name, k.Name, fmt.Sprintf(format, a...))
	}
	ignore := func(k SWKey, why string) {
		ignored = append(ignored, SWIgnored{Resource: r.Name, Key: k.Name, Value: k.Value, Why: why})
	}
	var native *SWKey
	limit, limitSrc := 0, ""
	cpuNB := 0
	var cpuSrc string
	for _, k := range r.Keys {
		switch k.Name {
		case "SCHEDULER_TYPE":
			v := strings.ToLower(strings.TrimSpace(k.Value))
			b, ok := swSchedulers[v]
			if !ok {
				switch v {
				case "mpi":
					ignore(k, "there is no MPI scheduler in somaflow")
				case "drmaa2":
					ignore(k, "DRMAA2 is not supported; the drmaa backend speaks DRMAA v1")
				default:
					return nil, nil, bad(k, "unknown scheduler %q (soma-workflow's are local_basic, drmaa, drmaa2, mpi, pbspro, slurm)", k.Value)
				}
				continue
			}
			c.Backend = b
			c.Sources["backend"] = src(k)
			if v == "pbspro" {
				c.Settings = map[string]string{"dialect": "pbspro"}
				c.Sources["settings.dialect"] = src(k)
			}
		case "MAX_JOB_RUNNING", "MAX_JOB_IN_QUEUE":
			def, perQueue, err := swLimit(k.Value)
			if err != nil {
				return nil, nil, bad(k, "%v", err)
			}
			if def > 0 && (limit == 0 || def < limit) {
				limit, limitSrc = def, src(k)
			}
			if len(perQueue) > 0 {
				ignore(SWKey{Name: k.Name, Value: strings.Join(perQueue, " ")}, "limits per queue are not supported: max_jobs applies to every queue")
			}
		case "CPU_NB":
			n, err := strconv.Atoi(strings.TrimSpace(k.Value))
			if err != nil || n < 0 {
				return nil, nil, bad(k, "%q is not a number of CPUs", k.Value)
			}
			cpuNB, cpuSrc = n, src(k)
		case "PATH_TRANSLATION_FILES":
			c.TranslationFiles = strings.Fields(k.Value)
			c.Sources["translation_files"] = src(k)
		case "NATIVE_SPECIFICATION":
			kk := k
			native = &kk
		default:
			why, known := swUnused[k.Name]
			if !known {
				why = "not a soma-workflow key somaflow knows"
			}
			ignore(k, why)
		}
	}
	if limit > 0 {
		c.MaxJobs, c.Sources["max_jobs"] = limit, limitSrc
	}
	if cpuNB > 0 {
		if c.Backend == "" || c.Backend == "local" {
			if c.MaxJobs == 0 || cpuNB < c.MaxJobs {
				c.MaxJobs, c.Sources["max_jobs"] = cpuNB, cpuSrc
			}
		} else {
			ignore(SWKey{Name: "CPU_NB", Value: strconv.Itoa(cpuNB)}, "CPU_NB is for soma-workflow's local scheduler; this resource uses "+c.Backend)
		}
	}
	if native != nil {
		setting := map[string]string{"slurm": "sbatch_options", "pbs": "qsub_options", "drmaa": "native"}[c.Backend]
		if setting == "" {
			ignore(*native, "a native specification needs a batch backend (SCHEDULER_TYPE slurm, pbspro or drmaa)")
		} else {
			if c.Settings == nil {
				c.Settings = map[string]string{}
			}
			c.Settings[setting] = native.Value
			c.Sources["settings."+setting] = src(*native)
		}
	}
	sort.SliceStable(ignored, func(i, j int) bool { return ignored[i].Key < ignored[j].Key })
	return c, ignored, nil
}
