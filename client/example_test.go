package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/somaflow/somaflow/client"
)

// Embedding somaflow: the engine runs inside the program, jobs are its
// children, and the state lives in a state dir. The workflow is built by
// names (client.NewWorkflow); WaitSucceeded says whether a job failed.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "somaflow-example-")
	defer os.RemoveAll(dir)

	c, err := client.Open(ctx, client.Options{StateDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	b := client.NewWorkflow("example")
	hello := b.Job("hello", "echo", "hello")
	world := b.Job("world", "echo", "world").After(hello)
	b.Shell("check", "test -n \"$GREETING\"").After(hello, world).Env("GREETING", "hi").Retries(1).Walltime(time.Minute)
	w, err := b.Build()
	if err != nil {
		log.Fatal(err)
	}
	id, err := c.SubmitWorkflow(ctx, w, client.SubmitOptions{})
	if err != nil {
		log.Fatal(err)
	}
	err = c.WaitSucceeded(ctx, id, time.Minute)
	if errors.Is(err, client.ErrJobsFailed) {
		fmt.Println(err)
	} else if err != nil {
		log.Fatal(err)
	}
	doc, _ := c.WorkflowElementsStatus(ctx, id)
	for _, j := range doc.Jobs {
		fmt.Println(j.Name, j.Status, *j.ExitStatus, *j.ExitValue)
	}
	// Output:
	// hello done finished_regularly 0
	// world done finished_regularly 0
	// check done finished_regularly 0
}
