// Command supmain is a stand-in for `somaflow supervisor` in the tests of
// drms/supervisor: `supmain supervisor --state-dir DIR ...`. With
// SUPMAIN_CPUPROFILE=FILE it writes a CPU profile (for the benchmark).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/somaflow/somaflow/drms/supervisor"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "supervisor" {
		fmt.Fprintln(os.Stderr, "usage: supmain supervisor --state-dir DIR [--idle DURATION]")
		os.Exit(2)
	}
	if p := os.Getenv("SUPMAIN_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := supervisor.Main(ctx, os.Args[2:])
	stop()
	if code != 0 {
		os.Exit(code)
	}
}
