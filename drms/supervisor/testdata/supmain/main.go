// Command supmain is a stand-in for `somaflow supervisor` in the tests of
// drms/supervisor: `supmain supervisor --state-dir DIR ...`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/somaflow/somaflow/drms/supervisor"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "supervisor" {
		fmt.Fprintln(os.Stderr, "usage: supmain supervisor --state-dir DIR [--idle DURATION]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := supervisor.Main(ctx, os.Args[2:])
	stop()
	os.Exit(code)
}
