package cli

import (
	"context"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
)

// openState opens the state dir of a command (--state-dir, else the
// default) without an engine: every command but run and engine reads the
// database and writes intents through it. It returns the state dir too,
// for ensureEngine.
func openState(ctx context.Context, cmd *ucli.Command) (*client.Client, string, error) {
	if err := refuseResource(cmd); err != nil { // remote.go
		return nil, "", err
	}
	dir, err := stateDir(cmd)
	if err != nil {
		return nil, "", err
	}
	c, err := client.Open(ctx, client.Options{StateDir: dir, Backend: cmd.String("backend"), NoEngine: true})
	return c, dir, err
}

// workflowDoc opens the state dir and reads the status document of the
// workflow the command's first argument names (n arguments in all, usage
// saying which otherwise). The caller closes the client.
func workflowDoc(ctx context.Context, cmd *ucli.Command, n int, usage string) (*client.Client, *client.WorkflowDoc, error) {
	id, err := workflowArg(cmd, n, usage)
	if err != nil {
		return nil, nil, err
	}
	c, _, err := openState(ctx, cmd)
	if err != nil {
		return nil, nil, err
	}
	doc, err := c.WorkflowElementsStatus(ctx, id)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, doc, nil
}
