package client

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/somaflow/somaflow/drmaa"
	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/command"
	"github.com/somaflow/somaflow/drms/local"
	"github.com/somaflow/somaflow/drms/pbs"
	"github.com/somaflow/somaflow/drms/slurm"
	"github.com/somaflow/somaflow/drms/supervisor"
)

// Backends lists the names of the backends this build knows.
var Backends = []string{"local", "slurm", "pbs", "drmaa", "command"}

// BackendFactory opens a backend for a state dir's engine. An error means
// the backend cannot run now (a missing command, a bad setting); Open then
// fails with ErrUnavailable.
type BackendFactory func(cfg drms.Config) (drms.Backend, error)

// Registry maps backend names to the factories that open them: the
// built-in backends, and those a Go program adds for batch systems
// somaflow does not ship. It is passed to Open (Options.Registry), never
// global: two clients in one program may know different backends. The
// engine opens a workflow's backend by the name the workflow was
// submitted with, so a workflow submitted on a registered backend needs
// that registry in every program that runs its engine (the somaflow
// command knows only the built-in ones).
type Registry struct {
	factories map[string]BackendFactory
}

// NewRegistry returns a registry of the built-in backends: local, slurm,
// pbs, drmaa (only in builds with DRMAA support; Check says so) and
// command (commands described in the site configuration).
func NewRegistry() *Registry {
	return &Registry{factories: map[string]BackendFactory{
		"local": func(cfg drms.Config) (drms.Backend, error) { return local.New(cfg), nil },
		"slurm": func(cfg drms.Config) (drms.Backend, error) { return slurm.New(cfg) },
		"pbs":   func(cfg drms.Config) (drms.Backend, error) { return pbs.New(cfg) },
		"drmaa": func(cfg drms.Config) (drms.Backend, error) { return drmaa.New(cfg) },
		// command: a batch system described in the site configuration
		// (docs/command-backend.md).
		"command": func(cfg drms.Config) (drms.Backend, error) { return command.New(cfg) },
	}}
}

// Register adds a backend under name: lowercase letters, digits, '-' and
// '_', not a name already registered (the built-in ones included).
func (r *Registry) Register(name string, f BackendFactory) error {
	if f == nil {
		return fmt.Errorf("%w: backend %q: no factory", ErrInvalid, name)
	}
	if name == "" || strings.IndexFunc(name, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_')
	}) >= 0 {
		return fmt.Errorf("%w: backend name %q: use lowercase letters, digits, '-' and '_'", ErrInvalid, name)
	}
	if _, dup := r.factories[name]; dup {
		return fmt.Errorf("%w: backend %q is already registered", ErrInvalid, name)
	}
	r.factories[name] = f
	return nil
}

// Names lists the registered backends, sorted.
func (r *Registry) Names() []string {
	n := make([]string, 0, len(r.factories))
	for k := range r.factories {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Check tells whether the registry can open the backend called name
// ("" is local), without opening it; the error is ErrInvalid.
func (r *Registry) Check(name string) error {
	if name == "" {
		name = "local"
	}
	if _, ok := r.factories[name]; !ok {
		return fmt.Errorf("%w: unknown backend %q (known: %s)", ErrInvalid, name, strings.Join(r.Names(), ", "))
	}
	if name == "drmaa" && !drmaa.Compiled {
		return fmt.Errorf("%w: backend drmaa: %v", ErrInvalid, drmaa.ErrNotCompiled)
	}
	return nil
}

// Open opens the backend called name. An unknown name, or a backend this
// build lacks, is an ErrInvalid error; a backend that cannot start is
// ErrUnavailable.
func (r *Registry) Open(name string, cfg drms.Config) (drms.Backend, error) {
	if err := r.Check(name); err != nil {
		return nil, err
	}
	if name == "" {
		name = "local"
	}
	be, err := r.factories[name](cfg)
	if errors.Is(err, drmaa.ErrNotCompiled) {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: backend %s: %v", ErrUnavailable, name, err)
	}
	if be == nil {
		return nil, fmt.Errorf("%w: backend %s: its factory returned no backend", ErrUnavailable, name)
	}
	return be, nil
}

// openSupervised is Open for the service mode: local jobs run under the
// state dir's supervisor (cfg.ExecPath re-executed), so that they outlive
// the engine and their exits are never lost.
func (r *Registry) openSupervised(name string, cfg drms.Config) (drms.Backend, error) {
	if name != "local" && name != "" {
		return r.Open(name, cfg)
	}
	be, err := supervisor.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: local supervisor: %v", ErrUnavailable, err)
	}
	return be, nil
}

// builtin is the registry of the built-in backends, for the functions below.
var builtin = NewRegistry()

// CheckBackend tells whether this build can run workflows on the built-in
// backend called name, without opening it; the error is ErrInvalid.
func CheckBackend(name string) error { return builtin.Check(name) }
