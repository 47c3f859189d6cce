package client

import (
	"errors"
	"strings"
	"testing"

	"github.com/somaflow/somaflow/drms"
)

func TestRegistry(t *testing.T) {
	reg := NewRegistry()
	for _, bad := range []string{"", "Slurm", "my backend", "local"} {
		if err := reg.Register(bad, func(drms.Config) (drms.Backend, error) { return nil, nil }); !errors.Is(err, ErrInvalid) {
			t.Errorf("Register(%q): %v, want ErrInvalid", bad, err)
		}
	}
	if err := reg.Register("x", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("Register without a factory: %v", err)
	}
	reg.Register("broken", func(drms.Config) (drms.Backend, error) { return nil, errors.New("no qfoo on PATH") })
	reg.Register("empty", func(drms.Config) (drms.Backend, error) { return nil, nil })
	if _, err := reg.Open("broken", drms.Config{}); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no qfoo") {
		t.Errorf("Open(broken): %v", err)
	}
	if _, err := reg.Open("empty", drms.Config{}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Open(empty): %v", err)
	}
	if err := reg.Check("nosuch"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "broken, command, drmaa, empty, local, pbs, slurm") {
		t.Errorf("Check(nosuch): %v", err)
	}
	// A registry is not global: the built-in one does not know "broken".
	if err := CheckBackend("broken"); !errors.Is(err, ErrInvalid) {
		t.Errorf("CheckBackend(broken): %v", err)
	}
}
