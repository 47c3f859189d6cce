package client_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/local"
)

// niceBackend is a backend of one's own: local processes started under
// `nice -n 10`. Embedding *local.Backend keeps its optional extras (it
// pushes job ends to the engine: drms.Notifier); only Submit changes.
type niceBackend struct{ *local.Backend }

func (b niceBackend) Submit(ctx context.Context, spec drms.JobSpec) (drms.Handle, error) {
	spec.Argv = append([]string{"nice", "-n", "10"}, spec.Argv...)
	return b.Backend.Submit(ctx, spec)
}

func (b niceBackend) Capabilities() drms.Capabilities {
	c := b.Backend.Capabilities()
	c.Name = "nice"
	return c
}

// A Go program registers its own backend under a name in a Registry it
// passes to Open (no global registration): here a wrapper of the local
// backend; a backend for a batch system somaflow does not ship implements
// drms.Backend the same way (drms/backendtest is the suite it must pass).
func ExampleRegistry() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "somaflow-registry-")
	defer os.RemoveAll(dir)

	reg := client.NewRegistry()
	err := reg.Register("nice", func(cfg drms.Config) (drms.Backend, error) {
		return niceBackend{local.New(cfg)}, nil
	})
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.Open(ctx, client.Options{StateDir: dir, Backend: "nice", Registry: reg})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	out := filepath.Join(dir, "niceness")
	b := client.NewWorkflow("niced")
	b.Shell("show", "nice > "+out)
	w, err := b.Build()
	if err != nil {
		log.Fatal(err)
	}
	id, err := c.SubmitWorkflow(ctx, w, client.SubmitOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.WaitSucceeded(ctx, id, time.Minute); err != nil {
		log.Fatal(err)
	}
	niceness, _ := os.ReadFile(out)
	fmt.Print("backends: ", reg.Names(), "\nniceness of the job: ", string(niceness))
	// Output:
	// backends: [command drmaa local nice pbs slurm]
	// niceness of the job: 10
}
