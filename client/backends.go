package client

import (
	"fmt"
	"strings"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/local"
)

// Backends lists the backend names OpenBackend knows.
var Backends = []string{"local", "slurm", "pbs", "drmaa"}

// CheckBackend tells whether this build can run workflows on the backend
// called name, without opening it; the error is ErrInvalid.
func CheckBackend(name string) error {
	switch name {
	case "local", "":
		return nil
	}
	return fmt.Errorf("%w: backend %q is not available (known: %s)", ErrInvalid, name, strings.Join(Backends, ", "))
}

// OpenBackend returns the backend called name. An unknown name, or a backend
// this build lacks, is an ErrInvalid error.
func OpenBackend(name string, cfg drms.Config) (drms.Backend, error) {
	switch name {
	case "local", "":
		return local.New(cfg), nil
	}
	return nil, fmt.Errorf("%w: backend %q is not available (known: %s)", ErrInvalid, name, strings.Join(Backends, ", "))
}
