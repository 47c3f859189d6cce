package local_test

import (
	"testing"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/backendtest"
	"github.com/somaflow/somaflow/drms/local"
)

func TestConformance(t *testing.T) {
	state := t.TempDir()
	backendtest.Run(t, backendtest.Harness{
		New: func(t *testing.T) drms.Backend { return local.New(drms.Config{StateDir: state}) },
	})
}
