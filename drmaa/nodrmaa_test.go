//go:build !drmaa

package drmaa

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/somaflow/somaflow/drms"
)

func TestNotCompiled(t *testing.T) {
	if Compiled {
		t.Fatal("Compiled is true without the drmaa tag")
	}
	b, err := New(drms.Config{StateDir: t.TempDir(), ExecPath: "/usr/bin/somaflow"})
	if b != nil || !errors.Is(err, ErrNotCompiled) {
		t.Fatalf("New: %v, %v; want ErrNotCompiled", b, err)
	}
	if !strings.Contains(err.Error(), "rebuild with -tags drmaa") {
		t.Fatalf("error does not say how to fix it: %v", err)
	}
	for _, s := range strings.Split(os.Getenv("SOMAFLOW_REQUIRE"), ",") {
		if strings.TrimSpace(s) == "drmaa" {
			t.Fatal("SOMAFLOW_REQUIRE=drmaa but this test binary was built without -tags drmaa")
		}
	}
}
