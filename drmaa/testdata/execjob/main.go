// Command execjob is a stand-in somaflow binary for the drmaa tests: it runs
// `execjob exec-job ARGS...` as `somaflow exec-job ARGS...` would.
package main

import (
	"fmt"
	"os"

	"github.com/somaflow/somaflow/drms/execjob"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "exec-job" {
		fmt.Fprintln(os.Stderr, "usage: execjob exec-job --status FILE [...] -- argv...")
		os.Exit(2)
	}
	os.Exit(execjob.Main(os.Args[2:]))
}
