package client

import (
	"errors"
	"fmt"
	"strings"

	"github.com/somaflow/somaflow/drmaa"
	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/local"
	"github.com/somaflow/somaflow/drms/pbs"
	"github.com/somaflow/somaflow/drms/slurm"
	"github.com/somaflow/somaflow/drms/supervisor"
)

// Backends lists the backend names this build knows.
var Backends = []string{"local", "slurm", "pbs", "drmaa"}

// CheckBackend tells whether this build can run workflows on the backend
// called name, without opening it; the error is ErrInvalid.
func CheckBackend(name string) error {
	switch name {
	case "local", "", "slurm", "pbs":
		return nil
	case "drmaa":
		if !drmaa.Compiled {
			return fmt.Errorf("%w: backend drmaa: %v", ErrInvalid, drmaa.ErrNotCompiled)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown backend %q (known: %s)", ErrInvalid, name, strings.Join(Backends, ", "))
}

// OpenSupervisedBackend is OpenBackend for the service mode: local jobs run
// under the state dir's supervisor (cfg.ExecPath re-executed), so that they
// outlive the engine and their exits are never lost.
func OpenSupervisedBackend(name string, cfg drms.Config) (drms.Backend, error) {
	if name != "local" && name != "" {
		return OpenBackend(name, cfg)
	}
	be, err := supervisor.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: local supervisor: %v", ErrUnavailable, err)
	}
	return be, nil
}

// OpenBackend returns the backend called name. An unknown name, or a backend
// this build lacks, is an ErrInvalid error; a backend that cannot start is
// ErrUnavailable.
func OpenBackend(name string, cfg drms.Config) (drms.Backend, error) {
	if err := CheckBackend(name); err != nil {
		return nil, err
	}
	var be drms.Backend
	var err error
	switch name {
	case "local", "":
		return local.New(cfg), nil
	case "slurm":
		be, err = slurm.New(cfg)
	case "pbs":
		be, err = pbs.New(cfg)
	case "drmaa":
		be, err = drmaa.New(cfg)
	}
	if errors.Is(err, drmaa.ErrNotCompiled) {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: backend %s: %v", ErrUnavailable, name, err)
	}
	return be, nil
}
