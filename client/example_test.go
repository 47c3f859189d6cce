package client_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/somaflow/somaflow/client"
)

// Embedding somaflow: the engine runs inside the program, jobs are its
// children, and the state lives in a state dir.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "somaflow-example-")
	defer os.RemoveAll(dir)

	c, err := client.Open(ctx, client.Options{StateDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	w, _, err := client.Unserialize([]byte(`
name: example
jobs:
  hello: {command: [echo, hello]}
  world: {command: [echo, world], after: [hello]}
`))
	if err != nil {
		log.Fatal(err)
	}
	id, err := c.SubmitWorkflow(ctx, w, client.SubmitOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.WaitWorkflow(ctx, id, time.Minute); err != nil {
		log.Fatal(err)
	}
	doc, _ := c.WorkflowElementsStatus(ctx, id)
	for _, j := range doc.Jobs {
		fmt.Println(j.Name, j.Status, *j.ExitStatus, *j.ExitValue)
	}
	// Output:
	// hello done finished_regularly 0
	// world done finished_regularly 0
}
