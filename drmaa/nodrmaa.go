//go:build !drmaa

package drmaa

import (
	"fmt"

	"github.com/somaflow/somaflow/drms"
)

// Compiled says whether DRMAA support is compiled in (build tag `drmaa`).
const Compiled = false

// New fails in a build without the `drmaa` tag: the error wraps
// ErrNotCompiled.
func New(cfg drms.Config) (drms.Backend, error) {
	return nil, fmt.Errorf("drmaa backend: %w", ErrNotCompiled)
}
