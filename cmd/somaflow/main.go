// Command somaflow runs workflows of command-line jobs on HPC batch systems
// and local processes. See `somaflow --help`.
package main

import (
	"context"
	"os"

	"github.com/somaflow/somaflow/cli"
)

func main() {
	os.Exit(cli.Run(context.Background(), cli.System(), os.Args))
}
